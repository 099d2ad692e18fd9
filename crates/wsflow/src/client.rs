//! The client (WebSocket-Node's `WebSocketClient`).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use wsflow_core::{Config, Connection, DeflateConfig, Negotiated, Role};
use wsflow_handshake::{
    ClientHandshake, ClientOptions, ExtensionOffer, HeadProgress, Parsed, WsUrl,
    check_deflate_response,
};

use crate::error::Error;
use crate::proxy::{Proxy, ProxyHandshake};
use crate::runtime::{self, Runtime, Transport};
use crate::server::{deflate_extension, deflate_params};
use crate::websocket::{PeerInfo, WebSocket};

/// Client options: WebSocket-Node's `WebSocketClient` config plus what its `connect` takes
/// (protocols, origin, headers).
///
/// permessage-deflate (RFC 7692) is off by default; offer it with
/// [`ClientConfig::permessage_deflate`].
///
/// ```
/// use wsflow::ClientConfig;
/// use wsflow::core::DeflateConfig;
///
/// let config = ClientConfig::default()
///     .protocols(["chat", "superchat"])
///     .origin("https://example.com")
///     .header("Authorization", "Bearer secret")
///     .max_received_message_size(32 << 20)
///     .permessage_deflate(DeflateConfig::new());
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    pub(crate) connection: Config,
    pub(crate) deflate: Option<DeflateConfig>,
    pub(crate) protocols: Vec<String>,
    pub(crate) origin: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) version: u8,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_response_head_size: usize,
    pub(crate) max_response_headers: usize,
    pub(crate) disable_nagle_algorithm: bool,
    pub(crate) runtime: Runtime,
    pub(crate) proxy: ProxyChoice,
    #[cfg(feature = "rustls")]
    pub(crate) tls: crate::tls::TlsClientConfig,
}

/// Where the client's proxy comes from.
#[derive(Clone, Debug)]
pub(crate) enum ProxyChoice {
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY`, like curl.
    FromEnv,
    /// Always direct.
    Direct,
    /// Always this proxy.
    Given(Proxy),
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connection: Config::client(),
            deflate: None,
            protocols: Vec::new(),
            origin: None,
            headers: Vec::new(),
            version: 13,
            handshake_timeout: Duration::from_secs(30),
            max_response_head_size: ClientOptions::DEFAULT_MAX_RESPONSE_HEAD_SIZE,
            max_response_headers: ClientOptions::DEFAULT_MAX_RESPONSE_HEADERS,
            disable_nagle_algorithm: true,
            runtime: Runtime::default(),
            proxy: ProxyChoice::FromEnv,
            #[cfg(feature = "rustls")]
            tls: crate::tls::TlsClientConfig::default(),
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

    /// Offers permessage-deflate (RFC 7692) with these options (`None`, the default: no
    /// offer). The offer always carries `client_max_window_bits`, so a server may limit the
    /// client's window; it asks for `server_no_context_takeover` and `server_max_window_bits`
    /// when the options do. The server's answer is checked against the offer
    /// ([`check_deflate_response`](wsflow_handshake::check_deflate_response)): an invalid one
    /// fails the connection with [`Error::Handshake`]; a server that declines connects
    /// without compression.
    ///
    /// Memory: about 417 KiB per connection that has compressed both ways, with the default
    /// 15-bit windows and context takeover; without context takeover both ways, none between
    /// messages: connections borrow zlib state from a per-thread pool (see [`DeflateConfig`]
    /// for the figures).
    pub fn permessage_deflate(mut self, config: impl Into<Option<DeflateConfig>>) -> Self {
        self.deflate = config.into();
        self
    }

    /// The permessage-deflate options set by [`ClientConfig::permessage_deflate`].
    pub fn get_permessage_deflate(&self) -> Option<&DeflateConfig> {
        self.deflate.as_ref()
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

    /// The largest head of the server's answer accepted, in bytes (16 KiB by default): past
    /// it, `connect` fails with [`HandshakeError::ResponseHeadTooLarge`](wsflow_handshake::HandshakeError::ResponseHeadTooLarge).
    /// Raise it for a server that sends large cookies.
    pub fn max_response_head_size(mut self, bytes: usize) -> Self {
        self.max_response_head_size = bytes;
        self
    }

    /// The most header lines accepted in the server's answer (64 by default): past it,
    /// `connect` fails with [`HandshakeError::TooManyResponseHeaders`](wsflow_handshake::HandshakeError::TooManyResponseHeaders).
    pub fn max_response_headers(mut self, count: usize) -> Self {
        self.max_response_headers = count;
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

    /// Connects through this proxy (HTTP `CONNECT` or SOCKS5), whatever the environment says.
    ///
    /// By default the proxy comes from the environment like curl's: `HTTPS_PROXY` for
    /// `wss://`, `HTTP_PROXY` for `ws://`, then `ALL_PROXY`, unless `NO_PROXY` lists the host
    /// (see [`Proxy::from_env`]). `wss://` through a proxy runs TLS inside the tunnel.
    ///
    /// ```
    /// use wsflow::{ClientConfig, Proxy};
    ///
    /// # fn example() -> Result<(), wsflow::Error> {
    /// let config = ClientConfig::default().proxy(Proxy::parse("socks5://user:pw@127.0.0.1:1080")?);
    /// # let _ = config;
    /// # Ok(()) }
    /// ```
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = ProxyChoice::Given(proxy);
        self
    }

    /// Connects directly, ignoring the proxy environment variables.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyChoice::Direct;
        self
    }

    /// TLS options for `wss://` (feature `rustls`; default: the webpki roots).
    ///
    /// ```
    /// use wsflow::{ClientConfig, TlsClientConfig};
    ///
    /// # fn example(ca_pem: &[u8]) -> Result<(), wsflow::Error> {
    /// let config = ClientConfig::default().tls(TlsClientConfig::default().add_root_pem(ca_pem)?);
    /// # let _ = config;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, tls: crate::tls::TlsClientConfig) -> Self {
        self.tls = tls;
        self
    }

    fn proxy_for(&self, url: &WsUrl) -> Result<Option<Proxy>, Error> {
        match &self.proxy {
            ProxyChoice::FromEnv => Proxy::from_env(url.is_secure(), url.host(), url.port()),
            ProxyChoice::Direct => Ok(None),
            ProxyChoice::Given(proxy) => Ok(Some(proxy.clone())),
        }
    }

    fn handshake_options(&self) -> ClientOptions {
        let mut options = ClientOptions::new()
            .protocols(self.protocols.iter().cloned())
            .version(self.version)
            .max_response_head_size(self.max_response_head_size)
            .max_response_headers(self.max_response_headers);
        if let Some(origin) = &self.origin {
            options = options.origin(origin.clone());
        }
        for (name, value) in &self.headers {
            options = options.header(name, value);
        }
        if let Some(deflate) = &self.deflate {
            options = options.extensions(&deflate_params(deflate, Role::Client).to_string());
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
        let url = WsUrl::parse(url)
            .map_err(|err| Error::from(wsflow_handshake::HandshakeError::from(err)))?;
        #[cfg(not(feature = "rustls"))]
        if url.is_secure() {
            return Err(Error::Unsupported(
                "wss:// needs TLS: enable wsflow's `rustls` feature".to_owned(),
            ));
        }
        let config = &self.config;
        let mut timer = config
            .runtime
            .timer(runtime::deadline_in(config.handshake_timeout));
        let (mut io, peer_addr) = runtime::with_deadline(&mut *timer, self.open_stream(&url))
            .await
            .ok_or(Error::HandshakeTimeout(config.handshake_timeout))??;

        let (handshake, request) = ClientHandshake::new(&url, &config.handshake_options())?;
        runtime::with_deadline(&mut *timer, runtime::write_all(&mut *io, &request))
            .await
            .ok_or(Error::HandshakeTimeout(config.handshake_timeout))??;
        let mut buf = BytesMut::with_capacity(1024);
        let mut progress = HeadProgress::new();
        let (response, consumed) = poll_fn(|cx| {
            loop {
                match handshake.parse_response_resumed(&buf, &mut progress) {
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
        let mut negotiated = Negotiated::new()
            .protocol(response.protocol())
            .version(config.version)
            .extensions(
                response
                    .extensions()
                    .iter()
                    .map(ExtensionOffer::to_string)
                    .collect(),
            );
        if let Some(deflate) = &config.deflate {
            let offer = deflate_params(deflate, Role::Client);
            if let Some(agreed) = check_deflate_response(&[offer], response.extensions())? {
                negotiated = negotiated.extension(Box::new(deflate_extension(
                    Role::Client,
                    deflate,
                    &agreed,
                )));
            }
        }
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

    /// The byte stream to the server: TCP, through the proxy if any, then TLS for `wss://`.
    async fn open_stream(
        &self,
        url: &WsUrl,
    ) -> Result<(Box<dyn Transport>, Option<SocketAddr>), Error> {
        let config = &self.config;
        let proxy = config.proxy_for(url)?;
        let (host, port) = match &proxy {
            Some(proxy) => (proxy.host(), proxy.port()),
            None => (url.host(), url.port()),
        };
        let (mut io, peer_addr) = config
            .runtime
            .connect(host, port, config.disable_nagle_algorithm)
            .await
            .map_err(|err| match &proxy {
                Some(proxy) => Error::Proxy(format!(
                    "cannot reach the proxy {}:{}: {err}",
                    proxy.host(),
                    proxy.port()
                )),
                None => err.into(),
            })?;
        if let Some(proxy) = &proxy {
            open_tunnel(&mut *io, proxy.handshake(url.host(), url.port())?).await?;
        }
        #[cfg(feature = "rustls")]
        if url.is_secure() {
            io = crate::tls::connect(io, config.tls.build()?, url.host(), config.runtime).await?;
        }
        Ok((io, peer_addr))
    }
}

/// Runs a proxy's tunnel handshake over `io`.
async fn open_tunnel(io: &mut dyn Transport, mut tunnel: ProxyHandshake) -> Result<(), Error> {
    let mut buf = [0u8; 1024];
    loop {
        let to_send = tunnel.take_to_send();
        if !to_send.is_empty() {
            runtime::write_all(io, &to_send).await?;
        }
        if tunnel.is_open() {
            return Ok(());
        }
        let n = poll_fn(|cx| io.poll_read(cx, &mut buf)).await?;
        if n == 0 {
            return Err(Error::Proxy(
                "the proxy closed the connection before opening the tunnel".to_owned(),
            ));
        }
        tunnel.handle_received(&buf[..n])?;
    }
}
