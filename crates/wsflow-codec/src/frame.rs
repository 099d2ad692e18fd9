//! Frame headers and frames (RFC 6455 section 5.2).
//!
//! [`FrameHeader::parse`] reads a header from however many bytes have arrived and says how many
//! more it needs; [`FrameHeader::encode`] writes the smallest header for a payload, so a large
//! payload can follow in its own buffer (vectored writes, no copy). [`Frame`] is a whole frame
//! with WebSocket-Node's `WebSocketFrame` fields.

use bytes::{BufMut, Bytes, BytesMut};

use crate::close::{CloseCode, CloseFrame};
use crate::error::{Error, ProtocolError};
use crate::mask::apply_mask;

/// The longest possible frame header: 2 bytes, a 64-bit length and a masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame (close, ping, pong) may carry.
pub const MAX_CONTROL_PAYLOAD_LEN: usize = 125;

/// A frame opcode. The reserved opcodes 0x3-0x7 and 0xB-0xF are not representable: parsing a
/// frame that uses one fails with [`ProtocolError::ReservedOpcode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: a continuation of a fragmented message.
    Continuation = 0x0,
    /// 0x1: the first (or only) frame of a text message.
    Text = 0x1,
    /// 0x2: the first (or only) frame of a binary message.
    Binary = 0x2,
    /// 0x8: the close frame.
    Close = 0x8,
    /// 0x9: a ping.
    Ping = 0x9,
    /// 0xA: a pong.
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for the low four bits of a header's first byte.
    ///
    /// ```
    /// use wsflow_codec::{OpCode, ProtocolError};
    ///
    /// assert_eq!(OpCode::from_u8(0x9), Ok(OpCode::Ping));
    /// assert_eq!(OpCode::from_u8(0x3), Err(ProtocolError::ReservedOpcode(0x3)));
    /// ```
    pub const fn from_u8(value: u8) -> Result<Self, ProtocolError> {
        Ok(match value {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The opcode's number.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether this is a control opcode (close, ping, pong).
    pub const fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }

    /// Whether this is a data opcode (continuation, text, binary).
    pub const fn is_data(self) -> bool {
        !self.is_control()
    }
}

/// The fixed part of a frame: everything but the payload.
///
/// ```
/// use wsflow_codec::{FrameHeader, HeaderParse, OpCode, MAX_HEADER_LEN};
///
/// let header = FrameHeader::new(OpCode::Binary, 300).with_mask(Some([1, 2, 3, 4]));
/// let mut bytes = [0; MAX_HEADER_LEN];
/// let len = header.encode(&mut bytes);
/// assert_eq!(len, 2 + 2 + 4); // 16-bit length form, then the key
///
/// // The first byte alone is not enough; the parser says how many more bytes it needs.
/// assert_eq!(FrameHeader::parse(&bytes[..1]), Ok(HeaderParse::Incomplete { needed: 1 }));
/// assert_eq!(FrameHeader::parse(&bytes[..2]), Ok(HeaderParse::Incomplete { needed: 6 }));
/// assert_eq!(
///     FrameHeader::parse(&bytes[..len]),
///     Ok(HeaderParse::Complete { header, len })
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// The final fragment of a message (always set on control frames).
    pub fin: bool,
    /// RSV1, owned by an extension such as permessage-deflate.
    pub rsv1: bool,
    /// RSV2, unused by any standard extension.
    pub rsv2: bool,
    /// RSV3, unused by any standard extension.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

/// The result of [`FrameHeader::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderParse {
    /// A whole header was parsed from the first `len` bytes.
    Complete {
        /// The header.
        header: FrameHeader,
        /// How many bytes it took.
        len: usize,
    },
    /// More bytes are needed: at least `needed` more (the exact number once the first two
    /// bytes are known).
    Incomplete {
        /// The number of bytes still missing from the header.
        needed: usize,
    },
}

impl FrameHeader {
    /// A final, unmasked header with no RSV bits.
    pub const fn new(opcode: OpCode, payload_len: u64) -> Self {
        Self {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Sets the FIN bit.
    pub const fn with_fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    /// Sets the masking key.
    pub const fn with_mask(mut self, mask: Option<[u8; 4]>) -> Self {
        self.mask = mask;
        self
    }

    /// Sets RSV1.
    pub const fn with_rsv1(mut self, rsv1: bool) -> Self {
        self.rsv1 = rsv1;
        self
    }

    /// The RSV bits as `0b0RRR` (RSV1 is `0b100`).
    pub const fn rsv_bits(&self) -> u8 {
        ((self.rsv1 as u8) << 2) | ((self.rsv2 as u8) << 1) | (self.rsv3 as u8)
    }

    /// The header's first byte on the wire: FIN, the RSV bits and the opcode.
    ///
    /// ```
    /// use wsflow_codec::{FrameHeader, OpCode};
    ///
    /// assert_eq!(FrameHeader::new(OpCode::Text, 5).first_byte(), 0x81);
    /// assert_eq!(FrameHeader::new(OpCode::Binary, 5).with_fin(false).with_rsv1(true).first_byte(), 0x42);
    /// ```
    #[inline]
    pub const fn first_byte(&self) -> u8 {
        ((self.fin as u8) << 7) | (self.rsv_bits() << 4) | self.opcode.as_u8()
    }

    /// Parses a header from the start of `src`.
    ///
    /// Checks the rules that hold whatever the connection: no reserved opcode, control frames
    /// final and at most 125 bytes, no 64-bit length with the top bit set. Those that depend on
    /// the connection (masking direction, RSV bits, size limit) are [`crate::FrameDecoder`]'s.
    /// Errors are reported as soon as the bytes that show them have arrived.
    #[inline]
    pub fn parse(src: &[u8]) -> Result<HeaderParse, ProtocolError> {
        let Some(&first) = src.first() else {
            return Ok(HeaderParse::Incomplete { needed: 2 });
        };
        let opcode = OpCode::from_u8(first & 0x0f)?;
        let fin = first & 0x80 != 0;
        if opcode.is_control() && !fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        let Some(&second) = src.get(1) else {
            return Ok(HeaderParse::Incomplete { needed: 1 });
        };
        let masked = second & 0x80 != 0;
        let short_len = second & 0x7f;
        if opcode.is_control() && short_len > 125 {
            // The extended length is not needed to know the frame is invalid.
            return Err(ProtocolError::ControlFrameTooLong(u64::from(short_len)));
        }
        let len_bytes = match short_len {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let header_len = 2 + len_bytes + if masked { 4 } else { 0 };
        let Some(head) = src.get(..header_len) else {
            if len_bytes == 8 && src.len() > 2 && src[2] & 0x80 != 0 {
                return Err(ProtocolError::InvalidPayloadLength);
            }
            return Ok(HeaderParse::Incomplete {
                needed: header_len - src.len(),
            });
        };
        let payload_len = match len_bytes {
            2 => u64::from(u16::from_be_bytes([head[2], head[3]])),
            8 => {
                let mut be = [0; 8];
                be.copy_from_slice(&head[2..10]);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidPayloadLength);
                }
                len
            }
            _ => u64::from(short_len),
        };
        // The key, when there is one, is the last four bytes of the header.
        let mask = if masked {
            head.last_chunk::<4>().copied()
        } else {
            None
        };
        Ok(HeaderParse::Complete {
            header: Self {
                fin,
                rsv1: first & 0x40 != 0,
                rsv2: first & 0x20 != 0,
                rsv3: first & 0x10 != 0,
                opcode,
                mask,
                payload_len,
            },
            len: header_len,
        })
    }

    /// The number of bytes [`FrameHeader::encode`] writes for this header.
    pub const fn encoded_len(&self) -> usize {
        let len_bytes = if self.payload_len < 126 {
            0
        } else if self.payload_len <= 0xffff {
            2
        } else {
            8
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header in its smallest form into `dst` and returns its length.
    #[inline]
    pub fn encode(&self, dst: &mut [u8; MAX_HEADER_LEN]) -> usize {
        dst[0] = self.first_byte();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut len = 2;
        if self.payload_len < 126 {
            dst[1] = mask_bit | self.payload_len as u8;
        } else if self.payload_len <= 0xffff {
            dst[1] = mask_bit | 126;
            dst[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
            len = 4;
        } else {
            dst[1] = mask_bit | 127;
            dst[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            len = 10;
        }
        if let Some(key) = self.mask {
            dst[len..len + 4].copy_from_slice(&key);
            len += 4;
        }
        len
    }

    /// Appends the header in its smallest form to `dst`.
    #[inline]
    pub fn encode_to(&self, dst: &mut impl BufMut) {
        let mut bytes = [0; MAX_HEADER_LEN];
        let len = self.encode(&mut bytes);
        dst.put_slice(&bytes[..len]);
    }
}

/// A whole frame, with the fields of WebSocket-Node's `WebSocketFrame`.
///
/// A received frame's payload is already unmasked; `mask` then records the key it carried.
/// When encoding, a `mask` makes [`Frame::encode`] mask the payload with that key.
///
/// ```
/// use bytes::BytesMut;
/// use wsflow_codec::{Frame, FrameDecoder, OpCode, Role};
///
/// let frame = Frame::new(OpCode::Text, "hi").with_mask(Some([9, 8, 7, 6]));
/// let mut wire = BytesMut::new();
/// frame.encode(&mut wire);
///
/// let mut server = FrameDecoder::new(Role::Server);
/// let received = server.decode(&mut wire).unwrap().unwrap();
/// assert_eq!(received, frame);
/// assert_eq!(&received.payload[..], b"hi");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The final fragment of a message.
    pub fin: bool,
    /// RSV1.
    pub rsv1: bool,
    /// RSV2.
    pub rsv2: bool,
    /// RSV3.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key.
    pub mask: Option<[u8; 4]>,
    /// The (unmasked) payload.
    pub payload: Bytes,
}

impl Frame {
    /// A final, unmasked frame with no RSV bits.
    pub fn new(opcode: OpCode, payload: impl Into<Bytes>) -> Self {
        Self {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload: payload.into(),
        }
    }

    /// A close frame with a status code and reason, checked as [`CloseFrame::encode`] does.
    ///
    /// ```
    /// use wsflow_codec::{CloseCode, Frame};
    ///
    /// let frame = Frame::close(CloseCode::NORMAL, "bye").unwrap();
    /// assert_eq!(frame.close_status(), Some(CloseCode::NORMAL));
    /// assert!(Frame::close(CloseCode::ABNORMAL, "").is_err());
    /// ```
    pub fn close(code: CloseCode, reason: &str) -> Result<Self, Error> {
        let mut payload = BytesMut::with_capacity(2 + reason.len());
        CloseFrame::encode(code, reason, &mut payload)?;
        Ok(Self::new(OpCode::Close, payload.freeze()))
    }

    /// Sets the FIN bit.
    pub fn with_fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    /// Sets the masking key used by [`Frame::encode`].
    pub fn with_mask(mut self, mask: Option<[u8; 4]>) -> Self {
        self.mask = mask;
        self
    }

    /// The payload length (WebSocket-Node's `length`).
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    /// The header this frame is sent with.
    pub fn header(&self) -> FrameHeader {
        FrameHeader {
            fin: self.fin,
            rsv1: self.rsv1,
            rsv2: self.rsv2,
            rsv3: self.rsv3,
            opcode: self.opcode,
            mask: self.mask,
            payload_len: self.payload.len() as u64,
        }
    }

    /// The frame `header` announced, carrying `payload` (as long as the header says).
    #[inline]
    pub(crate) fn from_header(header: FrameHeader, payload: Bytes) -> Self {
        Self {
            fin: header.fin,
            rsv1: header.rsv1,
            rsv2: header.rsv2,
            rsv3: header.rsv3,
            opcode: header.opcode,
            mask: header.mask,
            payload,
        }
    }

    /// The status code of a close frame that carries one (WebSocket-Node's `closeStatus`).
    pub fn close_status(&self) -> Option<CloseCode> {
        if self.opcode != OpCode::Close || self.payload.len() < 2 {
            return None;
        }
        Some(CloseCode::from(u16::from_be_bytes([
            self.payload[0],
            self.payload[1],
        ])))
    }

    /// Appends the encoded frame to `dst`, masking the payload if `mask` is set.
    pub fn encode(&self, dst: &mut BytesMut) {
        self.header().encode_to(dst);
        let start = dst.len();
        dst.extend_from_slice(&self.payload);
        if let Some(key) = self.mask {
            apply_mask(&mut dst[start..], key, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_complete(bytes: &[u8]) -> (FrameHeader, usize) {
        match FrameHeader::parse(bytes) {
            Ok(HeaderParse::Complete { header, len }) => (header, len),
            other => panic!("expected a complete header, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_rfc_examples() {
        // Single-frame unmasked text "Hello".
        let (header, len) = parse_complete(&[0x81, 0x05]);
        assert_eq!(len, 2);
        assert!(header.fin);
        assert_eq!(header.opcode, OpCode::Text);
        assert_eq!(header.payload_len, 5);
        // Masked "Hello".
        let (header, len) = parse_complete(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(len, 6);
        assert_eq!(header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        // 256 bytes binary in the 16-bit form, 64 KiB in the 64-bit form.
        assert_eq!(parse_complete(&[0x82, 0x7e, 0x01, 0x00]).0.payload_len, 256);
        let (header, len) = parse_complete(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!((header.payload_len, len), (65536, 10));
        // Fragments: "Hel" not final, then a final continuation.
        assert!(!parse_complete(&[0x01, 0x03]).0.fin);
        assert_eq!(parse_complete(&[0x80, 0x02]).0.opcode, OpCode::Continuation);
    }

    #[test]
    fn says_how_many_bytes_are_missing() {
        let mut bytes = [0; MAX_HEADER_LEN];
        let header = FrameHeader::new(OpCode::Binary, 1 << 20).with_mask(Some([1, 2, 3, 4]));
        let len = header.encode(&mut bytes);
        assert_eq!(len, 14);
        for have in 0..len {
            let expected = if have < 2 { 2 - have } else { len - have };
            assert_eq!(
                FrameHeader::parse(&bytes[..have]),
                Ok(HeaderParse::Incomplete { needed: expected }),
                "with {have} bytes"
            );
        }
    }

    #[test]
    fn refuses_reserved_opcodes() {
        for op in (0x3..=0x7).chain(0xb..=0xf) {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn refuses_bad_control_frames_before_their_payload() {
        assert_eq!(
            FrameHeader::parse(&[0x09]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            FrameHeader::parse(&[0x89, 0x7e]),
            Err(ProtocolError::ControlFrameTooLong(126))
        );
        // 125 bytes is the largest allowed.
        assert_eq!(parse_complete(&[0x8a, 0x7d]).0.payload_len, 125);
    }

    #[test]
    fn refuses_the_top_bit_of_a_64_bit_length_as_soon_as_it_arrives() {
        assert_eq!(
            FrameHeader::parse(&[0x82, 0x7f, 0x80]),
            Err(ProtocolError::InvalidPayloadLength)
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::InvalidPayloadLength)
        );
        let (header, _) =
            parse_complete(&[0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(header.payload_len, (1 << 63) - 1);
    }

    #[test]
    fn encodes_the_smallest_length_form() {
        for (len, expected) in [
            (0u64, 2usize),
            (125, 2),
            (126, 4),
            (0xffff, 4),
            (0x1_0000, 10),
            (u64::MAX >> 1, 10),
        ] {
            let header = FrameHeader::new(OpCode::Binary, len);
            let mut bytes = [0; MAX_HEADER_LEN];
            assert_eq!(header.encode(&mut bytes), expected, "len {len}");
            assert_eq!(header.encoded_len(), expected);
            assert_eq!(parse_complete(&bytes[..expected]).0, header);
        }
    }

    #[test]
    fn rsv_bits_round_trip() {
        let mut header = FrameHeader::new(OpCode::Text, 3);
        header.rsv1 = true;
        header.rsv3 = true;
        assert_eq!(header.rsv_bits(), 0b101);
        let mut bytes = [0; MAX_HEADER_LEN];
        let len = header.encode(&mut bytes);
        assert_eq!(bytes[0], 0b1101_0001);
        assert_eq!(parse_complete(&bytes[..len]).0, header);
    }

    #[test]
    fn opcode_classes() {
        assert!(OpCode::Ping.is_control());
        assert!(OpCode::Close.is_control());
        assert!(OpCode::Continuation.is_data());
        assert!(!OpCode::Binary.is_control());
    }
}
