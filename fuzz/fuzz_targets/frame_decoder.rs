//! Feeds arbitrary bytes, split at arbitrary points, to the frame decoder in both roles.
//! The decoder must never panic, every frame it returns must respect the size limit, and its
//! short path for small data frames (one at a time and in bursts) and its path for whole
//! text frames (unmasked and validated in one pass) must agree with it, as must a decoder
//! driven as a connection drives it, which unmasks and validates the pieces of a data frame
//! in progress in one pass.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsflow_codec::{DecoderConfig, Frame, FrameDecoder, Role, Utf8Validator};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let role = if control & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let config = DecoderConfig::new(role)
        .max_frame_size(usize::from(control >> 1) * 512)
        .allowed_rsv_bits(control >> 5);
    let mut decoder = FrameDecoder::with_config(config);
    let chunk = usize::from(control % 7) + 1;
    // In pieces of another size (1 byte to 9 KB), which a one-pass check of its own needs.
    let fused = decode_fused(decoder.clone(), rest, 1 + usize::from(control) * 37);
    let mut frames = Vec::new();
    let mut failed = false;
    let mut buf = BytesMut::new();
    'pieces: for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        // A burst takes what the short path takes, call after call, and leaves the same rest.
        let mut burst_buf = buf.clone();
        let burst = decoder
            .clone()
            .decode_short_data_frames(&mut burst_buf, usize::from(control));
        let mut single_buf = buf.clone();
        let mut single_decoder = decoder.clone();
        let mut singles = Vec::new();
        while let Some(message) =
            single_decoder.decode_short_data_frame(&mut single_buf, usize::from(control))
        {
            singles.push(message);
        }
        assert_eq!(
            burst.map(Iterator::collect::<Vec<_>>).unwrap_or_default(),
            singles
        );
        assert_eq!(burst_buf, single_buf);
        loop {
            // The short path must take exactly what `decode` takes, or nothing.
            let mut short_buf = buf.clone();
            let short = decoder
                .clone()
                .decode_short_data_frame(&mut short_buf, usize::from(control));
            if short.is_none() {
                assert_eq!(short_buf, buf);
            }
            // So must the path for whole text frames, and validate exactly as `str` does.
            let mut text_buf = buf.clone();
            let text = decoder
                .clone()
                .decode_whole_text_frame(&mut text_buf, usize::from(control) * 64);
            if text.is_none() {
                assert_eq!(text_buf, buf);
            }
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Some((opcode, payload)) = short {
                        assert_eq!((opcode, payload), (frame.opcode, frame.payload.clone()));
                        assert_eq!(short_buf, buf);
                    }
                    if let Some(text) = text {
                        assert_eq!(text_buf, buf);
                        match std::str::from_utf8(&frame.payload) {
                            Ok(expected) => assert_eq!(text.unwrap().as_str(), expected),
                            Err(_) => assert!(text.is_err()),
                        }
                    }
                    assert!(frame.payload.len() <= config.frame_size_limit());
                    let mut validator = Utf8Validator::new();
                    let _ = validator
                        .feed(&frame.payload)
                        .and_then(|()| validator.finish());
                    frames.push(frame);
                }
                Ok(None) => {
                    assert!(short.is_none() && text.is_none());
                    break;
                }
                Err(_) => {
                    assert!(short.is_none() && text.is_none());
                    failed = true;
                    break 'pieces;
                }
            }
        }
    }
    assert_eq!(fused, (frames, failed));
});

/// Decodes `input` in pieces of `chunk` bytes as a connection does: the new bytes of a data
/// frame in progress through `unmask_partial_text`, validated as they are unmasked, the
/// rest through `decode` and a plain `feed`. Checks each data frame's verdict against
/// `str`'s; returns the frames and whether the decoder failed.
fn decode_fused(mut decoder: FrameDecoder, input: &[u8], chunk: usize) -> (Vec<Frame>, bool) {
    let (mut buf, mut frames) = (BytesMut::new(), Vec::new());
    let (mut utf8, mut validated, mut valid) = (Utf8Validator::new(), 0, true);
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            if valid && let Some(done) = decoder.unmask_partial_text(&mut buf, &mut utf8, validated)
            {
                match done {
                    Ok(unmasked) => validated = unmasked,
                    Err(_) => valid = false,
                }
            }
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if frame.opcode.is_data() {
                        let verdict = valid
                            && utf8
                                .feed(&frame.payload[validated..])
                                .and_then(|()| utf8.finish())
                                .is_ok();
                        assert_eq!(verdict, std::str::from_utf8(&frame.payload).is_ok());
                    }
                    frames.push(frame);
                    (utf8, validated, valid) = (Utf8Validator::new(), 0, true);
                }
                Ok(None) => {
                    if valid
                        && let Some((header, prefix)) = decoder.partial_frame(&buf)
                        && header.opcode.is_data()
                    {
                        valid = utf8.feed(&prefix[validated..]).is_ok();
                        validated = prefix.len();
                    }
                    break;
                }
                Err(_) => return (frames, true),
            }
        }
    }
    (frames, false)
}
