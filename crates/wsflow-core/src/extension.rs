//! The hook through which a negotiated extension (such as permessage-deflate, RFC 7692)
//! owns RSV bits and transforms message payloads.

use std::fmt;

use bytes::{Bytes, BytesMut};
use wsflow_codec::ProtocolError;

/// A per-message extension negotiated in the handshake.
///
/// The connection asks it to encode every outgoing data message (unless the sender opted out)
/// and to decode every incoming message whose first frame carries one of its RSV bits. Control
/// frames are never passed to it. It runs on the connection's thread, one message at a time.
pub trait Extension: fmt::Debug + Send {
    /// The RSV bits the extension uses, as `0b0RRR` (RSV1 is `0b100`).
    fn rsv_bits(&self) -> u8;

    /// Encodes an outgoing message payload. Returns the payload to send and the RSV bits to
    /// set on its first frame (`0` to send this message untransformed).
    fn encode(&mut self, payload: Bytes, is_text: bool) -> Result<(Bytes, u8), String>;

    /// Decodes one frame of an incoming transformed message, appending the result to `out`.
    /// `fin` marks the message's last frame. The decoded message may not grow past
    /// `max_len` bytes in total: stop and return [`ProtocolError::MessageTooLarge`] as soon
    /// as it would (this is what keeps a decompression bomb out of memory).
    fn decode(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut BytesMut,
        max_len: usize,
    ) -> Result<(), ProtocolError>;
}
