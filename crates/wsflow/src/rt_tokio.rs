//! The tokio runtime: wsflow-tokio's glue behind the driver's runtime interface.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wsflow_tokio::{TokioListener, TokioStream, TokioTimer};

use crate::runtime::{ArmedTimer, Listener, RuntimeTimer, Timer, Transport};

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for TokioStream<T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        TokioStream::poll_read(self, cx, buf)
    }
    fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        TokioStream::poll_read_buf(self, cx, buf)
    }
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        TokioStream::poll_write_vectored(self, cx, bufs)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TokioStream::poll_flush(self, cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TokioStream::poll_shutdown(self, cx)
    }
}

/// A plain TCP stream: a stream like any other that can also wait for readiness without a
/// buffer.
struct TcpTransport {
    stream: TokioStream<TcpStream>,
    /// The last read returned less than it was offered. tokio then clears the socket's
    /// readiness, so the next read would say `Pending` until the reactor reports new data.
    drained: bool,
}

impl TcpTransport {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream: TokioStream::new(stream),
            drained: false,
        }
    }
}

impl Transport for TcpTransport {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.get_ref().poll_read_ready(cx)
    }
    fn read_drained(&self) -> bool {
        self.drained
    }
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let filled = buf.len();
        let read = wsflow_tokio::try_read_buf(self.stream.get_ref(), buf);
        // Measured after the read, which reserves room in a full buffer.
        let offered = buf.capacity() - filled;
        self.drained = matches!(read, Ok(n) if n < offered);
        read
    }
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_read(cx, buf)
    }
    fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        let offered = buf.capacity() - buf.len();
        let read = std::task::ready!(self.stream.poll_read_buf(cx, buf));
        self.drained = matches!(read, Ok(n) if n < offered);
        Poll::Ready(read)
    }
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write_vectored(cx, bufs)
    }
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        wsflow_tokio::try_write_vectored(self.stream.get_ref(), bufs)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_shutdown(cx)
    }
}

impl RuntimeTimer for TokioTimer {
    fn reset(&mut self, deadline: Instant) {
        TokioTimer::reset(self, deadline);
    }
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        TokioTimer::poll_elapsed(self, cx)
    }
}

struct Tcp {
    listener: TokioListener,
    nodelay: bool,
}

impl Listener for Tcp {
    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Box<dyn Transport>, SocketAddr)>> {
        self.listener.poll_accept(cx).map(|accepted| {
            let (stream, addr) = accepted?;
            stream.set_nodelay(self.nodelay)?;
            Ok((
                Box::new(TcpTransport::new(stream)) as Box<dyn Transport>,
                addr,
            ))
        })
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

pub(crate) fn timer(deadline: Instant) -> Box<dyn Timer> {
    Box::new(ArmedTimer::new(TokioTimer::new(deadline), deadline))
}

pub(crate) async fn bind(addr: SocketAddr, nodelay: bool) -> io::Result<Box<dyn Listener>> {
    let listener = TokioListener::bind(addr).await?;
    Ok(Box::new(Tcp { listener, nodelay }))
}

pub(crate) fn from_std(
    listener: std::net::TcpListener,
    nodelay: bool,
) -> io::Result<Box<dyn Listener>> {
    let listener = TokioListener::from_std(listener)?;
    Ok(Box::new(Tcp { listener, nodelay }))
}

pub(crate) fn from_tokio(listener: tokio::net::TcpListener, nodelay: bool) -> Box<dyn Listener> {
    Box::new(Tcp {
        listener: TokioListener::from_listener(listener),
        nodelay,
    })
}

pub(crate) async fn connect(
    host: &str,
    port: u16,
    nodelay: bool,
) -> io::Result<(Box<dyn Transport>, Option<SocketAddr>)> {
    let stream = wsflow_tokio::connect(host, port, nodelay).await?;
    let peer = stream.peer_addr().ok();
    Ok((Box::new(TcpTransport::new(stream)), peer))
}

/// Wraps any tokio byte stream (for example a TLS stream or an upgraded hyper connection).
pub(crate) fn wrap<T: AsyncRead + AsyncWrite + Send + Unpin + 'static>(
    io: T,
) -> Box<dyn Transport> {
    Box::new(TokioStream::new(io))
}
