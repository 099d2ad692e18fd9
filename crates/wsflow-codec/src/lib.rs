//! The RFC 6455 WebSocket frame codec of wsflow, usable on its own.
//!
//! Sans-IO: no sockets, no runtime, no clock. Bytes go in through a `BytesMut` the caller
//! fills; frames come out with their payload shared, not copied.
//!
//! - [`FrameHeader`] parses and encodes headers incrementally; [`FrameDecoder`] takes whole
//!   frames off a read buffer, enforcing the masking direction, the RSV bits the negotiated
//!   extensions allow, and a frame size limit checked on the header.
//! - [`apply_mask`] masks and unmasks at any offset, a vector register at a time.
//! - [`CloseCode`] and [`CloseFrame`] handle close status codes and reasons.
//! - [`Utf8Validator`] checks text as it streams in, failing at the first impossible byte;
//!   [`Utf8Bytes`] carries validated text without a copy.
//! - Every peer violation is a [`ProtocolError`] that knows its close code.
//!
//! ```
//! use bytes::BytesMut;
//! use wsflow_codec::{Frame, FrameDecoder, OpCode, Role, random_mask_key};
//!
//! // A client masks what it sends...
//! let mut wire = BytesMut::new();
//! Frame::new(OpCode::Text, "hello").with_mask(Some(random_mask_key())).encode(&mut wire);
//!
//! // ...and the server's decoder unmasks it in place.
//! let mut decoder = FrameDecoder::new(Role::Server);
//! let frame = decoder.decode(&mut wire).unwrap().unwrap();
//! assert_eq!(frame.opcode, OpCode::Text);
//! assert_eq!(&frame.payload[..], b"hello");
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

mod close;
mod decoder;
mod error;
mod frame;
mod mask;
#[cfg(feature = "tokio-util")]
mod tokio_codec;
mod utf8;
mod utf8_bytes;

pub use close::{CloseCode, CloseFrame, MAX_CLOSE_REASON_LEN};
pub use decoder::{DecoderConfig, FrameDecoder, Role, ShortDataFrames};
pub use error::{Error, ProtocolError};
pub use frame::{Frame, FrameHeader, HeaderParse, MAX_CONTROL_PAYLOAD_LEN, MAX_HEADER_LEN, OpCode};
pub use mask::{apply_mask, apply_mask_reference, random_mask_key};
#[cfg(feature = "tokio-util")]
pub use tokio_codec::FrameCodec;
pub use utf8::Utf8Validator;
pub use utf8_bytes::{NotUtf8, Utf8Bytes};
