//! The client side of the handshake: writing the upgrade request for a [`WsUrl`] and checking
//! the server's answer (RFC 6455 sections 4.1 and 4.2.2).
//!
//! Call order: [`ClientHandshake::new`] gives the request bytes to write; then
//! [`ClientHandshake::parse_response`] on the read buffer after each read until it returns
//! [`Parsed::Complete`], and hand the bytes after the head to the connection (a server may send
//! its first frame together with the `101`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::accept::accept_key;
use crate::error::HandshakeError;
use crate::extension::{ExtensionOffer, parse_extensions};
use crate::header::{self, HeadSearch, Headers};
use crate::parsed::{HeadProgress, Parsed};
use crate::url::WsUrl;

/// What a client asks for in its upgrade request, and how much of the answer it buffers.
///
/// Nothing is checked when a setter is called; [`ClientHandshake::new`] checks everything and
/// fails, writing nothing, if something cannot be sent.
///
/// ```
/// use wsflow_handshake::ClientOptions;
///
/// let options = ClientOptions::new()
///     .protocols(["chat.v2", "chat.v1"])
///     .origin("https://example.com")
///     .header("Authorization", "Bearer abc")
///     .extensions("permessage-deflate; client_max_window_bits");
/// # let _ = options;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    protocols: Vec<String>,
    origin: Option<String>,
    headers: Headers,
    extensions: Option<String>,
    version: u8,
    max_response_head_size: usize,
    max_response_headers: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            protocols: Vec::new(),
            origin: None,
            headers: Vec::new(),
            extensions: None,
            version: 13,
            max_response_head_size: Self::DEFAULT_MAX_RESPONSE_HEAD_SIZE,
            max_response_headers: Self::DEFAULT_MAX_RESPONSE_HEADERS,
        }
    }
}

impl ClientOptions {
    /// The default response head size limit: 16 KiB.
    pub const DEFAULT_MAX_RESPONSE_HEAD_SIZE: usize = 16 * 1024;
    /// The default response header count limit: 64.
    pub const DEFAULT_MAX_RESPONSE_HEADERS: usize = 64;

    /// Version 13, no subprotocol, no extension, no extra header, default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// The subprotocols to request, in order of preference (replaces any set before). Each
    /// must be an HTTP token, listed once (compared ASCII case-insensitively).
    pub fn protocols<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sends `Origin` (`Sec-WebSocket-Origin` with version 8), as a browser does.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Adds a header to the request. The name must be a token and the value free of CR, LF and
    /// other control characters. `Host` replaces the one derived from the URL (the last one
    /// given wins). `Upgrade`, `Connection`, `Sec-WebSocket-Key` and `Sec-WebSocket-Version`
    /// are the handshake's own and are refused with [`HandshakeError::ReservedHeader`], as are
    /// `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`, `Origin` and
    /// `Sec-WebSocket-Origin`, which have their own setters.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The `Sec-WebSocket-Extensions` offer, as a header value (an extension such as
    /// permessage-deflate writes it). It must parse (RFC 6455 section 9.1); the server may only
    /// answer with extensions named in it. An empty value sends no header.
    pub fn extensions(mut self, header_value: &str) -> Self {
        self.extensions = Some(header_value.to_owned());
        self
    }

    /// The `Sec-WebSocket-Version` to send: 13 (the default, RFC 6455) or 8 (the last draft,
    /// which only changes the origin header's name).
    pub fn version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }

    /// The largest response head accepted, in bytes (16 KiB by default).
    pub fn max_response_head_size(mut self, bytes: usize) -> Self {
        self.max_response_head_size = bytes;
        self
    }

    /// The most response header lines accepted (64 by default).
    pub fn max_response_headers(mut self, count: usize) -> Self {
        self.max_response_headers = count;
        self
    }
}

/// The headers [`ClientOptions::header`] may not set, and what to use instead.
const RESERVED: [(&str, &str); 8] = [
    ("Upgrade", "the handshake always sends Upgrade: websocket"),
    (
        "Connection",
        "the handshake always sends Connection: Upgrade",
    ),
    (
        "Sec-WebSocket-Key",
        "the key is generated for each handshake",
    ),
    ("Sec-WebSocket-Version", "use ClientOptions::version"),
    ("Sec-WebSocket-Protocol", "use ClientOptions::protocols"),
    ("Sec-WebSocket-Extensions", "use ClientOptions::extensions"),
    ("Origin", "use ClientOptions::origin"),
    ("Sec-WebSocket-Origin", "use ClientOptions::origin"),
];

/// A client's handshake in progress: what it sent, so that the answer can be checked.
///
/// Call order: [`ClientHandshake::new`], write the request bytes; after each read call
/// [`ClientHandshake::parse_response`] with the whole read buffer until it is complete; the
/// bytes after `consumed` are the first frames of the connection. Any error ends the attempt.
///
/// ```
/// use wsflow_handshake::{
///     AcceptOptions, ClientHandshake, ClientOptions, Parsed, RequestLimits, WsUrl, parse_request,
/// };
///
/// let url = WsUrl::parse("ws://example.com:9001/chat").unwrap();
/// let options = ClientOptions::new().protocols(["chat"]);
/// let (client, request) = ClientHandshake::new(&url, &options).unwrap();
/// assert!(request.starts_with(b"GET /chat HTTP/1.1\r\nHost: example.com:9001\r\n"));
///
/// // The server side, for the example.
/// let (upgrade, _) = parse_request(&request, &RequestLimits::default()).unwrap().complete().unwrap();
/// let mut answer = upgrade.accept(&AcceptOptions::new().protocol(Some("chat"))).unwrap();
/// answer.extend_from_slice(b"\x81\x02hi"); // a first frame, sent right after the head
///
/// let Parsed::Complete { value: response, consumed } = client.parse_response(&answer).unwrap() else {
///     panic!("complete head");
/// };
/// assert_eq!(response.protocol(), Some("chat"));
/// assert_eq!(&answer[consumed..], b"\x81\x02hi");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    key: String,
    expected_accept: String,
    protocols: Vec<String>,
    offered_extensions: Vec<String>,
    max_head_size: usize,
    max_headers: usize,
}

impl ClientHandshake {
    /// Builds the upgrade request for `url` with a fresh random key (16 bytes from the
    /// operating system's CSPRNG via `rand`'s thread generator). Returns the handshake, to check
    /// the answer with, and the request bytes to write.
    pub fn new(url: &WsUrl, options: &ClientOptions) -> Result<(Self, Vec<u8>), HandshakeError> {
        Self::with_key(url, options, rand::random::<[u8; 16]>())
    }

    /// As [`ClientHandshake::new`], with the key's 16 bytes given: for tests and reproducible
    /// transcripts only. A real client needs an unpredictable key.
    pub fn with_key(
        url: &WsUrl,
        options: &ClientOptions,
        key: [u8; 16],
    ) -> Result<(Self, Vec<u8>), HandshakeError> {
        if options.version != 13 && options.version != 8 {
            return Err(HandshakeError::UnsupportedClientVersion {
                version: options.version,
            });
        }
        for (i, protocol) in options.protocols.iter().enumerate() {
            let reason = if !header::is_token(protocol) {
                Some("a subprotocol must be a non-empty HTTP token (no spaces, commas or quotes)")
            } else if options.protocols[..i]
                .iter()
                .any(|p| p.eq_ignore_ascii_case(protocol))
            {
                Some("it is listed twice")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(HandshakeError::InvalidProtocol {
                    protocol: protocol.clone(),
                    reason,
                });
            }
        }
        let extensions = match &options.extensions {
            Some(value) => parse_extensions(value).map_err(|err| match err {
                HandshakeError::InvalidExtensions { reason, .. } => {
                    HandshakeError::InvalidHeaderValue {
                        name: "Sec-WebSocket-Extensions".into(),
                        reason,
                    }
                }
                other => other,
            })?,
            None => Vec::new(),
        };
        let mut host = url.host_header();
        let mut extra = Vec::new();
        for (name, value) in &options.headers {
            header::check_name(name)?;
            if let Some((_, use_instead)) = RESERVED
                .iter()
                .find(|(reserved, _)| reserved.eq_ignore_ascii_case(name))
            {
                return Err(HandshakeError::ReservedHeader {
                    name: name.clone(),
                    use_instead,
                });
            }
            header::check_value(name, value)?;
            let value = header::trim_ows(value).to_owned();
            if name.eq_ignore_ascii_case("Host") {
                host = value;
            } else {
                extra.push((name.clone(), value));
            }
        }

        let key = STANDARD.encode(key);
        let mut headers: Headers = vec![
            ("Host".into(), host),
            ("Upgrade".into(), "websocket".into()),
            ("Connection".into(), "Upgrade".into()),
            ("Sec-WebSocket-Key".into(), key.clone()),
            ("Sec-WebSocket-Version".into(), options.version.to_string()),
        ];
        if !options.protocols.is_empty() {
            headers.push((
                "Sec-WebSocket-Protocol".into(),
                options.protocols.join(", "),
            ));
        }
        if let Some(origin) = &options.origin {
            let name = if options.version == 8 {
                "Sec-WebSocket-Origin"
            } else {
                "Origin"
            };
            header::check_value(name, origin)?;
            headers.push((name.into(), header::trim_ows(origin).to_owned()));
        }
        if let (false, Some(value)) = (extensions.is_empty(), &options.extensions) {
            headers.push((
                "Sec-WebSocket-Extensions".into(),
                header::trim_ows(value).to_owned(),
            ));
        }
        headers.extend(extra);

        let mut request = format!("GET {} HTTP/1.1\r\n", url.resource()).into_bytes();
        header::write_headers(&mut request, &headers);
        let handshake = Self {
            expected_accept: accept_key(&key),
            key,
            protocols: options.protocols.clone(),
            offered_extensions: extensions.into_iter().map(|e| e.name).collect(),
            max_head_size: options.max_response_head_size,
            max_headers: options.max_response_headers,
        };
        Ok((handshake, request))
    }

    /// The `Sec-WebSocket-Key` that was sent.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Parses and checks the server's answer from the start of `buf`.
    ///
    /// Call it with the whole buffer each time bytes arrive; it is cheap until the head is
    /// complete and fails once the buffer reaches the head size limit without one. On success
    /// the bytes after `consumed` are the first WebSocket frames.
    ///
    /// The answer must be `101` in HTTP/1.1 (anything else is
    /// [`HandshakeError::UnexpectedStatus`], carrying the headers and the body bytes that
    /// came with it, so a `401` or a redirect's `Location` can be acted on), with `Upgrade:
    /// websocket`, a `Connection` list containing `upgrade`, the right `Sec-WebSocket-Accept`,
    /// at most a subprotocol that was requested (compared ASCII case-insensitively; the server
    /// may also select none) and only extensions that were offered (by name).
    pub fn parse_response(&self, buf: &[u8]) -> Result<Parsed<ServerResponse>, HandshakeError> {
        self.parse_response_resumed(buf, &mut HeadProgress::new())
    }

    /// As [`ClientHandshake::parse_response`], for a buffer that grows by reads: `progress`
    /// remembers how far the earlier calls examined it, so an answer trickled in small pieces is
    /// searched once in all.
    ///
    /// Pass the same [`HeadProgress`] with the same buffer, grown at its end, each time bytes
    /// arrive. The answers are those `parse_response` would give.
    pub fn parse_response_resumed(
        &self,
        buf: &[u8],
        progress: &mut HeadProgress,
    ) -> Result<Parsed<ServerResponse>, HandshakeError> {
        let too_large = HandshakeError::ResponseHeadTooLarge {
            limit: self.max_head_size,
        };
        match header::search_head(buf, self.max_head_size, progress) {
            HeadSearch::TooLarge => return Err(too_large),
            HeadSearch::Incomplete => {
                header::check_start(buf, progress, check_response_start)?;
                return Ok(Parsed::Incomplete);
            }
            HeadSearch::BlankLine => {}
        }
        let window = &buf[..buf.len().min(self.max_head_size)];
        let mut slots =
            vec![httparse::EMPTY_HEADER; header::header_slots(self.max_headers, window.len())];
        let mut response = httparse::Response::new(&mut slots);
        let consumed = match response.parse(window) {
            Ok(httparse::Status::Complete(consumed)) => consumed,
            Ok(httparse::Status::Partial) if buf.len() >= self.max_head_size => {
                return Err(too_large);
            }
            Ok(httparse::Status::Partial) => return Ok(Parsed::Incomplete),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HandshakeError::TooManyResponseHeaders {
                    limit: self.max_headers,
                });
            }
            Err(err) => return Err(malformed(err.to_string())),
        };
        let status = response.code.unwrap_or_default();
        let headers = header::owned_headers(response.headers);
        if status != 101 {
            return Err(HandshakeError::UnexpectedStatus {
                status,
                reason: response.reason.unwrap_or_default().to_owned(),
                headers,
                body_prefix: buf.get(consumed..).unwrap_or_default().to_vec(),
            });
        }
        if response.version != Some(1) {
            return Err(malformed(
                "the 101 answer is in HTTP/1.0; an upgrade needs HTTP/1.1".into(),
            ));
        }
        let value = self.check(headers)?;
        Ok(Parsed::Complete { value, consumed })
    }

    /// The checks on the headers of a `101` answer.
    fn check(&self, headers: Headers) -> Result<ServerResponse, HandshakeError> {
        if !header::has_token(&headers, "Upgrade", "websocket") {
            return Err(HandshakeError::ResponseNotWebSocketUpgrade {
                upgrade: header::joined(&headers, "Upgrade"),
            });
        }
        if !header::has_token(&headers, "Connection", "upgrade") {
            return Err(HandshakeError::ResponseMissingConnectionUpgrade {
                connection: header::joined(&headers, "Connection"),
            });
        }
        let accept_ok = header::count(&headers, "Sec-WebSocket-Accept") == 1
            && header::find(&headers, "Sec-WebSocket-Accept")
                == Some(self.expected_accept.as_str());
        if !accept_ok {
            return Err(HandshakeError::AcceptMismatch {
                expected: self.expected_accept.clone(),
                received: header::joined(&headers, "Sec-WebSocket-Accept"),
            });
        }
        let protocol = match header::joined(&headers, "Sec-WebSocket-Protocol") {
            None => None,
            Some(selected) => Some(
                self.protocols
                    .iter()
                    .find(|p| p.eq_ignore_ascii_case(&selected))
                    .cloned()
                    .ok_or(HandshakeError::UnrequestedProtocol { protocol: selected })?,
            ),
        };
        let mut extensions = Vec::new();
        for value in header::values(&headers, "Sec-WebSocket-Extensions") {
            let agreed = parse_extensions(value).map_err(|err| malformed(err.to_string()))?;
            for extension in &agreed {
                if !self
                    .offered_extensions
                    .iter()
                    .any(|name| name.eq_ignore_ascii_case(&extension.name))
                {
                    return Err(HandshakeError::UnofferedExtension {
                        name: extension.name.clone(),
                    });
                }
            }
            extensions.extend(agreed);
        }
        Ok(ServerResponse {
            protocol,
            extensions,
            headers,
        })
    }
}

/// Fails early on bytes that cannot start an HTTP response, and says whether the check is
/// settled (only the status line and the first header line are examined).
fn check_response_start(buf: &[u8]) -> Result<bool, HandshakeError> {
    let mut no_headers = [];
    match httparse::Response::new(&mut no_headers).parse(buf) {
        Ok(httparse::Status::Partial) => Ok(false),
        Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => Ok(true),
        Err(err) => Err(malformed(err.to_string())),
    }
}

fn malformed(reason: String) -> HandshakeError {
    HandshakeError::MalformedResponse { reason }
}

/// A server's valid `101 Switching Protocols` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerResponse {
    protocol: Option<String>,
    extensions: Vec<ExtensionOffer>,
    headers: Headers,
}

impl ServerResponse {
    /// The subprotocol the server selected, spelled as the client requested it; `None` when
    /// it selected none.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The extensions the server agreed to, with their parameters, from every
    /// `Sec-WebSocket-Extensions` header.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// Every header of the answer, in order (values trimmed, decoded lossily as UTF-8).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first header called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header::find(&self.headers, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = *b"the sample nonce";

    fn handshake(options: &ClientOptions) -> (ClientHandshake, String) {
        let url = WsUrl::parse("ws://example.com/chat?x=1").unwrap();
        let (handshake, request) = ClientHandshake::with_key(&url, options, KEY).unwrap();
        (handshake, String::from_utf8(request).unwrap())
    }

    fn answer(extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    fn check(handshake: &ClientHandshake, buf: &[u8]) -> Result<ServerResponse, HandshakeError> {
        match handshake.parse_response(buf)? {
            Parsed::Complete { value, consumed } => {
                assert_eq!(consumed, buf.len());
                Ok(value)
            }
            Parsed::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn the_request_has_every_header() {
        let (handshake, request) = handshake(
            &ClientOptions::new()
                .protocols(["chat", "Super.Chat"])
                .origin("https://example.com")
                .extensions("permessage-deflate; client_max_window_bits")
                .header("Authorization", "Bearer t"),
        );
        assert_eq!(handshake.key(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(
            request,
            "GET /chat?x=1 HTTP/1.1\r\n\
             Host: example.com\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: chat, Super.Chat\r\n\
             Origin: https://example.com\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             Authorization: Bearer t\r\n\r\n"
        );
    }

    #[test]
    fn version_8_sends_sec_websocket_origin() {
        let (_, request) = handshake(&ClientOptions::new().version(8).origin("https://a"));
        assert!(request.contains("\r\nSec-WebSocket-Version: 8\r\n"));
        assert!(request.contains("\r\nSec-WebSocket-Origin: https://a\r\n"));
        let url = WsUrl::parse("ws://h").unwrap();
        assert_eq!(
            ClientHandshake::new(&url, &ClientOptions::new().version(7)).unwrap_err(),
            HandshakeError::UnsupportedClientVersion { version: 7 }
        );
    }

    #[test]
    fn host_can_be_overridden() {
        let (_, request) = handshake(&ClientOptions::new().header("host", "virtual.example"));
        assert!(request.starts_with("GET /chat?x=1 HTTP/1.1\r\nHost: virtual.example\r\n"));
        assert_eq!(request.matches("ost: ").count(), 1);
    }

    #[test]
    fn options_that_cannot_be_sent_are_refused() {
        let url = WsUrl::parse("ws://h").unwrap();
        let err = |options: ClientOptions| ClientHandshake::new(&url, &options).unwrap_err();
        for reserved in [
            "Upgrade",
            "connection",
            "Sec-WebSocket-Key",
            "SEC-WEBSOCKET-VERSION",
            "Origin",
        ] {
            assert!(matches!(
                err(ClientOptions::new().header(reserved, "x")),
                HandshakeError::ReservedHeader { .. }
            ));
        }
        assert!(matches!(
            err(ClientOptions::new().header("X Bad", "x")),
            HandshakeError::InvalidHeaderName { .. }
        ));
        assert!(matches!(
            err(ClientOptions::new().header("X-Ok", "a\r\nb")),
            HandshakeError::InvalidHeaderValue { .. }
        ));
        assert!(matches!(
            err(ClientOptions::new().origin("a\nb")),
            HandshakeError::InvalidHeaderValue { .. }
        ));
        for bad in [vec!["a b"], vec![""], vec!["a,b"], vec!["chat", "CHAT"]] {
            assert!(matches!(
                err(ClientOptions::new().protocols(bad)),
                HandshakeError::InvalidProtocol { .. }
            ));
        }
        assert!(matches!(
            err(ClientOptions::new().extensions("a;;")),
            HandshakeError::InvalidHeaderValue { .. }
        ));
    }

    #[test]
    fn keys_are_random() {
        let url = WsUrl::parse("ws://h").unwrap();
        let (a, _) = ClientHandshake::new(&url, &ClientOptions::new()).unwrap();
        let (b, _) = ClientHandshake::new(&url, &ClientOptions::new()).unwrap();
        assert_ne!(a.key(), b.key());
        assert_eq!(STANDARD.decode(a.key()).unwrap().len(), 16);
    }

    #[test]
    fn a_valid_answer_is_accepted_with_its_trailing_bytes() {
        let (handshake, _) = handshake(&ClientOptions::new());
        let mut buf = answer("");
        let head = buf.len();
        buf.extend_from_slice(b"\x81\x00");
        for end in 0..head {
            assert_eq!(
                handshake.parse_response(&buf[..end]).unwrap(),
                Parsed::Incomplete
            );
        }
        let (response, consumed) = handshake.parse_response(&buf).unwrap().complete().unwrap();
        assert_eq!(consumed, head);
        assert_eq!(response.protocol(), None);
        assert!(response.extensions().is_empty());
        assert_eq!(response.headers().len(), 3);
        assert_eq!(response.header("upgrade"), Some("websocket"));
    }

    #[test]
    fn other_statuses_carry_headers_and_body() {
        let (handshake, _) = handshake(&ClientOptions::new());
        let buf =
            b"HTTP/1.1 302 Found\r\nLocation: wss://elsewhere/\r\nContent-Length: 5\r\n\r\nmov";
        match handshake.parse_response(buf).unwrap_err() {
            HandshakeError::UnexpectedStatus {
                status,
                reason,
                headers,
                body_prefix,
            } => {
                assert_eq!((status, reason.as_str()), (302, "Found"));
                assert_eq!(
                    headers[0],
                    ("Location".to_string(), "wss://elsewhere/".to_string())
                );
                assert_eq!(body_prefix, b"mov");
            }
            other => panic!("{other}"),
        }
        let err = handshake
            .parse_response(b"HTTP/1.0 403 Forbidden\r\n\r\n")
            .unwrap_err();
        assert!(matches!(
            err,
            HandshakeError::UnexpectedStatus { status: 403, .. }
        ));
        assert!(err.is_response_error());
    }

    #[test]
    fn upgrade_and_connection_are_required() {
        let (handshake, _) = handshake(&ClientOptions::new());
        let ok = String::from_utf8(answer("")).unwrap();
        let without_upgrade = ok.replace("Upgrade: websocket\r\n", "");
        assert_eq!(
            check(&handshake, without_upgrade.as_bytes()).unwrap_err(),
            HandshakeError::ResponseNotWebSocketUpgrade { upgrade: None }
        );
        let wrong_upgrade = ok.replace("Upgrade: websocket", "Upgrade: h2c");
        assert!(matches!(
            check(&handshake, wrong_upgrade.as_bytes()).unwrap_err(),
            HandshakeError::ResponseNotWebSocketUpgrade { upgrade: Some(_) }
        ));
        let keep_alive = ok.replace("Connection: Upgrade", "Connection: Upgrade, keep-alive");
        assert!(check(&handshake, keep_alive.as_bytes()).is_ok());
        let lower = ok
            .replace("Connection: Upgrade", "connection: upgrade")
            .replace("Upgrade: websocket", "upgrade: WebSocket");
        assert!(check(&handshake, lower.as_bytes()).is_ok());
        let no_connection = ok.replace("Connection: Upgrade\r\n", "");
        assert_eq!(
            check(&handshake, no_connection.as_bytes()).unwrap_err(),
            HandshakeError::ResponseMissingConnectionUpgrade { connection: None }
        );
    }

    #[test]
    fn the_accept_hash_must_match() {
        let (handshake, _) = handshake(&ClientOptions::new());
        let ok = String::from_utf8(answer("")).unwrap();
        let wrong = ok.replace(
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "HSmrc0sMlYUkAGmm5OPpG2HaGWk=",
        );
        assert_eq!(
            check(&handshake, wrong.as_bytes()).unwrap_err(),
            HandshakeError::AcceptMismatch {
                expected: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(),
                received: Some("HSmrc0sMlYUkAGmm5OPpG2HaGWk=".into()),
            }
        );
        let missing = ok.replace("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", "");
        assert!(matches!(
            check(&handshake, missing.as_bytes()).unwrap_err(),
            HandshakeError::AcceptMismatch { received: None, .. }
        ));
        let twice = answer("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
        assert!(matches!(
            check(&handshake, &twice).unwrap_err(),
            HandshakeError::AcceptMismatch { .. }
        ));
    }

    #[test]
    fn protocols_must_have_been_requested() {
        let (none_requested, _) = handshake(&ClientOptions::new());
        assert_eq!(
            check(&none_requested, &answer("Sec-WebSocket-Protocol: chat\r\n")).unwrap_err(),
            HandshakeError::UnrequestedProtocol {
                protocol: "chat".into()
            }
        );
        let (requested, _) = handshake(&ClientOptions::new().protocols(["Chat", "json"]));
        let response = check(&requested, &answer("Sec-WebSocket-Protocol: CHAT\r\n")).unwrap();
        assert_eq!(response.protocol(), Some("Chat"));
        assert_eq!(check(&requested, &answer("")).unwrap().protocol(), None);
        assert!(check(&requested, &answer("Sec-WebSocket-Protocol: xml\r\n")).is_err());
        assert!(
            check(
                &requested,
                &answer("Sec-WebSocket-Protocol: chat, json\r\n")
            )
            .is_err()
        );
        let twice = "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n";
        assert!(check(&requested, &answer(twice)).is_err());
    }

    #[test]
    fn extensions_must_have_been_offered() {
        let (none_offered, _) = handshake(&ClientOptions::new());
        assert_eq!(
            check(
                &none_offered,
                &answer("Sec-WebSocket-Extensions: permessage-deflate\r\n")
            )
            .unwrap_err(),
            HandshakeError::UnofferedExtension {
                name: "permessage-deflate".into()
            }
        );
        let (offered, _) = handshake(&ClientOptions::new().extensions("permessage-deflate, x-foo"));
        let response = check(
            &offered,
            &answer("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n"),
        )
        .unwrap();
        assert_eq!(
            response.extensions()[0].param("server_max_window_bits"),
            Some(Some("10"))
        );
        assert!(matches!(
            check(&offered, &answer("Sec-WebSocket-Extensions: ;\r\n")).unwrap_err(),
            HandshakeError::MalformedResponse { .. }
        ));
    }

    #[test]
    fn limits_and_garbage() {
        let (handshake, _) = handshake(&ClientOptions::new().max_response_head_size(40));
        let err = handshake.parse_response(&answer("")).unwrap_err();
        assert_eq!(err, HandshakeError::ResponseHeadTooLarge { limit: 40 });
        assert!(
            err.to_string()
                .contains("ClientOptions::max_response_head_size")
        );
        let (few, _) = self::handshake(&ClientOptions::new().max_response_headers(2));
        assert_eq!(
            few.parse_response(&answer("")).unwrap_err(),
            HandshakeError::TooManyResponseHeaders { limit: 2 }
        );
        let (handshake, _) = self::handshake(&ClientOptions::new());
        assert!(matches!(
            handshake.parse_response(b"\x16\x03\x01").unwrap_err(),
            HandshakeError::MalformedResponse { .. }
        ));
        assert!(matches!(
            handshake
                .parse_response(b"HTTP/1.0 101 Switching Protocols\r\n\r\n")
                .unwrap_err(),
            HandshakeError::MalformedResponse { .. }
        ));
    }
}
