//! Percent-encoding (RFC 3986 section 2.1), as far as the handshake needs it: decoding query
//! strings and cookie values, and encoding the characters a request target cannot carry.

/// Decodes `%XX` escapes (and `+` as a space when `plus_as_space`, as in HTML form data).
///
/// Lenient like a browser: a `%` not followed by two hex digits stays as it is, and byte
/// sequences that are not UTF-8 become U+FFFD.
pub(crate) fn decode(s: &str, plus_as_space: bool) -> String {
    if !s.contains(['%', '+']) {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&c| hex_value(c));
                let lo = bytes.get(i + 2).and_then(|&c| hex_value(c));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_as_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Whether `b` may stand unescaped in a request target: the printable ASCII characters RFC 3986
/// allows in a path or query (plus `%`, kept so existing escapes survive).
fn allowed_in_target(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

/// Escapes what cannot be sent in a request target (spaces, controls, non-ASCII, `"<>\^`{|}`),
/// as browsers do with the URL a page passes to `new WebSocket`.
pub(crate) fn encode_target(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if allowed_in_target(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_plus() {
        assert_eq!(decode("a%20b+c", true), "a b c");
        assert_eq!(decode("a%20b+c", false), "a b+c");
        assert_eq!(decode("caf%C3%A9", false), "caf\u{e9}");
        assert_eq!(decode("caf%c3%a9", false), "caf\u{e9}");
    }

    #[test]
    fn keeps_broken_escapes() {
        assert_eq!(decode("100%", false), "100%");
        assert_eq!(decode("%zz%4", false), "%zz%4");
        assert_eq!(decode("%FF", false), "\u{fffd}");
    }

    #[test]
    fn encodes_what_a_target_cannot_carry() {
        assert_eq!(encode_target("/a b?x=\"1\""), "/a%20b?x=%221%22");
        assert_eq!(encode_target("/caf\u{e9}"), "/caf%C3%A9");
        assert_eq!(encode_target("/ok/path?q=1&r=%20"), "/ok/path?q=1&r=%20");
        assert_eq!(encode_target("/\r\n"), "/%0D%0A");
    }
}
