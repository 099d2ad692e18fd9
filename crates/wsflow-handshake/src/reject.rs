//! Refusing an upgrade: the HTTP answer a server writes before closing the connection, as
//! WebSocket-Node's `WebSocketRequest.reject(status, reason, extraHeaders)` builds it.
//!
//! A rejection never fails: what the application passes is sanitised rather than refused,
//! since by then the only alternative would be closing without an answer.

use crate::header::{self, Headers, write_response};

/// The status WebSocket-Node rejects with when none is given: 403 Forbidden.
pub const DEFAULT_REJECT_STATUS: u16 = 403;

/// Builds the complete HTTP/1.1 response that refuses an upgrade.
///
/// - The status line uses the standard reason phrase. A status outside 200-599 (a `101` would
///   tell the client the upgrade succeeded) is replaced by 500.
/// - `Connection: close` and `Content-Length: 0` follow: there is no body, and the caller
///   closes the connection after writing the response.
/// - `reason`, if any, goes in `X-WebSocket-Reject-Reason` with CR, LF and other control
///   characters removed.
/// - Extra headers have the same characters removed from their values; a header whose name
///   is not an HTTP token (even after removing CR and LF), or that would repeat
///   `Connection` or `Content-Length`, is dropped.
///
/// ```
/// use wsflow_handshake::reject_response;
///
/// let response = reject_response(401, Some("log in\r\nfirst"), &[("WWW-Authenticate", "Bearer")]);
/// assert_eq!(
///     response,
///     b"HTTP/1.1 401 Unauthorized\r\n\
///       Connection: close\r\n\
///       Content-Length: 0\r\n\
///       X-WebSocket-Reject-Reason: log infirst\r\n\
///       WWW-Authenticate: Bearer\r\n\r\n"
/// );
/// ```
pub fn reject_response(
    status: u16,
    reason: Option<&str>,
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    write_response(
        reject_status(status),
        &rejection_headers(reason, extra_headers),
    )
}

/// The status actually sent for a requested rejection status.
pub(crate) fn reject_status(status: u16) -> u16 {
    if (200..=599).contains(&status) {
        status
    } else {
        500
    }
}

/// The headers of a rejection, sanitised.
pub(crate) fn rejection_headers(reason: Option<&str>, extra_headers: &[(&str, &str)]) -> Headers {
    let mut headers: Headers = vec![
        ("Connection".into(), "close".into()),
        ("Content-Length".into(), "0".into()),
    ];
    if let Some(reason) = reason {
        headers.push((
            "X-WebSocket-Reject-Reason".into(),
            header::sanitize_value(reason),
        ));
    }
    for (name, value) in extra_headers {
        let name = name.replace(['\r', '\n'], "");
        if !header::is_token(&name)
            || name.eq_ignore_ascii_case("Connection")
            || name.eq_ignore_ascii_case("Content-Length")
        {
            continue;
        }
        headers.push((name, header::sanitize_value(value)));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(response: Vec<u8>) -> String {
        String::from_utf8(response).unwrap()
    }

    #[test]
    fn default_status_is_forbidden() {
        assert_eq!(
            text(reject_response(DEFAULT_REJECT_STATUS, None, &[])),
            "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn statuses_that_would_confuse_the_client_become_500() {
        for status in [0, 99, 101, 199, 600, 999, u16::MAX] {
            assert!(text(reject_response(status, None, &[])).starts_with("HTTP/1.1 500 "));
        }
        assert!(
            text(reject_response(302, None, &[("Location", "/elsewhere")]))
                .starts_with("HTTP/1.1 302 Found\r\n")
        );
        assert!(text(reject_response(599, None, &[])).starts_with("HTTP/1.1 599 \r\n"));
    }

    #[test]
    fn headers_are_sanitised() {
        let response = text(reject_response(
            404,
            Some("no\r\nX-Evil: 1"),
            &[
                ("X-Ok", "v\r\nX-Evil: 2"),
                ("X-\r\nJoined", "kept"),
                ("Bad Name", "dropped"),
                ("", "dropped"),
                ("connection", "keep-alive"),
                ("Content-Length", "10"),
            ],
        ));
        assert_eq!(
            response,
            "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\
             X-WebSocket-Reject-Reason: noX-Evil: 1\r\nX-Ok: vX-Evil: 2\r\nX-Joined: kept\r\n\r\n"
        );
    }
}
