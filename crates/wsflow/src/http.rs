//! Upgrading a request that another HTTP server accepted (hyper, axum, any server built on
//! the `http` crate), so applications keep their router and middleware (feature `http`).
//!
//! 1. [`HttpUpgrade::from_request`] validates the `http::Request` as a WebSocket upgrade.
//! 2. [`HttpUpgrade::accept`] returns the `101 Switching Protocols` response for the HTTP server to
//!    send, and an [`Accepted`] upgrade.
//! 3. Once the HTTP server hands over the upgraded connection (hyper: `hyper::upgrade::on`),
//!    `Accepted::into_websocket_tokio` (or `Accepted::into_websocket_async_io`, feature `async-std`) turns it
//!    into a [`WebSocket`].
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # fn example(request: http::Request<()>) -> Result<http::Response<()>, wsflow::Error> {
//! use wsflow::AcceptOptions;
//! use wsflow::http::HttpUpgrade;
//!
//! let upgrade = HttpUpgrade::from_request(&request, wsflow::ServerConfig::default())?;
//! let (response, accepted) = upgrade.accept(AcceptOptions::new())?;
//! // Send `response`, then, with the upgraded I/O object from the HTTP server:
//! // let ws = accepted.into_websocket_tokio(upgraded_io);
//! # let _ = accepted;
//! Ok(response)
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use wsflow_core::{Connection, Role};
use wsflow_handshake::{AcceptOptions, DeflateParams, UpgradeRequest};

use crate::error::Error;
use crate::runtime::Transport;
use crate::server::{ServerConfig, agreed_extensions, answer_deflate, server_negotiated};
use crate::websocket::{PeerInfo, WebSocket};

/// A validated WebSocket upgrade request that arrived through another HTTP server.
#[derive(Debug)]
pub struct HttpUpgrade {
    upgrade: UpgradeRequest,
    config: ServerConfig,
    peer: Option<SocketAddr>,
}

impl HttpUpgrade {
    /// Validates `request` as a WebSocket upgrade. The error carries the HTTP answer to send
    /// (`Error::Handshake(err)`: `err.to_http_response()`, with 400, 405 or 426).
    pub fn from_request<B>(
        request: &http::Request<B>,
        config: ServerConfig,
    ) -> Result<Self, Error> {
        Ok(Self {
            upgrade: UpgradeRequest::from_http(request)?,
            config,
            peer: None,
        })
    }

    /// Records the socket's peer address (for `remote_address` and `peer_addr`).
    pub fn with_peer_addr(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The parsed request: path, protocols, origin, cookies, headers.
    pub fn request(&self) -> &UpgradeRequest {
        &self.upgrade
    }

    /// Builds the `101 Switching Protocols` response. The protocol of `options` must be one the
    /// client requested.
    pub fn accept(self, options: AcceptOptions) -> Result<(http::Response<()>, Accepted), Error> {
        let options = answer_deflate(&self.config, &self.upgrade, options);
        let response = self.upgrade.accept_http(&options)?;
        let (extensions, deflate) = agreed_extensions(
            self.upgrade.requested_extensions(),
            options.get_extensions(),
        )?;
        let mut addresses = crate::server::forwarded_addresses(&self.config, &self.upgrade);
        addresses.extend(self.peer.map(|peer| peer.ip().to_string()));
        let accepted = Accepted {
            protocol: options.get_protocol().map(str::to_owned),
            version: self.upgrade.version(),
            extensions,
            deflate,
            config: self.config,
            addresses,
            peer: self.peer,
        };
        Ok((response, accepted))
    }
}

/// An accepted upgrade waiting for its connection.
#[derive(Debug)]
pub struct Accepted {
    protocol: Option<String>,
    version: u8,
    extensions: Vec<String>,
    deflate: Option<DeflateParams>,
    config: ServerConfig,
    addresses: Vec<String>,
    peer: Option<SocketAddr>,
}

impl Accepted {
    /// The WebSocket over an upgraded tokio connection (hyper: `TokioIo::new(upgraded)`).
    #[cfg(feature = "tokio")]
    pub fn into_websocket_tokio<T>(self, io: T) -> WebSocket
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let runtime = crate::Runtime::Tokio;
        self.into_websocket(crate::rt_tokio::wrap(io), runtime)
    }

    /// The WebSocket over an upgraded futures-io connection (async-std, smol).
    #[cfg(feature = "async-std")]
    pub fn into_websocket_async_io<T>(self, io: T) -> WebSocket
    where
        T: futures_io::AsyncRead + futures_io::AsyncWrite + Send + Unpin + 'static,
    {
        let runtime = crate::Runtime::AsyncStd;
        self.into_websocket(crate::rt_async_std::wrap(io), runtime)
    }

    fn into_websocket(self, io: Box<dyn Transport>, runtime: crate::Runtime) -> WebSocket {
        let negotiated = server_negotiated(
            &self.config,
            self.protocol.as_deref(),
            self.version,
            self.extensions,
            self.deflate,
        );
        let conn = Connection::new(
            Role::Server,
            self.config.connection.clone(),
            negotiated,
            BytesMut::new(),
            Instant::now(),
        );
        let info = PeerInfo::new(self.peer, self.addresses, &conn);
        WebSocket::new(conn, io, runtime, info, None)
    }
}
