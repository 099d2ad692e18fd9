//! The WebSocket opening handshake of wsflow (RFC 6455 section 4): the HTTP/1.1 upgrade, for
//! servers and clients, usable on its own.
//!
//! Sans-IO: no sockets, no runtime, no clock, no `std::io`. Bytes that arrived go in; the bytes
//! to write come out. The parsers are incremental: call them with the whole read buffer after
//! each read; they answer [`Parsed::Incomplete`] until the head is complete, then say how long
//! the head was, and the bytes after it are the first WebSocket frames, which the caller hands
//! to the connection (they are never consumed here). Limits on the head are always on. The
//! `_resumed` variants ([`parse_request_resumed`], [`ClientHandshake::parse_response_resumed`])
//! take a [`HeadProgress`] kept between reads, so a head trickled in many small reads is
//! searched once in all rather than once per read; the wsflow servers and clients use them.
//!
//! **Server:** [`parse_request`] gives an [`UpgradeRequest`] (path, origin, protocols,
//! extensions, cookies...) or a [`HandshakeError`] that knows its HTTP answer
//! ([`HandshakeError::to_response`]). The application then calls [`UpgradeRequest::accept`]
//! with [`AcceptOptions`] for the `101` bytes, or [`reject_response`] for a refusal.
//!
//! ```
//! use wsflow_handshake::{AcceptOptions, Parsed, RequestLimits, parse_request, reject_response};
//!
//! let limits = RequestLimits::default();
//! let mut read_buffer = Vec::new();
//! # let arriving: [&[u8]; 2] = [b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n",
//! #     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"];
//! for bytes in arriving {
//!     read_buffer.extend_from_slice(bytes); // what the socket delivered
//!     let to_write = match parse_request(&read_buffer, &limits) {
//!         Ok(Parsed::Incomplete) => continue,
//!         Ok(Parsed::Complete { value: request, consumed }) => {
//!             read_buffer.drain(..consumed); // what is left is WebSocket frames
//!             if request.path() == "/chat" {
//!                 request.accept(&AcceptOptions::new()).unwrap_or_else(|err| err.to_response())
//!             } else {
//!                 reject_response(404, Some("no such endpoint"), &[])
//!             }
//!         }
//!         Err(err) => err.to_response(), // write it, then close
//!     };
//!     assert!(to_write.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! }
//! ```
//!
//! **Client:** [`WsUrl::parse`] reads the URL, [`ClientHandshake::new`] writes the request with
//! [`ClientOptions`], and [`ClientHandshake::parse_response`] checks the answer and gives a
//! [`ServerResponse`] (selected protocol, agreed extensions).
//!
//! ```
//! use wsflow_handshake::{ClientHandshake, ClientOptions, HandshakeError, WsUrl};
//!
//! let url = WsUrl::parse("wss://example.com/chat").unwrap();
//! let (handshake, request) = ClientHandshake::new(&url, &ClientOptions::new()).unwrap();
//! // Write `request` to a TLS connection to url.host():url.port(), then read:
//! let answer = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\r\n";
//! match handshake.parse_response(answer) {
//!     Err(HandshakeError::UnexpectedStatus { status: 401, headers, .. }) => {
//!         assert_eq!(headers[0].0, "WWW-Authenticate");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # drop(request);
//! ```
//!
//! **permessage-deflate** (RFC 7692): [`negotiate_deflate`] chooses a server's answer to the
//! client's offers, [`check_deflate_response`] checks it on the client, both with
//! [`DeflateParams`]; the compression itself is `wsflow-core`'s.
//!
//! With the `http` feature, `UpgradeRequest::from_http`, `UpgradeRequest::accept_http`,
//! `reject_http` and `HandshakeError::to_http_response` work with `http::Request` and
//! `http::Response<()>` instead of bytes.
//!
//! # From WebSocket-Node
//!
//! | WebSocket-Node | wsflow-handshake |
//! | --- | --- |
//! | `WebSocketRequest` | [`UpgradeRequest`], from [`parse_request`] |
//! | `request.resource`, `resourceURL` | [`UpgradeRequest::resource`], [`path`](UpgradeRequest::path), [`query`](UpgradeRequest::query), [`query_pairs`](UpgradeRequest::query_pairs) |
//! | `request.host`, `origin`, `webSocketVersion` | [`host`](UpgradeRequest::host), [`origin`](UpgradeRequest::origin), [`version`](UpgradeRequest::version) |
//! | `request.requestedProtocols` | [`requested_protocols`](UpgradeRequest::requested_protocols) (lower case), [`requested_protocols_as_sent`](UpgradeRequest::requested_protocols_as_sent) |
//! | `request.requestedExtensions` | [`requested_extensions`](UpgradeRequest::requested_extensions), for permessage-deflate [`negotiate_deflate`] |
//! | `request.cookies` | [`cookies`](UpgradeRequest::cookies) |
//! | `request.remoteAddresses` (X-Forwarded-For part) | [`x_forwarded_for`](UpgradeRequest::x_forwarded_for) |
//! | `request.httpRequest.headers` | [`headers`](UpgradeRequest::headers), [`header`](UpgradeRequest::header) |
//! | `request.accept(protocol, origin, cookies)` | [`UpgradeRequest::accept`] with [`AcceptOptions`] and [`SetCookie`] |
//! | `request.reject(status, reason, extraHeaders)` | [`reject_response`] (default status [`DEFAULT_REJECT_STATUS`]) |
//! | handshake errors answered 400/426 | [`HandshakeError::http_status`], [`HandshakeError::to_response`] |
//! | `WebSocketClient.connect(url, protocols, origin, headers)` | [`WsUrl::parse`], [`ClientOptions`], [`ClientHandshake::new`] |
//! | `connectFailed`, `httpResponse` | [`ClientHandshake::parse_response`] errors, [`HandshakeError::UnexpectedStatus`] |
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod accept;
mod client;
mod cookie;
mod date;
mod deflate;
mod error;
mod extension;
mod header;
#[cfg(feature = "http")]
mod http_compat;
mod parsed;
mod percent;
mod reject;
mod request;
mod url;

pub use accept::{AcceptOptions, accept_key};
pub use client::{ClientHandshake, ClientOptions, ServerResponse};
pub use cookie::SetCookie;
pub use deflate::{DeflateParams, PERMESSAGE_DEFLATE, check_deflate_response, negotiate_deflate};
pub use error::{HandshakeError, MAX_ECHOED_REASON, UrlError};
pub use extension::{ExtensionOffer, format_extensions, parse_extensions};
#[cfg(feature = "http")]
pub use http_compat::reject_http;
pub use parsed::{HeadProgress, Parsed};
pub use reject::{DEFAULT_REJECT_STATUS, reject_response};
pub use request::{RequestLimits, UpgradeRequest, parse_request, parse_request_resumed};
pub use url::WsUrl;
