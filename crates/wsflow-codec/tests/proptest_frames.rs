//! Property tests: frames survive encode/decode for any split of the wire bytes, in both
//! roles, and the decoder never panics on arbitrary input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use wsflow_codec::{DecoderConfig, Frame, FrameDecoder, OpCode, Role, Utf8Validator};

fn opcode() -> impl Strategy<Value = OpCode> {
    prop_oneof![
        Just(OpCode::Continuation),
        Just(OpCode::Text),
        Just(OpCode::Binary),
        Just(OpCode::Close),
        Just(OpCode::Ping),
        Just(OpCode::Pong),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        opcode(),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..70_000),
    )
        .prop_map(|(opcode, fin, rsv1, payload)| {
            let mut frame = Frame::new(opcode, Bytes::from(payload));
            if opcode.is_control() {
                frame.payload.truncate(125);
            } else {
                frame.fin = fin;
                frame.rsv1 = rsv1;
            }
            frame
        })
}

/// Decodes `wire` fed in pieces cut at `cuts`, as reads of a socket would deliver it.
fn decode_in_pieces(decoder: &mut FrameDecoder, wire: &[u8], cuts: &[usize]) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut start = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    ends.push(wire.len());
    ends.sort_unstable();
    for end in ends {
        buf.extend_from_slice(&wire[start..end]);
        start = end;
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    assert!(buf.is_empty());
    frames
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn frames_round_trip_for_any_split(
        frames in proptest::collection::vec(frame(), 1..5),
        client_to_server in any::<bool>(),
        keys in proptest::collection::vec(any::<[u8; 4]>(), 5),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let receiver = if client_to_server { Role::Server } else { Role::Client };
        let sent: Vec<Frame> = frames
            .into_iter()
            .zip(keys)
            .map(|(frame, key)| frame.with_mask(client_to_server.then_some(key)))
            .collect();
        let mut wire = BytesMut::new();
        for frame in &sent {
            frame.encode(&mut wire);
        }
        let config = DecoderConfig::new(receiver).max_frame_size(1 << 20).allowed_rsv_bits(0b100);
        let mut decoder = FrameDecoder::with_config(config);
        let received = decode_in_pieces(&mut decoder, &wire, &cuts);
        prop_assert_eq!(received, sent);
    }

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        server in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let role = if server { Role::Server } else { Role::Client };
        let mut decoder = FrameDecoder::new(role);
        let mut buf = BytesMut::new();
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        let mut start = 0;
        'feed: for end in ends {
            buf.extend_from_slice(&bytes[start..end]);
            start = end;
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        prop_assert!(frame.payload.len() <= decoder.config().frame_size_limit());
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }
}

/// Frames of every kind up to just over 64 KiB, masked or not whatever the receiving role
/// expects, so that some take the decoder's short path and the rest (64-bit lengths,
/// fragmented, control, RSV bits, masked the wrong way, over a limit) must be left to
/// `decode`.
fn short_frame() -> impl Strategy<Value = Frame> {
    (
        prop_oneof![3 => prop_oneof![Just(OpCode::Text), Just(OpCode::Binary)], 1 => opcode()],
        prop_oneof![3 => Just(true), 1 => Just(false)],
        prop_oneof![3 => Just(false), 1 => Just(true)],
        proptest::option::of(any::<[u8; 4]>()),
        near_the_limits().prop_flat_map(|len| proptest::collection::vec(any::<u8>(), len)),
    )
        .prop_map(|(opcode, fin, rsv1, mask, payload)| {
            let mut frame = Frame::new(opcode, Bytes::from(payload)).with_mask(mask);
            frame.fin = fin || opcode.is_control();
            frame.rsv1 = rsv1 && !opcode.is_control();
            if opcode.is_control() {
                frame.payload.truncate(125);
            }
            frame
        })
}

/// Text frames (and a few others) of every length class, most of them valid UTF-8, with the
/// rest of `short_frame`'s variety: for the whole-text path.
fn text_frame() -> impl Strategy<Value = Frame> {
    (
        prop_oneof![4 => Just(OpCode::Text), 1 => opcode()],
        prop_oneof![4 => Just(true), 1 => Just(false)],
        prop_oneof![4 => Just(false), 1 => Just(true)],
        proptest::option::of(any::<[u8; 4]>()),
        prop_oneof![
            3 => (near_the_limits(), "[a-zé日本𝄞]{0,40}").prop_map(|(len, unit)| {
                // Valid text of about `len` bytes.
                let mut text = unit.repeat(len / unit.len().max(1) + 1);
                while text.len() > len {
                    text.pop();
                }
                text.into_bytes()
            }),
            1 => near_the_limits().prop_flat_map(|len| proptest::collection::vec(any::<u8>(), len)),
            1 => (8180usize..8200).prop_map(|len| "é".repeat(len / 2).into_bytes()),
        ],
    )
        .prop_map(|(opcode, fin, rsv1, mask, payload)| {
            let mut frame = Frame::new(opcode, Bytes::from(payload)).with_mask(mask);
            frame.fin = fin || opcode.is_control();
            frame.rsv1 = rsv1 && !opcode.is_control();
            if opcode.is_control() {
                frame.payload.truncate(125);
            }
            frame
        })
}

/// Lengths and limits close to one another and to where the length field grows (126 bytes,
/// 64 KiB), where an off-by-one would show.
fn near_the_limits() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..8, 4 => 120usize..132, 1 => 65_530usize..65_540]
}

/// `frames` encoded one after the other, then `garbage`.
fn wire_of(frames: &[Frame], garbage: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    for frame in frames {
        frame.encode(&mut buf);
    }
    buf.extend_from_slice(garbage);
    buf
}

/// A server's or a client's decoder with the frame size limit `max_frame`.
fn short_path_decoder(server: bool, max_frame: usize) -> FrameDecoder {
    let role = if server { Role::Server } else { Role::Client };
    FrameDecoder::with_config(DecoderConfig::new(role).max_frame_size(max_frame))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn the_short_path_takes_what_decode_would_or_leaves_the_input_alone(
        frames in proptest::collection::vec(short_frame(), 1..8),
        garbage in proptest::collection::vec(any::<u8>(), 0..8),
        server in any::<bool>(),
        max_frame in prop_oneof![near_the_limits(), Just(1 << 20)],
        max_payload in prop_oneof![near_the_limits(), Just(1 << 20)],
    ) {
        let mut buf = wire_of(&frames, &garbage);
        let mut decoder = short_path_decoder(server, max_frame);
        loop {
            let original = buf.clone();
            let mut short_buf = buf.clone();
            let mut short_decoder = decoder.clone();
            let short = short_decoder.decode_short_data_frame(&mut short_buf, max_payload);
            let general = decoder.decode(&mut buf);
            match short {
                Some((opcode, payload)) => {
                    let frame = general.expect("the short path took a valid frame").expect("whole");
                    prop_assert!(frame.fin && frame.header().rsv_bits() == 0);
                    prop_assert!(matches!(opcode, OpCode::Text | OpCode::Binary));
                    prop_assert_eq!(frame.opcode, opcode);
                    prop_assert_eq!(&frame.payload, &payload);
                    prop_assert!(payload.len() <= 0xffff && payload.len() <= max_payload.min(max_frame));
                    prop_assert_eq!(&short_buf, &buf);
                }
                None => {
                    prop_assert_eq!(&short_buf, &original);
                    match general {
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
    }

    #[test]
    fn a_burst_takes_what_the_short_path_takes_call_after_call(
        frames in proptest::collection::vec(short_frame(), 1..12),
        garbage in proptest::collection::vec(any::<u8>(), 0..8),
        server in any::<bool>(),
        max_frame in prop_oneof![near_the_limits(), Just(1 << 20)],
        max_payload in prop_oneof![near_the_limits(), Just(1 << 20)],
    ) {
        let buf = wire_of(&frames, &garbage);
        let decoder = short_path_decoder(server, max_frame);
        let mut single_buf = buf.clone();
        let mut single_decoder = decoder.clone();
        let mut singles = Vec::new();
        while let Some(message) = single_decoder.decode_short_data_frame(&mut single_buf, max_payload) {
            singles.push(message);
        }
        let mut burst_buf = buf.clone();
        let burst = decoder.clone().decode_short_data_frames(&mut burst_buf, max_payload);
        prop_assert_eq!(burst.is_none(), singles.is_empty());
        let mut burst = burst.unwrap_or_default();
        for single in &singles {
            prop_assert!(!burst.is_empty());
            let taken = burst.next();
            prop_assert_eq!(taken.as_ref(), Some(single));
        }
        prop_assert!(burst.is_empty() && burst.next().is_none());
        prop_assert_eq!(&burst_buf, &single_buf);
    }

    #[test]
    fn the_whole_text_path_takes_what_decode_would_and_validates_like_str(
        frames in proptest::collection::vec(text_frame(), 1..6),
        garbage in proptest::collection::vec(any::<u8>(), 0..8),
        server in any::<bool>(),
        max_frame in prop_oneof![near_the_limits(), Just(1 << 20)],
        max_payload in prop_oneof![near_the_limits(), Just(1 << 20)],
    ) {
        let mut buf = wire_of(&frames, &garbage);
        let mut decoder = short_path_decoder(server, max_frame);
        loop {
            let original = buf.clone();
            let mut text_buf = buf.clone();
            let mut text_decoder = decoder.clone();
            let text = text_decoder.decode_whole_text_frame(&mut text_buf, max_payload);
            let general = decoder.decode(&mut buf);
            match text {
                Some(text) => {
                    let frame = general.expect("the text path took a valid frame").expect("whole");
                    prop_assert!(frame.fin && frame.header().rsv_bits() == 0);
                    prop_assert_eq!(frame.opcode, OpCode::Text);
                    prop_assert!(frame.payload.len() <= max_payload.min(max_frame));
                    match std::str::from_utf8(&frame.payload) {
                        Ok(expected) => {
                            let text = text.unwrap();
                            prop_assert_eq!(text.as_str(), expected);
                        }
                        Err(_) => prop_assert!(text.is_err()),
                    }
                    prop_assert_eq!(&text_buf, &buf);
                }
                None => {
                    prop_assert_eq!(&text_buf, &original);
                    match general {
                        Ok(Some(frame)) => {
                            // Only what the path must leave: not a whole message of its own,
                            // not text, masked the wrong way, or over `max_payload`.
                            let takeable = frame.opcode == OpCode::Text
                                && frame.fin
                                && frame.header().rsv_bits() == 0
                                && frame.payload.len() <= max_payload;
                            prop_assert!(!takeable, "left a frame it should take");
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
    }

    /// Text read in pieces, as a connection takes it: each piece of a data frame in
    /// progress through `unmask_partial_text` (one pass), the first through `decode` and a
    /// plain `feed`. The frames are those `decode` returns from the whole input, exactly
    /// unmasked, and each data frame's verdict is `str`'s.
    #[test]
    fn text_in_pieces_unmasks_like_decode_and_validates_like_str(
        frames in proptest::collection::vec(text_frame(), 1..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        server in any::<bool>(),
    ) {
        let wire = wire_of(&frames, &[]);
        let mut expected = Vec::new();
        let mut all = wire.clone();
        let mut plain = short_path_decoder(server, 1 << 20);
        let whole_failed = loop {
            match plain.decode(&mut all) {
                Ok(Some(frame)) => expected.push(frame),
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        let mut decoder = short_path_decoder(server, 1 << 20);
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        ends.push(wire.len());
        ends.sort_unstable();
        let (mut buf, mut got, mut start) = (BytesMut::new(), Vec::new(), 0);
        let (mut utf8, mut validated, mut valid) = (Utf8Validator::new(), 0, true);
        let mut failed = false;
        'pieces: for end in ends {
            buf.extend_from_slice(&wire[start..end]);
            start = end;
            loop {
                if valid
                    && let Some(done) = decoder.unmask_partial_text(&mut buf, &mut utf8, validated)
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
                                && utf8.feed(&frame.payload[validated..]).and_then(|()| utf8.finish()).is_ok();
                            prop_assert_eq!(verdict, std::str::from_utf8(&frame.payload).is_ok());
                        }
                        got.push(frame);
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
                    Err(_) => {
                        failed = true;
                        break 'pieces;
                    }
                }
            }
        }
        prop_assert_eq!(failed, whole_failed);
        prop_assert_eq!(got, expected);
    }
}
