//! The memory permessage-deflate keeps per connection, measured with a counting allocator: the
//! figures documented on `DeflateConfig` hold, nothing is allocated before the first message,
//! connections without context takeover share their zlib state, and using the extension
//! (compressing and inflating many messages, with or without context takeover) adds nothing
//! that stays.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use wsflow_core::{DeflateConfig, Extension, PerMessageDeflate, Role};

struct CountingAllocator;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread. Counting per thread keeps the
    /// measurements apart from the test harness's own allocations and from the other test,
    /// which run on other threads at the same time.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// Bytes allocated by this thread, whether freed since or not.
    static ALLOCATED: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    // `try_with`: the allocator is also called while a thread's locals are torn down.
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
    if bytes > 0 {
        let _ = ALLOCATED.try_with(|allocated| allocated.set(allocated.get() + bytes));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is the only
// addition.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Bytes this thread holds, as far as the counter has seen.
fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Bytes this thread has allocated so far.
fn allocated() -> isize {
    ALLOCATED.with(Cell::get)
}

/// A message a client compressed for a server, with the agreed parameters `agreed`.
fn compressed_by_client(agreed: &DeflateConfig, message: &[u8]) -> Bytes {
    let mut client = PerMessageDeflate::new(Role::Client, agreed);
    client
        .encode(Bytes::copy_from_slice(message), false)
        .unwrap()
        .0
}

/// The bytes a server's extension keeps with context takeover: (compressor, inflater), each
/// measured once its first message made it. Before that it keeps nothing.
fn footprint(bits: u8) -> (isize, isize) {
    let agreed = DeflateConfig::new()
        .threshold(0)
        .server_max_window_bits(bits)
        .client_max_window_bits(bits);
    let wire = compressed_by_client(&agreed, b"hello hello hello");
    let before = live();
    let mut server = PerMessageDeflate::new(Role::Server, &agreed);
    assert_eq!(
        live() - before,
        0,
        "{bits} bits: nothing before the first message"
    );
    drop(
        server
            .encode(Bytes::from_static(b"hello hello hello"), false)
            .unwrap(),
    );
    let compressor = live() - before;
    let mut out = Vec::new();
    server.decode(&wire, true, &mut out, usize::MAX).unwrap();
    drop(out);
    let inflater = live() - before - compressor;
    assert!(server.holds_zlib_state());
    drop(server);
    assert_eq!(
        live() - before,
        0,
        "{bits} bits: all freed with the extension"
    );
    (compressor, inflater)
}

const KIB: isize = 1024;

#[test]
fn the_documented_figures_hold() {
    // (bits, compressor KiB, inflater KiB) as documented on DeflateConfig.
    // Anything the first use sets up once (and keeps) is not a connection's cost.
    footprint(15);
    for (bits, compressor, inflater) in [
        (15, 371, 46),
        (14, 307, 46),
        (13, 275, 46),
        (12, 259, 46),
        (11, 251, 46),
        (10, 247, 46),
        (9, 245, 46),
        (8, 245, 46),
    ] {
        let (c, i) = footprint(bits);
        let (c, i) = ((c + KIB / 2) / KIB, (i + KIB / 2) / KIB);
        assert!(
            (c - compressor).abs() <= 2 && (i - inflater).abs() <= 2,
            "{bits} bits: compressor {c} KiB, inflater {i} KiB (documented {compressor} and {inflater})"
        );
    }
}

#[test]
fn using_the_extension_keeps_no_memory() {
    for no_takeover in [false, true] {
        let agreed = DeflateConfig::new()
            .threshold(0)
            .client_no_context_takeover(no_takeover)
            .server_no_context_takeover(no_takeover)
            .server_max_window_bits(10);
        let mut client = PerMessageDeflate::new(Role::Client, &agreed);
        let mut server = PerMessageDeflate::new(Role::Server, &agreed);
        let message: Vec<u8> = (0..20_000u32).map(|i| (i % 97) as u8).collect();
        // Warm up: the first message may grow internal buffers once.
        let exchange = |client: &mut PerMessageDeflate, server: &mut PerMessageDeflate| {
            let (wire, _) = client
                .encode(Bytes::copy_from_slice(&message), false)
                .unwrap();
            let mut out = Vec::new();
            server.decode(&wire, true, &mut out, usize::MAX).unwrap();
            assert_eq!(out, message);
            let (wire, _) = server.encode(Bytes::from(out), false).unwrap();
            let mut back = Vec::new();
            client.decode(&wire, true, &mut back, usize::MAX).unwrap();
        };
        exchange(&mut client, &mut server);
        let before = live();
        for _ in 0..200 {
            exchange(&mut client, &mut server);
        }
        assert_eq!(live() - before, 0, "no_context_takeover: {no_takeover}");
    }
}

/// Without context takeover both ways, connections borrow their zlib state from a per-thread
/// pool one message at a time: a thousand of them, each having sent and received compressed
/// messages, hold none, and the thread keeps one compressor and one inflater for all.
#[test]
fn connections_without_context_takeover_share_zlib_state() {
    let agreed = DeflateConfig::new()
        .threshold(0)
        .server_no_context_takeover(true)
        .client_no_context_takeover(true);
    let message = br#"{"type":"chat","user":"ada","text":"hello, hello, hello, everyone"}"#;
    let wire = compressed_by_client(&agreed, message);
    let (first, second) = wire.split_at(wire.len() / 2);
    let before = live();
    let mut servers: Vec<PerMessageDeflate> = (0..1000)
        .map(|_| PerMessageDeflate::new(Role::Server, &agreed))
        .collect();
    let shells = live() - before;
    let allocated_before = allocated();
    for server in &mut servers {
        drop(server.encode(Bytes::from_static(message), true).unwrap());
        let mut out = Vec::new();
        server.decode(&wire, true, &mut out, usize::MAX).unwrap();
        assert_eq!(out, message);
        assert!(!server.holds_zlib_state());
    }
    // A compressor or inflater made per message would allocate hundreds of KiB each time.
    let per_connection = (allocated() - allocated_before) / 1000;
    assert!(
        per_connection < 4 * KIB,
        "{per_connection} bytes allocated per connection for one message each way"
    );
    let zlib = live() - before - shells;
    assert!(
        zlib < 430 * KIB,
        "1000 connections hold {} KiB of zlib state: one compressor and one inflater expected",
        zlib / KIB
    );

    // Messages in progress on every connection at once each hold an inflater until their last
    // frame; afterwards the pool keeps a few, not one per connection.
    for server in &mut servers {
        let mut out = Vec::new();
        server.decode(first, false, &mut out, usize::MAX).unwrap();
        assert!(server.holds_zlib_state());
    }
    assert!(live() - before - shells > 1000 * 40 * KIB);
    for server in &mut servers {
        let mut out = Vec::new();
        server.decode(second, true, &mut out, usize::MAX).unwrap();
        assert!(out.len() <= message.len());
        assert!(!server.holds_zlib_state());
    }
    let kept = live() - before - shells;
    assert!(
        kept < 371 * KIB + 4 * 48 * KIB,
        "after the messages in progress ended, {} KiB of zlib state is kept",
        kept / KIB
    );
}

/// A compressed message handed to the application keeps little more than its own size: the
/// buffer it was inflated into grows by doubling, and a 100 KiB message kept 138 KiB for as
/// long as the application kept it.
#[test]
fn an_inflated_message_keeps_little_more_than_its_size() {
    use std::time::Instant;
    use wsflow_codec::{Frame, OpCode};
    use wsflow_core::{Config, Connection, Event, Negotiated};

    let agreed = DeflateConfig::new().threshold(0);
    let message: Vec<u8> = (0..100 * 1024u32).map(|i| (i % 251) as u8).collect();
    let compressed = compressed_by_client(&agreed, &message);
    let mut frame = Frame::new(OpCode::Binary, compressed);
    frame.rsv1 = true;
    let mut wire = bytes::BytesMut::new();
    frame.with_mask(Some([1, 2, 3, 4])).encode(&mut wire);
    let now = Instant::now();
    let before = live();
    let mut server = Connection::new(
        Role::Server,
        Config::server(),
        Negotiated::new()
            .extension(Box::new(PerMessageDeflate::new(Role::Server, &agreed)))
            .extensions(vec!["permessage-deflate".to_owned()]),
        bytes::BytesMut::new(),
        now,
    );
    server.handle_bytes(&wire, now);
    let Some(Event::Message(received)) = server.poll_event() else {
        panic!("no message")
    };
    drop(server);
    let kept = live() - before;
    assert_eq!(received.as_bytes(), &message[..]);
    let len = message.len() as isize;
    assert!(
        kept <= len + len / 4,
        "a {len}-byte message keeps {kept} bytes"
    );
}
