//! A `tokio_util::codec` implementation, for users who frame a byte stream with
//! `tokio_util::codec::Framed` (feature `tokio-util`).

use std::io;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::decoder::{DecoderConfig, FrameDecoder, Role};
use crate::frame::Frame;
use crate::mask::random_mask_key;

/// Frames a byte stream as WebSocket frames: decodes [`Frame`]s with a [`FrameDecoder`] and
/// encodes them, masking with a fresh random key when the local role is client.
///
/// Protocol violations surface as `io::Error`s of kind `InvalidData` whose inner error is the
/// [`crate::ProtocolError`] (with its close code).
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use wsflow_codec::{Frame, FrameCodec, OpCode, Role};
///
/// let mut client = FrameCodec::new(Role::Client);
/// let mut server = FrameCodec::new(Role::Server);
/// let mut wire = BytesMut::new();
/// client.encode(Frame::new(OpCode::Text, "hi"), &mut wire).unwrap();
/// let frame = server.decode(&mut wire).unwrap().unwrap();
/// assert_eq!(&frame.payload[..], b"hi");
/// assert!(frame.mask.is_some());
/// ```
#[derive(Clone, Debug)]
pub struct FrameCodec {
    decoder: FrameDecoder,
    role: Role,
}

impl FrameCodec {
    /// A codec with the default limits for an endpoint of `role`.
    pub fn new(role: Role) -> Self {
        Self::with_config(DecoderConfig::new(role))
    }

    /// A codec with the given decoding rules.
    pub fn with_config(config: DecoderConfig) -> Self {
        Self {
            decoder: FrameDecoder::with_config(config),
            role: config.role(),
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, io::Error> {
        let frame = self
            .decoder
            .decode(src)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        if frame.is_none() {
            src.reserve(self.decoder.bytes_needed(src));
        }
        Ok(frame)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = io::Error;

    fn encode(&mut self, mut frame: Frame, dst: &mut BytesMut) -> Result<(), io::Error> {
        frame.mask = self.role.masks_outgoing().then(random_mask_key);
        frame.encode(dst);
        Ok(())
    }
}
