//! Incremental frame decoding from a read buffer.
//!
//! [`FrameDecoder::decode`] takes frames off the front of a `BytesMut` that the caller fills
//! with whatever the socket delivered. It parses the header as soon as it is complete, refuses
//! a frame before any of its payload is buffered when the header breaks a rule, unmasks the
//! payload in place as it arrives (so partial payloads can be inspected, for example to fail
//! invalid UTF-8 early), and finally hands the payload out with `split_to(..).freeze()`:
//! no copy.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::frame::{Frame, FrameHeader, HeaderParse, OpCode};
use crate::mask::{apply_mask, unmask_whole_payload};
use crate::utf8::Utf8Validator;
use crate::utf8_bytes::Utf8Bytes;

/// Which end of the connection an endpoint is. Clients mask what they send; servers require
/// masked frames and never mask their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The endpoint that opened the connection.
    Client,
    /// The endpoint that accepted it.
    Server,
}

impl Role {
    /// Whether frames sent in this role carry a mask.
    pub const fn masks_outgoing(self) -> bool {
        matches!(self, Self::Client)
    }
}

/// The rules a [`FrameDecoder`] enforces beyond the wire format.
///
/// There is no unbounded configuration: the frame size limit defaults to WebSocket-Node's
/// (64 KiB for a server, 1 MiB for a client) and can only be raised explicitly.
///
/// ```
/// use wsflow_codec::{DecoderConfig, Role};
///
/// let config = DecoderConfig::new(Role::Server)
///     .max_frame_size(16 << 20)
///     .allowed_rsv_bits(0b100); // an extension such as permessage-deflate owns RSV1
/// assert_eq!(config.frame_size_limit(), 16 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecoderConfig {
    role: Role,
    max_frame_size: u64,
    allowed_rsv: u8,
}

impl DecoderConfig {
    /// The default for a server: 64 KiB frames.
    pub const DEFAULT_SERVER_MAX_FRAME_SIZE: usize = 64 * 1024;
    /// The default for a client: 1 MiB frames.
    pub const DEFAULT_CLIENT_MAX_FRAME_SIZE: usize = 1024 * 1024;

    /// The defaults for an endpoint of `role` (the role of the endpoint that decodes).
    pub const fn new(role: Role) -> Self {
        let max = match role {
            Role::Server => Self::DEFAULT_SERVER_MAX_FRAME_SIZE,
            Role::Client => Self::DEFAULT_CLIENT_MAX_FRAME_SIZE,
        };
        Self {
            role,
            max_frame_size: max as u64,
            allowed_rsv: 0,
        }
    }

    /// The largest payload a received frame may declare; a larger one fails with
    /// [`ProtocolError::FrameTooLarge`] (close code 1009) before its payload is read.
    pub const fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes as u64;
        self
    }

    /// The RSV bits (`0b0RRR`, RSV1 = `0b100`) that negotiated extensions define; any other set
    /// bit fails with [`ProtocolError::ReservedBitsSet`].
    pub const fn allowed_rsv_bits(mut self, bits: u8) -> Self {
        self.allowed_rsv = bits & 0b111;
        self
    }

    /// The role of the decoding endpoint.
    pub const fn role(&self) -> Role {
        self.role
    }

    /// The configured frame size limit.
    pub const fn frame_size_limit(&self) -> usize {
        self.max_frame_size as usize
    }

    /// Checks the rules that depend on the connection: masking direction, RSV bits, size.
    pub fn check(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedClientFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedServerFrame),
            _ => {}
        }
        let rsv = header.rsv_bits() & !self.allowed_rsv;
        if rsv != 0 {
            return Err(ProtocolError::ReservedBitsSet(header.rsv_bits()));
        }
        if header.payload_len > self.max_frame_size {
            return Err(ProtocolError::FrameTooLarge {
                len: header.payload_len,
                max: self.max_frame_size,
            });
        }
        Ok(())
    }
}

/// From this length a masked text frame is left by the short path to
/// [`FrameDecoder::decode_whole_text_frame`]. Its one pass took 0.68 to 0.80 of the time of
/// unmasking and then validating from 4 KiB to 64 KiB (`cargo bench --bench codec --
/// unmask_and_validate`), but it takes frames one at a time, not a burst at once: with 16
/// messages in flight the echo server gained 2.5% at 8 KiB and 5.8% at 16 KiB, and lost 7% at
/// 4 KiB.
const WHOLE_TEXT_MIN_LEN: usize = 8192;

/// A frame whose header has been consumed but whose payload is still arriving.
#[derive(Clone, Copy, Debug)]
struct PartialFrame {
    header: FrameHeader,
    /// How many bytes at the front of the buffer are already unmasked.
    unmasked: usize,
}

/// Decodes frames from a growing buffer, one at a time.
///
/// Call [`FrameDecoder::decode`] after each read; it returns `Ok(None)` until a whole frame is
/// buffered. Between calls, [`FrameDecoder::partial_frame`] shows the header and the unmasked
/// payload received so far. After an error the stream is out of sync: fail the connection.
///
/// ```
/// use bytes::BytesMut;
/// use wsflow_codec::{Frame, FrameDecoder, OpCode, Role};
///
/// let mut wire = BytesMut::new();
/// Frame::new(OpCode::Binary, vec![7u8; 1000]).encode(&mut wire);
///
/// let mut client = FrameDecoder::new(Role::Client);
/// let mut buf = BytesMut::new();
/// for chunk in wire.chunks(100) {
///     assert!(client.decode(&mut buf).unwrap().is_none());
///     buf.extend_from_slice(chunk);
/// }
/// let frame = client.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(frame.payload.len(), 1000);
/// assert!(buf.is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    config: DecoderConfig,
    partial: Option<PartialFrame>,
}

impl FrameDecoder {
    /// A decoder with the default limits for an endpoint of `role`.
    pub const fn new(role: Role) -> Self {
        Self::with_config(DecoderConfig::new(role))
    }

    /// A decoder with the given rules.
    pub const fn with_config(config: DecoderConfig) -> Self {
        Self {
            config,
            partial: None,
        }
    }

    /// The rules in force.
    pub const fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Changes the rules; the change applies from the next frame header.
    pub fn set_config(&mut self, config: DecoderConfig) {
        self.config = config;
    }

    /// The usual frame, taken by a shorter path: if `src` starts with a whole text or binary
    /// frame that is a message of its own (final, no RSV bits), with a length of at most 16
    /// bits (under 64 KiB) and no longer than `max_payload` or the frame size limit, and
    /// masked as the role requires, cuts it off `src` and returns its opcode and unmasked
    /// payload, as [`FrameDecoder::decode`] would. Returns `None`, leaving `src` untouched, for
    /// every other frame, including one that breaks a rule: `decode` then takes it, and
    /// reports the error. Between frames only (`None` while a frame is in progress).
    ///
    /// A masked text frame of 8 KiB or more is left too, for
    /// [`FrameDecoder::decode_whole_text_frame`], which unmasks and validates it in one pass
    /// (the text of a frame taken here is validated after it is unmasked).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use wsflow_codec::{Frame, FrameDecoder, OpCode, Role};
    ///
    /// let mut wire = BytesMut::new();
    /// Frame::new(OpCode::Text, "hi").with_mask(Some([1, 2, 3, 4])).encode(&mut wire);
    /// Frame::new(OpCode::Ping, "").with_mask(Some([1, 2, 3, 4])).encode(&mut wire);
    ///
    /// let mut server = FrameDecoder::new(Role::Server);
    /// let (opcode, payload) = server.decode_short_data_frame(&mut wire, 1024).unwrap();
    /// assert_eq!((opcode, &payload[..]), (OpCode::Text, &b"hi"[..]));
    /// // A control frame is left for `decode`.
    /// assert!(server.decode_short_data_frame(&mut wire, 1024).is_none());
    /// assert_eq!(server.decode(&mut wire).unwrap().unwrap().opcode, OpCode::Ping);
    /// ```
    #[inline]
    pub fn decode_short_data_frame(
        &mut self,
        src: &mut BytesMut,
        max_payload: usize,
    ) -> Option<(OpCode, Bytes)> {
        if self.partial.is_some() {
            return None;
        }
        let (header_len, payload_len) = self.short_data_frame_at(src, max_payload)?;
        let mut wire = src.split_to(header_len + payload_len);
        unmask_short_data_frame(&mut wire, header_len);
        let opcode = short_data_frame_opcode(wire[0]);
        let mut payload = wire.freeze();
        payload.advance(header_len);
        Some((opcode, payload))
    }

    /// [`FrameDecoder::decode_short_data_frame`] for a burst: every whole short frame at the
    /// front of `src`, cut off in one piece and unmasked. The frames hand out their messages
    /// one at a time, each payload a slice of the piece, so a burst of small messages costs
    /// one cut of the read buffer instead of one per message. `None`, leaving `src`
    /// untouched, when the first frame is not such a frame.
    ///
    /// The frames are checked against the rules when they are cut, so a rule changed
    /// (with [`FrameDecoder::set_config`]) applies from the frame after the last of them.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use wsflow_codec::{Frame, FrameDecoder, OpCode, Role};
    ///
    /// let mut wire = BytesMut::new();
    /// Frame::new(OpCode::Text, "hi").with_mask(Some([1, 2, 3, 4])).encode(&mut wire);
    /// Frame::new(OpCode::Binary, vec![7; 300]).with_mask(Some([5, 6, 7, 8])).encode(&mut wire);
    /// Frame::new(OpCode::Ping, "").with_mask(Some([1, 2, 3, 4])).encode(&mut wire);
    ///
    /// let mut server = FrameDecoder::new(Role::Server);
    /// let mut frames = server.decode_short_data_frames(&mut wire, 1024).unwrap();
    /// let (opcode, payload) = frames.next().unwrap();
    /// assert_eq!((opcode, &payload[..]), (OpCode::Text, &b"hi"[..]));
    /// let (opcode, payload) = frames.next().unwrap();
    /// assert_eq!((opcode, &payload[..]), (OpCode::Binary, &[7; 300][..]));
    /// assert!(frames.next().is_none() && frames.is_empty());
    /// // The ping is left for `decode`.
    /// assert_eq!(server.decode(&mut wire).unwrap().unwrap().opcode, OpCode::Ping);
    /// ```
    pub fn decode_short_data_frames(
        &mut self,
        src: &mut BytesMut,
        max_payload: usize,
    ) -> Option<ShortDataFrames> {
        if self.partial.is_some() {
            return None;
        }
        let mut end = 0;
        while let Some((header_len, payload_len)) =
            self.short_data_frame_at(&src[end..], max_payload)
        {
            let frame_end = end + header_len + payload_len;
            unmask_short_data_frame(&mut src[end..frame_end], header_len);
            end = frame_end;
        }
        (end > 0).then(|| ShortDataFrames {
            wire: src.split_to(end).freeze(),
        })
    }

    /// A text message that is one whole frame, of any length: if `src` starts with a whole
    /// text frame that is a message of its own (final, no RSV bits), no longer than
    /// `max_payload` and within the rules, cuts it off `src` and returns its payload unmasked
    /// and validated, in one pass where the CPU allows (see
    /// [`Utf8Validator::unmask_and_feed`]), or [`ProtocolError::InvalidUtf8`] (the frame
    /// cut off all the same). Returns `None`, leaving `src` untouched, for every other
    /// frame, including one that breaks a rule: [`FrameDecoder::decode`] then takes it, and
    /// reports the error. Between frames only (`None` while a frame is in progress).
    ///
    /// [`FrameDecoder::decode`] unmasks a frame as it arrives and leaves the text to be
    /// validated after, in a second pass over it; for a frame too large for the first-level
    /// cache this path saves most of the unmasking.
    ///
    /// [`Utf8Validator::unmask_and_feed`]: crate::Utf8Validator::unmask_and_feed
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use wsflow_codec::{Frame, FrameDecoder, OpCode, Role};
    ///
    /// let text = "κόσμε ".repeat(5_000); // 55 KB, within a server's default frame limit
    /// let mut wire = BytesMut::new();
    /// Frame::new(OpCode::Text, text.clone()).with_mask(Some([1, 2, 3, 4])).encode(&mut wire);
    /// Frame::new(OpCode::Binary, "").with_mask(Some([1, 2, 3, 4])).encode(&mut wire);
    ///
    /// let mut server = FrameDecoder::new(Role::Server);
    /// let message = server.decode_whole_text_frame(&mut wire, 1 << 20).unwrap().unwrap();
    /// assert_eq!(&message[..], text);
    /// // A binary frame is left for `decode`.
    /// assert!(server.decode_whole_text_frame(&mut wire, 1 << 20).is_none());
    /// assert_eq!(server.decode(&mut wire).unwrap().unwrap().opcode, OpCode::Binary);
    /// ```
    pub fn decode_whole_text_frame(
        &mut self,
        src: &mut BytesMut,
        max_payload: usize,
    ) -> Option<Result<Utf8Bytes, ProtocolError>> {
        // A final text frame without RSV bits, and nothing in progress.
        if src.first() != Some(&0x81) || self.partial.is_some() {
            return None;
        }
        let HeaderParse::Complete { header, len } = FrameHeader::parse(src).ok()? else {
            return None;
        };
        self.config.check(&header).ok()?;
        // `check` bounded the length by the configured limit, which is a usize.
        let payload_len = header.payload_len as usize;
        if payload_len > max_payload || src.len() - len < payload_len {
            return None;
        }
        let mut payload = src.split_to(len + payload_len);
        payload.advance(len);
        let text = match header.mask {
            Some(key) => Utf8Bytes::unmask_from(payload, key),
            None => Utf8Bytes::try_from(payload.freeze()),
        };
        Some(text.map_err(|_| ProtocolError::InvalidUtf8))
    }

    /// The header and payload lengths of the whole short data frame `src` starts with (see
    /// [`FrameDecoder::decode_short_data_frame`]); `None` for every other start.
    #[inline]
    fn short_data_frame_at(&self, src: &[u8], max_payload: usize) -> Option<(usize, usize)> {
        let &[first, second, ..] = src else {
            return None;
        };
        // FIN set, RSV bits clear, and a data opcode that starts a message.
        if !matches!(first, 0x81 | 0x82) {
            return None;
        }
        let masked = second & 0x80 != 0;
        if masked != (self.config.role == Role::Server) {
            return None;
        }
        let mask_len = if masked { 4 } else { 0 };
        let (payload_len, header_len) = match second & 0x7f {
            127 => return None,
            126 => {
                let &[_, _, high, low, ..] = src else {
                    return None;
                };
                let len = usize::from(u16::from_be_bytes([high, low]));
                if masked && first == 0x81 && len >= WHOLE_TEXT_MIN_LEN {
                    // Left to `decode_whole_text_frame`, which unmasks and validates it in
                    // one pass.
                    return None;
                }
                (len, 4 + mask_len)
            }
            short => (usize::from(short), 2 + mask_len),
        };
        if payload_len > max_payload || payload_len as u64 > self.config.max_frame_size {
            return None;
        }
        if src.len() < header_len + payload_len {
            return None;
        }
        Some((header_len, payload_len))
    }

    /// Takes the next whole frame off the front of `src`, unmasking its payload.
    ///
    /// Returns `Ok(None)` when more bytes are needed ([`FrameDecoder::bytes_needed`] says how
    /// many). The header is removed from `src` as soon as it parses, so a partial payload sits
    /// at the front of `src` between calls.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        let partial = match &mut self.partial {
            Some(partial) => partial,
            None => match FrameHeader::parse(src)? {
                HeaderParse::Incomplete { .. } => return Ok(None),
                HeaderParse::Complete { header, len } => {
                    self.config.check(&header)?;
                    // `check` bounded the length by the configured limit, which is a usize.
                    let payload_len = header.payload_len as usize;
                    if src.len() - len >= payload_len {
                        // The whole frame is here, the usual case: cut header and payload off
                        // together and drop the header from the cut, which is cheaper than
                        // advancing past it in `src` first.
                        let mut wire = src.split_to(len + payload_len);
                        if let Some(key) = header.mask {
                            apply_mask(&mut wire[len..], key, 0);
                        }
                        let mut payload = wire.freeze();
                        payload.advance(len);
                        return Ok(Some(Frame::from_header(header, payload)));
                    }
                    src.advance(len);
                    self.partial.insert(PartialFrame {
                        header,
                        unmasked: 0,
                    })
                }
            },
        };
        // Bounded by `check` when the header parsed, as above.
        let payload_len = partial.header.payload_len as usize;
        let available = src.len().min(payload_len);
        if let Some(key) = partial.header.mask {
            if available > partial.unmasked {
                apply_mask(&mut src[partial.unmasked..available], key, partial.unmasked);
                partial.unmasked = available;
            }
        } else {
            partial.unmasked = available;
        }
        if available < payload_len {
            return Ok(None);
        }
        let header = partial.header;
        self.partial = None;
        let payload = src.split_to(payload_len).freeze();
        Ok(Some(Frame::from_header(header, payload)))
    }

    /// For a masked data frame in progress whose payload is text: unmasks the payload bytes
    /// that arrived since the last call (they follow, at the front of `src`, the ones
    /// [`FrameDecoder::partial_frame`] showed) and feeds them to `utf8`, in one pass where
    /// the CPU allows (see [`Utf8Validator::unmask_and_feed`]). `validated` says how many
    /// bytes of this frame's payload `utf8` has seen; unless that is every byte unmasked so
    /// far, nothing is done. Returns how many bytes of the payload are unmasked (and so
    /// validated) now, or [`ProtocolError::InvalidUtf8`] (the bytes unmasked all the same).
    ///
    /// Returns `None`, changing nothing, between frames, for an unmasked frame or a control
    /// frame, and when `validated` does not match: [`FrameDecoder::decode`] then unmasks the
    /// new bytes, to be validated after, as for any frame. A frame too long for one read
    /// arrives in pieces, and this path saves most of the unmasking of each piece but the
    /// first (the one the header came with, unmasked by `decode`).
    ///
    /// [`Utf8Validator::unmask_and_feed`]: crate::Utf8Validator::unmask_and_feed
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use wsflow_codec::{Frame, FrameDecoder, OpCode, Role, Utf8Validator};
    ///
    /// let text = "κόσμε ".repeat(1_000);
    /// let mut wire = BytesMut::new();
    /// Frame::new(OpCode::Text, text.clone()).with_mask(Some([1, 2, 3, 4])).encode(&mut wire);
    ///
    /// let mut server = FrameDecoder::new(Role::Server);
    /// let mut utf8 = Utf8Validator::new();
    /// let mut src = BytesMut::new();
    /// src.extend_from_slice(&wire.split_to(3_000)); // the header and a first piece
    /// assert!(server.decode(&mut src).unwrap().is_none());
    /// let first = server.partial_frame(&src).unwrap().1.len();
    /// utf8.feed(&src[..first]).unwrap();
    ///
    /// src.extend_from_slice(&wire); // the rest
    /// let validated = server.unmask_partial_text(&mut src, &mut utf8, first).unwrap().unwrap();
    /// assert_eq!(validated, text.len());
    /// utf8.finish().unwrap();
    /// let frame = server.decode(&mut src).unwrap().unwrap();
    /// assert_eq!(frame.payload, text.as_bytes());
    /// ```
    pub fn unmask_partial_text(
        &mut self,
        src: &mut BytesMut,
        utf8: &mut Utf8Validator,
        validated: usize,
    ) -> Option<Result<usize, ProtocolError>> {
        let partial = self.partial.as_mut()?;
        let key = partial.header.mask?;
        if !partial.header.opcode.is_data() || validated != partial.unmasked {
            return None;
        }
        // Bounded by `check` when the header parsed (see `decode`).
        let available = src.len().min(partial.header.payload_len as usize);
        let start = partial.unmasked;
        if available <= start {
            return Some(Ok(start));
        }
        partial.unmasked = available;
        Some(
            utf8.unmask_and_feed(&mut src[start..available], key, start)
                .map(|()| available),
        )
    }

    /// The frame in progress: its header and the unmasked payload received so far, which
    /// sits at the front of `src`. `None` between frames.
    pub fn partial_frame<'a>(&self, src: &'a BytesMut) -> Option<(&FrameHeader, &'a [u8])> {
        self.partial
            .as_ref()
            .map(|partial| (&partial.header, &src[..partial.unmasked.min(src.len())]))
    }

    /// How many more bytes `src` needs to hold the whole frame it starts with (or the rest of
    /// the frame in progress): the rest of the header while it is incomplete, then the rest
    /// of the frame. 0 once the frame is whole, and for a header that breaks a rule (which
    /// [`FrameDecoder::decode`] reports), so the answer never exceeds the frame size limit
    /// by more than a header. A reader can size its next read by it.
    pub fn bytes_needed(&self, src: &BytesMut) -> usize {
        match &self.partial {
            Some(partial) => (partial.header.payload_len as usize).saturating_sub(src.len()),
            None => match FrameHeader::parse(src) {
                Ok(HeaderParse::Incomplete { needed }) => needed,
                // `check` bounds the length by the configured limit, which is a usize.
                Ok(HeaderParse::Complete { header, len }) if self.config.check(&header).is_ok() => {
                    len.saturating_add(header.payload_len as usize)
                        .saturating_sub(src.len())
                }
                _ => 0,
            },
        }
    }
}

/// Whole short data frames cut off the input in one piece and unmasked, by
/// [`FrameDecoder::decode_short_data_frames`]: an iterator over their messages' opcodes and
/// payloads, in order. Empty once every message is taken (and by default).
#[derive(Clone, Debug, Default)]
pub struct ShortDataFrames {
    /// The frames as they came, headers included, payloads unmasked.
    wire: Bytes,
}

impl ShortDataFrames {
    /// Whether every message has been taken.
    ///
    /// ```
    /// assert!(wsflow_codec::ShortDataFrames::default().is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.wire.is_empty()
    }
}

impl Iterator for ShortDataFrames {
    type Item = (OpCode, Bytes);

    /// The next message's opcode (text or binary) and payload.
    #[inline]
    fn next(&mut self) -> Option<(OpCode, Bytes)> {
        // The frames were checked when they were cut: each header is whole, and its length
        // (7 or 16 bits) lies within the piece.
        let &[first, second, ..] = &self.wire[..] else {
            return None;
        };
        let mask_len = if second & 0x80 != 0 { 4 } else { 0 };
        let (payload_len, header_len) = match second & 0x7f {
            126 => (
                usize::from(u16::from_be_bytes([self.wire[2], self.wire[3]])),
                4 + mask_len,
            ),
            short => (usize::from(short), 2 + mask_len),
        };
        let end = header_len + payload_len;
        let payload = if end == self.wire.len() {
            // The last message takes the piece's own reference to the buffer.
            let mut last = std::mem::take(&mut self.wire);
            last.advance(header_len);
            last
        } else {
            let payload = self.wire.slice(header_len..end);
            self.wire.advance(end);
            payload
        };
        Some((short_data_frame_opcode(first), payload))
    }
}

/// The opcode of a short data frame, from its first byte (0x81 or 0x82).
#[inline]
fn short_data_frame_opcode(first: u8) -> OpCode {
    if first == 0x81 {
        OpCode::Text
    } else {
        OpCode::Binary
    }
}

/// Unmasks a whole short data frame in place; its key, when it has one, is the last four
/// bytes of its header.
#[inline(always)]
fn unmask_short_data_frame(frame: &mut [u8], header_len: usize) {
    let (head, body) = frame.split_at_mut(header_len);
    if head[1] & 0x80 != 0
        && let Some(&key) = head.last_chunk::<4>()
    {
        unmask_whole_payload(body, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::OpCode;
    use bytes::Bytes;

    fn wire(frame: &Frame) -> BytesMut {
        let mut out = BytesMut::new();
        frame.encode(&mut out);
        out
    }

    #[test]
    fn server_refuses_unmasked_frames_and_client_refuses_masked_ones() {
        let unmasked = wire(&Frame::new(OpCode::Text, "x"));
        let masked = wire(&Frame::new(OpCode::Text, "x").with_mask(Some([1, 2, 3, 4])));
        assert_eq!(
            FrameDecoder::new(Role::Server).decode(&mut unmasked.clone()),
            Err(ProtocolError::UnmaskedClientFrame)
        );
        assert_eq!(
            FrameDecoder::new(Role::Client).decode(&mut masked.clone()),
            Err(ProtocolError::MaskedServerFrame)
        );
        assert!(
            FrameDecoder::new(Role::Client)
                .decode(&mut unmasked.clone())
                .unwrap()
                .is_some()
        );
        assert!(
            FrameDecoder::new(Role::Server)
                .decode(&mut masked.clone())
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn rsv_bits_need_an_extension() {
        let mut frame = Frame::new(OpCode::Text, "x");
        frame.rsv1 = true;
        let bytes = wire(&frame);
        assert_eq!(
            FrameDecoder::new(Role::Client).decode(&mut bytes.clone()),
            Err(ProtocolError::ReservedBitsSet(0b100))
        );
        let config = DecoderConfig::new(Role::Client).allowed_rsv_bits(0b100);
        assert!(
            FrameDecoder::with_config(config)
                .decode(&mut bytes.clone())
                .unwrap()
                .is_some()
        );
        frame.rsv2 = true;
        assert_eq!(
            FrameDecoder::with_config(config).decode(&mut wire(&frame)),
            Err(ProtocolError::ReservedBitsSet(0b110))
        );
    }

    #[test]
    fn a_huge_declared_frame_is_refused_from_its_header_alone() {
        // A header declaring 1 TiB, and no payload at all.
        let mut src = BytesMut::from(&[0x82, 0x7f, 0, 0, 1, 0, 0, 0, 0, 0][..]);
        assert_eq!(
            FrameDecoder::new(Role::Client).decode(&mut src),
            Err(ProtocolError::FrameTooLarge {
                len: 1 << 40,
                max: DecoderConfig::DEFAULT_CLIENT_MAX_FRAME_SIZE as u64
            })
        );
    }

    #[test]
    fn frame_at_the_limit_is_accepted() {
        let config = DecoderConfig::new(Role::Client).max_frame_size(10);
        let mut ok = wire(&Frame::new(OpCode::Binary, vec![0u8; 10]));
        assert!(
            FrameDecoder::with_config(config)
                .decode(&mut ok)
                .unwrap()
                .is_some()
        );
        let mut too_big = wire(&Frame::new(OpCode::Binary, vec![0u8; 11]));
        assert_eq!(
            FrameDecoder::with_config(config).decode(&mut too_big),
            Err(ProtocolError::FrameTooLarge { len: 11, max: 10 })
        );
    }

    #[test]
    fn partial_payload_is_unmasked_as_it_arrives() {
        let payload = Bytes::from_static(b"incremental payload");
        let bytes = wire(&Frame::new(OpCode::Text, payload.clone()).with_mask(Some([5, 6, 7, 8])));
        let mut decoder = FrameDecoder::new(Role::Server);
        let mut src = BytesMut::new();
        for (i, byte) in bytes.iter().enumerate() {
            src.extend_from_slice(&[*byte]);
            match decoder.decode(&mut src).unwrap() {
                Some(frame) => {
                    assert_eq!(i, bytes.len() - 1);
                    assert_eq!(frame.payload, payload);
                }
                None => {
                    if let Some((header, partial)) = decoder.partial_frame(&src) {
                        assert_eq!(header.opcode, OpCode::Text);
                        assert_eq!(partial, &payload[..partial.len()]);
                        assert_eq!(partial.len(), src.len());
                    }
                }
            }
        }
        assert!(decoder.partial_frame(&src).is_none());
    }

    #[test]
    fn pipelined_frames_come_out_in_order() {
        let mut src = BytesMut::new();
        for i in 0..5u8 {
            Frame::new(OpCode::Binary, vec![i; usize::from(i) * 100]).encode(&mut src);
        }
        let mut decoder = FrameDecoder::new(Role::Client);
        for i in 0..5u8 {
            let frame = decoder.decode(&mut src).unwrap().unwrap();
            assert_eq!(frame.payload, vec![i; usize::from(i) * 100]);
        }
        assert!(decoder.decode(&mut src).unwrap().is_none());
        assert_eq!(decoder.bytes_needed(&src), 2);
    }

    #[test]
    fn bytes_needed_covers_header_then_payload() {
        let bytes = wire(&Frame::new(OpCode::Binary, vec![1u8; 300]));
        let mut decoder = FrameDecoder::new(Role::Client);
        let mut src = BytesMut::from(&bytes[..3]);
        assert!(decoder.decode(&mut src).unwrap().is_none());
        assert_eq!(decoder.bytes_needed(&src), 1);
        src.extend_from_slice(&bytes[3..10]);
        assert!(decoder.decode(&mut src).unwrap().is_none());
        assert_eq!(decoder.bytes_needed(&src), 300 - 6);
        // A whole header not yet taken by `decode`: the rest of its frame.
        let src = BytesMut::from(&bytes[..10]);
        let fresh = FrameDecoder::new(Role::Client);
        assert_eq!(fresh.bytes_needed(&src), 4 + 300 - 10);
        assert_eq!(fresh.bytes_needed(&bytes), 0);
        // Over the frame size limit: nothing to read for, `decode` refuses it.
        let small = FrameDecoder::with_config(DecoderConfig::new(Role::Client).max_frame_size(100));
        assert_eq!(small.bytes_needed(&src), 0);
        assert!(small.clone().decode(&mut src.clone()).is_err());
    }

    #[test]
    fn a_whole_text_frame_comes_out_unmasked_and_validated_in_one_pass() {
        let text = "κόσμε 日本語のテキスト 𝄞 ".repeat(3000); // about 100 KB: a 64-bit length
        let config = DecoderConfig::new(Role::Server).max_frame_size(1 << 20);
        for len in [0, 5, 300, 700, 4099, 70_001] {
            let end = (len..).find(|&end| text.is_char_boundary(end)).unwrap();
            let payload = &text[..end];
            // Behind 0 to 63 bytes of an earlier frame, so the payload starts at every
            // offset from a cache line.
            for lead in [0, 1, 17, 63] {
                let mut src = BytesMut::from(&vec![b'x'; lead][..]);
                Frame::new(OpCode::Text, payload.to_owned())
                    .with_mask(Some([0x0f, 0xf0, 0x3c, 0xc3]))
                    .encode(&mut src);
                Frame::new(OpCode::Ping, "next")
                    .with_mask(Some([1, 2, 3, 4]))
                    .encode(&mut src);
                let _ = src.split_to(lead);
                let mut decoder = FrameDecoder::with_config(config);
                let message = decoder.decode_whole_text_frame(&mut src, 1 << 20).unwrap();
                assert_eq!(message.unwrap(), payload, "{end} bytes after {lead}");
                // The frame after it is intact.
                let next = decoder.decode(&mut src).unwrap().unwrap();
                assert_eq!(
                    (next.opcode, &next.payload[..]),
                    (OpCode::Ping, &b"next"[..])
                );
            }
        }
        // A client's (unmasked) text frame too.
        let mut src = wire(&Frame::new(OpCode::Text, text.clone()));
        let mut client = FrameDecoder::new(Role::Client);
        assert_eq!(
            client
                .decode_whole_text_frame(&mut src, 1 << 20)
                .unwrap()
                .unwrap(),
            text
        );
        assert!(src.is_empty());
    }

    #[test]
    fn the_short_path_leaves_masked_text_from_8_kib_to_the_one_pass() {
        let text = "κόσμε ".repeat(1000); // 11 KB
        let key = Some([1, 2, 3, 4]);
        for (len, short) in [(WHOLE_TEXT_MIN_LEN - 1, true), (WHOLE_TEXT_MIN_LEN, false)] {
            let payload = Bytes::copy_from_slice(&text.as_bytes()[..len]);
            let mut src = wire(&Frame::new(OpCode::Text, payload.clone()).with_mask(key));
            let mut decoder = FrameDecoder::new(Role::Server);
            assert_eq!(
                decoder
                    .clone()
                    .decode_short_data_frames(&mut src.clone(), 1 << 20)
                    .is_some(),
                short
            );
            assert_eq!(
                decoder.decode_short_data_frame(&mut src, 1 << 20).is_some(),
                short
            );
            if !short {
                let message = decoder.decode_whole_text_frame(&mut src, 1 << 20).unwrap();
                assert_eq!(message.unwrap().into_bytes(), payload);
            }
            assert!(src.is_empty());
        }
        // Binary frames, and a client's unmasked text, keep the short path.
        let binary = Frame::new(OpCode::Binary, vec![7; 9000]).with_mask(key);
        assert!(
            FrameDecoder::new(Role::Server)
                .decode_short_data_frame(&mut wire(&binary), 1 << 20)
                .is_some()
        );
        let text = Frame::new(OpCode::Text, "é".repeat(5000));
        assert!(
            FrameDecoder::new(Role::Client)
                .decode_short_data_frame(&mut wire(&text), 1 << 20)
                .is_some()
        );
    }

    #[test]
    fn invalid_text_in_a_whole_frame_is_refused_and_the_frame_taken() {
        let payload = "é".repeat(2000).into_bytes();
        for (at, wrong) in [(0, 0x80), (1001, 0xff), (3999, 0xc3)] {
            let mut bad = payload.clone();
            bad[at] = wrong;
            let mut src = BytesMut::new();
            Frame::new(OpCode::Text, bad)
                .with_mask(Some([9, 8, 7, 6]))
                .encode(&mut src);
            let mut decoder = FrameDecoder::new(Role::Server);
            let outcome = decoder.decode_whole_text_frame(&mut src, 1 << 20).unwrap();
            assert_eq!(
                outcome,
                Err(ProtocolError::InvalidUtf8),
                "{wrong:x} at {at}"
            );
            assert!(src.is_empty());
        }
    }

    #[test]
    fn every_other_frame_is_left_for_decode() {
        let key = Some([1, 2, 3, 4]);
        let text = |fin: bool| {
            Frame::new(OpCode::Text, "héllo")
                .with_fin(fin)
                .with_mask(key)
        };
        let whole = wire(&text(true));
        let cases: [(&str, BytesMut, usize); 6] = [
            (
                "a binary frame",
                wire(&Frame::new(OpCode::Binary, "x").with_mask(key)),
                100,
            ),
            ("a first fragment", wire(&text(false)), 100),
            (
                "RSV1 set",
                {
                    let mut bytes = whole.clone();
                    bytes[0] |= 0x40;
                    bytes
                },
                100,
            ),
            (
                "unmasked to a server",
                wire(&Frame::new(OpCode::Text, "héllo")),
                100,
            ),
            ("over max_payload", whole.clone(), 5),
            (
                "not whole yet",
                BytesMut::from(&whole[..whole.len() - 1]),
                100,
            ),
        ];
        for (what, src, max_payload) in cases {
            let mut after = src.clone();
            let mut decoder = FrameDecoder::new(Role::Server);
            assert!(
                decoder
                    .decode_whole_text_frame(&mut after, max_payload)
                    .is_none(),
                "{what}"
            );
            assert_eq!(after, src, "{what}: left untouched");
        }
        // Nor while a frame is in progress.
        let mut src =
            BytesMut::from(&wire(&Frame::new(OpCode::Binary, vec![0; 300]).with_mask(key))[..100]);
        let mut decoder = FrameDecoder::new(Role::Server);
        assert!(decoder.decode(&mut src).unwrap().is_none());
        src.extend_from_slice(&whole);
        assert!(decoder.decode_whole_text_frame(&mut src, 100).is_none());
    }

    /// Drives a decoder over `wire` in reads of the given sizes as a connection does: the
    /// pieces after the first through `unmask_partial_text`, the first through `decode`
    /// and a plain `feed`. Returns the frame, the validator's verdict, and how many pieces
    /// took the one pass.
    fn decode_text_in_pieces(
        wire: &[u8],
        reads: &[usize],
    ) -> (Option<Frame>, Result<(), ProtocolError>, usize) {
        let mut decoder = FrameDecoder::new(Role::Server);
        let mut utf8 = Utf8Validator::new();
        let mut validated = 0;
        let mut fused = 0;
        let mut src = BytesMut::new();
        let mut rest = wire;
        let mut sizes = reads.iter().copied().cycle();
        loop {
            let take = sizes.next().unwrap().min(rest.len());
            src.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if let Some(done) = decoder.unmask_partial_text(&mut src, &mut utf8, validated) {
                fused += 1;
                match done {
                    Ok(unmasked) => validated = unmasked,
                    Err(err) => return (None, Err(err), fused),
                }
            }
            match decoder.decode(&mut src).unwrap() {
                Some(frame) => {
                    let verdict = utf8
                        .feed(&frame.payload[validated..])
                        .and_then(|()| utf8.finish());
                    return (Some(frame), verdict, fused);
                }
                None => {
                    let prefix = decoder.partial_frame(&src).map_or(&[][..], |(_, p)| p);
                    if let Err(err) = utf8.feed(&prefix[validated..]) {
                        return (None, Err(err), fused);
                    }
                    validated = prefix.len();
                }
            }
        }
    }

    #[test]
    fn text_in_pieces_is_unmasked_and_validated_in_one_pass_after_the_first() {
        let text = "κόσμε, 日本語 🎉 ".repeat(400); // 10.8 KB, every length of code point
        let bytes =
            wire(&Frame::new(OpCode::Text, text.clone()).with_mask(Some([7, 0x9c, 3, 0xf1])));
        for reads in [
            &[1][..],
            &[2],
            &[3],
            &[5, 64],
            &[100],
            &[777, 13],
            &[4096],
            &[10_000],
        ] {
            let (frame, verdict, fused) = decode_text_in_pieces(&bytes, reads);
            let frame = frame.unwrap();
            assert_eq!(frame.payload, text.as_bytes(), "reads of {reads:?}");
            assert_eq!(verdict, Ok(()), "reads of {reads:?}");
            if reads[0] < bytes.len() {
                assert!(fused > 0, "reads of {reads:?}");
            }
        }
    }

    #[test]
    fn invalid_text_in_a_later_piece_is_refused_and_the_piece_unmasked() {
        let text = "é".repeat(3000).into_bytes();
        for (at, wrong) in [(2000, 0x80), (3001, 0xff), (5999, 0xc3), (4500, 0xed)] {
            let mut bad = text.clone();
            bad[at] = wrong;
            let bytes = wire(&Frame::new(OpCode::Text, bad).with_mask(Some([9, 8, 7, 6])));
            for reads in [&[1500][..], &[1000, 7], &[4100]] {
                let (_, verdict, _) = decode_text_in_pieces(&bytes, reads);
                assert_eq!(
                    verdict,
                    Err(ProtocolError::InvalidUtf8),
                    "{wrong:x} at {at}"
                );
            }
        }
        // The piece that failed is unmasked all the same.
        let mut bad = text.clone();
        bad[2500] = 0xff;
        let bytes = wire(&Frame::new(OpCode::Text, bad.clone()).with_mask(Some([1, 2, 3, 4])));
        let mut decoder = FrameDecoder::new(Role::Server);
        let mut src = BytesMut::from(&bytes[..1000]);
        assert!(decoder.decode(&mut src).unwrap().is_none());
        let first = src.len();
        let mut utf8 = Utf8Validator::new();
        utf8.feed(&src).unwrap();
        src.extend_from_slice(&bytes[1000..]);
        let outcome = decoder.unmask_partial_text(&mut src, &mut utf8, first);
        assert_eq!(outcome, Some(Err(ProtocolError::InvalidUtf8)));
        assert_eq!(&src[..], &bad[..]);
    }

    #[test]
    fn unmask_partial_text_leaves_every_other_frame_to_decode() {
        let key = Some([1, 2, 3, 4]);
        let cut = |frame: Frame, role: Role| {
            let bytes = wire(&frame);
            let mut decoder = FrameDecoder::new(role);
            let mut src = BytesMut::from(&bytes[..bytes.len() - 30]);
            assert!(decoder.decode(&mut src).unwrap().is_none());
            src.extend_from_slice(&bytes[bytes.len() - 30..]);
            (decoder, src)
        };
        let text = "héllo".repeat(20);
        let cases = [
            (
                "a ping",
                cut(
                    Frame::new(OpCode::Ping, text.clone()).with_mask(key),
                    Role::Server,
                ),
                0,
            ),
            (
                "unmasked",
                cut(Frame::new(OpCode::Text, text.clone()), Role::Client),
                0,
            ),
            (
                "validated behind",
                cut(
                    Frame::new(OpCode::Text, text.clone()).with_mask(key),
                    Role::Server,
                ),
                3,
            ),
        ];
        for (what, (mut decoder, src), behind) in cases {
            let mut after = src.clone();
            let seen = decoder.partial_frame(&src).unwrap().1.len();
            let mut utf8 = Utf8Validator::new();
            assert!(
                decoder
                    .unmask_partial_text(&mut after, &mut utf8, seen - behind)
                    .is_none(),
                "{what}"
            );
            assert_eq!(after, src, "{what}: left untouched");
            assert_eq!(
                decoder.decode(&mut after).unwrap().unwrap().payload,
                text.as_bytes(),
                "{what}"
            );
        }
        // Between frames: nothing in progress.
        let mut src = wire(&Frame::new(OpCode::Text, text.clone()).with_mask(key));
        let mut decoder = FrameDecoder::new(Role::Server);
        assert!(
            decoder
                .unmask_partial_text(&mut src, &mut Utf8Validator::new(), 0)
                .is_none()
        );
        // A continuation frame of a text message takes the one pass.
        let bytes = wire(&Frame::new(OpCode::Continuation, text.clone()).with_mask(key));
        let mut decoder = FrameDecoder::new(Role::Server);
        let mut src = BytesMut::from(&bytes[..20]);
        assert!(decoder.decode(&mut src).unwrap().is_none());
        let seen = decoder.partial_frame(&src).unwrap().1.len();
        let mut utf8 = Utf8Validator::new();
        utf8.feed(&src[..seen]).unwrap();
        src.extend_from_slice(&bytes[20..]);
        assert_eq!(
            decoder.unmask_partial_text(&mut src, &mut utf8, seen),
            Some(Ok(text.len()))
        );
        assert_eq!(
            decoder.decode(&mut src).unwrap().unwrap().payload,
            text.as_bytes()
        );
    }
}
