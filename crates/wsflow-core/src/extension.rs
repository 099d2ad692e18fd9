//! The hook through which a negotiated extension (such as permessage-deflate, RFC 7692)
//! owns RSV bits and transforms message payloads.

use std::fmt;

use bytes::Bytes;
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

    /// Decodes one frame of an incoming transformed message, appending the result to `out`,
    /// which holds the message decoded so far (earlier bytes must stay as they are). `fin`
    /// marks the message's last frame.
    ///
    /// The decoded message may not grow past `max_len` bytes in total (the connection's
    /// `max_received_message_size`): stop and return [`ProtocolError::MessageTooLarge`] as soon
    /// as it would, with `max` set to `max_len`, without producing the rest. This is what keeps
    /// a decompression bomb out of memory, so reserve space in `out` in bounded steps.
    fn decode(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), ProtocolError>;
}
