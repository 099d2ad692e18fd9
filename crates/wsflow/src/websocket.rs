//! [`WebSocket`], a live connection (WebSocket-Node's `WebSocketConnection`), and
//! [`Sender`], a cloneable handle that sends to it from other tasks.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use wsflow_core::{
    CloseCode, CloseEvent, Connection, ConnectionState, Event, Frame, Message, Role, Utf8Bytes,
};

use crate::driver::{Command, Driver, PushRefused, Shared, WaitSlot};
use crate::error::Error;
use crate::runtime::{Runtime, Transport};
use crate::server::Registration;

/// Who the peer is, as seen when the connection was set up. Every connection holds one (in
/// the state its senders share), so it is kept small: what most connections never ask for is
/// built when asked for, or boxed.
#[derive(Debug)]
pub(crate) struct PeerInfo {
    pub(crate) peer_addr: Option<SocketAddr>,
    /// The whole `X-Forwarded-For` chain followed by the socket's peer IP. Set from the start
    /// when the chain is not empty; otherwise built from `peer_addr` when first asked for.
    /// Boxed twice: a thin pointer keeps every connection's shared state 8 bytes smaller.
    remote_addresses: OnceLock<Box<Box<[String]>>>,
    /// The subprotocol and extensions, if any were agreed (as the connection has them).
    names: Option<Box<(Option<String>, Vec<String>)>>,
    pub(crate) version: u8,
}

impl PeerInfo {
    /// The peer of `conn`: `addresses` is the `X-Forwarded-For` chain (unless ignored)
    /// followed by the IP of `peer_addr`, if known.
    pub(crate) fn new(
        peer_addr: Option<SocketAddr>,
        addresses: Vec<String>,
        conn: &Connection,
    ) -> Self {
        let remote_addresses = OnceLock::new();
        if addresses.len() > usize::from(peer_addr.is_some()) {
            // A forwarded chain: it cannot be rebuilt later.
            let _ = remote_addresses.set(Box::new(addresses.into_boxed_slice()));
        }
        let names = (conn.protocol().is_some() || !conn.extensions().is_empty()).then(|| {
            Box::new((
                conn.protocol().map(str::to_owned),
                conn.extensions().to_vec(),
            ))
        });
        Self {
            peer_addr,
            remote_addresses,
            names,
            version: conn.version(),
        }
    }

    /// The peer of `conn`, connected directly (no `X-Forwarded-For` chain).
    pub(crate) fn direct(peer_addr: Option<SocketAddr>, conn: &Connection) -> Self {
        Self::new(peer_addr, Vec::new(), conn)
    }

    /// The `X-Forwarded-For` chain followed by the socket's peer IP. Its first entry is the
    /// address the application should consider the peer's.
    pub(crate) fn remote_addresses(&self) -> &[String] {
        self.remote_addresses.get_or_init(|| {
            Box::new(
                self.peer_addr
                    .map(|addr| addr.ip().to_string())
                    .into_iter()
                    .collect(),
            )
        })
    }

    /// The address the application should consider the peer's: the first `X-Forwarded-For`
    /// entry unless ignored, else the socket's peer.
    pub(crate) fn remote_address(&self) -> Option<&str> {
        self.remote_addresses().first().map(String::as_str)
    }

    pub(crate) fn protocol(&self) -> Option<&str> {
        self.names.as_ref()?.0.as_deref()
    }

    pub(crate) fn extensions(&self) -> &[String] {
        self.names.as_ref().map_or(&[], |names| names.1.as_slice())
    }
}

/// A live WebSocket connection: WebSocket-Node's `WebSocketConnection` in async Rust.
///
/// Receive with the [`Stream`] of messages (`next().await` from `futures`' `StreamExt`) or, for
/// pings, pongs, frames and the close, with [`WebSocket::next_event`]. Send with the
/// `send_*` methods (each queues the message and writes it out), with [`WebSocket::queue`]
/// and [`WebSocket::flush`] to batch, or through the [`Sink`] of messages. Other tasks send
/// through [`WebSocket::sender`] handles; their messages go out while this connection is
/// polled.
///
/// The connection needs no background task: it makes progress whenever one of its methods is
/// awaited. Keep polling it (typically in a `while let Some(msg) = ws.next().await` loop) so
/// pings are answered, keepalive runs and messages from senders are written.
///
/// | WebSocket-Node | wsflow |
/// | --- | --- |
/// | `sendUTF(text)` / `sendBytes(buf)` / `send(data)` | [`send_text`](WebSocket::send_text) / [`send_binary`](WebSocket::send_binary) / [`send`](WebSocket::send) |
/// | `ping(data)` / `pong(data)` / `sendFrame(frame)` | [`ping`](WebSocket::ping) / [`pong`](WebSocket::pong) / [`send_frame`](WebSocket::send_frame) |
/// | `close(code, description)` / `drop(code, description)` | [`close`](WebSocket::close) / [`drop_connection`](WebSocket::drop_connection) |
/// | `closeReasonCode` / `closeDescription` | [`close_reason_code`](WebSocket::close_reason_code) / [`close_description`](WebSocket::close_description) |
/// | `protocol` / `extensions` / `webSocketVersion` / `connected` | [`protocol`](WebSocket::protocol) / [`extensions`](WebSocket::extensions) / [`version`](WebSocket::version) / [`is_connected`](WebSocket::is_connected) |
/// | `remoteAddress` / `socket.remoteAddress` | [`remote_address`](WebSocket::remote_address) / [`peer_addr`](WebSocket::peer_addr) |
/// | events `message`, `frame`, `ping`, `pong`, `error`, `close` | [`Event`] from [`next_event`](WebSocket::next_event) |
///
/// Dropping a `WebSocket` closes its socket at once, without a close frame (or a TLS
/// close_notify), discarding what was still queued: call [`WebSocket::close`] and await
/// [`WebSocket::closed`] first for a clean end.
///
/// ```no_run
/// # async fn example() -> Result<(), wsflow::Error> {
/// use futures_util::StreamExt;
///
/// let mut ws = wsflow::connect("ws://127.0.0.1:8080/chat").await?;
/// ws.send_text("hello").await?;
/// while let Some(message) = ws.next().await {
///     println!("got {:?}", message?);
/// }
/// # Ok(()) }
/// ```
pub struct WebSocket {
    /// Boxed: the connection's state is large, and tasks that own a `WebSocket` (often
    /// moved through a few async functions, each keeping its own copy in its future) stay
    /// small, which matters with many idle connections.
    driver: Box<Driver>,
    _registration: Option<Registration>,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("state", &self.state())
            .field("protocol", &self.info().protocol())
            .field("remote_address", &self.info().remote_address())
            .finish_non_exhaustive()
    }
}

impl WebSocket {
    pub(crate) fn new(
        conn: Connection,
        io: Box<dyn Transport>,
        runtime: Runtime,
        info: PeerInfo,
        registration: Option<Registration>,
    ) -> Self {
        Self {
            driver: Box::new(Driver::new(conn, io, runtime, info)),
            _registration: registration,
        }
    }

    fn info(&self) -> &PeerInfo {
        &self.driver.shared.info
    }

    pub(crate) fn set_registration(&mut self, registration: Registration) {
        self._registration = Some(registration);
    }

    // ----- properties -------------------------------------------------------------------

    /// Client or server.
    pub fn role(&self) -> Role {
        self.driver.conn.role()
    }

    /// The subprotocol chosen in the handshake, lower-cased.
    pub fn protocol(&self) -> Option<&str> {
        self.driver.conn.protocol()
    }

    /// The negotiated extensions.
    pub fn extensions(&self) -> &[String] {
        self.driver.conn.extensions()
    }

    /// The protocol version (13, or 8 for old clients).
    pub fn version(&self) -> u8 {
        self.driver.conn.version()
    }

    /// The peer's address for the application: on a server, the first `X-Forwarded-For`
    /// entry unless the server ignores that header, otherwise the socket's peer IP.
    pub fn remote_address(&self) -> Option<&str> {
        self.info().remote_address()
    }

    /// The `X-Forwarded-For` chain followed by the socket's peer IP.
    pub fn remote_addresses(&self) -> &[String] {
        self.info().remote_addresses()
    }

    /// The socket's real peer address, whatever the headers say.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.info().peer_addr
    }

    /// Whether the connection is open (no close frame sent or received).
    pub fn is_connected(&self) -> bool {
        self.driver.conn.is_connected()
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.driver.conn.state()
    }

    /// The close code once closing began (`None` while open; WebSocket-Node uses -1).
    pub fn close_reason_code(&self) -> Option<CloseCode> {
        self.driver.conn.close_reason_code()
    }

    /// The close description once closing began.
    pub fn close_description(&self) -> Option<&str> {
        self.driver.conn.close_description()
    }

    /// Bytes queued and not yet written.
    pub fn buffered_amount(&self) -> usize {
        self.driver.conn.buffered_amount()
    }

    /// Whether the queue is above the send high-water mark.
    pub fn is_output_buffer_full(&self) -> bool {
        self.driver.conn.is_output_buffer_full()
    }

    // ----- receiving --------------------------------------------------------------------

    /// The next event: a message, a frame (when fragments are not assembled), a ping, a pong,
    /// an error, and finally [`Event::Closed`]; `None` after that.
    ///
    /// Cancel-safe: if the future is dropped before it completes, no event is lost.
    pub fn next_event(&mut self) -> NextEvent<'_> {
        NextEvent { ws: self }
    }

    /// The next message; `None` once the connection is closed. An error is returned once,
    /// then `None`.
    ///
    /// Cancel-safe, like [`WebSocket::next_event`].
    pub fn recv(&mut self) -> Recv<'_> {
        Recv { ws: self }
    }

    /// The next message if it is already read and decoded, without waiting and without
    /// touching the socket: the rest of a burst of messages that arrived together.
    ///
    /// `None` means only that nothing of that kind is next, not that the connection ended:
    /// [`WebSocket::recv`] then handles whatever it is (a ping, a close, an error, a message
    /// still to be read) and waits for more. Draining a burst this way before awaiting again
    /// saves the future's round trip per message in tight loops such as an echo:
    ///
    /// ```no_run
    /// # async fn example(mut ws: wsflow::WebSocket) -> Result<(), wsflow::Error> {
    /// while let Some(message) = ws.recv().await {
    ///     ws.queue(message?)?;
    ///     while let Some(message) = ws.try_recv() {
    ///         ws.queue(message)?;
    ///     }
    ///     // Whatever was queued is written once the connection has nothing more to read,
    ///     // when `recv` is next awaited; a peer that sends without reading is waited for
    ///     // here, so the queue stays near the high-water mark.
    ///     if ws.is_output_buffer_full() {
    ///         ws.flush().await?;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn try_recv(&mut self) -> Option<Message> {
        self.driver.poll_burst_message()
    }

    /// Cancels the automatic pong for the ping just received (WebSocket-Node's `cancel`);
    /// call it before polling the connection again.
    pub fn cancel_pong(&mut self) -> bool {
        self.driver.conn.cancel_pong()
    }

    /// Stops reading from the socket (WebSocket-Node's `pause`).
    pub fn pause(&mut self) {
        self.driver.conn.pause();
    }

    /// Starts reading again.
    pub fn resume(&mut self) {
        self.driver.conn.resume();
    }

    // ----- sending ----------------------------------------------------------------------

    /// Queues a message without writing it: it goes out with the next [`WebSocket::flush`],
    /// the next `send_*`, or when the connection is next polled and has nothing more to
    /// read. Batching sends this way turns many messages into one write.
    ///
    /// Queueing does not wait for room: past the high-water mark
    /// ([`WebSocket::is_output_buffer_full`]), await [`WebSocket::flush`] before queueing
    /// more, or a peer that sends without reading makes the queue grow without bound.
    pub fn queue(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        // A flush given up before it was done (its future dropped) waited for less than
        // this: the next flush, through the `Sink` too, waits for this message as well.
        self.driver.start_flush();
        Ok(self.driver.conn.send(message)?)
    }

    /// Writes everything queued. Messages that [`Sender`]s queue meanwhile are written too,
    /// but not waited for: the flush is done once what was queued when it began is written,
    /// a ping or pong the connection held above the high-water mark included.
    ///
    /// Cancel-safe: dropping the future leaves the rest queued.
    pub fn flush(&mut self) -> Flush<'_> {
        self.driver.start_flush();
        Flush { ws: self }
    }

    /// Sends a message of either type (WebSocket-Node's `send`): queues it and writes it out.
    ///
    /// Cancel-safe in the sense that the message is queued as soon as the future is first
    /// polled; dropping the future only stops waiting for the write.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        self.queue(message)?;
        self.flush().await
    }

    /// Sends a text message (WebSocket-Node's `sendUTF`). Cancel-safe as [`WebSocket::send`].
    pub async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), Error> {
        self.driver.conn.send_text(text)?;
        self.flush().await
    }

    /// Sends a binary message (WebSocket-Node's `sendBytes`). Cancel-safe as
    /// [`WebSocket::send`].
    pub async fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.driver.conn.send_binary(data)?;
        self.flush().await
    }

    /// Sends a message that compression must leave alone. Cancel-safe as [`WebSocket::send`].
    pub async fn send_uncompressed(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        self.driver.conn.send_uncompressed(message)?;
        self.flush().await
    }

    /// Sends a ping (at most 125 bytes): waits until the send buffer is below the
    /// high-water mark, writing meanwhile, then queues the ping and waits until it is
    /// written. Cancel-safe: dropped while it waits for room, it has sent nothing; dropped
    /// after, the ping is queued and goes out with the next write (as [`WebSocket::send`]).
    pub async fn ping(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        poll_fn(|cx| self.driver.poll_ready(cx)).await?;
        self.driver.conn.ping(payload)?;
        self.flush().await
    }

    /// Sends a pong (at most 125 bytes), waiting, and cancel-safe, as [`WebSocket::ping`].
    pub async fn pong(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        poll_fn(|cx| self.driver.poll_ready(cx)).await?;
        self.driver.conn.pong(payload)?;
        self.flush().await
    }

    /// Sends a raw frame (WebSocket-Node's `sendFrame`); the mask follows the role.
    /// Cancel-safe as [`WebSocket::send`].
    pub async fn send_frame(&mut self, frame: Frame) -> Result<(), Error> {
        self.driver.conn.send_frame(frame)?;
        self.flush().await
    }

    /// Starts the close handshake (WebSocket-Node's `close`) and writes the close frame.
    /// `description`: `None` for the code's default description, `Some("")` for none.
    /// Keep reading: the stream ends with [`Event::Closed`] once the peer answered or the
    /// close timeout passed. Use [`WebSocket::closed`] to wait for it, discarding messages.
    ///
    /// Cancel-safe: the close frame is queued as soon as the future is first polled.
    pub async fn close(&mut self, code: CloseCode, description: Option<&str>) -> Result<(), Error> {
        self.driver.conn.close(code, description, Instant::now())?;
        self.driver.shared.note_closing(self.driver.conn.state());
        // A write error ends the connection; the close event reports it.
        let _ = self.flush().await;
        Ok(())
    }

    /// Sends a close frame and ends the connection without waiting for the peer
    /// (WebSocket-Node's `drop`), then waits for the socket to be released.
    ///
    /// Cancel-safe: dropping the future leaves the connection closing.
    pub async fn drop_connection(
        &mut self,
        code: CloseCode,
        description: Option<&str>,
    ) -> Result<CloseEvent, Error> {
        self.driver
            .conn
            .drop_connection(code, description, Instant::now())?;
        self.driver.shared.note_closing(self.driver.conn.state());
        Ok(self.closed().await)
    }

    /// Drives the connection until it is closed and returns how it ended. Messages that
    /// arrive meanwhile are kept and still returned by the stream: up to
    /// [`max_received_message_size`](crate::Config::max_received_message_size) bytes of them
    /// (and one read more). Past that the connection reads no more until they are taken, so a
    /// peer that keeps sending cannot make it keep more; a close that waits behind them then
    /// ends by the close timeout. A connection not closing yet begins the close then, with
    /// 1008 (policy violation).
    ///
    /// Cancel-safe.
    pub async fn closed(&mut self) -> CloseEvent {
        poll_fn(|cx| self.driver.poll_closed(cx)).await;
        self.driver
            .conn
            .close_event()
            .cloned()
            .unwrap_or(CloseEvent {
                code: CloseCode::ABNORMAL,
                description: String::new(),
                was_clean: false,
                initiator: wsflow_core::CloseInitiator::Local,
            })
    }

    /// A cloneable handle that sends to this connection from other tasks.
    pub fn sender(&self) -> Sender {
        Sender {
            shared: self.driver.shared.clone(),
            fail_fast: false,
            sink_sent: 0,
            sink_wait: None,
        }
    }

    /// Splits the connection into its reading half (which drives the connection) and a
    /// sending half (a [`Sender`], cloneable). Messages pass from senders to the driver
    /// through a queue whose lock is held only to push one message or to take all of them.
    pub fn split(self) -> (ReadHalf, Sender) {
        let sender = self.sender();
        (ReadHalf(self), sender)
    }
}

impl Stream for WebSocket {
    type Item = Result<Message, Error>;

    /// Messages only; pings are answered, pongs and frames skipped. Use `next_event` to see
    /// them.
    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // The rest of a burst, handed over without being wrapped in an event first.
        if let Some(message) = self.driver.poll_burst_message() {
            return Poll::Ready(Some(Ok(message)));
        }
        loop {
            match self.driver.poll_event(cx) {
                Poll::Ready(Some(Event::Message(message))) => {
                    return Poll::Ready(Some(Ok(message)));
                }
                Poll::Ready(Some(Event::Error(err))) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(Some(Event::Closed(_)) | None) => return Poll::Ready(None),
                Poll::Ready(Some(_)) => continue,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Sink<Message> for WebSocket {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.driver.poll_ready(cx).map_err(Error::from)
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        // The next flush waits for this message too (see `queue`).
        self.queue(message)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.driver.poll_flush(cx).map_err(Error::from)
    }

    /// Starts the close handshake with 1000 and waits until the connection is closed.
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.driver.conn.is_connected() {
            self.driver
                .conn
                .close(CloseCode::NORMAL, None, Instant::now())?;
        }
        self.driver.poll_closed(cx).map(Ok)
    }
}

// The futures of the calls an application makes in its loops are named types holding one
// reference, not `async fn` state machines: a task that owns a `WebSocket` keeps room for the
// largest future it awaits for as long as it lives, and with many idle connections those
// bytes add up.

/// The future of [`WebSocket::recv`] (and [`ReadHalf::recv`]): the next message.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a> {
    ws: &'a mut WebSocket,
}

impl Future for Recv<'_> {
    type Output = Option<Result<Message, Error>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut *self.get_mut().ws).poll_next(cx)
    }
}

/// The future of [`WebSocket::next_event`] (and [`ReadHalf::next_event`]): the next event.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct NextEvent<'a> {
    ws: &'a mut WebSocket,
}

impl Future for NextEvent<'_> {
    type Output = Option<Event>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().ws.driver.poll_event(cx)
    }
}

/// The future of [`WebSocket::flush`]: everything queued is written.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Flush<'a> {
    ws: &'a mut WebSocket,
}

impl Future for Flush<'_> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().ws.driver.poll_flush(cx).map_err(Error::from)
    }
}

/// The reading half of a split [`WebSocket`]: it drives the connection (keep polling it so
/// messages from the [`Sender`] go out).
#[derive(Debug)]
pub struct ReadHalf(WebSocket);

impl ReadHalf {
    /// The next event (see [`WebSocket::next_event`]). Cancel-safe.
    pub fn next_event(&mut self) -> NextEvent<'_> {
        self.0.next_event()
    }

    /// The next message (see [`WebSocket::recv`]). Cancel-safe.
    pub fn recv(&mut self) -> Recv<'_> {
        self.0.recv()
    }

    /// The next message if it is already read (see [`WebSocket::try_recv`]).
    #[inline]
    pub fn try_recv(&mut self) -> Option<Message> {
        self.0.try_recv()
    }

    /// The connection, for its properties.
    pub fn get_ref(&self) -> &WebSocket {
        &self.0
    }

    /// Puts the halves back together (the sender stays usable).
    pub fn unsplit(self) -> WebSocket {
        self.0
    }
}

impl Stream for ReadHalf {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0).poll_next(cx)
    }
}

/// A cloneable handle that sends to one connection from any task (WebSocket-Node lets any
/// code call `connection.send`).
///
/// Messages are queued (a short lock: one push) and written by the connection's driver, the
/// task that polls the [`WebSocket`] (or its [`ReadHalf`]). When more than the send
/// high-water mark is waiting, `send` waits for room (or fails with [`Error::BufferFull`]
/// after [`Sender::fail_fast`]). Once the connection has closed, sends fail with
/// [`Error::ConnectionGone`], and a send waiting for room ends with it.
///
/// Room is made only while something polls the connection. A task that holds both the
/// [`ReadHalf`] and a `Sender` must not await a `send` between its reads: past the high-water
/// mark it would wait for room that only its own next read makes. A task that both reads and
/// sends is better served by the unsplit [`WebSocket`], whose own sends write as they wait
/// (or by [`Sender::try_send`], handling [`Error::BufferFull`]); otherwise leave the reading
/// to another task.
///
/// ```no_run
/// # async fn example(ws: wsflow::WebSocket) -> Result<(), wsflow::Error> {
/// let sender = ws.sender();
/// let other = sender.clone();
/// sender.send_text("from one task").await?;
/// other.send_text("from another").await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Sender {
    shared: Arc<Shared>,
    fail_fast: bool,
    /// The number of the last message this `Sender` sent as a [`Sink`], which the `Sink`'s
    /// flush waits for.
    sink_sent: u64,
    /// The `Sink`'s registration as a waiter, given back when the `Sender` is dropped; boxed
    /// when first used, as few senders are used as a `Sink` (the server keeps a `Sender` of
    /// every connection).
    sink_wait: Option<Box<WaitSlot>>,
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            fail_fast: self.fail_fast,
            sink_sent: self.sink_sent,
            sink_wait: None,
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Some(slot) = &mut self.sink_wait {
            self.shared.unwait(slot);
        }
    }
}

/// Whether the commands up to number `sent` are written; registers `cx` in `slot` if not.
fn poll_flushed(
    shared: &Shared,
    cx: &Context<'_>,
    sent: u64,
    slot: &mut WaitSlot,
) -> Poll<Result<(), Error>> {
    if shared.commands_flushed() >= sent {
        return Poll::Ready(Ok(()));
    }
    if let Err(err) = wait_for_progress(shared, cx, slot) {
        return Poll::Ready(Err(err));
    }
    if shared.commands_flushed() >= sent {
        Poll::Ready(Ok(()))
    } else {
        Poll::Pending
    }
}

/// Registers `cx`'s waker in `slot` to be woken when the driver makes progress, then looks
/// again whether the connection closed: the driver marks it closed and then looks for
/// waiters, so a close between the caller's first look and the registration would wake
/// nobody.
fn wait_for_progress(shared: &Shared, cx: &Context<'_>, slot: &mut WaitSlot) -> Result<(), Error> {
    if shared.closed.load(Ordering::SeqCst) {
        return Err(Error::ConnectionGone);
    }
    shared.wait_in(cx.waker(), slot);
    if shared.closed.load(Ordering::SeqCst) {
        return Err(Error::ConnectionGone);
    }
    Ok(())
}

/// A waiting future's registration, given back when the future goes away, done or not.
struct Waiting<'a> {
    shared: &'a Shared,
    slot: WaitSlot,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared.unwait(&mut self.slot);
    }
}

impl Sender {
    /// Makes `send` fail with [`Error::BufferFull`] instead of waiting when the connection's
    /// send buffer is above its high-water mark.
    pub fn fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// Sends a message of either type once there is room. Cancel-safe: if dropped while
    /// waiting for room, nothing was queued. Fails with `NotOpen` once the close has begun
    /// (see [`Sender::state`]) and with [`Error::ConnectionGone`] once the connection closed.
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), Error> {
        self.wait_for_room().await?;
        self.queue(Command::Send(message.into()))
    }

    /// Sends a message that compression (permessage-deflate) must leave alone, for data that
    /// is already compressed. Cancel-safe as [`Sender::send`].
    ///
    /// ```no_run
    /// # async fn example(sender: wsflow::Sender, jpeg: Vec<u8>) -> Result<(), wsflow::Error> {
    /// sender.send_uncompressed(jpeg).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_uncompressed(&self, message: impl Into<Message>) -> Result<(), Error> {
        self.wait_for_room().await?;
        self.queue(Command::SendUncompressed(message.into()))
    }

    /// Sends a text message. Cancel-safe as [`Sender::send`].
    pub async fn send_text(&self, text: impl Into<Utf8Bytes>) -> Result<(), Error> {
        self.send(Message::Text(text.into())).await
    }

    /// Sends a binary message. Cancel-safe as [`Sender::send`].
    pub async fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Message::Binary(data.into())).await
    }

    /// Sends a raw frame. Cancel-safe as [`Sender::send`].
    pub async fn send_frame(&self, frame: Frame) -> Result<(), Error> {
        self.wait_for_room().await?;
        self.queue(Command::Frame(frame))
    }

    /// Queues a message without waiting for room (used by broadcast).
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), Error> {
        self.try_queue(Command::Send(message.into()))
    }

    /// Sends a ping (at most 125 bytes, checked when the connection applies it). It does not
    /// wait. While the connection's send buffer is above the high-water mark, the connection
    /// holds the ping until the buffer drains, and a later ping replaces it (see
    /// [`wsflow_core::Connection::ping`]): a heartbeat to a peer that stopped reading grows
    /// nothing, and a heartbeat during a large send is not refused. It fails with
    /// [`Error::BufferFull`] only when more than the high-water mark of pings and pongs waits
    /// in the senders' own queue, not yet taken by the connection (nothing polls it), where
    /// each counts its payload and its 2-byte header. [`Sender::flush`] and
    /// [`WebSocket::flush`] wait for a held ping too: they are done once it is written (or
    /// dropped by the close, once the close frame is).
    ///
    /// ```no_run
    /// # async fn example(ws: wsflow::WebSocket) -> Result<(), wsflow::Error> {
    /// let sender = ws.sender();
    /// sender.send_binary(vec![0u8; 16 << 20]).await?; // far above the mark
    /// sender.ping("still there?")?; // held until the send drains, not refused
    /// # Ok(()) }
    /// ```
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.queue(Command::Ping(payload.into()))
    }

    /// Sends a pong, held above the high-water mark as [`Sender::ping`] holds a ping (a later
    /// pong replaces it; the automatic answer to the peer's latest ping is held apart, and
    /// goes too).
    pub fn pong(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.queue(Command::Pong(payload.into()))
    }

    /// Starts the close handshake. Fails as [`WebSocket::close`] does for a code that may
    /// not be sent or a description over 123 bytes, before queueing anything.
    pub fn close(&self, code: CloseCode, description: Option<&str>) -> Result<(), Error> {
        check_close(code, description)?;
        self.queue(Command::Close(code, description.map(str::to_owned)))
    }

    /// Sends a close frame and ends the connection without waiting for the peer. Fails as
    /// [`Sender::close`] does for a code or description that cannot be sent.
    pub fn drop_connection(&self, code: CloseCode, description: Option<&str>) -> Result<(), Error> {
        check_close(code, description)?;
        self.queue(Command::Drop(code, description.map(str::to_owned)))
    }

    /// Waits until everything sent before the call, through any `Sender` of the connection,
    /// has been written to the socket, a ping or pong the connection held above the high-water
    /// mark included (see [`Sender::ping`]); fails with [`Error::ConnectionGone`] if the
    /// connection closes first. What is sent after the call is not waited for, so other
    /// tasks that keep sending cannot keep a flush waiting. Cancel-safe.
    ///
    /// ```no_run
    /// # async fn example(ws: wsflow::WebSocket) -> Result<(), wsflow::Error> {
    /// let sender = ws.sender();
    /// sender.send_text("written before flush returns").await?;
    /// sender.flush().await?;
    /// # Ok(()) }
    /// ```
    pub async fn flush(&self) -> Result<(), Error> {
        let sent = self.shared.commands_queued();
        let mut waiting = Waiting {
            shared: &self.shared,
            slot: WaitSlot::default(),
        };
        poll_fn(|cx| poll_flushed(&self.shared, cx, sent, &mut waiting.slot)).await
    }

    /// The state shared with the connection's task (for tests).
    #[cfg(test)]
    pub(crate) fn shared_for_tests(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Whether the connection has been dropped or closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// The connection's state as this sender last learned it from the connection's task
    /// (WebSocket-Node's `state`): `Open`, then `PeerRequestedClose` or `Ending` once that
    /// task has seen the close handshake begin (or `Closed` for one tearing down after a
    /// failure or a `drop_connection`), when messages, pings and pongs start to fail with
    /// [`Error::Connection`]`(`[`NotOpen`](wsflow_core::Error::NotOpen)`)`; once the
    /// connection is closed or dropped, `Closed` and [`Error::ConnectionGone`].
    ///
    /// ```no_run
    /// # async fn example(ws: wsflow::WebSocket) {
    /// use wsflow::ConnectionState;
    ///
    /// let sender = ws.sender();
    /// if sender.state() == ConnectionState::Open {
    ///     let _ = sender.send_text("still open as far as this task knows").await;
    /// }
    /// # }
    /// ```
    pub fn state(&self) -> ConnectionState {
        self.shared.state()
    }

    /// Bytes waiting to be written (queued here plus buffered in the connection), as the
    /// connection last reported; 0 once a connection that ended abnormally discarded them.
    pub fn buffered_amount(&self) -> usize {
        self.shared.pending_bytes()
    }

    /// The subprotocol of the connection.
    pub fn protocol(&self) -> Option<&str> {
        self.shared.info.protocol()
    }

    /// The negotiated extensions.
    pub fn extensions(&self) -> &[String] {
        self.shared.info.extensions()
    }

    /// The protocol version.
    pub fn version(&self) -> u8 {
        self.shared.info.version
    }

    /// The peer's address for the application (see [`WebSocket::remote_address`]).
    pub fn remote_address(&self) -> Option<&str> {
        self.shared.info.remote_address()
    }

    /// The socket's real peer address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.shared.info.peer_addr
    }

    /// Whether two handles send to the same connection.
    pub fn same_connection(&self, other: &Sender) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// `BufferFull` if what waits to be written is above the mark.
    fn check_room(&self) -> Result<(), Error> {
        if self.shared.pending_bytes() > self.shared.high_water_mark {
            Err(self.buffer_full())
        } else {
            Ok(())
        }
    }

    /// `BufferFull`, with all that waits to be written.
    fn buffer_full(&self) -> Error {
        Error::BufferFull {
            buffered: self.shared.pending_bytes(),
            high_water_mark: self.shared.high_water_mark,
        }
    }

    async fn wait_for_room(&self) -> Result<(), Error> {
        self.check_sendable()?;
        if self.fail_fast {
            return self.check_room();
        }
        let mut waiting = Waiting {
            shared: &self.shared,
            slot: WaitSlot::default(),
        };
        poll_fn(|cx| {
            // The close may begin while this waits: the driver wakes the waiters then.
            if let Err(err) = self.check_sendable() {
                return Poll::Ready(Err(err));
            }
            if self.check_room().is_ok() {
                return Poll::Ready(Ok(()));
            }
            if let Err(err) = wait_for_progress(&self.shared, cx, &mut waiting.slot) {
                return Poll::Ready(Err(err));
            }
            if self.check_room().is_ok() {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Queues a command if there is room, without waiting.
    fn try_queue(&self, command: Command) -> Result<(), Error> {
        self.check_sendable()?;
        self.check_room()?;
        self.queue(command)
    }

    /// Queues a command. A ping or pong, which the connection holds above the mark itself,
    /// is refused only while more than the mark of them waits in the senders' queue (checked
    /// and counted by the push, under the queue's lock).
    fn queue(&self, command: Command) -> Result<(), Error> {
        self.queue_numbered(command).map(drop)
    }

    /// Queues a command; gives its number (see [`Shared::commands_queued`]).
    /// Whether messages, pings and pongs may be queued: not once the connection closed
    /// ([`Error::ConnectionGone`]), nor once its task saw the close begin (`NotOpen`).
    fn check_sendable(&self) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::ConnectionGone);
        }
        match self.shared.closing_state() {
            Some(state) => Err(wsflow_core::Error::NotOpen(state).into()),
            None => Ok(()),
        }
    }

    fn queue_numbered(&self, command: Command) -> Result<u64, Error> {
        // A connection that closed but is not dropped yet would take the command and never
        // apply it.
        if let Command::Close(..) | Command::Drop(..) = command {
            if self.is_closed() {
                return Err(Error::ConnectionGone);
            }
        } else {
            self.check_sendable()?;
        }
        let weight = command.weight();
        self.shared.add_queued(weight);
        self.shared.push_command(command).map_err(|refused| {
            self.shared.add_queued(0usize.wrapping_sub(weight));
            match refused {
                PushRefused::ReceiverGone => Error::ConnectionGone,
                PushRefused::ControlAboveMark => self.buffer_full(),
            }
        })
    }
}

impl Sink<Message> for Sender {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Err(err) = self.check_sendable() {
            return Poll::Ready(Err(err));
        }
        if self.check_room().is_ok() {
            return Poll::Ready(Ok(()));
        }
        if self.fail_fast {
            return Poll::Ready(self.check_room());
        }
        let this = &mut *self;
        let slot = this.sink_wait.get_or_insert_default();
        if let Err(err) = wait_for_progress(&this.shared, cx, slot) {
            return Poll::Ready(Err(err));
        }
        if self.check_room().is_ok() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn start_send(mut self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.sink_sent = self.queue_numbered(Command::Send(message))?;
        Ok(())
    }

    /// Waits until the messages this `Sender` sent as a `Sink` are written (not those sent
    /// after, or by others).
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = &mut *self;
        let slot = this.sink_wait.get_or_insert_default();
        poll_flushed(&this.shared, cx, this.sink_sent, slot)
    }

    /// Asks the connection to close with 1000.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(self.close(CloseCode::NORMAL, None))
    }
}
/// Checks that a close with `code` and `description` can be sent, as the connection does
/// when it applies it: a sender learns of a bad code at its call, not never.
pub(crate) fn check_close(code: CloseCode, description: Option<&str>) -> Result<(), Error> {
    let reason = description.unwrap_or_else(|| code.default_description().unwrap_or(""));
    wsflow_codec::CloseFrame::check(code, reason)
        .map_err(|err| Error::from(wsflow_core::Error::from(err)))
}
