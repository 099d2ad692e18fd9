//! The handshake's error type: [`HandshakeError`], one enum for the crate, whose methods say
//! who is at fault and which HTTP answer a server gives; and [`UrlError`], the ways a
//! `ws://`/`wss://` URL can be refused.

use std::fmt;

use crate::header::write_response;

/// Why a `ws://` or `wss://` URL was refused by [`WsUrl::parse`](crate::WsUrl::parse).
///
/// ```
/// use wsflow_handshake::{UrlError, WsUrl};
///
/// assert_eq!(
///     WsUrl::parse("ws://example.com/chat#top").unwrap_err(),
///     UrlError::Fragment.into()
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The text has no `scheme://` prefix.
    MissingScheme,
    /// The scheme is neither `ws` nor `wss`.
    UnsupportedScheme {
        /// The scheme found, as written.
        scheme: String,
    },
    /// The URL carries `user:password@`, which a WebSocket URL cannot.
    Userinfo,
    /// The URL carries a `#fragment`, which RFC 6455 section 3 forbids.
    Fragment,
    /// Nothing between `://` and the port or path.
    EmptyHost,
    /// The host has characters a host name cannot have, or an IPv6 literal that does not parse.
    InvalidHost {
        /// The host as written.
        host: String,
    },
    /// The port is not a number from 1 to 65535.
    InvalidPort {
        /// The port as written.
        port: String,
    },
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingScheme => {
                f.write_str("the URL has no scheme; write it as ws://host/path or wss://host/path")
            }
            Self::UnsupportedScheme { scheme } => write!(
                f,
                "the URL scheme {scheme:?} is not supported; use ws:// (plain) or wss:// (TLS)"
            ),
            Self::Userinfo => f.write_str(
                "the URL contains user information (user@host); remove it and send credentials \
                 in a header with ClientOptions::header",
            ),
            Self::Fragment => f.write_str(
                "the URL contains a #fragment, which WebSocket URLs cannot have (RFC 6455 \
                 section 3); remove it",
            ),
            Self::EmptyHost => f.write_str("the URL has an empty host; write ws://host/path"),
            Self::InvalidHost { host } => write!(
                f,
                "the URL host {host:?} is not a valid host name or [IPv6] address"
            ),
            Self::InvalidPort { port } => {
                write!(f, "the URL port {port:?} is not a number from 1 to 65535")
            }
        }
    }
}

impl std::error::Error for UrlError {}

/// The error type of `wsflow-handshake`.
///
/// The variants fall in three groups, by who is at fault:
///
/// - a request a server received breaks the upgrade rules: [`HandshakeError::http_status`] is
///   `Some`, and [`HandshakeError::to_response`] is the HTTP answer to write before closing;
/// - the caller asked for something that cannot be sent (an invalid header, a protocol the
///   client never offered, a malformed cookie): `http_status` is `None`; a server that meets one
///   while accepting answers 500, which is what `to_response` produces for it;
/// - a response a client received is not a valid `101` upgrade answer
///   ([`HandshakeError::is_response_error`]): the connection attempt has failed.
///
/// Every message says what happened and what to do about it.
///
/// ```
/// use wsflow_handshake::{HandshakeError, RequestLimits, parse_request};
///
/// let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\n\r\n";
/// let err = parse_request(request, &RequestLimits::default()).unwrap_err();
/// assert!(matches!(err, HandshakeError::NotWebSocketUpgrade { .. }));
/// assert_eq!(err.http_status(), Some(400));
/// // The complete answer to write to the socket before closing it:
/// assert!(err.to_response().starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    // ----- A request the server received (http_status: Some) -----
    /// The request head grew past the size limit before it was complete. Answer: 431.
    HeadTooLarge {
        /// The configured limit in bytes ([`RequestLimits::max_head_size`](crate::RequestLimits::max_head_size)).
        limit: usize,
    },
    /// The request had more header lines than the limit. Answer: 431.
    TooManyHeaders {
        /// The configured limit ([`RequestLimits::max_headers`](crate::RequestLimits::max_headers)).
        limit: usize,
    },
    /// The bytes are not an HTTP/1.x request head. Answer: 400.
    MalformedRequest {
        /// What was wrong.
        reason: String,
    },
    /// The method was not `GET`. Answer: 405 with `Allow: GET`.
    MethodNotAllowed {
        /// The method the client used.
        method: String,
    },
    /// The request was not HTTP/1.1 (an upgrade needs HTTP/1.1). Answer: 400.
    UnsupportedHttpVersion {
        /// The version the client used, such as `HTTP/1.0`.
        version: String,
    },
    /// The request target is neither a path (`/chat?room=1`) nor an absolute URL. Answer: 400.
    InvalidRequestTarget {
        /// The request target as received.
        target: String,
    },
    /// The request has no `Host` header, or an empty one. Answer: 400.
    MissingHost,
    /// A header that may appear once appeared several times. Answer: 400.
    DuplicateHeader {
        /// The header's name.
        name: &'static str,
    },
    /// The `Upgrade` header is missing or does not contain the token `websocket`. Answer: 400.
    NotWebSocketUpgrade {
        /// The `Upgrade` value received, if any.
        upgrade: Option<String>,
    },
    /// The `Connection` header is missing or does not contain the token `upgrade`. Answer: 400.
    MissingConnectionUpgrade {
        /// The `Connection` value received, if any.
        connection: Option<String>,
    },
    /// The request has no `Sec-WebSocket-Key`. Answer: 400.
    MissingKey,
    /// The `Sec-WebSocket-Key` is not the base64 encoding of 16 bytes. Answer: 400.
    InvalidKey {
        /// The key received.
        key: String,
    },
    /// The request has no `Sec-WebSocket-Version`. Answer: 400.
    MissingVersion,
    /// The `Sec-WebSocket-Version` is not a number. Answer: 400.
    InvalidVersion {
        /// The value received.
        version: String,
    },
    /// The `Sec-WebSocket-Version` is a number other than 13 or 8.
    /// Answer: 426 with `Sec-WebSocket-Version: 13`.
    UnsupportedVersion {
        /// The version received.
        version: String,
    },
    /// A `Sec-WebSocket-Extensions` value does not follow the grammar of RFC 6455 section 9.1.
    /// Answer: 400. Also returned by [`parse_extensions`](crate::parse_extensions).
    InvalidExtensions {
        /// The header value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A permessage-deflate offer breaks RFC 7692 (an unknown or repeated parameter, a bad
    /// window size), from [`DeflateParams::from_offer`](crate::DeflateParams::from_offer). A
    /// server declines such an offer rather than failing the handshake
    /// ([`negotiate_deflate`](crate::negotiate_deflate) skips it); answering with this error
    /// gives 400.
    InvalidDeflateOffer {
        /// The offer, in header syntax.
        offer: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    // ----- The caller's mistakes (http_status: None; a server answers 500) -----
    /// [`AcceptOptions::protocol`](crate::AcceptOptions::protocol) named a protocol the client
    /// did not offer.
    ProtocolNotRequested {
        /// The protocol passed to `accept`.
        protocol: String,
        /// What the client offered, in its order and spelling.
        requested: Vec<String>,
    },
    /// [`AcceptOptions::extensions`](crate::AcceptOptions::extensions) named an extension the
    /// client did not offer.
    ExtensionNotOffered {
        /// The extension's name.
        name: String,
    },
    /// An extra header would replace one the handshake sets itself.
    ReservedHeader {
        /// The header's name as given.
        name: String,
        /// Where that header is set instead.
        use_instead: &'static str,
    },
    /// An extra header's name is not an HTTP token.
    InvalidHeaderName {
        /// The name as given.
        name: String,
    },
    /// A header value contains CR, LF or another control character, or does not follow the
    /// header's grammar.
    InvalidHeaderValue {
        /// The header's name.
        name: String,
        /// What is wrong with the value.
        reason: &'static str,
    },
    /// A [`SetCookie`](crate::SetCookie) breaks RFC 6265.
    InvalidCookie {
        /// The cookie's name as given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A protocol in [`ClientOptions::protocols`](crate::ClientOptions::protocols) is empty,
    /// not an HTTP token, or listed twice.
    InvalidProtocol {
        /// The protocol as given.
        protocol: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// [`ClientOptions::version`](crate::ClientOptions::version) is neither 13 nor 8.
    UnsupportedClientVersion {
        /// The version requested.
        version: u8,
    },
    /// The URL given to [`WsUrl::parse`](crate::WsUrl::parse) was refused.
    InvalidUrl(UrlError),

    // ----- A response the client received (is_response_error) -----
    /// The response head grew past the client's size limit before it was complete.
    ResponseHeadTooLarge {
        /// The configured limit in bytes
        /// ([`ClientOptions::max_response_head_size`](crate::ClientOptions::max_response_head_size)).
        limit: usize,
    },
    /// The response had more header lines than the client's limit.
    TooManyResponseHeaders {
        /// The configured limit
        /// ([`ClientOptions::max_response_headers`](crate::ClientOptions::max_response_headers)).
        limit: usize,
    },
    /// The bytes are not an HTTP/1.1 response head, or a header in it is malformed.
    MalformedResponse {
        /// What was wrong.
        reason: String,
    },
    /// The server answered with a status other than `101 Switching Protocols`. Everything that
    /// came with it is kept, so the caller can follow a redirect or show the error page.
    UnexpectedStatus {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// Every response header, in order (values decoded lossily as UTF-8).
        headers: Vec<(String, String)>,
        /// The body bytes that had already arrived after the head (possibly none).
        body_prefix: Vec<u8>,
    },
    /// The `101` response's `Upgrade` header is missing or is not `websocket`.
    ResponseNotWebSocketUpgrade {
        /// The `Upgrade` value received, if any.
        upgrade: Option<String>,
    },
    /// The `101` response's `Connection` header is missing or lacks the token `upgrade`.
    ResponseMissingConnectionUpgrade {
        /// The `Connection` value received, if any.
        connection: Option<String>,
    },
    /// The `Sec-WebSocket-Accept` value does not match the key that was sent.
    AcceptMismatch {
        /// The value the key requires.
        expected: String,
        /// The value received, if any.
        received: Option<String>,
    },
    /// The server selected a subprotocol the client did not request.
    UnrequestedProtocol {
        /// The value of the response's `Sec-WebSocket-Protocol`.
        protocol: String,
    },
    /// The server's `Sec-WebSocket-Extensions` names an extension the client did not offer.
    UnofferedExtension {
        /// The extension's name.
        name: String,
    },
    /// The server's permessage-deflate answer breaks RFC 7692 or does not fit the client's
    /// offer ([`check_deflate_response`](crate::check_deflate_response)): the client fails the
    /// connection.
    InvalidDeflateResponse {
        /// The answer, in header syntax.
        response: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl HandshakeError {
    /// The HTTP status a server answers with when this error is in a request it received;
    /// `None` for the caller's mistakes and for errors in a response a client received.
    ///
    /// Too large a head and too many headers both answer 431 (Request Header Fields Too Large).
    /// A method other than `GET` answers 405; an unsupported `Sec-WebSocket-Version` answers
    /// 426; every other malformed upgrade request answers 400.
    ///
    /// ```
    /// use wsflow_handshake::HandshakeError;
    ///
    /// assert_eq!(HandshakeError::MissingHost.http_status(), Some(400));
    /// assert_eq!(HandshakeError::HeadTooLarge { limit: 16384 }.http_status(), Some(431));
    /// let err = HandshakeError::UnsupportedVersion { version: "7".into() };
    /// assert_eq!(err.http_status(), Some(426));
    /// ```
    pub fn http_status(&self) -> Option<u16> {
        Some(match self {
            Self::HeadTooLarge { .. } | Self::TooManyHeaders { .. } => 431,
            Self::MethodNotAllowed { .. } => 405,
            Self::UnsupportedVersion { .. } => 426,
            Self::MalformedRequest { .. }
            | Self::UnsupportedHttpVersion { .. }
            | Self::InvalidRequestTarget { .. }
            | Self::MissingHost
            | Self::DuplicateHeader { .. }
            | Self::NotWebSocketUpgrade { .. }
            | Self::MissingConnectionUpgrade { .. }
            | Self::MissingKey
            | Self::InvalidKey { .. }
            | Self::MissingVersion
            | Self::InvalidVersion { .. }
            | Self::InvalidExtensions { .. }
            | Self::InvalidDeflateOffer { .. } => 400,
            _ => return None,
        })
    }

    /// Whether this error was found in a response a client received (the server, or something
    /// between, did not complete the upgrade).
    pub fn is_response_error(&self) -> bool {
        matches!(
            self,
            Self::ResponseHeadTooLarge { .. }
                | Self::TooManyResponseHeaders { .. }
                | Self::MalformedResponse { .. }
                | Self::UnexpectedStatus { .. }
                | Self::ResponseNotWebSocketUpgrade { .. }
                | Self::ResponseMissingConnectionUpgrade { .. }
                | Self::AcceptMismatch { .. }
                | Self::UnrequestedProtocol { .. }
                | Self::UnofferedExtension { .. }
                | Self::InvalidDeflateResponse { .. }
        )
    }

    /// The headers the HTTP answer for this error must carry besides the usual ones:
    /// `Allow: GET` for 405, `Sec-WebSocket-Version: 13` for 426.
    pub fn response_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::MethodNotAllowed { .. } => &[("Allow", "GET")],
            Self::UnsupportedVersion { .. } => &[("Sec-WebSocket-Version", "13")],
            _ => &[],
        }
    }

    /// The complete HTTP/1.1 response a server writes before closing the connection when this
    /// error stops a handshake.
    ///
    /// The status is [`HandshakeError::http_status`], or 500 for an error with none (a server
    /// that meets one of its own mistakes while accepting). The message goes in
    /// `X-WebSocket-Reject-Reason`, as WebSocket-Node does; see
    /// [`reject_response`](crate::reject_response) for the rest of the format.
    ///
    /// ```
    /// use wsflow_handshake::HandshakeError;
    ///
    /// let err = HandshakeError::UnsupportedVersion { version: "7".into() };
    /// let response = String::from_utf8(err.to_response()).unwrap();
    /// assert!(response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    /// assert!(response.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    /// ```
    ///
    /// The reason (the error's text, in `X-WebSocket-Reject-Reason`) may quote what the peer
    /// sent; at most [`MAX_ECHOED_REASON`] bytes of it go back (then `...`), so the answer
    /// stays small whatever the request held.
    pub fn to_response(&self) -> Vec<u8> {
        let mut reason = self.to_string();
        if reason.len() > MAX_ECHOED_REASON {
            let mut end = MAX_ECHOED_REASON;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
            reason.push_str("...");
        }
        let headers = crate::reject::rejection_headers(Some(&reason), self.response_headers());
        write_response(self.http_status().unwrap_or(500), &headers)
    }
}

/// The most bytes of an error's text [`HandshakeError::to_response`] sends back (a longer
/// text is cut there and ends in `...`).
pub const MAX_ECHOED_REASON: usize = 512;

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeadTooLarge { limit } => write!(
                f,
                "the request head is larger than the {limit}-byte limit \
                 (raise it with RequestLimits::max_head_size)"
            ),
            Self::TooManyHeaders { limit } => write!(
                f,
                "the request has more than {limit} headers \
                 (raise the limit with RequestLimits::max_headers)"
            ),
            Self::MalformedRequest { reason } => {
                write!(f, "the request is not a valid HTTP/1.1 request: {reason}")
            }
            Self::MethodNotAllowed { method } => write!(
                f,
                "the request method is {method:?}; a WebSocket upgrade must use GET"
            ),
            Self::UnsupportedHttpVersion { version } => write!(
                f,
                "the request uses {version}; a WebSocket upgrade needs HTTP/1.1"
            ),
            Self::InvalidRequestTarget { target } => write!(
                f,
                "the request target {target:?} is not a path such as /chat?room=1"
            ),
            Self::MissingHost => f.write_str("the request has no Host header; HTTP/1.1 requires one"),
            Self::DuplicateHeader { name } => {
                write!(f, "the request has more than one {name} header; send it once")
            }
            Self::NotWebSocketUpgrade { upgrade } => match upgrade {
                Some(value) => write!(
                    f,
                    "the Upgrade header is {value:?}; a WebSocket request needs Upgrade: websocket"
                ),
                None => f.write_str(
                    "the request has no Upgrade header; a WebSocket request needs Upgrade: websocket",
                ),
            },
            Self::MissingConnectionUpgrade { connection } => match connection {
                Some(value) => write!(
                    f,
                    "the Connection header is {value:?}; a WebSocket request needs the token \
                     upgrade in it"
                ),
                None => f.write_str(
                    "the request has no Connection header; a WebSocket request needs \
                     Connection: Upgrade",
                ),
            },
            Self::MissingKey => f.write_str(
                "the request has no Sec-WebSocket-Key header; send 16 random bytes in base64",
            ),
            Self::InvalidKey { key } => write!(
                f,
                "the Sec-WebSocket-Key {key:?} is not 16 bytes encoded in base64 (24 characters)"
            ),
            Self::MissingVersion => f.write_str(
                "the request has no Sec-WebSocket-Version header; send Sec-WebSocket-Version: 13",
            ),
            Self::InvalidVersion { version } => write!(
                f,
                "the Sec-WebSocket-Version {version:?} is not a number; send 13"
            ),
            Self::UnsupportedVersion { version } => write!(
                f,
                "WebSocket version {version} is not supported; retry with version 13 (or 8)"
            ),
            Self::InvalidExtensions { value, reason } => write!(
                f,
                "the Sec-WebSocket-Extensions value {value:?} is malformed: {reason}"
            ),
            Self::InvalidDeflateOffer { offer, reason } => write!(
                f,
                "the permessage-deflate offer {offer:?} is invalid ({reason}); a server declines it"
            ),
            Self::ProtocolNotRequested {
                protocol,
                requested,
            } => write!(
                f,
                "accept was given the protocol {protocol:?}, which the client did not request \
                 (it requested {requested:?}); pass one of those, or None"
            ),
            Self::ExtensionNotOffered { name } => write!(
                f,
                "AcceptOptions::extensions names {name:?}, which the client did not offer; \
                 answer only with extensions from UpgradeRequest::requested_extensions"
            ),
            Self::ReservedHeader { name, use_instead } => write!(
                f,
                "the header {name:?} is set by the handshake itself and cannot be added as an \
                 extra header; {use_instead}"
            ),
            Self::InvalidHeaderName { name } => write!(
                f,
                "the header name {name:?} is not an HTTP token (letters, digits and \
                 !#$%&'*+-.^_`|~ only)"
            ),
            Self::InvalidHeaderValue { name, reason } => {
                write!(f, "the value of the {name} header is invalid: {reason}")
            }
            Self::InvalidCookie { name, reason } => {
                write!(f, "the cookie {name:?} breaks RFC 6265: {reason}")
            }
            Self::InvalidProtocol { protocol, reason } => {
                write!(f, "the subprotocol {protocol:?} cannot be requested: {reason}")
            }
            Self::UnsupportedClientVersion { version } => write!(
                f,
                "WebSocket version {version} is not supported; use ClientOptions::version(13) \
                 or version(8)"
            ),
            Self::InvalidUrl(err) => write!(f, "invalid WebSocket URL: {err}"),
            Self::ResponseHeadTooLarge { limit } => write!(
                f,
                "the server's response head is larger than the {limit}-byte limit \
                 (raise it with ClientOptions::max_response_head_size)"
            ),
            Self::TooManyResponseHeaders { limit } => write!(
                f,
                "the server's response has more than {limit} headers \
                 (raise the limit with ClientOptions::max_response_headers)"
            ),
            Self::MalformedResponse { reason } => {
                write!(f, "the server's response is not a valid upgrade response: {reason}")
            }
            Self::UnexpectedStatus { status, reason, .. } => write!(
                f,
                "the server answered {status} {reason} instead of 101 Switching Protocols \
                 (the error carries its headers and the start of its body)"
            ),
            Self::ResponseNotWebSocketUpgrade { upgrade } => match upgrade {
                Some(value) => write!(
                    f,
                    "the server's Upgrade header is {value:?} instead of websocket"
                ),
                None => f.write_str("the server's 101 response has no Upgrade: websocket header"),
            },
            Self::ResponseMissingConnectionUpgrade { connection } => match connection {
                Some(value) => write!(
                    f,
                    "the server's Connection header is {value:?}; it must contain upgrade"
                ),
                None => f.write_str("the server's 101 response has no Connection: Upgrade header"),
            },
            Self::AcceptMismatch { expected, received } => match received {
                Some(value) => write!(
                    f,
                    "the server's Sec-WebSocket-Accept is {value:?} but the key sent requires \
                     {expected:?}; the server (or a proxy) does not speak RFC 6455"
                ),
                None => f.write_str(
                    "the server's 101 response has no Sec-WebSocket-Accept header; the server \
                     (or a proxy) does not speak RFC 6455",
                ),
            },
            Self::UnrequestedProtocol { protocol } => write!(
                f,
                "the server selected the subprotocol {protocol:?}, which was not requested \
                 (request it with ClientOptions::protocols)"
            ),
            Self::UnofferedExtension { name } => write!(
                f,
                "the server enabled the extension {name:?}, which was not offered \
                 (offer it with ClientOptions::extensions)"
            ),
            Self::InvalidDeflateResponse { response, reason } => write!(
                f,
                "the server's permessage-deflate answer {response:?} is invalid: {reason} \
                 (RFC 7692); connect without compression if the server cannot negotiate it"
            ),
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidUrl(err) => Some(err),
            _ => None,
        }
    }
}

impl From<UrlError> for HandshakeError {
    fn from(err: UrlError) -> Self {
        Self::InvalidUrl(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_quotes_at_most_512_bytes_of_what_the_peer_sent() {
        // 15,000 bytes that are not UTF-8 become three-byte replacement characters: 45,000
        // bytes of text, which the answer must not echo.
        let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: ".to_vec();
        head.extend(std::iter::repeat_n(0x80u8, 15_000));
        head.extend_from_slice(b"\r\nConnection: Upgrade\r\n\r\n");
        let limits = crate::RequestLimits::default();
        let err = crate::parse_request(&head, &limits).unwrap_err();
        assert!(matches!(err, HandshakeError::NotWebSocketUpgrade { .. }));
        assert!(err.to_string().len() > 40_000);
        let answer = err.to_response();
        assert!(
            answer.len() < MAX_ECHOED_REASON + 256,
            "{} bytes",
            answer.len()
        );
        let text = String::from_utf8(answer).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("...\r\n"), "{text}");
    }

    #[test]
    fn statuses_follow_the_documented_mapping() {
        assert_eq!(
            HandshakeError::TooManyHeaders { limit: 1 }.http_status(),
            Some(431)
        );
        assert_eq!(
            HandshakeError::MethodNotAllowed {
                method: "POST".into()
            }
            .http_status(),
            Some(405)
        );
        assert_eq!(HandshakeError::MissingKey.http_status(), Some(400));
        assert_eq!(
            HandshakeError::InvalidExtensions {
                value: ";".into(),
                reason: "x"
            }
            .http_status(),
            Some(400)
        );
        let caller = HandshakeError::ProtocolNotRequested {
            protocol: "chat".into(),
            requested: vec![],
        };
        assert_eq!(caller.http_status(), None);
        assert!(!caller.is_response_error());
        let response = HandshakeError::AcceptMismatch {
            expected: "a".into(),
            received: None,
        };
        assert_eq!(response.http_status(), None);
        assert!(response.is_response_error());
    }

    #[test]
    fn method_not_allowed_answers_with_allow_get() {
        let err = HandshakeError::MethodNotAllowed {
            method: "POST".into(),
        };
        let text = String::from_utf8(err.to_response()).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nAllow: GET\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }

    #[test]
    fn caller_mistakes_answer_500() {
        let err = HandshakeError::ExtensionNotOffered { name: "x".into() };
        assert!(
            err.to_response()
                .starts_with(b"HTTP/1.1 500 Internal Server Error\r\n")
        );
    }

    #[test]
    fn the_reason_header_carries_no_line_break_from_the_peer() {
        let err = HandshakeError::NotWebSocketUpgrade {
            upgrade: Some("h2c\r\nX-Evil: 1".into()),
        };
        let text = String::from_utf8(err.to_response()).unwrap();
        assert!(!text.contains("\r\nX-Evil"), "{text}");
        assert_eq!(text.matches("\r\n").count(), 5, "{text}");
    }

    #[test]
    fn limits_name_their_setter() {
        let text = HandshakeError::HeadTooLarge { limit: 16384 }.to_string();
        assert!(text.contains("16384") && text.contains("RequestLimits::max_head_size"));
        let text = HandshakeError::ResponseHeadTooLarge { limit: 99 }.to_string();
        assert!(text.contains("99") && text.contains("ClientOptions::max_response_head_size"));
    }
}
