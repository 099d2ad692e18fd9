//! Client connections through proxies: HTTP `CONNECT` (with basic authentication) and SOCKS5
//! (with username/password), configured explicitly or from the environment like curl.
//!
//! The tunnel handshakes are small sans-IO state machines ([`ProxyHandshake`]): they say what
//! to send, take what arrived, and finish with the tunnel open; the client pumps them over the
//! TCP connection to the proxy, then speaks TLS (for `wss://`) and WebSocket inside the tunnel.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use wsflow_handshake::HeadProgress;

use crate::error::Error;

/// How to reach the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy, asked to open a tunnel with `CONNECT host:port`.
    HttpConnect,
    /// A SOCKS5 proxy (RFC 1928), which resolves the target's name itself.
    Socks5,
}

/// A proxy to connect through.
///
/// ```
/// use wsflow::{Proxy, ProxyKind};
///
/// let proxy = Proxy::parse("http://alice:s3cret@proxy.example:3128").unwrap();
/// assert_eq!(proxy.kind(), ProxyKind::HttpConnect);
/// assert_eq!((proxy.host(), proxy.port()), ("proxy.example", 3128));
///
/// let socks = Proxy::parse("socks5h://127.0.0.1:1080").unwrap();
/// assert_eq!(socks.kind(), ProxyKind::Socks5);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(user, _)| (user, "***")),
            )
            .finish()
    }
}

fn proxy_error(message: impl Into<String>) -> Error {
    Error::Proxy(message.into())
}

impl Proxy {
    /// A proxy of `kind` at `host:port`.
    pub fn new(kind: ProxyKind, host: impl Into<String>, port: u16) -> Self {
        Self {
            kind,
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// Authenticates with a username and password (HTTP basic, or SOCKS5 username/password).
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Parses a proxy URL as curl writes them: `http://[user:pass@]host[:port]` (port 80 by
    /// default; no scheme means http), `socks5://` or `socks5h://` (port 1080 by default; both
    /// let the proxy resolve names). Credentials may be percent-encoded.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        let (kind, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (ProxyKind::HttpConnect, 80),
            "socks5" | "socks5h" => (ProxyKind::Socks5, 1080),
            "https" => {
                return Err(proxy_error(
                    "https:// proxies (TLS to the proxy itself) are not supported; use http:// or socks5://",
                ));
            }
            other => {
                return Err(proxy_error(format!(
                    "unknown proxy scheme `{other}` (use http:// or socks5://)"
                )));
            }
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (
                    Some((percent_decode(user), percent_decode(password))),
                    host_port,
                )
            }
            None => (None, authority),
        };
        let (host, port) = split_host_port(host_port, default_port)
            .ok_or_else(|| proxy_error(format!("invalid proxy address in `{url}`")))?;
        if host.is_empty() {
            return Err(proxy_error(format!("no proxy host in `{url}`")));
        }
        Ok(Self {
            kind,
            host,
            port,
            credentials,
        })
    }

    /// The proxy curl would use for `target_host` with this scheme (`ws` or `wss`): from
    /// `https_proxy`/`HTTPS_PROXY` (for `wss`) or `http_proxy` (for `ws`; lower case only, as
    /// curl reads it, since CGI servers turn a request's `Proxy:` header into `HTTP_PROXY`),
    /// then `all_proxy`/`ALL_PROXY`, unless `no_proxy`/`NO_PROXY` matches the host. Lower-case
    /// names are checked before upper-case ones. `Ok(None)`: connect directly.
    ///
    /// A variable that is set to something that is not a proxy URL is an error, rather than
    /// a silent direct connection.
    ///
    /// ```
    /// # fn example() -> Result<(), wsflow::Error> {
    /// if let Some(proxy) = wsflow::Proxy::from_env(true, "api.example.com", 443)? {
    ///     println!("through {}:{}", proxy.host(), proxy.port());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn from_env(
        secure: bool,
        target_host: &str,
        target_port: u16,
    ) -> Result<Option<Self>, Error> {
        Self::from_vars(secure, target_host, target_port, |name| {
            std::env::var(name).ok()
        })
    }

    fn from_vars(
        secure: bool,
        target_host: &str,
        target_port: u16,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, Error> {
        let lookup = |name: &str, upper_too: bool| {
            let lower = var(name).map(|value| (name.to_owned(), value));
            let found = if upper_too {
                lower.or_else(|| {
                    let upper = name.to_ascii_uppercase();
                    var(&upper).map(|value| (upper, value))
                })
            } else {
                lower
            };
            found.filter(|(_, value)| !value.trim().is_empty())
        };
        if let Some((_, no_proxy)) = lookup("no_proxy", true)
            && no_proxy_matches(&no_proxy, target_host, target_port)
        {
            return Ok(None);
        }
        let scheme_var = if secure {
            lookup("https_proxy", true)
        } else {
            lookup("http_proxy", false)
        };
        let Some((name, value)) = scheme_var.or_else(|| lookup("all_proxy", true)) else {
            return Ok(None);
        };
        match Self::parse(value.trim()) {
            Ok(proxy) => Ok(Some(proxy)),
            Err(Error::Proxy(why)) => Err(proxy_error(format!("{name}: {why}"))),
            Err(other) => Err(other),
        }
    }

    /// The kind of proxy.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The tunnel handshake to `target_host:target_port` through this proxy; fails before
    /// anything is sent on what SOCKS5 cannot carry (names, usernames and passwords over 255
    /// bytes).
    pub(crate) fn handshake(
        &self,
        target_host: &str,
        target_port: u16,
    ) -> Result<ProxyHandshake, Error> {
        Ok(match self.kind {
            ProxyKind::HttpConnect => {
                let authority = if target_host.contains(':') {
                    format!("[{target_host}]:{target_port}")
                } else {
                    format!("{target_host}:{target_port}")
                };
                let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
                if let Some((user, password)) = &self.credentials {
                    let token = base64::engine::general_purpose::STANDARD
                        .encode(format!("{user}:{password}"));
                    request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
                }
                request.push_str("\r\n");
                ProxyHandshake {
                    state: State::HttpResponse,
                    to_send: request.into_bytes(),
                    received: Vec::new(),
                    head: HeadProgress::new(),
                    target_host: target_host.to_owned(),
                    target_port,
                    credentials: self.credentials.clone(),
                }
            }
            ProxyKind::Socks5 => {
                if target_host.len() > 255 {
                    return Err(proxy_error(format!(
                        "SOCKS5 carries host names of at most 255 bytes; {target_host:?} has {}",
                        target_host.len()
                    )));
                }
                if let Some((user, password)) = &self.credentials
                    && (user.len() > 255 || password.len() > 255)
                {
                    return Err(proxy_error(
                        "SOCKS5 usernames and passwords take at most 255 bytes",
                    ));
                }
                let to_send = if self.credentials.is_some() {
                    vec![5, 2, 0x00, 0x02]
                } else {
                    vec![5, 1, 0x00]
                };
                ProxyHandshake {
                    state: State::SocksMethod,
                    to_send,
                    received: Vec::new(),
                    head: HeadProgress::new(),
                    target_host: target_host.to_owned(),
                    target_port,
                    credentials: self.credentials.clone(),
                }
            }
        })
    }
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`.
fn split_host_port(text: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((text.to_owned(), default_port)),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // On bytes: the two after `%` need not be characters of their own (`%é` is text
        // that must stay as it is, not a slice to panic on).
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2]))
        {
            let byte = high << 4 | low;
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of an ASCII hexadecimal digit.
fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// Whether curl's `NO_PROXY` rules exclude `host`: `*`, exact names, domain suffixes (with or
/// without a leading dot), IP addresses, and CIDR ranges, each optionally with `:port`.
fn no_proxy_matches(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            // A bare IPv6 address (`::1`) has colons but no port.
            let (pattern, entry_port) = match split_host_port(entry, 0) {
                _ if entry.parse::<IpAddr>().is_ok() => (entry.to_owned(), 0),
                Some((pattern, entry_port)) if !entry.contains('/') => (pattern, entry_port),
                _ => (entry.to_owned(), 0),
            };
            if entry_port != 0 && entry_port != port {
                return false;
            }
            let pattern = pattern.to_ascii_lowercase();
            if let (Some(ip), Some((net, bits))) = (host_ip, pattern.split_once('/')) {
                return cidr_contains(net, bits, ip);
            }
            if let (Some(ip), Ok(pattern_ip)) = (host_ip, pattern.parse::<IpAddr>()) {
                return ip == pattern_ip;
            }
            let suffix = pattern.trim_start_matches('.');
            host == suffix || host.ends_with(&format!(".{suffix}"))
        })
}

fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    HttpResponse,
    SocksMethod,
    SocksAuth,
    SocksConnect,
    Open,
}

/// A tunnel handshake in progress: send [`ProxyHandshake::to_send`], feed what arrives to
/// [`ProxyHandshake::handle_received`], until it reports the tunnel open.
#[derive(Debug)]
pub(crate) struct ProxyHandshake {
    state: State,
    to_send: Vec<u8>,
    received: Vec<u8>,
    /// How far `received` has been searched for the end of the HTTP proxy's answer.
    head: HeadProgress,
    target_host: String,
    target_port: u16,
    credentials: Option<(String, String)>,
}

/// The largest proxy answer read before giving up.
const MAX_ANSWER: usize = 16 * 1024;

/// How much of an HTTP proxy's answer is parsed at every read while it is incomplete.
const EARLY_CHECK_LEN: usize = 1024;

impl ProxyHandshake {
    /// Bytes to write to the proxy now (empty when waiting for its answer).
    pub(crate) fn take_to_send(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.to_send)
    }

    /// Whether the tunnel is open.
    pub(crate) fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Takes bytes the proxy sent. Errors say what the proxy refused.
    pub(crate) fn handle_received(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.received.extend_from_slice(bytes);
        if self.received.len() > MAX_ANSWER {
            return Err(proxy_error("the proxy's answer is too long"));
        }
        loop {
            let progressed = match self.state {
                State::HttpResponse => self.http_response()?,
                State::SocksMethod => self.socks_method()?,
                State::SocksAuth => self.socks_auth()?,
                State::SocksConnect => self.socks_connect()?,
                State::Open => false,
            };
            if !progressed {
                break;
            }
        }
        if self.state == State::Open && !self.received.is_empty() {
            return Err(proxy_error(
                "the proxy sent bytes before the tunnel was used",
            ));
        }
        Ok(())
    }

    fn http_response(&mut self) -> Result<bool, Error> {
        // httparse runs over the whole answer: on the first KiB at each read, to fail at once
        // on one that is not HTTP, and past it only once the answer can be complete, so an
        // answer trickled in small reads is not parsed again and again.
        if self.received.len() > EARLY_CHECK_LEN && !self.head.has_complete_head(&self.received) {
            return Ok(false);
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let consumed = match response.parse(&self.received) {
            Ok(httparse::Status::Complete(consumed)) => consumed,
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(err) => {
                return Err(proxy_error(format!(
                    "the HTTP proxy sent an invalid answer: {err}"
                )));
            }
        };
        match response.code {
            Some(200..=299) => {}
            Some(407) => {
                return Err(proxy_error(if self.credentials.is_some() {
                    "the HTTP proxy refused the credentials (407 Proxy Authentication Required)"
                } else {
                    "the HTTP proxy requires credentials (407 Proxy Authentication Required); \
                     give them in the proxy URL (http://user:password@host:port)"
                }));
            }
            code => {
                return Err(proxy_error(format!(
                    "the HTTP proxy refused the tunnel to {}:{}: {} {}",
                    self.target_host,
                    self.target_port,
                    code.unwrap_or(0),
                    response.reason.unwrap_or("")
                )));
            }
        }
        self.received.drain(..consumed);
        self.state = State::Open;
        Ok(true)
    }

    fn socks_method(&mut self) -> Result<bool, Error> {
        if self.received.len() < 2 {
            return Ok(false);
        }
        let (version, method) = (self.received[0], self.received[1]);
        self.received.drain(..2);
        if version != 5 {
            return Err(proxy_error(format!(
                "not a SOCKS5 proxy (version {version})"
            )));
        }
        match (method, &self.credentials) {
            (0x00, _) => self.send_connect(),
            (0x02, Some((user, password))) => {
                // Both checked to fit a byte by `Proxy::handshake`.
                let mut auth = vec![1, user.len() as u8];
                auth.extend_from_slice(user.as_bytes());
                auth.push(password.len() as u8);
                auth.extend_from_slice(password.as_bytes());
                self.to_send = auth;
                self.state = State::SocksAuth;
            }
            (0xff, None) => {
                return Err(proxy_error(
                    "the SOCKS5 proxy requires credentials; give them in the proxy URL \
                     (socks5://user:password@host:port)",
                ));
            }
            (0xff, Some(_)) => {
                return Err(proxy_error("the SOCKS5 proxy accepts no method we offer"));
            }
            (other, _) => {
                return Err(proxy_error(format!(
                    "the SOCKS5 proxy chose method {other:#04x}, which we did not offer"
                )));
            }
        }
        Ok(true)
    }

    fn socks_auth(&mut self) -> Result<bool, Error> {
        if self.received.len() < 2 {
            return Ok(false);
        }
        // The first byte is the sub-negotiation's version, 1, but some proxies answer 5:
        // ignored, as curl does.
        let status = self.received[1];
        self.received.drain(..2);
        if status != 0 {
            return Err(proxy_error(
                "the SOCKS5 proxy refused the username and password",
            ));
        }
        self.send_connect();
        Ok(true)
    }

    fn send_connect(&mut self) {
        let mut request = vec![5, 1, 0];
        match self.target_host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => {
                request.push(1);
                request.extend_from_slice(&ip.octets());
            }
            Ok(IpAddr::V6(ip)) => {
                request.push(4);
                request.extend_from_slice(&ip.octets());
            }
            Err(_) => {
                let name = self.target_host.as_bytes();
                // At most 255 bytes: checked by `Proxy::handshake`.
                request.push(3);
                request.push(name.len() as u8);
                request.extend_from_slice(name);
            }
        }
        request.extend_from_slice(&self.target_port.to_be_bytes());
        self.to_send = request;
        self.state = State::SocksConnect;
    }

    fn socks_connect(&mut self) -> Result<bool, Error> {
        if self.received.len() < 5 {
            return Ok(false);
        }
        let address_len = match self.received[3] {
            1 => 4,
            4 => 16,
            3 => 1 + usize::from(self.received[4]),
            other => {
                return Err(proxy_error(format!(
                    "the SOCKS5 proxy answered with address type {other}"
                )));
            }
        };
        let total = 4 + address_len + 2;
        if self.received.len() < total {
            return Ok(false);
        }
        // The reserved byte is not checked, as curl does not.
        let (version, reply) = (self.received[0], self.received[1]);
        if version != 5 {
            return Err(proxy_error(format!(
                "the SOCKS5 proxy's answer to CONNECT is malformed (version {version}, not 5)"
            )));
        }
        self.received.drain(..total);
        if reply != 0 {
            let why = match reply {
                1 => "general failure",
                2 => "connection not allowed by ruleset",
                3 => "network unreachable",
                4 => "host unreachable",
                5 => "connection refused",
                6 => "TTL expired",
                7 => "command not supported",
                8 => "address type not supported",
                _ => "unknown error",
            };
            return Err(proxy_error(format!(
                "the SOCKS5 proxy could not connect to {}:{}: {why}",
                self.target_host, self.target_port
            )));
        }
        self.state = State::Open;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxy_urls() {
        let proxy = Proxy::parse("http://us%40er:p%3Ass@proxy:8080/").unwrap();
        assert_eq!(proxy.credentials, Some(("us@er".into(), "p:ss".into())));
        assert_eq!((proxy.host(), proxy.port()), ("proxy", 8080));
        assert_eq!(Proxy::parse("proxy.example").unwrap().port(), 80);
        assert_eq!(Proxy::parse("socks5://[::1]").unwrap().host(), "::1");
        assert_eq!(Proxy::parse("socks5://[::1]").unwrap().port(), 1080);
        assert!(Proxy::parse("ftp://x").is_err());
        assert!(Proxy::parse("https://x").is_err());
        assert!(Proxy::parse("http://:80").is_err());
        // Not an escape: `%` before text that is not two hex digits stays as it is, even
        // before a character of more than one byte.
        let proxy = Proxy::parse("http://%é:%4:%zz%41@proxy").unwrap();
        assert_eq!(proxy.credentials, Some(("%é".into(), "%4:%zzA".into())));
        let proxy = Proxy::parse("http://a%é1:b%1é@proxy").unwrap();
        assert_eq!(proxy.credentials, Some(("a%é1".into(), "b%1é".into())));
    }

    #[test]
    fn environment_follows_curl() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let env = vars(&[
            ("HTTPS_PROXY", "http://secure:1"),
            ("http_proxy", "http://plain:2"),
            ("ALL_PROXY", "socks5://all:3"),
            (
                "NO_PROXY",
                "localhost,.internal.example,10.0.0.0/8,exact.example:8443,::1",
            ),
        ]);
        assert_eq!(
            Proxy::from_vars(true, "a.example", 443, env)
                .unwrap()
                .unwrap()
                .host(),
            "secure"
        );
        assert_eq!(
            Proxy::from_vars(false, "a.example", 80, env)
                .unwrap()
                .unwrap()
                .host(),
            "plain"
        );
        for (host, port) in [
            ("localhost", 80),
            ("db.internal.example", 80),
            ("internal.example", 80),
            ("10.1.2.3", 80),
            ("exact.example", 8443),
            ("::1", 9001),
        ] {
            assert!(
                Proxy::from_vars(true, host, port, env).unwrap().is_none(),
                "{host}:{port}"
            );
        }
        assert!(
            Proxy::from_vars(true, "exact.example", 443, env)
                .unwrap()
                .is_some()
        );
        assert!(
            Proxy::from_vars(true, "notinternal.example", 443, env)
                .unwrap()
                .is_some()
        );
        let only_all = vars(&[("ALL_PROXY", "socks5://all:3")]);
        assert_eq!(
            Proxy::from_vars(false, "x", 80, only_all)
                .unwrap()
                .unwrap()
                .kind(),
            ProxyKind::Socks5
        );
        assert!(
            Proxy::from_vars(
                false,
                "x",
                80,
                vars(&[("NO_PROXY", "*"), ("ALL_PROXY", "socks5://a:1")])
            )
            .unwrap()
            .is_none()
        );
        assert!(
            Proxy::from_vars(false, "x", 80, vars(&[]))
                .unwrap()
                .is_none()
        );
        // Upper-case HTTP_PROXY is not read (curl's rule); HTTPS_PROXY and ALL_PROXY are.
        let upper = vars(&[("HTTP_PROXY", "http://ignored:1")]);
        assert!(Proxy::from_vars(false, "x", 80, upper).unwrap().is_none());
        // A variable that is not a proxy URL is an error naming it.
        let wrong = vars(&[("HTTPS_PROXY", "ftp://nope:1")]);
        let err = Proxy::from_vars(true, "x", 443, wrong).unwrap_err();
        assert!(err.to_string().contains("HTTPS_PROXY"), "{err}");
    }

    #[test]
    fn http_connect_with_basic_auth() {
        let proxy =
            Proxy::new(ProxyKind::HttpConnect, "p", 3128).credentials("aladdin", "opensesame");
        let mut handshake = proxy.handshake("example.com", 443).unwrap();
        let request = String::from_utf8(handshake.take_to_send()).unwrap();
        assert!(
            request.starts_with("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n")
        );
        assert!(request.contains("Proxy-Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l\r\n"));
        handshake
            .handle_received(b"HTTP/1.1 200 Connection established\r\n")
            .unwrap();
        assert!(!handshake.is_open());
        handshake.handle_received(b"\r\n").unwrap();
        assert!(handshake.is_open());
    }

    #[test]
    fn http_connect_refusals_are_clear() {
        let proxy = Proxy::new(ProxyKind::HttpConnect, "p", 3128);
        let mut handshake = proxy.handshake("::1", 80).unwrap();
        assert!(
            String::from_utf8(handshake.take_to_send())
                .unwrap()
                .starts_with("CONNECT [::1]:80 ")
        );
        let err = handshake
            .handle_received(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
            .unwrap_err();
        assert!(err.to_string().contains("requires credentials"), "{err}");
        let mut handshake = proxy.handshake("x", 80).unwrap();
        let err = handshake
            .handle_received(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            .unwrap_err();
        assert!(err.to_string().contains("403 Forbidden"), "{err}");
    }

    #[test]
    fn socks5_with_and_without_credentials() {
        let proxy = Proxy::new(ProxyKind::Socks5, "p", 1080).credentials("u", "pw");
        let mut handshake = proxy.handshake("example.com", 80).unwrap();
        assert_eq!(handshake.take_to_send(), [5, 2, 0, 2]);
        handshake.handle_received(&[5, 2]).unwrap();
        assert_eq!(handshake.take_to_send(), [1, 1, b'u', 2, b'p', b'w']);
        handshake.handle_received(&[1, 0]).unwrap();
        let connect = handshake.take_to_send();
        assert_eq!(&connect[..5], &[5, 1, 0, 3, 11]);
        assert_eq!(&connect[5..16], b"example.com");
        assert_eq!(&connect[16..], &80u16.to_be_bytes());
        // The answer may arrive in pieces.
        handshake.handle_received(&[5, 0, 0, 1, 127]).unwrap();
        assert!(!handshake.is_open());
        handshake.handle_received(&[0, 0, 1, 0x1f, 0x90]).unwrap();
        assert!(handshake.is_open());

        let open = Proxy::new(ProxyKind::Socks5, "p", 1080);
        let mut handshake = open.handshake("127.0.0.1", 9).unwrap();
        assert_eq!(handshake.take_to_send(), [5, 1, 0]);
        handshake.handle_received(&[5, 0]).unwrap();
        assert_eq!(handshake.take_to_send(), [5, 1, 0, 1, 127, 0, 0, 1, 0, 9]);
        let err = handshake
            .handle_received(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0])
            .unwrap_err();
        assert!(err.to_string().contains("connection refused"), "{err}");
    }

    #[test]
    fn socks5_auth_failures_are_clear() {
        let proxy = Proxy::new(ProxyKind::Socks5, "p", 1080).credentials("u", "bad");
        let mut handshake = proxy.handshake("x", 80).unwrap();
        handshake.take_to_send();
        handshake.handle_received(&[5, 2]).unwrap();
        handshake.take_to_send();
        let err = handshake.handle_received(&[1, 1]).unwrap_err();
        assert!(
            err.to_string()
                .contains("refused the username and password"),
            "{err}"
        );
        let mut handshake = Proxy::new(ProxyKind::Socks5, "p", 1080)
            .handshake("x", 80)
            .unwrap();
        let err = handshake.handle_received(&[5, 0xff]).unwrap_err();
        assert!(err.to_string().contains("requires credentials"), "{err}");
    }

    #[test]
    fn socks5_refuses_what_it_cannot_carry_before_sending_anything() {
        let long = "a".repeat(256);
        let err = Proxy::new(ProxyKind::Socks5, "p", 1080)
            .handshake(&long, 80)
            .unwrap_err();
        assert!(err.to_string().contains("at most 255 bytes"), "{err}");
        // 255 bytes go whole (they were cut to 255 silently before, whatever the length).
        let mut handshake = Proxy::new(ProxyKind::Socks5, "p", 1080)
            .handshake(&long[..255], 80)
            .unwrap();
        handshake.take_to_send();
        handshake.handle_received(&[5, 0]).unwrap();
        let connect = handshake.take_to_send();
        assert_eq!(&connect[..5], &[5, 1, 0, 3, 255]);
        assert_eq!(connect.len(), 5 + 255 + 2);
        let err = Proxy::new(ProxyKind::Socks5, "p", 1080)
            .credentials("u", "p".repeat(256))
            .handshake("x", 80)
            .unwrap_err();
        assert!(err.to_string().contains("at most 255 bytes"), "{err}");
    }

    #[test]
    fn socks5_answers_to_connect_with_a_wrong_version_are_refused() {
        // The username and password answer's version byte is not checked (some proxies
        // answer 5, not 1), nor the reserved byte of the answer to CONNECT, as with curl.
        let proxy = Proxy::new(ProxyKind::Socks5, "p", 1080).credentials("u", "pw");
        let mut handshake = proxy.handshake("x", 80).unwrap();
        handshake.handle_received(&[5, 2]).unwrap();
        handshake.handle_received(&[5, 0]).unwrap();
        handshake
            .handle_received(&[5, 0, 7, 1, 0, 0, 0, 0, 0, 0])
            .unwrap();
        assert!(handshake.is_open());
        let mut handshake = Proxy::new(ProxyKind::Socks5, "p", 1080)
            .handshake("x", 80)
            .unwrap();
        handshake.handle_received(&[5, 0]).unwrap();
        let err = handshake
            .handle_received(&[4, 0, 0, 1, 0, 0, 0, 0, 0, 0])
            .unwrap_err();
        assert!(err.to_string().contains("version 4, not 5"), "{err}");
    }

    #[test]
    fn an_http_proxy_answer_trickled_byte_by_byte_opens_the_tunnel_and_garbage_fails_at_once() {
        let mut answer = b"\r\nHTTP/1.1 200 Connection established\r\n".to_vec();
        // Few long headers: at most 32 are taken.
        while answer.len() < 15 * 1024 {
            answer.extend_from_slice(format!("X-Filler: {}\r\n", "a".repeat(700)).as_bytes());
        }
        answer.extend_from_slice(b"\r\n");
        let mut handshake = Proxy::new(ProxyKind::HttpConnect, "p", 3128)
            .handshake("x", 80)
            .unwrap();
        for byte in &answer[..answer.len() - 1] {
            handshake.handle_received(&[*byte]).unwrap();
            assert!(!handshake.is_open());
        }
        handshake.handle_received(b"\n").unwrap();
        assert!(handshake.is_open());
        // Not HTTP: refused with the first bytes, not at the size limit.
        let mut handshake = Proxy::new(ProxyKind::HttpConnect, "p", 3128)
            .handshake("x", 80)
            .unwrap();
        let err = handshake
            .handle_received(b"SSH-2.0-OpenSSH_9.2\r\n")
            .unwrap_err();
        assert!(err.to_string().contains("invalid answer"), "{err}");
    }
}
