//! The facade's error type.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use wsflow_handshake::HandshakeError;

/// Everything that can go wrong with a server, a client or a connection.
///
/// ```
/// use wsflow::Error;
///
/// fn describe(err: &Error) -> String {
///     match err {
///         Error::Handshake(handshake) => format!("upgrade failed: {handshake}"),
///         Error::Connection(conn) => format!("connection failed: {conn}"),
///         other => other.to_string(),
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    Io(Arc<io::Error>),
    /// The opening handshake failed. For a client, a non-101 answer is
    /// [`HandshakeError::UnexpectedStatus`], with the status, headers and start of the body.
    ///
    /// Boxed: a handshake error is large (that answer's headers and body) and rare, and every
    /// receive returns an `Error` inside its result, which stays small this way. Match the
    /// contents through the box: `Error::Handshake(err) if matches!(*err, ...)`.
    Handshake(Box<HandshakeError>),
    /// The connection failed (a protocol violation by the peer, a transport error), or a
    /// send was refused (for example after the connection began closing).
    Connection(wsflow_core::Error),
    /// The opening handshake did not finish in time.
    HandshakeTimeout(Duration),
    /// The URL asks for something this build cannot do (`wss://` without the TLS feature).
    Unsupported(String),
    /// The request was refused with 503: the server is shutting down, or closed all its
    /// connections after the request came ([`Server::close_all_connections`](crate::Server::close_all_connections)).
    ShuttingDown,
    /// The send buffer is above its high-water mark and the sender is set to fail fast.
    BufferFull {
        /// Bytes waiting to be written.
        buffered: usize,
        /// The configured `send_high_water_mark`.
        high_water_mark: usize,
    },
    /// The connection this handle sends to is gone.
    ConnectionGone,
    /// The proxy refused the tunnel or answered something unexpected.
    Proxy(String),
    /// TLS failed: a certificate that could not be loaded or verified, or a failed handshake.
    Tls(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(err) => write!(f, "I/O error: {err}"),
            Self::Handshake(err) => write!(f, "WebSocket handshake failed: {err}"),
            Self::Connection(err) => err.fmt(f),
            Self::HandshakeTimeout(timeout) => write!(
                f,
                "the opening handshake did not finish within {timeout:?} \
                 (raise `handshake_timeout` in the config to wait longer)"
            ),
            Self::Unsupported(what) => f.write_str(what),
            Self::ShuttingDown => f.write_str("the server is shutting down"),
            Self::BufferFull {
                buffered,
                high_water_mark,
            } => write!(
                f,
                "{buffered} bytes are waiting to be sent, over the {high_water_mark}-byte \
                 high-water mark (raise `send_high_water_mark`, or let senders wait)"
            ),
            Self::ConnectionGone => f.write_str("the connection was dropped"),
            Self::Proxy(why) => write!(f, "proxy error: {why}"),
            Self::Tls(why) => write!(f, "TLS error: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(err) => Some(&**err),
            Self::Handshake(err) => Some(&**err),
            Self::Connection(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Self::Io(Arc::new(err))
    }
}

impl From<HandshakeError> for Error {
    fn from(err: HandshakeError) -> Self {
        Self::Handshake(Box::new(err))
    }
}

impl From<wsflow_core::Error> for Error {
    fn from(err: wsflow_core::Error) -> Self {
        Self::Connection(err)
    }
}
