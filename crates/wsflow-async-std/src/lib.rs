//! async-io / futures-io glue for wsflow, for async-std and smol users: a byte stream that
//! reads into a `BytesMut`, a resettable deadline timer, a TCP listener and a connector.
//! async-std is discontinued upstream; this adapter rests on `async-io` and `futures-io`,
//! which async-std itself was built on and which smol uses. No protocol logic lives here: the
//! `wsflow` crate's driver, written once for every runtime, uses these through its runtime
//! interface.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use wsflow_async_std::{AsyncIoListener, AsyncIoStream};
//!
//! let listener = AsyncIoListener::bind("127.0.0.1:0".parse().unwrap())?;
//! let (socket, peer) = std::future::poll_fn(|cx| listener.poll_accept(cx)).await?;
//! let stream = AsyncIoStream::new(socket);
//! # let _ = (stream, peer);
//! # Ok(()) }
//! ```
// One module reads into uninitialised memory (`uninit_read`, with its safety argument and
// tests against the plain path); everything else is safe code.
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod uninit_read;

use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use async_io::{Async, Timer};
use bytes::BytesMut;
use futures_io::{AsyncRead, AsyncWrite};

/// Any futures-io byte stream (an `Async<TcpStream>`, an async-std or smol `TcpStream`, a
/// TLS stream), with the operations the driver needs.
#[derive(Debug)]
pub struct AsyncIoStream<T>(T, ReadHint);

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncIoStream<T> {
    /// Wraps a stream.
    pub fn new(io: T) -> Self {
        Self(io, ReadHint::default())
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.0
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// Reads into the spare capacity of `buf` and returns the number of bytes appended; 0
    /// means end of file.
    pub fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        read_buf(Pin::new(&mut self.0), cx, buf, &mut self.1)
    }

    /// Reads into `buf` (for layers such as TLS that need a plain slice).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }

    /// Writes several slices with one vectored write where the stream supports it.
    pub fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // One slice (the usual case: small frames are staged together) is a plain `send`,
        // a little cheaper in the kernel than `writev`.
        match bufs {
            [one] => Pin::new(&mut self.0).poll_write(cx, one),
            _ => Pin::new(&mut self.0).poll_write_vectored(cx, bufs),
        }
    }

    /// Flushes buffered writes (a no-op for TCP; TLS streams need it).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    /// Shuts the write half down (sends FIN on TCP).
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// The most bytes one read may take: futures-io reads need initialised memory, so the part
/// of the spare capacity a read may fill is zeroed before it.
const MAX_READ: usize = 64 * 1024;
/// The least bytes one read is offered.
const MIN_READ: usize = 2 * 1024;

/// How much a read is offered: twice what the previous read returned (at least [`MIN_READ`],
/// at most [`MAX_READ`] and the spare capacity), so small messages zero little memory per
/// read (including the read that finds the socket empty) and bulk transfers grow the size.
#[derive(Debug, Clone, Copy)]
struct ReadHint {
    size: usize,
}

impl Default for ReadHint {
    fn default() -> Self {
        Self { size: MIN_READ }
    }
}

fn read_buf<T: AsyncRead>(
    io: Pin<&mut T>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    hint: &mut ReadHint,
) -> Poll<io::Result<usize>> {
    let start = buf.len();
    let room = (buf.capacity() - start).clamp(1, MAX_READ).min(hint.size);
    buf.resize(start + room, 0);
    let result = io.poll_read(cx, &mut buf[start..]);
    let read = match &result {
        Poll::Ready(Ok(n)) => *n,
        _ => 0,
    };
    if let Poll::Ready(Ok(n)) = result {
        // Grow at once, shrink by halves: the last, partial read of a large message does
        // not cut the next message's reads short.
        hint.size = (n * 2).max(hint.size / 2).clamp(MIN_READ, MAX_READ);
    }
    buf.truncate(start + read);
    result
}

/// A TCP stream. Unlike a generic futures-io stream (whose `poll_close` only flushes an
/// `Async<TcpStream>`), shutting it down sends FIN.
#[derive(Debug)]
pub struct AsyncIoTcpStream {
    stream: Async<TcpStream>,
    /// The last read returned less than it was offered: the socket was drained then.
    drained: bool,
    /// The last readiness check returned `Pending` (see [`settle_readiness`]).
    waited: bool,
    /// The last read said `WouldBlock`: an event async-io reports first may be the one
    /// that read used up (see [`AsyncIoTcpStream::poll_read_ready`]).
    found_nothing: bool,
}

/// The spare capacity of `buf` a read may fill, after reserving [`MIN_READ`] in a full buffer.
fn room_to_read(buf: &mut BytesMut) -> usize {
    if buf.capacity() == buf.len() {
        buf.reserve(MIN_READ);
    }
    buf.capacity() - buf.len()
}

/// Whether a wait for readability may end, given async-io's answer and whether the previous
/// wait returned `Pending` (`waited`, updated here).
///
/// async-io's `poll_readable` reports only events delivered in a reactor turn that began
/// after the call that registered the task. An event delivered in the turn already running
/// then (on another thread) wakes the task, yet the next call says `Pending` again and
/// re-arms the interest; if that call also lands in a running turn, the same happens again,
/// so a task that waits for readiness before reading can be woken over and over and never
/// read. async-io's own reads avoid this by reading first. Here a wait that follows a
/// `Pending` one ends at once: the caller reads, and only a read that finds nothing waits
/// again.
fn settle_readiness(readable: Poll<io::Result<()>>, waited: &mut bool) -> Poll<io::Result<()>> {
    if readable.is_pending() && !std::mem::replace(waited, true) {
        return Poll::Pending;
    }
    *waited = false;
    match readable {
        Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
        _ => Poll::Ready(Ok(())),
    }
}

impl AsyncIoTcpStream {
    /// Wraps a connected socket.
    pub fn new(stream: Async<TcpStream>) -> Self {
        Self {
            stream,
            drained: false,
            waited: false,
            found_nothing: false,
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &Async<TcpStream> {
        &self.stream
    }

    /// Whether the last read returned less than it was offered: the socket was drained then,
    /// and [`AsyncIoTcpStream::poll_read_buf`] would wait for readiness before reading
    /// again. A caller can ask [`AsyncIoTcpStream::poll_read_ready`] first instead,
    /// and prepare a buffer only once there is something to read.
    pub fn last_read_drained(&self) -> bool {
        self.drained
    }

    /// Ready when the socket may have something to read (data, end of file or an error),
    /// without reading. It may also be ready when there is nothing to read (a read then
    /// says `WouldBlock`), but never stays pending once something has arrived: a check
    /// that follows a pending one is ready, however async-io answers.
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut readable = self.stream.poll_readable(cx);
        // async-io's `poll_readable` first reports, once, an event delivered since the last
        // wait registered, and after a read that found nothing such an event has usually
        // been used up: it woke this task for the data an earlier read took. So a ready
        // answer then is asked again; the second call registers the wait, and epoll reports
        // at once a socket that is readable by then, so nothing is missed. (async-io's own
        // `poll_read` reads again instead, and finds nothing.)
        if std::mem::take(&mut self.found_nothing) && matches!(readable, Poll::Ready(Ok(()))) {
            readable = self.stream.poll_readable(cx);
        }
        std::task::ready!(settle_readiness(readable, &mut self.waited))?;
        self.drained = false;
        Poll::Ready(Ok(()))
    }

    /// Reads what has arrived into the spare capacity of `buf` (reserving room if it has
    /// none), now: no waiting, and no registering for a wake-up. Returns the number of bytes
    /// appended (0: end of file), or `WouldBlock` when nothing has arrived.
    ///
    /// After a read that drained the socket, async-io would arm its one-shot interest again
    /// (an `epoll_ctl`) to wait; the driver uses this instead to read again once other
    /// tasks have run, guessing that the peer's next bytes came meanwhile.
    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let offered = room_to_read(buf);
        loop {
            #[cfg(test)]
            tests::RECV_CALLS.set(tests::RECV_CALLS.get() + 1);
            match uninit_read::recv_into_spare(self.stream.get_ref(), buf) {
                Ok(n) => {
                    self.waited = false;
                    self.drained = n > 0 && n < offered;
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.found_nothing = err.kind() == io::ErrorKind::WouldBlock;
                    return Err(err);
                }
            }
        }
    }

    /// Reads into the spare capacity of `buf` and returns the number of bytes appended; 0
    /// means end of file.
    pub fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        let offered = room_to_read(buf);
        self.poll_recv(cx, offered, |stream| {
            uninit_read::recv_into_spare(stream, buf)
        })
    }

    /// Reads into `buf` (for layers such as TLS that need a plain slice), as
    /// [`AsyncIoTcpStream::poll_read_buf`] does.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let offered = buf.len();
        self.poll_recv(cx, offered, |mut stream| stream.read(buf))
    }

    /// Makes `recv`, a read of at most `offered` bytes, once the socket may have something;
    /// waits when it has nothing.
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        offered: usize,
        mut recv: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if self.drained {
            // The last read drained the socket: wait for readiness rather than make a read
            // that would only say `WouldBlock` (async-io re-arms its one-shot interest here).
            std::task::ready!(self.poll_read_ready(cx))?;
        }
        loop {
            // This read settles any earlier wait.
            self.waited = false;
            #[cfg(test)]
            tests::RECV_CALLS.set(tests::RECV_CALLS.get() + 1);
            match recv(self.stream.get_ref()) {
                Ok(n) => {
                    // A TCP read returns less than it is offered only when it took all there
                    // was, large or small: a read made at once would nearly always say
                    // `WouldBlock` (measured at 64 KiB: one of those per message, each about
                    // as costly as the wait it precedes).
                    self.drained = n > 0 && n < offered;
                    return Poll::Ready(Ok(n));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.found_nothing = true;
                    std::task::ready!(self.poll_read_ready(cx))?;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }

    /// Writes `bufs` now (one `send`, or one `sendmsg` for several slices), without waiting
    /// or registering for a wake-up: the number of bytes written, or `WouldBlock` when the
    /// socket is full, to be followed by [`AsyncIoTcpStream::poll_write_vectored`], which
    /// waits for room.
    pub fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut stream = self.stream.get_ref();
        match bufs {
            [one] => stream.write(one),
            _ => stream.write_vectored(bufs),
        }
    }

    /// Writes several slices with one `writev`.
    pub fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // One slice (the usual case: small frames are staged together) is a plain `send`,
        // a little cheaper in the kernel than `writev`.
        match bufs {
            [one] => Pin::new(&mut self.stream).poll_write(cx, one),
            _ => Pin::new(&mut self.stream).poll_write_vectored(cx, bufs),
        }
    }

    /// Nothing to flush on a TCP socket.
    pub fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts the write half down (sends FIN).
    pub fn poll_shutdown(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.stream.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

/// A timer firing at a deadline that can be moved.
#[derive(Debug)]
pub struct AsyncIoTimer(Timer);

impl AsyncIoTimer {
    /// A timer firing at `deadline`.
    pub fn new(deadline: Instant) -> Self {
        Self(Timer::at(deadline))
    }

    /// Moves the deadline.
    pub fn reset(&mut self, deadline: Instant) {
        self.0.set_at(deadline);
    }

    /// Ready once the deadline has passed.
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// A TCP listener.
#[derive(Debug)]
pub struct AsyncIoListener {
    listener: Async<TcpListener>,
    /// Set when an accept found no connection waiting: the next poll waits for readiness
    /// instead of making an `accept` call that would fail again (and make async-io re-arm
    /// its interest), which matters when the accepting task is polled for other reasons.
    drained: AtomicBool,
    /// The last wait for a connection returned `Pending` (see [`settle_readiness`]).
    waited: AtomicBool,
}

impl AsyncIoListener {
    /// Binds to `addr` (port 0 picks a free port).
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Async::<TcpListener>::bind(addr).map(Self::wrap)
    }

    /// Wraps a standard listener the application already bound.
    pub fn from_std(listener: TcpListener) -> io::Result<Self> {
        Async::new(listener).map(Self::wrap)
    }

    fn wrap(listener: Async<TcpListener>) -> Self {
        Self {
            listener,
            drained: AtomicBool::new(false),
            waited: AtomicBool::new(false),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.get_ref().local_addr()
    }

    /// Accepts the next connection.
    pub fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Async<TcpStream>, SocketAddr)>> {
        loop {
            if self.drained.load(Ordering::Relaxed) {
                let readable = self.listener.poll_readable(cx);
                let mut waited = self.waited.load(Ordering::Relaxed);
                let settled = settle_readiness(readable, &mut waited);
                self.waited.store(waited, Ordering::Relaxed);
                std::task::ready!(settled)?;
                self.drained.store(false, Ordering::Relaxed);
            }
            match self.listener.get_ref().accept() {
                Ok((stream, addr)) => return Poll::Ready(Async::new(stream).map(|s| (s, addr))),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.drained.store(true, Ordering::Relaxed);
                }
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

/// Connects to `host:port` (resolving the name on a blocking thread if it is not an IP
/// address) with Nagle's algorithm off when `nodelay` is set. Each resolved address is tried
/// in turn.
pub async fn connect(host: &str, port: u16, nodelay: bool) -> io::Result<Async<TcpStream>> {
    let addrs: Vec<SocketAddr> = match host.trim_start_matches('[').trim_end_matches(']').parse() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let host = host.to_owned();
            blocking::unblock(move || {
                (host.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect)
            })
            .await?
        }
    };
    let mut last_error =
        io::Error::new(io::ErrorKind::NotFound, "host name resolved to no address");
    for addr in addrs {
        match Async::<TcpStream>::connect(addr).await {
            Ok(stream) => {
                stream.get_ref().set_nodelay(nodelay)?;
                return Ok(stream);
            }
            Err(err) => last_error = err,
        }
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};
    use std::time::Duration;

    thread_local! {
        /// How many reads `AsyncIoTcpStream`s have made on this thread.
        pub(crate) static RECV_CALLS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn reads_append_to_the_buffer_and_timers_fire() {
        async_io::block_on(async {
            let listener = AsyncIoListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = listener.local_addr().unwrap();
            let writer = std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(b"hello").unwrap();
            });
            let (socket, _) = poll_fn(|cx| listener.poll_accept(cx)).await.unwrap();
            let mut stream = AsyncIoStream::new(socket);
            let mut buf = BytesMut::from(&b"> "[..]);
            loop {
                let n = poll_fn(|cx| stream.poll_read_buf(cx, &mut buf))
                    .await
                    .unwrap();
                if n == 0 {
                    break;
                }
            }
            assert_eq!(&buf[..], b"> hello");
            writer.join().unwrap();

            let mut timer = AsyncIoTimer::new(Instant::now() + Duration::from_secs(3600));
            timer.reset(Instant::now() + Duration::from_millis(10));
            poll_fn(|cx| timer.poll_elapsed(cx)).await;
        });
    }

    /// A connected client socket and the server's end of it as an `AsyncIoTcpStream`.
    fn loopback_pair() -> (TcpStream, AsyncIoTcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, _) = listener.accept().unwrap();
        (client, AsyncIoTcpStream::new(Async::new(socket).unwrap()))
    }

    #[test]
    fn try_write_sends_now_until_the_socket_is_full_then_poll_write_takes_over() {
        let (mut client, mut stream) = loopback_pair();
        let one = stream.try_write_vectored(&[IoSlice::new(b"one ")]).unwrap();
        let more = stream
            .try_write_vectored(&[IoSlice::new(b"two "), IoSlice::new(b"three")])
            .unwrap();
        assert_eq!((one, more), (4, 9));
        let mut got = [0u8; 13];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"one two three");
        // Nobody reads: the socket fills, and the write says so instead of waiting.
        let chunk = vec![7u8; 64 * 1024];
        let mut written = 0usize;
        let full = loop {
            match stream.try_write_vectored(&[IoSlice::new(&chunk)]) {
                Ok(n) => written += n,
                Err(err) => break err,
            }
            assert!(written < 1 << 30, "the socket never filled");
        };
        assert_eq!(full.kind(), io::ErrorKind::WouldBlock);
        // The waiting write is woken once the client makes room, and everything arrives.
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0usize;
            while total < written + chunk.len() {
                let n = client.read(&mut buf).unwrap();
                assert!(n > 0 && buf[..n].iter().all(|&b| b == 7));
                total += n;
            }
        });
        async_io::block_on(async {
            let rest = vec![7u8; 64 * 1024];
            let mut rest = &rest[..];
            while !rest.is_empty() {
                let n = poll_fn(|cx| stream.poll_write_vectored(cx, &[IoSlice::new(rest)]))
                    .await
                    .unwrap();
                rest = &rest[n..];
            }
        });
        reader.join().unwrap();
    }

    /// Waits until `condition` holds, checking every millisecond, for at most 5 s.
    fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !condition() {
            assert!(Instant::now() < deadline, "not within 5 s: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Counts the wake-ups of a waker.
    #[derive(Debug, Default)]
    struct WakeCount(AtomicUsize);

    impl Wake for WakeCount {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waker for polling by hand whose wake-ups are counted: async-io's reactor wakes it
    /// when it delivers an event to a wait registered with it. A test polls with one such
    /// waker throughout, so async-io keeps a wait's waker from poll to poll (`will_wake`), as
    /// it does `Waker::noop()`.
    struct CountedWaker {
        count: Arc<WakeCount>,
        waker: Waker,
    }

    impl CountedWaker {
        fn new() -> Self {
            let count = Arc::new(WakeCount::default());
            let waker = Waker::from(Arc::clone(&count));
            Self { count, waker }
        }

        fn wakes(&self) -> usize {
            self.count.0.load(Ordering::SeqCst)
        }

        /// Waits (at most 5 s) until the waker has been woken more than `wakes` times in all.
        fn wait_for_wake_after(&self, wakes: usize) {
            wait_until("a wake-up from async-io's reactor", || self.wakes() > wakes);
        }
    }

    /// Waits (at most 5 s) until async-io's reactor has run a turn that began after this call:
    /// a 1 ms timer, polled by hand, is woken by it. Every event the reactor could deliver
    /// when this was called (a socket already readable while a wait is armed for it) has been
    /// delivered by then: the turn that fires the timer collects the ready sockets before it
    /// wakes anyone.
    fn wait_for_the_reactor() {
        let woken = CountedWaker::new();
        let mut cx = Context::from_waker(&woken.waker);
        loop {
            let mut timer = Timer::after(Duration::from_millis(1));
            if Pin::new(&mut timer).poll(&mut cx).is_pending() {
                woken.wait_for_wake_after(0);
                return;
            }
            // The millisecond passed before the timer was registered: again.
        }
    }

    /// Waits (at most 5 s) until the bytes waiting in `socket` end with `expected`, peeking:
    /// nothing is read, so neither the stream's state nor [`RECV_CALLS`] changes.
    fn wait_for_bytes(socket: &TcpStream, expected: &[u8]) {
        let mut peeked = vec![0u8; expected.len() + 64 * 1024];
        wait_until("the bytes sent arriving", || {
            match socket.peek(&mut peeked) {
                Ok(n) => peeked[..n].ends_with(expected),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => false,
                Err(err) => panic!("{err}"),
            }
        });
    }

    /// Runs `check` by hand with `waker` until it returns true, at most `checks` times (no
    /// executor: async-io's own thread runs the reactor turns, nearly always blocked in one).
    /// After each check the reactor runs a turn ([`wait_for_the_reactor`]), as it would
    /// before a task was polled again: an event due to a wait the check armed has been
    /// delivered when the next check (or the caller) goes on.
    fn within(
        waker: &Waker,
        checks: usize,
        mut check: impl FnMut(&mut Context<'_>) -> bool,
    ) -> bool {
        let mut cx = Context::from_waker(waker);
        (0..checks).any(|_| {
            let ready = check(&mut cx);
            wait_for_the_reactor();
            ready
        })
    }

    // An event delivered in the reactor turn that was running when the wait registered still
    // ends the next wait (async-io alone answers `Pending` again and re-arms, turn after turn).
    #[test]
    fn a_wait_for_data_that_arrived_during_a_reactor_turn_ends() {
        let (mut client, mut stream) = loopback_pair();
        let noop = Waker::noop();
        // async-io's thread is up, and blocked in a reactor turn from now on.
        wait_for_the_reactor();
        for round in 0..20u8 {
            // A check registers and says `Pending` (the first may instead report an event
            // left over from the previous round: readiness can be spurious, never late).
            assert!(within(noop, 2, |cx| stream
                .poll_read_ready(cx)
                .is_pending()));
            client.write_all(&[round]).unwrap();
            assert!(within(noop, 2, |cx| stream.poll_read_ready(cx).is_ready()));
            // The read below is made once: the byte is in the socket first.
            wait_for_bytes(stream.get_ref().get_ref(), &[round]);
            let mut buf = BytesMut::with_capacity(16);
            let mut cx = Context::from_waker(noop);
            assert!(matches!(
                stream.poll_read_buf(&mut cx, &mut buf),
                Poll::Ready(Ok(1))
            ));
            assert_eq!(&buf[..], [round]);
            // A small read drained the socket: the next read waits for readiness first.
            assert!(stream.poll_read_buf(&mut cx, &mut buf).is_pending());
            client.write_all(&[round, round]).unwrap();
            wait_for_bytes(stream.get_ref().get_ref(), &[round, round]);
            assert!(within(noop, 2, |cx| stream
                .poll_read_buf(cx, &mut buf)
                .is_ready()));
            assert_eq!(&buf[1..], [round, round]);
        }
    }

    // A read that takes all there is, however large, is followed by a wait, and the wait is
    // not preceded by reads that find nothing. Before, a 60 KB read was followed by two such
    // reads: one made at once, and one after async-io reported the event that had woken the
    // task for the 60 KB. (60 KB fits the loopback socket's buffers, so the blocking write
    // below never waits for this thread to read.)
    #[test]
    fn a_drained_socket_costs_at_most_one_empty_read() {
        let (mut client, mut stream) = loopback_pair();
        let waker = CountedWaker::new();
        let mut cx = Context::from_waker(&waker.waker);
        let data = vec![7u8; 60_000];
        for _ in 0..5 {
            let mut buf = BytesMut::with_capacity(256 * 1024);
            // Registers the wait (the first round finds nothing to read; later rounds first
            // find the event of the previous round).
            assert!(within(&waker.waker, 2, |cx| stream
                .poll_read_buf(cx, &mut buf)
                .is_pending()));
            let wakes = waker.wakes();
            client.write_all(&data).unwrap();
            // The reactor delivers the event (it wakes the wait); the data sits whole in the
            // socket.
            waker.wait_for_wake_after(wakes);
            wait_for_bytes(stream.get_ref().get_ref(), &data);
            let mut received = 0;
            assert!(within(&waker.waker, 50, |cx| {
                if let Poll::Ready(n) = stream.poll_read_buf(cx, &mut buf) {
                    received += n.unwrap();
                }
                received == data.len()
            }));
            assert!(stream.last_read_drained());
            RECV_CALLS.set(0);
            assert!(stream.poll_read_buf(&mut cx, &mut buf).is_pending());
            assert!(RECV_CALLS.get() <= 1, "{}", RECV_CALLS.get());
        }
    }

    // A read that fills its buffer is followed by another read, which finds nothing. The
    // event that woke the task for the data read first is still pending in async-io then; it
    // does not cost a second empty read.
    #[test]
    fn an_event_already_used_costs_no_second_empty_read() {
        let (mut client, mut stream) = loopback_pair();
        // The same socket, to see what has arrived while `read` below borrows the stream.
        let socket = stream.get_ref().get_ref().try_clone().unwrap();
        let waker = CountedWaker::new();
        let mut cx = Context::from_waker(&waker.waker);
        let data = vec![7u8; 40_000];
        for round in 0..6 {
            // Alternately through `poll_read_buf` and through `poll_read` (which TLS uses).
            let mut buf = BytesMut::with_capacity(data.len());
            let mut slice = vec![0; data.len()];
            let mut read = |cx: &mut Context<'_>| {
                if round % 2 == 0 {
                    stream.poll_read_buf(cx, &mut buf)
                } else {
                    stream.poll_read(cx, &mut slice)
                }
            };
            assert!(within(&waker.waker, 2, |cx| read(cx).is_pending()));
            let wakes = waker.wakes();
            client.write_all(&data).unwrap();
            // The reactor delivers the event (it wakes the wait); the data sits whole in the
            // socket.
            waker.wait_for_wake_after(wakes);
            wait_for_bytes(&socket, &data);
            // One read takes it all and fills the buffer, so the socket may not be drained.
            assert!(matches!(read(&mut cx), Poll::Ready(Ok(40_000))));
            RECV_CALLS.set(0);
            assert!(read(&mut cx).is_pending());
            assert_eq!(RECV_CALLS.get(), 1, "round {round}");
        }
    }

    // A read made now takes what came, without waiting. One that finds nothing is followed
    // by a wait that the event async-io kept from the data read before does not end, and
    // that ends when data comes.
    #[test]
    fn a_read_made_now_takes_what_came_and_a_wait_follows_one_that_found_nothing() {
        let (mut client, mut stream) = loopback_pair();
        let noop = Waker::noop();
        let mut cx = Context::from_waker(noop);
        let mut buf = BytesMut::new();
        for round in 0..5u8 {
            client.write_all(&[round]).unwrap();
            wait_for_bytes(stream.get_ref().get_ref(), &[round]);
            assert_eq!(stream.try_read_buf(&mut buf).unwrap(), 1);
            assert!(stream.last_read_drained());
            let nothing = stream.try_read_buf(&mut buf).unwrap_err();
            assert_eq!(nothing.kind(), io::ErrorKind::WouldBlock);
            assert!(
                stream.poll_read_ready(&mut cx).is_pending(),
                "round {round}"
            );
            client.write_all(&[round]).unwrap();
            assert!(within(noop, 2, |cx| stream.poll_read_ready(cx).is_ready()));
            wait_for_bytes(stream.get_ref().get_ref(), &[round]);
            assert_eq!(stream.try_read_buf(&mut buf).unwrap(), 1);
        }
        let sent: Vec<u8> = (0..5u8).flat_map(|round| [round, round]).collect();
        assert_eq!(&buf[..], &sent[..]);
    }

    #[test]
    fn a_wait_for_a_connection_that_arrived_during_a_reactor_turn_ends() {
        let listener = AsyncIoListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let waker = CountedWaker::new();
        // async-io's thread is up, and blocked in a reactor turn from now on.
        wait_for_the_reactor();
        for _ in 0..20 {
            // The check arms the wait; the reactor has delivered every earlier event after it.
            assert!(!within(&waker.waker, 1, |cx| listener
                .poll_accept(cx)
                .is_ready()));
            let wakes = waker.wakes();
            let _client = TcpStream::connect(addr).unwrap();
            // The reactor reports the connection (it wakes the wait): it waits to be accepted.
            waker.wait_for_wake_after(wakes);
            assert!(within(&waker.waker, 2, |cx| listener
                .poll_accept(cx)
                .is_ready()));
        }
    }

    #[test]
    fn connect_resolves_names() {
        async_io::block_on(async {
            let listener = AsyncIoListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let port = listener.local_addr().unwrap().port();
            let stream = connect("localhost", port, true).await.unwrap();
            assert!(stream.get_ref().nodelay().unwrap());
        });
    }
}
