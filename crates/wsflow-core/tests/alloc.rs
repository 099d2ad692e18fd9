//! No allocation per message on the hot path: a counting allocator watches a server that
//! receives and echoes thousands of messages that fit its read buffer, whole or in pieces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use support::*;
use wsflow_core::{Connection, Event};

struct CountingAllocator;

thread_local! {
    /// Allocations made by this thread: the test harness's own threads are not counted.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the allocator is also called while a thread's locals are torn down.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is the only
// addition.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Feeds `input` to `server` and queues every message it completes to be sent back; returns
/// how many it completed.
fn echo_input(server: &mut Connection, input: &[u8], now: Instant) -> usize {
    server.handle_bytes(input, now);
    let mut messages = 0;
    while let Some(event) = server.poll_event() {
        if let Event::Message(message) = event {
            messages += 1;
            server.send(message).unwrap();
        }
    }
    messages
}

/// Moves `server`'s output into `out`, which the caller sized: unlike `take_output`, nothing is
/// allocated that would be counted against the server.
fn transmit_into(server: &mut Connection, out: &mut Vec<u8>) {
    out.clear();
    if let Some(chunks) = server.poll_transmit() {
        chunks.for_each(|chunk| out.extend_from_slice(chunk));
    }
    server.advance_transmit(out.len());
}

#[test]
fn echoing_small_messages_does_not_allocate_per_message() {
    let mut pair = Pair::new();
    // 16 messages in flight per round, like a pipelining client.
    let payload = "twenty bytes of text";
    let mut echoed = Vec::with_capacity(4096);
    // Returns the allocations made by the server alone during one round.
    let mut round = |pair: &mut Pair| -> usize {
        for _ in 0..16 {
            pair.client.send_text(payload).unwrap();
        }
        let wire = take_output(&mut pair.client);
        let before = allocations();
        echo_input(&mut pair.server, &wire, pair.now);
        transmit_into(&mut pair.server, &mut echoed);
        let allocations = allocations() - before;
        assert_eq!(echoed.len(), 16 * (2 + payload.len()));
        allocations
    };
    for _ in 0..100 {
        round(&mut pair); // warm up: buffers reach their steady size
    }
    let rounds = 1000;
    let server_side: usize = (0..rounds).map(|_| round(&mut pair)).sum();
    // A read buffer is replaced when used up (once per few hundred messages); nothing is
    // allocated per message.
    let messages = rounds * 16;
    assert!(
        server_side * 50 < messages,
        "{server_side} allocations for {messages} messages"
    );
    println!("{server_side} server allocations for {messages} echoed messages");
}

#[test]
fn messages_read_in_two_pieces_do_not_allocate_per_message() {
    // Each frame arrives cut in the middle of its payload, so each message is assembled
    // across two reads (validated as it arrives) rather than taken whole.
    let mut pair = Pair::new();
    let payload = "κόσμε ".repeat(100);
    let mut echoed = Vec::with_capacity(4096);
    let mut round = |pair: &mut Pair| -> usize {
        pair.client.send_text(payload.as_str()).unwrap();
        let wire = take_output(&mut pair.client);
        // The cut falls inside a code point, too.
        let (first, second) = wire.split_at(wire.len() / 2 + 1);
        let before = allocations();
        let messages = echo_input(&mut pair.server, first, pair.now)
            + echo_input(&mut pair.server, second, pair.now);
        transmit_into(&mut pair.server, &mut echoed);
        let allocations = allocations() - before;
        assert_eq!(messages, 1);
        assert_eq!(echoed.len(), 4 + payload.len());
        allocations
    };
    for _ in 0..100 {
        round(&mut pair);
    }
    let rounds = 1000;
    let server_side: usize = (0..rounds).map(|_| round(&mut pair)).sum();
    assert!(
        server_side * 50 < rounds,
        "{server_side} allocations for {rounds} messages"
    );
    println!("{server_side} server allocations for {rounds} messages read in two pieces");
}
