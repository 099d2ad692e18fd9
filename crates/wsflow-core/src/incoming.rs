//! Assembling one incoming message from its frames, validating text as it arrives.
//!
//! Text is validated exactly once, byte by byte in order: the prefix of a frame still being
//! received (to fail fast, as Autobahn's 6.4.x cases require), then the rest of the frame when
//! it completes, then every further fragment. Because every byte of the message has passed the
//! validator, the finished payload is handed out as [`Utf8Bytes`] without validating it a
//! second time. That is the one `unsafe` call of this crate.
//!
//! Messages an extension transforms (permessage-deflate) are decoded by the extension into a
//! buffer of their own. Their text is validated as it is decoded, to fail early, and once more
//! as a whole: the extension has mutable access to that buffer, so the single pass could not
//! be relied on for soundness.
#![allow(unsafe_code)]

use bytes::{Bytes, BytesMut};
use wsflow_codec::{FrameDecoder, ProtocolError, Utf8Bytes, Utf8Validator};

use crate::event::Message;
use crate::extension::Extension;

/// The payload collected so far.
#[derive(Debug)]
enum Parts {
    Empty,
    /// One frame's payload, kept as is (no copy for single-frame messages).
    One(Bytes),
    /// Several frames' payloads, concatenated.
    Many(BytesMut),
}

/// A message whose first frame has arrived.
#[derive(Debug)]
pub(crate) struct IncomingMessage {
    pub(crate) is_text: bool,
    /// Whether an extension transforms this message (its first frame carried RSV bits).
    pub(crate) compressed: bool,
    /// Frames received so far, including one still arriving.
    pub(crate) fragments: usize,
    /// Payload bytes received so far (as sent on the wire, before any extension decoding).
    pub(crate) wire_len: u64,
    parts: Parts,
    /// What the extension decoded so far, for a transformed message.
    decoded: Vec<u8>,
    utf8: Utf8Validator,
    /// How many bytes of the frame in progress the validator has already seen.
    frame_validated: usize,
}

impl IncomingMessage {
    pub(crate) fn new(is_text: bool, compressed: bool) -> Self {
        Self {
            is_text,
            compressed,
            fragments: 1,
            wire_len: 0,
            parts: Parts::Empty,
            decoded: Vec::new(),
            utf8: Utf8Validator::new(),
            frame_validated: 0,
        }
    }

    /// Whether raw frame payloads are text to validate (not transformed by an extension).
    pub(crate) fn validates_frames(&self) -> bool {
        self.is_text && !self.compressed
    }

    /// Validates the newly arrived part of the frame in progress. `prefix` is the frame's
    /// payload received so far; it must extend the prefix of the previous call for the same
    /// frame (the connection keeps it in its private read buffer, unchanged).
    pub(crate) fn validate_partial(&mut self, prefix: &[u8]) -> Result<(), ProtocolError> {
        if self.validates_frames() && prefix.len() > self.frame_validated {
            self.utf8.feed(&prefix[self.frame_validated..])?;
            self.frame_validated = prefix.len();
        }
        Ok(())
    }

    /// Unmasks and validates the newly arrived part of the frame in progress in one pass, when
    /// that is a masked frame of this message and the message is text to validate (see
    /// [`FrameDecoder::unmask_partial_text`]); for any other frame it does nothing, and the
    /// decoder unmasks the new part, for `validate_partial` to validate after.
    pub(crate) fn unmask_partial(
        &mut self,
        decoder: &mut FrameDecoder,
        src: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        if self.validates_frames()
            && let Some(unmasked) =
                decoder.unmask_partial_text(src, &mut self.utf8, self.frame_validated)
        {
            self.frame_validated = unmasked?;
        }
        Ok(())
    }

    /// Validates the rest of a completed frame (everything after what `validate_partial`
    /// saw) without keeping it: for frames delivered one by one.
    pub(crate) fn validate_frame(
        &mut self,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), ProtocolError> {
        if self.validates_frames() {
            self.utf8
                .feed(&payload[self.frame_validated.min(payload.len())..])?;
            if fin {
                self.utf8.finish()?;
            }
        }
        self.frame_validated = 0;
        Ok(())
    }

    /// Adds a completed raw frame. Returns the message when `fin` completes it.
    pub(crate) fn push_frame(
        &mut self,
        payload: Bytes,
        fin: bool,
    ) -> Result<Option<Message>, ProtocolError> {
        self.validate_frame(&payload, fin)?;
        self.append(payload);
        Ok(fin.then(|| self.take_message()))
    }

    /// Passes a completed frame of a transformed message through `extension`, validating what
    /// it decoded if the message is text; the message may not decode to more than `max_len`
    /// bytes. Returns the message when `fin` completes it.
    pub(crate) fn push_encoded(
        &mut self,
        extension: &mut dyn Extension,
        payload: &[u8],
        fin: bool,
        max_len: usize,
    ) -> Result<Option<Message>, ProtocolError> {
        let start = self.decoded.len();
        extension.decode(payload, fin, &mut self.decoded, max_len)?;
        if self.decoded.len() > max_len {
            return Err(ProtocolError::MessageTooLarge {
                len: self.decoded.len() as u64,
                max: max_len as u64,
            });
        }
        if self.is_text {
            self.utf8
                .feed(self.decoded.get(start..).unwrap_or_default())?;
            if fin {
                self.utf8.finish()?;
            }
        }
        if !fin {
            return Ok(None);
        }
        let mut decoded = std::mem::take(&mut self.decoded);
        if decoded.capacity() - decoded.len() > decoded.len() / 4 {
            // Inflating grows the buffer by doubling: an application that keeps the message
            // should not keep up to twice its size.
            decoded.shrink_to_fit();
        }
        let payload = Bytes::from(decoded);
        Ok(Some(if self.is_text {
            Message::Text(Utf8Bytes::try_from(payload).map_err(|_| ProtocolError::InvalidUtf8)?)
        } else {
            Message::Binary(payload)
        }))
    }

    fn append(&mut self, payload: Bytes) {
        self.parts = match std::mem::replace(&mut self.parts, Parts::Empty) {
            Parts::Empty => Parts::One(payload),
            Parts::One(first) if payload.is_empty() => Parts::One(first),
            Parts::One(first) => {
                let mut many = BytesMut::with_capacity(first.len() + payload.len());
                many.extend_from_slice(&first);
                many.extend_from_slice(&payload);
                Parts::Many(many)
            }
            Parts::Many(mut many) => {
                many.extend_from_slice(&payload);
                Parts::Many(many)
            }
        };
    }

    fn take_message(&mut self) -> Message {
        let payload = match std::mem::replace(&mut self.parts, Parts::Empty) {
            Parts::Empty => Bytes::new(),
            Parts::One(bytes) => bytes,
            Parts::Many(bytes) => bytes.freeze(),
        };
        if self.is_text {
            // SAFETY: every byte of `payload` went through `self.utf8` exactly once and in
            // order: raw frames through `validate_partial` (the in-progress prefix) and
            // `validate_frame` (the rest); `finish` then confirmed no code point was left
            // unfinished. `append` only concatenates those same bytes in the same order, so the
            // whole payload is valid UTF-8. (Transformed messages never get here:
            // `push_encoded` converts them with a checked conversion.)
            Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(payload) })
        } else {
            Message::Binary(payload)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_frame_payload_is_not_copied() {
        let payload = Bytes::from_static("héllo".as_bytes());
        let mut message = IncomingMessage::new(true, false);
        let text = message.push_frame(payload.clone(), true).unwrap().unwrap();
        assert_eq!(text.as_bytes().as_ptr(), payload.as_ptr());
        assert_eq!(text.as_text(), Some("héllo"));
    }

    #[test]
    fn code_point_split_across_frames_and_partial_reads() {
        let bytes = "κόσμε".as_bytes();
        let mut message = IncomingMessage::new(true, false);
        // First frame: 3 bytes, seen partially first (1 byte), then complete.
        message.validate_partial(&bytes[..1]).unwrap();
        assert!(
            message
                .push_frame(Bytes::copy_from_slice(&bytes[..3]), false)
                .unwrap()
                .is_none()
        );
        let text = message
            .push_frame(Bytes::copy_from_slice(&bytes[3..]), true)
            .unwrap()
            .unwrap();
        assert_eq!(text.as_text(), Some("κόσμε"));
    }

    #[test]
    fn invalid_text_fails_in_the_partial_prefix() {
        let mut message = IncomingMessage::new(true, false);
        assert_eq!(
            message.validate_partial(&[b'a', 0xff]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn unfinished_code_point_at_the_end_fails() {
        let mut message = IncomingMessage::new(true, false);
        assert_eq!(
            message.push_frame(Bytes::from_static(&[0xe2, 0x82]), true),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn binary_is_assembled_without_validation() {
        let mut message = IncomingMessage::new(false, false);
        message
            .push_frame(Bytes::from_static(&[0xff]), false)
            .unwrap();
        message.push_frame(Bytes::new(), false).unwrap();
        let binary = message
            .push_frame(Bytes::from_static(&[0xfe]), true)
            .unwrap()
            .unwrap();
        assert_eq!(binary, Message::Binary(Bytes::from_static(&[0xff, 0xfe])));
    }
}
