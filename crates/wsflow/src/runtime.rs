//! The runtime interface the driver is written against, and the choice of runtime.
//!
//! The driver (`driver.rs`) is written once against three small object-safe traits: a byte
//! stream that reads into a `BytesMut` and writes vectored, a resettable timer, and a
//! listener. Each runtime module (`rt_tokio.rs`, `rt_async_std.rs`) maps them onto its glue
//! crate in a few lines; no protocol logic lives there.

use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;

/// A byte stream the driver reads from and writes to.
pub(crate) trait Transport: Send + Unpin {
    /// Appends what can be read now to the spare capacity of `buf`; 0 means end of file.
    fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>>;
    /// Ready when a read would make progress (data, end of file or an error), without
    /// reading: lets an idle connection wait without holding a read buffer. Transports that
    /// cannot tell (TLS, which may hold decrypted bytes) are always ready.
    fn poll_read_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    /// Whether the last read returned less than it was offered, leaving nothing to read
    /// until the transport reports more (`poll_read_ready`). Only transports whose
    /// readiness is exact say so.
    fn read_drained(&self) -> bool {
        false
    }
    /// Reads what has arrived into the spare capacity of `buf`, now, without waiting or
    /// registering for a wake-up, even where the runtime still holds the transport "not
    /// readable" after a drained read; `WouldBlock` when nothing has. Asked only of
    /// transports that report `read_drained`.
    fn try_read_buf(&mut self, _buf: &mut BytesMut) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    /// Reads into a slice (for layers such as TLS).
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;
    /// Writes what fits now, without registering for a wake-up and without the runtime's
    /// per-operation bookkeeping (tokio's cooperative budget); `WouldBlock` when nothing fits
    /// or the transport cannot tell. The driver calls it only on the way to a read, which
    /// yields or waits in turn, and falls back to `poll_write_vectored` on `WouldBlock`.
    fn try_write_vectored(&mut self, _bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Shuts the write half down.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A timer with a movable deadline: a runtime's timer with the deadline it is armed for (see
/// [`ArmedTimer`]).
pub(crate) trait Timer: Send + Unpin {
    /// Moves the deadline.
    fn reset(&mut self, deadline: Instant);
    /// Ready once the deadline has passed.
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// Ready once `deadline` has passed. A timer armed at or before `deadline` is left as
    /// it is: it fires early at worst, and is moved on the next poll. This avoids moving
    /// the timer on every read that pushes the keepalive back.
    fn poll_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()>;
}

/// A runtime's timer with a movable deadline.
pub(crate) trait RuntimeTimer: Send + Unpin {
    fn reset(&mut self, deadline: Instant);
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// A runtime's timer and the deadline it is armed for, in the timer's allocation rather
/// than in the driver: a connection without deadlines (keepalive off, not closing) has no
/// timer, and every connection's size counts when a server holds many idle ones.
#[derive(Debug)]
pub(crate) struct ArmedTimer<T> {
    timer: T,
    /// `None` once it fired.
    armed: Option<Instant>,
}

impl<T> ArmedTimer<T> {
    /// `timer`, created for `deadline`.
    pub(crate) fn new(timer: T, deadline: Instant) -> Self {
        Self {
            timer,
            armed: Some(deadline),
        }
    }
}

impl<T: RuntimeTimer> Timer for ArmedTimer<T> {
    fn reset(&mut self, deadline: Instant) {
        self.timer.reset(deadline);
        self.armed = Some(deadline);
    }

    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let elapsed = self.timer.poll_elapsed(cx);
        if elapsed.is_ready() {
            self.armed = None;
        }
        elapsed
    }

    fn poll_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if self.armed.is_none_or(|armed| armed > deadline) {
            self.reset(deadline);
        }
        self.poll_elapsed(cx)
    }
}

/// A TCP listener producing transports.
pub(crate) trait Listener: Send + Sync {
    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Box<dyn Transport>, SocketAddr)>>;
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// The async runtime that drives sockets and timers.
///
/// Enabled by cargo features: `tokio` (the default) and `async-std` (built on `async-io`, so
/// it serves smol users too). Both may be enabled at once; [`Runtime::default`] prefers tokio.
///
/// ```
/// use wsflow::Runtime;
///
/// let runtime: Runtime = "tokio".parse().unwrap();
/// assert_eq!(runtime, Runtime::Tokio);
/// assert_eq!(runtime.to_string(), "tokio");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Runtime {
    /// Tokio (feature `tokio`). Sockets and timers need a tokio runtime with I/O and time
    /// enabled.
    #[cfg(feature = "tokio")]
    Tokio,
    /// async-io, the reactor of async-std and smol (feature `async-std`).
    #[cfg(feature = "async-std")]
    AsyncStd,
}

#[allow(clippy::derivable_impls)]
impl Default for Runtime {
    fn default() -> Self {
        #[cfg(feature = "tokio")]
        {
            Self::Tokio
        }
        #[cfg(not(feature = "tokio"))]
        {
            Self::AsyncStd
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match *self {
            #[cfg(feature = "tokio")]
            Self::Tokio => "tokio",
            #[cfg(feature = "async-std")]
            Self::AsyncStd => "async-std",
        })
    }
}

impl FromStr for Runtime {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            #[cfg(feature = "tokio")]
            "tokio" => Ok(Self::Tokio),
            #[cfg(feature = "async-std")]
            "async-std" | "async_std" | "smol" => Ok(Self::AsyncStd),
            other => Err(format!(
                "unknown or disabled runtime `{other}` (enabled: {})",
                [
                    #[cfg(feature = "tokio")]
                    "tokio",
                    #[cfg(feature = "async-std")]
                    "async-std",
                ]
                .join(", ")
            )),
        }
    }
}

impl Runtime {
    pub(crate) fn timer(self, deadline: Instant) -> Box<dyn Timer> {
        match self {
            #[cfg(feature = "tokio")]
            Self::Tokio => crate::rt_tokio::timer(deadline),
            #[cfg(feature = "async-std")]
            Self::AsyncStd => crate::rt_async_std::timer(deadline),
        }
    }

    pub(crate) async fn bind(
        self,
        addr: SocketAddr,
        nodelay: bool,
    ) -> io::Result<Box<dyn Listener>> {
        match self {
            #[cfg(feature = "tokio")]
            Self::Tokio => crate::rt_tokio::bind(addr, nodelay).await,
            #[cfg(feature = "async-std")]
            Self::AsyncStd => crate::rt_async_std::bind(addr, nodelay),
        }
    }

    pub(crate) fn listener_from_std(
        self,
        listener: std::net::TcpListener,
        nodelay: bool,
    ) -> io::Result<Box<dyn Listener>> {
        match self {
            #[cfg(feature = "tokio")]
            Self::Tokio => crate::rt_tokio::from_std(listener, nodelay),
            #[cfg(feature = "async-std")]
            Self::AsyncStd => crate::rt_async_std::from_std(listener, nodelay),
        }
    }

    /// Connects to `host:port`; returns the transport and the peer's address.
    pub(crate) async fn connect(
        self,
        host: &str,
        port: u16,
        nodelay: bool,
    ) -> io::Result<(Box<dyn Transport>, Option<SocketAddr>)> {
        match self {
            #[cfg(feature = "tokio")]
            Self::Tokio => crate::rt_tokio::connect(host, port, nodelay).await,
            #[cfg(feature = "async-std")]
            Self::AsyncStd => crate::rt_async_std::connect(host, port, nodelay).await,
        }
    }
}

/// Runs `future` until it finishes or `timer` elapses (`None`).
pub(crate) async fn with_deadline<F: std::future::Future>(
    timer: &mut dyn Timer,
    future: F,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if timer.poll_elapsed(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// Writes all of `bytes` (used for handshake responses, before the driver takes over).
pub(crate) async fn write_all(io: &mut dyn Transport, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n =
            std::future::poll_fn(|cx| io.poll_write_vectored(cx, &[IoSlice::new(bytes)])).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    std::future::poll_fn(|cx| io.poll_flush(cx)).await
}

/// [`write_all`], failing with `TimedOut` if the peer has not taken the bytes by `deadline`:
/// a peer that does not read cannot keep a handshake's answer (and whoever awaits it)
/// waiting for ever. The timer is made only if the write has to wait.
pub(crate) async fn write_all_by(
    io: &mut dyn Transport,
    bytes: &[u8],
    runtime: Runtime,
    deadline: Instant,
) -> io::Result<()> {
    let mut timer: Option<Box<dyn Timer>> = None;
    let mut write = std::pin::pin!(write_all(io, bytes));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = write.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        let timer = timer.get_or_insert_with(|| runtime.timer(deadline));
        if timer.poll_elapsed(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer did not take the handshake's answer in time",
            )));
        }
        Poll::Pending
    })
    .await
}

/// The instant `timeout` from now, or a century away where that cannot be represented: a
/// timeout set to `Duration::MAX` means "never", not a panic.
pub(crate) fn deadline_in(timeout: std::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Writes an answer that ends the exchange (an HTTP error) and shuts the write half down,
/// giving up on both after `timeout`. Gives the write's outcome; the shutdown's is ignored
/// (the peer may be gone already).
pub(crate) async fn answer_and_shut_down(
    io: &mut dyn Transport,
    answer: &[u8],
    runtime: Runtime,
    timeout: std::time::Duration,
) -> io::Result<()> {
    let deadline = deadline_in(timeout);
    write_all_by(io, answer, runtime, deadline).await?;
    let mut timer = runtime.timer(deadline);
    let _ = with_deadline(&mut *timer, shutdown(io)).await;
    Ok(())
}

/// Shuts the write half down, ignoring errors (the peer may already be gone).
pub(crate) async fn shutdown(io: &mut dyn Transport) {
    let _ = std::future::poll_fn(|cx| io.poll_shutdown(cx)).await;
}
