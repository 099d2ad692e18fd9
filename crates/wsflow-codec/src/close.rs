//! Close status codes and the payload of close frames (RFC 6455 sections 5.5.1 and 7.4).
//!
//! A close frame's payload is empty, or a big-endian status code followed by a UTF-8 reason.
//! [`CloseFrame::parse`] turns a received payload into a code and reason, refusing what the RFC
//! forbids; [`CloseFrame::encode`] builds the payload to send.

use std::fmt;

use bytes::{BufMut, Bytes};

use crate::error::{Error, ProtocolError};
use crate::utf8_bytes::Utf8Bytes;

/// The longest close reason that fits a close frame (125 bytes minus the 2-byte code).
pub const MAX_CLOSE_REASON_LEN: usize = 123;

/// A WebSocket close status code.
///
/// Named constants carry WebSocket-Node's names (`CLOSE_REASON_NORMAL` is
/// [`CloseCode::NORMAL`]). Any `u16` can be represented; [`CloseCode::is_sendable`] says
/// whether it may appear on the wire.
///
/// ```
/// use wsflow_codec::CloseCode;
///
/// assert_eq!(CloseCode::NORMAL.as_u16(), 1000);
/// assert!(CloseCode::from(4000).is_sendable());
/// assert!(!CloseCode::ABNORMAL.is_sendable());
/// assert_eq!(CloseCode::MESSAGE_TOO_BIG.default_description(), Some("Message too big"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: the endpoint received a type of data it cannot accept.
    pub const UNPROCESSABLE_INPUT: Self = Self(1003);
    /// 1004: reserved, with no defined meaning; never sent.
    pub const RESERVED: Self = Self(1004);
    /// 1005: no status code was present in the close frame; never sent.
    pub const NOT_PROVIDED: Self = Self(1005);
    /// 1006: the connection ended without a close frame; never sent.
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: a message contained data inconsistent with its type (such as non-UTF-8 text).
    pub const INVALID_DATA: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client needed an extension the server did not negotiate.
    pub const EXTENSION_REQUIRED: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_SERVER_ERROR: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: the service is overloaded; try again later.
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway received an invalid response from upstream.
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: the TLS handshake failed; never sent.
    pub const TLS_HANDSHAKE_FAILED: Self = Self(1015);

    /// The code as a number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether the code may be sent in a close frame: 1000-1003, 1007-1014 (the IANA registry)
    /// and 3000-4999 (libraries, frameworks and applications).
    ///
    /// ```
    /// use wsflow_codec::CloseCode;
    ///
    /// for code in [1000, 1003, 1007, 1014, 3000, 4999] {
    ///     assert!(CloseCode::from(code).is_sendable());
    /// }
    /// for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
    ///     assert!(!CloseCode::from(code).is_sendable());
    /// }
    /// ```
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// WebSocket-Node's description for the codes it names, `None` for other codes.
    pub const fn default_description(self) -> Option<&'static str> {
        Some(match self.0 {
            1000 => "Normal connection closure",
            1001 => "Remote peer is going away",
            1002 => "Protocol error",
            1003 => "Unprocessable input",
            1004 => "Reserved",
            1005 => "Reason not provided",
            1006 => "Abnormal closure, no further detail available",
            1007 => "Invalid data received",
            1008 => "Policy violation",
            1009 => "Message too big",
            1010 => "Extension requested by client is required",
            1011 => "Internal Server Error",
            1015 => "TLS Handshake Failed",
            _ => return None,
        })
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The status code and reason carried by a close frame.
///
/// ```
/// use wsflow_codec::{CloseCode, CloseFrame};
///
/// let mut payload = Vec::new();
/// CloseFrame::encode(CloseCode::GOING_AWAY, "restarting", &mut payload).unwrap();
/// let frame = CloseFrame::parse(payload.into()).unwrap().unwrap();
/// assert_eq!(frame.code, CloseCode::GOING_AWAY);
/// assert_eq!(frame.reason, "restarting");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, possibly empty.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// Parses a received close payload.
    ///
    /// Returns `Ok(None)` for an empty payload (the close code is then reported as
    /// [`CloseCode::NOT_PROVIDED`]). A 1-byte payload or a code that may not be on the wire is a
    /// protocol error (1002); a reason that is not UTF-8 is invalid data (1007).
    pub fn parse(payload: Bytes) -> Result<Option<Self>, ProtocolError> {
        match payload.len() {
            0 => Ok(None),
            1 => Err(ProtocolError::InvalidCloseLength),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_sendable() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason = Utf8Bytes::try_from(payload.slice(2..))
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(Some(Self { code, reason }))
            }
        }
    }

    /// Appends the payload of a close frame with `code` and `reason` to `dst`.
    ///
    /// Fails, writing nothing, when the code may not be sent or the reason is longer than
    /// [`MAX_CLOSE_REASON_LEN`] bytes.
    pub fn encode(code: CloseCode, reason: &str, dst: &mut impl BufMut) -> Result<(), Error> {
        Self::check(code, reason)?;
        dst.put_u16(code.0);
        dst.put_slice(reason.as_bytes());
        Ok(())
    }

    /// Checks that `code` and `reason` can be sent, as [`CloseFrame::encode`] does.
    pub fn check(code: CloseCode, reason: &str) -> Result<(), Error> {
        if !code.is_sendable() {
            return Err(Error::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_CLOSE_REASON_LEN {
            return Err(Error::CloseReasonTooLong { len: reason.len() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_u16_is_classified_as_the_rfc_says() {
        for code in 0..=u16::MAX {
            let expected = (1000..=1003).contains(&code)
                || (1007..=1014).contains(&code)
                || (3000..=4999).contains(&code);
            assert_eq!(CloseCode(code).is_sendable(), expected, "code {code}");
        }
    }

    #[test]
    fn empty_payload_means_no_status() {
        assert_eq!(CloseFrame::parse(Bytes::new()), Ok(None));
    }

    #[test]
    fn one_byte_payload_is_a_protocol_error() {
        let err = CloseFrame::parse(Bytes::from_static(&[3])).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidCloseLength);
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn forbidden_codes_are_protocol_errors() {
        for code in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let err = CloseFrame::parse(Bytes::copy_from_slice(&code.to_be_bytes())).unwrap_err();
            assert_eq!(err, ProtocolError::InvalidCloseCode(code));
            assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
        }
    }

    #[test]
    fn reason_must_be_utf8() {
        let payload = Bytes::from_static(&[0x03, 0xe8, 0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf]);
        let err = CloseFrame::parse(payload).unwrap_err();
        assert_eq!(err, ProtocolError::InvalidUtf8);
        assert_eq!(err.close_code(), CloseCode::INVALID_DATA);
    }

    #[test]
    fn code_and_reason_round_trip() {
        let mut buf = Vec::new();
        CloseFrame::encode(CloseCode::from(4321), "κόσμε", &mut buf).unwrap();
        let frame = CloseFrame::parse(Bytes::from(buf)).unwrap().unwrap();
        assert_eq!(frame.code.as_u16(), 4321);
        assert_eq!(&*frame.reason, "κόσμε");
    }

    #[test]
    fn encode_refuses_caller_mistakes() {
        let mut buf = Vec::new();
        assert_eq!(
            CloseFrame::encode(CloseCode::ABNORMAL, "", &mut buf),
            Err(Error::InvalidCloseCode(1006))
        );
        let long = "x".repeat(124);
        assert_eq!(
            CloseFrame::encode(CloseCode::NORMAL, &long, &mut buf),
            Err(Error::CloseReasonTooLong { len: 124 })
        );
        assert!(buf.is_empty());
        CloseFrame::encode(CloseCode::NORMAL, &long[..123], &mut buf).unwrap();
        assert_eq!(buf.len(), 125);
    }

    #[test]
    fn described_codes_match_websocket_node() {
        assert_eq!(
            CloseCode::ABNORMAL.default_description(),
            Some("Abnormal closure, no further detail available")
        );
        assert_eq!(CloseCode::from(4000).default_description(), None);
    }
}
