//! Property tests: frames survive encode/decode for any split of the wire bytes, in both
//! roles, and the decoder never panics on arbitrary input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use wsflow_codec::{DecoderConfig, Frame, FrameDecoder, OpCode, Role};

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
