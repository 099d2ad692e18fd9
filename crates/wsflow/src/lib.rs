//! wsflow: an RFC 6455 WebSocket library for async Rust, with the API of the Node.js library
//! WebSocket-Node (server, request, connection, client, frame, router).
//!
//! - [`Server`] listens and yields upgrade [`Request`]s to accept or reject; [`Router`]
//!   dispatches them by path and subprotocol.
//! - [`WebSocket`] is a live connection: a `Stream` of [`Message`]s and a `Sink` of them,
//!   the full [`Event`] view, and WebSocket-Node's methods and properties. [`Sender`] sends to
//!   it from other tasks.
//! - [`connect`] and [`Client`] open connections.
//! - The layers below are usable alone: [`codec`] (frames), [`handshake`] (the HTTP upgrade),
//!   [`core`] (the connection state machine), all sans-IO.
//!
//! Runtimes are cargo features: `tokio` (default) and `async-std` (async-io, which serves smol
//! too); both can be enabled and chosen per server or client with [`Runtime`]. With
//! `default-features = false` only the sans-IO layers are built.
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn example() -> Result<(), wsflow::Error> {
//! use futures_util::StreamExt;
//! use wsflow::{Server, ServerConfig};
//!
//! // An echo server.
//! let mut server = Server::bind("127.0.0.1:8080", ServerConfig::default()).await?;
//! while let Some(request) = server.next().await {
//!     let mut ws = request.accept(None).await?;
//!     tokio::spawn(async move {
//!         while let Some(Ok(message)) = ws.next().await {
//!             let _ = ws.send(message).await;
//!         }
//!     });
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
// Without a runtime feature only the sans-IO layers exist; the tour above still names the rest.
#![cfg_attr(
    not(any(feature = "tokio", feature = "async-std")),
    allow(rustdoc::broken_intra_doc_links)
)]

pub use wsflow_codec as codec;
pub use wsflow_core as core;
pub use wsflow_handshake as handshake;

pub use wsflow_core::{
    CloseCode, CloseEvent, CloseInitiator, Config, ConnectionState, DeflateConfig, Event, Frame,
    Message, OpCode, Role, Utf8Bytes,
};
pub use wsflow_handshake::{
    AcceptOptions, ExtensionOffer, HandshakeError, RequestLimits, SetCookie,
};

#[cfg(any(feature = "tokio", feature = "async-std"))]
mod client;
#[cfg(any(feature = "tokio", feature = "async-std"))]
mod driver;
#[cfg(any(feature = "tokio", feature = "async-std"))]
mod error;
#[cfg(all(feature = "tokio", feature = "async-std"))]
pub mod guide;
#[cfg(all(feature = "http", any(feature = "tokio", feature = "async-std")))]
pub mod http;
#[cfg(any(feature = "tokio", feature = "async-std"))]
mod proxy;
#[cfg(any(feature = "tokio", feature = "async-std"))]
mod router;
#[cfg(feature = "async-std")]
mod rt_async_std;
#[cfg(feature = "tokio")]
mod rt_tokio;
#[cfg(any(feature = "tokio", feature = "async-std"))]
mod runtime;
#[cfg(any(feature = "tokio", feature = "async-std"))]
mod server;
#[cfg(all(feature = "rustls", any(feature = "tokio", feature = "async-std")))]
mod tls;
#[cfg(any(feature = "tokio", feature = "async-std"))]
mod websocket;

#[cfg(any(feature = "tokio", feature = "async-std"))]
pub use client::{Client, ClientConfig, connect};
#[cfg(any(feature = "tokio", feature = "async-std"))]
pub use error::Error;
#[cfg(any(feature = "tokio", feature = "async-std"))]
pub use proxy::{Proxy, ProxyKind};
#[cfg(any(feature = "tokio", feature = "async-std"))]
pub use router::{RoutedRequest, Router};
#[cfg(any(feature = "tokio", feature = "async-std"))]
pub use runtime::Runtime;
#[cfg(any(feature = "tokio", feature = "async-std"))]
pub use server::{Accepting, MAX_FORWARDED, Request, Server, ServerConfig};
#[cfg(all(feature = "rustls", any(feature = "tokio", feature = "async-std")))]
pub use tls::{TlsClientConfig, TlsServerConfig, rustls};
#[cfg(any(feature = "tokio", feature = "async-std"))]
pub use websocket::{Flush, NextEvent, ReadHalf, Recv, Sender, WebSocket};
