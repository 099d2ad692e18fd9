//! The connection's error type.

use std::fmt;
use std::sync::Arc;

use wsflow_codec::{CloseCode, ProtocolError};

use crate::event::ConnectionState;

/// What went wrong on a connection.
///
/// Peer violations ([`Error::Protocol`]) and transport failures ([`Error::Transport`]) are
/// reported as [`Event::Error`](crate::Event::Error) just before the connection's final
/// [`Event::Closed`](crate::Event::Closed). The other variants are caller mistakes returned by
/// the method that made them; the connection carries on.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the protocol; the connection was failed with the violation's close code.
    Protocol(ProtocolError),
    /// Reading from or writing to the transport failed; the connection ended with 1006.
    Transport(Arc<dyn std::error::Error + Send + Sync>),
    /// A message or frame was sent after the connection started closing.
    NotOpen(ConnectionState),
    /// A ping or pong payload over 125 bytes was requested.
    ControlPayloadTooLong {
        /// The requested payload length.
        len: usize,
    },
    /// A close reason over 123 bytes was requested.
    CloseReasonTooLong {
        /// The requested reason length.
        len: usize,
    },
    /// A close code that may not be sent (1004-1006, 1015, or outside 1000-4999).
    InvalidCloseCode(u16),
    /// The extension failed to encode an outgoing message.
    Extension(String),
}

impl Error {
    /// The close code the connection ended with because of this error, if it ended.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Protocol(err) => Some(err.close_code()),
            Self::Transport(_) => Some(CloseCode::ABNORMAL),
            _ => None,
        }
    }

    /// Wraps a transport error (such as an `std::io::Error`).
    pub fn transport(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Transport(Arc::from(err.into()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(err) => write!(
                f,
                "{err}; the connection was closed with code {}",
                err.close_code()
            ),
            Self::Transport(err) => write!(f, "transport error: {err}"),
            Self::NotOpen(state) => write!(
                f,
                "cannot send: the connection is {state:?}, not open \
                 (check `is_connected()` or wait for the close event)"
            ),
            Self::ControlPayloadTooLong { len } => write!(
                f,
                "ping/pong payload of {len} bytes requested; control frames carry at most 125 bytes"
            ),
            Self::CloseReasonTooLong { len } => write!(
                f,
                "close reason of {len} bytes requested; a close reason may take at most 123 bytes"
            ),
            Self::InvalidCloseCode(code) => write!(
                f,
                "close code {code} cannot be sent; use 1000-1003, 1007-1014 or 3000-4999"
            ),
            Self::Extension(reason) => write!(f, "extension error: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protocol(err) => Some(err),
            Self::Transport(err) => Some(&**err),
            _ => None,
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(err: ProtocolError) -> Self {
        Self::Protocol(err)
    }
}

impl From<wsflow_codec::Error> for Error {
    fn from(err: wsflow_codec::Error) -> Self {
        match err {
            wsflow_codec::Error::Protocol(err) => Self::Protocol(err),
            wsflow_codec::Error::ControlPayloadTooLong { len } => {
                Self::ControlPayloadTooLong { len }
            }
            wsflow_codec::Error::CloseReasonTooLong { len } => Self::CloseReasonTooLong { len },
            wsflow_codec::Error::InvalidCloseCode(code) => Self::InvalidCloseCode(code),
            other => Self::Extension(other.to_string()),
        }
    }
}
