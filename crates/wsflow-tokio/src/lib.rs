//! Tokio glue for wsflow: a byte stream that reads into a `BytesMut`'s spare capacity, a read
//! and a write of a TCP socket that do not wait ([`try_read_buf`], [`try_write_vectored`]),
//! a resettable deadline timer, a TCP listener and a connector. No protocol logic lives here:
//! the `wsflow` crate's driver, written once for every runtime, uses these through its
//! runtime interface.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use wsflow_tokio::{TokioListener, TokioStream};
//!
//! let listener = TokioListener::bind("127.0.0.1:0".parse().unwrap()).await?;
//! let (socket, peer) = std::future::poll_fn(|cx| listener.poll_accept(cx)).await?;
//! let stream = TokioStream::new(socket);
//! # let _ = (stream, peer);
//! # Ok(()) }
//! ```
// One module reads into uninitialised memory without asking tokio's readiness first
// (`uninit_read`, with its safety argument and tests against tokio's own read); everything
// else is safe code.
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod uninit_read;

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// Any tokio byte stream (TCP, TLS, an upgraded hyper connection), with the operations the
/// driver needs.
#[derive(Debug)]
pub struct TokioStream<T>(T);

impl<T: AsyncRead + AsyncWrite + Unpin> TokioStream<T> {
    /// Wraps a stream.
    pub fn new(io: T) -> Self {
        Self(io)
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.0
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// Reads into the spare capacity of `buf` (no zero-filling) and returns the number of
    /// bytes appended; 0 means end of file.
    pub fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        tokio_util::io::poll_read_buf(Pin::new(&mut self.0), cx, buf)
    }

    /// Reads into `buf` (for layers such as TLS that need a plain slice).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut read_buf = tokio::io::ReadBuf::new(buf);
        std::task::ready!(Pin::new(&mut self.0).poll_read(cx, &mut read_buf))?;
        Poll::Ready(Ok(read_buf.filled().len()))
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
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Reads what has arrived on `stream` into the spare capacity of `buf` (reserving room if it
/// has none), now: no waiting, and no asking tokio first whether the socket is readable.
/// Returns the number of bytes appended (0: end of file), or `WouldBlock` when nothing has
/// arrived; it never registers for a wake-up.
///
/// `stream` is tokio's `TcpStream`, or std's for a socket taken out of the reactor (any
/// socket `socket2` can borrow).
///
/// tokio holds a socket "not readable" from the read that drained it until its reactor
/// reports new data, and under load the reactor turns only when the scheduler runs out of
/// tasks (or every so many of them). The driver uses this to read a drained socket again
/// once other tasks have run, guessing that the peer's next bytes came meanwhile, without
/// the wait (and, on a busy executor, after a guess that found nothing, to guess again
/// rather than wait for a reactor that turns only every so many tasks).
///
/// ```no_run
/// # async fn example(stream: tokio::net::TcpStream) -> std::io::Result<()> {
/// let mut buf = bytes::BytesMut::new();
/// match wsflow_tokio::try_read_buf(&stream, &mut buf) {
///     Ok(0) => println!("end of file"),
///     Ok(n) => println!("{n} bytes"),
///     Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => stream.readable().await?,
///     Err(err) => return Err(err),
/// }
/// # Ok(()) }
/// ```
pub fn try_read_buf<S>(stream: &S, buf: &mut BytesMut) -> io::Result<usize>
where
    for<'s> socket2::SockRef<'s>: From<&'s S>,
{
    if buf.capacity() == buf.len() {
        buf.reserve(MIN_READ);
    }
    uninit_read::recv_into_spare(stream, buf)
}

/// Writes `bufs` (one `send`, or one `sendmsg` for several slices) to `stream` now: no
/// waiting, and no asking tokio first whether the socket is writable, nor any of the
/// bookkeeping of its `poll_write` (the cooperative budget, the waker). Returns the number of
/// bytes written, or `WouldBlock` when the socket is full; it never registers for a wake-up,
/// so follow a `WouldBlock` with tokio's `poll_write` (or `writable`), which writes again
/// and registers. Like [`try_read_buf`], it takes std's `TcpStream` too.
///
/// ```no_run
/// # async fn example(stream: tokio::net::TcpStream) -> std::io::Result<()> {
/// use std::io::IoSlice;
/// use tokio::io::AsyncWriteExt;
///
/// let (header, payload) = (b"\x82\x05", b"hello");
/// let bufs = [IoSlice::new(header), IoSlice::new(payload)];
/// match wsflow_tokio::try_write_vectored(&stream, &bufs) {
///     Ok(n) => println!("{n} bytes written"),
///     Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
///         let mut stream = stream;
///         stream.write_vectored(&bufs).await?;
///     }
///     Err(err) => return Err(err),
/// }
/// # Ok(()) }
/// ```
pub fn try_write_vectored<S>(stream: &S, bufs: &[IoSlice<'_>]) -> io::Result<usize>
where
    for<'s> socket2::SockRef<'s>: From<&'s S>,
{
    let socket = socket2::SockRef::from(stream);
    match bufs {
        [one] => socket.send_with_flags(one, SEND_FLAGS),
        _ => socket.send_vectored_with_flags(bufs, SEND_FLAGS),
    }
}

/// Flags of [`try_write_vectored`]'s `send`: where the system has it, no `SIGPIPE` for a peer
/// that has gone (an `EPIPE` error instead), as std's and so tokio's own writes ask.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris"
))]
const SEND_FLAGS: std::ffi::c_int = libc::MSG_NOSIGNAL;
/// Elsewhere (Apple's systems set `SO_NOSIGPIPE` on the socket instead; Windows has no
/// signals), no flags.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris"
)))]
const SEND_FLAGS: std::ffi::c_int = 0;

/// Room reserved for a read into a full buffer.
const MIN_READ: usize = 4096;

/// A timer firing at a deadline that can be moved.
#[derive(Debug)]
pub struct TokioTimer(Pin<Box<tokio::time::Sleep>>);

impl TokioTimer {
    /// A timer firing at `deadline`. Must be created inside a tokio runtime with time enabled.
    pub fn new(deadline: Instant) -> Self {
        Self(Box::pin(tokio::time::sleep_until(deadline.into())))
    }

    /// Moves the deadline.
    pub fn reset(&mut self, deadline: Instant) {
        self.0.as_mut().reset(deadline.into());
    }

    /// Ready once the deadline has passed.
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

use std::future::Future as _;

/// A TCP listener.
#[derive(Debug)]
pub struct TokioListener(TcpListener);

impl TokioListener {
    /// Binds to `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        TcpListener::bind(addr).await.map(Self)
    }

    /// Wraps a listener the application already bound.
    pub fn from_listener(listener: TcpListener) -> Self {
        Self(listener)
    }

    /// Wraps a standard listener (it is switched to non-blocking mode).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        TcpListener::from_std(listener).map(Self)
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    /// Accepts the next connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.0.poll_accept(cx)
    }
}

/// Connects to `host:port` (resolving the name if it is not an IP address) with Nagle's
/// algorithm off when `nodelay` is set.
pub async fn connect(host: &str, port: u16, nodelay: bool) -> io::Result<TcpStream> {
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(nodelay)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn try_write_sends_now_until_the_socket_is_full_then_poll_write_takes_over() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sender = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut receiver, _) = listener.accept().await.unwrap();
        // One slice and several, in order.
        let one = try_write_vectored(&sender, &[IoSlice::new(b"one ")]).unwrap();
        let several = [IoSlice::new(b"two "), IoSlice::new(b"three")];
        let more = try_write_vectored(&sender, &several).unwrap();
        assert_eq!((one, more), (4, 9));
        let mut got = [0u8; 13];
        receiver.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two three");
        // Nobody reads: the socket fills, and the write says so instead of waiting.
        let chunk = vec![7u8; 64 * 1024];
        let mut written = 0usize;
        let full = loop {
            match try_write_vectored(&sender, &[IoSlice::new(&chunk)]) {
                Ok(n) => written += n,
                Err(err) => break err,
            }
            assert!(written < 1 << 30, "the socket never filled");
        };
        assert_eq!(full.kind(), io::ErrorKind::WouldBlock);
        // tokio's write then waits for room, and is woken once the reader makes some.
        let mut stream = TokioStream::new(sender);
        let reader = tokio::spawn(async move {
            let mut total = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            while total < written + chunk.len() {
                let n = receiver.read(&mut buf).await.unwrap();
                assert!(buf[..n].iter().all(|&b| b == 7));
                total += n;
            }
        });
        let mut rest = &vec![7u8; 64 * 1024][..];
        while !rest.is_empty() {
            let n = poll_fn(|cx| stream.poll_write_vectored(cx, &[IoSlice::new(rest)]))
                .await
                .unwrap();
            rest = &rest[n..];
        }
        tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn try_write_to_a_reset_connection_fails_with_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sender = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (receiver, _) = listener.accept().await.unwrap();
        // Closing with unread data resets the connection. (The test process ignores SIGPIPE,
        // as every Rust program does: what `MSG_NOSIGNAL` adds is the same for hosts that
        // do not.)
        try_write_vectored(&sender, &[IoSlice::new(b"unread")]).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(receiver);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut failed = None;
        for _ in 0..100 {
            match try_write_vectored(&sender, &[IoSlice::new(b"more")]) {
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        let err = failed.expect("writes to a reset connection fail");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn reads_append_to_the_buffer_and_writes_are_vectored() {
        let listener = TokioListener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut stream = connect("127.0.0.1", addr.port(), true).await.unwrap();
            stream.write_all(b"hello").await.unwrap();
            stream.shutdown().await.unwrap();
        });
        let (socket, _) = poll_fn(|cx| listener.poll_accept(cx)).await.unwrap();
        let mut stream = TokioStream::new(socket);
        let mut buf = BytesMut::from(&b"> "[..]);
        buf.reserve(64);
        let mut total = 0;
        loop {
            let n = poll_fn(|cx| stream.poll_read_buf(cx, &mut buf))
                .await
                .unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, 5);
        assert_eq!(&buf[..], b"> hello");
        client.await.unwrap();
    }

    #[tokio::test]
    async fn timers_fire_and_move() {
        let mut timer = TokioTimer::new(Instant::now() + Duration::from_secs(3600));
        timer.reset(Instant::now() + Duration::from_millis(10));
        poll_fn(|cx| timer.poll_elapsed(cx)).await;
    }
}
