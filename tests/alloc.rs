//! No allocation per message over a real socket: a counting allocator that counts only while the
//! server's own future is polled on its thread watches a wsflow echo server (the driver, the
//! runtime's socket and the connection together) echo thousands of small messages, one at a time
//! and pipelined, on both runtimes; the runtime's own work between polls (parking, its driver)
//! is not counted. The same allocator weighs what compressed connections keep, with and without
//! context takeover. Its own test binary: the allocator is global.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use support::*;
use wsflow::codec::{Frame, OpCode};
use wsflow::{ClientConfig, Config, DeflateConfig, Runtime, Server, ServerConfig};

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// How many counted allocations have their size kept for the failure message.
const RECORDED: usize = 64;
/// The sizes of the first [`RECORDED`] counted allocations (the new size for a reallocation),
/// kept in atomics so that recording one does not allocate.
static SIZES: [AtomicUsize; RECORDED] = [const { AtomicUsize::new(0) }; RECORDED];
/// Bytes allocated minus bytes freed on the server's thread while weighing.
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Set on the server's thread while it echoes the measured messages.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    /// Set on the server's thread while the server's future is being polled (see
    /// [`counting_while_polled`]).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Set on the server's thread while its compressed connections are weighed.
    static WEIGHING: Cell<bool> = const { Cell::new(false) };
}

/// Whether an allocation made now is counted: the server's future is being polled, during the
/// measured messages.
fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false) && MEASURING.try_with(Cell::get).unwrap_or(false)
}

/// Counts one allocation of `size` bytes and records its size if there is room.
fn count(size: usize) {
    let index = ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    if let Some(slot) = SIZES.get(index) {
        slot.store(size, Ordering::Relaxed);
    }
}

/// The recorded sizes of the first `allocations` counted allocations (at most [`RECORDED`]).
fn counted_sizes(allocations: usize) -> Vec<usize> {
    SIZES
        .iter()
        .take(allocations)
        .map(|size| size.load(Ordering::Relaxed))
        .collect()
}

fn weighing() -> bool {
    WEIGHING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are the only
// addition: reading a constant-initialised thread-local `Cell<bool>` and updating static atomics
// never allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            count(layout.size());
        }
        if weighing() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if weighing() {
            LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            count(new_size);
        }
        if weighing() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Messages echoed before counting starts, one burst of [`BURST`] among them: buffers reach
/// their steady size, also for pipelined messages.
const WARMUP: usize = 500;
/// Messages echoed while counting, half one at a time, half [`BURST`] in flight.
const MEASURED: usize = 4000;
/// Messages in flight at once when pipelined.
const BURST: usize = 16;
const PAYLOAD: &[u8] = b"twenty bytes, masked";

/// Echoes every message of one connection on this thread's runtime, marking the measured
/// messages for the count. Keepalive is off: its timer, armed for 20 s and moved only when it
/// fires, could otherwise fire during the measured messages on a loaded machine.
async fn echo_counting(runtime: Runtime, addr_tx: mpsc::Sender<SocketAddr>) {
    let config = ServerConfig::default()
        .runtime(runtime)
        .connection(Config::server().keepalive(false));
    let mut server = Server::bind("127.0.0.1:0", config).await.unwrap();
    addr_tx.send(server.local_addr()).unwrap();
    let mut ws = server.accept().await.unwrap().accept(None).await.unwrap();
    let mut echoed = 0;
    while let Some(Ok(message)) = ws.recv().await {
        echoed += 1;
        MEASURING.set((WARMUP..WARMUP + MEASURED).contains(&echoed));
        ws.queue(message).unwrap();
    }
    MEASURING.set(false);
}

/// Polls `future` with [`COUNTING`] set during each poll only, so that what the runtime does
/// on this thread between polls (parking, its I/O and timer driver) is not counted.
async fn counting_while_polled<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    std::future::poll_fn(move |cx| {
        COUNTING.set(true);
        let poll = future.as_mut().poll(cx);
        COUNTING.set(false);
        poll
    })
    .await
}

/// Polls `future` on this thread, sleeping between wake-ups: async-io's reactor then runs on
/// its own thread ("async-io"), outside the count. (async-io 2 allocates a list of wakers on
/// each turn of its reactor; that is the runtime's cost, not wsflow's, and `async_io::block_on`
/// would run it on this thread.)
fn block_on_parking<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

/// Runs `server` on this thread, on `runtime`.
fn run_on<F: Future>(runtime: Runtime, server: F) -> F::Output {
    match runtime {
        Runtime::AsyncStd => block_on_parking(server),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(server),
    }
}

fn run_server(runtime: Runtime, addr_tx: mpsc::Sender<SocketAddr>) {
    run_on(
        runtime,
        counting_while_polled(echo_counting(runtime, addr_tx)),
    );
}

/// Sends `rounds` bursts of `burst` messages, each burst after the previous one's echoes.
fn echo_rounds(stream: &mut std::net::TcpStream, rounds: usize, burst: usize) {
    let mut frame = BytesMut::new();
    Frame::new(OpCode::Binary, PAYLOAD)
        .with_mask(Some([1, 2, 3, 4]))
        .encode(&mut frame);
    let wire = frame.repeat(burst);
    let mut echo = vec![0u8; burst * (2 + PAYLOAD.len())];
    for round in 0..rounds {
        stream.write_all(&wire).unwrap();
        if let Err(err) = stream.read_exact(&mut echo) {
            panic!("round {round} of {rounds} (bursts of {burst}): {err}");
        }
        for one in echo.chunks(2 + PAYLOAD.len()) {
            assert_eq!(one[..2], [0x82, PAYLOAD.len() as u8]);
            assert_eq!(&one[2..], PAYLOAD);
        }
    }
}

fn allocations_while_echoing(runtime: Runtime) -> usize {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    let (addr_tx, addr_rx) = mpsc::channel();
    let server = std::thread::spawn(move || run_server(runtime, addr_tx));
    let mut stream = raw_client(addr_rx.recv().unwrap());
    stream.set_nodelay(true).unwrap();
    stream.write_all(UPGRADE.as_bytes()).unwrap();
    assert!(read_head(&mut stream).starts_with("HTTP/1.1 101"));
    // The warm-up's burst comes first, so its one-off growth is well before the count starts.
    echo_rounds(&mut stream, 1, BURST);
    echo_rounds(&mut stream, WARMUP - BURST, 1);
    echo_rounds(&mut stream, MEASURED / 2, 1);
    echo_rounds(&mut stream, MEASURED / 2 / BURST, BURST);
    // A close frame ends the connection; the server's loop then ends.
    let mut close = BytesMut::new();
    Frame::close(wsflow::CloseCode::NORMAL, "")
        .unwrap()
        .with_mask(Some([1, 2, 3, 4]))
        .encode(&mut close);
    stream.write_all(&close).unwrap();
    let _ = read_to_end(&mut stream);
    drop(stream);
    server.join().unwrap();
    ALLOCATIONS.load(Ordering::Relaxed)
}

#[test]
fn echoing_over_a_socket_does_not_allocate_per_message_on_either_runtime() {
    for runtime in [Runtime::Tokio, Runtime::AsyncStd] {
        let allocations = allocations_while_echoing(runtime);
        // Buffers are replaced now and then as they fill (a few per thousand messages);
        // nothing is allocated per message or per read.
        assert!(
            allocations * 100 < MEASURED,
            "{runtime}: {allocations} allocations for {MEASURED} echoed messages, of these \
             sizes (the first {RECORDED} at most): {:?}",
            counted_sizes(allocations)
        );
    }
}

/// Compressed connections held open at once in the memory test.
const COMPRESSED_CONNECTIONS: usize = 40;

/// Accepts [`COMPRESSED_CONNECTIONS`] connections with permessage-deflate as `deflate` says,
/// echoes `messages` messages on each and keeps them all open; returns the bytes the server's
/// thread then holds per connection (counted from before the first accept).
async fn hold_compressed(
    runtime: Runtime,
    deflate: DeflateConfig,
    messages: usize,
    addr_tx: mpsc::Sender<SocketAddr>,
) -> isize {
    let config = ServerConfig::default()
        .runtime(runtime)
        .permessage_deflate(deflate);
    let mut server = Server::bind("127.0.0.1:0", config).await.unwrap();
    addr_tx.send(server.local_addr()).unwrap();
    LIVE_BYTES.store(0, Ordering::Relaxed);
    WEIGHING.set(true);
    let mut open = Vec::new();
    for _ in 0..COMPRESSED_CONNECTIONS {
        let mut ws = server.accept().await.unwrap().accept(None).await.unwrap();
        assert!(ws.extensions()[0].starts_with("permessage-deflate"));
        for _ in 0..messages {
            let message = ws.recv().await.unwrap().unwrap();
            ws.send(message).await.unwrap();
        }
        open.push(ws);
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) / COMPRESSED_CONNECTIONS as isize;
    WEIGHING.set(false);
    held
}

/// What a wsflow server keeps per compressed connection that has echoed `messages` messages,
/// on `runtime`. The clients run on this thread, with tokio.
fn held_per_compressed_connection(
    runtime: Runtime,
    deflate: DeflateConfig,
    messages: usize,
) -> isize {
    let (addr_tx, addr_rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        run_on(
            runtime,
            hold_compressed(runtime, deflate, messages, addr_tx),
        )
    });
    let addr = addr_rx.recv().unwrap();
    let url = format!("ws://{addr}/");
    let text = r#"{"type":"chat","user":"ada","text":"hello, hello, hello, everyone"}"#;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = wsflow::Client::new(
                ClientConfig::default()
                    .no_proxy()
                    .permessage_deflate(DeflateConfig::new().threshold(0)),
            );
            let mut open = Vec::new();
            for _ in 0..COMPRESSED_CONNECTIONS {
                let mut ws = client.connect(&url).await.unwrap();
                for _ in 0..messages {
                    ws.send_text(text).await.unwrap();
                    let echo = ws.recv().await.unwrap().unwrap();
                    assert_eq!(echo.as_text(), Some(text));
                }
                open.push(ws);
            }
            open
        });
    server.join().unwrap()
}

#[test]
fn compressed_connections_allocate_zlib_state_late_and_share_it_without_context_takeover() {
    const KIB: isize = 1024;
    let dedicated = DeflateConfig::new().threshold(0);
    let shared = dedicated
        .clone()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true);
    for runtime in [Runtime::Tokio, Runtime::AsyncStd] {
        // Nothing is allocated for compression before the first compressed message.
        let held = held_per_compressed_connection(runtime, dedicated.clone(), 0);
        assert!(
            held < 32 * KIB,
            "{runtime}: {} KiB per idle connection with compression agreed",
            held / KIB
        );
        // With context takeover each connection then keeps a compressor (371 KiB) and an
        // inflater (46 KiB) of its own.
        let held = held_per_compressed_connection(runtime, dedicated.clone(), 2);
        assert!(
            held > 400 * KIB,
            "{runtime}: {} KiB per connection with context takeover",
            held / KIB
        );
        // Without, the thread's one compressor and one inflater serve them all.
        let held = held_per_compressed_connection(runtime, shared.clone(), 2);
        assert!(
            held < 32 * KIB,
            "{runtime}: {} KiB per connection without context takeover",
            held / KIB
        );
    }
}
