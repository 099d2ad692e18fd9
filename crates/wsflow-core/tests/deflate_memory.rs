//! The memory permessage-deflate keeps per connection, measured with a counting allocator: the
//! figures documented on `DeflateConfig` hold, and using the extension (compressing and
//! inflating many messages, with or without context takeover) adds nothing that stays.
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
}

fn count(bytes: isize) {
    // `try_with`: the allocator is also called while a thread's locals are torn down.
    let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
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

/// The bytes one extension keeps: (compressor, inflater), measured by building a server whose
/// compressor uses `own` bits and whose inflater uses `peer` bits.
fn footprint(bits: u8) -> (isize, isize) {
    let compress_only = DeflateConfig::new()
        .server_max_window_bits(bits)
        .client_max_window_bits(bits);
    let before = live();
    let extension = PerMessageDeflate::new(Role::Server, &compress_only);
    let total = live() - before;
    drop(extension);
    // The inflater alone: zlib-rs allocates it the same way whatever the bits.
    let before = live();
    let inflater = flate2::Decompress::new_with_window_bits(false, bits.max(9));
    let inflate = live() - before;
    drop(inflater);
    (total - inflate, inflate)
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
