//! The guides of the `docs/` folder and the README, included here so they appear in the API documentation and
//! their examples are compiled by `cargo test --doc`.

#[doc = include_str!("../../../docs/server.md")]
pub mod server {}

#[doc = include_str!("../../../docs/client.md")]
pub mod client {}

#[doc = include_str!("../../../docs/connection.md")]
pub mod connection {}

#[doc = include_str!("../../../docs/limits-and-security.md")]
pub mod limits_and_security {}

#[doc = include_str!("../../../docs/compression.md")]
pub mod compression {}

#[doc = include_str!("../../../docs/tls-and-proxies.md")]
#[cfg(feature = "rustls")]
pub mod tls_and_proxies {}

#[doc = include_str!("../../../docs/runtimes.md")]
pub mod runtimes {}

#[doc = include_str!("../../../docs/codec.md")]
pub mod codec {}

#[doc = include_str!("../../../docs/migration-from-websocket-node.md")]
pub mod migration_from_websocket_node {}

#[doc = include_str!("../../../docs/reliability.md")]
pub mod reliability {}

/// The README, so its quick starts are compiled too.
#[doc = include_str!("../../../README.md")]
pub mod readme {}
