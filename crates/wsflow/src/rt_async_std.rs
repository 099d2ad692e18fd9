//! The async-io runtime (async-std, smol): wsflow-async-std's glue behind the driver's
//! runtime interface.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use futures_io::{AsyncRead, AsyncWrite};
use wsflow_async_std::{AsyncIoListener, AsyncIoStream, AsyncIoTcpStream, AsyncIoTimer};

use crate::runtime::{ArmedTimer, Listener, RuntimeTimer, Timer, Transport};

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for AsyncIoStream<T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        AsyncIoStream::poll_read(self, cx, buf)
    }
    fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        AsyncIoStream::poll_read_buf(self, cx, buf)
    }
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        AsyncIoStream::poll_write_vectored(self, cx, bufs)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncIoStream::poll_flush(self, cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncIoStream::poll_shutdown(self, cx)
    }
}

impl Transport for AsyncIoTcpStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncIoTcpStream::poll_read_ready(self, cx)
    }
    fn read_drained(&self) -> bool {
        self.last_read_drained()
    }
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        AsyncIoTcpStream::try_read_buf(self, buf)
    }
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        AsyncIoTcpStream::poll_read(self, cx, buf)
    }
    fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        AsyncIoTcpStream::poll_read_buf(self, cx, buf)
    }
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        AsyncIoTcpStream::poll_write_vectored(self, cx, bufs)
    }
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        AsyncIoTcpStream::try_write_vectored(self, bufs)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncIoTcpStream::poll_flush(self, cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncIoTcpStream::poll_shutdown(self, cx)
    }
}

impl RuntimeTimer for AsyncIoTimer {
    fn reset(&mut self, deadline: Instant) {
        AsyncIoTimer::reset(self, deadline);
    }
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        AsyncIoTimer::poll_elapsed(self, cx)
    }
}

struct Tcp {
    listener: AsyncIoListener,
    nodelay: bool,
}

impl Listener for Tcp {
    fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Box<dyn Transport>, SocketAddr)>> {
        self.listener.poll_accept(cx).map(|accepted| {
            let (stream, addr) = accepted?;
            stream.get_ref().set_nodelay(self.nodelay)?;
            Ok((
                Box::new(AsyncIoTcpStream::new(stream)) as Box<dyn Transport>,
                addr,
            ))
        })
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

pub(crate) fn timer(deadline: Instant) -> Box<dyn Timer> {
    Box::new(ArmedTimer::new(AsyncIoTimer::new(deadline), deadline))
}

pub(crate) fn bind(addr: SocketAddr, nodelay: bool) -> io::Result<Box<dyn Listener>> {
    let listener = AsyncIoListener::bind(addr)?;
    Ok(Box::new(Tcp { listener, nodelay }))
}

pub(crate) fn from_std(
    listener: std::net::TcpListener,
    nodelay: bool,
) -> io::Result<Box<dyn Listener>> {
    let listener = AsyncIoListener::from_std(listener)?;
    Ok(Box::new(Tcp { listener, nodelay }))
}

pub(crate) async fn connect(
    host: &str,
    port: u16,
    nodelay: bool,
) -> io::Result<(Box<dyn Transport>, Option<SocketAddr>)> {
    let stream = wsflow_async_std::connect(host, port, nodelay).await?;
    let peer = stream.get_ref().peer_addr().ok();
    Ok((Box::new(AsyncIoTcpStream::new(stream)), peer))
}

/// Wraps any futures-io byte stream (for example an async-std or smol TLS stream).
pub(crate) fn wrap<T: AsyncRead + AsyncWrite + Send + Unpin + 'static>(
    io: T,
) -> Box<dyn Transport> {
    Box::new(AsyncIoStream::new(io))
}
