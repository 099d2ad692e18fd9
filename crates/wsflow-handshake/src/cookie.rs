//! Cookies: reading the `Cookie` header of an upgrade request, and writing `Set-Cookie`
//! headers into the `101` answer, validated against RFC 6265 section 4.1 so that a cookie
//! value can never break the response.

use std::time::{Duration, SystemTime};

use crate::date::imf_fixdate;
use crate::error::HandshakeError;
use crate::header::is_token;
use crate::percent;

/// Parses one `Cookie` header value into `(name, value)` pairs, appended to `out`.
///
/// As WebSocket-Node does: pairs are separated by `;` (or `,`), names and values are trimmed,
/// a value wrapped in double quotes loses them, and values are percent-decoded. A pair without
/// `=` gives its text as the name and an empty value.
pub(crate) fn parse_cookie_header(value: &str, out: &mut Vec<(String, String)>) {
    for pair in value.split([';', ',']) {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        out.push((name.trim().to_owned(), percent::decode(value, false)));
    }
}

/// A cookie to set with the `101` answer, written as a `Set-Cookie` header.
///
/// Built with setters, checked when the answer is built
/// ([`UpgradeRequest::accept`](crate::UpgradeRequest::accept) or
/// [`SetCookie::to_header_value`]): the name must be a token, the value cookie-octets
/// (optionally in double quotes), and the path and domain free of `;` and control characters.
/// The expiry is a [`SystemTime`] written as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`);
/// `Max-Age` is whole seconds, at least one.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use wsflow_handshake::SetCookie;
///
/// let cookie = SetCookie::new("session", "abc123")
///     .path("/chat")
///     .domain("Example.com")
///     .expires(UNIX_EPOCH + Duration::from_secs(784_111_777))
///     .max_age(Duration::from_secs(3600))
///     .secure(true)
///     .http_only(true);
/// assert_eq!(
///     cookie.to_header_value().unwrap(),
///     "session=abc123; Path=/chat; Domain=example.com; \
///      Expires=Sun, 06 Nov 1994 08:49:37 GMT; Max-Age=3600; Secure; HttpOnly"
/// );
///
/// // A value that would break the header is refused, not sent.
/// assert!(SetCookie::new("a", "x;y").to_header_value().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    name: String,
    value: String,
    path: Option<String>,
    domain: Option<String>,
    expires: Option<SystemTime>,
    max_age: Option<Duration>,
    secure: bool,
    http_only: bool,
}

impl SetCookie {
    /// A cookie with a name and a value, and no attributes.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            path: None,
            domain: None,
            expires: None,
            max_age: None,
            secure: false,
            http_only: false,
        }
    }

    /// The `Path` attribute.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The `Domain` attribute (written in lower case, as WebSocket-Node does).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The `Expires` attribute, written as an IMF-fixdate to the second. Times before 1970 are
    /// written as 1970-01-01, which a browser takes as "delete now".
    pub fn expires(mut self, at: SystemTime) -> Self {
        self.expires = Some(at);
        self
    }

    /// The `Max-Age` attribute, in whole seconds (fractions are dropped); RFC 6265 requires at
    /// least one second.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// The `Secure` attribute (send the cookie over TLS only).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The `HttpOnly` attribute (hide the cookie from scripts).
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie's value as given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The `Set-Cookie` header value, or the RFC 6265 rule the cookie breaks.
    pub fn to_header_value(&self) -> Result<String, HandshakeError> {
        let fail = |reason| HandshakeError::InvalidCookie {
            name: self.name.clone(),
            reason,
        };
        if !is_token(&self.name) {
            return Err(fail(
                "the name must be a non-empty token (letters, digits and !#$%&'*+-.^_`|~)",
            ));
        }
        let bare = self
            .value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(&self.value);
        if !bare.bytes().all(is_cookie_octet) {
            return Err(fail(
                "the value may only hold printable ASCII other than space, '\"', ',', ';' and \
                 '\\' (percent-encode anything else)",
            ));
        }
        let mut out = format!("{}={}", self.name, self.value);
        if let Some(path) = &self.path {
            if !path.bytes().all(is_attribute_char) {
                return Err(fail(
                    "the path may not contain ';', control or non-ASCII characters",
                ));
            }
            out.push_str("; Path=");
            out.push_str(path);
        }
        if let Some(domain) = &self.domain {
            if !domain.bytes().all(is_attribute_char) {
                return Err(fail(
                    "the domain may not contain ';', control or non-ASCII characters",
                ));
            }
            out.push_str("; Domain=");
            out.push_str(&domain.to_ascii_lowercase());
        }
        if let Some(expires) = self.expires {
            out.push_str("; Expires=");
            out.push_str(&imf_fixdate(expires));
        }
        if let Some(age) = self.max_age {
            if age.as_secs() == 0 {
                return Err(fail(
                    "Max-Age must be at least one second; to delete a cookie, set expires to a \
                     time in the past",
                ));
            }
            out.push_str(&format!("; Max-Age={}", age.as_secs()));
        }
        if self.secure {
            out.push_str("; Secure");
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        Ok(out)
    }
}

/// `cookie-octet` of RFC 6265 section 4.1.1.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// `<any CHAR except CTLs or ";">` of the path and extension attributes.
fn is_attribute_char(b: u8) -> bool {
    (0x20..0x7F).contains(&b) && b != b';'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        parse_cookie_header(value, &mut out);
        out
    }

    fn pair(n: &str, v: &str) -> (String, String) {
        (n.to_owned(), v.to_owned())
    }

    #[test]
    fn parses_request_cookies_like_websocket_node() {
        assert_eq!(
            parse(r#"a=1; b="two%20words" ;c = 3,d=%E2%9C%93;flag"#),
            [
                pair("a", "1"),
                pair("b", "two words"),
                pair("c", "3"),
                pair("d", "\u{2713}"),
                pair("flag", "")
            ]
        );
        assert_eq!(parse(""), []);
        assert_eq!(parse("; ;"), []);
        assert_eq!(parse("x=a=b"), [pair("x", "a=b")]);
        assert_eq!(parse("x=\""), [pair("x", "\"")]);
    }

    #[test]
    fn minimal_cookie() {
        assert_eq!(SetCookie::new("a", "").to_header_value().unwrap(), "a=");
        assert_eq!(
            SetCookie::new("a", "\"quoted\"").to_header_value().unwrap(),
            "a=\"quoted\""
        );
    }

    #[test]
    fn invalid_cookies_are_refused() {
        let bad = [
            SetCookie::new("", "v"),
            SetCookie::new("a b", "v"),
            SetCookie::new("a=b", "v"),
            SetCookie::new("a", "with space"),
            SetCookie::new("a", "semi;colon"),
            SetCookie::new("a", "comma,"),
            SetCookie::new("a", "back\\slash"),
            SetCookie::new("a", "\"unbalanced"),
            SetCookie::new("a", "caf\u{e9}"),
            SetCookie::new("a", "crlf\r\nX-Evil: 1"),
            SetCookie::new("a", "v").path("/a;b"),
            SetCookie::new("a", "v").path("/a\r\n"),
            SetCookie::new("a", "v").domain("example.com\n"),
            SetCookie::new("a", "v").max_age(Duration::from_millis(999)),
        ];
        for cookie in bad {
            assert!(
                matches!(
                    cookie.to_header_value(),
                    Err(HandshakeError::InvalidCookie { .. })
                ),
                "{cookie:?} was accepted"
            );
        }
    }

    #[test]
    fn max_age_drops_fractions() {
        let value = SetCookie::new("a", "b")
            .max_age(Duration::from_millis(1500))
            .to_header_value()
            .unwrap();
        assert_eq!(value, "a=b; Max-Age=1");
    }
}
