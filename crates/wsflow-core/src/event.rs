//! What a connection reports: messages, frames, pings, pongs, errors and its close.

use bytes::Bytes;
use wsflow_codec::{CloseCode, Frame, Utf8Bytes};

use crate::error::Error;

/// A complete data message.
///
/// ```
/// use wsflow_core::Message;
///
/// let text = Message::text("hello");
/// assert_eq!(text.as_text(), Some("hello"));
/// let binary = Message::binary(vec![1, 2, 3]);
/// assert_eq!(binary.as_bytes(), &[1, 2, 3]);
/// assert!(binary.is_binary());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// A text message (WebSocket-Node's `type: "utf8"`), valid UTF-8.
    Text(Utf8Bytes),
    /// A binary message (WebSocket-Node's `type: "binary"`).
    Binary(Bytes),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::Binary(data.into())
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary(_))
    }

    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Binary(_) => None,
        }
    }

    /// The payload bytes, whatever the type.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(data) => data,
        }
    }

    /// The payload as `Bytes`, without a copy.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Self::Text(text) => text.into_bytes(),
            Self::Binary(data) => data,
        }
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::Text(text.into())
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::Text(text.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Self::Text(text)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Self::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Self::Binary(data.into())
    }
}

impl From<&[u8]> for Message {
    fn from(data: &[u8]) -> Self {
        Self::Binary(Bytes::copy_from_slice(data))
    }
}

/// The state of a connection (WebSocket-Node's `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Messages flow both ways.
    Open,
    /// The peer sent a close frame; ours is answered and the connection is ending.
    PeerRequestedClose,
    /// We sent a close frame and wait for the peer's.
    Ending,
    /// The close handshake is over or the connection failed; nothing more is sent.
    Closed,
}

/// Which side started the close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseInitiator {
    /// This endpoint: `close`, `drop_connection`, a protocol violation it detected, a timeout.
    Local,
    /// The peer: its close frame, or its transport going away.
    Peer,
}

/// How a connection ended: the payload of [`Event::Closed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseEvent {
    /// The close code (WebSocket-Node's `closeReasonCode`): the peer's code when it closed,
    /// ours when we closed, 1005 for a close frame without a code, 1006 when the connection
    /// ended without a close handshake.
    pub code: CloseCode,
    /// The description (WebSocket-Node's `closeDescription`): the close frame's reason, or the
    /// code's default description when the reason was empty.
    pub description: String,
    /// Whether the close handshake completed (the W3C API's `wasClean`): the peer's close
    /// frame arrived and ours was handed to the transport, with everything queued before it.
    /// A connection that received the peer's close frame but could not write its own (the
    /// peer stopped reading until the close timeout, or the socket failed) did not close
    /// cleanly.
    pub was_clean: bool,
    /// Which side started the close.
    pub initiator: CloseInitiator,
}

/// Something that happened on a connection, returned by
/// [`Connection::poll_event`](crate::Connection::poll_event).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A complete message (when fragments are assembled, the default).
    Message(Message),
    /// A frame, delivered as received when `assemble_fragments` is off (control frames
    /// included; they are also handled as usual).
    Frame(Frame),
    /// A ping arrived with this payload. Unless auto-pong is off or
    /// [`Connection::cancel_pong`](crate::Connection::cancel_pong) is called before the
    /// connection is driven again, it is answered with a pong.
    Ping(Bytes),
    /// A pong arrived with this payload.
    Pong(Bytes),
    /// The connection failed: a protocol violation by the peer or a transport error. An
    /// [`Event::Closed`] follows.
    Error(Error),
    /// The connection is closed; the last event.
    Closed(CloseEvent),
}
