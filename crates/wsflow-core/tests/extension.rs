//! The extension hook, exercised with a toy extension that owns RSV1 and reverses payloads:
//! the connection routes marked messages through it both ways, keeps control frames away from
//! it, and enforces its RSV rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use support::*;
use wsflow_core::{
    Config, Connection, Error, Event, Extension, Frame, Message, Negotiated, OpCode, ProtocolError,
    Role,
};

/// Reverses every payload; marks transformed messages with RSV1.
#[derive(Debug)]
struct Reverse;

impl Extension for Reverse {
    fn rsv_bits(&self) -> u8 {
        0b100
    }

    fn encode(&mut self, payload: Bytes, _is_text: bool) -> Result<(Bytes, u8), String> {
        let mut reversed = payload.to_vec();
        reversed.reverse();
        Ok((reversed.into(), 0b100))
    }

    fn decode(
        &mut self,
        payload: &[u8],
        _fin: bool,
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), ProtocolError> {
        let len = out.len() + payload.len();
        if len > max_len {
            return Err(ProtocolError::MessageTooLarge {
                len: len as u64,
                max: max_len as u64,
            });
        }
        out.extend(payload.iter().rev());
        Ok(())
    }
}

fn pair_with_extension() -> Pair {
    let now = Instant::now();
    let make = |role, config| {
        Connection::new(
            role,
            config,
            Negotiated::new().extension(Box::new(Reverse)),
            BytesMut::new(),
            now,
        )
    };
    Pair {
        client: make(Role::Client, Config::client()),
        server: make(Role::Server, Config::server().max_received_message_size(10)),
        now,
    }
}

#[test]
fn messages_pass_through_the_extension_both_ways() {
    let mut pair = pair_with_extension();
    pair.client.send_text("abc").unwrap();
    let wire = take_output(&mut pair.client);
    let sent = frames(&wire, Role::Server);
    assert!(sent[0].rsv1);
    assert_eq!(&sent[0].payload[..], b"cba");
    pair.server.handle_bytes(&wire, pair.now);
    assert_eq!(
        messages(&drain_events(&mut pair.server)),
        [Message::text("abc")]
    );
}

#[test]
fn senders_can_opt_out_per_message() {
    let mut pair = pair_with_extension();
    pair.client
        .send_uncompressed(Message::binary(vec![1u8, 2]))
        .unwrap();
    let wire = take_output(&mut pair.client);
    assert!(!frames(&wire, Role::Server)[0].rsv1);
    pair.server.handle_bytes(&wire, pair.now);
    assert_eq!(
        messages(&drain_events(&mut pair.server)),
        [Message::binary(vec![1u8, 2])]
    );
}

#[test]
fn the_decoded_size_counts_against_the_message_limit() {
    let mut pair = pair_with_extension();
    pair.client.send_binary(vec![0u8; 11]).unwrap();
    pair.client_to_server();
    let events = drain_events(&mut pair.server);
    assert!(matches!(
        &events[0],
        Event::Error(Error::Protocol(ProtocolError::MessageTooLarge { .. }))
    ));
}

#[test]
fn rsv1_on_control_or_continuation_frames_is_refused() {
    for frame in [
        {
            let mut ping = Frame::new(OpCode::Ping, "x");
            ping.rsv1 = true;
            vec![ping]
        },
        {
            let mut cont = Frame::new(OpCode::Continuation, "b");
            cont.rsv1 = true;
            vec![Frame::new(OpCode::Text, "a").with_fin(false), cont]
        },
    ] {
        let mut pair = pair_with_extension();
        let wire: Vec<u8> = frame.into_iter().flat_map(client_frame).collect();
        pair.server.handle_bytes(&wire, pair.now);
        let events = drain_events(&mut pair.server);
        assert!(matches!(
            &events[0],
            Event::Error(Error::Protocol(ProtocolError::ReservedBitsSet(_)))
        ));
    }
}
