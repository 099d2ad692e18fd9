//! The server side of the handshake: reading an upgrade request from the bytes a client sent,
//! checking it against RFC 6455 section 4.2.1, and exposing what the application needs to
//! decide (path, origin, protocols, extensions, cookies).
//!
//! Call order: [`parse_request`] on the read buffer after each read until it returns
//! [`Parsed::Complete`]; then either [`UpgradeRequest::accept`] (write the `101` answer and hand
//! the bytes after the head to the connection) or [`reject_response`](crate::reject_response)
//! (write it and close). When `parse_request` fails, write
//! [`HandshakeError::to_response`] and close.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use httparse::Status;

use crate::cookie::parse_cookie_header;
use crate::error::HandshakeError;
use crate::extension::{ExtensionOffer, parse_extensions};
use crate::header::{self, HeadSearch, Headers};
use crate::parsed::{HeadProgress, Parsed};
use crate::percent;

/// How much of a request head the server buffers, and how many headers it takes.
///
/// Limits are always on. Past either one the request is refused with
/// 431 (Request Header Fields Too Large): a head larger than `max_head_size` bytes (16 KiB by
/// default), or more than `max_headers` header lines (64 by default).
///
/// ```
/// use wsflow_handshake::RequestLimits;
///
/// let limits = RequestLimits::default().max_head_size(8 * 1024).max_headers(32);
/// assert_eq!(limits.head_size_limit(), 8192);
/// assert_eq!(limits.headers_limit(), 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestLimits {
    max_head_size: usize,
    max_headers: usize,
}

impl RequestLimits {
    /// The default head size limit: 16 KiB.
    pub const DEFAULT_MAX_HEAD_SIZE: usize = 16 * 1024;
    /// The default header count limit: 64.
    pub const DEFAULT_MAX_HEADERS: usize = 64;

    /// The default limits.
    pub const fn new() -> Self {
        Self {
            max_head_size: Self::DEFAULT_MAX_HEAD_SIZE,
            max_headers: Self::DEFAULT_MAX_HEADERS,
        }
    }

    /// The largest request head accepted, in bytes, from the request line to the blank line
    /// included. A buffer that reaches this size without a complete head is refused with
    /// [`HandshakeError::HeadTooLarge`] (431).
    pub const fn max_head_size(mut self, bytes: usize) -> Self {
        self.max_head_size = bytes;
        self
    }

    /// The most header lines accepted; one more is refused with
    /// [`HandshakeError::TooManyHeaders`] (431).
    pub const fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }

    /// The configured head size limit.
    pub const fn head_size_limit(&self) -> usize {
        self.max_head_size
    }

    /// The configured header count limit.
    pub const fn headers_limit(&self) -> usize {
        self.max_headers
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses and validates a WebSocket upgrade request from the start of `buf`.
///
/// Call it with the whole buffer each time bytes arrive. Until the blank line that ends the
/// head has arrived only a cheap scan runs (plus a check of the request line, so that bytes
/// that are not HTTP, such as a TLS hello on a plain port, fail at once), and the buffer is
/// refused as soon as it reaches the head size limit without a complete head.
///
/// On success the bytes after `consumed` belong to the WebSocket stream. Every error knows the
/// HTTP answer ([`HandshakeError::http_status`], [`HandshakeError::to_response`]):
///
/// | problem | status |
/// | --- | --- |
/// | head over `max_head_size`, more than `max_headers` headers | 431 |
/// | not HTTP, not HTTP/1.1, bad target, no `Host`, no `Upgrade: websocket`, no `Connection: upgrade` | 400 |
/// | method other than `GET` | 405, `Allow: GET` |
/// | `Sec-WebSocket-Key` missing or not 16 bytes of base64 | 400 |
/// | `Sec-WebSocket-Version` missing or not a number | 400 |
/// | `Sec-WebSocket-Version` a number other than 13 or 8 | 426, `Sec-WebSocket-Version: 13` |
/// | malformed `Sec-WebSocket-Extensions` | 400 |
///
/// ```
/// use wsflow_handshake::{AcceptOptions, Parsed, RequestLimits, parse_request};
///
/// let buf = b"GET /chat?room=rust HTTP/1.1\r\n\
///             Host: example.com\r\n\
///             Upgrade: websocket\r\n\
///             Connection: Upgrade\r\n\
///             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///             Sec-WebSocket-Version: 13\r\n\
///             Sec-WebSocket-Protocol: Chat, superchat\r\n\
///             Origin: https://example.com\r\n\r\n";
/// let Parsed::Complete { value: request, consumed } =
///     parse_request(buf, &RequestLimits::default()).unwrap()
/// else {
///     panic!("complete head");
/// };
/// assert_eq!(consumed, buf.len());
/// assert_eq!(request.path(), "/chat");
/// assert_eq!(request.query_pairs(), [("room".to_string(), "rust".to_string())]);
/// assert_eq!(request.requested_protocols(), ["chat", "superchat"]);
/// assert_eq!(request.origin(), Some("https://example.com"));
///
/// let response = request.accept(&AcceptOptions::default().protocol(Some("chat"))).unwrap();
/// let response = String::from_utf8(response).unwrap();
/// assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
/// assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
/// assert!(response.contains("Sec-WebSocket-Protocol: Chat\r\n")); // the client's spelling
/// ```
pub fn parse_request(
    buf: &[u8],
    limits: &RequestLimits,
) -> Result<Parsed<UpgradeRequest>, HandshakeError> {
    parse_request_resumed(buf, limits, &mut HeadProgress::new())
}

/// As [`parse_request`], for a buffer that grows by reads: `progress` remembers how far the
/// earlier calls examined it, so a head trickled in small pieces is searched once in all.
///
/// Pass the same [`HeadProgress`] with the same buffer, grown at its end, each time bytes
/// arrive. The answers are those `parse_request` would give; the example on [`HeadProgress`]
/// feeds a request one byte at a time.
pub fn parse_request_resumed(
    buf: &[u8],
    limits: &RequestLimits,
    progress: &mut HeadProgress,
) -> Result<Parsed<UpgradeRequest>, HandshakeError> {
    let too_large = HandshakeError::HeadTooLarge {
        limit: limits.max_head_size,
    };
    match header::search_head(buf, limits.max_head_size, progress) {
        HeadSearch::TooLarge => return Err(too_large),
        HeadSearch::Incomplete => {
            header::check_start(buf, progress, check_request_start)?;
            return Ok(Parsed::Incomplete);
        }
        HeadSearch::BlankLine => {}
    }
    let window = &buf[..buf.len().min(limits.max_head_size)];
    let mut slots =
        vec![httparse::EMPTY_HEADER; header::header_slots(limits.max_headers, window.len())];
    let mut request = httparse::Request::new(&mut slots);
    let consumed = match request.parse(window) {
        Ok(Status::Complete(consumed)) => consumed,
        // Only empty lines before the request line get here (httparse skips them).
        Ok(Status::Partial) if buf.len() >= limits.max_head_size => return Err(too_large),
        Ok(Status::Partial) => return Ok(Parsed::Incomplete),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        Err(err) => return Err(malformed(err)),
    };
    let version = if request.version == Some(1) {
        "HTTP/1.1"
    } else {
        "HTTP/1.0"
    };
    let value = UpgradeRequest::from_parts(
        request.method.unwrap_or_default(),
        version,
        request.path.unwrap_or_default(),
        header::owned_headers(request.headers),
    )?;
    Ok(Parsed::Complete { value, consumed })
}

/// Fails early on bytes that cannot start an HTTP request, and says whether the check is
/// settled. With no header slots httparse stops at the first header line once it is complete
/// (or at the blank line), so only the request line and that line are examined.
fn check_request_start(buf: &[u8]) -> Result<bool, HandshakeError> {
    let mut no_headers = [];
    match httparse::Request::new(&mut no_headers).parse(buf) {
        Ok(Status::Partial) => Ok(false),
        Ok(Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => Ok(true),
        Err(err) => Err(malformed(err)),
    }
}

fn malformed(err: httparse::Error) -> HandshakeError {
    HandshakeError::MalformedRequest {
        reason: err.to_string(),
    }
}

/// The decoder for `Sec-WebSocket-Key`: standard alphabet and padding; non-zero trailing bits
/// are tolerated, since the key is only ever hashed as text.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// A valid WebSocket upgrade request, waiting to be accepted or rejected.
///
/// Call order: [`parse_request`] (or `from_http` with the `http` feature) on the read buffer
/// after each read until it is complete; keep the bytes after `consumed`; then either
/// [`UpgradeRequest::accept`] and write the `101` (the connection starts with the kept bytes),
/// or write [`reject_response`](crate::reject_response) and close. See the example of
/// [`parse_request`].
///
/// This is WebSocket-Node's `WebSocketRequest`: `resource`, `host`, `origin`,
/// `requestedProtocols`, `requestedExtensions`, `cookies` and `webSocketVersion` have
/// accessors of the same meaning; `remoteAddress` comes from [`UpgradeRequest::x_forwarded_for`]
/// and the socket's peer address, which only the caller knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    pub(crate) resource: String,
    pub(crate) host: String,
    pub(crate) origin: Option<String>,
    pub(crate) protocols: Vec<String>,
    pub(crate) protocols_as_sent: Vec<String>,
    pub(crate) extensions: Vec<ExtensionOffer>,
    pub(crate) cookies: Vec<(String, String)>,
    pub(crate) headers: Headers,
    pub(crate) version: u8,
    pub(crate) key: String,
}

impl UpgradeRequest {
    /// Validates a request given as parts; shared by the byte parser and `from_http`.
    pub(crate) fn from_parts(
        method: &str,
        http_version: &str,
        target: &str,
        headers: Headers,
    ) -> Result<Self, HandshakeError> {
        if method != "GET" {
            return Err(HandshakeError::MethodNotAllowed {
                method: method.to_owned(),
            });
        }
        if http_version != "HTTP/1.1" {
            return Err(HandshakeError::UnsupportedHttpVersion {
                version: http_version.to_owned(),
            });
        }
        let resource =
            resource_from_target(target).ok_or_else(|| HandshakeError::InvalidRequestTarget {
                target: target.to_owned(),
            })?;

        let host = single(&headers, "Host")?
            .filter(|h| !h.is_empty())
            .ok_or(HandshakeError::MissingHost)?
            .to_owned();
        if !header::has_token(&headers, "Upgrade", "websocket") {
            return Err(HandshakeError::NotWebSocketUpgrade {
                upgrade: header::joined(&headers, "Upgrade"),
            });
        }
        if !header::has_token(&headers, "Connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade {
                connection: header::joined(&headers, "Connection"),
            });
        }
        // The version comes before the key so that clients of older drafts learn which
        // version to retry with (426).
        let version = match single(&headers, "Sec-WebSocket-Version")? {
            None => return Err(HandshakeError::MissingVersion),
            Some(v) if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(HandshakeError::InvalidVersion {
                    version: v.to_owned(),
                });
            }
            Some(v) => match v.parse::<u64>() {
                Ok(13) => 13,
                Ok(8) => 8,
                _ => {
                    return Err(HandshakeError::UnsupportedVersion {
                        version: v.to_owned(),
                    });
                }
            },
        };
        let key = single(&headers, "Sec-WebSocket-Key")?.ok_or(HandshakeError::MissingKey)?;
        let key_is_valid =
            key.len() == 24 && KEY_ENGINE.decode(key).is_ok_and(|bytes| bytes.len() == 16);
        if !key_is_valid {
            return Err(HandshakeError::InvalidKey {
                key: key.to_owned(),
            });
        }
        let key = key.to_owned();

        let mut extensions = Vec::new();
        for value in header::values(&headers, "Sec-WebSocket-Extensions") {
            extensions.extend(parse_extensions(value)?);
        }
        let protocols_as_sent: Vec<String> = header::list_items(&headers, "Sec-WebSocket-Protocol")
            .map(str::to_owned)
            .collect();
        let protocols = protocols_as_sent
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect();
        let origin_header = if version == 8 {
            "Sec-WebSocket-Origin"
        } else {
            "Origin"
        };
        let origin = header::find(&headers, origin_header).map(str::to_owned);
        let mut cookies = Vec::new();
        for value in header::values(&headers, "Cookie") {
            parse_cookie_header(value, &mut cookies);
        }

        Ok(Self {
            resource,
            host,
            origin,
            protocols,
            protocols_as_sent,
            extensions,
            cookies,
            headers,
            version,
            key,
        })
    }

    /// The request target as sent: path and query, such as `/chat?room=rust` (for a target in
    /// absolute form, `ws://host/chat`, the path and query part of it).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The path part of [`UpgradeRequest::resource`], still percent-encoded.
    pub fn path(&self) -> &str {
        self.resource
            .split_once('?')
            .map_or(self.resource.as_str(), |(path, _)| path)
    }

    /// The raw query, without the `?`; `None` when the target has no `?`.
    pub fn query(&self) -> Option<&str> {
        self.resource.split_once('?').map(|(_, query)| query)
    }

    /// The query as decoded `name=value` pairs in order (`+` is a space, `%XX` escapes are
    /// decoded; a pair without `=` has an empty value), like Node's `url.parse(.., true)`.
    ///
    /// ```
    /// # use wsflow_handshake::{RequestLimits, parse_request};
    /// # let buf = b"GET /?a=1&b=two+words&c=%E2%9C%93&flag HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
    /// #     Connection: upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    /// # let (request, _) = parse_request(buf, &RequestLimits::default()).unwrap().complete().unwrap();
    /// // For a request to /?a=1&b=two+words&c=%E2%9C%93&flag
    /// let pairs = request.query_pairs();
    /// assert_eq!(pairs[1], ("b".to_string(), "two words".to_string()));
    /// assert_eq!(pairs[2].1, "\u{2713}");
    /// assert_eq!(pairs[3], ("flag".to_string(), String::new()));
    /// ```
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent::decode(name, true), percent::decode(value, true))
            })
            .collect()
    }

    /// The `Host` header.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The origin the browser declared: `Origin` for version 13, `Sec-WebSocket-Origin` for
    /// version 8. Non-browser clients often send none.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The subprotocols the client requested, in its order of preference, lower-cased as
    /// WebSocket-Node does. [`UpgradeRequest::requested_protocols_as_sent`] has the original
    /// spelling at the same positions.
    pub fn requested_protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The subprotocols the client requested, spelled as it sent them; the `101` answer uses
    /// this spelling.
    pub fn requested_protocols_as_sent(&self) -> &[String] {
        &self.protocols_as_sent
    }

    /// The extensions the client offered, in its order, from every `Sec-WebSocket-Extensions`
    /// header.
    pub fn requested_extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// The cookies from every `Cookie` header: values percent-decoded and stripped of
    /// surrounding double quotes.
    pub fn cookies(&self) -> &[(String, String)] {
        &self.cookies
    }

    /// Every header as received, in order: name as sent, value trimmed and decoded as UTF-8
    /// (invalid bytes become U+FFFD).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header::find(&self.headers, name)
    }

    /// The `Sec-WebSocket-Version` of the request: 13, or 8 for clients of the last draft.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The `Sec-WebSocket-Key` the client sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `X-Forwarded-For` chain: the entries of every such header in order, trimmed; the
    /// first one is the client as the first proxy saw it. Only trust it behind a proxy you
    /// control; WebSocket-Node's `remoteAddress` is its first entry, or the socket's peer.
    ///
    /// ```
    /// # use wsflow_handshake::{RequestLimits, parse_request};
    /// # let buf = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
    /// #     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    /// #     X-Forwarded-For: 203.0.113.7, 10.0.0.2\r\nX-Forwarded-For: 10.0.0.3\r\n\r\n";
    /// # let (request, _) = parse_request(buf, &RequestLimits::default()).unwrap().complete().unwrap();
    /// // X-Forwarded-For: 203.0.113.7, 10.0.0.2
    /// // X-Forwarded-For: 10.0.0.3
    /// assert_eq!(request.x_forwarded_for(), ["203.0.113.7", "10.0.0.2", "10.0.0.3"]);
    /// ```
    pub fn x_forwarded_for(&self) -> Vec<&str> {
        header::list_items(&self.headers, "X-Forwarded-For").collect()
    }
}

/// The header `name` when it appears at most once.
fn single<'a>(
    headers: &'a [(String, String)],
    name: &'static str,
) -> Result<Option<&'a str>, HandshakeError> {
    if header::count(headers, name) > 1 {
        return Err(HandshakeError::DuplicateHeader { name });
    }
    Ok(header::find(headers, name))
}

/// The path and query of a request target in origin form (`/chat?x=1`) or absolute form
/// (`ws://host/chat?x=1`, RFC 9112 section 3.2.2); `None` for anything else.
fn resource_from_target(target: &str) -> Option<String> {
    if target.contains('#') {
        return None;
    }
    if target.starts_with('/') {
        return Some(target.to_owned());
    }
    let (scheme, rest) = target.split_once("://")?;
    if !["http", "https", "ws", "wss"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
    {
        return None;
    }
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    if path_start == 0 {
        return None;
    }
    let rest = &rest[path_start..];
    Some(if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// A valid request with `extra` header lines added and the lines in `drop` left out.
    fn request_with(first_line: &str, drop: &[&str], extra: &[&str]) -> Vec<u8> {
        let key_line = format!("Sec-WebSocket-Key: {KEY}");
        let mut lines = vec![
            "Host: example.com",
            "Upgrade: websocket",
            "Connection: Upgrade",
            key_line.as_str(),
            "Sec-WebSocket-Version: 13",
        ];
        lines.retain(|line| !drop.iter().any(|d| line.starts_with(d)));
        lines.extend_from_slice(extra);
        let mut text = format!("{first_line}\r\n");
        for line in lines {
            text.push_str(line);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        text.into_bytes()
    }

    fn valid(drop: &[&str], extra: &[&str]) -> Vec<u8> {
        request_with("GET /chat HTTP/1.1", drop, extra)
    }

    fn parse(buf: &[u8]) -> Result<UpgradeRequest, HandshakeError> {
        match parse_request(buf, &RequestLimits::default())? {
            Parsed::Complete { value, consumed } => {
                assert_eq!(consumed, buf.len());
                Ok(value)
            }
            Parsed::Incomplete => panic!("incomplete: {}", String::from_utf8_lossy(buf)),
        }
    }

    fn status_of(buf: &[u8]) -> u16 {
        parse(buf).unwrap_err().http_status().unwrap()
    }

    #[test]
    fn a_minimal_request_is_accepted() {
        let request = parse(&valid(&[], &[])).unwrap();
        assert_eq!(request.resource(), "/chat");
        assert_eq!(request.path(), "/chat");
        assert_eq!(request.query(), None);
        assert_eq!(request.query_pairs(), []);
        assert_eq!(request.host(), "example.com");
        assert_eq!(request.version(), 13);
        assert_eq!(request.key(), KEY);
        assert_eq!(request.origin(), None);
        assert!(request.requested_protocols().is_empty());
        assert!(request.requested_extensions().is_empty());
        assert!(request.cookies().is_empty());
        assert!(request.x_forwarded_for().is_empty());
        assert_eq!(request.headers().len(), 5);
        assert_eq!(request.header("SEC-WEBSOCKET-VERSION"), Some("13"));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let buf = valid(&[], &[]);
        for end in 0..buf.len() {
            assert_eq!(
                parse_request(&buf[..end], &RequestLimits::default()).unwrap(),
                Parsed::Incomplete,
                "prefix of {end} bytes"
            );
        }
    }

    #[test]
    fn bytes_after_the_head_are_left_to_the_caller() {
        let mut buf = valid(&[], &[]);
        let head = buf.len();
        buf.extend_from_slice(b"\x81\x80\x00\x00\x00\x00GET / HTTP/1.1\r\n\r\n");
        let (_, consumed) = parse_request(&buf, &RequestLimits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(consumed, head);
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        let buf = String::from_utf8(valid(&[], &[]))
            .unwrap()
            .replace("\r\n", "\n");
        assert_eq!(parse(buf.as_bytes()).unwrap().host(), "example.com");
    }

    #[test]
    fn method_must_be_get() {
        let err = parse(&request_with("POST /chat HTTP/1.1", &[], &[])).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::MethodNotAllowed {
                method: "POST".into()
            }
        );
        assert_eq!(err.http_status(), Some(405));
        assert_eq!(
            status_of(&request_with("get /chat HTTP/1.1", &[], &[])),
            405
        );
    }

    #[test]
    fn http_1_0_is_refused() {
        let err = parse(&request_with("GET /chat HTTP/1.0", &[], &[])).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::UnsupportedHttpVersion {
                version: "HTTP/1.0".into()
            }
        );
        assert_eq!(err.http_status(), Some(400));
        assert_eq!(
            status_of(&request_with("GET /chat HTTP/2.0", &[], &[])),
            400
        );
    }

    #[test]
    fn targets() {
        let ok = |line: &str| parse(&request_with(line, &[], &[])).unwrap();
        assert_eq!(
            ok("GET ws://example.com/a?b=c HTTP/1.1").resource(),
            "/a?b=c"
        );
        assert_eq!(ok("GET HTTP://example.com HTTP/1.1").resource(), "/");
        assert_eq!(ok("GET wss://example.com?x HTTP/1.1").resource(), "/?x");
        let r = ok("GET /a/b?x=1&y HTTP/1.1");
        assert_eq!((r.path(), r.query()), ("/a/b", Some("x=1&y")));
        assert_eq!(ok("GET /? HTTP/1.1").query(), Some(""));
        for bad in [
            "GET * HTTP/1.1",
            "GET chat HTTP/1.1",
            "GET ftp://example.com/ HTTP/1.1",
            "GET ws:///chat HTTP/1.1",
            "GET /chat#frag HTTP/1.1",
        ] {
            let err = parse(&request_with(bad, &[], &[])).unwrap_err();
            assert!(
                matches!(err, HandshakeError::InvalidRequestTarget { .. }),
                "{bad}: {err}"
            );
            assert_eq!(err.http_status(), Some(400));
        }
    }

    #[test]
    fn host_is_required_once() {
        assert_eq!(
            parse(&valid(&["Host"], &[])).unwrap_err(),
            HandshakeError::MissingHost
        );
        assert_eq!(
            parse(&valid(&["Host"], &["Host: "])).unwrap_err(),
            HandshakeError::MissingHost
        );
        assert_eq!(
            parse(&valid(&[], &["host: other"])).unwrap_err(),
            HandshakeError::DuplicateHeader { name: "Host" }
        );
        assert_eq!(status_of(&valid(&["Host"], &[])), 400);
    }

    #[test]
    fn upgrade_must_name_websocket() {
        assert!(parse(&valid(&["Upgrade"], &["Upgrade: WebSocket"])).is_ok());
        assert!(parse(&valid(&["Upgrade"], &["upgrade: h2c, websocket"])).is_ok());
        assert_eq!(
            parse(&valid(&["Upgrade"], &[])).unwrap_err(),
            HandshakeError::NotWebSocketUpgrade { upgrade: None }
        );
        assert_eq!(
            parse(&valid(&["Upgrade"], &["Upgrade: websockets"])).unwrap_err(),
            HandshakeError::NotWebSocketUpgrade {
                upgrade: Some("websockets".into())
            }
        );
        assert_eq!(status_of(&valid(&["Upgrade"], &[])), 400);
    }

    #[test]
    fn connection_must_contain_upgrade() {
        for ok in [
            "Connection: keep-alive, Upgrade",
            "connection: UPGRADE",
            "Connection: upgrade,",
        ] {
            assert!(parse(&valid(&["Connection"], &[ok])).is_ok(), "{ok}");
        }
        assert!(
            parse(&valid(
                &["Connection"],
                &["Connection: keep-alive", "Connection: upgrade"]
            ))
            .is_ok()
        );
        assert_eq!(
            parse(&valid(&["Connection"], &["Connection: keep-alive"])).unwrap_err(),
            HandshakeError::MissingConnectionUpgrade {
                connection: Some("keep-alive".into())
            }
        );
        assert_eq!(
            parse(&valid(&["Connection"], &["Connection: upgraded"]))
                .unwrap_err()
                .http_status(),
            Some(400)
        );
        assert_eq!(
            parse(&valid(&["Connection"], &[])).unwrap_err(),
            HandshakeError::MissingConnectionUpgrade { connection: None }
        );
    }

    #[test]
    fn key_must_be_16_bytes_of_base64() {
        assert_eq!(
            parse(&valid(&["Sec-WebSocket-Key"], &[])).unwrap_err(),
            HandshakeError::MissingKey
        );
        for bad in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZQ===",
            "dGhlIHNhbXBsZSBub25jZSE=",
            "dGhlIHNhbXBsZSBub25j*Q==",
            "AAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let line = format!("Sec-WebSocket-Key: {bad}");
            let err = parse(&valid(&["Sec-WebSocket-Key"], &[&line])).unwrap_err();
            assert!(
                matches!(
                    err,
                    HandshakeError::InvalidKey { .. } | HandshakeError::MissingKey
                ),
                "{bad}: {err}"
            );
            assert_eq!(err.http_status(), Some(400));
        }
        let twice = format!("Sec-WebSocket-Key: {KEY}");
        assert_eq!(
            parse(&valid(&[], &[&twice])).unwrap_err(),
            HandshakeError::DuplicateHeader {
                name: "Sec-WebSocket-Key"
            }
        );
    }

    #[test]
    fn versions() {
        let with = |v: &str| {
            let line = format!("Sec-WebSocket-Version: {v}");
            parse(&valid(&["Sec-WebSocket-Version"], &[&line]))
        };
        assert_eq!(with("8").unwrap().version(), 8);
        assert_eq!(with("13").unwrap().version(), 13);
        assert_eq!(
            parse(&valid(&["Sec-WebSocket-Version"], &[])).unwrap_err(),
            HandshakeError::MissingVersion
        );
        for bad in ["", "thirteen", "13, 8", "-13", "1 3"] {
            let err = with(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    HandshakeError::InvalidVersion { .. } | HandshakeError::MissingVersion
                ),
                "{bad}: {err}"
            );
            assert_eq!(err.http_status(), Some(400));
        }
        for other in ["7", "12", "14", "99999999999999999999999"] {
            let err = with(other).unwrap_err();
            assert_eq!(
                err,
                HandshakeError::UnsupportedVersion {
                    version: other.into()
                }
            );
            assert_eq!(err.http_status(), Some(426));
            let response = String::from_utf8(err.to_response()).unwrap();
            assert!(response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
            assert!(response.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        }
    }

    #[test]
    fn origin_depends_on_the_version() {
        let v13 = parse(&valid(
            &[],
            &[
                "Origin: https://a.example",
                "Sec-WebSocket-Origin: https://b.example",
            ],
        ))
        .unwrap();
        assert_eq!(v13.origin(), Some("https://a.example"));
        let v8 = parse(&valid(
            &["Sec-WebSocket-Version"],
            &[
                "Sec-WebSocket-Version: 8",
                "Origin: https://a.example",
                "Sec-WebSocket-Origin: https://b.example",
            ],
        ))
        .unwrap();
        assert_eq!(v8.origin(), Some("https://b.example"));
    }

    #[test]
    fn protocols_keep_order_and_spelling() {
        let r = parse(&valid(
            &[],
            &[
                "Sec-WebSocket-Protocol: Chat, v2.Super",
                "sec-websocket-protocol: ,last",
            ],
        ))
        .unwrap();
        assert_eq!(r.requested_protocols(), ["chat", "v2.super", "last"]);
        assert_eq!(
            r.requested_protocols_as_sent(),
            ["Chat", "v2.Super", "last"]
        );
    }

    #[test]
    fn extensions_concatenate_and_must_parse() {
        let r = parse(&valid(
            &[],
            &[
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
                "Sec-WebSocket-Extensions: x-foo, permessage-deflate",
            ],
        ))
        .unwrap();
        let names: Vec<&str> = r
            .requested_extensions()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["permessage-deflate", "x-foo", "permessage-deflate"]);
        assert_eq!(
            r.requested_extensions()[0].param("client_max_window_bits"),
            Some(None)
        );
        let err = parse(&valid(&[], &["Sec-WebSocket-Extensions: ;bad"])).unwrap_err();
        assert!(matches!(err, HandshakeError::InvalidExtensions { .. }));
        assert_eq!(err.http_status(), Some(400));
    }

    #[test]
    fn cookies_and_forwarded_for() {
        let r = parse(&valid(
            &[],
            &[
                "Cookie: a=1; b=\"x%20y\"",
                "X-Forwarded-For: 203.0.113.7 , 10.0.0.1",
                "Cookie: c=3",
                "x-forwarded-for: 10.0.0.2",
            ],
        ))
        .unwrap();
        let cookies: Vec<(&str, &str)> = r
            .cookies()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(cookies, [("a", "1"), ("b", "x y"), ("c", "3")]);
        assert_eq!(r.x_forwarded_for(), ["203.0.113.7", "10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn header_values_that_are_not_utf8_are_decoded_lossily() {
        let mut buf = valid(&[], &[]);
        let at = buf.len() - 2;
        buf.splice(at..at, b"X-Name: caf\xe9\r\n".iter().copied());
        let r = parse(&buf).unwrap();
        assert_eq!(r.header("x-name"), Some("caf\u{fffd}"));
    }

    #[test]
    fn garbage_fails_before_the_head_is_complete() {
        let limits = RequestLimits::default();
        // A TLS ClientHello sent to a plain-text port.
        let err = parse_request(b"\x16\x03\x01\x02\x00\x01", &limits).unwrap_err();
        assert!(matches!(err, HandshakeError::MalformedRequest { .. }));
        assert_eq!(err.http_status(), Some(400));
        assert!(parse_request(b"GET / HTTP/1.1\r\n\x01", &limits).is_err());
        assert!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &limits)
                .unwrap_err()
                .http_status()
                == Some(400)
        );
        assert!(parse_request(b"GET / HTTP/1.1\r\nBad Header: a\r\n\r\n", &limits).is_err());
        assert_eq!(
            parse_request(b"GET / HT", &limits).unwrap(),
            Parsed::Incomplete
        );
    }

    #[test]
    fn the_head_size_limit_fails_as_soon_as_it_is_reached() {
        let limits = RequestLimits::default().max_head_size(64);
        let mut buf = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        buf.resize(63, b'a');
        assert_eq!(parse_request(&buf, &limits).unwrap(), Parsed::Incomplete);
        buf.push(b'a');
        let err = parse_request(&buf, &limits).unwrap_err();
        assert_eq!(err, HandshakeError::HeadTooLarge { limit: 64 });
        assert_eq!(err.http_status(), Some(431));
        // A complete head that is too large fails too, however it arrives.
        let whole = valid(&[], &[]);
        let limits = RequestLimits::default().max_head_size(whole.len() - 1);
        assert_eq!(
            parse_request(&whole, &limits).unwrap_err().http_status(),
            Some(431)
        );
        let limits = RequestLimits::default().max_head_size(whole.len());
        assert!(parse_request(&whole, &limits).is_ok());
    }

    #[test]
    fn the_header_count_limit_answers_431() {
        let whole = valid(&[], &[]);
        assert!(parse_request(&whole, &RequestLimits::default().max_headers(5)).is_ok());
        let err = parse_request(&whole, &RequestLimits::default().max_headers(4)).unwrap_err();
        assert_eq!(err, HandshakeError::TooManyHeaders { limit: 4 });
        assert_eq!(err.http_status(), Some(431));
        assert!(
            err.to_response()
                .starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        );
        assert!(parse_request(&whole, &RequestLimits::default().max_headers(usize::MAX)).is_ok());
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let mut buf = b"\r\n".to_vec();
        buf.extend_from_slice(&valid(&[], &[]));
        let (_, consumed) = parse_request(&buf, &RequestLimits::default())
            .unwrap()
            .complete()
            .unwrap();
        assert_eq!(consumed, buf.len());
        assert_eq!(
            parse_request(b"\r\n\r\n", &RequestLimits::default()).unwrap(),
            Parsed::Incomplete
        );
    }
}
