//! The result of parsing a head from a buffer that is still filling.

/// The result of an incremental parse: the head is not complete yet, or it is, and this is how
/// many bytes it took.
///
/// Call the parser again with the grown buffer each time bytes arrive. Once it is `Complete`,
/// the bytes after `consumed` are not part of the handshake: they are the first WebSocket
/// frames (a client may pipeline its first message; a server may send one right after `101`),
/// and the caller hands them to the connection.
///
/// ```
/// use wsflow_handshake::{Parsed, RequestLimits, parse_request};
///
/// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let mut buf = head.to_vec();
/// buf.extend_from_slice(b"\x81\x85frame");
///
/// let limits = RequestLimits::default();
/// assert_eq!(parse_request(&buf[..20], &limits).unwrap(), Parsed::Incomplete);
/// let Parsed::Complete { value: _request, consumed } = parse_request(&buf, &limits).unwrap() else {
///     panic!("the head is complete");
/// };
/// assert_eq!(consumed, head.len());
/// assert_eq!(&buf[consumed..], b"\x81\x85frame");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The head is not complete: read more bytes and call again with the whole buffer.
    Incomplete,
    /// The head is complete.
    Complete {
        /// What was parsed.
        value: T,
        /// The length of the head; the bytes after it belong to the WebSocket stream.
        consumed: usize,
    },
}

impl<T> Parsed<T> {
    /// Whether the head was complete.
    pub fn is_complete(&self) -> bool {
        matches!(self, Self::Complete { .. })
    }

    /// The parsed value and the head length, `None` while incomplete.
    pub fn complete(self) -> Option<(T, usize)> {
        match self {
            Self::Incomplete => None,
            Self::Complete { value, consumed } => Some((value, consumed)),
        }
    }

    /// Maps the parsed value, keeping the head length.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Parsed<U> {
        match self {
            Self::Incomplete => Parsed::Incomplete,
            Self::Complete { value, consumed } => Parsed::Complete {
                value: f(value),
                consumed,
            },
        }
    }
}

/// How far a buffer that is still filling has been examined for a complete head, so that a
/// head arriving in many small reads is searched once in all rather than once per read.
///
/// Keep one per connection and pass it to [`parse_request_resumed`](crate::parse_request_resumed)
/// or [`ClientHandshake::parse_response_resumed`](crate::ClientHandshake::parse_response_resumed)
/// with the buffer each time it grows. The buffer must only grow at its end: the bytes already
/// passed must still be its start. A head trickled in one byte at a time then costs work in
/// proportion to its length, where the stateless [`parse_request`](crate::parse_request)
/// searches the whole buffer again on every call.
///
/// ```
/// use wsflow_handshake::{HeadProgress, Parsed, RequestLimits, parse_request_resumed};
///
/// let head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let limits = RequestLimits::default();
/// let mut progress = HeadProgress::new();
/// let mut buf = Vec::new();
/// for &byte in &head[..head.len() - 1] {
///     buf.push(byte);
///     assert_eq!(parse_request_resumed(&buf, &limits, &mut progress).unwrap(), Parsed::Incomplete);
/// }
/// buf.push(b'\n');
/// let parsed = parse_request_resumed(&buf, &limits, &mut progress).unwrap();
/// assert_eq!(parsed.complete().unwrap().1, head.len());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadProgress {
    /// No blank line ends the head before this offset: the search resumes here.
    pub(crate) searched: usize,
    /// The request or status line passed the early check, which sees nothing new later.
    pub(crate) start_checked: bool,
    /// Bytes other than empty lines have come: later empty lines end the head.
    pub(crate) first_line_begun: bool,
}

impl HeadProgress {
    /// Nothing examined yet: for a new connection's first read.
    pub const fn new() -> Self {
        Self {
            searched: 0,
            start_checked: false,
            first_line_begun: false,
        }
    }

    /// Whether `buf` holds the blank line that ends an HTTP head (after any empty lines
    /// before the first line, which HTTP parsers skip), searching only what earlier calls
    /// left: run a full HTTP parser on the buffer once this says yes. For heads this crate
    /// does not parse itself, such as a proxy's answer to `CONNECT`.
    ///
    /// ```
    /// use wsflow_handshake::HeadProgress;
    ///
    /// let mut progress = HeadProgress::new();
    /// assert!(!progress.has_complete_head(b"\r\nHTTP/1.1 200 OK\r\n"));
    /// assert!(progress.has_complete_head(b"\r\nHTTP/1.1 200 OK\r\n\r\n"));
    /// ```
    pub fn has_complete_head(&mut self, buf: &[u8]) -> bool {
        crate::header::search_head(buf, usize::MAX, self) == crate::header::HeadSearch::BlankLine
    }
}
