//! Drives a whole connection (server or client role, with or without permessage-deflate, with or
//! without context takeover) with arbitrary input: bytes split at arbitrary points, interleaved
//! with time passing, application sends, closes, pauses, end of file, and its read buffer lent
//! to another reader and given back. The connection must never
//! panic, must keep its buffers bounded by its limits, must hand out only valid UTF-8 as text,
//! and must end with exactly one close event after which nothing more happens.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsflow_core::{
    CloseCode, Config, Connection, DeflateConfig, Event, Message, Negotiated, PerMessageDeflate,
    Role,
};

fuzz_target!(|data: &[u8]| {
    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let role = if control & 1 == 0 { Role::Server } else { Role::Client };
    let config = match role {
        Role::Server => Config::server(),
        Role::Client => Config::client(),
    }
    .max_received_frame_size(4096)
    .max_received_message_size(16384)
    .max_fragments_per_message(64)
    .assemble_fragments(control & 2 == 0)
    .auto_pong(control & 4 == 0);
    let negotiated = if control & 8 == 0 {
        Negotiated::new()
    } else {
        // Compression, every message compressed when `control` says so; without context
        // takeover the zlib state comes from the thread's pool, shared with earlier runs.
        let no_takeover = control & 16 != 0;
        let agreed = DeflateConfig::new()
            .threshold(if control & 32 == 0 { 0 } else { 1024 })
            .server_no_context_takeover(no_takeover)
            .client_no_context_takeover(no_takeover)
            .server_max_window_bits(if control & 64 == 0 { 15 } else { 9 });
        Negotiated::new()
            .extension(Box::new(PerMessageDeflate::new(role, &agreed)))
            .extensions(vec!["permessage-deflate".to_owned()])
    };
    let mut now = Instant::now();
    let mut conn = Connection::new(role, config, negotiated, BytesMut::new(), now);
    let mut closed_events = 0;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 8 {
            // Feed the next 1-64 bytes.
            0..=3 => {
                let take = usize::from(op >> 2).min(rest.len()).max(1).min(rest.len());
                let (chunk, tail) = rest.split_at(take);
                rest = tail;
                conn.handle_bytes(chunk, now);
            }
            4 => {
                now += Duration::from_millis(u64::from(op) * 100);
                conn.handle_timeout(now);
            }
            5 => {
                let _ = conn.send_text("fuzz");
                let _ = conn.ping(&b"p"[..]);
            }
            6 => {
                let _ = conn.close(CloseCode::from(u16::from(op) * 20), None, now);
            }
            7 if op & 0x40 != 0 => {
                // Another connection borrows the read buffer while this one waits, reads its
                // own bytes into it, and gives it back.
                if let Some(mut buffer) = conn.take_read_buffer() {
                    assert!(conn.read_buffer_released());
                    buffer.extend_from_slice(&[0xff; 32]);
                    assert!(conn.put_read_buffer(buffer).is_none());
                }
            }
            _ => {
                if op & 0x80 != 0 {
                    conn.handle_eof(now);
                } else if conn.is_paused() {
                    conn.resume();
                } else {
                    conn.pause();
                }
            }
        }
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Closed(_) => closed_events += 1,
                Event::Message(Message::Text(text)) => {
                    assert!(std::str::from_utf8(text.as_bytes()).is_ok());
                }
                _ => {}
            }
        }
        let written: usize = conn
            .poll_transmit()
            .map_or(0, |chunks| chunks.map(<[u8]>::len).sum());
        conn.advance_transmit(written);
        let _ = conn.poll_shutdown();
        assert!(closed_events <= 1);
    }
    // The peer goes away and time passes: whatever state it was in, the connection must end.
    conn.handle_eof(now);
    conn.resume();
    for _ in 0..3 {
        now += Duration::from_secs(3600);
        conn.handle_timeout(now);
        while let Some(event) = conn.poll_event() {
            if let Event::Closed(_) = event {
                closed_events += 1;
            }
        }
        let written: usize = conn
            .poll_transmit()
            .map_or(0, |chunks| chunks.map(<[u8]>::len).sum());
        conn.advance_transmit(written);
        let _ = conn.poll_shutdown();
    }
    assert!(conn.is_closed(), "a connection at end of file and past every timeout is closed");
    assert_eq!(closed_events, 1);
});
