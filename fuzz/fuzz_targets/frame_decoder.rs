//! Feeds arbitrary bytes, split at arbitrary points, to the frame decoder in both roles.
//! The decoder must never panic, every frame it returns must respect the size limit, and its
//! short path for small data frames (one at a time and in bursts) and its path for whole
//! text frames (unmasked and validated in one pass) must agree with it.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsflow_codec::{DecoderConfig, FrameDecoder, Role, Utf8Validator};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let role = if control & 1 == 0 { Role::Server } else { Role::Client };
    let config = DecoderConfig::new(role)
        .max_frame_size(usize::from(control >> 1) * 512)
        .allowed_rsv_bits(control >> 5);
    let mut decoder = FrameDecoder::with_config(config);
    let chunk = usize::from(control % 7) + 1;
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
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
        assert_eq!(burst.map(Iterator::collect::<Vec<_>>).unwrap_or_default(), singles);
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
                    let _ = validator.feed(&frame.payload).and_then(|()| validator.finish());
                }
                Ok(None) => {
                    assert!(short.is_none() && text.is_none());
                    break;
                }
                Err(_) => {
                    assert!(short.is_none() && text.is_none());
                    return;
                }
            }
        }
    }
});
