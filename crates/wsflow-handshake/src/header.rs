//! The pieces of HTTP/1.1 (RFC 9110, RFC 9112) that both sides of the handshake share: tokens
//! and comma-separated lists, case-insensitive header lookups, checking and sanitising header
//! values, status lines, and finding where a head ends in a buffer that is still filling.

use crate::error::HandshakeError;
use crate::parsed::HeadProgress;

/// A header list as received or as about to be sent: names and values, in order.
pub(crate) type Headers = Vec<(String, String)>;

/// Whether `b` may appear in an HTTP token (RFC 9110 section 5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is a non-empty HTTP token: a header name, a method, an extension name.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Optional whitespace (RFC 9110 section 5.6.3).
pub(crate) fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The first value of the header `name` (case-insensitive).
pub(crate) fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    values(headers, name).next()
}

/// Every value of the header `name` (case-insensitive), in order.
pub(crate) fn values<'a>(
    headers: &'a [(String, String)],
    name: &str,
) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// How many times the header `name` appears.
pub(crate) fn count(headers: &[(String, String)], name: &str) -> usize {
    values(headers, name).count()
}

/// The elements of a comma-separated list spread over every `name` header, trimmed, with the
/// empty elements RFC 9110 section 5.6.1 tells recipients to ignore left out.
pub(crate) fn list_items<'a>(
    headers: &'a [(String, String)],
    name: &str,
) -> impl Iterator<Item = &'a str> {
    values(headers, name)
        .flat_map(|v| v.split(','))
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

/// Whether the list in the `name` headers contains `token` (ASCII case-insensitive).
pub(crate) fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    list_items(headers, name).any(|item| item.eq_ignore_ascii_case(token))
}

/// Every value of `name` joined with `", "`, for error messages; `None` when absent.
pub(crate) fn joined(headers: &[(String, String)], name: &str) -> Option<String> {
    let all: Vec<&str> = values(headers, name).collect();
    (!all.is_empty()).then(|| all.join(", "))
}

/// Whether `b` is a control character that cannot appear in a header value (everything below
/// 0x20 except horizontal tab, and DEL).
fn is_forbidden_in_value(c: char) -> bool {
    (c.is_ascii_control() && c != '\t') || c == '\u{7f}'
}

/// Checks a header name the caller wants to send.
pub(crate) fn check_name(name: &str) -> Result<(), HandshakeError> {
    if is_token(name) {
        Ok(())
    } else {
        Err(HandshakeError::InvalidHeaderName {
            name: name.to_owned(),
        })
    }
}

/// Checks a header value the caller wants to send: CR, LF and the other control characters
/// would let a value end the header (response splitting) and are refused.
pub(crate) fn check_value(name: &str, value: &str) -> Result<(), HandshakeError> {
    if value.chars().any(is_forbidden_in_value) {
        Err(HandshakeError::InvalidHeaderValue {
            name: name.to_owned(),
            reason: "it contains CR, LF or another control character",
        })
    } else {
        Ok(())
    }
}

/// Removes the characters [`check_value`] refuses, for the rejection path, which never fails.
pub(crate) fn sanitize_value(value: &str) -> String {
    trim_ows(&value.replace(is_forbidden_in_value, "")).to_owned()
}

/// The standard reason phrase of `status` (RFC 9110 section 15 and the registered additions),
/// empty for a code without one, which the status-line grammar allows.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A complete response head: status line, headers, blank line. Names and values must already
/// be checked or sanitised.
pub(crate) fn write_response(status: u16, headers: &[(String, String)]) -> Vec<u8> {
    let reason = reason_phrase(status);
    let len = 32
        + headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    write_headers(&mut out, headers);
    out
}

/// Appends `name: value` lines and the blank line that ends a head.
pub(crate) fn write_headers(out: &mut Vec<u8>, headers: &[(String, String)]) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Where a head stands in a buffer that is still filling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadSearch {
    /// The first `limit` bytes contain a blank line: worth handing to httparse.
    BlankLine,
    /// No blank line yet, and there is still room under the limit.
    Incomplete,
    /// No blank line within `limit` bytes: the head cannot fit.
    TooLarge,
}

/// How much of an incomplete head is checked for bytes that cannot be HTTP: enough for the
/// request or status line of any sane peer, and a bound on the work repeated at each read.
pub(crate) const EARLY_CHECK_LEN: usize = 1024;

/// Looks for the blank line that ends a head within the first `limit` bytes, from
/// `progress.searched` on: cheap enough to run on every read, so httparse only runs once the
/// head can be complete. A bare LF is accepted as a line ending, as httparse and RFC 9112
/// section 2.2 allow, and empty lines before the first line are skipped, as httparse skips
/// them (RFC 9112 section 2.2): they do not end a head that has not begun.
///
/// On `Incomplete` the search's resume point moves to two bytes before the end: a LF in them
/// may yet turn out to end the head, every earlier one has been judged for good.
pub(crate) fn search_head(buf: &[u8], limit: usize, progress: &mut HeadProgress) -> HeadSearch {
    let window = &buf[..buf.len().min(limit)];
    let mut from = progress.searched.min(window.len());
    if !progress.first_line_begun {
        loop {
            match window[from..] {
                [b'\n', ..] => from += 1,
                [b'\r', b'\n', ..] => from += 2,
                // Too early to tell.
                [] | [b'\r'] => break,
                _ => {
                    progress.first_line_begun = true;
                    break;
                }
            }
        }
    }
    let first_line = from;
    #[cfg(test)]
    BYTES_SEARCHED.set(BYTES_SEARCHED.get() + (window.len() - from));
    while let Some(offset) = window[from..].iter().position(|&b| b == b'\n') {
        let lf = from + offset;
        match window.get(lf + 1) {
            Some(b'\n') => return HeadSearch::BlankLine,
            Some(b'\r') if window.get(lf + 2) == Some(&b'\n') => return HeadSearch::BlankLine,
            _ => from = lf + 1,
        }
    }
    if buf.len() >= limit {
        HeadSearch::TooLarge
    } else {
        progress.searched = window.len().saturating_sub(2).max(first_line);
        HeadSearch::Incomplete
    }
}

#[cfg(test)]
thread_local! {
    /// How many bytes `search_head` has looked at on this thread, for the tests that show a
    /// trickled head is searched once.
    pub(crate) static BYTES_SEARCHED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Runs `check` (a parse with no header slots, which stops at the first header line once it
/// is complete) on the start of an incomplete head, unless an earlier call already settled it.
/// The start is settled once the check passes on a first line and a first header line that
/// are complete, or on `EARLY_CHECK_LEN` bytes: later bytes never reach it.
pub(crate) fn check_start<E>(
    buf: &[u8],
    progress: &mut HeadProgress,
    check: impl FnOnce(&[u8]) -> Result<bool, E>,
) -> Result<(), E> {
    if progress.start_checked {
        return Ok(());
    }
    let start = &buf[..buf.len().min(EARLY_CHECK_LEN)];
    let line_complete = check(start)?;
    progress.start_checked = line_complete || start.len() == EARLY_CHECK_LEN;
    Ok(())
}

/// Copies httparse's borrowed headers into owned pairs (values decoded lossily as UTF-8,
/// trimmed of optional whitespace).
pub(crate) fn owned_headers(headers: &[httparse::Header<'_>]) -> Headers {
    headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value);
            (h.name.to_owned(), trim_ows(&value).to_owned())
        })
        .collect()
}

/// How many header slots httparse needs at most for a head of `len` bytes: each header line
/// takes at least three bytes (`a:\n`), so a huge configured limit never turns into a huge
/// allocation.
pub(crate) fn header_slots(max_headers: usize, len: usize) -> usize {
    max_headers.min(len / 3 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn tokens() {
        assert!(is_token("permessage-deflate"));
        assert!(is_token("X-Custom_1!"));
        assert!(!is_token(""));
        assert!(!is_token("a b"));
        assert!(!is_token("a:b"));
        assert!(!is_token("caf\u{e9}"));
    }

    #[test]
    fn lists_span_headers_and_skip_empty_elements() {
        let h = headers(&[("Connection", "keep-alive, , "), ("connection", " Upgrade")]);
        assert_eq!(
            list_items(&h, "CONNECTION").collect::<Vec<_>>(),
            ["keep-alive", "Upgrade"]
        );
        assert!(has_token(&h, "connection", "upgrade"));
        assert!(!has_token(&h, "connection", "close"));
        assert_eq!(
            joined(&h, "Connection").unwrap(),
            "keep-alive, , ,  Upgrade"
        );
        assert_eq!(count(&h, "connection"), 2);
        assert_eq!(find(&h, "Upgrade"), None);
    }

    #[test]
    fn values_with_control_characters_are_refused_or_stripped() {
        assert!(check_value("X", "fine value\twith tab").is_ok());
        assert!(check_value("X", "a\r\nb").is_err());
        assert!(check_value("X", "a\0b").is_err());
        assert!(check_value("X", "a\u{7f}").is_err());
        assert_eq!(sanitize_value(" a\r\nb\0c "), "abc");
        assert!(check_name("X-Ok").is_ok());
        assert!(check_name("X Bad").is_err());
    }

    fn search_fresh(buf: &[u8], limit: usize) -> HeadSearch {
        search_head(buf, limit, &mut HeadProgress::new())
    }

    #[test]
    fn a_resumed_head_search_agrees_with_a_fresh_one_at_every_split() {
        let heads: [&[u8]; 5] = [
            b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest",
            b"GET / HTTP/1.1\nA: b\n\n",
            b"GET / HTTP/1.1\r\nA: b\r\n\nx",
            b"GET / HTTP/1.1\r\nA: \n\r b\r\r\n\r\n",
            b"\n\r\r\n\r\r\n\r\n",
        ];
        for head in heads {
            for limit in [head.len() - 2, head.len(), 100] {
                for first in 0..=head.len() {
                    for second in first..=head.len() {
                        let mut progress = HeadProgress::new();
                        let mut result = HeadSearch::Incomplete;
                        for end in [first, second, head.len()] {
                            if result == HeadSearch::Incomplete {
                                result = search_head(&head[..end], limit, &mut progress);
                            }
                        }
                        assert_eq!(
                            result,
                            search_fresh(head, limit),
                            "{head:?} {first} {second}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_head_trickled_byte_by_byte_is_searched_in_linear_work() {
        // Without and with empty lines before the request line, which httparse skips and
        // which must not count as the blank line that ends the head.
        for leading in [&b""[..], b"\r\n\r\n", b"\n\r\n\n"] {
            let mut head = leading.to_vec();
            head.extend_from_slice(b"GET / HTTP/1.1\r\n");
            while head.len() < 16 * 1024 - 20 {
                head.extend_from_slice(b"X-Filler: abcdefgh\r\n");
            }
            let mut progress = HeadProgress::new();
            BYTES_SEARCHED.set(0);
            for end in 1..=head.len() {
                let found = search_head(&head[..end], 16 * 1024, &mut progress);
                assert_eq!(found, HeadSearch::Incomplete, "{leading:?} {end}");
            }
            // Each byte is looked at by at most three calls (the last two bytes are looked at
            // again). Searching the whole buffer on every call took 134 million looks here.
            let searched = BYTES_SEARCHED.get();
            assert!(
                searched <= 3 * head.len(),
                "{searched} bytes searched for a {}-byte head",
                head.len()
            );
            head.extend_from_slice(b"\r\n");
            assert_eq!(
                search_head(&head, 16 * 1024, &mut progress),
                HeadSearch::BlankLine
            );
        }
    }

    #[test]
    fn empty_lines_before_the_first_line_do_not_end_the_head() {
        assert_eq!(search_fresh(b"\r\n\r\n", 100), HeadSearch::Incomplete);
        assert_eq!(search_fresh(b"\n\n\r", 100), HeadSearch::Incomplete);
        assert_eq!(
            search_fresh(b"\r\n\r\nGET / HTTP/1.1\r\n", 100),
            HeadSearch::Incomplete
        );
        assert_eq!(
            search_fresh(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 100),
            HeadSearch::BlankLine
        );
        // A CR not followed by LF begins a (malformed) first line.
        assert_eq!(search_fresh(b"\r\r\n\r\n", 100), HeadSearch::BlankLine);
        assert_eq!(search_fresh(b"\r\n\r\n", 4), HeadSearch::TooLarge);
    }

    #[test]
    fn head_search_finds_crlf_and_lf_blank_lines() {
        assert_eq!(
            search_fresh(b"GET / HTTP/1.1\r\n", 100),
            HeadSearch::Incomplete
        );
        assert_eq!(
            search_fresh(b"GET / HTTP/1.1\r\n\r", 100),
            HeadSearch::Incomplete
        );
        assert_eq!(
            search_fresh(b"GET / HTTP/1.1\r\n\r\n", 100),
            HeadSearch::BlankLine
        );
        assert_eq!(
            search_fresh(b"GET / HTTP/1.1\n\n", 100),
            HeadSearch::BlankLine
        );
        assert_eq!(
            search_fresh(b"GET / HTTP/1.1\r\n\n", 100),
            HeadSearch::BlankLine
        );
        // The blank line must lie within the limit.
        assert_eq!(
            search_fresh(b"GET / HTTP/1.1\r\n\r\n", 17),
            HeadSearch::TooLarge
        );
        assert_eq!(
            search_fresh(b"GET / HTTP/1.1\r\n\r\n", 18),
            HeadSearch::BlankLine
        );
        assert_eq!(
            search_fresh(b"GET / HTTP/1.1\r\n\r", 17),
            HeadSearch::TooLarge
        );
        assert_eq!(search_fresh(b"", 0), HeadSearch::TooLarge);
    }

    #[test]
    fn status_lines_use_standard_phrases() {
        let out = write_response(426, &headers(&[("Sec-WebSocket-Version", "13")]));
        assert_eq!(
            out,
            b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        assert_eq!(write_response(599, &[]), b"HTTP/1.1 599 \r\n\r\n");
    }

    #[test]
    fn header_slots_are_bounded_by_the_head_length() {
        assert_eq!(header_slots(64, 30), 11);
        assert_eq!(header_slots(usize::MAX, 16384), 5462);
        assert_eq!(header_slots(2, 16384), 2);
    }
}
