//! Connection options, with WebSocket-Node's names and defaults.

use std::time::Duration;

/// The options of one connection.
///
/// The defaults are WebSocket-Node's: [`Config::server`] for the server side,
/// [`Config::client`] for the client side (smaller frame and message limits on the server,
/// keepalive on for servers and off for clients). Every limit is on by default; raise one by
/// calling its setter.
///
/// | WebSocket-Node | wsflow | server default | client default |
/// | --- | --- | --- | --- |
/// | `maxReceivedFrameSize` | [`max_received_frame_size`](Config::max_received_frame_size) | 64 KiB | 1 MiB |
/// | `maxReceivedMessageSize` | [`max_received_message_size`](Config::max_received_message_size) | 1 MiB | 8 MiB |
/// | `fragmentOutgoingMessages` | [`fragment_outgoing_messages`](Config::fragment_outgoing_messages) | true | true |
/// | `fragmentationThreshold` | [`fragmentation_threshold`](Config::fragmentation_threshold) | 16 KiB | 16 KiB |
/// | `assembleFragments` | [`assemble_fragments`](Config::assemble_fragments) | true | true |
/// | `closeTimeout` | [`close_timeout`](Config::close_timeout) | 5 s | 5 s |
/// | `keepalive` | [`keepalive`](Config::keepalive) | true | false |
/// | `keepaliveInterval` | [`keepalive_interval`](Config::keepalive_interval) | 20 s | 20 s |
/// | `dropConnectionOnKeepaliveTimeout` | [`drop_connection_on_keepalive_timeout`](Config::drop_connection_on_keepalive_timeout) | true | true |
/// | `keepaliveGracePeriod` | [`keepalive_grace_period`](Config::keepalive_grace_period) | 10 s | 10 s |
/// | (none) | [`max_fragments_per_message`](Config::max_fragments_per_message) | 65536 | 65536 |
/// | (none) | [`send_high_water_mark`](Config::send_high_water_mark) | 1 MiB | 1 MiB |
/// | (none) | [`auto_pong`](Config::auto_pong) | true | true |
///
/// ```
/// use std::time::Duration;
/// use wsflow_core::Config;
///
/// let config = Config::server()
///     .max_received_message_size(16 << 20)
///     .close_timeout(Duration::from_secs(2))
///     .keepalive(false);
/// assert_eq!(config.get_max_received_message_size(), 16 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    pub(crate) max_received_frame_size: usize,
    pub(crate) max_received_message_size: usize,
    pub(crate) max_fragments_per_message: usize,
    pub(crate) fragment_outgoing_messages: bool,
    pub(crate) fragmentation_threshold: usize,
    pub(crate) assemble_fragments: bool,
    pub(crate) close_timeout: Duration,
    pub(crate) keepalive: bool,
    pub(crate) keepalive_interval: Duration,
    pub(crate) drop_connection_on_keepalive_timeout: bool,
    pub(crate) keepalive_grace_period: Duration,
    pub(crate) send_high_water_mark: usize,
    pub(crate) auto_pong: bool,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident / $getter:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.$name = value;
                self
            }

            #[doc = concat!("The value set by [`Config::", stringify!($name), "`].")]
            pub fn $getter(&self) -> $ty {
                self.$name
            }
        )*
    };
}

impl Config {
    /// WebSocket-Node's server defaults.
    pub fn server() -> Self {
        Self {
            max_received_frame_size: 64 * 1024,
            max_received_message_size: 1024 * 1024,
            max_fragments_per_message: 65_536,
            fragment_outgoing_messages: true,
            fragmentation_threshold: 16 * 1024,
            assemble_fragments: true,
            close_timeout: Duration::from_secs(5),
            keepalive: true,
            keepalive_interval: Duration::from_secs(20),
            drop_connection_on_keepalive_timeout: true,
            keepalive_grace_period: Duration::from_secs(10),
            send_high_water_mark: 1024 * 1024,
            auto_pong: true,
        }
    }

    /// WebSocket-Node's client defaults.
    pub fn client() -> Self {
        Self {
            max_received_frame_size: 1024 * 1024,
            max_received_message_size: 8 * 1024 * 1024,
            keepalive: false,
            ..Self::server()
        }
    }

    setters! {
        /// The largest frame payload accepted; a frame declaring more is refused from its
        /// header, before any of its payload is read, and the connection closes with 1009.
        max_received_frame_size / get_max_received_frame_size: usize;
        /// The largest message accepted (all fragments together, after decompression); the
        /// connection closes with 1009 as soon as a frame would exceed it.
        max_received_message_size / get_max_received_message_size: usize;
        /// The most frames one message may be split into; more closes the connection with
        /// 1008. Guards against floods of tiny or empty fragments. 0 counts as 1: every
        /// message has a frame.
        max_fragments_per_message / get_max_fragments_per_message: usize;
        /// Whether messages longer than the fragmentation threshold are sent as several frames.
        fragment_outgoing_messages / get_fragment_outgoing_messages: bool;
        /// The largest frame payload sent when fragmenting outgoing messages.
        fragmentation_threshold / get_fragmentation_threshold: usize;
        /// Whether fragments are assembled into messages. When off, every frame is delivered
        /// as an [`Event::Frame`](crate::Event::Frame), control frames included.
        assemble_fragments / get_assemble_fragments: bool;
        /// How long `close` waits for the peer's close frame (and, after the close handshake,
        /// for the TCP connection to end) before ending the connection anyway.
        close_timeout / get_close_timeout: std::time::Duration;
        /// Whether to send a ping after `keepalive_interval` without incoming traffic.
        keepalive / get_keepalive: bool;
        /// The idle time before a keepalive ping.
        keepalive_interval / get_keepalive_interval: std::time::Duration;
        /// Whether to drop the connection (1006, "Peer not responding.") when nothing arrives
        /// within the grace period after a keepalive ping.
        drop_connection_on_keepalive_timeout / get_drop_connection_on_keepalive_timeout: bool;
        /// How long to wait for any traffic after a keepalive ping.
        keepalive_grace_period / get_keepalive_grace_period: std::time::Duration;
        /// The number of buffered outgoing bytes above which the output buffer is full
        /// (WebSocket-Node's `outputBufferFull`); drivers wait for it to drain before taking
        /// more messages.
        send_high_water_mark / get_send_high_water_mark: usize;
        /// Whether pings are answered automatically (each can still be cancelled with
        /// [`Connection::cancel_pong`](crate::Connection::cancel_pong)). While the output is
        /// above the send high-water mark, only the latest ping is answered, once the output
        /// drains (RFC 6455 5.5.3), so a peer that pings and never reads cannot grow it.
        auto_pong / get_auto_pong: bool;
    }
}

impl Default for Config {
    /// The server defaults.
    fn default() -> Self {
        Self::server()
    }
}
