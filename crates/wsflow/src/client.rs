//! The client (WebSocket-Node's `WebSocketClient`).

use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use wsflow_core::{Config, Connection, Negotiated, Role};
use wsflow_handshake::{ClientHandshake, ClientOptions, Parsed, WsUrl};

use crate::error::Error;
use crate::runtime::{self, Runtime};
use crate::websocket::{PeerInfo, WebSocket};

/// Client options: WebSocket-Node's `WebSocketClient` config plus what its `connect` takes
/// (protocols, origin, headers).
///
/// ```
/// use wsflow::ClientConfig;
///
/// let config = ClientConfig::default()
///     .protocols(["chat", "superchat"])
///     .origin("https://example.com")
///     .header("Authorization", "Bearer secret")
///     .max_received_message_size(32 << 20);
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    pub(crate) connection: Config,
    pub(crate) protocols: Vec<String>,
    pub(crate) origin: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) version: u8,
    pub(crate) handshake_timeout: Duration,
    pub(crate) disable_nagle_algorithm: bool,
    pub(crate) runtime: Runtime,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connection: Config::client(),
            protocols: Vec::new(),
            origin: None,
            headers: Vec::new(),
            version: 13,
            handshake_timeout: Duration::from_secs(30),
            disable_nagle_algorithm: true,
            runtime: Runtime::default(),
        }
    }
}

impl ClientConfig {
    /// The connection options (default: [`Config::client`]).
    pub fn connection(mut self, config: Config) -> Self {
        self.connection = config;
        self
    }

    /// Shortcut for the connection option of the same name (default 1 MiB).
    pub fn max_received_frame_size(mut self, bytes: usize) -> Self {
        self.connection = self.connection.max_received_frame_size(bytes);
        self
    }

    /// Shortcut for the connection option of the same name (default 8 MiB).
    pub fn max_received_message_size(mut self, bytes: usize) -> Self {
        self.connection = self.connection.max_received_message_size(bytes);
        self
    }

    /// The subprotocols to request, in order of preference.
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// The `Origin` header to send.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// An extra request header. It cannot replace the headers the protocol owns (Upgrade,
    /// Connection, Sec-WebSocket-Key, Sec-WebSocket-Version).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The protocol version to speak: 13 (default) or 8.
    pub fn version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }

    /// How long connecting and the opening handshake may take (default 30 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Turn Nagle's algorithm off (default true).
    pub fn disable_nagle_algorithm(mut self, disable: bool) -> Self {
        self.disable_nagle_algorithm = disable;
        self
    }

    /// The runtime for sockets and timers.
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = runtime;
        self
    }

    fn handshake_options(&self) -> ClientOptions {
        let mut options = ClientOptions::new()
            .protocols(self.protocols.iter().cloned())
            .version(self.version);
        if let Some(origin) = &self.origin {
            options = options.origin(origin.clone());
        }
        for (name, value) in &self.headers {
            options = options.header(name, value);
        }
        options
    }
}

/// Connects to `url` (`ws://host[:port]/path?query`) with the default client options.
///
/// ```no_run
/// # async fn example() -> Result<(), wsflow::Error> {
/// let mut ws = wsflow::connect("ws://127.0.0.1:8080/").await?;
/// ws.send_text("hi").await?;
/// # Ok(()) }
/// ```
pub async fn connect(url: &str) -> Result<WebSocket, Error> {
    Client::new(ClientConfig::default()).connect(url).await
}

/// A WebSocket client: WebSocket-Node's `WebSocketClient`.
///
/// A non-101 answer is [`Error::Handshake`] with
/// [`HandshakeError::UnexpectedStatus`](wsflow_handshake::HandshakeError::UnexpectedStatus),
/// which carries the status, the headers and the start of the body (WebSocket-Node's
/// `httpResponse` event). Dropping the `connect` future aborts the handshake
/// (WebSocket-Node's `abort`).
#[derive(Clone, Debug, Default)]
pub struct Client {
    config: ClientConfig,
}

impl Client {
    /// A client with these options.
    pub fn new(config: ClientConfig) -> Self {
        Self { config }
    }

    /// Connects and performs the opening handshake. Bytes the server sent right after its
    /// 101 answer are kept as the first frames.
    ///
    /// Cancel-safe in the sense that dropping the future aborts the attempt and closes the
    /// socket.
    pub async fn connect(&self, url: &str) -> Result<WebSocket, Error> {
        let url = WsUrl::parse(url).map_err(|err| Error::Handshake(err.into()))?;
        if url.is_secure() {
            return Err(Error::Unsupported(
                "wss:// needs TLS, which this build of wsflow does not include".to_owned(),
            ));
        }
        let config = &self.config;
        let deadline = Instant::now() + config.handshake_timeout;
        let mut timer = config.runtime.timer(deadline);
        let connecting =
            config
                .runtime
                .connect(url.host(), url.port(), config.disable_nagle_algorithm);
        let mut connecting = std::pin::pin!(connecting);
        let (mut io, peer_addr) = poll_fn(|cx| {
            if let Poll::Ready(result) = connecting.as_mut().poll(cx) {
                return Poll::Ready(result.map_err(Error::from));
            }
            if timer.poll_elapsed(cx).is_ready() {
                return Poll::Ready(Err(Error::HandshakeTimeout(config.handshake_timeout)));
            }
            Poll::Pending
        })
        .await?;

        let (handshake, request) = ClientHandshake::new(&url, &config.handshake_options())?;
        runtime::write_all(&mut *io, &request).await?;
        let mut buf = BytesMut::with_capacity(1024);
        let (response, consumed) = poll_fn(|cx| {
            loop {
                match handshake.parse_response(&buf) {
                    Ok(Parsed::Complete { value, consumed }) => {
                        return Poll::Ready(Ok((value, consumed)));
                    }
                    Ok(Parsed::Incomplete) => {}
                    Err(err) => return Poll::Ready(Err(Error::from(err))),
                }
                if buf.capacity() - buf.len() < 512 {
                    buf.reserve(1024);
                }
                match io.poll_read_buf(cx, &mut buf) {
                    Poll::Ready(Ok(0)) => {
                        // The peer closed: a partial non-101 answer is still worth reporting.
                        return Poll::Ready(Err(match handshake.parse_response(&buf) {
                            Err(err) => err.into(),
                            Ok(_) => std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the server closed the connection during the handshake",
                            )
                            .into(),
                        }));
                    }
                    Poll::Ready(Ok(_)) => continue,
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
                    Poll::Pending => {}
                }
                if timer.poll_elapsed(cx).is_ready() {
                    return Poll::Ready(Err(Error::HandshakeTimeout(config.handshake_timeout)));
                }
                return Poll::Pending;
            }
        })
        .await?;
        buf.advance(consumed);
        let negotiated = Negotiated::new()
            .protocol(response.protocol())
            .version(config.version);
        let conn = Connection::new(
            Role::Client,
            config.connection.clone(),
            negotiated,
            buf,
            Instant::now(),
        );
        let info = PeerInfo::direct(peer_addr, &conn);
        Ok(WebSocket::new(conn, io, config.runtime, info, None))
    }
}
