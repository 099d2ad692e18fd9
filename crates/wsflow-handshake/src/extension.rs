//! `Sec-WebSocket-Extensions` values (RFC 6455 section 9.1): parsing what a peer sent, and
//! writing what we offer or agree to.
//!
//! ```text
//! extension-list  = 1#extension
//! extension       = extension-token *( ";" extension-param )
//! extension-param = token [ "=" (token | quoted-string) ]
//! ```
//!
//! The handshake only carries extensions; what they mean (permessage-deflate's window bits,
//! for instance) is decided by the extension's own code, which reads the offers from
//! [`UpgradeRequest::requested_extensions`](crate::UpgradeRequest::requested_extensions) and
//! gives its answer to [`AcceptOptions::extensions`](crate::AcceptOptions::extensions).

use std::fmt;

use crate::error::HandshakeError;
use crate::header::{is_tchar, is_token};

/// One extension in a `Sec-WebSocket-Extensions` value, with its parameters in order.
///
/// Offered by a client (several offers of the same extension, in order of preference, are
/// allowed), or agreed to by a server. `Display` writes it back in header syntax, quoting
/// values that are not tokens.
///
/// ```
/// use wsflow_handshake::{ExtensionOffer, parse_extensions};
///
/// let offers = parse_extensions(
///     "permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=\"10\"",
/// )
/// .unwrap();
/// assert_eq!(offers.len(), 2);
/// assert_eq!(offers[0].name, "permessage-deflate");
/// assert_eq!(offers[0].param("client_max_window_bits"), Some(None));
/// assert_eq!(offers[1].param("server_max_window_bits"), Some(Some("10")));
///
/// let answer = ExtensionOffer::new("permessage-deflate").with_param("server_no_context_takeover", None);
/// assert_eq!(answer.to_string(), "permessage-deflate; server_no_context_takeover");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionOffer {
    /// The extension's name, such as `permessage-deflate`.
    pub name: String,
    /// The parameters: name and, when given, value (unquoted).
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// An extension with no parameters.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter (`None` for a parameter without a value).
    pub fn with_param(mut self, name: impl Into<String>, value: Option<&str>) -> Self {
        self.params.push((name.into(), value.map(str::to_owned)));
        self
    }

    /// The first parameter called `name` (ASCII case-insensitive): `Some(None)` when it has no
    /// value, `None` when it is absent.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

impl fmt::Display for ExtensionOffer {
    /// Header syntax. Values that are not tokens are written as quoted strings; nothing is
    /// validated here: [`parse_extensions`] is what checks a value before it is sent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (name, value) in &self.params {
            write!(f, "; {name}")?;
            match value {
                Some(v) if is_token(v) => write!(f, "={v}")?,
                Some(v) => {
                    f.write_str("=\"")?;
                    for c in v.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"")?;
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// Parses a `Sec-WebSocket-Extensions` value into its extensions, in order.
///
/// Whitespace around the separators and empty list elements are allowed; a quoted value is
/// returned unescaped. The RFC's rule that a quoted value must still be a token is not
/// enforced, so anything [`format_extensions`] writes parses back. An empty value is an empty
/// list. Several headers concatenate: parse each and append.
///
/// ```
/// use wsflow_handshake::{HandshakeError, parse_extensions};
///
/// let parsed = parse_extensions("foo, bar; baz=2").unwrap();
/// assert_eq!(parsed[0].name, "foo");
/// assert_eq!(parsed[1].params, [("baz".to_string(), Some("2".to_string()))]);
///
/// assert!(matches!(
///     parse_extensions("foo; =1"),
///     Err(HandshakeError::InvalidExtensions { .. })
/// ));
/// ```
pub fn parse_extensions(value: &str) -> Result<Vec<ExtensionOffer>, HandshakeError> {
    let fail = |reason| HandshakeError::InvalidExtensions {
        value: value.to_owned(),
        reason,
    };
    let mut scanner = Scanner {
        bytes: value.as_bytes(),
        pos: 0,
    };
    let mut offers = Vec::new();
    loop {
        scanner.skip_ows();
        match scanner.peek() {
            None => return Ok(offers),
            Some(b',') => {
                scanner.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = scanner
            .token()
            .ok_or_else(|| fail("expected an extension name (a token)"))?;
        let mut offer = ExtensionOffer::new(name);
        loop {
            scanner.skip_ows();
            match scanner.peek() {
                None => break,
                Some(b',') => {
                    scanner.pos += 1;
                    break;
                }
                Some(b';') => {
                    scanner.pos += 1;
                    scanner.skip_ows();
                    let param = scanner
                        .token()
                        .ok_or_else(|| fail("expected a parameter name (a token) after ';'"))?;
                    scanner.skip_ows();
                    let param_value = if scanner.peek() == Some(b'=') {
                        scanner.pos += 1;
                        scanner.skip_ows();
                        let v = if scanner.peek() == Some(b'"') {
                            scanner.quoted_string().ok_or_else(|| {
                                fail("a quoted parameter value is unterminated or has a control character")
                            })?
                        } else {
                            scanner.token().ok_or_else(|| {
                                fail("expected a token or a quoted string after '='")
                            })?
                        };
                        Some(v)
                    } else {
                        None
                    };
                    offer.params.push((param, param_value));
                }
                Some(_) => return Err(fail("expected ';' or ',' after an extension or parameter")),
            }
        }
        offers.push(offer);
    }
}

/// Writes extensions as one header value, separated by `", "`.
///
/// ```
/// use wsflow_handshake::{ExtensionOffer, format_extensions};
///
/// let offers = [
///     ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None),
///     ExtensionOffer::new("permessage-deflate"),
/// ];
/// assert_eq!(
///     format_extensions(&offers),
///     "permessage-deflate; client_max_window_bits, permessage-deflate"
/// );
/// ```
pub fn format_extensions(offers: &[ExtensionOffer]) -> String {
    offers
        .iter()
        .map(ExtensionOffer::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        let token = self.bytes.get(start..self.pos)?;
        // Tokens are ASCII, so this never fails.
        (!token.is_empty())
            .then(|| String::from_utf8(token.to_vec()).ok())
            .flatten()
    }

    /// A quoted string starting at the opening quote, unescaped.
    fn quoted_string(&mut self) -> Option<String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let escaped = self
                        .peek()
                        .filter(|&c| c == b'\t' || !c.is_ascii_control())?;
                    self.pos += 1;
                    out.push(escaped);
                }
                b'\t' => out.push(b),
                _ if b.is_ascii_control() => return None,
                _ => out.push(b),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(name: &str, params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        params
            .iter()
            .fold(ExtensionOffer::new(name), |o, (n, v)| o.with_param(*n, *v))
    }

    #[test]
    fn parses_the_rfc_7692_examples() {
        let parsed = parse_extensions(
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10 ,\t\
             permessage-deflate ;client_max_window_bits",
        )
        .unwrap();
        assert_eq!(
            parsed,
            [
                offer(
                    "permessage-deflate",
                    &[
                        ("client_no_context_takeover", None),
                        ("server_max_window_bits", Some("10"))
                    ]
                ),
                offer("permessage-deflate", &[("client_max_window_bits", None)]),
            ]
        );
    }

    #[test]
    fn quoted_values_are_unescaped() {
        let parsed = parse_extensions(r#"x; a="10"; b = "q\"uote\\d", y"#).unwrap();
        assert_eq!(parsed[0].param("a"), Some(Some("10")));
        assert_eq!(parsed[0].param("B"), Some(Some("q\"uote\\d")));
        assert_eq!(parsed[0].param("c"), None);
        assert_eq!(parsed[1], offer("y", &[]));
    }

    #[test]
    fn empty_values_and_elements() {
        assert_eq!(parse_extensions("").unwrap(), []);
        assert_eq!(parse_extensions(" , ,").unwrap(), []);
        assert_eq!(
            parse_extensions("a,,b").unwrap(),
            [offer("a", &[]), offer("b", &[])]
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            ";",
            "a;",
            "a; =1",
            "a; b=",
            "a; b=\"unterminated",
            "a; b=\"ctl\x01\"",
            "a b",
            "a; b=1 2",
            "a; b=c=d",
            "\"a\"",
            "caf\u{e9}",
        ] {
            assert!(
                matches!(
                    parse_extensions(bad),
                    Err(HandshakeError::InvalidExtensions { .. })
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn display_quotes_values_that_are_not_tokens() {
        let o = offer(
            "x",
            &[
                ("a", Some("1")),
                ("b", None),
                ("c", Some("two words \"q\"")),
            ],
        );
        let text = o.to_string();
        assert_eq!(text, r#"x; a=1; b; c="two words \"q\"""#);
        assert_eq!(parse_extensions(&text).unwrap(), [o]);
    }
}
