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
/// buffer, and that leaves tokio's reactor while its reads keep finding data without a wait.
///
/// tokio keeps a socket registered, edge-triggered, for as long as it lives, so every packet
/// the peer sends queues an event that the reactor's next turn collects (`epoll_wait` polls
/// the socket again for it) and records for a task that may not be waiting at all. Under
/// load the driver reads without waiting (it yields and reads again, see the driver's
/// `ReadGuess`), and those events are work for nothing: with 100 connections and one
/// message in flight each, about 6% of the echo server's CPU time. So after
/// [`TcpTransport::LEAVE_AFTER`] reads in a row that found data without a wait, the socket
/// leaves the reactor (`epoll_ctl(DEL)`), and it registers again (`epoll_ctl(ADD)`, which
/// reports data that came meanwhile) the first time the driver has to wait on it, to read
/// or to write. Reads and writes that do not wait go straight to the socket either way.
struct TcpTransport {
    socket: Socket,
    /// The last read returned less than it was offered. tokio then clears the socket's
    /// readiness, so the next read would say `Pending` until the reactor reports new data.
    drained: bool,
    /// Reads in a row that found data without a wait (see [`TcpTransport::LEAVE_AFTER`]).
    found_in_a_row: u8,
    /// A write said `Pending`: the reactor is to wake the task when the socket has room, so
    /// the socket stays registered.
    write_waiting: bool,
}

/// The socket, registered with tokio's reactor or not.
enum Socket {
    Registered(TokioStream<TcpStream>),
    /// Out of the reactor (non-blocking still), with the runtime to register with again.
    Bare(std::net::TcpStream, tokio::runtime::Handle),
    /// Leaving or registering again failed; every operation says so.
    Gone,
}

impl TcpTransport {
    /// Reads in a row that find data without a wait, after which the socket leaves the
    /// reactor. Leaving and coming back cost two system calls and a registration; a
    /// connection that keeps reading without waits saves an event per packet for as long as
    /// it does. (At one message in flight per connection, one echo in about 250 registered
    /// again with 100 connections, one in about 750 with 10.)
    const LEAVE_AFTER: u8 = 8;

    fn new(stream: TcpStream) -> Self {
        Self {
            socket: Socket::Registered(TokioStream::new(stream)),
            drained: false,
            found_in_a_row: 0,
            write_waiting: false,
        }
    }

    /// The socket registered with the reactor, registering it again if it left (with the
    /// runtime it left, even when polled from outside it).
    fn registered(&mut self) -> io::Result<&mut TokioStream<TcpStream>> {
        if !matches!(self.socket, Socket::Registered(_)) {
            self.socket = match std::mem::replace(&mut self.socket, Socket::Gone) {
                Socket::Bare(std, handle) => {
                    let _entered = handle.enter();
                    Socket::Registered(TokioStream::new(TcpStream::from_std(std)?))
                }
                other => other,
            };
        }
        match &mut self.socket {
            Socket::Registered(stream) => Ok(stream),
            _ => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the socket could not be registered with the runtime again",
            )),
        }
    }

    /// Leaves the reactor, unless a write waits for it, or the task runs outside a tokio
    /// runtime (there would be none to register with again). A read waiting on the reactor
    /// is not lost: this is called by a read that found data, and the driver reads again
    /// before it waits.
    fn leave_reactor(&mut self) {
        if self.write_waiting {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Socket::Registered(_) = self.socket
            && let Socket::Registered(stream) = std::mem::replace(&mut self.socket, Socket::Gone)
        {
            self.socket = match stream.into_inner().into_std() {
                Ok(std) => Socket::Bare(std, handle),
                Err(_) => Socket::Gone,
            };
        }
    }
}

/// Runs `$e` with `$s` bound to the socket, registered or not (tokio's `TcpStream` or std's).
macro_rules! with_socket {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.socket {
            Socket::Registered(stream) => {
                let $s = stream.get_ref();
                $e
            }
            Socket::Bare(std, _) => {
                let $s = std;
                $e
            }
            Socket::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    };
}

impl Transport for TcpTransport {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.found_in_a_row = 0;
        self.registered()?.get_ref().poll_read_ready(cx)
    }
    fn read_drained(&self) -> bool {
        self.drained
    }
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let filled = buf.len();
        let read = with_socket!(self, s => wsflow_tokio::try_read_buf(s, buf));
        // Measured after the read, which reserves room in a full buffer.
        let offered = buf.capacity() - filled;
        self.drained = matches!(read, Ok(n) if n < offered);
        if matches!(read, Ok(n) if n > 0) {
            self.found_in_a_row = self.found_in_a_row.saturating_add(1);
            if self.found_in_a_row == Self::LEAVE_AFTER {
                self.leave_reactor();
            }
        } else {
            self.found_in_a_row = 0;
        }
        read
    }
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.registered()?.poll_read(cx, buf)
    }
    fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        self.found_in_a_row = 0;
        let offered = buf.capacity() - buf.len();
        let read = std::task::ready!(self.registered()?.poll_read_buf(cx, buf));
        self.drained = matches!(read, Ok(n) if n < offered);
        Poll::Ready(read)
    }
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Socket::Bare(std, _) = &self.socket {
            match wsflow_tokio::try_write_vectored(std, bufs) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                written => return Poll::Ready(written),
            }
        }
        let written = self.registered()?.poll_write_vectored(cx, bufs);
        self.write_waiting = written.is_pending();
        written
    }
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let written = with_socket!(self, s => wsflow_tokio::try_write_vectored(s, bufs));
        // Room came: a write that said `Pending` before no longer waits.
        self.write_waiting &= written.is_err();
        written
    }
    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.socket {
            Socket::Registered(stream) => stream.poll_shutdown(cx),
            Socket::Bare(std, _) => Poll::Ready(std.shutdown(std::net::Shutdown::Write)),
            Socket::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
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

#[cfg(test)]
mod tests {
    use std::task::Waker;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A connected pair: the client, and the server's end as a transport.
    async fn pair() -> (TcpStream, TcpTransport) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, TcpTransport::new(server))
    }

    fn is_registered(transport: &TcpTransport) -> bool {
        matches!(transport.socket, Socket::Registered(_))
    }

    /// Writes one byte from `client` and reads it at once with `try_read_buf`, until `done`
    /// says so (at most 1,000 times); returns how many it took.
    async fn ping_pong(
        client: &mut TcpStream,
        transport: &mut TcpTransport,
        buf: &mut BytesMut,
        done: impl Fn(&TcpTransport) -> bool,
    ) -> usize {
        for round in 1..=1000 {
            client.write_all(&[round as u8]).await.unwrap();
            match transport.try_read_buf(buf) {
                Ok(n) => assert!(n >= 1),
                // Not there yet (loopback usually delivers within the write): try again.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(err) => panic!("{err}"),
            }
            if done(transport) {
                return round;
            }
        }
        panic!("not done after 1,000 reads");
    }

    /// Waits (at most 5 s) until the bytes waiting in `transport`'s socket end with
    /// `expected`, peeking: nothing is read, so the transport's state (its reads in a row, its
    /// registration) is left as it is.
    async fn wait_for_bytes(transport: &TcpTransport, expected: &[u8]) {
        let mut peeked = vec![0u8; expected.len() + 4096];
        let arrived = async {
            loop {
                let peek = match &transport.socket {
                    // tokio peeks once the reactor reports data, which does not read it either.
                    Socket::Registered(stream) => stream.get_ref().peek(&mut peeked).await,
                    Socket::Bare(std, _) => std.peek(&mut peeked),
                    Socket::Gone => panic!("the socket is gone"),
                };
                match peek {
                    Ok(n) if peeked[..n].ends_with(expected) => return,
                    Ok(_) => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => panic!("{err}"),
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), arrived)
            .await
            .expect("the bytes sent did not arrive within 5 s");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_socket_leaves_the_reactor_while_reads_find_data_and_comes_back_to_wait() {
        let (mut client, mut transport) = pair().await;
        let mut buf = BytesMut::with_capacity(4096);
        // Reads that find data: after eight in a row, the socket leaves the reactor.
        let rounds = ping_pong(&mut client, &mut transport, &mut buf, |t| !is_registered(t)).await;
        assert!(rounds >= usize::from(TcpTransport::LEAVE_AFTER));
        assert!(matches!(transport.socket, Socket::Bare(..)));
        // Out of the reactor, reads that find data and writes go straight to the socket.
        client.write_all(b"more").await.unwrap();
        wait_for_bytes(&transport, b"more").await;
        transport.try_read_buf(&mut buf).unwrap();
        assert!(buf.ends_with(b"more"));
        let reply = [IoSlice::new(b"re"), IoSlice::new(b"ply")];
        assert_eq!(transport.try_write_vectored(&reply).unwrap(), 5);
        let mut got = [0; 5];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"reply");
        // A read that finds nothing, then a wait: registered again, and woken by the next
        // data, sent after the wait began.
        let err = transport.try_read_buf(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(b"late").await.unwrap();
            client
        });
        let ready = std::future::poll_fn(|cx| transport.poll_read_ready(cx));
        tokio::time::timeout(Duration::from_secs(5), ready)
            .await
            .expect("the data that came after the wait began did not wake it")
            .unwrap();
        assert!(is_registered(&transport));
        transport.try_read_buf(&mut buf).unwrap();
        assert!(buf.ends_with(b"late"));
        // The same the other way: it leaves again, and a waiting read registers first.
        let mut client = writer.await.unwrap();
        ping_pong(&mut client, &mut transport, &mut buf, |t| !is_registered(t)).await;
        let mut read = buf.split_off(buf.len());
        read.reserve(4096);
        let waiting =
            std::future::poll_fn(|cx| Poll::Ready(transport.poll_read_buf(cx, &mut read)));
        assert!(waiting.await.is_pending());
        assert!(is_registered(&transport));
        client.write_all(b"end").await.unwrap();
        let read_len = std::future::poll_fn(|cx| transport.poll_read_buf(cx, &mut read));
        let n = tokio::time::timeout(Duration::from_secs(5), read_len)
            .await
            .expect("the wait was not woken")
            .unwrap();
        assert_eq!(&read[..n], b"end");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_socket_with_a_write_waiting_stays_in_the_reactor() {
        let (mut client, mut transport) = pair().await;
        // Fill the socket (the client reads nothing) until a write waits for room.
        let chunk = vec![7u8; 1 << 16];
        let mut cx = Context::from_waker(Waker::noop());
        let mut filled = 0usize;
        while let Poll::Ready(written) =
            transport.poll_write_vectored(&mut cx, &[IoSlice::new(&chunk)])
        {
            filled += written.unwrap();
            assert!(filled < 1 << 30, "the socket never filled");
        }
        let mut buf = BytesMut::with_capacity(4096);
        // However many reads in a row find data, the write's wake-up stays registered.
        for round in 0..3 * TcpTransport::LEAVE_AFTER {
            client.write_all(&[round]).await.unwrap();
            wait_for_bytes(&transport, &[round]).await;
            assert_eq!(transport.try_read_buf(&mut buf).unwrap(), 1);
            assert!(is_registered(&transport));
        }
        // Once the peer reads what was sent, the write is woken and goes on.
        let reader = tokio::spawn(async move {
            let mut sink = vec![0u8; 1 << 16];
            let mut total = 0;
            while total < filled {
                total += client.read(&mut sink).await.unwrap();
            }
            client
        });
        let write =
            std::future::poll_fn(|cx| transport.poll_write_vectored(cx, &[IoSlice::new(&chunk)]));
        tokio::time::timeout(Duration::from_secs(5), write)
            .await
            .expect("the waiting write was not woken")
            .unwrap();
        drop(reader);
    }
}
