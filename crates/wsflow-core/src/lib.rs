//! The sans-IO WebSocket connection of wsflow: WebSocket-Node's `WebSocketConnection` as a
//! state machine.
//!
//! Every protocol rule of a live connection lives here, with no sockets, no clock and no
//! runtime, so every driver gets identical behaviour: frame and message limits, text
//! validation as it arrives, fragmentation both ways, ping/pong, keepalive, the close
//! handshake with its timeout, and the extension hook ([`Extension`]) with permessage-deflate
//! ([`PerMessageDeflate`], RFC 7692) behind it. Bytes go in through `handle_*`, output comes out
//! of `poll_*`, time is passed in. See [`Connection`] for the call order.
//!
//! # Compression
//!
//! permessage-deflate is off unless the handshake agreed to it. [`DeflateConfig`] holds its
//! parameters and documents the defaults (level 6, messages under 1024 bytes sent
//! uncompressed, 15-bit windows, context takeover) and the memory it takes per connection:
//! 371 KiB for the compressor and 46 KiB for the inflater with 15-bit windows, 245 KiB and
//! 46 KiB with 9-bit ones, made when first needed and kept while context takeover is on;
//! without context takeover connections borrow them per message from a per-thread pool. Inflated messages count against
//! [`Config::max_received_message_size`] while they inflate: a decompression bomb is stopped at
//! the limit (close code 1009) and never inflated into memory.
//!
//! | WebSocket-Node | wsflow-core |
//! | --- | --- |
//! | `closeReasonCode`, `closeDescription` | [`Connection::close_reason_code`], [`Connection::close_description`] |
//! | `protocol`, `extensions`, `webSocketVersion` | [`Connection::protocol`], [`Connection::extensions`], [`Connection::version`] |
//! | `connected`, `state` | [`Connection::is_connected`], [`Connection::state`] |
//! | `close()`, `drop()` | [`Connection::close`], [`Connection::drop_connection`] |
//! | `sendUTF`, `sendBytes`, `send` | [`Connection::send_text`], [`Connection::send_binary`], [`Connection::send`] |
//! | `ping`, `pong`, `sendFrame` | [`Connection::ping`], [`Connection::pong`], [`Connection::send_frame`] |
//! | `pause()`, `resume()`, `outputBufferFull` | [`Connection::pause`], [`Connection::resume`], [`Connection::is_output_buffer_full`] |
//! | events `message`, `frame`, `ping` (with `cancel`), `pong`, `error`, `close` | [`Event::Message`], [`Event::Frame`], [`Event::Ping`] ([`Connection::cancel_pong`]), [`Event::Pong`], [`Event::Error`], [`Event::Closed`] |
#![warn(missing_docs, missing_debug_implementations)]

mod config;
mod connection;
mod deflate;
mod error;
mod event;
mod extension;
mod incoming;
mod lazy_deque;
mod outgoing;

pub use config::Config;
pub use connection::{Connection, Negotiated};
pub use deflate::{DeflateConfig, PerMessageDeflate};
pub use error::Error;
pub use event::{CloseEvent, CloseInitiator, ConnectionState, Event, Message};
pub use extension::Extension;
pub use wsflow_codec::{CloseCode, Frame, OpCode, ProtocolError, Role, Utf8Bytes};
