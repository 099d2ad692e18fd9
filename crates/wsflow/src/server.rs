//! The server (WebSocket-Node's `WebSocketServer`) and the pending upgrade request
//! (`WebSocketRequest`).

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_core::Stream;
use futures_util::stream::FuturesUnordered;
use wsflow_core::{
    CloseCode, Config, Connection, DeflateConfig, Message, Negotiated, PerMessageDeflate, Role,
};
use wsflow_handshake::{
    AcceptOptions, DeflateParams, ExtensionOffer, HandshakeError, HeadProgress, PERMESSAGE_DEFLATE,
    Parsed, RequestLimits, SetCookie, UpgradeRequest, check_deflate_response, negotiate_deflate,
    parse_extensions, parse_request_resumed, reject_response,
};

use crate::error::Error;
use crate::runtime::{self, Listener, Runtime, Transport};
use crate::websocket::{PeerInfo, Sender, WebSocket};

/// Server options: WebSocket-Node's `WebSocketServer` config.
///
/// Connection options ([`Config`], WebSocket-Node's frame and message limits, fragmentation,
/// keepalive, close timeout) are set with [`ServerConfig::connection`]; the most common ones
/// also have direct setters here.
///
/// permessage-deflate (RFC 7692) is off by default, as in Node's `ws` server; turn it on with
/// [`ServerConfig::permessage_deflate`].
///
/// ```
/// use std::time::Duration;
/// use wsflow::ServerConfig;
/// use wsflow::core::DeflateConfig;
///
/// let config = ServerConfig::default()
///     .max_received_message_size(16 << 20)
///     .handshake_timeout(Duration::from_secs(5))
///     .permessage_deflate(DeflateConfig::new().client_max_window_bits(12));
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Shared by every connection of the server.
    pub(crate) connection: Arc<Config>,
    pub(crate) deflate: Option<DeflateConfig>,
    pub(crate) limits: RequestLimits,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_pending_handshakes: usize,
    pub(crate) max_pending_handshakes_per_ip: Option<usize>,
    pub(crate) ignore_x_forwarded_for: bool,
    pub(crate) disable_nagle_algorithm: bool,
    pub(crate) runtime: Runtime,
    #[cfg(feature = "rustls")]
    pub(crate) tls: Option<crate::tls::TlsServerConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            connection: Arc::new(Config::server()),
            deflate: None,
            limits: RequestLimits::default(),
            handshake_timeout: Duration::from_secs(10),
            max_pending_handshakes: 1024,
            max_pending_handshakes_per_ip: None,
            ignore_x_forwarded_for: false,
            disable_nagle_algorithm: true,
            runtime: Runtime::default(),
            #[cfg(feature = "rustls")]
            tls: None,
        }
    }
}

impl ServerConfig {
    /// Serves `wss://`: every accepted socket first completes a TLS handshake (within the
    /// handshake timeout) with this certificate (feature `rustls`).
    ///
    /// ```no_run
    /// use wsflow::{ServerConfig, TlsServerConfig};
    ///
    /// # fn example() -> Result<(), wsflow::Error> {
    /// let tls = TlsServerConfig::from_pem_files("chain.pem", "key.pem")?;
    /// let config = ServerConfig::default().tls(tls);
    /// # let _ = config;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, tls: crate::tls::TlsServerConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The options of every accepted connection (default: [`Config::server`]).
    pub fn connection(mut self, config: Config) -> Self {
        self.connection = Arc::new(config);
        self
    }

    /// Shortcut for the connection option of the same name (default 64 KiB).
    pub fn max_received_frame_size(self, bytes: usize) -> Self {
        self.update_connection(|config| config.max_received_frame_size(bytes))
    }

    /// Shortcut for the connection option of the same name (default 1 MiB).
    pub fn max_received_message_size(self, bytes: usize) -> Self {
        self.update_connection(|config| config.max_received_message_size(bytes))
    }

    /// Changes the shared connection options.
    fn update_connection(mut self, change: impl FnOnce(Config) -> Config) -> Self {
        self.connection = Arc::new(change(self.connection.as_ref().clone()));
        self
    }

    /// Accepts permessage-deflate (RFC 7692) when a client offers it, with these options
    /// (`None`, the default: never). Each connection negotiates on its own: the first
    /// permessage-deflate offer of the client that the options allow is answered (see
    /// [`negotiate_deflate`](wsflow_handshake::negotiate_deflate) for how the parameters are
    /// chosen), and a client that offers none connects without compression. A request
    /// accepted with its own `Sec-WebSocket-Extensions` answer
    /// ([`AcceptOptions::extensions`]) keeps that answer, and compression follows it.
    ///
    /// Memory: about 417 KiB per connection that has compressed both ways, with the default
    /// 15-bit windows and context takeover; without context takeover both ways, none between
    /// messages: connections borrow zlib state from a per-thread pool (see [`DeflateConfig`]
    /// for the figures).
    pub fn permessage_deflate(mut self, config: impl Into<Option<DeflateConfig>>) -> Self {
        self.deflate = config.into();
        self
    }

    /// The permessage-deflate options set by [`ServerConfig::permessage_deflate`].
    pub fn get_permessage_deflate(&self) -> Option<&DeflateConfig> {
        self.deflate.as_ref()
    }

    /// Limits on the upgrade request's head (size and header count).
    pub fn request_limits(mut self, limits: RequestLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How long a client may take to send its upgrade request (default 10 s); a slower one
    /// is disconnected. Taking the answer (the `101`, or an error) gets as long again: a
    /// client that does not read it is disconnected, and `accept` or `reject` fail with
    /// `TimedOut`.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How many upgrade requests may be read at once (default 1024); the server stops
    /// accepting sockets while that many are pending.
    pub fn max_pending_handshakes(mut self, count: usize) -> Self {
        self.max_pending_handshakes = count.max(1);
        self
    }

    /// How many upgrade requests one IP address may have being read or answered with an
    /// error at once (default: no limit of its own; 0 counts as 1). Past it, the server
    /// closes that address's new sockets at once, so one client holding sockets open without
    /// finishing its requests cannot take every slot of
    /// [`ServerConfig::max_pending_handshakes`] and stop the server accepting others. IPv6
    /// addresses count by their /64 network (what one client usually holds), IPv4-mapped
    /// ones as IPv4. Leave it unset behind a reverse proxy, where every client comes from
    /// the proxy's address.
    pub fn max_pending_handshakes_per_ip(mut self, count: usize) -> Self {
        self.max_pending_handshakes_per_ip = Some(count.max(1));
        self
    }

    /// Ignore `X-Forwarded-For` when working out the remote address.
    pub fn ignore_x_forwarded_for(mut self, ignore: bool) -> Self {
        self.ignore_x_forwarded_for = ignore;
        self
    }

    /// Turn Nagle's algorithm off on accepted sockets (default true).
    pub fn disable_nagle_algorithm(mut self, disable: bool) -> Self {
        self.disable_nagle_algorithm = disable;
        self
    }

    /// The runtime for sockets and timers (default: tokio when enabled).
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = runtime;
        self
    }

    /// The options of every accepted connection.
    pub fn get_connection(&self) -> &Config {
        &self.connection
    }

    /// The limits on the upgrade request's head.
    pub fn get_request_limits(&self) -> &RequestLimits {
        &self.limits
    }

    /// How long a client may take to send its upgrade request.
    pub fn get_handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// How many upgrade requests may be read at once.
    pub fn get_max_pending_handshakes(&self) -> usize {
        self.max_pending_handshakes
    }

    /// How many upgrade requests one IP address may have being read at once, if limited.
    pub fn get_max_pending_handshakes_per_ip(&self) -> Option<usize> {
        self.max_pending_handshakes_per_ip
    }

    /// Whether `X-Forwarded-For` is ignored.
    pub fn get_ignore_x_forwarded_for(&self) -> bool {
        self.ignore_x_forwarded_for
    }

    /// Whether Nagle's algorithm is off on accepted sockets.
    pub fn get_disable_nagle_algorithm(&self) -> bool {
        self.disable_nagle_algorithm
    }

    /// The runtime for sockets and timers.
    pub fn get_runtime(&self) -> Runtime {
        self.runtime
    }
}

/// The live connections of a server, for listing, broadcasting and shutting down.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    connections: Mutex<HashMap<u64, Sender>>,
    next_id: AtomicU64,
    shutting_down: AtomicBool,
    /// How many times `close_all_connections` ran: a request that began before the latest
    /// run is answered 503 (WebSocket-Node rejects the requests pending then, not later ones).
    close_all_runs: AtomicU64,
    /// The close code of the latest `close_all_connections`, for a connection whose 101 was
    /// being written while it ran (see `Request::accept_in_place`).
    close_all_code: AtomicU16,
    /// Upgrade requests being read, by address, when addresses are limited.
    reading_by_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Upgrade requests read or being read, not yet accepted or rejected.
    pending: AtomicUsize,
    empty_waiters: Mutex<Vec<Waker>>,
}

impl Registry {
    /// Whether a request that began when `close_all_runs` had this value is refused: the
    /// server is shutting down, or closed all connections since.
    fn refuses(&self, close_all_runs: u64) -> bool {
        self.shutting_down.load(Ordering::Acquire)
            || self.close_all_runs.load(Ordering::Acquire) != close_all_runs
    }

    fn register(self: &Arc<Self>, sender: Sender) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, sender);
        Registration {
            registry: self.clone(),
            id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Sender>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn senders(&self) -> Vec<Sender> {
        self.lock().values().cloned().collect()
    }
}

/// The answer to an upgrade request being written: a future resolving to the connection,
/// returned by [`Request::accept`] and its variants.
///
/// The handshake's state lives on the heap, and only while it runs: a task that accepts a
/// request and then serves the connection does not keep room for the handshake's state for
/// the rest of the connection's life.
#[must_use = "the request is answered only when the future is awaited"]
pub struct Accepting(Pin<Box<dyn Future<Output = Result<WebSocket, Error>> + Send>>);

impl std::fmt::Debug for Accepting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepting").finish_non_exhaustive()
    }
}

impl Future for Accepting {
    type Output = Result<WebSocket, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

/// Keeps a connection in its server's registry until dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let now_empty = {
            let mut connections = self.registry.lock();
            connections.remove(&self.id);
            connections.is_empty()
        };
        if now_empty {
            let waiters = std::mem::take(
                &mut *self
                    .registry
                    .empty_waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            waiters.into_iter().for_each(Waker::wake);
        }
    }
}

/// Counts a request being read against its address's limit
/// ([`ServerConfig::max_pending_handshakes_per_ip`]) until it has been read (or answered
/// with an error).
struct ReadingSlot {
    registry: Arc<Registry>,
    ip: IpAddr,
}

/// How many sockets over their address's limit one poll of the server closes before it
/// lets the handshakes and other tasks run.
const MAX_REFUSED_PER_POLL: usize = 64;

impl ReadingSlot {
    /// Takes a slot for `ip`'s client (IPv6 by /64, IPv4-mapped as IPv4), unless it has
    /// `limit` already.
    fn take(registry: &Arc<Registry>, ip: IpAddr, limit: usize) -> Option<Self> {
        let ip = match ip.to_canonical() {
            IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from_bits(
                v6.to_bits() & !u128::from(u64::MAX),
            )),
            v4 => v4,
        };
        let mut reading = registry
            .reading_by_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = reading.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Self {
            registry: registry.clone(),
            ip,
        })
    }
}

impl Drop for ReadingSlot {
    fn drop(&mut self) {
        let mut reading = self
            .registry
            .reading_by_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = reading.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                reading.remove(&self.ip);
            }
        }
    }
}

/// Counts a request as pending until it is answered or dropped.
#[derive(Debug)]
struct PendingGuard(Arc<Registry>);

impl PendingGuard {
    fn new(registry: &Arc<Registry>) -> Self {
        registry.pending.fetch_add(1, Ordering::AcqRel);
        Self(registry.clone())
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

type Handshake = Pin<Box<dyn Future<Output = Option<Request>> + Send>>;

/// A WebSocket server: WebSocket-Node's `WebSocketServer`.
///
/// It is a [`Stream`] of upgrade [`Request`]s: accept or reject each (WebSocket-Node's
/// `request` event). Handshakes are read concurrently, each with a timeout, so one slow
/// client never holds up others. The server tracks its live connections for
/// [`Server::broadcast`] and [`Server::shut_down`].
///
/// ```no_run
/// # async fn example() -> Result<(), wsflow::Error> {
/// use futures_util::StreamExt;
/// use wsflow::{Server, ServerConfig};
///
/// let mut server = Server::bind("127.0.0.1:8080", ServerConfig::default()).await?;
/// while let Some(request) = server.next().await {
///     if request.origin() != Some("https://example.com") {
///         request.reject(403, Some("origin not allowed")).await?;
///         continue;
///     }
///     let mut ws = request.accept(None).await?;
///     tokio::spawn(async move {
///         while let Some(Ok(message)) = ws.next().await {
///             if ws.send(message).await.is_err() {
///                 break;
///             }
///         }
///     });
/// }
/// # Ok(()) }
/// ```
pub struct Server {
    listener: Option<Box<dyn Listener>>,
    local_addr: SocketAddr,
    config: Arc<ServerConfig>,
    handshakes: FuturesUnordered<Handshake>,
    registry: Arc<Registry>,
    /// After a failed accept (out of file descriptors, say), accepting pauses until this
    /// elapses instead of spinning on an error that repeats until a descriptor is freed.
    accept_backoff: Option<Box<dyn crate::runtime::Timer>>,
}

/// How long accepting pauses after an accept error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.connection_count())
            .field("pending_requests", &self.pending_requests())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds a TCP listener to `addr` (port 0 picks a free port).
    pub async fn bind(addr: impl ToSocketAddrs, config: ServerConfig) -> Result<Self, Error> {
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
        })?;
        let listener = config
            .runtime
            .bind(addr, config.disable_nagle_algorithm)
            .await?;
        Self::from_listener(listener, config)
    }

    /// Serves on a standard listener the application already bound.
    pub fn from_std_listener(
        listener: std::net::TcpListener,
        config: ServerConfig,
    ) -> Result<Self, Error> {
        let listener = config
            .runtime
            .listener_from_std(listener, config.disable_nagle_algorithm)?;
        Self::from_listener(listener, config)
    }

    /// Serves on a tokio listener the application already bound.
    #[cfg(feature = "tokio")]
    pub fn from_tokio_listener(
        listener: tokio::net::TcpListener,
        config: ServerConfig,
    ) -> Result<Self, Error> {
        let listener = crate::rt_tokio::from_tokio(listener, config.disable_nagle_algorithm);
        Self::from_listener(listener, config.runtime(Runtime::Tokio))
    }

    fn from_listener(listener: Box<dyn Listener>, config: ServerConfig) -> Result<Self, Error> {
        Ok(Self {
            local_addr: listener.local_addr()?,
            listener: Some(listener),
            config: Arc::new(config),
            handshakes: FuturesUnordered::new(),
            registry: Arc::new(Registry::default()),
            accept_backoff: None,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration the server was made with (WebSocket-Node's `config`).
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), wsflow::Error> {
    /// use std::time::Duration;
    /// use wsflow::{Server, ServerConfig};
    ///
    /// let config = ServerConfig::default().handshake_timeout(Duration::from_secs(3));
    /// let server = Server::bind("127.0.0.1:0", config).await?;
    /// assert_eq!(server.config().get_handshake_timeout(), Duration::from_secs(3));
    /// assert_eq!(server.config().get_connection().get_max_received_frame_size(), 64 * 1024);
    /// # Ok(()) }
    /// ```
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The next upgrade request; `None` once the server stopped accepting and every pending
    /// handshake finished. Cancel-safe.
    pub async fn accept(&mut self) -> Option<Request> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The next connection, accepting every request with its first requested protocol: what
    /// WebSocket-Node's `autoAcceptConnections` option does, here a call rather than a
    /// setting (use it instead of [`Server::accept`]). Requests whose answer fails to write
    /// are skipped. Not cancel-safe while a 101 answer is being written.
    pub async fn accept_connection(&mut self) -> Option<WebSocket> {
        while let Some(request) = self.accept().await {
            let protocol = request.requested_protocols().first().cloned();
            if let Ok(ws) = request.accept(protocol.as_deref()).await {
                return Some(ws);
            }
        }
        None
    }

    /// Handles for the live connections (WebSocket-Node's `connections`).
    pub fn connections(&self) -> Vec<Sender> {
        self.registry.senders()
    }

    /// The number of live connections.
    pub fn connection_count(&self) -> usize {
        self.registry.lock().len()
    }

    /// Upgrade requests being read or waiting for an answer (WebSocket-Node's
    /// `pendingRequests`).
    pub fn pending_requests(&self) -> usize {
        self.registry.pending.load(Ordering::Acquire)
    }

    /// Queues `message` on every live connection. A connection whose send buffer is above its
    /// high-water mark is skipped, so one slow reader never holds the others up. Returns the
    /// number of connections the message was queued on.
    ///
    /// With permessage-deflate agreed without context takeover on the server's side, the
    /// message is compressed once per thread, not once per connection (see
    /// [`DeflateConfig`]).
    pub fn broadcast(&self, message: impl Into<Message>) -> usize {
        let message = message.into();
        self.registry
            .senders()
            .iter()
            .filter(|sender| sender.try_send(message.clone()).is_ok())
            .count()
    }

    /// Broadcasts a text message (WebSocket-Node's `broadcastUTF`).
    pub fn broadcast_text(&self, text: impl Into<wsflow_core::Utf8Bytes>) -> usize {
        self.broadcast(Message::Text(text.into()))
    }

    /// Broadcasts a binary message (WebSocket-Node's `broadcastBytes`).
    pub fn broadcast_binary(&self, data: impl Into<bytes::Bytes>) -> usize {
        self.broadcast(Message::Binary(data.into()))
    }

    /// Stops taking new connections; live ones stay (WebSocket-Node's `unmount`).
    pub fn unmount(&mut self) {
        self.listener = None;
    }

    /// Closes every live connection with `code` and refuses the requests pending now (being
    /// read, or handed out and not yet accepted) with 503; later requests are served as
    /// before (WebSocket-Node's `closeAllConnections`, with 1001 in [`Server::shut_down`],
    /// which refuses later ones too). Fails, doing nothing, for a code that may not be sent
    /// (1005, 1006, 1015, or outside the ranges of RFC 6455 section 7.4).
    pub fn close_all_connections(&self, code: CloseCode) -> Result<(), Error> {
        crate::websocket::check_close(code, None)?;
        self.registry
            .close_all_code
            .store(code.as_u16(), Ordering::Release);
        self.registry.close_all_runs.fetch_add(1, Ordering::AcqRel);
        for sender in self.registry.senders() {
            let _ = sender.close(code, None);
        }
        Ok(())
    }

    /// Graceful shutdown (WebSocket-Node's `shutDown`): stops accepting, answers pending
    /// requests with 503 (and any later one), closes every connection with 1001 "going
    /// away", and waits until they are gone, all of it within the close timeout plus a
    /// second: handshakes still pending then are dropped unanswered. Connections must still
    /// be polled by their tasks for their close handshakes to run.
    pub async fn shut_down(&mut self) {
        self.unmount();
        self.registry.shutting_down.store(true, Ordering::Release);
        let _ = self.close_all_connections(CloseCode::GOING_AWAY); // a code that may be sent
        // One deadline for all of it: a client slow with its request or its 503 does not
        // stretch the shutdown.
        let deadline = runtime::deadline_in(
            self.config
                .connection
                .get_close_timeout()
                .saturating_add(Duration::from_secs(1)),
        );
        let mut timer = self.config.runtime.timer(deadline);
        // Finish reading pending handshakes: they are answered 503 as they complete. Those
        // still pending at the deadline are dropped, their sockets closed.
        let draining = async { while self.accept().await.is_some() {} };
        if runtime::with_deadline(&mut *timer, draining)
            .await
            .is_none()
        {
            self.handshakes.clear();
        }
        let registry = self.registry.clone();
        poll_fn(move |cx| {
            if registry.lock().is_empty() || timer.poll_elapsed(cx).is_ready() {
                return Poll::Ready(());
            }
            registry
                .empty_waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cx.waker().clone());
            if registry.lock().is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    fn start_handshake(
        &self,
        io: Box<dyn Transport>,
        peer: SocketAddr,
        slot: Option<ReadingSlot>,
    ) -> Handshake {
        let config = self.config.clone();
        let registry = self.registry.clone();
        // Counted from the accept, not from the handshake's first poll: a close of all
        // connections in between refuses it, and `pending_requests` counts it.
        let guard = PendingGuard::new(&registry);
        let close_all_runs = registry.close_all_runs.load(Ordering::Acquire);
        Box::pin(async move {
            let read = read_request(io, peer, &config).await;
            drop(slot);
            let (upgrade, leftover, mut io) = read?;
            if registry.refuses(close_all_runs) {
                let response = reject_response(503, Some("Server is shutting down"), &[]);
                let _ = answer_and_close(&mut *io, &response, &config).await;
                return None;
            }
            Some(Request::new(RequestParts {
                upgrade,
                io,
                leftover,
                peer,
                config,
                registry,
                close_all_runs,
                _pending: guard,
            }))
        })
    }
}

impl Stream for Server {
    type Item = Request;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Request>> {
        let this = &mut *self;
        loop {
            // Take new sockets while there is room for their handshakes.
            let mut accepted = false;
            let mut refused = 0;
            if let Some(backoff) = &mut this.accept_backoff
                && backoff.poll_elapsed(cx).is_ready()
            {
                this.accept_backoff = None;
            }
            if let Some(listener) = &this.listener
                && this.accept_backoff.is_none()
            {
                while this.handshakes.len() < this.config.max_pending_handshakes {
                    match listener.poll_accept(cx) {
                        Poll::Ready(Ok((io, peer))) => {
                            let slot = match this.config.max_pending_handshakes_per_ip {
                                None => None,
                                Some(limit) => {
                                    match ReadingSlot::take(&this.registry, peer.ip(), limit) {
                                        Some(slot) => Some(slot),
                                        // Over its address's limit: closed at once. A
                                        // flood of them does not keep this poll accepting
                                        // for ever: past a few, it lets the rest run.
                                        None => {
                                            #[cfg(feature = "tracing")]
                                            tracing::debug!(
                                                %peer,
                                                "websocket socket closed: its address has \
                                                 max_pending_handshakes_per_ip requests pending"
                                            );
                                            refused += 1;
                                            if refused == MAX_REFUSED_PER_POLL {
                                                cx.waker().wake_by_ref();
                                                break;
                                            }
                                            continue;
                                        }
                                    }
                                }
                            };
                            let handshake = this.start_handshake(io, peer, slot);
                            this.handshakes.push(handshake);
                            accepted = true;
                        }
                        // A failed accept concerns one socket (a reset) or the process (out
                        // of file descriptors, which repeats until one is freed): pause
                        // accepting briefly rather than spin; the listener carries on.
                        Poll::Ready(Err(_)) => {
                            let mut backoff =
                                this.config.runtime.timer(Instant::now() + ACCEPT_BACKOFF);
                            // Registers the waker: accepting resumes when it fires.
                            if backoff.poll_elapsed(cx).is_pending() {
                                this.accept_backoff = Some(backoff);
                                break;
                            }
                        }
                        Poll::Pending => break,
                    }
                }
            }
            match Pin::new(&mut this.handshakes).poll_next(cx) {
                Poll::Ready(Some(Some(request))) => return Poll::Ready(Some(request)),
                Poll::Ready(Some(None)) => continue,
                Poll::Ready(None) if this.listener.is_none() => return Poll::Ready(None),
                Poll::Ready(None) if accepted => continue,
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Reads and validates the upgrade request, answering errors and timeouts itself (and
/// reporting them as `tracing` events: WebSocket-Node's `upgradeError`).
async fn read_request(
    mut io: Box<dyn Transport>,
    peer: SocketAddr,
    config: &ServerConfig,
) -> Option<(UpgradeRequest, BytesMut, Box<dyn Transport>)> {
    let mut timer = config
        .runtime
        .timer(runtime::deadline_in(config.handshake_timeout));
    #[cfg(feature = "rustls")]
    if let Some(tls) = &config.tls {
        // A peer that fails the TLS handshake, or is too slow with it, is dropped: there is
        // no HTTP channel yet to answer on.
        let accepting = crate::tls::accept(io, tls, config.runtime);
        io = runtime::with_deadline(&mut *timer, accepting).await?.ok()?;
    }
    let mut buf = BytesMut::with_capacity(1024);
    let mut progress = HeadProgress::new();
    let outcome = poll_fn(|cx| {
        loop {
            match parse_request_resumed(&buf, &config.limits, &mut progress) {
                Ok(Parsed::Complete { value, consumed }) => {
                    return Poll::Ready(Ok(Some((value, consumed))));
                }
                Ok(Parsed::Incomplete) => {}
                Err(err) => return Poll::Ready(Err(Some(err))),
            }
            if buf.capacity() - buf.len() < 512 {
                buf.reserve(1024);
            }
            match io.poll_read_buf(cx, &mut buf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Ok(None)),
                Poll::Ready(Ok(_)) => continue,
                Poll::Pending => {}
            }
            if timer.poll_elapsed(cx).is_ready() {
                // Slowloris: no complete request in time.
                return Poll::Ready(Err(None));
            }
            return Poll::Pending;
        }
    })
    .await;
    match outcome {
        Ok(Some((upgrade, consumed))) => {
            buf.advance(consumed);
            Some((upgrade, buf, io))
        }
        Ok(None) => None,
        Err(error) => {
            #[cfg(feature = "tracing")]
            match &error {
                Some(err) => tracing::debug!(%peer, error = %err, "websocket upgrade refused"),
                None => tracing::debug!(%peer, "websocket upgrade timed out"),
            }
            #[cfg(not(feature = "tracing"))]
            let _ = peer;
            let response = match error {
                Some(err) => err.to_response(),
                None => reject_response(408, Some("Handshake timed out"), &[]),
            };
            // A fresh deadline: after a 408 the handshake's has passed.
            let _ = answer_and_close(&mut *io, &response, config).await;
            None
        }
    }
}

/// Writes an HTTP answer that ends the exchange and shuts the socket's write half down, with
/// the handshake timeout again for the client to take it.
async fn answer_and_close(
    io: &mut dyn Transport,
    response: &[u8],
    config: &ServerConfig,
) -> std::io::Result<()> {
    runtime::answer_and_shut_down(io, response, config.runtime, config.handshake_timeout).await
}

/// The most `X-Forwarded-For` entries a connection keeps (see [`Request::remote_addresses`]).
pub const MAX_FORWARDED: usize = 32;

/// The `X-Forwarded-For` chain a connection keeps, unless the server ignores it. A chain
/// lives as long as the connection, and a client can send thousands of entries: a long one
/// keeps its first entry (the address the client gives) and its last ones (added by the
/// proxies nearest to the server, the ones to trust).
pub(crate) fn forwarded_addresses(config: &ServerConfig, upgrade: &UpgradeRequest) -> Vec<String> {
    if config.ignore_x_forwarded_for {
        return Vec::new();
    }
    let chain = upgrade.x_forwarded_for();
    let skipped = chain.len().saturating_sub(MAX_FORWARDED);
    chain
        .iter()
        .take(1)
        .chain(chain.iter().skip(1 + skipped))
        .map(|entry| (*entry).to_owned())
        .collect()
}

/// A pending upgrade request: WebSocket-Node's `WebSocketRequest`. Accept it to get a
/// [`WebSocket`], or reject it with an HTTP status. Dropping it closes the socket without an
/// answer.
pub struct Request {
    /// Boxed: a task that owns a request keeps room for it in its future for as long as the
    /// task lives (a connection's whole life, when the task goes on to run the WebSocket), so
    /// the request takes one pointer there.
    parts: Box<RequestParts>,
}

/// What a [`Request`] holds.
struct RequestParts {
    upgrade: UpgradeRequest,
    io: Box<dyn Transport>,
    leftover: BytesMut,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    registry: Arc<Registry>,
    /// `Registry::close_all_runs` when the request began.
    close_all_runs: u64,
    _pending: PendingGuard,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("resource", &self.resource())
            .field("peer", &self.parts.peer)
            .field("requested_protocols", &self.requested_protocols())
            .finish_non_exhaustive()
    }
}

impl Request {
    /// Reads an upgrade request from a tokio stream that another server accepted (a TCP or
    /// TLS stream), with the server options' limits and handshake timeout. Malformed requests
    /// are answered (400, 426, 431...) and returned as errors.
    #[cfg(feature = "tokio")]
    pub async fn from_tokio_stream<T>(
        stream: T,
        peer: SocketAddr,
        config: ServerConfig,
    ) -> Result<Self, Error>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        Self::from_transport(
            crate::rt_tokio::wrap(stream),
            peer,
            config.runtime(Runtime::Tokio),
        )
        .await
    }

    /// Reads an upgrade request from a futures-io stream (async-std, smol) that another
    /// server accepted, as `Request::from_tokio_stream` does on tokio.
    #[cfg(feature = "async-std")]
    pub async fn from_async_io_stream<T>(
        stream: T,
        peer: SocketAddr,
        config: ServerConfig,
    ) -> Result<Self, Error>
    where
        T: futures_io::AsyncRead + futures_io::AsyncWrite + Send + Unpin + 'static,
    {
        Self::from_transport(
            crate::rt_async_std::wrap(stream),
            peer,
            config.runtime(Runtime::AsyncStd),
        )
        .await
    }

    async fn from_transport(
        io: Box<dyn Transport>,
        peer: SocketAddr,
        config: ServerConfig,
    ) -> Result<Self, Error> {
        let registry = Arc::new(Registry::default());
        let guard = PendingGuard::new(&registry);
        let config = Arc::new(config);
        let (upgrade, leftover, io) = read_request(io, peer, &config).await.ok_or_else(|| {
            Error::Io(Arc::new(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "no valid upgrade request arrived (it was answered with an HTTP error)",
            )))
        })?;
        Ok(Self::new(RequestParts {
            upgrade,
            io,
            leftover,
            peer,
            config,
            registry,
            close_all_runs: 0,
            _pending: guard,
        }))
    }

    fn new(parts: RequestParts) -> Self {
        Self {
            parts: Box::new(parts),
        }
    }

    /// The parsed upgrade request, with every header.
    pub fn upgrade(&self) -> &UpgradeRequest {
        &self.parts.upgrade
    }

    /// The raw path and query (WebSocket-Node's `resource`).
    pub fn resource(&self) -> &str {
        self.parts.upgrade.resource()
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.parts.upgrade.path()
    }

    /// The query pairs, percent-decoded (WebSocket-Node's `resourceURL.query`).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.parts.upgrade.query_pairs()
    }

    /// The `Host` header.
    pub fn host(&self) -> &str {
        self.parts.upgrade.host()
    }

    /// The `Origin` (or `Sec-WebSocket-Origin` for version 8).
    pub fn origin(&self) -> Option<&str> {
        self.parts.upgrade.origin()
    }

    /// The requested subprotocols in the client's order, lower-cased.
    pub fn requested_protocols(&self) -> &[String] {
        self.parts.upgrade.requested_protocols()
    }

    /// The requested extensions with their parameters.
    pub fn requested_extensions(&self) -> &[ExtensionOffer] {
        self.parts.upgrade.requested_extensions()
    }

    /// The cookies, percent-decoded.
    pub fn cookies(&self) -> &[(String, String)] {
        self.parts.upgrade.cookies()
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.upgrade.header(name)
    }

    /// The protocol version asked for (8 or 13).
    pub fn version(&self) -> u8 {
        self.parts.upgrade.version()
    }

    /// The socket's peer address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.parts.peer
    }

    /// The peer's address for the application: the first `X-Forwarded-For` entry unless the
    /// server ignores it, otherwise the socket's peer IP (WebSocket-Node's `remoteAddress`).
    pub fn remote_address(&self) -> String {
        self.remote_addresses()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.parts.peer.ip().to_string())
    }

    /// The `X-Forwarded-For` chain (unless ignored) followed by the socket's peer IP
    /// (WebSocket-Node's `remoteAddresses`). A chain of more than [`MAX_FORWARDED`] entries
    /// keeps its first and its last `MAX_FORWARDED - 1`.
    pub fn remote_addresses(&self) -> Vec<String> {
        let mut addresses = forwarded_addresses(&self.parts.config, &self.parts.upgrade);
        // Exactly the room needed: a forwarded chain lives as long as the connection.
        addresses.reserve_exact(1);
        addresses.push(self.parts.peer.ip().to_string());
        addresses
    }

    /// Accepts with `protocol`, which must be one the client asked for (or `None`).
    ///
    /// Not cancel-safe: dropping the future while the 101 answer is written drops the socket.
    pub fn accept(self, protocol: Option<&str>) -> Accepting {
        self.accept_with(AcceptOptions::new().protocol(protocol))
    }

    /// Accepts with cookies to set (WebSocket-Node's `accept(protocol, origin, cookies)`).
    pub fn accept_with_cookies(self, protocol: Option<&str>, cookies: Vec<SetCookie>) -> Accepting {
        let options = cookies.into_iter().fold(
            AcceptOptions::new().protocol(protocol),
            AcceptOptions::cookie,
        );
        self.accept_with(options)
    }

    /// Accepts with full control over the 101 answer (extra headers, cookies, the agreed
    /// extensions). A protocol the client did not ask for is answered with 500 and
    /// returned as an error.
    ///
    /// Without an extensions answer in `options`, permessage-deflate is negotiated as
    /// [`ServerConfig::permessage_deflate`] says. With one, it is sent as given, and if it
    /// agrees to permessage-deflate, the connection compresses with those parameters (an
    /// answer RFC 7692 does not allow, or one that fits none of the client's offers, as a
    /// window limit the client did not offer to take, is answered with 500 and returned as
    /// an error).
    pub fn accept_with(self, options: AcceptOptions) -> Accepting {
        Accepting(Box::pin(self.accept_in_place(options)))
    }

    async fn accept_in_place(mut self, mut options: AcceptOptions) -> Result<WebSocket, Error> {
        if self.parts.registry.refuses(self.parts.close_all_runs) {
            let _ = self.answer(503, Some("Server is shutting down"), &[]).await;
            return Err(Error::ShuttingDown);
        }
        options = answer_deflate(&self.parts.config, &self.parts.upgrade, options);
        let accepted = self.parts.upgrade.accept(&options).and_then(|response| {
            let agreed = agreed_extensions(
                self.parts.upgrade.requested_extensions(),
                options.get_extensions(),
            )?;
            Ok((response, agreed))
        });
        let (response, (agreed, deflate)) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                let _ = self.answer(500, Some(&err.to_string()), &[]).await;
                return Err(err.into());
            }
        };
        let config = &self.parts.config;
        let deadline = runtime::deadline_in(config.handshake_timeout);
        runtime::write_all_by(&mut *self.parts.io, &response, config.runtime, deadline).await?;
        let negotiated = server_negotiated(
            &self.parts.config,
            options.get_protocol(),
            self.parts.upgrade.version(),
            agreed,
            deflate,
        );
        let conn = Connection::new(
            Role::Server,
            self.parts.config.connection.clone(),
            negotiated,
            std::mem::take(&mut self.parts.leftover),
            Instant::now(),
        );
        let info = PeerInfo::new(Some(self.parts.peer), self.remote_addresses(), &conn);
        let RequestParts {
            io,
            config,
            registry,
            close_all_runs,
            ..
        } = *self.parts;
        let mut ws = WebSocket::new(conn, io, config.runtime, info, None);
        let registration = registry.register(ws.sender());
        ws.set_registration(registration);
        if registry.refuses(close_all_runs) {
            // All connections were closed while the 101 was written, perhaps before this
            // one was registered: it is closed as they were.
            let code = if registry.shutting_down.load(Ordering::Acquire) {
                // `shut_down` sets its flag just before it closes all with 1001.
                CloseCode::GOING_AWAY
            } else {
                CloseCode::from(registry.close_all_code.load(Ordering::Acquire))
            };
            let _ = ws.sender().close(code, None);
        }
        Ok(ws)
    }

    /// Rejects with `status` (WebSocket-Node's default is 403) and an optional reason, sent
    /// in `X-WebSocket-Reject-Reason`.
    pub async fn reject(self, status: u16, reason: Option<&str>) -> Result<(), Error> {
        self.reject_with_headers(status, reason, &[]).await
    }

    /// Rejects with extra headers (CR/LF stripped, invalid names dropped).
    pub async fn reject_with_headers(
        mut self,
        status: u16,
        reason: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<(), Error> {
        self.answer(status, reason, headers).await
    }

    async fn answer(
        &mut self,
        status: u16,
        reason: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<(), Error> {
        let response = reject_response(status, reason, headers);
        answer_and_close(&mut *self.parts.io, &response, &self.parts.config).await?;
        Ok(())
    }
}

/// The extensions of a `101` answer, one entry each, and the permessage-deflate parameters
/// among them.
/// Adds the permessage-deflate answer to `options` when the server accepts compression, the
/// client offered it, and the application did not answer extensions itself.
pub(crate) fn answer_deflate(
    config: &ServerConfig,
    upgrade: &UpgradeRequest,
    options: AcceptOptions,
) -> AcceptOptions {
    if options.get_extensions().is_none()
        && let Some(deflate) = &config.deflate
        && let Some(answer) = negotiate_deflate(
            upgrade.requested_extensions(),
            &deflate_params(deflate, Role::Server),
        )
    {
        return options.extensions(&answer.to_string());
    }
    options
}

/// What an accepted server connection runs with: its protocol, version, the extensions the
/// answer agreed, and the compression extension when permessage-deflate is among them.
pub(crate) fn server_negotiated(
    config: &ServerConfig,
    protocol: Option<&str>,
    version: u8,
    agreed: Vec<String>,
    deflate: Option<DeflateParams>,
) -> Negotiated {
    let mut negotiated = Negotiated::new()
        .protocol(protocol)
        .version(version)
        .extensions(agreed);
    if let Some(params) = deflate {
        let deflate_config = config.deflate.clone().unwrap_or_default();
        negotiated = negotiated.extension(Box::new(deflate_extension(
            Role::Server,
            &deflate_config,
            &params,
        )));
    }
    negotiated
}

pub(crate) fn agreed_extensions(
    offered: &[ExtensionOffer],
    answer: Option<&str>,
) -> Result<(Vec<String>, Option<DeflateParams>), HandshakeError> {
    let extensions = match answer {
        Some(value) => parse_extensions(value)?,
        None => Vec::new(),
    };
    // The answer must fit one of the client's valid offers, as the client checks it: a
    // window or a takeover rule the client did not agree to would have the two ends
    // compress and inflate differently.
    let offers: Vec<DeflateParams> = offered
        .iter()
        .filter(|offer| offer.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE))
        .filter_map(|offer| DeflateParams::from_offer(offer).ok())
        .collect();
    let deflate = check_deflate_response(&offers, &extensions)?;
    Ok((
        extensions.iter().map(ExtensionOffer::to_string).collect(),
        deflate,
    ))
}

/// What an endpoint asks for in the handshake, from its permessage-deflate options: the
/// answer a server wants, or the offer a client sends.
pub(crate) fn deflate_params(config: &DeflateConfig, role: Role) -> DeflateParams {
    let mut params = DeflateParams::new();
    if config.get_server_no_context_takeover() {
        params = params.with_server_no_context_takeover();
    }
    if config.get_client_no_context_takeover() {
        params = params.with_client_no_context_takeover();
    }
    let server_bits = config.get_server_max_window_bits();
    if server_bits < DeflateConfig::MAX_WINDOW_BITS {
        params = params.with_server_max_window_bits(server_bits);
    }
    let client_bits = config.get_client_max_window_bits();
    let client_limit = (client_bits < DeflateConfig::MAX_WINDOW_BITS).then_some(client_bits);
    match role {
        Role::Server if client_limit.is_some() => {
            params = params.with_client_max_window_bits(client_limit);
        }
        Role::Server => {}
        // A client always says it can limit its window: servers that want it may then ask.
        Role::Client => params = params.with_client_max_window_bits(client_limit),
    }
    params
}

/// The extension for what the handshake agreed. An endpoint may always compress with less
/// than agreed: its own window limit and no-context-takeover wish hold too.
pub(crate) fn deflate_extension(
    role: Role,
    config: &DeflateConfig,
    agreed: &DeflateParams,
) -> PerMessageDeflate {
    let mut server_bits = agreed.server_window_bits();
    let mut server_reset = agreed.server_no_context_takeover;
    let mut client_bits = agreed.client_window_bits();
    let mut client_reset = agreed.client_no_context_takeover;
    match role {
        Role::Server => {
            server_bits = server_bits.min(config.get_server_max_window_bits());
            server_reset |= config.get_server_no_context_takeover();
        }
        Role::Client => {
            client_bits = client_bits.min(config.get_client_max_window_bits());
            client_reset |= config.get_client_no_context_takeover();
        }
    }
    let config = config
        .clone()
        .server_no_context_takeover(server_reset)
        .client_no_context_takeover(client_reset)
        .server_max_window_bits(server_bits)
        .client_max_window_bits(client_bits);
    PerMessageDeflate::new(role, &config)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "tokio")]
    use crate::ClientConfig;

    #[test]
    fn reading_slots_count_ipv6_by_64_and_mapped_ipv4_as_ipv4() {
        let registry = Arc::new(Registry::default());
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let first = ReadingSlot::take(&registry, ip("2001:db8::1"), 2).unwrap();
        let second = ReadingSlot::take(&registry, ip("2001:db8::ffff:2"), 2).unwrap();
        // A third address of the same /64 is over the limit; another /64 is not.
        assert!(ReadingSlot::take(&registry, ip("2001:db8::3"), 2).is_none());
        let other = ReadingSlot::take(&registry, ip("2001:db8:0:1::1"), 2).unwrap();
        let v4 = ReadingSlot::take(&registry, ip("192.0.2.1"), 1).unwrap();
        assert!(ReadingSlot::take(&registry, ip("::ffff:192.0.2.1"), 1).is_none());
        drop(first);
        let again = ReadingSlot::take(&registry, ip("2001:db8::9"), 2).unwrap();
        drop((second, other, v4, again));
        // Every count gone with its slots.
        assert!(registry.reading_by_ip.lock().unwrap().is_empty());
    }

    #[test]
    fn deflate_options_become_handshake_parameters() {
        let default = DeflateConfig::new();
        assert_eq!(
            deflate_params(&default, Role::Server).to_string(),
            "permessage-deflate"
        );
        assert_eq!(
            deflate_params(&default, Role::Client).to_string(),
            "permessage-deflate; client_max_window_bits"
        );
        let all = DeflateConfig::new()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true)
            .server_max_window_bits(9)
            .client_max_window_bits(8);
        let expected = "permessage-deflate; server_no_context_takeover; \
                        client_no_context_takeover; server_max_window_bits=9; \
                        client_max_window_bits=8";
        assert_eq!(deflate_params(&all, Role::Server).to_string(), expected);
        assert_eq!(deflate_params(&all, Role::Client).to_string(), expected);
    }

    #[test]
    fn agreed_extensions_are_listed_and_checked() {
        let offered = parse_extensions("x-foo, permessage-deflate").unwrap();
        assert_eq!(agreed_extensions(&offered, None).unwrap(), (vec![], None));
        let (names, deflate) = agreed_extensions(
            &offered,
            Some("x-foo, permessage-deflate; server_max_window_bits=10"),
        )
        .unwrap();
        assert_eq!(
            names,
            ["x-foo", "permessage-deflate; server_max_window_bits=10"]
        );
        assert_eq!(deflate.unwrap().server_window_bits(), 10);
        for bad in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; bogus",
            "permessage-deflate, permessage-deflate",
            // Valid, but not what the client offered: it cannot be limited, nor go without
            // compression it did not ask for.
            "permessage-deflate; client_max_window_bits=10",
        ] {
            assert!(agreed_extensions(&offered, Some(bad)).is_err(), "{bad}");
        }
        // A client that asked for a small server window, or offered nothing at all.
        let small = parse_extensions("permessage-deflate; server_max_window_bits=10").unwrap();
        assert!(agreed_extensions(&small, Some("permessage-deflate")).is_err());
        assert!(
            agreed_extensions(&small, Some("permessage-deflate; server_max_window_bits=9")).is_ok()
        );
        assert!(agreed_extensions(&[], Some("permessage-deflate")).is_err());
        assert!(agreed_extensions(&[], Some("x-foo")).is_ok());
    }

    /// A server and a client over a real socket, each with or without compression.
    #[cfg(feature = "tokio")]
    async fn echo_once(
        server: Option<DeflateConfig>,
        client: Option<DeflateConfig>,
    ) -> Vec<String> {
        let config = ServerConfig::default()
            .runtime(Runtime::Tokio)
            .permessage_deflate(server);
        let mut server = Server::bind("127.0.0.1:0", config).await.unwrap();
        let url = format!("ws://{}/", server.local_addr());
        let serving = tokio::spawn(async move {
            let mut ws = server.accept().await.unwrap().accept(None).await.unwrap();
            let extensions = ws.extensions().to_vec();
            while let Some(Ok(message)) = ws.recv().await {
                ws.send(message).await.unwrap();
            }
            extensions
        });
        let config = ClientConfig::default()
            .no_proxy()
            .runtime(Runtime::Tokio)
            .permessage_deflate(client);
        let mut ws = crate::Client::new(config).connect(&url).await.unwrap();
        let text = "compressible ".repeat(500);
        ws.send_text(text.as_str()).await.unwrap();
        let echoed = ws.recv().await.unwrap().unwrap();
        assert_eq!(echoed, Message::text(text.as_str()));
        let client_extensions = ws.extensions().to_vec();
        ws.close(CloseCode::NORMAL, None).await.unwrap();
        drop(ws);
        assert_eq!(serving.await.unwrap(), client_extensions);
        client_extensions
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn a_sender_can_send_one_message_uncompressed_on_a_compressed_connection() {
        let config = ServerConfig::default()
            .runtime(Runtime::Tokio)
            .permessage_deflate(DeflateConfig::new());
        let mut server = Server::bind("127.0.0.1:0", config).await.unwrap();
        let url = format!("ws://{}/", server.local_addr());
        let text = "compressible ".repeat(500);
        let sent = text.clone();
        let serving = tokio::spawn(async move {
            let ws = server.accept().await.unwrap().accept(None).await.unwrap();
            let (mut reader, sender) = ws.split();
            let driving = tokio::spawn(async move { while reader.recv().await.is_some() {} });
            sender.send_text(sent.as_str()).await.unwrap();
            sender.send_uncompressed(sent.as_str()).await.unwrap();
            driving.await.unwrap();
        });
        // The client sees frames as they arrive, RSV1 (compressed) included.
        let config = ClientConfig::default()
            .no_proxy()
            .runtime(Runtime::Tokio)
            .permessage_deflate(DeflateConfig::new())
            .connection(wsflow_core::Config::client().assemble_fragments(false));
        let mut ws = crate::Client::new(config).connect(&url).await.unwrap();
        let mut frames = Vec::new();
        while frames.len() < 2 {
            if let Some(wsflow_core::Event::Frame(frame)) = ws.next_event().await {
                frames.push(frame);
            }
        }
        assert!(frames[0].rsv1, "the plain send was not compressed");
        assert!(frames[0].payload.len() < text.len() / 10);
        assert!(!frames[1].rsv1, "send_uncompressed compressed");
        assert_eq!(&frames[1].payload[..], text.as_bytes());
        ws.close(CloseCode::NORMAL, None).await.unwrap();
        assert!(ws.closed().await.was_clean);
        serving.await.unwrap();
    }

    #[test]
    fn a_request_is_one_pointer_wide() {
        // A task keeps room for what it captured for its whole life: a task that takes a
        // request and goes on to run the connection must not pay for the request meanwhile.
        assert_eq!(std::mem::size_of::<Request>(), std::mem::size_of::<usize>());
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn senders_reach_their_connection_until_it_is_dropped_then_fail() {
        let mut server = Server::bind(
            "127.0.0.1:0",
            ServerConfig::default().runtime(Runtime::Tokio),
        )
        .await
        .unwrap();
        let url = format!("ws://{}/", server.local_addr());
        let client = tokio::spawn(async move {
            let config = ClientConfig::default().no_proxy().runtime(Runtime::Tokio);
            let mut ws = crate::Client::new(config).connect(&url).await.unwrap();
            let mut texts = Vec::new();
            while let Some(Ok(message)) = ws.recv().await {
                texts.push(message.as_text().unwrap().to_owned());
            }
            texts
        });
        let mut ws = server.accept().await.unwrap().accept(None).await.unwrap();
        let sender = ws.sender();
        let other = sender.clone();
        assert!(sender.same_connection(&other));
        assert!(!sender.is_closed());
        assert_eq!(sender.remote_address(), Some("127.0.0.1"));
        assert_eq!(sender.remote_address(), ws.remote_address());
        assert_eq!(sender.peer_addr(), ws.peer_addr());
        // Queued from another task while this one is busy elsewhere: applied in order once
        // the connection is driven.
        let sending = tokio::spawn(async move {
            for i in 0..100 {
                other.send_text(format!("{i}")).await.unwrap();
            }
        });
        sending.await.unwrap();
        ws.flush().await.unwrap();
        ws.close(CloseCode::NORMAL, None).await.unwrap();
        assert!(ws.closed().await.was_clean);
        let texts = client.await.unwrap();
        assert_eq!(texts, (0..100).map(|i| i.to_string()).collect::<Vec<_>>());
        let unrelated = {
            let url = format!("ws://{}/", server.local_addr());
            let dialing = tokio::spawn(async move {
                let config = ClientConfig::default().no_proxy().runtime(Runtime::Tokio);
                crate::Client::new(config).connect(&url).await.unwrap()
            });
            let second = server.accept().await.unwrap().accept(None).await.unwrap();
            let _client = dialing.await.unwrap();
            second.sender()
        };
        assert!(!sender.same_connection(&unrelated));
        drop(ws);
        assert!(sender.is_closed());
        assert!(matches!(
            sender.send_text("too late").await,
            Err(Error::ConnectionGone)
        ));
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn compression_is_used_only_when_both_sides_want_it() {
        let on = || Some(DeflateConfig::new());
        assert_eq!(echo_once(on(), on()).await, ["permessage-deflate"]);
        let limited = DeflateConfig::new()
            .server_no_context_takeover(true)
            .client_max_window_bits(9);
        assert_eq!(
            echo_once(Some(limited), on()).await,
            ["permessage-deflate; server_no_context_takeover; client_max_window_bits=9"]
        );
        assert!(echo_once(None, on()).await.is_empty());
        assert!(echo_once(on(), None).await.is_empty());
    }
}
