//! The server's `101 Switching Protocols` answer: the accept hash, the chosen subprotocol, the
//! agreed extensions, cookies and extra headers, each checked so that nothing the application
//! passes can break the response.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

use crate::cookie::SetCookie;
use crate::error::HandshakeError;
use crate::extension::parse_extensions;
use crate::header::{self, Headers, write_response};
use crate::request::UpgradeRequest;

/// The GUID RFC 6455 section 1.3 appends to the key before hashing.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: the base64 of the SHA-1 of the
/// key followed by the WebSocket GUID (RFC 6455 section 4.2.2).
///
/// ```
/// use wsflow_handshake::accept_key;
///
/// // The example of RFC 6455 section 1.3.
/// assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(sha1.finalize())
}

/// The headers an application chooses for the `101` answer.
///
/// Nothing is checked when a setter is called; [`UpgradeRequest::accept`] checks everything
/// and fails, writing nothing, if something cannot be sent. Such an error is the server's own
/// mistake (its [`HandshakeError::http_status`] is `None`): answer with
/// [`HandshakeError::to_response`] (500), as WebSocket-Node does.
///
/// ```
/// use wsflow_handshake::{AcceptOptions, SetCookie};
///
/// let options = AcceptOptions::new()
///     .protocol(Some("chat"))
///     .header("X-Served-By", "node-7")
///     .cookie(SetCookie::new("session", "abc").http_only(true));
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptOptions {
    protocol: Option<String>,
    origin: Option<String>,
    extensions: Option<String>,
    headers: Headers,
    cookies: Vec<SetCookie>,
}

impl AcceptOptions {
    /// No subprotocol, no extension, no extra header.
    pub fn new() -> Self {
        Self::default()
    }

    /// The subprotocol to speak. It must be one the client requested, compared ASCII
    /// case-insensitively; the answer uses the client's spelling. `None` (the default) selects
    /// none, which is allowed even when the client requested some.
    pub fn protocol(mut self, protocol: Option<&str>) -> Self {
        self.protocol = protocol.map(str::to_owned);
        self
    }

    /// Echoes an allowed origin, as WebSocket-Node's `accept(protocol, allowedOrigin)` does:
    /// `Origin` for version 13, `Sec-WebSocket-Origin` for version 8. Optional; browsers do not
    /// need it.
    pub fn origin(mut self, origin: &str) -> Self {
        self.origin = Some(origin.to_owned());
        self
    }

    /// The `Sec-WebSocket-Extensions` value the server agrees to: the negotiation hook where an
    /// extension (permessage-deflate) puts its answer to
    /// [`UpgradeRequest::requested_extensions`]. It must parse (RFC 6455 section 9.1) and name
    /// only extensions the client offered. An empty value sends no header.
    pub fn extensions(mut self, header_value: &str) -> Self {
        self.extensions = Some(header_value.to_owned());
        self
    }

    /// Adds a header to the answer. The name must be a token and the value free of CR, LF and
    /// other control characters. `Upgrade`, `Connection`, `Sec-WebSocket-Accept`,
    /// `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` are the handshake's own and are
    /// refused (use [`AcceptOptions::protocol`] and [`AcceptOptions::extensions`]).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a cookie, sent as a `Set-Cookie` header.
    pub fn cookie(mut self, cookie: SetCookie) -> Self {
        self.cookies.push(cookie);
        self
    }

    /// The subprotocol set by [`AcceptOptions::protocol`].
    pub fn get_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The `Sec-WebSocket-Extensions` value set by [`AcceptOptions::extensions`].
    pub fn get_extensions(&self) -> Option<&str> {
        self.extensions.as_deref()
    }
}

/// The headers [`AcceptOptions::header`] may not set, and what to use instead.
const RESERVED: [(&str, &str); 5] = [
    ("Upgrade", "the handshake always sends Upgrade: websocket"),
    (
        "Connection",
        "the handshake always sends Connection: Upgrade",
    ),
    (
        "Sec-WebSocket-Accept",
        "it is computed from the client's key",
    ),
    ("Sec-WebSocket-Protocol", "use AcceptOptions::protocol"),
    ("Sec-WebSocket-Extensions", "use AcceptOptions::extensions"),
];

impl UpgradeRequest {
    /// Builds the complete `101 Switching Protocols` answer.
    ///
    /// It carries `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Accept`, the
    /// chosen `Sec-WebSocket-Protocol` (client's spelling), the agreed
    /// `Sec-WebSocket-Extensions`, `Set-Cookie` headers and the extra headers, in that order.
    /// Fails, building nothing, when an option cannot be sent; see [`AcceptOptions`].
    ///
    /// ```
    /// use wsflow_handshake::{AcceptOptions, HandshakeError, RequestLimits, parse_request};
    ///
    /// let buf = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///             Sec-WebSocket-Protocol: chat\r\n\r\n";
    /// let (request, _) = parse_request(buf, &RequestLimits::default()).unwrap().complete().unwrap();
    ///
    /// let err = request.accept(&AcceptOptions::new().protocol(Some("video"))).unwrap_err();
    /// assert!(matches!(err, HandshakeError::ProtocolNotRequested { .. }));
    ///
    /// let response = request.accept(&AcceptOptions::new().protocol(Some("CHAT"))).unwrap();
    /// assert_eq!(
    ///     response,
    ///     b"HTTP/1.1 101 Switching Protocols\r\n\
    ///       Upgrade: websocket\r\n\
    ///       Connection: Upgrade\r\n\
    ///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
    ///       Sec-WebSocket-Protocol: chat\r\n\r\n"
    /// );
    /// ```
    pub fn accept(&self, options: &AcceptOptions) -> Result<Vec<u8>, HandshakeError> {
        Ok(write_response(101, &self.accept_headers(options)?))
    }

    /// The headers of the `101` answer, checked; shared with the `http` conversion.
    pub(crate) fn accept_headers(
        &self,
        options: &AcceptOptions,
    ) -> Result<Headers, HandshakeError> {
        let mut headers: Headers = vec![
            ("Upgrade".into(), "websocket".into()),
            ("Connection".into(), "Upgrade".into()),
            ("Sec-WebSocket-Accept".into(), accept_key(&self.key)),
        ];
        if let Some(chosen) = &options.protocol {
            let as_sent = self
                .protocols_as_sent
                .iter()
                .find(|p| p.eq_ignore_ascii_case(chosen))
                .ok_or_else(|| HandshakeError::ProtocolNotRequested {
                    protocol: chosen.clone(),
                    requested: self.protocols_as_sent.clone(),
                })?;
            headers.push(("Sec-WebSocket-Protocol".into(), as_sent.clone()));
        }
        if let Some(value) = &options.extensions {
            let agreed = parse_extensions(value).map_err(|err| match err {
                HandshakeError::InvalidExtensions { reason, .. } => {
                    HandshakeError::InvalidHeaderValue {
                        name: "Sec-WebSocket-Extensions".into(),
                        reason,
                    }
                }
                other => other,
            })?;
            for extension in &agreed {
                if !self
                    .extensions
                    .iter()
                    .any(|offer| offer.name.eq_ignore_ascii_case(&extension.name))
                {
                    return Err(HandshakeError::ExtensionNotOffered {
                        name: extension.name.clone(),
                    });
                }
            }
            if !agreed.is_empty() {
                headers.push((
                    "Sec-WebSocket-Extensions".into(),
                    header::trim_ows(value).to_owned(),
                ));
            }
        }
        if let Some(origin) = &options.origin {
            let name = if self.version == 8 {
                "Sec-WebSocket-Origin"
            } else {
                "Origin"
            };
            header::check_value(name, origin)?;
            headers.push((name.into(), header::trim_ows(origin).to_owned()));
        }
        for cookie in &options.cookies {
            headers.push(("Set-Cookie".into(), cookie.to_header_value()?));
        }
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
            headers.push((name.clone(), header::trim_ows(value).to_owned()));
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{RequestLimits, parse_request};

    fn request(extra: &str) -> UpgradeRequest {
        let buf = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        parse_request(buf.as_bytes(), &RequestLimits::default())
            .unwrap()
            .complete()
            .unwrap()
            .0
    }

    fn text(response: Vec<u8>) -> String {
        String::from_utf8(response).unwrap()
    }

    #[test]
    fn rfc_6455_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            accept_key("x3JJHMbDL1EzLkh9GBhXDw=="),
            "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
        );
    }

    #[test]
    fn minimal_answer() {
        let response = text(request("").accept(&AcceptOptions::default()).unwrap());
        assert_eq!(
            response,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn protocol_must_have_been_requested() {
        let r = request("Sec-WebSocket-Protocol: Chat, JSON.v2\r\n");
        let response = text(
            r.accept(&AcceptOptions::new().protocol(Some("json.V2")))
                .unwrap(),
        );
        assert!(
            response.contains("\r\nSec-WebSocket-Protocol: JSON.v2\r\n"),
            "{response}"
        );
        assert_eq!(
            r.accept(&AcceptOptions::new().protocol(Some("xml")))
                .unwrap_err(),
            HandshakeError::ProtocolNotRequested {
                protocol: "xml".into(),
                requested: vec!["Chat".into(), "JSON.v2".into()],
            }
        );
        let none = text(r.accept(&AcceptOptions::new().protocol(None)).unwrap());
        assert!(!none.contains("Sec-WebSocket-Protocol"));
        let err = request("")
            .accept(&AcceptOptions::new().protocol(Some("chat")))
            .unwrap_err();
        assert_eq!(err.http_status(), None);
        assert!(err.to_response().starts_with(b"HTTP/1.1 500 "));
    }

    #[test]
    fn extensions_must_parse_and_have_been_offered() {
        let r = request("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
        let ok = text(
            r.accept(
                &AcceptOptions::new().extensions("permessage-deflate; server_no_context_takeover"),
            )
            .unwrap(),
        );
        assert!(ok.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
        ));
        assert_eq!(
            r.accept(&AcceptOptions::new().extensions("x-other"))
                .unwrap_err(),
            HandshakeError::ExtensionNotOffered {
                name: "x-other".into()
            }
        );
        assert!(matches!(
            r.accept(&AcceptOptions::new().extensions("permessage-deflate\r\nX-Evil: 1"))
                .unwrap_err(),
            HandshakeError::InvalidHeaderValue { .. }
        ));
        let empty = text(r.accept(&AcceptOptions::new().extensions("")).unwrap());
        assert!(!empty.contains("Sec-WebSocket-Extensions"));
    }

    #[test]
    fn extra_headers_are_checked() {
        let r = request("");
        let ok = text(
            r.accept(
                &AcceptOptions::new()
                    .header("X-Served-By", " node-7 ")
                    .header("Set-Cookie", "a=b"),
            )
            .unwrap(),
        );
        assert!(
            ok.ends_with("\r\nX-Served-By: node-7\r\nSet-Cookie: a=b\r\n\r\n"),
            "{ok}"
        );
        for reserved in [
            "upgrade",
            "CONNECTION",
            "Sec-WebSocket-Accept",
            "sec-websocket-protocol",
            "Sec-WebSocket-Extensions",
        ] {
            assert!(matches!(
                r.accept(&AcceptOptions::new().header(reserved, "x"))
                    .unwrap_err(),
                HandshakeError::ReservedHeader { .. }
            ));
        }
        for bad_name in ["", "X Space", "X:Colon", "X\r\nInjected"] {
            assert!(matches!(
                r.accept(&AcceptOptions::new().header(bad_name, "x"))
                    .unwrap_err(),
                HandshakeError::InvalidHeaderName { .. }
            ));
        }
        for bad_value in ["a\r\nX-Evil: 1", "a\nb", "a\rb", "nul\0"] {
            assert!(matches!(
                r.accept(&AcceptOptions::new().header("X-Ok", bad_value))
                    .unwrap_err(),
                HandshakeError::InvalidHeaderValue { .. }
            ));
        }
    }

    #[test]
    fn cookies_become_set_cookie_headers() {
        let r = request("");
        let response = text(
            r.accept(
                &AcceptOptions::new()
                    .cookie(SetCookie::new("a", "1").secure(true))
                    .cookie(SetCookie::new("b", "2").path("/")),
            )
            .unwrap(),
        );
        assert!(response.contains("\r\nSet-Cookie: a=1; Secure\r\nSet-Cookie: b=2; Path=/\r\n"));
        assert!(matches!(
            r.accept(&AcceptOptions::new().cookie(SetCookie::new("a", "\r\n")))
                .unwrap_err(),
            HandshakeError::InvalidCookie { .. }
        ));
    }

    #[test]
    fn origin_is_echoed_by_version() {
        let v13 = text(
            request("")
                .accept(&AcceptOptions::new().origin("https://a"))
                .unwrap(),
        );
        assert!(v13.contains("\r\nOrigin: https://a\r\n"));
        let buf = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
        let v8 = parse_request(buf, &RequestLimits::default())
            .unwrap()
            .complete()
            .unwrap()
            .0;
        let v8 = text(
            v8.accept(&AcceptOptions::new().origin("https://a"))
                .unwrap(),
        );
        assert!(v8.contains("\r\nSec-WebSocket-Origin: https://a\r\n"));
        assert!(
            request("")
                .accept(&AcceptOptions::new().origin("a\r\nb"))
                .is_err()
        );
    }
}
