//! `ws://` and `wss://` URLs (RFC 6455 section 3): what a client needs to open a connection
//! (host, port, TLS or not) and to write its request (resource, `Host` header).

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::error::UrlError;
use crate::percent;

/// A parsed WebSocket URL.
///
/// The port defaults to 80 for `ws` and 443 for `wss`; the resource (path and query) defaults
/// to `/`. Fragments and user information are refused, as RFC 6455 requires; characters a
/// request target cannot carry (spaces, non-ASCII) are percent-encoded, as browsers do. The
/// host is lower-cased; an IPv6 host is written in brackets and [`WsUrl::host`] returns it
/// without them.
///
/// ```
/// use wsflow_handshake::WsUrl;
///
/// let url = WsUrl::parse("wss://Example.com/chat?room=rust").unwrap();
/// assert!(url.is_secure());
/// assert_eq!((url.host(), url.port()), ("example.com", 443));
/// assert_eq!(url.resource(), "/chat?room=rust");
/// assert_eq!(url.host_header(), "example.com");
///
/// let url = WsUrl::parse("ws://[::1]:9001").unwrap();
/// assert_eq!((url.host(), url.port(), url.resource()), ("::1", 9001, "/"));
/// assert_eq!(url.host_header(), "[::1]:9001");
/// assert_eq!(url.to_string(), "ws://[::1]:9001/");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WsUrl {
    secure: bool,
    host: String,
    ipv6: bool,
    port: u16,
    resource: String,
}

impl WsUrl {
    /// Parses a `ws://` or `wss://` URL (the scheme is case-insensitive).
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(UrlError::MissingScheme)?;
        let secure = if scheme.eq_ignore_ascii_case("ws") {
            false
        } else if scheme.eq_ignore_ascii_case("wss") {
            true
        } else {
            return Err(UrlError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            });
        };
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(UrlError::Userinfo);
        }
        let default_port = if secure { 443 } else { 80 };
        let (host, ipv6, port_text) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| UrlError::InvalidHost {
                    host: authority.to_owned(),
                })?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(UrlError::InvalidHost {
                    host: host.to_owned(),
                });
            }
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| UrlError::InvalidHost {
                            host: authority.to_owned(),
                        })?,
                ),
            };
            (host, true, port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            if host.is_empty() {
                return Err(UrlError::EmptyHost);
            }
            if !host.bytes().all(is_reg_name_char) {
                return Err(UrlError::InvalidHost {
                    host: host.to_owned(),
                });
            }
            (host, false, port)
        };
        let port = match port_text {
            None | Some("") => default_port,
            Some(text) => text
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0 && text.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| UrlError::InvalidPort {
                    port: text.to_owned(),
                })?,
        };
        let resource = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{}", percent::encode_target(t)),
            t => percent::encode_target(t),
        };
        Ok(Self {
            secure,
            host: host.to_ascii_lowercase(),
            ipv6,
            port,
            resource,
        })
    }

    /// Whether the scheme is `wss` (the connection must use TLS).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// `"ws"` or `"wss"`.
    pub fn scheme(&self) -> &'static str {
        if self.secure { "wss" } else { "ws" }
    }

    /// The host to connect to (and to name for TLS): a name, an IPv4 address, or an IPv6
    /// address without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: the one in the URL, or 80 for `ws` and 443 for `wss`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path and query to request, `/` at least.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The `Host` header value: the host (IPv6 in brackets) with `:port` only when the port
    /// is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.ipv6 {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.secure { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for WsUrl {
    /// The URL in normal form: lower-case scheme and host, port only when not the default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme(),
            self.host_header(),
            self.resource
        )
    }
}

impl FromStr for WsUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `unreserved / pct-encoded / sub-delims` of RFC 3986 section 3.2.2.
fn is_reg_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let url = WsUrl::parse("ws://example.com").unwrap();
        assert!(!url.is_secure());
        assert_eq!(url.scheme(), "ws");
        assert_eq!(
            (url.host(), url.port(), url.resource()),
            ("example.com", 80, "/")
        );
        assert_eq!(url.host_header(), "example.com");
        assert_eq!(url.to_string(), "ws://example.com/");
        let url: WsUrl = "WSS://EXAMPLE.com:443?x=1".parse().unwrap();
        assert_eq!((url.port(), url.resource()), (443, "/?x=1"));
        assert_eq!(url.to_string(), "wss://example.com/?x=1");
    }

    #[test]
    fn ports_appear_in_host_only_when_not_default() {
        assert_eq!(
            WsUrl::parse("ws://h:8080/a").unwrap().host_header(),
            "h:8080"
        );
        assert_eq!(WsUrl::parse("ws://h:80/a").unwrap().host_header(), "h");
        assert_eq!(WsUrl::parse("wss://h:80/a").unwrap().host_header(), "h:80");
        assert_eq!(WsUrl::parse("ws://h:/a").unwrap().port(), 80);
        assert_eq!(
            WsUrl::parse("ws://127.0.0.1:9001").unwrap().host_header(),
            "127.0.0.1:9001"
        );
    }

    #[test]
    fn ipv6_hosts() {
        let url = WsUrl::parse("wss://[2001:DB8::1]/x").unwrap();
        assert_eq!((url.host(), url.port()), ("2001:db8::1", 443));
        assert_eq!(url.host_header(), "[2001:db8::1]");
        assert_eq!(
            WsUrl::parse("ws://[::1]:81").unwrap().host_header(),
            "[::1]:81"
        );
        for bad in ["ws://[::1", "ws://[nope]/", "ws://[::1]x/", "ws://::1/"] {
            assert!(WsUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resources_are_encoded() {
        assert_eq!(
            WsUrl::parse("ws://h/a b?q=caf\u{e9}").unwrap().resource(),
            "/a%20b?q=caf%C3%A9"
        );
        assert_eq!(
            WsUrl::parse("ws://h/a/../b?x=%20").unwrap().resource(),
            "/a/../b?x=%20"
        );
    }

    #[test]
    fn refusals_say_why() {
        let cases = [
            ("example.com/chat", UrlError::MissingScheme),
            (
                "http://example.com/",
                UrlError::UnsupportedScheme {
                    scheme: "http".into(),
                },
            ),
            ("wss://user:pw@example.com/", UrlError::Userinfo),
            ("ws://example.com/#x", UrlError::Fragment),
            ("ws://example.com#", UrlError::Fragment),
            ("ws:///chat", UrlError::EmptyHost),
            ("ws://:80/chat", UrlError::EmptyHost),
            ("ws://", UrlError::EmptyHost),
            (
                "ws://exa mple.com/",
                UrlError::InvalidHost {
                    host: "exa mple.com".into(),
                },
            ),
            (
                "ws://h\r\nX: y/",
                UrlError::InvalidHost {
                    host: "h\r\nX".into(),
                },
            ),
            ("ws://h:0/", UrlError::InvalidPort { port: "0".into() }),
            (
                "ws://h:65536/",
                UrlError::InvalidPort {
                    port: "65536".into(),
                },
            ),
            ("ws://h:+80/", UrlError::InvalidPort { port: "+80".into() }),
            ("ws://h:8o/", UrlError::InvalidPort { port: "8o".into() }),
        ];
        for (url, expected) in cases {
            let err = WsUrl::parse(url).unwrap_err();
            assert_eq!(err, expected, "{url}");
            assert!(!err.to_string().is_empty());
        }
    }
}
