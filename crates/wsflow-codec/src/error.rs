//! The codec's error type.
//!
//! [`ProtocolError`] lists every way a peer can break the framing rules of RFC 6455 section 5;
//! each violation knows the close code the connection must be failed with. [`Error`] adds the
//! mistakes a caller can make when building frames (an oversized ping, a close code that may not
//! be sent), which are reported to the caller and never put on the wire.

use std::fmt;

use crate::close::CloseCode;

/// A violation of the WebSocket protocol by the peer.
///
/// Every variant maps to the close code RFC 6455 prescribes through
/// [`ProtocolError::close_code`], and has a default close reason in
/// [`ProtocolError::close_reason`].
///
/// ```
/// use wsflow_codec::{CloseCode, ProtocolError};
///
/// let err = ProtocolError::InvalidUtf8;
/// assert_eq!(err.close_code(), CloseCode::INVALID_DATA);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The frame used one of the reserved opcodes 0x3-0x7 or 0xB-0xF.
    ReservedOpcode(u8),
    /// An RSV bit was set that no negotiated extension defines (the bits as `0b0RRR`,
    /// RSV1 being `0b100`).
    ReservedBitsSet(u8),
    /// A control frame (close, ping, pong) carried more than 125 bytes.
    ControlFrameTooLong(u64),
    /// A control frame had FIN cleared: control frames cannot be fragmented.
    FragmentedControlFrame,
    /// A 64-bit payload length had its most significant bit set.
    InvalidPayloadLength,
    /// A server received a frame without a mask: clients must mask every frame.
    UnmaskedClientFrame,
    /// A client received a masked frame: servers must never mask.
    MaskedServerFrame,
    /// A frame declared a payload larger than the configured maximum frame size.
    FrameTooLarge {
        /// The payload length the frame header declared.
        len: u64,
        /// The configured limit (`max_received_frame_size`).
        max: u64,
    },
    /// A message grew larger than the configured maximum message size.
    MessageTooLarge {
        /// The size the message would reach with the latest frame.
        len: u64,
        /// The configured limit (`max_received_message_size`).
        max: u64,
    },
    /// A fragmented message used more frames than the configured maximum fragment count.
    TooManyFragments {
        /// The configured limit (`max_fragments_per_message`).
        max: usize,
    },
    /// A continuation frame arrived while no fragmented message was in progress.
    UnexpectedContinuation,
    /// A text or binary frame arrived in the middle of a fragmented message.
    ExpectedContinuation,
    /// A close frame carried a 1-byte payload (a status code takes two bytes).
    InvalidCloseLength,
    /// A close frame carried a status code that must not appear on the wire.
    InvalidCloseCode(u16),
    /// A text message or a close reason was not valid UTF-8.
    InvalidUtf8,
    /// An extension rejected the frame (for example RSV1 on a continuation frame under
    /// permessage-deflate).
    Extension(&'static str),
    /// A compressed message's payload does not decompress (permessage-deflate data that is
    /// corrupt, or data after the final block): 1007, the message's data is inconsistent,
    /// as Node's `ws` answers it.
    InvalidCompressedData(&'static str),
}

impl ProtocolError {
    /// The close code a connection is failed with when the peer commits this violation.
    ///
    /// ```
    /// use wsflow_codec::{CloseCode, ProtocolError};
    ///
    /// assert_eq!(ProtocolError::FragmentedControlFrame.close_code(), CloseCode::PROTOCOL_ERROR);
    /// assert_eq!(
    ///     ProtocolError::FrameTooLarge { len: 1 << 40, max: 1 << 16 }.close_code(),
    ///     CloseCode::MESSAGE_TOO_BIG
    /// );
    /// ```
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            Self::TooManyFragments { .. } => CloseCode::POLICY_VIOLATION,
            Self::InvalidUtf8 | Self::InvalidCompressedData(_) => CloseCode::INVALID_DATA,
            Self::ReservedOpcode(_)
            | Self::ReservedBitsSet(_)
            | Self::ControlFrameTooLong(_)
            | Self::FragmentedControlFrame
            | Self::InvalidPayloadLength
            | Self::UnmaskedClientFrame
            | Self::MaskedServerFrame
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::InvalidCloseLength
            | Self::InvalidCloseCode(_)
            | Self::Extension(_) => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// The short reason sent in the close frame when the connection is failed for this
    /// violation (it always fits the 123 bytes a close reason may take).
    ///
    /// ```
    /// use wsflow_codec::ProtocolError;
    ///
    /// assert_eq!(ProtocolError::InvalidUtf8.close_reason(), "Invalid UTF-8 Data Received");
    /// ```
    pub fn close_reason(&self) -> &'static str {
        match self {
            Self::ReservedOpcode(_) => "Unrecognized Opcode",
            Self::ReservedBitsSet(_) => {
                "Unsupported usage of rsv bits without negotiated extension."
            }
            Self::ControlFrameTooLong(_) => "Illegal control frame longer than 125 bytes.",
            Self::FragmentedControlFrame => "Control frames must not be fragmented.",
            Self::InvalidPayloadLength => "Unsupported 64-bit length frame received",
            Self::UnmaskedClientFrame => "Received unmasked frame from client.",
            Self::MaskedServerFrame => "Received masked frame from server.",
            Self::FrameTooLarge { .. } => "Frame size exceeds maximum",
            Self::MessageTooLarge { .. } => "Maximum message size exceeded.",
            Self::TooManyFragments { .. } => "Too many fragments in one message.",
            Self::UnexpectedContinuation => "Unexpected Continuation Frame",
            Self::ExpectedContinuation => {
                "Illegal frame opcode received in middle of fragmented message."
            }
            Self::InvalidCloseLength => "Close frame with a 1-byte payload.",
            Self::InvalidCloseCode(_) => "Invalid close status code.",
            Self::InvalidUtf8 => "Invalid UTF-8 Data Received",
            Self::Extension(reason) | Self::InvalidCompressedData(reason) => reason,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedOpcode(op) => write!(f, "peer used reserved opcode {op:#x}"),
            Self::ReservedBitsSet(bits) => write!(
                f,
                "peer set RSV bits {bits:#05b} that no negotiated extension defines"
            ),
            Self::ControlFrameTooLong(len) => write!(
                f,
                "peer sent a control frame of {len} bytes; control frames carry at most 125"
            ),
            Self::FragmentedControlFrame => f.write_str("peer sent a fragmented control frame"),
            Self::InvalidPayloadLength => {
                f.write_str("peer sent a 64-bit payload length with the most significant bit set")
            }
            Self::UnmaskedClientFrame => f.write_str("client sent an unmasked frame"),
            Self::MaskedServerFrame => f.write_str("server sent a masked frame"),
            Self::FrameTooLarge { len, max } => write!(
                f,
                "peer declared a {len}-byte frame, over the {max}-byte limit \
                 (raise `max_received_frame_size` to accept it)"
            ),
            Self::MessageTooLarge { len, max } => write!(
                f,
                "peer's message reached {len} bytes, over the {max}-byte limit \
                 (raise `max_received_message_size` to accept it)"
            ),
            Self::TooManyFragments { max } => write!(
                f,
                "peer split one message into more than {max} fragments \
                 (raise `max_fragments_per_message` to accept it)"
            ),
            Self::UnexpectedContinuation => {
                f.write_str("peer sent a continuation frame with no fragmented message in progress")
            }
            Self::ExpectedContinuation => {
                f.write_str("peer started a new message before finishing the fragmented one")
            }
            Self::InvalidCloseLength => {
                f.write_str("peer sent a close frame with a 1-byte payload")
            }
            Self::InvalidCloseCode(code) => {
                write!(
                    f,
                    "peer sent close code {code}, which is not allowed on the wire"
                )
            }
            Self::InvalidUtf8 => f.write_str("peer sent text that is not valid UTF-8"),
            Self::Extension(reason) => write!(f, "extension error: {reason}"),
            Self::InvalidCompressedData(reason) => write!(f, "invalid compressed data: {reason}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The error type of `wsflow-codec`.
///
/// Peer violations are [`Error::Protocol`]; the other variants are caller mistakes detected
/// while building a frame, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the protocol; the connection must be failed with
    /// [`ProtocolError::close_code`].
    Protocol(ProtocolError),
    /// A control frame (ping, pong, close) payload over 125 bytes was requested.
    ControlPayloadTooLong {
        /// The requested payload length.
        len: usize,
    },
    /// A close reason over 123 bytes was requested (two bytes go to the status code).
    CloseReasonTooLong {
        /// The requested reason length in bytes.
        len: usize,
    },
    /// A close code that may not be sent on the wire (1004-1006, 1015, or outside
    /// 1000-4999) was requested.
    InvalidCloseCode(u16),
}

impl Error {
    /// The close code for a protocol violation, `None` for caller mistakes.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Protocol(err) => Some(err.close_code()),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(err) => write!(f, "protocol error: {err}"),
            Self::ControlPayloadTooLong { len } => write!(
                f,
                "control frame payload of {len} bytes requested; ping, pong and close carry at most 125"
            ),
            Self::CloseReasonTooLong { len } => write!(
                f,
                "close reason of {len} bytes requested; a close reason may take at most 123 bytes"
            ),
            Self::InvalidCloseCode(code) => write!(
                f,
                "close code {code} cannot be sent; use 1000-1003, 1007-1014 or 3000-4999"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protocol(err) => Some(err),
            _ => None,
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(err: ProtocolError) -> Self {
        Self::Protocol(err)
    }
}
