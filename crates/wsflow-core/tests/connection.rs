//! The connection core, driven deterministically: an in-memory client/server pair and a
//! manual clock. Every event, option and close path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use support::*;
use wsflow_core::{
    CloseCode, CloseInitiator, Config, Connection, ConnectionState, Error, Event, Frame, Message,
    Negotiated, OpCode, ProtocolError, Role,
};

#[test]
fn messages_flow_both_ways() {
    let mut pair = Pair::new();
    pair.client.send_text("hello").unwrap();
    pair.client.send_binary(vec![1u8, 2, 3]).unwrap();
    pair.server.send("from server").unwrap();
    pair.server.send(Bytes::from_static(b"\x00\xff")).unwrap();
    let (client_events, server_events) = pair.run();
    assert_eq!(
        messages(&server_events),
        [Message::text("hello"), Message::binary(vec![1u8, 2, 3])]
    );
    assert_eq!(
        messages(&client_events),
        [
            Message::text("from server"),
            Message::binary(vec![0u8, 0xff])
        ]
    );
}

#[test]
fn outgoing_messages_are_fragmented_at_the_threshold() {
    let mut pair = Pair::with_configs(
        Config::client().fragmentation_threshold(1000),
        Config::server().fragmentation_threshold(1000),
    );
    let text = "é".repeat(1250); // 2500 bytes: a code point straddles every fragment edge
    pair.server.send_text(text.as_str()).unwrap();
    let wire = take_output(&mut pair.server);
    let sent = frames(&wire, Role::Client);
    // ceil(2500 / 1000) frames, the first with the real opcode.
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].opcode, OpCode::Text);
    assert!(sent[1..].iter().all(|f| f.opcode == OpCode::Continuation));
    assert_eq!(
        sent.iter().map(|f| f.fin).collect::<Vec<_>>(),
        [false, false, true]
    );
    pair.client.handle_bytes(&wire, pair.now);
    assert_eq!(
        messages(&drain_events(&mut pair.client)),
        [Message::text(text.as_str())]
    );

    // With fragmentation off the same message is one frame.
    let mut pair = Pair::with_configs(
        Config::client(),
        Config::server()
            .fragmentation_threshold(1000)
            .fragment_outgoing_messages(false),
    );
    pair.server.send_text(text.as_str()).unwrap();
    assert_eq!(
        frames(&take_output(&mut pair.server), Role::Client).len(),
        1
    );
}

#[test]
fn client_frames_are_masked_and_server_frames_are_not() {
    let mut pair = Pair::new();
    pair.client.send_text("a").unwrap();
    pair.server.send_text("b").unwrap();
    let from_client = frames(&take_output(&mut pair.client), Role::Server);
    let from_server = frames(&take_output(&mut pair.server), Role::Client);
    assert!(from_client[0].mask.is_some());
    assert!(from_server[0].mask.is_none());
}

#[test]
fn pings_are_answered_with_the_same_payload() {
    let mut pair = Pair::new();
    pair.client
        .ping(Bytes::from_static(b"are you there"))
        .unwrap();
    pair.client_to_server();
    let events = drain_events(&mut pair.server);
    assert!(matches!(&events[..], [Event::Ping(p)] if &p[..] == b"are you there"));
    pair.server_to_client();
    let events = drain_events(&mut pair.client);
    assert!(matches!(&events[..], [Event::Pong(p)] if &p[..] == b"are you there"));
}

#[test]
fn a_cancelled_pong_is_never_sent() {
    let mut pair = Pair::new();
    pair.client.ping(Bytes::from_static(b"x")).unwrap();
    pair.client_to_server();
    assert!(matches!(pair.server.poll_event(), Some(Event::Ping(_))));
    assert!(pair.server.cancel_pong());
    assert!(pair.server.poll_event().is_none());
    assert!(pair.server.poll_transmit().is_none());
    // The application may answer by hand.
    pair.server.pong(Bytes::from_static(b"manual")).unwrap();
    pair.server_to_client();
    assert!(matches!(pair.client.poll_event(), Some(Event::Pong(p)) if &p[..] == b"manual"));
}

#[test]
fn auto_pong_can_be_turned_off() {
    let mut pair = Pair::with_configs(Config::client(), Config::server().auto_pong(false));
    pair.client.ping(Bytes::new()).unwrap();
    pair.client_to_server();
    assert!(matches!(pair.server.poll_event(), Some(Event::Ping(_))));
    assert!(pair.server.poll_transmit().is_none());
}

#[test]
fn every_ping_of_a_burst_is_answered_in_order() {
    let mut pair = Pair::new();
    for i in 0..3u8 {
        pair.client.ping(vec![i]).unwrap();
    }
    pair.client_to_server();
    drain_events(&mut pair.server);
    let pongs = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(
        pongs
            .iter()
            .map(|f| (f.opcode, f.payload[0]))
            .collect::<Vec<_>>(),
        [(OpCode::Pong, 0), (OpCode::Pong, 1), (OpCode::Pong, 2)]
    );
}

#[test]
fn a_peer_that_pings_without_reading_gets_only_its_latest_ping_answered_past_the_mark() {
    let hwm = 1000;
    let mut pair = Pair::with_configs(Config::client(), Config::server().send_high_water_mark(hwm));
    let payload = |i: u32| format!("{i:0125}");
    for i in 0..100 {
        pair.client.ping(payload(i)).unwrap();
    }
    pair.client_to_server();
    // The server reads every ping, but nothing it queues is written.
    let events = drain_events(&mut pair.server);
    assert_eq!(events.len(), 100);
    assert!(pair.server.is_output_buffer_full());
    assert!(
        pair.server.buffered_amount() <= hwm + 127,
        "{} bytes of pongs queued",
        pair.server.buffered_amount()
    );
    // Once the peer reads, the pongs queued below the mark go out, then the latest.
    let pongs = frames_until_drained(&mut pair.server);
    assert!(pongs.iter().all(|frame| frame.opcode == OpCode::Pong));
    assert!(pongs.len() < 100, "{} pongs", pongs.len());
    let answered: Vec<_> = pongs.iter().map(|frame| frame.payload.clone()).collect();
    assert_eq!(answered.last().unwrap(), payload(99).as_bytes());
    // Below the mark again, every ping is answered.
    pair.client.ping("again").unwrap();
    pair.client.ping("and again").unwrap();
    pair.client_to_server();
    drain_events(&mut pair.server);
    let pongs = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(pongs.len(), 2);
}

#[test]
fn pings_and_pongs_sent_past_the_mark_are_held_and_only_the_latest_goes() {
    let hwm = 1000;
    let mut pair = Pair::with_configs(
        Config::client(),
        Config::server().send_high_water_mark(hwm).auto_pong(false),
    );
    pair.server.send_binary(vec![7u8; 2000]).unwrap();
    assert!(pair.server.is_output_buffer_full());
    let queued = pair.server.buffered_amount();
    for i in 0..1000 {
        pair.server.ping(format!("ping {i}")).unwrap();
        pair.server.pong(format!("pong {i}")).unwrap();
    }
    // A heartbeat to a peer that does not read grows nothing.
    assert_eq!(pair.server.buffered_amount(), queued);
    assert!(pair.server.has_transmit());
    // No ping came: there is no automatic pong to cancel, and the held pong stays.
    assert!(!pair.server.cancel_pong());
    pair.server.pong("pong last").unwrap();
    // The peer reads: the message, then the latest pong and the latest ping.
    let sent = frames_until_drained(&mut pair.server);
    let sent: Vec<_> = sent
        .iter()
        .map(|frame| (frame.opcode, frame.payload.clone()))
        .collect();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0].0, OpCode::Binary);
    assert_eq!(
        (sent[1].0, &sent[1].1[..]),
        (OpCode::Pong, &b"pong last"[..])
    );
    assert_eq!(
        (sent[2].0, &sent[2].1[..]),
        (OpCode::Ping, &b"ping 999"[..])
    );
    // Below the mark they go at once, each of them.
    pair.server.ping("a").unwrap();
    pair.server.ping("b").unwrap();
    assert_eq!(
        frames(&take_output(&mut pair.server), Role::Client).len(),
        2
    );
    // The automatic answer to the peer's latest ping is held apart: a pong the application
    // sends does not replace it, and cancelling it leaves the application's.
    let mut pair = Pair::with_configs(Config::client(), Config::server().send_high_water_mark(hwm));
    pair.server.send_binary(vec![7u8; 2000]).unwrap();
    for (ping, pong) in [("A", "hb 1"), ("B", "hb 2")] {
        pair.client.ping(ping).unwrap();
        pair.client_to_server();
        drain_events(&mut pair.server);
        pair.server.pong(pong).unwrap();
    }
    let sent = frames_until_drained(&mut pair.server);
    let pongs: Vec<&[u8]> = sent[1..].iter().map(|frame| &frame.payload[..]).collect();
    assert_eq!(pongs, [&b"B"[..], &b"hb 2"[..]]);
    pair.server.send_binary(vec![7u8; 2000]).unwrap();
    pair.client.ping("C").unwrap();
    pair.client_to_server();
    drain_events(&mut pair.server);
    pair.server.pong("hb 3").unwrap();
    assert!(pair.server.cancel_pong());
    let sent = frames_until_drained(&mut pair.server);
    let pongs: Vec<&[u8]> = sent[1..].iter().map(|frame| &frame.payload[..]).collect();
    assert_eq!(pongs, [&b"hb 3"[..]]);
    // A close drops what is held.
    pair.server.send_binary(vec![7u8; 2000]).unwrap();
    pair.server.ping("moot").unwrap();
    pair.server
        .close(CloseCode::NORMAL, None, std::time::Instant::now())
        .unwrap();
    let sent = frames_until_drained(&mut pair.server);
    let opcodes: Vec<_> = sent.iter().map(|frame| frame.opcode).collect();
    assert_eq!(opcodes, [OpCode::Binary, OpCode::Close]);
}

#[test]
fn control_payloads_over_125_bytes_are_caller_errors() {
    let mut pair = Pair::new();
    assert!(matches!(
        pair.client.ping(vec![0u8; 126]),
        Err(Error::ControlPayloadTooLong { len: 126 })
    ));
    assert!(matches!(
        pair.client.pong(vec![0u8; 200]),
        Err(Error::ControlPayloadTooLong { len: 200 })
    ));
    pair.client.ping(vec![0u8; 125]).unwrap();
    assert!(pair.client.is_connected());
}

#[test]
fn close_initiated_by_the_client_completes_cleanly() {
    let mut pair = Pair::new();
    assert_eq!(pair.client.close_reason_code(), None);
    pair.client
        .close(CloseCode::NORMAL, Some("done"), pair.now)
        .unwrap();
    assert_eq!(pair.client.state(), ConnectionState::Ending);
    assert!(!pair.client.is_connected());
    assert!(matches!(
        pair.client.send_text("late"),
        Err(Error::NotOpen(ConnectionState::Ending))
    ));

    pair.client_to_server();
    let server_events = drain_events(&mut pair.server);
    assert!(server_events.is_empty(), "{server_events:?}");
    assert_eq!(pair.server.state(), ConnectionState::PeerRequestedClose);
    assert_eq!(pair.server.close_reason_code(), Some(CloseCode::NORMAL));
    assert_eq!(pair.server.close_description(), Some("done"));

    // The server echoes the code, then shuts its write half down.
    let reply = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0].close_status(), Some(CloseCode::NORMAL));
    assert!(pair.server.poll_shutdown());
    assert!(!pair.server.poll_shutdown(), "shutdown is requested once");

    let mut wire = BytesMut::new();
    reply[0].encode(&mut wire);
    pair.client.handle_bytes(&wire, pair.now);
    assert!(drain_events(&mut pair.client).is_empty());
    // The client waits for the server to end the TCP connection.
    assert!(!pair.client.poll_shutdown());
    pair.client.handle_eof(pair.now);
    let close = closed(&drain_events(&mut pair.client)).unwrap();
    assert_eq!(close.code, CloseCode::NORMAL);
    assert_eq!(close.description, "done");
    assert!(close.was_clean);
    assert_eq!(close.initiator, CloseInitiator::Local);
    assert!(pair.client.is_closed());

    pair.server.handle_eof(pair.now);
    let close = closed(&drain_events(&mut pair.server)).unwrap();
    assert_eq!(close.code, CloseCode::NORMAL);
    assert_eq!(close.initiator, CloseInitiator::Peer);
    assert!(close.was_clean);
    assert_eq!(pair.server.state(), ConnectionState::Closed);
}

#[test]
fn close_without_description_uses_the_default_one_and_empty_string_sends_none() {
    let mut pair = Pair::new();
    pair.server
        .close(CloseCode::GOING_AWAY, None, pair.now)
        .unwrap();
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(&sent[0].payload[2..], b"Remote peer is going away");

    let mut pair = Pair::new();
    pair.server
        .close(CloseCode::from(4000), Some(""), pair.now)
        .unwrap();
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(&sent[0].payload[..], &4000u16.to_be_bytes());
}

#[test]
fn close_refuses_bad_codes_and_long_reasons() {
    let mut pair = Pair::new();
    assert!(matches!(
        pair.client.close(CloseCode::ABNORMAL, None, pair.now),
        Err(Error::InvalidCloseCode(1006))
    ));
    let long = "x".repeat(124);
    assert!(matches!(
        pair.client.close(CloseCode::NORMAL, Some(&long), pair.now),
        Err(Error::CloseReasonTooLong { len: 124 })
    ));
    assert!(pair.client.is_connected());
}

#[test]
fn close_times_out_when_the_peer_never_answers() {
    let mut pair = Pair::new();
    pair.server
        .close(CloseCode::NORMAL, None, pair.now)
        .unwrap();
    take_output(&mut pair.server); // the client never sees it
    assert_eq!(
        pair.server.poll_timeout(),
        Some(pair.now + Duration::from_secs(5))
    );
    pair.advance(Duration::from_millis(4999));
    assert!(!pair.server.is_closed());
    pair.advance(Duration::from_millis(1));
    let close = closed(&drain_events(&mut pair.server)).unwrap();
    assert_eq!(close.code, CloseCode::ABNORMAL);
    assert!(!close.was_clean);
    assert!(pair.server.is_closed());
    assert_eq!(pair.server.poll_timeout(), None);
}

#[test]
fn lingering_after_the_handshake_is_bounded_by_the_close_timeout() {
    let mut pair = Pair::new();
    pair.server
        .close(CloseCode::NORMAL, None, pair.now)
        .unwrap();
    pair.server_to_client();
    drain_events(&mut pair.client);
    pair.client_to_server();
    drain_events(&mut pair.server);
    assert!(pair.server.poll_shutdown());
    pair.advance(Duration::from_millis(4999));
    assert!(!pair.server.is_closed() && !pair.client.is_closed());
    // The client never closes TCP; the server gives up after the close timeout.
    pair.advance(Duration::from_millis(1));
    let close = closed(&drain_events(&mut pair.server)).unwrap();
    assert!(close.was_clean);
    assert_eq!(close.code, CloseCode::NORMAL);
    // Same for the client, which waits for the server's end of file that never came.
    assert!(closed(&drain_events(&mut pair.client)).unwrap().was_clean);
}

#[test]
fn empty_close_frame_is_reported_as_1005_and_answered_empty() {
    let mut pair = Pair::new();
    pair.server.handle_bytes(
        &client_frame(Frame::new(OpCode::Close, Bytes::new())),
        pair.now,
    );
    drain_events(&mut pair.server);
    assert_eq!(
        pair.server.close_reason_code(),
        Some(CloseCode::NOT_PROVIDED)
    );
    assert_eq!(pair.server.close_description(), Some("Reason not provided"));
    let reply = frames(&take_output(&mut pair.server), Role::Client);
    assert!(reply[0].payload.is_empty());
}

#[test]
fn peer_close_code_is_echoed() {
    let mut pair = Pair::new();
    pair.server.handle_bytes(
        &client_frame(Frame::close(CloseCode::from(3001), "app reason").unwrap()),
        pair.now,
    );
    drain_events(&mut pair.server);
    let reply = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(reply[0].close_status(), Some(CloseCode::from(3001)));
    assert_eq!(pair.server.close_description(), Some("app reason"));
}

#[test]
fn drop_connection_sends_close_and_ends_without_waiting() {
    let mut pair = Pair::new();
    pair.server
        .drop_connection(CloseCode::PROTOCOL_ERROR, None, pair.now)
        .unwrap();
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(sent[0].close_status(), Some(CloseCode::PROTOCOL_ERROR));
    assert!(pair.server.poll_shutdown());
    pair.server.handle_eof(pair.now);
    let close = closed(&drain_events(&mut pair.server)).unwrap();
    assert_eq!(close.code, CloseCode::PROTOCOL_ERROR);
    assert_eq!(close.description, "Protocol error");
    assert!(!close.was_clean);
}

#[test]
fn keepalive_pings_an_idle_peer_and_drops_a_silent_one() {
    let mut pair = Pair::new(); // servers keep alive by default: 20 s interval, 10 s grace
    assert_eq!(
        pair.server.poll_timeout(),
        Some(pair.now + Duration::from_secs(20))
    );
    pair.advance(Duration::from_secs(20));
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].opcode, OpCode::Ping);
    assert!(sent[0].payload.is_empty());
    pair.advance(Duration::from_secs(9));
    assert!(pair.server.is_connected());
    pair.advance(Duration::from_secs(1));
    let close = closed(&drain_events(&mut pair.server)).unwrap();
    assert_eq!(close.code, CloseCode::ABNORMAL);
    assert_eq!(close.description, "Peer not responding.");
    // No close frame is sent when dropping for keepalive.
    assert!(pair.server.poll_transmit().is_none());
}

// A timeout of `Duration::MAX` means "never": no instant arithmetic overflows (it panicked
// in `poll_timeout` and `handle_timeout` before).
#[test]
fn timeouts_of_duration_max_never_fire_and_never_panic() {
    for drop in [true, false] {
        let never = Config::server()
            .keepalive_interval(Duration::MAX)
            .keepalive_grace_period(Duration::MAX)
            .close_timeout(Duration::MAX)
            .drop_connection_on_keepalive_timeout(drop);
        let mut pair = Pair::with_configs(Config::client().close_timeout(Duration::MAX), never);
        let far = pair.server.poll_timeout().unwrap();
        assert!(far > pair.now + Duration::from_secs(50 * 365 * 24 * 3600));
        pair.advance(Duration::from_secs(365 * 24 * 3600));
        assert!(pair.server.is_connected());
        assert!(pair.server.poll_transmit().is_none(), "no keepalive ping");
        // The close handshake's deadline, for a peer that never answers.
        pair.server
            .close(CloseCode::NORMAL, None, pair.now)
            .unwrap();
        assert!(pair.server.poll_timeout().unwrap() > pair.now + Duration::from_secs(3600));
        pair.advance(Duration::from_secs(365 * 24 * 3600));
        assert!(!pair.server.is_closed());
        let (_, server_events) = pair.run();
        assert_eq!(closed(&server_events).unwrap().code, CloseCode::NORMAL);
    }
}

#[test]
fn any_incoming_byte_resets_the_keepalive() {
    let mut pair = Pair::new();
    pair.advance(Duration::from_secs(20));
    pair.server_to_client(); // ping
    drain_events(&mut pair.client);
    pair.advance(Duration::from_secs(5));
    pair.client_to_server(); // pong
    drain_events(&mut pair.server);
    pair.advance(Duration::from_secs(10));
    assert!(pair.server.is_connected());
    assert_eq!(
        pair.server.poll_timeout(),
        Some(pair.now + Duration::from_secs(10))
    );
}

#[test]
fn the_keepalive_deadline_holds_to_the_nanosecond_across_timeouts_that_do_not_fire() {
    let mut pair = Pair::new();
    let start = pair.now;
    let deadline = start + Duration::from_secs(20);
    for step in [1_500_000_000, 5_623_456_789, 1, 12_876_543_209] {
        pair.advance(Duration::from_nanos(step));
        assert_eq!(pair.server.poll_timeout(), Some(deadline));
    }
    assert_eq!(pair.now, deadline - Duration::from_nanos(1));
    assert!(take_output(&mut pair.server).is_empty());
    pair.advance(Duration::from_nanos(1));
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(sent[0].opcode, OpCode::Ping);
    // The grace period runs from the ping, through timeouts that do not end it.
    pair.advance(Duration::from_millis(2_345));
    assert_eq!(
        pair.server.poll_timeout(),
        Some(deadline + Duration::from_secs(10))
    );
    // Time passed in going backwards, before the ping: the wait restarts there, no panic.
    pair.server.handle_timeout(start);
    assert_eq!(
        pair.server.poll_timeout(),
        Some(start + Duration::from_secs(10))
    );
    assert!(pair.server.is_connected());
}

#[test]
fn the_close_deadlines_hold_to_the_nanosecond_through_input_and_time_going_backwards() {
    let mut pair = Pair::new();
    let start = pair.now;
    pair.server.close(CloseCode::NORMAL, None, start).unwrap();
    let deadline = start + Duration::from_secs(5);
    assert_eq!(pair.server.poll_timeout(), Some(deadline));
    // Timeouts that do not fire, a message read while the close is awaited, and time passed
    // in going backwards leave the deadline where it was.
    for step in [1_500_000_000, 623_456_789, 1] {
        pair.advance(Duration::from_nanos(step));
        assert_eq!(pair.server.poll_timeout(), Some(deadline));
    }
    pair.server.handle_bytes(
        &client_frame(Frame::new(OpCode::Text, "late")),
        pair.now + Duration::from_nanos(7),
    );
    assert_eq!(pair.server.poll_timeout(), Some(deadline));
    pair.server.handle_timeout(start);
    assert_eq!(pair.server.poll_timeout(), Some(deadline));
    // The peer taking output moves it: the close timeout counts from there.
    let progress = start + Duration::from_nanos(3_000_000_001);
    pair.server.handle_write_progress(progress);
    let deadline = progress + Duration::from_secs(5);
    assert_eq!(pair.server.poll_timeout(), Some(deadline));
    pair.server
        .handle_timeout(deadline - Duration::from_nanos(1));
    assert_eq!(pair.server.state(), ConnectionState::Ending);
    pair.server.handle_timeout(deadline);
    assert_eq!(pair.server.state(), ConnectionState::Closed);
    // Tearing down: the drain has its own close timeout, from the end of the handshake.
    let mut pair = Pair::new();
    let start = pair.now;
    pair.server.handle_bytes(
        &client_frame(Frame::close(CloseCode::NORMAL, "bye").unwrap()),
        start + Duration::from_nanos(11),
    );
    drain_events(&mut pair.server);
    let deadline = start + Duration::from_nanos(11) + Duration::from_secs(5);
    assert_eq!(pair.server.poll_timeout(), Some(deadline));
    pair.server.handle_timeout(start);
    assert_eq!(pair.server.poll_timeout(), Some(deadline));
    pair.server
        .handle_timeout(deadline - Duration::from_nanos(1));
    assert!(!pair.server.is_closed());
    pair.server.handle_timeout(deadline);
    assert!(pair.server.is_closed());
}

#[test]
fn keepalive_without_drop_keeps_pinging() {
    let mut pair = Pair::with_configs(
        Config::client(),
        Config::server().drop_connection_on_keepalive_timeout(false),
    );
    for _ in 0..3 {
        pair.advance(Duration::from_secs(20));
        let sent = frames(&take_output(&mut pair.server), Role::Client);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].opcode, OpCode::Ping);
    }
    assert!(pair.server.is_connected());
}

#[test]
fn clients_do_not_keep_alive_by_default() {
    let pair = Pair::new();
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn fragments_are_delivered_as_frames_when_assembly_is_off() {
    let mut pair = Pair::with_configs(Config::client(), Config::server().assemble_fragments(false));
    let mut wire = Vec::new();
    wire.extend(client_frame(
        Frame::new(OpCode::Text, "Hel").with_fin(false),
    ));
    wire.extend(client_frame(Frame::new(OpCode::Ping, "p")));
    wire.extend(client_frame(Frame::new(OpCode::Continuation, "lo")));
    pair.server.handle_bytes(&wire, pair.now);
    let events = drain_events(&mut pair.server);
    let kinds: Vec<String> = events
        .iter()
        .map(|event| match event {
            Event::Frame(frame) => format!("frame {:?} {}", frame.opcode, frame.fin),
            Event::Ping(_) => "ping".to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "frame Text false",
            "frame Ping true",
            "ping",
            "frame Continuation true"
        ]
    );
}

#[test]
fn control_frames_are_handled_in_the_middle_of_a_fragmented_message() {
    let mut pair = Pair::new();
    let mut wire = Vec::new();
    wire.extend(client_frame(
        Frame::new(OpCode::Binary, vec![1u8]).with_fin(false),
    ));
    wire.extend(client_frame(Frame::new(OpCode::Ping, "mid")));
    wire.extend(client_frame(
        Frame::new(OpCode::Continuation, vec![2u8]).with_fin(false),
    ));
    wire.extend(client_frame(Frame::new(OpCode::Pong, "x")));
    wire.extend(client_frame(Frame::new(OpCode::Continuation, vec![3u8])));
    pair.server.handle_bytes(&wire, pair.now);
    let events = drain_events(&mut pair.server);
    assert!(matches!(&events[0], Event::Ping(p) if &p[..] == b"mid"));
    assert!(matches!(&events[1], Event::Pong(_)));
    assert_eq!(messages(&events), [Message::binary(vec![1u8, 2, 3])]);
}

#[test]
fn a_message_in_progress_survives_giving_the_read_buffer_back_and_its_box_serves_the_next() {
    let mut pair = Pair::new();
    for round in 0..3u8 {
        let first = client_frame(Frame::new(OpCode::Text, "Hel").with_fin(false));
        pair.server.handle_bytes(&first, pair.now);
        assert!(drain_events(&mut pair.server).is_empty());
        // Quiet between the fragments: the buffer goes, the message in progress stays.
        assert!(pair.server.release_read_buffer());
        let mut rest = client_frame(Frame::new(OpCode::Ping, vec![round]));
        rest.extend(client_frame(Frame::new(OpCode::Continuation, "lo")));
        pair.server.handle_bytes(&rest, pair.now);
        let events = drain_events(&mut pair.server);
        assert_eq!(messages(&events), [Message::text("Hello")], "round {round}");
        assert!(pair.server.is_connected());
    }
    // With the box kept but no message in progress, a continuation is still refused.
    let stray = client_frame(Frame::new(OpCode::Continuation, "x"));
    pair.server.handle_bytes(&stray, pair.now);
    let events = drain_events(&mut pair.server);
    assert!(
        events.iter().any(|event| matches!(
            event,
            Event::Error(Error::Protocol(ProtocolError::UnexpectedContinuation))
        )),
        "{events:?}"
    );
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(
        sent.last().unwrap().close_status(),
        Some(CloseCode::PROTOCOL_ERROR)
    );
}

/// Feeds raw client bytes to a fresh server and returns the error, the close frame it sent and
/// its close event.
fn server_violation(
    config: Config,
    wire: &[u8],
) -> (ProtocolError, CloseCode, wsflow_core::CloseEvent) {
    let mut pair = Pair::with_configs(Config::client(), config);
    pair.server.handle_bytes(wire, pair.now);
    let events = drain_events(&mut pair.server);
    let Some(Event::Error(Error::Protocol(err))) =
        events.into_iter().find(|e| matches!(e, Event::Error(_)))
    else {
        panic!("no protocol error");
    };
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    let code = sent.last().unwrap().close_status().unwrap();
    assert!(pair.server.poll_shutdown());
    pair.server.handle_eof(pair.now);
    let close = closed(&drain_events(&mut pair.server)).unwrap();
    (err, code, close)
}

#[test]
fn protocol_violations_close_with_the_right_code() {
    let unmasked = {
        let mut wire = BytesMut::new();
        Frame::new(OpCode::Text, "x").encode(&mut wire);
        wire.to_vec()
    };
    let mut rsv = Frame::new(OpCode::Text, "x");
    rsv.rsv2 = true;
    let cases: Vec<(Vec<u8>, ProtocolError, u16)> = vec![
        (unmasked, ProtocolError::UnmaskedClientFrame, 1002),
        (
            vec![0x83, 0x80, 0, 0, 0, 0],
            ProtocolError::ReservedOpcode(3),
            1002,
        ),
        (
            client_frame(rsv),
            ProtocolError::ReservedBitsSet(0b010),
            1002,
        ),
        (
            client_frame(Frame::new(OpCode::Continuation, "x")),
            ProtocolError::UnexpectedContinuation,
            1002,
        ),
        (
            [
                client_frame(Frame::new(OpCode::Text, "a").with_fin(false)),
                client_frame(Frame::new(OpCode::Text, "b")),
            ]
            .concat(),
            ProtocolError::ExpectedContinuation,
            1002,
        ),
        (
            vec![0x89, 0xfe, 0x00, 0x7e],
            ProtocolError::ControlFrameTooLong(126),
            1002,
        ),
        (
            client_frame(Frame::new(OpCode::Ping, "x").with_fin(false)),
            ProtocolError::FragmentedControlFrame,
            1002,
        ),
        (
            client_frame(Frame::new(OpCode::Close, vec![0x03])),
            ProtocolError::InvalidCloseLength,
            1002,
        ),
        (
            client_frame(Frame::new(OpCode::Close, 1005u16.to_be_bytes().to_vec())),
            ProtocolError::InvalidCloseCode(1005),
            1002,
        ),
        (
            client_frame(Frame::new(OpCode::Close, vec![0x03, 0xe8, 0xff])),
            ProtocolError::InvalidUtf8,
            1007,
        ),
        (
            client_frame(Frame::new(OpCode::Text, vec![b'a', 0xc0, 0x80])),
            ProtocolError::InvalidUtf8,
            1007,
        ),
    ];
    for (wire, expected, code) in cases {
        let (err, sent_code, close) = server_violation(Config::server(), &wire);
        assert_eq!(err, expected);
        assert_eq!(sent_code.as_u16(), code, "{expected:?}");
        assert_eq!(close.code.as_u16(), code);
        assert_eq!(close.description, expected.close_reason());
        assert_eq!(close.initiator, CloseInitiator::Local);
    }
}

#[test]
fn a_frame_over_the_limit_is_refused_from_its_header() {
    // Only the header of a 1 MiB frame: refused before any payload arrives.
    let header = {
        let mut wire = client_frame(Frame::new(OpCode::Binary, vec![0u8; 1 << 20]));
        wire.truncate(14);
        wire
    };
    let (err, code, _) = server_violation(Config::server(), &header);
    assert_eq!(
        err,
        ProtocolError::FrameTooLarge {
            len: 1 << 20,
            max: 64 * 1024
        }
    );
    assert_eq!(code, CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn a_message_over_the_limit_is_refused_at_the_frame_that_exceeds_it() {
    let config = Config::server().max_received_message_size(1000);
    let mut wire = client_frame(Frame::new(OpCode::Binary, vec![0u8; 600]).with_fin(false));
    // The second header alone is enough to know the message would be 1200 bytes.
    wire.extend(&client_frame(Frame::new(OpCode::Continuation, vec![0u8; 600]))[..8]);
    let (err, code, _) = server_violation(config, &wire);
    assert_eq!(
        err,
        ProtocolError::MessageTooLarge {
            len: 1200,
            max: 1000
        }
    );
    assert_eq!(code, CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn endless_tiny_fragments_hit_the_fragment_limit() {
    let config = Config::server().max_fragments_per_message(100);
    let mut wire = client_frame(Frame::new(OpCode::Binary, Bytes::new()).with_fin(false));
    for _ in 0..200 {
        wire.extend(client_frame(
            Frame::new(OpCode::Continuation, Bytes::new()).with_fin(false),
        ));
    }
    let (err, code, _) = server_violation(config, &wire);
    assert_eq!(err, ProtocolError::TooManyFragments { max: 100 });
    assert_eq!(code, CloseCode::POLICY_VIOLATION);
}

#[test]
fn invalid_utf8_fails_before_the_frame_is_complete() {
    // Autobahn 6.4.3: one text frame arriving in chunks; the second chunk is invalid.
    let payload = ["κόσμε".as_bytes(), &[0xf4, 0x90, 0x80, 0x80], b"edited"].concat();
    let wire = client_frame(Frame::new(OpCode::Text, payload));
    let mut pair = Pair::new();
    let header_and_valid = 6 + "κόσμε".len();
    pair.server
        .handle_bytes(&wire[..header_and_valid], pair.now);
    assert!(drain_events(&mut pair.server).is_empty());
    pair.server
        .handle_bytes(&wire[header_and_valid..header_and_valid + 4], pair.now);
    let events = drain_events(&mut pair.server);
    assert!(
        matches!(
            &events[0],
            Event::Error(Error::Protocol(ProtocolError::InvalidUtf8))
        ),
        "{events:?}"
    );
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(sent[0].close_status(), Some(CloseCode::INVALID_DATA));
}

#[test]
fn a_long_text_message_in_one_frame_is_unmasked_and_validated_whole() {
    // 100 KB, a 64-bit length: past the short path, taken whole (unmasked and validated in
    // one pass where the CPU has AVX-512).
    let text = "κόσμε 日本語 𝄞 ".repeat(4000);
    let config = Config::server()
        .max_received_frame_size(1 << 20)
        .max_received_message_size(1 << 20);
    let mut pair = Pair::with_configs(Config::client(), config.clone());
    let mut wire = client_frame(Frame::new(OpCode::Text, text.clone()));
    wire.extend(client_frame(Frame::new(OpCode::Binary, "after")));
    pair.server.handle_bytes(&wire, pair.now);
    assert_eq!(
        messages(&drain_events(&mut pair.server)),
        [Message::text(text.clone()), Message::binary("after")]
    );
    // The same with one wrong byte near the end: 1007.
    let mut bad = text.into_bytes();
    let at = bad.len() - 5;
    bad[at] = 0xff;
    let (err, code, _) =
        server_violation(config.clone(), &client_frame(Frame::new(OpCode::Text, bad)));
    assert_eq!(err, ProtocolError::InvalidUtf8);
    assert_eq!(code, CloseCode::INVALID_DATA);
    // Over the message limit: refused as before, from the header.
    let long = client_frame(Frame::new(OpCode::Text, "a".repeat(2000)));
    let (err, code, _) = server_violation(config.max_received_message_size(1000), &long);
    assert_eq!(
        err,
        ProtocolError::MessageTooLarge {
            len: 2000,
            max: 1000
        }
    );
    assert_eq!(code, CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn text_read_in_pieces_is_unmasked_and_validated_as_it_arrives() {
    // A 100 KB text message in two fragments with a ping between them, read in pieces: the
    // pieces of a frame after its first are unmasked and validated in one pass.
    let text = "κόσμε 日本語 𝄞 ".repeat(4000);
    let (first, second) = text.as_bytes().split_at(30_001); // inside a code point
    let config = Config::server()
        .max_received_frame_size(1 << 20)
        .max_received_message_size(1 << 20);
    let mut wire = client_frame(Frame::new(OpCode::Text, first.to_vec()).with_fin(false));
    wire.extend(client_frame(Frame::new(OpCode::Ping, "mid")));
    wire.extend(client_frame(Frame::new(
        OpCode::Continuation,
        second.to_vec(),
    )));
    for piece in [1000, 4096, 9_999, 65_536] {
        let mut pair = Pair::with_configs(Config::client(), config.clone());
        let mut events = Vec::new();
        for chunk in wire.chunks(piece) {
            pair.server.handle_bytes(chunk, pair.now);
            events.extend(drain_events(&mut pair.server));
        }
        assert!(
            matches!(&events[0], Event::Ping(p) if &p[..] == b"mid"),
            "pieces of {piece}"
        );
        assert_eq!(
            messages(&events),
            [Message::text(text.clone())],
            "pieces of {piece}"
        );
        // Frame by frame, without assembly: the same text.
        let mut pair =
            Pair::with_configs(Config::client(), config.clone().assemble_fragments(false));
        let mut received = Vec::new();
        for chunk in wire.chunks(piece) {
            pair.server.handle_bytes(chunk, pair.now);
            for event in drain_events(&mut pair.server) {
                if let Event::Frame(frame) = event
                    && frame.opcode.is_data()
                {
                    received.extend_from_slice(&frame.payload);
                }
            }
        }
        assert_eq!(received, text.as_bytes(), "frames in pieces of {piece}");
    }
    // A wrong byte in the second fragment fails the connection (1007) at the piece that
    // brings it, before the fragment is complete.
    let mut bad = second.to_vec();
    bad[40_000] = 0xc0;
    let mut wire = client_frame(Frame::new(OpCode::Text, first.to_vec()).with_fin(false));
    let bad_at = wire.len() + 14 + 40_000;
    wire.extend(client_frame(Frame::new(OpCode::Continuation, bad)));
    let mut pair = Pair::with_configs(Config::client(), config);
    let mut fed = 0;
    let failed_at = wire.chunks(8192).find_map(|chunk| {
        pair.server.handle_bytes(chunk, pair.now);
        fed += chunk.len();
        drain_events(&mut pair.server)
            .iter()
            .any(|e| matches!(e, Event::Error(Error::Protocol(ProtocolError::InvalidUtf8))))
            .then_some(fed)
    });
    let failed_at = failed_at.expect("the wrong byte is found");
    assert!(failed_at > bad_at && failed_at < wire.len(), "{failed_at}");
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(
        sent.last().unwrap().close_status(),
        Some(CloseCode::INVALID_DATA)
    );
}

#[test]
fn a_long_text_frame_in_a_burst_keeps_its_order() {
    // The 10 KB text frame ends the short path's burst and takes the one-pass path; the
    // frames after it start a new burst.
    let long = "日本語のテキスト ".repeat(400);
    let mut wire = client_frame(Frame::new(OpCode::Text, "first"));
    wire.extend(client_frame(Frame::new(OpCode::Text, long.clone())));
    wire.extend(client_frame(Frame::new(OpCode::Binary, "third")));
    wire.extend(client_frame(Frame::new(OpCode::Text, "fourth")));
    let mut pair = Pair::new();
    pair.server.handle_bytes(&wire, pair.now);
    assert_eq!(
        messages(&drain_events(&mut pair.server)),
        [
            Message::text("first"),
            Message::text(long),
            Message::binary("third"),
            Message::text("fourth")
        ]
    );
}

#[test]
fn invalid_utf8_fails_at_the_fragment_that_breaks_it() {
    // Autobahn 6.4.1: valid first fragment, invalid second, third never needed.
    let mut pair = Pair::new();
    pair.server.handle_bytes(
        &client_frame(Frame::new(OpCode::Text, "κόσμε").with_fin(false)),
        pair.now,
    );
    assert!(drain_events(&mut pair.server).is_empty());
    pair.server.handle_bytes(
        &client_frame(
            Frame::new(OpCode::Continuation, vec![0xf4u8, 0x90, 0x80, 0x80]).with_fin(false),
        ),
        pair.now,
    );
    assert!(matches!(
        drain_events(&mut pair.server).first(),
        Some(Event::Error(Error::Protocol(ProtocolError::InvalidUtf8)))
    ));
}

#[test]
fn eof_in_the_middle_of_a_message_is_an_abnormal_close() {
    let mut pair = Pair::new();
    let wire = client_frame(Frame::new(OpCode::Binary, vec![9u8; 100]));
    pair.server.handle_bytes(&wire[..50], pair.now);
    pair.server.handle_eof(pair.now);
    let events = drain_events(&mut pair.server);
    let close = closed(&events).unwrap();
    assert_eq!(close.code, CloseCode::ABNORMAL);
    assert_eq!(close.description, "Connection dropped by remote peer.");
    assert_eq!(close.initiator, CloseInitiator::Peer);
    assert!(messages(&events).is_empty());
}

#[test]
fn frames_received_before_eof_are_still_delivered() {
    let mut pair = Pair::new();
    pair.client.send_text("last words").unwrap();
    pair.client_to_server();
    pair.server.handle_eof(pair.now);
    let events = drain_events(&mut pair.server);
    assert_eq!(messages(&events), [Message::text("last words")]);
    assert_eq!(closed(&events).unwrap().code, CloseCode::ABNORMAL);
}

#[test]
fn transport_errors_are_reported_then_close_with_1006() {
    let mut pair = Pair::new();
    pair.client.send_text("queued").unwrap();
    pair.client
        .handle_io_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    let events = drain_events(&mut pair.client);
    assert!(matches!(&events[0], Event::Error(Error::Transport(_))));
    let close = closed(&events).unwrap();
    assert_eq!(close.code, CloseCode::ABNORMAL);
    assert!(pair.client.poll_transmit().is_none());
    assert!(pair.client.is_closed());
}

#[test]
fn sending_after_close_is_an_error_not_a_panic() {
    let mut pair = Pair::new();
    pair.client
        .close(CloseCode::NORMAL, None, pair.now)
        .unwrap();
    pair.run();
    assert!(pair.client.is_closed());
    for result in [
        pair.client.send_text("x"),
        pair.client.send_binary(vec![1u8]),
        pair.client.ping(Bytes::new()),
        pair.client.send_frame(Frame::new(OpCode::Binary, "x")),
    ] {
        assert!(matches!(
            result,
            Err(Error::NotOpen(ConnectionState::Closed))
        ));
    }
    // Closing again is harmless.
    pair.client
        .close(CloseCode::NORMAL, None, pair.now)
        .unwrap();
}

#[test]
fn paused_connections_take_no_input_until_resumed() {
    let mut pair = Pair::new();
    pair.client.send_text("one").unwrap();
    pair.client_to_server();
    pair.server.pause();
    assert!(pair.server.is_paused());
    assert!(pair.server.poll_event().is_none());
    pair.server.resume();
    assert_eq!(
        messages(&drain_events(&mut pair.server)),
        [Message::text("one")]
    );
}

/// The wire of one read holding every frame of `frames`, as a client sends them.
fn one_read(frames: impl IntoIterator<Item = Frame>) -> Vec<u8> {
    frames.into_iter().flat_map(client_frame).collect()
}

#[test]
fn a_burst_of_short_messages_arrives_in_order_around_other_frames() {
    // Short messages of both kinds and both length forms, cut off the input together, with
    // a ping, a fragmented message and a close between and after them.
    let wire = one_read([
        Frame::new(OpCode::Text, "one"),
        Frame::new(OpCode::Binary, vec![2u8; 126]),
        Frame::new(OpCode::Text, "three"),
        Frame::new(OpCode::Ping, "ping"),
        Frame::new(OpCode::Binary, vec![5u8; 300]),
        Frame::new(OpCode::Text, "frag").with_fin(false),
        Frame::new(OpCode::Continuation, "ment"),
        Frame::new(OpCode::Binary, Vec::<u8>::new()),
        Frame::new(OpCode::Text, "last"),
        Frame::close(CloseCode::NORMAL, "").unwrap(),
    ]);
    let mut pair = Pair::new();
    pair.server.handle_bytes(&wire, pair.now);
    let events = drain_events(&mut pair.server);
    let kinds: Vec<String> = events
        .iter()
        .map(|event| match event {
            Event::Message(Message::Text(text)) => format!("text {}", text.as_str()),
            Event::Message(Message::Binary(data)) => format!("binary {}", data.len()),
            Event::Ping(payload) => format!("ping {}", payload.len()),
            Event::Closed(close) => format!("closed {}", close.code.as_u16()),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "text one",
            "binary 126",
            "text three",
            "ping 4",
            "binary 300",
            "text fragment",
            "binary 0",
            "text last",
        ]
    );
    assert_eq!(messages(&events)[1], Message::binary(vec![2u8; 126]));
    // The ping was answered and the close frame, which came last, too.
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(
        sent.iter().map(|frame| frame.opcode).collect::<Vec<_>>(),
        [OpCode::Pong, OpCode::Close]
    );
    assert_eq!(sent[1].close_status(), Some(CloseCode::NORMAL));
}

#[test]
fn invalid_utf8_in_a_burst_fails_after_the_messages_before_it() {
    let wire = one_read([
        Frame::new(OpCode::Text, "fine"),
        Frame::new(OpCode::Binary, vec![1u8, 2]),
        Frame::new(OpCode::Text, vec![b'a', 0xff, b'b']),
        Frame::new(OpCode::Text, "never delivered"),
    ]);
    let mut pair = Pair::new();
    pair.server.handle_bytes(&wire, pair.now);
    let events = drain_events(&mut pair.server);
    assert_eq!(
        messages(&events),
        [Message::text("fine"), Message::binary(vec![1u8, 2])]
    );
    assert!(
        matches!(
            events[2],
            Event::Error(Error::Protocol(ProtocolError::InvalidUtf8))
        ),
        "{events:?}"
    );
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(sent[0].close_status(), Some(CloseCode::INVALID_DATA));
    assert!(pair.server.poll_event().is_none());
}

#[test]
fn pausing_in_a_burst_holds_the_rest_until_resumed() {
    let wire = one_read((0..4u8).map(|i| Frame::new(OpCode::Binary, vec![i; 10])));
    let mut pair = Pair::new();
    pair.server.handle_bytes(&wire, pair.now);
    assert_eq!(
        messages(&[pair.server.poll_event().unwrap()]),
        [Message::binary(vec![0u8; 10])]
    );
    pair.server.pause();
    assert!(pair.server.poll_event().is_none());
    pair.server.resume();
    assert_eq!(
        messages(&drain_events(&mut pair.server)),
        [1u8, 2, 3].map(|i| Message::binary(vec![i; 10]))
    );
}

#[test]
fn a_burst_comes_bare_from_poll_burst_message_until_something_else_is_next() {
    let wire = one_read([
        Frame::new(OpCode::Binary, vec![0u8; 10]),
        Frame::new(OpCode::Text, "one"),
        Frame::new(OpCode::Binary, vec![2u8; 10]),
        Frame::new(OpCode::Text, vec![b'a', 0xff, b'b']),
        Frame::new(OpCode::Text, "never delivered"),
    ]);
    let mut pair = Pair::new();
    // Nothing read yet: nothing, and no event lost.
    assert_eq!(pair.server.poll_burst_message(), None);
    pair.server.handle_bytes(&wire, pair.now);
    // The first message of a read is taken by `poll_event`, which cuts the rest.
    assert_eq!(pair.server.poll_burst_message(), None);
    assert_eq!(
        messages(&[pair.server.poll_event().unwrap()]),
        [Message::binary(vec![0u8; 10])]
    );
    assert_eq!(pair.server.poll_burst_message(), Some(Message::text("one")));
    // Paused: held, whichever way it is asked for.
    pair.server.pause();
    assert_eq!(pair.server.poll_burst_message(), None);
    assert!(pair.server.poll_event().is_none());
    pair.server.resume();
    assert_eq!(
        pair.server.poll_burst_message(),
        Some(Message::binary(vec![2u8; 10]))
    );
    // The bad text is no message: the error is the next event, and nothing after it.
    assert_eq!(pair.server.poll_burst_message(), None);
    assert!(
        matches!(
            pair.server.poll_event(),
            Some(Event::Error(Error::Protocol(ProtocolError::InvalidUtf8)))
        ),
        "the error comes next"
    );
    assert_eq!(pair.server.poll_burst_message(), None);
    let sent = frames(&take_output(&mut pair.server), Role::Client);
    assert_eq!(sent[0].close_status(), Some(CloseCode::INVALID_DATA));
}

#[test]
fn buffered_amount_and_high_water_mark() {
    let mut pair = Pair::with_configs(Config::client(), Config::server().send_high_water_mark(100));
    assert_eq!(pair.server.buffered_amount(), 0);
    pair.server.send_binary(vec![0u8; 90]).unwrap();
    assert_eq!(pair.server.buffered_amount(), 92);
    assert!(!pair.server.is_output_buffer_full());
    pair.server.send_binary(vec![0u8; 10]).unwrap();
    assert!(pair.server.is_output_buffer_full());
    let wire = take_output(&mut pair.server);
    assert_eq!(wire.len(), 104);
    assert_eq!(pair.server.buffered_amount(), 0);
}

#[test]
fn raw_frames_get_the_role_s_mask() {
    let mut pair = Pair::new();
    pair.client
        .send_frame(Frame::new(OpCode::Binary, vec![1u8, 2]).with_fin(false))
        .unwrap();
    pair.client
        .send_frame(Frame::new(OpCode::Continuation, vec![3u8]))
        .unwrap();
    let wire = take_output(&mut pair.client);
    let sent = frames(&wire, Role::Server);
    assert!(sent.iter().all(|f| f.mask.is_some()));
    pair.server.handle_bytes(&wire, pair.now);
    assert_eq!(
        messages(&drain_events(&mut pair.server)),
        [Message::binary(vec![1u8, 2, 3])]
    );
}

#[test]
fn properties_reflect_the_handshake() {
    let conn = Connection::new(
        Role::Server,
        Config::server(),
        Negotiated::new()
            .protocol(Some("Chat.V2"))
            .extensions(vec!["x-test".into()])
            .version(8),
        BytesMut::new(),
        std::time::Instant::now(),
    );
    assert_eq!(conn.protocol(), Some("chat.v2"));
    assert_eq!(conn.extensions(), ["x-test"]);
    assert_eq!(conn.version(), 8);
    assert_eq!(conn.role(), Role::Server);
    assert_eq!(conn.state(), ConnectionState::Open);
}

#[test]
fn bytes_after_the_handshake_are_the_first_frames() {
    let leftover = BytesMut::from(&client_frame(Frame::new(OpCode::Text, "early"))[..]);
    let mut server = Connection::new(
        Role::Server,
        Config::server(),
        Negotiated::new(),
        leftover,
        std::time::Instant::now(),
    );
    assert_eq!(
        messages(&drain_events(&mut server)),
        [Message::text("early")]
    );
}

/// Feeds `wire` through `read_buffer`/`handle_read` as a transport would: each read takes as
/// much as the offered spare capacity holds.
fn read_like_a_socket(conn: &mut Connection, mut wire: &[u8], now: std::time::Instant) {
    while !wire.is_empty() {
        let buf = conn.read_buffer();
        let n = (buf.capacity() - buf.len()).min(wire.len());
        buf.extend_from_slice(&wire[..n]);
        wire = &wire[n..];
        conn.handle_read(now);
    }
}

#[test]
fn the_read_buffer_grows_for_bulk_reads_and_shrinks_back_when_traffic_is_small() {
    let now = std::time::Instant::now();
    let config = Config::server().max_received_frame_size(1 << 20);
    let mut server = Connection::new(
        Role::Server,
        config,
        Negotiated::new(),
        BytesMut::new(),
        now,
    );
    // Bulk: large messages back to back grow the reads.
    let large: Vec<u8> = (0..8)
        .flat_map(|_| client_frame(Frame::new(OpCode::Binary, vec![7u8; 200_000])))
        .collect();
    read_like_a_socket(&mut server, &large, now);
    assert_eq!(messages(&drain_events(&mut server)).len(), 8);
    let grown = server.read_buffer().capacity();
    assert!(
        grown >= 64 * 1024,
        "bulk reads did not grow the buffer: {grown}"
    );
    // Then small messages, read one by one: the buffer goes back to a few KiB.
    for _ in 0..20 {
        let small = client_frame(Frame::new(OpCode::Text, "small".as_bytes().to_vec()));
        read_like_a_socket(&mut server, &small, now);
        assert_eq!(
            messages(&drain_events(&mut server)),
            [Message::text("small")]
        );
    }
    let settled = server.read_buffer().capacity();
    assert!(settled <= 16 * 1024, "the buffer stayed at {settled} bytes");
    // A 20 KB message arriving alone, many times, never grows it past what it needs.
    for _ in 0..50 {
        let medium = client_frame(Frame::new(OpCode::Binary, vec![1u8; 20_000]));
        read_like_a_socket(&mut server, &medium, now);
        assert_eq!(messages(&drain_events(&mut server)).len(), 1);
    }
    let medium = server.read_buffer().capacity();
    assert!(
        medium <= 64 * 1024,
        "20 KB messages grew the buffer to {medium}"
    );
}

/// Feeds `wire` to `conn` in reads of at most `piece` bytes (less when the buffer offers
/// less, as a socket's read takes), calling `after_read` after each; returns how many reads
/// did not land right behind the one before (the input moved to a new buffer).
fn read_in_pieces_counting_moves(
    conn: &mut Connection,
    mut wire: &[u8],
    piece: usize,
    now: std::time::Instant,
    mut after_read: impl FnMut(&mut Connection),
) -> usize {
    let (mut moves, mut next_at) = (0, 0);
    while !wire.is_empty() {
        let buf = conn.read_buffer();
        let n = (buf.capacity() - buf.len()).min(piece).min(wire.len());
        assert!(n > 0, "no room offered");
        let at = buf.as_ptr() as usize + buf.len();
        moves += usize::from(at != next_at);
        buf.extend_from_slice(&wire[..n]);
        wire = &wire[n..];
        next_at = at + n;
        conn.handle_read(now);
        after_read(conn);
    }
    moves
}

#[test]
fn a_frame_trickled_gets_room_in_proportion_to_what_arrived_not_to_what_it_declares() {
    let now = std::time::Instant::now();
    let mut server = Connection::new(
        Role::Server,
        Config::server(),
        Negotiated::new(),
        BytesMut::new(),
        now,
    );
    // A 64,000-byte frame (the limit is 64 KiB): its 8-byte header first, then a byte at a
    // time.
    let frame = client_frame(Frame::new(OpCode::Binary, vec![3u8; 64_000]));
    let mut most = 0;
    for (end, byte) in frame.iter().enumerate() {
        let buf = server.read_buffer();
        most = most.max(buf.capacity());
        buf.extend_from_slice(&[*byte]);
        server.handle_read(now);
        // At most 64 times what arrived, give or take a couple of small chunks (it was the
        // whole frame, 65 KiB, from the header on).
        let bound = 64 * (end + 1) + 8 * 1024;
        assert!(
            most <= bound,
            "{most} bytes of room after {} bytes",
            end + 1
        );
    }
    assert_eq!(messages(&drain_events(&mut server)).len(), 1);
}

#[test]
fn a_large_frame_arriving_slowly_is_copied_a_few_times_not_at_every_read() {
    let now = std::time::Instant::now();
    // A 4 MiB frame in 1,448-byte pieces (one TCP segment each), or in 16-byte ones.
    for piece in [1448, 16] {
        // A fresh connection: its buffer starts small.
        let mut server = Connection::new(
            Role::Server,
            Config::server()
                .max_received_frame_size(4 << 20)
                .max_received_message_size(4 << 20),
            Negotiated::new(),
            BytesMut::new(),
            now,
        );
        let frame = client_frame(Frame::new(OpCode::Binary, vec![4u8; 4 << 20]));
        let moves = read_in_pieces_counting_moves(&mut server, &frame, piece, now, |_| {});
        assert_eq!(messages(&drain_events(&mut server)).len(), 1);
        // Room doubles as the frame does: about log2(64 KiB / 2 KiB) moves before the room
        // allowed covers the frame (it moved at nearly every read until then, while the room
        // was held to 64 times what had come).
        assert!(
            moves <= 12,
            "pieces of {piece}: the input moved {moves} times"
        );
    }
}

#[test]
fn a_long_frame_read_in_pieces_is_not_copied_read_after_read() {
    // 256 KiB messages one after another, read in pieces of at most 16 KiB (less when the
    // buffer offers less, as a socket's read takes), with events taken after each read as a
    // driver does, or only at the end: once a frame's header is in, its buffer holds the
    // whole frame, and every read lands right behind the last; the frame in progress is not
    // copied to offer a read more room.
    let now = std::time::Instant::now();
    let frame = client_frame(Frame::new(OpCode::Binary, vec![5u8; 256 * 1024]));
    for poll_each_read in [true, false] {
        let mut server = Connection::new(
            Role::Server,
            Config::server().max_received_frame_size(1 << 20),
            Negotiated::new(),
            BytesMut::new(),
            now,
        );
        let mut received = Vec::new();
        for round in 0..4 {
            let moves =
                read_in_pieces_counting_moves(&mut server, &frame, 16 * 1024, now, |server| {
                    if poll_each_read {
                        received.extend(messages(&drain_events(server)));
                    }
                });
            received.extend(messages(&drain_events(&mut server)));
            assert_eq!(received.len(), round + 1);
            // The first read, and the one after the header, when the buffer is sized for
            // the frame.
            assert!(
                moves <= 2,
                "round {round}, events after each read: {poll_each_read}: the input moved {moves} times"
            );
        }
    }
}

#[test]
fn a_quiet_connection_gives_its_read_buffer_back_but_never_with_input_in_it() {
    let start = std::time::Instant::now();
    let interval = std::time::Duration::from_secs(20);
    let mut server = Connection::new(
        Role::Server,
        Config::server().keepalive_interval(interval),
        Negotiated::new(),
        BytesMut::new(),
        start,
    );
    // No buffer until the first read.
    assert!(server.read_buffer_released());
    let hello = client_frame(Frame::new(OpCode::Text, "hello".as_bytes().to_vec()));
    read_like_a_socket(&mut server, &hello, start);
    assert_eq!(
        messages(&drain_events(&mut server)),
        [Message::text("hello")]
    );
    assert!(!server.read_buffer_released());
    // A keepalive interval without input: the ping goes out and the buffer is given back.
    server.handle_timeout(start + interval);
    assert!(server.read_buffer_released());
    assert!(
        server.poll_transmit().is_some(),
        "no keepalive ping was queued"
    );
    // Half a frame waits in the buffer: it is kept, whatever the clock says.
    let frame = client_frame(Frame::new(OpCode::Binary, vec![9u8; 3000]));
    let later = start + interval * 2;
    read_like_a_socket(&mut server, &frame[..1000], later);
    assert!(!server.release_read_buffer());
    server.handle_timeout(later + interval);
    assert!(!server.read_buffer_released());
    // The rest arrives and the message is whole.
    read_like_a_socket(&mut server, &frame[1000..], later + interval);
    assert_eq!(
        messages(&drain_events(&mut server)),
        [Message::binary(vec![9u8; 3000])]
    );
    assert!(server.release_read_buffer());
}

#[test]
fn a_read_buffer_is_lent_only_empty_and_small_and_messages_survive_its_next_reader() {
    let now = std::time::Instant::now();
    let new = || {
        Connection::new(
            Role::Server,
            Config::server(),
            Negotiated::new(),
            BytesMut::new(),
            now,
        )
    };
    let (mut first, mut second) = (new(), new());
    assert!(first.take_read_buffer().is_none(), "no buffer yet");
    // Half a frame waits: the buffer stays.
    let frame = client_frame(Frame::new(OpCode::Text, "kept".as_bytes().to_vec()));
    read_like_a_socket(&mut first, &frame[..3], now);
    assert!(first.take_read_buffer().is_none());
    read_like_a_socket(&mut first, &frame[3..], now);
    let kept = messages(&drain_events(&mut first));
    assert_eq!(kept, [Message::text("kept")]);
    // Empty now: lent to the second connection, which reads into what is left of it.
    let buffer = first.take_read_buffer().unwrap();
    assert!(first.read_buffer_released());
    assert!(second.put_read_buffer(buffer).is_none());
    let other = client_frame(Frame::new(OpCode::Text, "x".repeat(1500).into_bytes()));
    read_like_a_socket(&mut second, &other, now);
    assert_eq!(
        messages(&drain_events(&mut second)),
        [Message::text("x".repeat(1500))]
    );
    assert_eq!(kept, [Message::text("kept")]);
    // A connection that has a buffer hands a second one back.
    let spare = BytesMut::with_capacity(100);
    assert!(second.put_read_buffer(spare).is_some());
}

/// The peer closes, then stops reading with our data and our reply still queued: whether the
/// socket then fails or the close timeout passes, the queued output is given up, and the
/// close is not clean, as nothing queued before the reply reached the peer.
#[test]
fn output_given_up_after_the_peer_s_close_makes_the_close_unclean_and_empties_the_queue() {
    for fail_socket in [true, false] {
        let mut pair =
            Pair::with_configs(Config::client(), Config::server().send_high_water_mark(16));
        pair.server.send_binary(vec![7; 1000]).unwrap();
        assert!(pair.server.is_output_buffer_full());
        pair.server.handle_bytes(
            &client_frame(Frame::close(CloseCode::NORMAL, "bye").unwrap()),
            pair.now,
        );
        // Frames are decoded as events are taken.
        assert!(closed(&drain_events(&mut pair.server)).is_none());
        assert!(!pair.server.is_closed());
        if fail_socket {
            pair.server
                .handle_io_error(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        } else {
            pair.advance(Duration::from_secs(5));
        }
        let close = closed(&drain_events(&mut pair.server)).unwrap();
        assert!(pair.server.is_closed());
        assert_eq!(close.code, CloseCode::NORMAL, "the peer's code is kept");
        assert!(!close.was_clean, "fail_socket: {fail_socket}");
        assert_eq!(pair.server.buffered_amount(), 0);
        assert!(!pair.server.is_output_buffer_full());
        assert!(pair.server.poll_transmit().is_none());
    }
}

/// A driver that reads twice before handing the bytes in (as a loop reading until the
/// socket would block may): the first read's bytes are kept, even when the buffer is made
/// anew for a frame in progress. They were lost before.
#[test]
fn bytes_read_into_a_buffer_asked_for_again_before_handle_read_are_kept() {
    for first_part in [3, 108, 5000] {
        let mut pair = Pair::new();
        let wire = client_frame(Frame::new(OpCode::Binary, vec![7; 60_000]));
        pair.server.handle_bytes(&wire[..first_part], pair.now);
        assert!(drain_events(&mut pair.server).is_empty());
        let mut at = first_part;
        while at < wire.len() {
            // Two reads, then one hand-in.
            for _ in 0..2 {
                let buffer = pair.server.read_buffer();
                let room = buffer.capacity() - buffer.len();
                // All the room the buffer has: the next one is then made anew.
                let take = room.min(wire.len() - at);
                buffer.extend_from_slice(&wire[at..at + take]);
                at += take;
            }
            pair.server.handle_read(pair.now);
        }
        assert_eq!(
            messages(&drain_events(&mut pair.server)),
            [Message::binary(vec![7; 60_000])],
            "first part {first_part}"
        );
    }
}

/// `max_fragments_per_message(0)` counts as 1: a one-frame message is taken whether it
/// arrives whole (the short paths) or split over reads (refused with 1008 before).
#[test]
fn a_fragment_limit_of_zero_takes_one_frame_messages_however_they_arrive() {
    let wire = client_frame(Frame::new(OpCode::Text, "x".repeat(5000)));
    for split in [wire.len(), 3, 100] {
        let mut pair = Pair::with_configs(
            Config::client(),
            Config::server().max_fragments_per_message(0),
        );
        pair.server.handle_bytes(&wire[..split], pair.now);
        let mut events = drain_events(&mut pair.server);
        pair.server.handle_bytes(&wire[split..], pair.now);
        events.extend(drain_events(&mut pair.server));
        assert_eq!(
            messages(&events),
            [Message::text("x".repeat(5000))],
            "split at {split}"
        );
        // Two frames are one too many.
        let mut two = client_frame(Frame::new(OpCode::Text, "a").with_fin(false));
        two.extend(client_frame(Frame::new(OpCode::Continuation, "b")));
        pair.server.handle_bytes(&two, pair.now);
        drain_events(&mut pair.server);
        assert_eq!(
            pair.server.close_reason_code(),
            Some(CloseCode::POLICY_VIOLATION),
            "split at {split}"
        );
    }
}
