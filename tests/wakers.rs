//! Wakers that `will_wake` does not recognise in their own clones: the standard library says
//! `will_wake` may return false for wakers that wake the same task, and tokio's `block_on`
//! waker does so in release builds (the clone carries another copy of its vtable). A driver
//! that registers its waker until `will_wake` confirms it would spin forever; this polls a
//! connection by hand with such a waker, on both runtimes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::Stream;
use support::*;
use wsflow::codec::{Frame, OpCode};
use wsflow::{Message, Runtime, Server, ServerConfig, WebSocket};

fn clone(data: *const ()) -> RawWaker {
    RawWaker::new(data, &CLONE_VTABLE)
}
fn noop(_: *const ()) {}
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
static CLONE_VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);

/// A waker that does nothing, whose clones have another vtable with the same functions.
fn waker_unlike_its_clones() -> Waker {
    // SAFETY: every function of both vtables ignores the data pointer and does nothing, so
    // any pointer (here null) satisfies the `RawWaker` contract.
    #[allow(unsafe_code)]
    unsafe {
        Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE))
    }
}

/// How many times the counting waker (or a clone of it) was woken.
static WAKES: AtomicUsize = AtomicUsize::new(0);

fn counting_clone(data: *const ()) -> RawWaker {
    RawWaker::new(data, &COUNTING_VTABLE)
}
fn count_wake(_: *const ()) {
    WAKES.fetch_add(1, Ordering::Relaxed);
}
static COUNTING_VTABLE: RawWakerVTable =
    RawWakerVTable::new(counting_clone, count_wake, count_wake, noop);

/// A waker that counts its wakes, and its clones' wakes, in [`WAKES`]; unlike
/// [`waker_unlike_its_clones`], its clones share its vtable, so `will_wake` recognises them
/// (and a runtime's reactor keeps its registration rather than waking the one it replaces).
fn counting_waker() -> Waker {
    // SAFETY: every function of the vtable ignores the data pointer (the count is a static),
    // so any pointer (here null) satisfies the `RawWaker` contract.
    #[allow(unsafe_code)]
    unsafe {
        Waker::from_raw(RawWaker::new(std::ptr::null(), &COUNTING_VTABLE))
    }
}

/// Polls `ws` by hand until it yields, at most for five seconds.
fn poll_until_ready(ws: &mut WebSocket, cx: &mut Context<'_>) -> Option<Message> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Pin::new(&mut *ws).poll_next(cx) {
            Poll::Ready(item) => return item.map(|result| result.unwrap()),
            Poll::Pending if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Poll::Pending => panic!("nothing arrived"),
        }
    }
}

#[test]
fn a_connection_polled_with_a_waker_unlike_its_clones_returns_and_works() {
    on_both_runtimes(|runtime: Runtime| async move {
        let waker = waker_unlike_its_clones();
        assert!(!waker.will_wake(&waker.clone()));
        let mut server = Server::bind("127.0.0.1:0", ServerConfig::default().runtime(runtime))
            .await
            .unwrap();
        let addr = server.local_addr();
        let (send_hello, hello_may_go) = std::sync::mpsc::channel::<()>();
        let (echo_arrived, echo_was_read) = std::sync::mpsc::channel::<()>();
        let (let_client_go, client_may_go) = std::sync::mpsc::channel::<()>();
        let client = std::thread::spawn(move || {
            let mut stream = raw_client(addr);
            stream.write_all(UPGRADE.as_bytes()).unwrap();
            assert!(read_head(&mut stream).starts_with("HTTP/1.1 101"));
            hello_may_go.recv().unwrap();
            let mut frame = BytesMut::new();
            Frame::new(OpCode::Text, "hello")
                .with_mask(Some([1, 2, 3, 4]))
                .encode(&mut frame);
            stream.write_all(&frame).unwrap();
            let mut echo = [0u8; 7];
            stream.read_exact(&mut echo).unwrap();
            assert_eq!(&echo, b"\x81\x05hello");
            // The socket stays open until the server side stops polling: closing it now
            // would let the last polls below see the end of the stream.
            echo_arrived.send(()).unwrap();
            client_may_go.recv().unwrap();
        });
        let mut ws = server.accept().await.unwrap().accept(None).await.unwrap();
        let mut cx = Context::from_waker(&waker);
        // Nothing has arrived yet: each poll registers the waker and returns.
        for _ in 0..3 {
            assert!(Pin::new(&mut ws).poll_next(&mut cx).is_pending());
        }
        send_hello.send(()).unwrap();
        let message = poll_until_ready(&mut ws, &mut cx).unwrap();
        assert_eq!(message, Message::text("hello"));
        // Queued through a sender (the command path), written on the next poll.
        let sender = ws.sender();
        let sending = std::pin::pin!(sender.send(message));
        assert!(sending.poll(&mut cx).is_ready());
        let started = Instant::now();
        // Until the client has read the echo (or failed: the join below reports it).
        while let Err(std::sync::mpsc::TryRecvError::Empty) = echo_was_read.try_recv() {
            assert!(Pin::new(&mut ws).poll_next(&mut cx).is_pending());
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the echo was not written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Idle, the client waiting with its socket open: nothing arrives, and the connection
        // must not keep waking itself (a busy loop, invisible to a waker that does nothing).
        // Polled by hand 51 times over at least 200 ms with a counting waker, it may wake
        // itself only for its read guesses (see `ReadGuess` in the driver): each yield is
        // followed by twice as many waits as the last (1, 2, 4, ... up to 64), so about 5
        // yields in 50 polls, and on a busy executor (not here: no other connection runs on
        // this thread) at most 8 more after a miss. A driver waking itself on every poll
        // would count about 50.
        let counting = counting_waker();
        let mut idle_cx = Context::from_waker(&counting);
        let wakes_before = WAKES.load(Ordering::Relaxed);
        // The first poll puts the counting waker in place of the other one.
        assert!(Pin::new(&mut ws).poll_next(&mut idle_cx).is_pending());
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(4));
            assert!(Pin::new(&mut ws).poll_next(&mut idle_cx).is_pending());
        }
        let wakes = WAKES.load(Ordering::Relaxed) - wakes_before;
        assert!(
            wakes <= 16,
            "an idle connection woke itself {wakes} times in 51 polls"
        );
        let _ = let_client_go.send(());
        client.join().unwrap();
    });
}
