//! The connection state machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use wsflow_codec::{
    CloseCode, CloseFrame, DecoderConfig, Frame, FrameDecoder, FrameHeader,
    MAX_CONTROL_PAYLOAD_LEN, OpCode, ProtocolError, Role, ShortDataFrames, Utf8Bytes,
    random_mask_key,
};

use crate::config::Config;
use crate::error::Error;
use crate::event::{CloseEvent, CloseInitiator, ConnectionState, Event, Message};
use crate::extension::Extension;
use crate::incoming::IncomingMessage;
use crate::lazy_deque::LazyDeque;
use crate::outgoing::Outgoing;

/// The first read buffer size; doubled (up to [`MAX_READ_CHUNK`]) while reads fill it.
const MIN_READ_CHUNK: usize = 2 * 1024;
const MAX_READ_CHUNK: usize = 256 * 1024;
/// The largest read buffer [`Connection::take_read_buffer`] hands out: a few first-size
/// chunks, what connections exchanging small messages use.
const MAX_LENT_BUFFER: usize = 4 * MIN_READ_CHUNK;
/// The least a read buffer is grown to: two first-size chunks.
const SMALL_READ_BUFFER: usize = 2 * MIN_READ_CHUNK;
/// The most unprocessed input [`Connection::read_buffer`] copies to offer the next read a
/// whole chunk; past it, the read takes the room the buffer has (see there).
const MAX_COPY_FOR_CHUNK: usize = 2 * MIN_READ_CHUNK;
/// How much room [`Connection::read_buffer`] makes for the rest of a frame per byte of it
/// (header included) that has arrived.
const RESERVED_PER_BYTE_RECEIVED: usize = 64;

/// What the handshake settled, handed to [`Connection::new`].
///
/// ```
/// use wsflow_core::Negotiated;
///
/// let negotiated = Negotiated::new().protocol(Some("chat")).version(13);
/// assert_eq!(negotiated.get_protocol(), Some("chat"));
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Negotiated {
    protocol: Option<String>,
    extensions: Vec<String>,
    version: u8,
    extension: Option<Box<dyn Extension>>,
}

impl Negotiated {
    /// No subprotocol, no extension, version 13.
    pub fn new() -> Self {
        Self {
            version: 13,
            ..Self::default()
        }
    }

    /// The subprotocol chosen in the handshake (stored lower-cased, as WebSocket-Node does).
    pub fn protocol(mut self, protocol: Option<&str>) -> Self {
        self.protocol = protocol.map(str::to_ascii_lowercase);
        self
    }

    /// The negotiated extensions as they appeared in `Sec-WebSocket-Extensions`, one entry
    /// per extension.
    pub fn extensions(mut self, extensions: Vec<String>) -> Self {
        self.extensions = extensions;
        self
    }

    /// The protocol version spoken (13, or 8 for old clients).
    pub fn version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }

    /// The extension that transforms payloads (permessage-deflate).
    pub fn extension(mut self, extension: Box<dyn Extension>) -> Self {
        self.extension = Some(extension);
        self
    }

    /// The subprotocol set by [`Negotiated::protocol`].
    pub fn get_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
}

/// A duration in nanoseconds, saturating (at 584 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `at + by`, or an instant a century away where that cannot be represented: a timeout set to
/// `Duration::MAX` means "never", not a panic.
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .or_else(|| at.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(at)
}

/// Where the connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Open,
    /// We sent a close frame; the peer's must arrive by the deadline
    /// ([`Connection::deadline`]).
    Ending,
    /// The close handshake is over, or the connection failed: the last bytes are flushed,
    /// the transport is shut down and drained until end of file or the deadline (see
    /// `Teardown` for how far it is).
    TearingDown,
    Closed,
}

/// How far a connection tearing down is; the flags stay out of [`Phase`], which the message
/// path checks, so that it is one byte to compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Teardown {
    /// The transport's write half was asked to shut down.
    shutdown_requested: bool,
    /// The peer's close frame began it.
    peer_initiated: bool,
}

/// A WebSocket connection as a sans-IO state machine: every protocol rule, with no sockets,
/// no clock and no runtime.
///
/// # Driving it
///
/// Created from a role, a [`Config`], what the handshake [`Negotiated`], and the bytes that
/// arrived after the handshake. Then, in a loop:
///
/// 1. Input: append bytes read from the transport to [`Connection::read_buffer`] and call
///    [`Connection::handle_read`] (or pass a slice to [`Connection::handle_bytes`]); report
///    end of file with [`Connection::handle_eof`], transport errors with
///    [`Connection::handle_io_error`], and the time whenever the deadline from
///    [`Connection::poll_timeout`] passes with [`Connection::handle_timeout`].
/// 2. Commands: `send_*`, [`ping`](Connection::ping), [`close`](Connection::close), ... queue
///    frames.
/// 3. Output: take [`Connection::poll_event`] until `None`; write what
///    [`Connection::poll_transmit`] returns (one vectored write) and report how much was
///    written with [`Connection::advance_transmit`]; when [`Connection::poll_shutdown`] says
///    so, shut down the transport's write half; re-arm the timer with
///    [`Connection::poll_timeout`].
///
/// Frames are parsed lazily in `poll_event`, so a driver that stops taking events stops
/// consuming input: read only after `poll_event` returned `None`, and memory stays bounded by
/// one read. After [`Event::Closed`], drop the transport.
///
/// ```
/// use std::time::Instant;
/// use bytes::BytesMut;
/// use wsflow_core::{Config, Connection, Event, Message, Negotiated, Role};
///
/// let now = Instant::now();
/// let mut client = Connection::new(Role::Client, Config::client(), Negotiated::new(), BytesMut::new(), now);
/// let mut server = Connection::new(Role::Server, Config::server(), Negotiated::new(), BytesMut::new(), now);
///
/// client.send_text("hello").unwrap();
/// // Move the client's output to the server's input.
/// let wire: Vec<u8> = client.poll_transmit().unwrap().flatten().copied().collect();
/// client.advance_transmit(wire.len());
/// server.handle_bytes(&wire, now);
///
/// match server.poll_event() {
///     Some(Event::Message(Message::Text(text))) => assert_eq!(text, "hello"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    /// Shared: a server gives every connection the same options, one allocation for all.
    config: Arc<Config>,
    /// The subprotocol, the extension names and the extension, boxed: most connections
    /// negotiate none of them, and every connection's size counts when a server holds many
    /// idle ones.
    negotiated: Option<Box<NegotiatedExtras>>,
    version: u8,

    /// Handed to the driver to read into; always empty between calls.
    rx: BytesMut,
    /// Received bytes not consumed yet; private, so validated text cannot change. Between a
    /// read and the next `read_buffer` it may also hold the spare capacity behind them.
    pending: BytesMut,
    /// Whole short messages cut off `pending` together, ahead of it, not taken yet.
    short_frames: ShortDataFrames,
    /// At most [`MAX_READ_CHUNK`]; 32 bits, like `offered`, keep the connection small.
    read_chunk: u32,
    /// The spare capacity `read_buffer` last handed out (saturating at `u32::MAX`).
    offered: u32,
    decoder: FrameDecoder,
    /// The frame in progress passed the message-level checks.
    frame_checked: bool,
    /// The message in progress, if `message_in_progress`. Boxed, since most messages are
    /// single frames read whole, which never need one; the box is kept between messages
    /// (with the flag clear), so messages read in pieces do not allocate one each.
    message: Option<Box<IncomingMessage>>,
    message_in_progress: bool,
    eof: bool,
    paused: bool,

    /// Events put aside to be handed out in order. Messages are handed out without it, so
    /// most connections queue nothing until they close.
    events: LazyDeque<Event>,
    out: Outgoing,
    /// Control frames not queued yet: the answer to the last ping, until it is queued or
    /// cancelled, and the pings and pongs held while the output is above the send
    /// high-water mark. Boxed: they are rare next to the connection's size, which counts
    /// when a server holds many idle ones. `None` whenever it would be empty.
    held: Option<Box<HeldControl>>,

    phase: Phase,
    teardown: Teardown,
    /// How the connection is ending, once it is; boxed, since open connections need none.
    close: Option<Box<CloseEvent>>,
    /// The latest time passed in, for deadlines started while handling input.
    now: Instant,
    /// The one other instant the connection needs, in nanoseconds from `now`: while open,
    /// how long before `now` the keepalive's current wait began (see
    /// [`Connection::quiet_since`]); while ending or tearing down, how long after `now` its
    /// deadline is (see [`Connection::deadline`]). 8 bytes where an `Instant` takes 16, and
    /// the phases carry none, since a connection's size counts when a server holds many
    /// idle ones.
    timer_nanos: u64,
    /// A keepalive ping went out at `quiet_since` and no input came since.
    keepalive_ping_sent: bool,
}

/// Control frames waiting to be queued (see `Connection::commit_held`).
#[derive(Debug, Default)]
struct HeldControl {
    /// The automatic answer to the last ping, until it is queued or cancelled.
    answer: Option<Bytes>,
    /// The latest pong the application sent above the mark.
    pong: Option<Bytes>,
    /// The latest ping the application sent above the mark.
    ping: Option<Bytes>,
}

impl HeldControl {
    fn is_empty(&self) -> bool {
        self.answer.is_none() && self.pong.is_none() && self.ping.is_none()
    }
}

/// What the handshake agreed on beyond the plain protocol.
#[derive(Debug)]
struct NegotiatedExtras {
    protocol: Option<String>,
    extensions: Vec<String>,
    extension: Option<Box<dyn Extension>>,
}

/// What handling the next buffered frame did.
enum FrameProgress {
    /// No whole frame is buffered yet.
    NeedMore,
    /// A frame was handled; any events it produced are queued.
    Handled,
    /// A frame was handled and produced this event, not queued.
    Event(Event),
}

impl Connection {
    /// A connection in the open state. `leftover` holds the bytes that arrived right after
    /// the handshake: they are the first frames and are processed first. `config` is a
    /// [`Config`] or an `Arc<Config>`: a server with many connections saves memory by giving
    /// them all one `Arc`.
    pub fn new(
        role: Role,
        config: impl Into<Arc<Config>>,
        negotiated: Negotiated,
        leftover: BytesMut,
        now: Instant,
    ) -> Self {
        let config = config.into();
        let rsv = negotiated
            .extension
            .as_ref()
            .map_or(0, |ext| ext.rsv_bits());
        let decoder = FrameDecoder::with_config(
            DecoderConfig::new(role)
                .max_frame_size(config.max_received_frame_size)
                .allowed_rsv_bits(rsv),
        );
        Self {
            role,
            config,
            negotiated: (negotiated.protocol.is_some()
                || !negotiated.extensions.is_empty()
                || negotiated.extension.is_some())
            .then(|| {
                Box::new(NegotiatedExtras {
                    protocol: negotiated.protocol,
                    extensions: negotiated.extensions,
                    extension: negotiated.extension,
                })
            }),
            version: negotiated.version,
            rx: BytesMut::new(),
            // An empty leftover may still view the handshake's read buffer: let it go.
            pending: if leftover.is_empty() {
                BytesMut::new()
            } else {
                leftover
            },
            short_frames: ShortDataFrames::default(),
            read_chunk: saturating_u32(MIN_READ_CHUNK),
            offered: 0,
            decoder,
            frame_checked: false,
            message: None,
            message_in_progress: false,
            eof: false,
            paused: false,
            events: LazyDeque::default(),
            out: Outgoing::default(),
            held: None,
            phase: Phase::Open,
            teardown: Teardown::default(),
            close: None,
            now,
            timer_nanos: 0,
            keepalive_ping_sent: false,
        }
    }

    // ----- properties -------------------------------------------------------------------

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The options in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The close code once closing has begun (WebSocket-Node's `closeReasonCode`, which is
    /// -1 while open).
    pub fn close_reason_code(&self) -> Option<CloseCode> {
        self.close.as_ref().map(|close| close.code)
    }

    /// The close description once closing has begun (WebSocket-Node's `closeDescription`).
    pub fn close_description(&self) -> Option<&str> {
        self.close.as_ref().map(|close| close.description.as_str())
    }

    /// The subprotocol chosen in the handshake, lower-cased.
    pub fn protocol(&self) -> Option<&str> {
        self.negotiated.as_ref()?.protocol.as_deref()
    }

    /// The negotiated extensions.
    pub fn extensions(&self) -> &[String] {
        self.negotiated
            .as_ref()
            .map_or(&[], |negotiated| negotiated.extensions.as_slice())
    }

    /// The protocol version spoken (WebSocket-Node's `webSocketVersion`).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Whether the connection is open: no close frame sent or received yet.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Open
    }

    /// The connection state (WebSocket-Node's `state`).
    pub fn state(&self) -> ConnectionState {
        match self.phase {
            Phase::Open => ConnectionState::Open,
            Phase::Ending => ConnectionState::Ending,
            Phase::TearingDown if self.teardown.peer_initiated => {
                ConnectionState::PeerRequestedClose
            }
            Phase::TearingDown | Phase::Closed => ConnectionState::Closed,
        }
    }

    /// How the connection ended, once [`Event::Closed`] has been produced.
    pub fn close_event(&self) -> Option<&CloseEvent> {
        if self.phase == Phase::Closed {
            self.close.as_deref()
        } else {
            None
        }
    }

    /// Whether the final [`Event::Closed`] has been produced: drop the transport.
    #[inline]
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Bytes queued for sending and not yet written (the W3C API's `bufferedAmount`).
    #[inline]
    pub fn buffered_amount(&self) -> usize {
        self.out.len()
    }

    /// Whether the send queue is above the high-water mark (WebSocket-Node's
    /// `outputBufferFull`): wait for it to drain before queueing more.
    #[inline]
    pub fn is_output_buffer_full(&self) -> bool {
        self.out.len() > self.config.send_high_water_mark
    }

    // ----- input ------------------------------------------------------------------------

    /// The buffer to read into: append the transport's bytes to it (reading into its spare
    /// capacity, which is sized for the frame in progress), then call
    /// [`Connection::handle_read`]. It is empty whenever it is handed out: bytes read into
    /// the buffer handed out before and not handed in yet are taken as input first, as
    /// `handle_read` would take them.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        if !self.rx.is_empty() {
            // Input, as for `handle_read`: the keepalive's wait starts again (from the latest
            // time passed in).
            self.restart_quiet();
            self.take_read_bytes();
        }
        self.reclaim_spare_capacity();
        // Room for the rest of the frame in progress, in proportion to what has come of it:
        // a peer that declares a large frame and trickles it gets room for 64 times what it
        // sent (or one read chunk), not the size it declared (a 14-byte header made room for
        // a whole 64 KiB frame before); a frame whose first read brought any real part of it
        // gets all its room at once, as before.
        let rest = self.decoder.bytes_needed(&self.pending);
        let room_allowed = self
            .pending
            .len()
            .saturating_mul(RESERVED_PER_BYTE_RECEIVED)
            .max(self.read_chunk());
        let needed = rest.min(room_allowed);
        let spare = self.rx.capacity() - self.rx.len();
        // Held to less than the frame needs, the buffer grows again only once less than half
        // its room is left, so the frame so far has about doubled: a trickled frame is copied
        // a few times, not at every read.
        let short_of_room = if rest > room_allowed {
            spare < needed / 2
        } else {
            spare < needed.max(1)
        };
        let target = needed.saturating_add(1024).max(self.read_chunk()).min(
            self.config
                .max_received_frame_size
                .saturating_add(MAX_READ_CHUNK),
        );
        if self.pending.is_empty() && self.rx.is_empty() && self.rx.capacity() > 4 * target {
            // A buffer grown for a burst of large reads, now more than the reads need: give
            // it back, so quiet connections hold little memory.
            self.rx = BytesMut::with_capacity(target);
        } else if short_of_room
            || (spare < self.read_chunk() && self.pending.len() <= MAX_COPY_FOR_CHUNK)
        {
            // A read is offered a whole chunk: reads capped by a small leftover of spare
            // capacity would split the peer's bursts over more system calls. But not at the
            // price of copying a long frame in progress: its buffer was sized for the whole
            // frame once its header and a first part came, so the read gets the rest of the frame, which is
            // what the peer is sending; copying the frame to offer more took a copy of up to
            // the whole frame per read near its end (a 256 KiB message read in 16 KiB pieces
            // took 2.4 times as long as in 64 KiB ones, most of it copying and fresh pages).
            if self.pending.is_empty() {
                // Once every message cut from the current allocation has been dropped (an
                // echo written, say), `reserve` takes the whole allocation back in place: no
                // allocation and no fresh pages per read in steady state. The empty `pending`
                // lets go of its view of the allocation first, so it can be unique.
                // Small reads get room for a few chunks, so they take the allocation back
                // only every so often rather than on every read.
                self.pending = BytesMut::new();
                self.rx.reserve(target.max(SMALL_READ_BUFFER));
            } else {
                // Keep the partial frame and what follows it in one allocation, so the frame's
                // payload ends up contiguous without another copy.
                let mut fresh = BytesMut::with_capacity(self.pending.len() + target);
                fresh.extend_from_slice(&self.pending);
                self.rx = fresh.split_off(self.pending.len());
                self.pending = fresh;
            }
        }
        self.offered = saturating_u32(self.rx.capacity() - self.rx.len());
        &mut self.rx
    }

    /// Whether the connection holds no read buffer (none allocated yet, or given back by
    /// [`Connection::release_read_buffer`]). A driver can then wait until the transport is
    /// readable before asking for [`Connection::read_buffer`], so idle connections hold no
    /// read buffer at all.
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::BytesMut;
    /// use wsflow_core::{Config, Connection, Negotiated, Role};
    ///
    /// let mut conn = Connection::new(
    ///     Role::Server,
    ///     Config::default(),
    ///     Negotiated::default(),
    ///     BytesMut::new(),
    ///     Instant::now(),
    /// );
    /// assert!(conn.read_buffer_released());
    /// conn.read_buffer();
    /// assert!(!conn.read_buffer_released());
    /// assert!(conn.release_read_buffer());
    /// assert!(conn.read_buffer_released());
    /// ```
    #[inline]
    pub fn read_buffer_released(&self) -> bool {
        self.rx.capacity() == 0 && self.pending.capacity() == 0
    }

    /// Gives the read buffer back when it holds no unprocessed input, so a quiet connection
    /// keeps no buffer (nor the box it keeps for assembling messages); the next
    /// [`Connection::read_buffer`] allocates a fresh one. Returns
    /// whether there is no read buffer now. The connection does this itself when a keepalive
    /// interval passes without input.
    pub fn release_read_buffer(&mut self) -> bool {
        if self.rx.is_empty() && self.pending.is_empty() {
            self.rx = BytesMut::new();
            self.pending = BytesMut::new();
            self.read_chunk = saturating_u32(MIN_READ_CHUNK);
            if !self.message_in_progress {
                self.message = None;
            }
        }
        self.read_buffer_released()
    }

    /// Hands the read buffer out when it holds no unprocessed input and is no bigger than a
    /// few small reads need (large buffers of bulk transfers stay). A driver that serves many
    /// connections can keep such buffers in a pool while their connections wait for input
    /// and give them to whichever connection reads next ([`Connection::put_read_buffer`]), so
    /// a connection that is waiting holds no read buffer, and none is allocated per message.
    ///
    /// Messages cut from the buffer earlier stay valid: each owns its bytes, and a later
    /// reader only ever writes to the part of the allocation past them.
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::BytesMut;
    /// use wsflow_core::{Config, Connection, Negotiated, Role};
    ///
    /// let now = Instant::now();
    /// let new = || Connection::new(Role::Server, Config::server(), Negotiated::new(), BytesMut::new(), now);
    /// let (mut first, mut second) = (new(), new());
    /// // A masked, empty binary frame read by the first connection.
    /// first.handle_bytes(&[0x82, 0x80, 1, 2, 3, 4], now);
    /// assert!(first.poll_event().is_some());
    /// let buffer = first.take_read_buffer().expect("nothing is waiting in it");
    /// assert!(first.read_buffer_released());
    /// assert!(second.put_read_buffer(buffer).is_none());
    /// assert!(!second.read_buffer_released());
    /// ```
    #[inline]
    pub fn take_read_buffer(&mut self) -> Option<BytesMut> {
        if !self.rx.is_empty() || !self.pending.is_empty() {
            return None;
        }
        self.reclaim_spare_capacity();
        if self.rx.capacity() == 0 || self.rx.capacity() > MAX_LENT_BUFFER {
            return None;
        }
        self.pending = BytesMut::new();
        Some(std::mem::take(&mut self.rx))
    }

    /// The size of read to offer when no frame needs more (see `handle_read`).
    #[inline]
    fn read_chunk(&self) -> usize {
        self.read_chunk as usize
    }

    /// Makes the spare capacity behind the unprocessed input `rx`'s again. A read into a
    /// connection with no unprocessed input becomes that input whole, spare capacity
    /// included (see [`Connection::handle_read`]); once it is used up, the two trade places
    /// back. Neither trade touches a reference count, where splitting the read off and
    /// joining it to the input would, on every read.
    #[inline]
    fn reclaim_spare_capacity(&mut self) {
        if self.rx.capacity() == 0 {
            if self.pending.is_empty() {
                std::mem::swap(&mut self.rx, &mut self.pending);
            } else if self.pending.capacity() > self.pending.len() {
                // Input is waiting (a partial frame): only what lies past it is handed out.
                self.rx = self.pending.split_off(self.pending.len());
            }
        }
    }

    /// Gives the connection `buffer` to read into, if it has none (see
    /// [`Connection::take_read_buffer`]); otherwise hands `buffer` back. Whatever `buffer`
    /// holds is discarded.
    #[inline]
    pub fn put_read_buffer(&mut self, mut buffer: BytesMut) -> Option<BytesMut> {
        if !self.read_buffer_released() {
            return Some(buffer);
        }
        buffer.clear();
        self.rx = buffer;
        None
    }

    /// Takes the bytes appended to [`Connection::read_buffer`] since the last call.
    #[inline]
    pub fn handle_read(&mut self, now: Instant) {
        if self.rx.is_empty() {
            return;
        }
        // Reads that fill a whole chunk ask for bigger chunks (bulk transfers); reads far
        // smaller than the chunk let it shrink back. Filling a small leftover of spare
        // capacity says nothing about the traffic and changes nothing.
        let read = self.rx.len();
        let (offered, chunk) = (self.offered as usize, self.read_chunk());
        if read >= offered && offered >= chunk {
            self.read_chunk = saturating_u32((chunk * 2).min(MAX_READ_CHUNK));
        } else if read < chunk / 8 {
            self.read_chunk = saturating_u32((chunk / 2).max(MIN_READ_CHUNK));
        }
        self.set_now(now);
        self.restart_quiet();
        self.take_read_bytes();
    }

    /// Takes the bytes read into the read buffer as input, behind what is waiting.
    #[inline]
    fn take_read_bytes(&mut self) {
        if matches!(self.phase, Phase::TearingDown | Phase::Closed) {
            // Draining after the close: nothing more is processed.
            self.rx.clear();
        } else if self.pending.is_empty() {
            // The usual case: the read's bytes become the input as they are, with the spare
            // capacity behind them, which `read_buffer` hands out again once they are used.
            std::mem::swap(&mut self.pending, &mut self.rx);
        } else {
            let data = self.rx.split();
            self.pending.unsplit(data);
        }
    }

    /// Copies `bytes` into the connection, as [`Connection::read_buffer`] followed by
    /// [`Connection::handle_read`] would.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        self.read_buffer().extend_from_slice(bytes);
        self.handle_read(now);
    }

    /// The transport reached end of file. Frames already received are still delivered.
    pub fn handle_eof(&mut self, now: Instant) {
        self.set_now(now);
        self.eof = true;
        self.check_teardown_done();
    }

    /// Reading or writing failed: the connection ends with 1006 after an
    /// [`Event::Error`] (or quietly, if the close handshake was already over).
    pub fn handle_io_error(&mut self, error: impl Into<Box<dyn std::error::Error + Send + Sync>>) {
        match self.phase {
            Phase::Closed => {}
            Phase::TearingDown => self.finish(),
            Phase::Open | Phase::Ending => {
                let error = Error::transport(error);
                let description = format!("Transport error: {error}");
                self.events.push_back(Event::Error(error));
                self.end_abnormally(description, CloseInitiator::Peer);
            }
        }
    }

    /// The peer took bytes written while nothing was read (a driver waiting for its output
    /// to drain): it is alive, so the keepalive's wait starts over as input would start it,
    /// and a close under way waits its whole close timeout from here. A peer that stops
    /// reading and sending alike is still found out by the keepalive.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use bytes::BytesMut;
    /// use wsflow_core::{Config, Connection, Negotiated, Role};
    ///
    /// let start = Instant::now();
    /// let config = Config::server().keepalive_interval(Duration::from_secs(20));
    /// let mut conn = Connection::new(Role::Server, config, Negotiated::new(), BytesMut::new(), start);
    /// conn.handle_write_progress(start + Duration::from_secs(15));
    /// assert_eq!(conn.poll_timeout(), Some(start + Duration::from_secs(35)));
    /// ```
    pub fn handle_write_progress(&mut self, now: Instant) {
        self.set_now(now);
        self.restart_quiet();
        if self.phase == Phase::Ending {
            // Our close frame is still on its way behind output the peer is taking: the
            // close timeout, for a peer that does not answer, counts from here.
            self.timer_nanos = self.timer_nanos.max(nanos(self.config.close_timeout));
        }
    }

    /// Input came, or the peer took output: while open, the keepalive's wait starts over.
    #[inline]
    fn restart_quiet(&mut self) {
        if self.phase == Phase::Open {
            self.timer_nanos = 0;
            self.keepalive_ping_sent = false;
        }
    }

    /// Time passed: sends keepalive pings, drops a silent peer, ends a close that timed out.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.set_now(now);
        match self.phase {
            Phase::Open if self.config.keepalive => {
                let interval = self.config.keepalive_interval;
                let drop = self.config.drop_connection_on_keepalive_timeout;
                let since = self.quiet_since();
                match self.keepalive_ping_sent {
                    false if now >= later(since, interval) => {
                        // Quiet for a whole interval: no reason to keep a read buffer.
                        self.release_read_buffer();
                        self.send_keepalive_ping();
                    }
                    true if drop && now >= later(since, self.config.keepalive_grace_period) => {
                        self.end_abnormally(
                            "Peer not responding.".to_owned(),
                            CloseInitiator::Local,
                        );
                    }
                    true if !drop && now >= later(since, interval) => {
                        self.send_keepalive_ping();
                    }
                    _ => {}
                }
            }
            // `now` has just been set: the deadline is due when nothing is left of the wait.
            Phase::Ending if self.timer_nanos == 0 => {
                self.end_abnormally(
                    "Close handshake timed out: no close frame from the peer within close_timeout."
                        .to_owned(),
                    CloseInitiator::Local,
                );
            }
            Phase::TearingDown if self.timer_nanos == 0 => self.finish(),
            _ => {}
        }
    }

    /// Sends a keepalive ping; `now` has just been set.
    fn send_keepalive_ping(&mut self) {
        self.timer_nanos = 0;
        self.keepalive_ping_sent = true;
        self.push_control(OpCode::Ping, Bytes::new());
    }

    /// When the keepalive's current wait began: the last input, or the keepalive ping sent
    /// since, if `keepalive_ping_sent`. One instant serves both, since input ends the wait
    /// for a pong.
    #[inline]
    fn quiet_since(&self) -> Instant {
        self.now
            .checked_sub(Duration::from_nanos(self.timer_nanos))
            .unwrap_or(self.now)
    }

    /// The deadline of a connection ending or tearing down: the peer's close frame is due,
    /// or the drain ends.
    #[inline]
    fn deadline(&self) -> Instant {
        later(self.now, Duration::from_nanos(self.timer_nanos))
    }

    /// Sets the deadline of the phase just entered: the close timeout from `now`.
    fn start_close_timeout(&mut self) {
        self.timer_nanos = nanos(self.config.close_timeout);
    }

    /// Takes `now` as the latest time passed in, keeping the instant `timer_nanos` stands
    /// for where it was: [`Connection::quiet_since`] (or at `now`, if time was passed in
    /// going backwards past it), or [`Connection::deadline`] (or at `now`, once it passed).
    #[inline]
    fn set_now(&mut self, now: Instant) {
        let (later, by) = if now >= self.now {
            (true, nanos(now - self.now))
        } else {
            (false, nanos(self.now - now))
        };
        // Before `now` while open, after it otherwise.
        let before = self.phase == Phase::Open;
        self.timer_nanos = if later == before {
            self.timer_nanos.saturating_add(by)
        } else {
            self.timer_nanos.saturating_sub(by)
        };
        self.now = now;
    }

    /// The next deadline: call [`Connection::handle_timeout`] when it passes.
    #[inline]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Open if self.config.keepalive => Some(later(
                self.quiet_since(),
                if self.keepalive_ping_sent && self.config.drop_connection_on_keepalive_timeout {
                    self.config.keepalive_grace_period
                } else {
                    self.config.keepalive_interval
                },
            )),
            Phase::Open | Phase::Closed => None,
            Phase::Ending | Phase::TearingDown => Some(self.deadline()),
        }
    }

    // ----- output -----------------------------------------------------------------------

    /// The next event, parsing buffered input as needed; `None` when more input is needed.
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.pending.is_empty()
            && self.short_frames.is_empty()
            && self.events.is_empty()
            && self.held.is_none()
            && !self.eof
        {
            // Nothing to parse, report or answer: the usual state whenever a driver looks for
            // an event before reading, decided without a call.
            return None;
        }
        if let Some(message) = self.poll_burst_message() {
            return Some(Event::Message(message));
        }
        self.next_event()
    }

    /// The next event if it is the next message of a burst of short messages read together,
    /// already cut from the input: what [`Connection::poll_event`] would return as
    /// [`Event::Message`], without building the event. `None` when the next event is anything
    /// else, or when there is none yet; [`Connection::poll_event`] then tells which.
    ///
    /// A shortcut for a driver that delivers messages, worth having when many messages arrive
    /// in each read: a message handed through fewer layers is copied fewer times.
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::BytesMut;
    /// use wsflow_core::{Config, Connection, Event, Message, Negotiated, Role};
    ///
    /// let now = Instant::now();
    /// let mut client = Connection::new(Role::Client, Config::client(), Negotiated::new(), BytesMut::new(), now);
    /// let mut server = Connection::new(Role::Server, Config::server(), Negotiated::new(), BytesMut::new(), now);
    /// for n in 0..3u8 {
    ///     client.send(Message::binary(vec![n])).unwrap();
    /// }
    /// // All three arrive in one read.
    /// let wire: Vec<u8> = client.poll_transmit().unwrap().flatten().copied().collect();
    /// server.handle_bytes(&wire, now);
    /// // The first message of a burst comes as an event, the rest also as bare messages.
    /// assert!(matches!(server.poll_event(), Some(Event::Message(_))));
    /// assert_eq!(server.poll_burst_message(), Some(Message::binary(vec![1])));
    /// assert_eq!(server.poll_burst_message(), Some(Message::binary(vec![2])));
    /// assert_eq!(server.poll_burst_message(), None);
    /// ```
    #[inline]
    pub fn poll_burst_message(&mut self) -> Option<Message> {
        // The rest of a burst of short messages (see `cut_short_frames`), in the state
        // `next_event` would take it in: no event or pong before it, input flowing.
        if !self.short_frames.is_empty()
            && self.events.is_empty()
            && self.held.is_none()
            && !self.paused
            && matches!(self.phase, Phase::Open | Phase::Ending)
            && let Some((opcode, payload)) = self.short_frames.next()
        {
            match short_message_of(opcode, payload) {
                Ok(message) => return Some(message),
                // The error is the next event.
                Err(err) => self.fail(err),
            }
        }
        None
    }

    fn next_event(&mut self) -> Option<Event> {
        self.commit_held();
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if self.paused || !matches!(self.phase, Phase::Open | Phase::Ending) {
                return None;
            }
            match self.short_message() {
                Some(Ok(message)) => return Some(Event::Message(message)),
                Some(Err(err)) => {
                    self.fail(err);
                    continue;
                }
                None => {}
            }
            match self.process_next_frame() {
                // The queue was empty: the frame's event is the next one.
                Ok(FrameProgress::Event(event)) => return Some(event),
                Ok(FrameProgress::Handled) => {}
                Ok(FrameProgress::NeedMore) => {
                    if self.eof {
                        self.end_abnormally(
                            "Connection dropped by remote peer.".to_owned(),
                            CloseInitiator::Peer,
                        );
                        continue;
                    }
                    return None;
                }
                Err(err) => self.fail(err),
            }
        }
    }

    /// Whether there may be bytes to write: [`Connection::poll_transmit`] would return
    /// `Some`, or would queue an automatic pong first. A cheap test that lets a driver skip
    /// its write path when nothing is waiting.
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::BytesMut;
    /// use wsflow_core::{Config, Connection, Negotiated, Role};
    ///
    /// let now = Instant::now();
    /// let mut conn = Connection::new(Role::Server, Config::server(), Negotiated::new(), BytesMut::new(), now);
    /// assert!(!conn.has_transmit());
    /// conn.send_text("hi").unwrap();
    /// assert!(conn.has_transmit());
    /// ```
    #[inline]
    pub fn has_transmit(&self) -> bool {
        !self.out.is_empty() || self.held.is_some()
    }

    /// The bytes to write next, as slices for one vectored write; `None` when nothing is
    /// queued. Report what was written with [`Connection::advance_transmit`].
    #[inline]
    pub fn poll_transmit(&mut self) -> Option<impl Iterator<Item = &[u8]>> {
        self.commit_held();
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.chunks())
        }
    }

    /// `n` bytes from [`Connection::poll_transmit`] were written.
    #[inline]
    pub fn advance_transmit(&mut self, n: usize) {
        self.out.advance(n);
        self.check_teardown_done();
    }

    /// Whether to shut down the transport's write half now (a server ending the TCP
    /// connection after the close handshake). Returns `true` once.
    #[inline]
    pub fn poll_shutdown(&mut self) -> bool {
        if self.phase == Phase::TearingDown
            && !self.teardown.shutdown_requested
            && self.role == Role::Server
            && self.out.is_empty()
        {
            self.teardown.shutdown_requested = true;
            self.check_teardown_done();
            return true;
        }
        false
    }

    // ----- commands ---------------------------------------------------------------------

    /// Queues a text message (WebSocket-Node's `sendUTF`).
    pub fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), Error> {
        self.send_data(OpCode::Text, text.into().into_bytes(), true)
    }

    /// Queues a binary message (WebSocket-Node's `sendBytes`).
    pub fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send_data(OpCode::Binary, data.into(), true)
    }

    /// Queues a message of either type (WebSocket-Node's `send`: strings as text, bytes as
    /// binary).
    pub fn send(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        match message.into() {
            Message::Text(text) => self.send_text(text),
            Message::Binary(data) => self.send_binary(data),
        }
    }

    /// Queues a message that the extension (compression) must leave untransformed.
    pub fn send_uncompressed(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        match message.into() {
            Message::Text(text) => self.send_data(OpCode::Text, text.into_bytes(), false),
            Message::Binary(data) => self.send_data(OpCode::Binary, data, false),
        }
    }

    /// Queues a ping; the payload may take at most 125 bytes.
    ///
    /// Above the send high-water mark the ping is held until the output drains, and a later
    /// ping replaces it: a heartbeat sent to a peer that stopped reading cannot grow the
    /// output (the peer answers the latest ping anyway, RFC 6455 section 5.5.3).
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::BytesMut;
    /// use wsflow_core::{Config, Connection, Negotiated, Role};
    ///
    /// let config = Config::server().send_high_water_mark(10);
    /// let mut conn =
    ///     Connection::new(Role::Server, config, Negotiated::new(), BytesMut::new(), Instant::now());
    /// conn.send_binary(vec![0u8; 100]).unwrap();
    /// conn.ping("one").unwrap();
    /// conn.ping("two").unwrap();
    /// assert_eq!(conn.buffered_amount(), 102); // the message; the latest ping waits
    /// conn.advance_transmit(102);
    /// let wire: Vec<u8> = conn.poll_transmit().unwrap().flatten().copied().collect();
    /// assert_eq!(wire, b"\x89\x03two");
    /// ```
    pub fn ping(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.send_control(OpCode::Ping, payload.into())
    }

    /// Queues an unsolicited pong (or the answer to a ping whose automatic pong was
    /// cancelled); the payload may take at most 125 bytes. Above the send high-water mark it
    /// is held as [`Connection::ping`] holds a ping, and a later one replaces it; the
    /// automatic answer to the peer's latest ping is held apart and goes too.
    pub fn pong(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.send_control(OpCode::Pong, payload.into())
    }

    /// Queues a frame as given (WebSocket-Node's `sendFrame`), except for its mask: a client
    /// masks it with a fresh key, a server sends it unmasked. No protocol state changes: a
    /// raw close frame does not start the close handshake.
    pub fn send_frame(&mut self, frame: Frame) -> Result<(), Error> {
        self.check_open()?;
        if frame.opcode.is_control() && frame.payload.len() > MAX_CONTROL_PAYLOAD_LEN {
            return Err(Error::ControlPayloadTooLong {
                len: frame.payload.len(),
            });
        }
        let mut header = frame.header();
        header.mask = self.mask_key();
        self.out.push_frame(header, frame.payload);
        Ok(())
    }

    /// Cancels the automatic pong for the last ping, if it has not been queued yet (the
    /// `cancel` of WebSocket-Node's ping event). Returns whether one was cancelled.
    pub fn cancel_pong(&mut self) -> bool {
        let Some(held) = &mut self.held else {
            return false;
        };
        let cancelled = held.answer.take().is_some();
        if held.is_empty() {
            self.held = None;
        }
        cancelled
    }

    /// Whether control frames wait outside the output: pings and pongs sent above the send
    /// high-water mark, or the automatic answer to the peer's latest ping. They join the
    /// output ([`Connection::buffered_amount`] counts them from then on) at the first
    /// [`Connection::poll_transmit`] or event that finds the output below the mark, or are
    /// dropped when the close begins. A driver that reports when a batch of sends is written
    /// waits for that before placing the batch's end.
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::BytesMut;
    /// use wsflow_core::{Config, Connection, Negotiated, Role};
    ///
    /// let config = Config::server().send_high_water_mark(10);
    /// let mut conn =
    ///     Connection::new(Role::Server, config, Negotiated::new(), BytesMut::new(), Instant::now());
    /// conn.send_binary(vec![0u8; 100]).unwrap();
    /// conn.ping("are you there").unwrap();
    /// assert!(conn.holds_control());
    /// conn.advance_transmit(102);
    /// assert!(conn.poll_transmit().is_some()); // the ping joins the drained output
    /// assert!(!conn.holds_control());
    /// ```
    #[inline]
    pub fn holds_control(&self) -> bool {
        self.held.is_some()
    }

    /// Starts the close handshake: sends a close frame with `code` and `description`
    /// (`None`: the code's default description; `Some("")`: no reason), then waits up to the
    /// close timeout for the peer's. Does nothing if closing already began.
    pub fn close(
        &mut self,
        code: CloseCode,
        description: Option<&str>,
        now: Instant,
    ) -> Result<(), Error> {
        let reason = description.unwrap_or_else(|| code.default_description().unwrap_or(""));
        CloseFrame::check(code, reason)?;
        if self.phase != Phase::Open {
            return Ok(());
        }
        self.set_now(now);
        self.queue_close_frame(Some(code), reason);
        self.close = Some(Box::new(CloseEvent {
            code,
            description: reason.to_owned(),
            was_clean: false,
            initiator: CloseInitiator::Local,
        }));
        self.phase = Phase::Ending;
        self.start_close_timeout();
        Ok(())
    }

    /// Sends a close frame and ends the connection without waiting for the peer
    /// (WebSocket-Node's `drop`, whose default code is 1002). The final bytes are still
    /// flushed.
    pub fn drop_connection(
        &mut self,
        code: CloseCode,
        description: Option<&str>,
        now: Instant,
    ) -> Result<(), Error> {
        let reason = description.unwrap_or_else(|| code.default_description().unwrap_or(""));
        CloseFrame::check(code, reason)?;
        self.set_now(now);
        match self.phase {
            Phase::Open => self.queue_close_frame(Some(code), reason),
            Phase::Ending => {}
            Phase::TearingDown | Phase::Closed => return Ok(()),
        }
        self.begin_teardown(
            CloseEvent {
                code,
                description: reason.to_owned(),
                was_clean: false,
                initiator: CloseInitiator::Local,
            },
            false,
        );
        Ok(())
    }

    /// Stops taking input: `poll_event` returns only events already queued (WebSocket-Node's
    /// `pause`). A driver stops reading meanwhile.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Takes input again after [`Connection::pause`].
    pub fn resume(&mut self) {
        self.paused = false;
    }

    /// Whether input is paused.
    #[inline]
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    // ----- internals: sending -----------------------------------------------------------

    fn check_open(&self) -> Result<(), Error> {
        if self.phase == Phase::Open {
            Ok(())
        } else {
            Err(Error::NotOpen(self.state()))
        }
    }

    fn mask_key(&self) -> Option<[u8; 4]> {
        self.role.masks_outgoing().then(random_mask_key)
    }

    #[inline]
    fn send_data(&mut self, opcode: OpCode, payload: Bytes, transform: bool) -> Result<(), Error> {
        if self.phase == Phase::Open
            && (!transform || self.extension().is_none())
            && self.queue_short_unmasked(opcode, &payload)
        {
            // The usual server message, queued without a call.
            return Ok(());
        }
        self.send_data_in_full(opcode, payload, transform)
    }

    fn send_data_in_full(
        &mut self,
        opcode: OpCode,
        payload: Bytes,
        transform: bool,
    ) -> Result<(), Error> {
        self.check_open()?;
        if transform && let Some(extension) = self.extension_mut() {
            let (payload, rsv) = extension
                .encode(payload, opcode == OpCode::Text)
                .map_err(Error::Extension)?;
            self.queue_data(opcode, payload, rsv);
        } else {
            self.queue_data(opcode, payload, 0);
        }
        Ok(())
    }

    /// Queues a data message as one frame or as fragments; `rsv` goes on the first frame.
    #[inline]
    fn queue_data(&mut self, opcode: OpCode, payload: Bytes, rsv: u8) {
        if rsv == 0 && self.queue_short_unmasked(opcode, &payload) {
            return;
        }
        self.queue_frames(opcode, payload, rsv);
    }

    /// Queues the usual server message, one small unmasked frame without RSV bits, by
    /// copying it behind a header written in place; `false` (nothing queued) for every
    /// other message.
    #[inline]
    fn queue_short_unmasked(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        !self.role.masks_outgoing()
            && (!self.config.fragment_outgoing_messages
                || payload.len() <= self.config.fragmentation_threshold)
            && self.out.push_short_unmasked(opcode, payload)
    }

    /// Queues a data message as one frame or as fragments, whatever its size and role.
    fn queue_frames(&mut self, opcode: OpCode, payload: Bytes, rsv: u8) {
        let threshold = self.config.fragmentation_threshold.max(1);
        let len = payload.len();
        let rsv_header = |opcode: OpCode, len: usize, mask: Option<[u8; 4]>| {
            let mut header = FrameHeader::new(opcode, len as u64).with_mask(mask);
            if rsv != 0 {
                header.rsv1 = rsv & 0b100 != 0;
                header.rsv2 = rsv & 0b010 != 0;
                header.rsv3 = rsv & 0b001 != 0;
            }
            header
        };
        if !self.config.fragment_outgoing_messages || len <= threshold {
            // One frame: the payload moves into the queue, so a client can mask it in place
            // when it is not shared.
            let header = rsv_header(opcode, len, self.mask_key());
            self.out.push_frame(header, payload);
            return;
        }
        let mut start = 0;
        while start < len {
            let end = len.min(start + threshold);
            let header = if start == 0 {
                rsv_header(opcode, end, self.mask_key())
            } else {
                FrameHeader::new(OpCode::Continuation, (end - start) as u64)
                    .with_mask(self.mask_key())
            };
            self.out
                .push_frame(header.with_fin(end == len), payload.slice(start..end));
            start = end;
        }
    }

    fn send_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), Error> {
        self.check_open()?;
        if payload.len() > MAX_CONTROL_PAYLOAD_LEN {
            return Err(Error::ControlPayloadTooLong { len: payload.len() });
        }
        if self.is_output_buffer_full() {
            // Held, the latest of its kind only, until the output drains (`commit_held`).
            let held = self.held.get_or_insert_default();
            match opcode {
                OpCode::Ping => held.ping = Some(payload),
                _ => held.pong = Some(payload),
            }
        } else {
            self.push_control(opcode, payload);
        }
        Ok(())
    }

    fn push_control(&mut self, opcode: OpCode, payload: Bytes) {
        let header = FrameHeader::new(opcode, payload.len() as u64).with_mask(self.mask_key());
        self.out.push_frame(header, payload);
    }

    /// Queues the held control frames (the pending automatic pong, and the pings and pongs
    /// sent above the mark), unless the output is above the send high-water mark: then they
    /// wait (and a later one of the same kind replaces each) until the output drains, so a
    /// peer that pings and never reads cannot make it grow, nor a heartbeat sent to it.
    #[inline]
    fn commit_held(&mut self) {
        // Checked before taking: the message path never has a control frame waiting.
        if self.held.is_some()
            && !self.is_output_buffer_full()
            && let Some(held) = self.held.take()
            && self.phase == Phase::Open
        {
            if let Some(payload) = held.answer {
                self.push_control(OpCode::Pong, payload);
            }
            if let Some(payload) = held.pong {
                self.push_control(OpCode::Pong, payload);
            }
            if let Some(payload) = held.ping {
                self.push_control(OpCode::Ping, payload);
            }
        }
    }

    fn queue_close_frame(&mut self, code: Option<CloseCode>, reason: &str) {
        // An unanswered ping is moot once we close, and so are held heartbeats.
        self.held = None;
        let mut payload = BytesMut::with_capacity(2 + reason.len());
        if let Some(code) = code {
            payload.extend_from_slice(&code.as_u16().to_be_bytes());
            payload.extend_from_slice(reason.as_bytes());
        }
        self.push_control(OpCode::Close, payload.freeze());
    }

    // ----- internals: receiving ---------------------------------------------------------

    /// Parses and handles the next frame. A data frame's event is returned rather than
    /// queued (the common case skips the queue); other frames queue theirs.
    fn process_next_frame(&mut self) -> Result<FrameProgress, ProtocolError> {
        if self.pending.is_empty() {
            // All input used up, the usual state whenever the driver looks for an event
            // before reading. A frame in progress was checked by the call that parsed its
            // header (and a header announcing no payload completes its frame at once), so
            // nothing below would act.
            return Ok(FrameProgress::NeedMore);
        }
        if !self.frame_checked
            && !self.message_in_progress
            && self.config.assemble_fragments
            && let Some(text) = self
                .decoder
                .decode_whole_text_frame(&mut self.pending, self.config.max_received_message_size)
        {
            // A text message of one whole frame too long for the short path (or passed over
            // by it): unmasked and validated in one pass, in the state `single_frame_message`
            // takes one.
            return Ok(FrameProgress::Event(Event::Message(Message::Text(text?))));
        }
        if self.frame_checked
            && self.message_in_progress
            && let Some(message) = &mut self.message
        {
            // More of a frame in progress: text is unmasked and validated in one pass.
            message.unmask_partial(&mut self.decoder, &mut self.pending)?;
        }
        let Some(frame) = self.decoder.decode(&mut self.pending)? else {
            let partial = self
                .decoder
                .partial_frame(&self.pending)
                .map(|(header, prefix)| (*header, prefix.len()));
            if let Some((header, prefix_len)) = partial {
                if !self.frame_checked {
                    self.check_frame_start(&header)?;
                    self.frame_checked = true;
                }
                if header.opcode.is_data()
                    && self.message_in_progress
                    && let Some(message) = &mut self.message
                {
                    message.validate_partial(&self.pending[..prefix_len])?;
                }
            }
            return Ok(FrameProgress::NeedMore);
        };
        let frame = if self.frame_checked {
            frame
        } else {
            // The usual message: one whole frame, read at once, nothing in progress.
            let frame = match self.single_frame_message(frame)? {
                Ok(message) => return Ok(FrameProgress::Event(Event::Message(message))),
                Err(frame) => frame,
            };
            self.check_frame_start(&frame.header())?;
            frame
        };
        self.frame_checked = false;
        if frame.opcode.is_control() {
            self.handle_control_frame(frame)?;
            return Ok(FrameProgress::Handled);
        }
        Ok(match self.handle_data_frame(frame)? {
            Some(event) => FrameProgress::Event(event),
            None => FrameProgress::Handled,
        })
    }

    /// The usual message, a short frame of its own with nothing in progress, by the
    /// decoder's shorter path (see [`FrameDecoder::decode_short_data_frames`], which cuts
    /// every such message the input holds at once); `None` for every other frame, which
    /// [`Connection::process_next_frame`] takes.
    #[inline]
    fn short_message(&mut self) -> Option<Result<Message, ProtocolError>> {
        // Two returns rather than one `match` feeding a third: the compiler then builds each
        // message where it is returned, without copying it from one to the other.
        if let Some((opcode, payload)) = self.short_frames.next() {
            return Some(short_message_of(opcode, payload));
        }
        if self.frame_checked || self.message_in_progress || !self.config.assemble_fragments {
            return None;
        }
        let (opcode, payload) = self
            .decoder
            .decode_short_data_frame(&mut self.pending, self.config.max_received_message_size)?;
        if !self.pending.is_empty() {
            self.cut_short_frames();
        }
        Some(short_message_of(opcode, payload))
    }

    /// Cuts the whole short messages that follow one just taken off `pending` in one piece
    /// (a burst: one cut of the read buffer rather than one per message); `short_message`
    /// then takes them one per call, ahead of `pending`. Taking a whole message starts none,
    /// so they are taken in the same state as the first.
    #[inline(never)]
    fn cut_short_frames(&mut self) {
        if let Some(frames) = self
            .decoder
            .decode_short_data_frames(&mut self.pending, self.config.max_received_message_size)
        {
            self.short_frames = frames;
        }
    }

    /// A message that is one final frame, seen whole (so checked now, with nothing of it
    /// validated yet), with no message in progress, uncompressed, within the message limit
    /// and assembled: taken as it is, without the bookkeeping of a message in progress.
    /// Every other frame is handed back for the general path (which also reports the errors
    /// this one leaves to it, such as a message over the limit).
    fn single_frame_message(&self, frame: Frame) -> Result<Result<Message, Frame>, ProtocolError> {
        let plain = frame.fin
            && !self.message_in_progress
            && self.config.assemble_fragments
            && frame.payload.len() <= self.config.max_received_message_size
            && !self.is_compressed(&frame.header());
        if !plain {
            return Ok(Err(frame));
        }
        Ok(match frame.opcode {
            OpCode::Binary => Ok(Message::Binary(frame.payload)),
            OpCode::Text => Ok(Message::Text(
                Utf8Bytes::try_from(frame.payload).map_err(|_| ProtocolError::InvalidUtf8)?,
            )),
            _ => Err(frame),
        })
    }

    /// Whether the first frame of a message says an extension transformed the message.
    fn is_compressed(&self, header: &FrameHeader) -> bool {
        self.extension()
            .is_some_and(|ext| header.rsv_bits() & ext.rsv_bits() != 0)
    }

    /// The negotiated extension, if any.
    #[inline]
    fn extension(&self) -> Option<&dyn Extension> {
        self.negotiated.as_ref()?.extension.as_deref()
    }

    /// The negotiated extension, if any, to encode or decode with.
    fn extension_mut(&mut self) -> Option<&mut Box<dyn Extension>> {
        self.negotiated.as_mut()?.extension.as_mut()
    }

    /// The rules that depend on the message in progress, checked on the header before the
    /// payload is buffered.
    fn check_frame_start(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        if header.opcode.is_control() {
            if header.rsv_bits() != 0 {
                // No extension defines RSV bits on control frames.
                return Err(ProtocolError::ReservedBitsSet(header.rsv_bits()));
            }
            return Ok(());
        }
        let compressed = self.is_compressed(header);
        let message = match (header.opcode, self.message_in_progress, &mut self.message) {
            (OpCode::Continuation, true, Some(message)) => {
                if header.rsv_bits() != 0 {
                    // Extension bits belong on the first frame of a message only.
                    return Err(ProtocolError::ReservedBitsSet(header.rsv_bits()));
                }
                message.fragments += 1;
                message
            }
            (OpCode::Continuation, ..) => return Err(ProtocolError::UnexpectedContinuation),
            (_, true, _) => return Err(ProtocolError::ExpectedContinuation),
            (opcode, false, slot) => {
                let fresh = IncomingMessage::new(opcode == OpCode::Text, compressed);
                self.message_in_progress = true;
                // The box of an earlier message is reused.
                match slot.take() {
                    Some(mut spare) => {
                        *spare = fresh;
                        slot.insert(spare)
                    }
                    None => slot.insert(Box::new(fresh)),
                }
            }
        };
        if self.config.assemble_fragments {
            // 0 counts as 1: a message of one frame, taken whole by the short paths, which do
            // not count, is the same message split over reads, which are counted.
            let max_fragments = self.config.max_fragments_per_message.max(1);
            if message.fragments > max_fragments {
                return Err(ProtocolError::TooManyFragments { max: max_fragments });
            }
            let len = message.wire_len + header.payload_len;
            let max = self.config.max_received_message_size as u64;
            // Compressed, a message is limited by what it inflates to (checked as it
            // inflates); its compressed bytes too, though more loosely, or empty blocks
            // (which inflate to nothing) could keep one message going for gigabytes. A
            // compressor's output passes what it compressed by at most an eighth (fixed
            // Huffman codes of 9 bits for some bytes, as small encoders use) plus a few bytes
            // per block and flush: a quarter and 64 KiB more leaves room for all of it.
            let wire_max = if message.compressed {
                max.saturating_add(max / 4).saturating_add(64 * 1024)
            } else {
                max
            };
            if len > wire_max {
                return Err(ProtocolError::MessageTooLarge { len, max: wire_max });
            }
        }
        Ok(())
    }

    /// Takes a data frame into the message in progress; returns the event it completes.
    fn handle_data_frame(&mut self, frame: Frame) -> Result<Option<Event>, ProtocolError> {
        let Some(message) = self.message.as_mut().filter(|_| self.message_in_progress) else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        message.wire_len += frame.payload.len() as u64;
        if !self.config.assemble_fragments {
            message.validate_frame(&frame.payload, frame.fin)?;
            if frame.fin {
                self.message_in_progress = false;
            }
            return Ok(Some(Event::Frame(frame)));
        }
        let complete = if message.compressed {
            let Some(extension) = self.negotiated.as_mut().and_then(|n| n.extension.as_mut())
            else {
                return Err(ProtocolError::ReservedBitsSet(frame.header().rsv_bits()));
            };
            message.push_encoded(
                extension.as_mut(),
                &frame.payload,
                frame.fin,
                self.config.max_received_message_size,
            )?
        } else {
            message.push_frame(frame.payload, frame.fin)?
        };
        if complete.is_some() {
            self.message_in_progress = false;
        }
        Ok(complete.map(Event::Message))
    }

    fn handle_control_frame(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        if !self.config.assemble_fragments {
            self.events.push_back(Event::Frame(frame.clone()));
        }
        match frame.opcode {
            OpCode::Ping => {
                if self.phase == Phase::Open && self.config.auto_pong {
                    // Answer every ping: an earlier one still pending is queued first. Above
                    // the high-water mark only the latest is answered, as RFC 6455 5.5.3
                    // allows: the earlier one is replaced.
                    self.commit_held();
                    self.held.get_or_insert_default().answer = Some(frame.payload.clone());
                }
                self.events.push_back(Event::Ping(frame.payload));
            }
            OpCode::Pong => self.events.push_back(Event::Pong(frame.payload)),
            _ => self.handle_close_frame(frame.payload)?,
        }
        Ok(())
    }

    fn handle_close_frame(&mut self, payload: Bytes) -> Result<(), ProtocolError> {
        let parsed = CloseFrame::parse(payload)?;
        match self.phase {
            Phase::Open => {
                let (code, description) = match &parsed {
                    None => (CloseCode::NOT_PROVIDED, String::new()),
                    Some(frame) => (frame.code, frame.reason.to_string()),
                };
                let description = if description.is_empty() {
                    code.default_description().unwrap_or_default().to_owned()
                } else {
                    description
                };
                // Echo the peer's code (RFC 6455 section 5.5.1), or answer an empty close
                // with an empty close.
                self.queue_close_frame(parsed.map(|frame| frame.code), "");
                self.begin_teardown(
                    CloseEvent {
                        code,
                        description,
                        was_clean: true,
                        initiator: CloseInitiator::Peer,
                    },
                    true,
                );
            }
            Phase::Ending => {
                let mut close = self.close.take().map_or_else(
                    || CloseEvent {
                        code: CloseCode::NORMAL,
                        description: String::new(),
                        was_clean: true,
                        initiator: CloseInitiator::Local,
                    },
                    |close| *close,
                );
                close.was_clean = true;
                self.begin_teardown(close, false);
            }
            Phase::TearingDown | Phase::Closed => {}
        }
        Ok(())
    }

    // ----- internals: closing -----------------------------------------------------------

    /// Fails the connection for a peer violation: sends the close frame with the violation's
    /// code (unless we already sent one), reports the error, and tears down.
    fn fail(&mut self, err: ProtocolError) {
        let code = err.close_code();
        let reason = err.close_reason();
        if self.phase == Phase::Open {
            self.queue_close_frame(Some(code), reason);
        }
        self.events
            .push_back(Event::Error(Error::Protocol(err.clone())));
        self.begin_teardown(
            CloseEvent {
                code,
                description: reason.to_owned(),
                was_clean: false,
                initiator: CloseInitiator::Local,
            },
            false,
        );
    }

    /// The close handshake is over (or abandoned): flush, shut down, drain, then close.
    fn begin_teardown(&mut self, close: CloseEvent, peer_initiated: bool) {
        self.close = Some(Box::new(close));
        self.phase = Phase::TearingDown;
        self.teardown = Teardown {
            shutdown_requested: false,
            peer_initiated,
        };
        self.start_close_timeout();
        self.pending.clear();
        self.short_frames = ShortDataFrames::default();
        self.message = None;
        self.message_in_progress = false;
        self.check_teardown_done();
    }

    #[inline]
    fn check_teardown_done(&mut self) {
        if self.phase == Phase::TearingDown {
            let write_done = self.out.is_empty()
                && (self.teardown.shutdown_requested || self.role == Role::Client);
            if write_done && self.eof {
                self.finish();
            }
        }
    }

    /// Ends the connection without (completing) a close handshake: 1006, nothing more sent.
    fn end_abnormally(&mut self, description: String, initiator: CloseInitiator) {
        self.close = Some(Box::new(CloseEvent {
            code: CloseCode::ABNORMAL,
            description,
            was_clean: false,
            initiator,
        }));
        self.out.clear();
        self.finish();
    }

    fn finish(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        if !self.out.is_empty() {
            // Output given up (a failed write, or the close timeout while tearing down): the
            // close frame behind it never left, so the close handshake did not complete, and
            // nothing is left that a flush or a sender waiting for room could wait for.
            self.out.clear();
            if let Some(close) = &mut self.close {
                close.was_clean = false;
            }
        }
        self.pending = BytesMut::new();
        self.short_frames = ShortDataFrames::default();
        self.rx = BytesMut::new();
        self.message = None;
        self.message_in_progress = false;
        self.held = None;
        let close = self.close.get_or_insert_with(|| {
            Box::new(CloseEvent {
                code: CloseCode::ABNORMAL,
                description: String::new(),
                was_clean: false,
                initiator: CloseInitiator::Local,
            })
        });
        let close = CloseEvent::clone(close);
        self.events.push_back(Event::Closed(close));
    }
}

/// `n`, or `u32::MAX` if it is larger: a read size kept in 32 bits.
#[inline]
fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The message of a short text or binary frame's payload (see `Connection::short_message`).
#[inline(always)]
fn short_message_of(opcode: OpCode, payload: Bytes) -> Result<Message, ProtocolError> {
    match opcode {
        OpCode::Text => Utf8Bytes::try_from(payload)
            .map(Message::Text)
            .map_err(|_| ProtocolError::InvalidUtf8),
        _ => Ok(Message::Binary(payload)),
    }
}
