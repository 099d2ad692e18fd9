//! permessage-deflate on a live connection pair: messages compress and inflate both ways,
//! fragmented or not, control frames stay untouched, the threshold and the per-message opt-out
//! send plain frames, and a decompression bomb ends the connection with 1009.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Instant;

use bytes::BytesMut;
use support::*;
use wsflow_core::{
    CloseCode, Config, Connection, DeflateConfig, Error, Event, Frame, Message, Negotiated, OpCode,
    PerMessageDeflate, ProtocolError, Role,
};

fn deflate_pair(agreed: &DeflateConfig, client: Config, server: Config) -> Pair {
    let now = Instant::now();
    let make = |role, config| {
        let negotiated = Negotiated::new()
            .extension(Box::new(PerMessageDeflate::new(role, agreed)))
            .extensions(vec!["permessage-deflate".to_owned()]);
        Connection::new(role, config, negotiated, BytesMut::new(), now)
    };
    Pair {
        client: make(Role::Client, client),
        server: make(Role::Server, server),
        now,
    }
}

fn default_pair() -> Pair {
    deflate_pair(
        &DeflateConfig::new().threshold(0),
        Config::client(),
        Config::server(),
    )
}

fn json(len: usize) -> String {
    let mut out = String::new();
    let mut i = 0u32;
    while out.len() < len {
        out.push_str(&format!(
            "{{\"id\":{i},\"name\":\"user-{}\",\"active\":{}}},",
            i * 7919 % 1000,
            i.is_multiple_of(3)
        ));
        i += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn messages_are_compressed_and_inflated_both_ways() {
    let mut pair = default_pair();
    let text = json(10_000);
    pair.client.send_text(text.as_str()).unwrap();
    let wire = take_output(&mut pair.client);
    let sent = frames(&wire, Role::Server);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].rsv1);
    assert!(sent[0].payload.len() < text.len() / 3, "{}", wire.len());
    pair.server.handle_bytes(&wire, pair.now);
    let received = messages(&drain_events(&mut pair.server));
    assert_eq!(received, [Message::text(text.as_str())]);
    assert_eq!(pair.server.extensions(), ["permessage-deflate"]);

    pair.server.send(received[0].clone()).unwrap();
    pair.server.send_binary(vec![0u8; 100_000]).unwrap();
    let wire = take_output(&mut pair.server);
    assert!(frames(&wire, Role::Client).iter().all(|frame| frame.rsv1));
    pair.client.handle_bytes(&wire, pair.now);
    assert_eq!(
        messages(&drain_events(&mut pair.client)),
        [
            Message::text(text.as_str()),
            Message::binary(vec![0u8; 100_000])
        ]
    );
}

#[test]
fn fragmented_messages_carry_rsv1_on_the_first_frame_only() {
    let mut pair = deflate_pair(
        &DeflateConfig::new().threshold(0),
        Config::client().fragmentation_threshold(100),
        Config::server(),
    );
    let text = json(20_000);
    pair.client.send_text(text.as_str()).unwrap();
    let wire = take_output(&mut pair.client);
    let sent = frames(&wire, Role::Server);
    assert!(sent.len() > 3);
    assert!(sent[0].rsv1 && sent[0].opcode == OpCode::Text);
    assert!(
        sent[1..]
            .iter()
            .all(|f| !f.rsv1 && f.opcode == OpCode::Continuation)
    );
    // Delivered a byte at a time, with a ping between two fragments.
    let mut frames_in: Vec<Vec<u8>> = sent.into_iter().map(client_frame).collect();
    frames_in.insert(2, client_frame(Frame::new(OpCode::Ping, "mid")));
    let mut events = Vec::new();
    for byte in frames_in.concat() {
        pair.server.handle_bytes(&[byte], pair.now);
        events.extend(drain_events(&mut pair.server));
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Ping(payload) if &payload[..] == b"mid"))
    );
    assert_eq!(messages(&events), [Message::text(text.as_str())]);
    // The pong went out uncompressed.
    let answer = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].opcode, OpCode::Pong);
    assert!(!answer[0].rsv1);
    assert_eq!(&answer[0].payload[..], b"mid");
}

#[test]
fn control_frames_are_never_compressed() {
    let mut pair = default_pair();
    pair.client.ping(vec![b'p'; 100]).unwrap();
    pair.client.pong("x").unwrap();
    pair.client
        .close(CloseCode::NORMAL, Some("bye bye bye bye"), pair.now)
        .unwrap();
    let wire = take_output(&mut pair.client);
    let sent = frames(&wire, Role::Server);
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|f| !f.rsv1 && f.opcode.is_control()));
    assert_eq!(&sent[2].payload[2..], b"bye bye bye bye");
}

#[test]
fn the_threshold_and_the_opt_out_send_plain_frames() {
    let mut pair = deflate_pair(
        &DeflateConfig::new().threshold(64),
        Config::client(),
        Config::server(),
    );
    pair.client.send_text("short").unwrap();
    pair.client.send_text(json(64)).unwrap();
    pair.client
        .send_uncompressed(Message::text(json(5000)))
        .unwrap();
    let wire = take_output(&mut pair.client);
    let rsv: Vec<bool> = frames(&wire, Role::Server).iter().map(|f| f.rsv1).collect();
    assert_eq!(rsv, [false, true, false]);
    pair.server.handle_bytes(&wire, pair.now);
    assert_eq!(
        messages(&drain_events(&mut pair.server)),
        [
            Message::text("short"),
            Message::text(json(64)),
            Message::text(json(5000))
        ]
    );
}

#[test]
fn context_takeover_on_and_off() {
    for (client_reset, server_reset) in [(false, false), (true, false), (false, true), (true, true)]
    {
        let agreed = DeflateConfig::new()
            .threshold(0)
            .client_no_context_takeover(client_reset)
            .server_no_context_takeover(server_reset);
        let mut pair = deflate_pair(&agreed, Config::client(), Config::server());
        let text = json(3000);
        let mut sizes = Vec::new();
        for _ in 0..3 {
            pair.client.send_text(text.as_str()).unwrap();
            let wire = take_output(&mut pair.client);
            sizes.push(wire.len());
            pair.server.handle_bytes(&wire, pair.now);
            let received = messages(&drain_events(&mut pair.server));
            assert_eq!(received, [Message::text(text.as_str())]);
            pair.server.send(received[0].clone()).unwrap();
            let wire = take_output(&mut pair.server);
            sizes.push(wire.len());
            pair.client.handle_bytes(&wire, pair.now);
            assert_eq!(
                messages(&drain_events(&mut pair.client)),
                [Message::text(text.as_str())]
            );
        }
        // Client sizes at even indexes, server sizes at odd ones.
        let shrinks = |first: usize, later: usize| later * 3 < first;
        assert_eq!(!shrinks(sizes[0], sizes[2]), client_reset, "{sizes:?}");
        assert_eq!(!shrinks(sizes[1], sizes[3]), server_reset, "{sizes:?}");
    }
}

#[test]
fn every_window_size_works_both_ways() {
    for bits in 8..=15 {
        let agreed = DeflateConfig::new()
            .threshold(0)
            .client_max_window_bits(bits)
            .server_max_window_bits(16 + 8 - bits);
        let mut pair = deflate_pair(&agreed, Config::client(), Config::server());
        let text = json(50_000);
        pair.client.send_text(text.as_str()).unwrap();
        pair.client_to_server();
        let received = messages(&drain_events(&mut pair.server));
        assert_eq!(received, [Message::text(text.as_str())], "{bits} bits");
        pair.server.send(received[0].clone()).unwrap();
        pair.server_to_client();
        assert_eq!(
            messages(&drain_events(&mut pair.client)),
            [Message::text(text.as_str())]
        );
    }
}

#[test]
fn a_decompression_bomb_closes_with_1009() {
    let limit = 100_000;
    let mut pair = deflate_pair(
        &DeflateConfig::new(),
        Config::client(),
        Config::server().max_received_message_size(limit),
    );
    // 64 MiB of zeros, about 64 KiB on the wire, in 4 KiB fragments.
    let mut bomb = PerMessageDeflate::new(Role::Client, &DeflateConfig::new());
    let (payload, _) =
        wsflow_core::Extension::encode(&mut bomb, bytes::Bytes::from(vec![0u8; 64 << 20]), false)
            .unwrap();
    assert!(payload.len() < 80_000, "{}", payload.len());
    let chunks: Vec<&[u8]> = payload.chunks(4096).collect();
    let mut wire = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Binary
        } else {
            OpCode::Continuation
        };
        let mut frame = Frame::new(opcode, chunk.to_vec()).with_fin(i + 1 == chunks.len());
        frame.rsv1 = i == 0;
        wire.extend(client_frame(frame));
    }
    pair.server.handle_bytes(&wire, pair.now);
    let events = drain_events(&mut pair.server);
    assert!(
        matches!(
            &events[0],
            Event::Error(Error::Protocol(ProtocolError::MessageTooLarge { len, max }))
                if *max == limit as u64 && *len == limit as u64 + 1
        ),
        "{events:?}"
    );
    let close = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(close[0].opcode, OpCode::Close);
    assert_eq!(&close[0].payload[..2], &1009u16.to_be_bytes());
}

#[test]
fn a_message_at_the_limit_passes_and_one_past_it_fails() {
    let limit = 10_000;
    for (len, ok) in [(limit, true), (limit + 1, false)] {
        let mut pair = deflate_pair(
            &DeflateConfig::new().threshold(0),
            Config::client(),
            Config::server().max_received_message_size(limit),
        );
        pair.client.send_binary(vec![9u8; len]).unwrap();
        pair.client_to_server();
        let events = drain_events(&mut pair.server);
        if ok {
            assert_eq!(messages(&events), [Message::binary(vec![9u8; len])]);
        } else {
            assert!(matches!(
                &events[0],
                Event::Error(Error::Protocol(ProtocolError::MessageTooLarge { .. }))
            ));
        }
    }
}

#[test]
fn invalid_text_and_invalid_data_fail_the_connection() {
    // Compressed invalid UTF-8: 1007.
    let mut pair = default_pair();
    let mut deflate = PerMessageDeflate::new(Role::Client, &DeflateConfig::new().threshold(0));
    let (payload, _) = wsflow_core::Extension::encode(
        &mut deflate,
        bytes::Bytes::from_static(b"ok \xff not"),
        true,
    )
    .unwrap();
    let mut frame = Frame::new(OpCode::Text, payload);
    frame.rsv1 = true;
    pair.server.handle_bytes(&client_frame(frame), pair.now);
    let events = drain_events(&mut pair.server);
    assert!(matches!(
        &events[0],
        Event::Error(Error::Protocol(ProtocolError::InvalidUtf8))
    ));
    // Bytes that are not DEFLATE: 1007, as Node's `ws` answers (1002 before stop 34).
    let mut pair = default_pair();
    let mut frame = Frame::new(OpCode::Binary, vec![0xffu8; 10]);
    frame.rsv1 = true;
    pair.server.handle_bytes(&client_frame(frame), pair.now);
    let events = drain_events(&mut pair.server);
    assert!(
        matches!(
            &events[0],
            Event::Error(Error::Protocol(ProtocolError::InvalidCompressedData(_)))
        ),
        "{events:?}"
    );
    let close = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(&close[0].payload[..2], &1007u16.to_be_bytes());
}

#[test]
fn without_the_extension_rsv1_is_refused() {
    let mut pair = Pair::new();
    let mut frame = Frame::new(OpCode::Text, vec![0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    frame.rsv1 = true;
    pair.server.handle_bytes(&client_frame(frame), pair.now);
    let events = drain_events(&mut pair.server);
    assert!(matches!(
        &events[0],
        Event::Error(Error::Protocol(ProtocolError::ReservedBitsSet(0b100)))
    ));
}

#[test]
fn the_rfc_7692_hello_arrives() {
    // Section 7.2.3.1, and 7.2.3.4: the same text in a final block (BFINAL) followed by the
    // header byte of the empty stored block whose `00 00 ff ff` the sender removed.
    for payload in [
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00][..],
        &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
    ] {
        let mut pair = default_pair();
        let mut frame = Frame::new(OpCode::Text, payload.to_vec());
        frame.rsv1 = true;
        pair.server.handle_bytes(&client_frame(frame), pair.now);
        assert_eq!(
            messages(&drain_events(&mut pair.server)),
            [Message::text("Hello")],
            "{payload:x?}"
        );
        assert!(!pair.server.is_closed());
    }
}

/// Empty stored blocks inflate to nothing: a message made of them never reaches the limit on
/// what it inflates to, so its compressed bytes are limited too (a quarter and 64 KiB above
/// the message limit), where before it could go on for 65,536 fragments of 64 KiB.
#[test]
fn a_compressed_message_of_empty_blocks_is_cut_off_near_the_message_limit() {
    let mut pair = default_pair();
    let limit = pair.server.config().get_max_received_message_size();
    let empty_blocks = [0x00, 0x00, 0x00, 0xff, 0xff].repeat(13_000);
    let mut sent = 0;
    let mut error = None;
    for at in 0.. {
        let opcode = if at == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        let mut frame = Frame::new(opcode, empty_blocks.clone()).with_fin(false);
        frame.rsv1 = at == 0;
        pair.server.handle_bytes(&client_frame(frame), pair.now);
        sent += empty_blocks.len();
        let events = drain_events(&mut pair.server);
        assert!(messages(&events).is_empty());
        error = events.into_iter().find_map(|event| match event {
            Event::Error(error) => Some(error),
            _ => None,
        });
        if error.is_some() {
            break;
        }
        assert!(
            sent <= 2 * limit,
            "{sent} compressed bytes taken, none inflated"
        );
    }
    assert!(
        matches!(
            error,
            Some(Error::Protocol(ProtocolError::MessageTooLarge { .. }))
        ),
        "{error:?}"
    );
    assert_eq!(
        pair.server.close_reason_code(),
        Some(CloseCode::MESSAGE_TOO_BIG)
    );
    assert!(
        sent > limit + limit / 4 + 64 * 1024,
        "cut off at {sent} bytes"
    );
}
