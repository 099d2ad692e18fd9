//! Property test: whatever the messages and however the wire bytes are split into reads, the
//! receiver delivers exactly the messages sent, in order, in both directions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use proptest::prelude::*;
use support::*;
use wsflow_core::{Config, Message};

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ".{0,300}".prop_map(Message::text),
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Message::binary),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn messages_survive_any_read_split(
        sent in proptest::collection::vec(message(), 1..12),
        threshold in 1usize..2000,
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        from_client in any::<bool>(),
    ) {
        let mut pair = Pair::with_configs(
            Config::client().fragmentation_threshold(threshold),
            Config::server().fragmentation_threshold(threshold),
        );
        let (sender, receiver) = if from_client {
            (&mut pair.client, &mut pair.server)
        } else {
            (&mut pair.server, &mut pair.client)
        };
        for message in &sent {
            sender.send(message.clone()).unwrap();
        }
        let wire = take_output(sender);
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        ends.push(wire.len());
        ends.sort_unstable();
        let mut received = Vec::new();
        let mut start = 0;
        for end in ends {
            receiver.handle_bytes(&wire[start..end], pair.now);
            start = end;
            received.extend(messages(&drain_events(receiver)));
        }
        prop_assert_eq!(received, sent);
        prop_assert!(receiver.is_connected());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_server(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut pair = Pair::new();
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        let mut start = 0;
        for end in ends {
            pair.server.handle_bytes(&bytes[start..end], pair.now);
            start = end;
            drain_events(&mut pair.server);
            take_output(&mut pair.server);
        }
        pair.server.handle_eof(pair.now);
        drain_events(&mut pair.server);
    }
}
