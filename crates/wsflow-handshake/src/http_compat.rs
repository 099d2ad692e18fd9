//! Conversions with the `http` crate's types (feature `http`), for servers built on hyper or
//! axum that already parsed the request: the same checks and the same answers as the byte
//! API, from an `http::Request` to an `http::Response<()>`.
//!
//! The WebSocket over HTTP/2 of RFC 8441 (extended `CONNECT`) is not covered: these requests
//! must be HTTP/1.1 `GET`s, as with the byte parser.

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};

use crate::accept::AcceptOptions;
use crate::error::HandshakeError;
use crate::header::Headers;
use crate::reject::{reject_status, rejection_headers};
use crate::request::UpgradeRequest;

impl UpgradeRequest {
    /// Validates an upgrade request that an HTTP server already parsed, with the same rules
    /// and errors as [`parse_request`](crate::parse_request).
    ///
    /// The resource is the URI's path and query (`/` when it has none); the host is the `Host`
    /// header, or the URI's authority when the header is absent. [`UpgradeRequest::headers`]
    /// follows the `HeaderMap`'s iteration order (grouped by name) with lower-case names.
    ///
    /// ```
    /// use wsflow_handshake::{AcceptOptions, UpgradeRequest};
    ///
    /// let request = http::Request::get("/chat?room=1")
    ///     .header("Host", "example.com")
    ///     .header("Upgrade", "websocket")
    ///     .header("Connection", "Upgrade")
    ///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    ///     .header("Sec-WebSocket-Version", "13")
    ///     .body(())
    ///     .unwrap();
    /// let upgrade = UpgradeRequest::from_http(&request).unwrap();
    /// assert_eq!(upgrade.resource(), "/chat?room=1");
    ///
    /// let response = upgrade.accept_http(&AcceptOptions::new()).unwrap();
    /// assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    /// assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /// ```
    pub fn from_http<B>(request: &Request<B>) -> Result<Self, HandshakeError> {
        let mut headers: Headers = request
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                (
                    name.as_str().to_owned(),
                    crate::header::trim_ows(&value).to_owned(),
                )
            })
            .collect();
        if let (0, Some(authority)) = (
            crate::header::count(&headers, "host"),
            request.uri().authority(),
        ) {
            headers.push(("host".into(), authority.as_str().to_owned()));
        }
        let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let target = if target.starts_with('/') { target } else { "/" };
        let version = format!("{:?}", request.version());
        Self::from_parts(request.method().as_str(), &version, target, headers)
    }

    /// [`UpgradeRequest::accept`] as an `http::Response<()>` with status 101; the same checks
    /// apply. Turn it into the server's response type with `response.map(|()| body)`.
    pub fn accept_http(&self, options: &AcceptOptions) -> Result<Response<()>, HandshakeError> {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        for (name, value) in self.accept_headers(options)? {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HandshakeError::InvalidHeaderName { name: name.clone() })?;
            let header_value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
                HandshakeError::InvalidHeaderValue {
                    name,
                    reason: "it contains CR, LF or another control character",
                }
            })?;
            response.headers_mut().append(header_name, header_value);
        }
        Ok(response)
    }
}

/// [`reject_response`](crate::reject_response) as an `http::Response<()>`, sanitised the same
/// way (with an empty body).
///
/// ```
/// let response = wsflow_handshake::reject_http(404, Some("no such room"), &[]);
/// assert_eq!(response.status(), http::StatusCode::NOT_FOUND);
/// assert_eq!(response.headers()["x-websocket-reject-reason"], "no such room");
/// ```
pub fn reject_http(
    status: u16,
    reason: Option<&str>,
    extra_headers: &[(&str, &str)],
) -> Response<()> {
    http_response(
        reject_status(status),
        &rejection_headers(reason, extra_headers),
    )
}

impl HandshakeError {
    /// [`HandshakeError::to_response`] as an `http::Response<()>`.
    ///
    /// ```
    /// use wsflow_handshake::HandshakeError;
    ///
    /// let response = HandshakeError::UnsupportedVersion { version: "7".into() }.to_http_response();
    /// assert_eq!(response.status(), http::StatusCode::UPGRADE_REQUIRED);
    /// assert_eq!(response.headers()["sec-websocket-version"], "13");
    /// ```
    pub fn to_http_response(&self) -> Response<()> {
        let headers = rejection_headers(Some(&self.to_string()), self.response_headers());
        http_response(self.http_status().unwrap_or(500), &headers)
    }
}

/// A response from sanitised headers; a header the `http` crate still refuses is left out
/// rather than failing a rejection.
fn http_response(status: u16, headers: &[(String, String)]) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> http::request::Builder {
        Request::get("/chat")
            .header("Host", "example.com")
            .header("Upgrade", "websocket")
            .header("Connection", "keep-alive, Upgrade")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Version", "13")
    }

    #[test]
    fn same_validation_as_the_byte_parser() {
        let ok = UpgradeRequest::from_http(&valid().body(()).unwrap()).unwrap();
        assert_eq!(
            (ok.resource(), ok.host(), ok.version()),
            ("/chat", "example.com", 13)
        );

        let post = valid().method("POST").body(()).unwrap();
        assert_eq!(
            UpgradeRequest::from_http(&post).unwrap_err().http_status(),
            Some(405)
        );

        let http10 = valid().version(http::Version::HTTP_10).body(()).unwrap();
        assert_eq!(
            UpgradeRequest::from_http(&http10).unwrap_err(),
            HandshakeError::UnsupportedHttpVersion {
                version: "HTTP/1.0".into()
            }
        );
        let v7 = valid()
            .header("Sec-WebSocket-Version", "7")
            .body(())
            .unwrap();
        assert!(matches!(
            UpgradeRequest::from_http(&v7).unwrap_err(),
            HandshakeError::DuplicateHeader { .. }
        ));
        let mut v7 = valid().body(()).unwrap();
        v7.headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("7"));
        assert_eq!(
            UpgradeRequest::from_http(&v7).unwrap_err().http_status(),
            Some(426)
        );
    }

    #[test]
    fn host_falls_back_to_the_authority() {
        let request = Request::get("ws://example.org:9000/x?y")
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Version", "13")
            .body(())
            .unwrap();
        let upgrade = UpgradeRequest::from_http(&request).unwrap();
        assert_eq!(
            (upgrade.host(), upgrade.resource()),
            ("example.org:9000", "/x?y")
        );
    }

    #[test]
    fn accept_http_has_the_same_headers() {
        let request = valid()
            .header("Sec-WebSocket-Protocol", "Chat")
            .body(())
            .unwrap();
        let upgrade = UpgradeRequest::from_http(&request).unwrap();
        let response = upgrade
            .accept_http(
                &AcceptOptions::new()
                    .protocol(Some("chat"))
                    .header("X-A", "b"),
            )
            .unwrap();
        assert_eq!(response.headers()["upgrade"], "websocket");
        assert_eq!(response.headers()["connection"], "Upgrade");
        assert_eq!(response.headers()["sec-websocket-protocol"], "Chat");
        assert_eq!(response.headers()["x-a"], "b");
        assert!(
            upgrade
                .accept_http(&AcceptOptions::new().protocol(Some("x")))
                .is_err()
        );
    }

    #[test]
    fn rejections() {
        let response = reject_http(101, Some("a\r\nb"), &[("Bad Name", "x"), ("X-Ok", "1\n")]);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()["x-websocket-reject-reason"], "ab");
        assert_eq!(response.headers()["x-ok"], "1");
        assert_eq!(response.headers()["connection"], "close");
        assert_eq!(response.headers().len(), 4);
        let response = HandshakeError::MethodNotAllowed {
            method: "PUT".into(),
        }
        .to_http_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "GET");
    }
}
