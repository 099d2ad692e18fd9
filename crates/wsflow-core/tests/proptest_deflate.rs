//! Property tests of permessage-deflate on a connection pair: whatever the messages, the agreed
//! parameters, the fragmentation and however the wire bytes are split into reads, the receiver
//! delivers exactly the messages sent, in order; and no input makes the inflater panic or grow
//! past the message limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Instant;

use bytes::BytesMut;
use proptest::prelude::*;
use support::*;
use wsflow_core::{
    Config, Connection, DeflateConfig, Frame, Message, Negotiated, OpCode, PerMessageDeflate, Role,
};

/// Messages that compress well, badly, or not at all.
fn message() -> impl Strategy<Value = (Message, bool)> {
    let text =
        prop_oneof![".{0,300}", "(abc|hello|, |\"key\": |[0-9]){0,400}",].prop_map(Message::text);
    let binary = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        (any::<u8>(), 0usize..20_000).prop_map(|(byte, len)| vec![byte; len]),
    ]
    .prop_map(Message::binary);
    (prop_oneof![text, binary], proptest::bool::weighted(0.1))
}

fn agreed() -> impl Strategy<Value = DeflateConfig> {
    (
        any::<bool>(),
        any::<bool>(),
        8u8..=15,
        8u8..=15,
        0u32..=9,
        prop_oneof![Just(0usize), 0usize..2000],
    )
        .prop_map(|(snct, cnct, sbits, cbits, level, threshold)| {
            DeflateConfig::new()
                .server_no_context_takeover(snct)
                .client_no_context_takeover(cnct)
                .server_max_window_bits(sbits)
                .client_max_window_bits(cbits)
                .level(level)
                .threshold(threshold)
        })
}

fn pair(agreed: &DeflateConfig, fragment: usize, limit: usize) -> Pair {
    let now = Instant::now();
    let make = |role, config: Config| {
        let negotiated =
            Negotiated::new().extension(Box::new(PerMessageDeflate::new(role, agreed)));
        let config = config
            .fragmentation_threshold(fragment)
            .max_received_message_size(limit);
        Connection::new(role, config, negotiated, BytesMut::new(), now)
    };
    Pair {
        client: make(Role::Client, Config::client()),
        server: make(Role::Server, Config::server()),
        now,
    }
}

fn cut(len: usize, cuts: &[usize]) -> Vec<usize> {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (len + 1)).collect();
    ends.push(len);
    ends.sort_unstable();
    ends
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn compressed_messages_survive_any_read_split(
        sent in proptest::collection::vec(message(), 1..10),
        agreed in agreed(),
        fragment in 1usize..5000,
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        from_client in any::<bool>(),
    ) {
        let mut pair = pair(&agreed, fragment, 1 << 20);
        let (sender, receiver) = if from_client {
            (&mut pair.client, &mut pair.server)
        } else {
            (&mut pair.server, &mut pair.client)
        };
        for (message, plain) in &sent {
            if *plain {
                sender.send_uncompressed(message.clone()).unwrap();
            } else {
                sender.send(message.clone()).unwrap();
            }
        }
        let wire = take_output(sender);
        let mut received = Vec::new();
        let mut start = 0;
        for end in cut(wire.len(), &cuts) {
            receiver.handle_bytes(&wire[start..end], pair.now);
            start = end;
            received.extend(messages(&drain_events(receiver)));
        }
        let expected: Vec<Message> = sent.into_iter().map(|(message, _)| message).collect();
        prop_assert_eq!(received, expected);
        prop_assert!(receiver.is_connected());
    }

    #[test]
    fn arbitrary_compressed_frames_never_panic_or_overgrow(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..6),
        agreed in agreed(),
        limit in 0usize..5000,
    ) {
        let mut pair = pair(&agreed, 1000, limit);
        let count = payloads.len();
        let mut wire = Vec::new();
        for (i, payload) in payloads.into_iter().enumerate() {
            let opcode = if i == 0 { OpCode::Binary } else { OpCode::Continuation };
            let mut frame = Frame::new(opcode, payload).with_fin(i + 1 == count);
            frame.rsv1 = i == 0;
            wire.extend(client_frame(frame));
        }
        pair.server.handle_bytes(&wire, pair.now);
        for message in messages(&drain_events(&mut pair.server)) {
            prop_assert!(message.as_bytes().len() <= limit);
        }
    }
}
