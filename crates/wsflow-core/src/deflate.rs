//! permessage-deflate (RFC 7692): the [`Extension`] that compresses every data message with
//! DEFLATE, and its options.
//!
//! The handshake settles the parameters (`wsflow-handshake` negotiates them); this module only
//! compresses and decompresses. Compression is `flate2` on the pure-Rust `zlib-rs` backend, in
//! raw DEFLATE streams: each message is compressed and ends with a sync flush whose trailing
//! `00 00 ff ff` is removed before sending and appended again before inflating (RFC 7692
//! section 7.2). Without context takeover the compressor starts every message afresh, and
//! connections share their zlib state through a per-thread pool.
//!
//! Inflating is where a peer could make us allocate: a few kilobytes of compressed data can
//! inflate to gigabytes. The inflater writes into the message buffer in bounded steps and stops
//! as soon as the message would pass `max_received_message_size`, so a decompression bomb costs
//! at most that limit plus one byte before the connection closes with 1009.

use std::cell::RefCell;
use std::collections::VecDeque;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use wsflow_codec::{ProtocolError, Role};

use crate::extension::Extension;

/// What a sync flush ends with; removed from every compressed message on the wire.
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// RSV1 as `0b0RRR`.
const RSV1: u8 = 0b100;
/// The first output space given to the inflater for a message, at least.
const MIN_INFLATE_STEP: usize = 256;
const INVALID_DATA: ProtocolError =
    ProtocolError::InvalidCompressedData("Invalid permessage-deflate data.");

/// The options of permessage-deflate (RFC 7692): the four parameters of the handshake, the
/// compression level and the size below which messages are sent uncompressed.
///
/// Off unless configured: give one to `wsflow`'s `ServerConfig::permessage_deflate` or
/// `ClientConfig::permessage_deflate`. The same type says what an endpoint asks for before
/// the handshake and, once it is over, what was agreed; the extension ([`PerMessageDeflate`])
/// is built from the second.
///
/// | option | default | a server | a client |
/// | --- | --- | --- | --- |
/// | [`server_no_context_takeover`](DeflateConfig::server_no_context_takeover) | false | never uses context takeover itself | asks the server not to use it |
/// | [`client_no_context_takeover`](DeflateConfig::client_no_context_takeover) | false | asks the client not to use it | never uses context takeover itself |
/// | [`server_max_window_bits`](DeflateConfig::server_max_window_bits) | 15 | compresses with at most 2^n bytes of window | asks the server to |
/// | [`client_max_window_bits`](DeflateConfig::client_max_window_bits) | 15 | asks the client to (declining clients that cannot) | compresses with at most 2^n bytes of window |
/// | [`level`](DeflateConfig::level) | 6 | | |
/// | [`threshold`](DeflateConfig::threshold) | 1024 bytes | | |
///
/// A peer's request for a smaller window or no context takeover is always honoured. Window
/// bits range from 8 to 15; zlib cannot compress with a 256-byte window (8 bits), so where 8
/// is agreed the compressor runs with 9 bits, whose matches reach back at most 250 bytes and so
/// stay within the 256 bytes agreed; the inflater, too, runs with at least 9 bits, which
/// accepts everything a 256-byte window produces.
///
/// # Memory per connection
///
/// Measured with `zlib-rs` 0.6 (memory level 8, the only one `flate2` offers; the test
/// `deflate_memory` checks these figures), for the compressor of the direction we send and the
/// inflater of the direction we receive:
///
/// | window bits | 15 (default) | 14 | 13 | 12 | 11 | 10 | 9 and 8 |
/// | --- | --- | --- | --- | --- | --- | --- | --- |
/// | compressor | 371 KiB | 307 KiB | 275 KiB | 259 KiB | 251 KiB | 247 KiB | 245 KiB |
/// | inflater | 46 KiB | 46 KiB | 46 KiB | 46 KiB | 46 KiB | 46 KiB | 46 KiB |
///
/// The compressor holds its window (2 × 2^bits bytes), the chain of earlier matches
/// (2 × 2^bits bytes), a 128 KiB hash table, 112 KiB of symbol and pending buffers and about
/// 3 KiB of state: the window bits only change the first two. The inflater allocates a 32 KiB
/// window whatever the bits (zlib-rs' choice) plus about 14 KiB of state.
///
/// When a connection holds them depends on context takeover, direction by direction:
///
/// - **With context takeover** (the default) the compressor is made for the first message
///   compressed and the inflater for the first compressed message received, and each is then
///   kept until the connection closes, since it holds the window later messages refer back
///   to. A connection that has compressed both ways holds about 417 KiB more than one without
///   compression with the default windows, 291 KiB with 9-bit ones; one that has sent and
///   received only messages under the threshold, or none, holds nothing.
/// - **Without context takeover** every message starts afresh, so the connection keeps no
///   zlib state between messages: it borrows a compressor for each message it compresses, and
///   an inflater for each compressed message it receives (from its first frame to its last),
///   from a pool kept by the thread it runs on, and gives them back reset. A thread keeps at
///   most four of each kind, so a server whose connections all agreed to
///   `server_no_context_takeover` and `client_no_context_takeover` holds one or a few
///   compressors and inflaters per thread in all, not one per connection. The thread also
///   remembers the last four messages it compressed this way (copies, up to 64 KiB each) and
///   their compressed bytes: a message sent to many connections, as a broadcast sends it, is
///   compressed once per thread rather than once per connection.
///
/// On top of that, a message being inflated takes at most `max_received_message_size` plus one
/// byte, and a compressed message waiting to be sent its compressed size. A server holding many
/// connections that all compress therefore saves most by asking for no context takeover both
/// ways ([`DeflateConfig::server_no_context_takeover`] and
/// [`DeflateConfig::client_no_context_takeover`]), at the price of compressing each message on
/// its own, which shrinks a stream of similar messages less.
///
/// # Level and threshold
///
/// The level is zlib's (0 stores, 1 is fastest, 9 smallest; 6 is zlib's default, which Node's
/// `ws` uses too). Messages shorter than the threshold (1024 bytes by default, as in
/// Node's `ws`) are sent uncompressed: they gain little and cost a sync flush each. A threshold
/// of 0 compresses every message. Per message, `send_uncompressed` opts out.
///
/// ```
/// use wsflow_core::DeflateConfig;
///
/// let config = DeflateConfig::new()
///     .client_no_context_takeover(true)
///     .server_max_window_bits(12)
///     .level(1)
///     .threshold(256);
/// assert_eq!(config.get_server_max_window_bits(), 12);
/// assert_eq!(DeflateConfig::new().server_max_window_bits(99).get_server_max_window_bits(), 15);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: u8,
    client_max_window_bits: u8,
    level: u32,
    threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: Self::MAX_WINDOW_BITS,
            client_max_window_bits: Self::MAX_WINDOW_BITS,
            level: Self::DEFAULT_LEVEL,
            threshold: Self::DEFAULT_THRESHOLD,
        }
    }
}

impl DeflateConfig {
    /// The default compression level: 6, zlib's.
    pub const DEFAULT_LEVEL: u32 = 6;
    /// The default threshold: messages under 1024 bytes are sent uncompressed.
    pub const DEFAULT_THRESHOLD: usize = 1024;
    /// The smallest window RFC 7692 allows: 8 bits, 256 bytes.
    pub const MIN_WINDOW_BITS: u8 = 8;
    /// The largest window, and the default: 15 bits, 32 KiB.
    pub const MAX_WINDOW_BITS: u8 = 15;

    /// Context takeover both ways, 15-bit windows, level 6, threshold 1024 bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the server starts every message it sends with an empty window (no context
    /// takeover), as `server_no_context_takeover` says.
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }

    /// Whether the client starts every message it sends with an empty window, as
    /// `client_no_context_takeover` says.
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }

    /// The largest window the server compresses with, as the base-2 logarithm of its size
    /// (`server_max_window_bits`); clamped to 8..=15.
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = clamp_bits(bits);
        self
    }

    /// The largest window the client compresses with (`client_max_window_bits`); clamped to
    /// 8..=15.
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = clamp_bits(bits);
        self
    }

    /// The compression level, 0 (store) to 9 (smallest); larger values are taken as 9.
    pub fn level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Messages shorter than this many bytes are sent uncompressed (0: compress everything).
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// The value set by [`DeflateConfig::server_no_context_takeover`].
    pub fn get_server_no_context_takeover(&self) -> bool {
        self.server_no_context_takeover
    }

    /// The value set by [`DeflateConfig::client_no_context_takeover`].
    pub fn get_client_no_context_takeover(&self) -> bool {
        self.client_no_context_takeover
    }

    /// The value set by [`DeflateConfig::server_max_window_bits`].
    pub fn get_server_max_window_bits(&self) -> u8 {
        self.server_max_window_bits
    }

    /// The value set by [`DeflateConfig::client_max_window_bits`].
    pub fn get_client_max_window_bits(&self) -> u8 {
        self.client_max_window_bits
    }

    /// The value set by [`DeflateConfig::level`].
    pub fn get_level(&self) -> u32 {
        self.level
    }

    /// The value set by [`DeflateConfig::threshold`].
    pub fn get_threshold(&self) -> usize {
        self.threshold
    }
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(
        DeflateConfig::MIN_WINDOW_BITS,
        DeflateConfig::MAX_WINDOW_BITS,
    )
}

/// The window bits zlib works with: RFC 7692 allows 8, zlib needs at least 9 (a 9-bit
/// compressor never reaches back more than 250 bytes, and a 9-bit inflater reads anything an
/// 8-bit compressor writes).
fn zlib_bits(bits: u8) -> u8 {
    clamp_bits(bits).max(9)
}

/// The permessage-deflate extension of one connection: a compressor for the messages it
/// sends, an inflater for the messages it receives, each made when first needed, or borrowed
/// from a per-thread pool for one message at a time where context takeover is off (see
/// [`DeflateConfig`], "Memory per connection").
///
/// Built from the parameters the handshake agreed (as a [`DeflateConfig`]) and given to the
/// connection with [`Negotiated::extension`](crate::Negotiated::extension); `wsflow` does both.
/// It owns RSV1: a message whose first frame has RSV1 set is inflated frame by frame, every
/// message sent (unless shorter than the threshold or sent with `send_uncompressed`) is
/// compressed and marked so. Control frames never reach it. With
/// [`Config::assemble_fragments`](crate::Config::assemble_fragments) off, frames are delivered
/// as they arrived: compressed, with RSV1 set on the first frame of a compressed message.
///
/// ```
/// use std::time::Instant;
/// use bytes::BytesMut;
/// use wsflow_core::{
///     Config, Connection, DeflateConfig, Event, Message, Negotiated, PerMessageDeflate, Role,
/// };
///
/// let agreed = DeflateConfig::new().threshold(0);
/// let connection = |role, config| {
///     let deflate = PerMessageDeflate::new(role, &agreed);
///     let negotiated = Negotiated::new()
///         .extension(Box::new(deflate))
///         .extensions(vec!["permessage-deflate".to_owned()]);
///     Connection::new(role, config, negotiated, BytesMut::new(), Instant::now())
/// };
/// let mut client = connection(Role::Client, Config::client());
/// let mut server = connection(Role::Server, Config::server());
///
/// client.send_text("hello hello hello hello").unwrap();
/// let wire: Vec<u8> = client.poll_transmit().unwrap().flatten().copied().collect();
/// client.advance_transmit(wire.len());
/// assert_eq!(wire[0], 0x80 | 0x40 | 0x1); // FIN, RSV1, text
/// assert!(wire.len() < 6 + 23);
///
/// server.handle_bytes(&wire, Instant::now());
/// match server.poll_event() {
///     Some(Event::Message(Message::Text(text))) => assert_eq!(text, "hello hello hello hello"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug)]
pub struct PerMessageDeflate {
    /// The compressor, created for the first message compressed. Without context takeover on
    /// our side it is borrowed from this thread's [`ZlibPool`] for each message instead.
    compressor: Option<Compress>,
    /// The inflater, created for the first compressed message received. Without context
    /// takeover on the peer's side it is borrowed from the pool for each message, from its
    /// first frame to its last.
    inflater: Option<Decompress>,
    level: u32,
    /// The window bits of the compressor and the inflater, as zlib takes them (9 to 15).
    own_bits: u8,
    peer_bits: u8,
    /// Our side does not use context takeover: every message starts afresh, so the compressor
    /// is shared between connections, through the pool.
    share_compressor: bool,
    /// The peer does not use context takeover: the inflater is shared likewise.
    share_inflater: bool,
    threshold: usize,
    /// The message being inflated ended its DEFLATE stream with a final block (BFINAL).
    stream_ended: bool,
    /// After that final block, the message had the one byte RFC 7692 section 7.2.3.4 puts
    /// there: the header of the empty stored block whose `00 00 ff ff` the sender removed.
    stored_header_after_final: bool,
    /// The message being inflated had compressed bytes so far.
    received_data: bool,
}

impl PerMessageDeflate {
    /// The extension for `role` with the agreed parameters `agreed`: a server compresses with
    /// the `server_*` ones and inflates with the `client_*` window, a client the other way
    /// round. Nothing is allocated until the first message is compressed or inflated.
    pub fn new(role: Role, agreed: &DeflateConfig) -> Self {
        let (own_bits, own_no_takeover, peer_bits, peer_no_takeover) = match role {
            Role::Server => (
                agreed.server_max_window_bits,
                agreed.server_no_context_takeover,
                agreed.client_max_window_bits,
                agreed.client_no_context_takeover,
            ),
            Role::Client => (
                agreed.client_max_window_bits,
                agreed.client_no_context_takeover,
                agreed.server_max_window_bits,
                agreed.server_no_context_takeover,
            ),
        };
        Self {
            compressor: None,
            inflater: None,
            level: agreed.level.min(9),
            own_bits: zlib_bits(own_bits),
            peer_bits: zlib_bits(peer_bits),
            share_compressor: own_no_takeover,
            share_inflater: peer_no_takeover,
            threshold: agreed.threshold,
            stream_ended: false,
            stored_header_after_final: false,
            received_data: false,
        }
    }

    /// Whether the extension holds zlib state (a compressor or an inflater) now. With context
    /// takeover it holds each from its first use until it is dropped. Without, it holds none
    /// between messages: a compressor is borrowed from a per-thread pool while one message is
    /// compressed, and an inflater from the first frame of a compressed message to its last.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use wsflow_core::{DeflateConfig, Extension, PerMessageDeflate, Role};
    ///
    /// let shared = DeflateConfig::new()
    ///     .threshold(0)
    ///     .server_no_context_takeover(true)
    ///     .client_no_context_takeover(true);
    /// let mut server = PerMessageDeflate::new(Role::Server, &shared);
    /// assert!(!server.holds_zlib_state());
    /// server.encode(Bytes::from("hello hello hello"), true).unwrap();
    /// assert!(!server.holds_zlib_state());
    ///
    /// let takeover = DeflateConfig::new().threshold(0);
    /// let mut dedicated = PerMessageDeflate::new(Role::Server, &takeover);
    /// assert!(!dedicated.holds_zlib_state());
    /// dedicated.encode(Bytes::from("hello hello hello"), true).unwrap();
    /// assert!(dedicated.holds_zlib_state());
    /// ```
    pub fn holds_zlib_state(&self) -> bool {
        self.compressor.is_some() || self.inflater.is_some()
    }

    /// The compressor for the next message: our own, or one from the pool, or a new one.
    fn take_compressor(&mut self) -> Compress {
        let (level, bits) = (self.level, self.own_bits);
        self.compressor
            .take()
            .or_else(|| {
                ZlibPool::take(
                    |pool| &mut pool.compressors,
                    |pooled| (pooled.level, pooled.bits) == (level, bits),
                )
                .map(|pooled| pooled.compress)
            })
            .unwrap_or_else(|| Compress::new_with_window_bits(Compression::new(level), false, bits))
    }

    /// The inflater for the current message, found as [`PerMessageDeflate::take_compressor`]
    /// finds the compressor, and kept until the message ends.
    fn inflater(&mut self) -> &mut Decompress {
        let bits = self.peer_bits;
        self.inflater.get_or_insert_with(|| {
            ZlibPool::take(|pool| &mut pool.inflaters, |pooled| pooled.bits == bits)
                .map(|pooled| pooled.inflater)
                .unwrap_or_else(|| Decompress::new_with_window_bits(false, bits))
        })
    }

    /// Compresses one whole message with a sync flush.
    fn compress(compressor: &mut Compress, payload: &[u8]) -> Result<Vec<u8>, String> {
        // Compressible data usually shrinks severalfold; the buffer doubles when it does not.
        let mut out = Vec::with_capacity(payload.len() / 4 + 64);
        let mut input = payload;
        loop {
            let before = compressor.total_in();
            compressor
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|err| format!("permessage-deflate: compression failed: {err}"))?;
            let consumed = usize::try_from(compressor.total_in() - before)
                .map_err(|_| "permessage-deflate: compressor went past its input".to_owned())?;
            input = input.get(consumed..).unwrap_or_default();
            // With input left or the output full, the flush may be unfinished.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if !out.ends_with(&TRAILER) {
            return Err("permessage-deflate: the sync flush did not end with 00 00 ff ff".into());
        }
        out.truncate(out.len() - TRAILER.len());
        Ok(out)
    }

    /// Checks what a message holds after its final block (BFINAL): nothing, or once the
    /// header byte of an empty stored block (BTYPE 00), which with the `00 00 ff ff` the
    /// receiver appends completes that block. RFC 7692 section 7.2.3.4 sends "Hello" this way
    /// as `f3 48 cd c9 c9 07 00 00`: a sender that flushes with a final block still appends
    /// the empty stored block and removes its last four bytes, as for any other flush.
    fn after_final_block(&mut self, rest: &[u8]) -> Result<(), ProtocolError> {
        match rest {
            [] => Ok(()),
            [header] if header & 0b110 == 0 && !self.stored_header_after_final => {
                self.stored_header_after_final = true;
                Ok(())
            }
            _ => Err(ProtocolError::InvalidCompressedData(
                "Data after the final permessage-deflate block.",
            )),
        }
    }

    /// Inflates `input` onto `out`, never letting `out` pass `max_len + 1` bytes. `trailer`:
    /// `input` is the `00 00 ff ff` appended to the message, which a final block makes
    /// superfluous.
    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max_len: usize,
        trailer: bool,
    ) -> Result<(), ProtocolError> {
        let too_large = |len: usize| ProtocolError::MessageTooLarge {
            len: len as u64,
            max: max_len as u64,
        };
        // One byte past the limit is enough to know the message is too large.
        let cap = max_len.saturating_add(1);
        loop {
            if out.len() == out.capacity() {
                let target = out
                    .capacity()
                    .saturating_mul(2)
                    .max(out.len() + input.len().saturating_mul(2).max(MIN_INFLATE_STEP))
                    .min(cap);
                if target <= out.len() {
                    return Err(too_large(out.len()));
                }
                out.reserve_exact(target - out.len());
            }
            let inflater = self.inflater();
            let (in_before, out_before) = (inflater.total_in(), out.len());
            let status = inflater
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|_| INVALID_DATA)?;
            if out.len() > max_len {
                return Err(too_large(out.len()));
            }
            let consumed = usize::try_from(inflater.total_in() - in_before).unwrap_or(0);
            input = input.get(consumed..).unwrap_or_default();
            if status == Status::StreamEnd {
                self.stream_ended = true;
                return if trailer {
                    Ok(())
                } else {
                    self.after_final_block(input)
                };
            }
            let room_left = out.len() < out.capacity();
            if input.is_empty() && room_left {
                return Ok(());
            }
            let progressed = consumed > 0 || out.len() > out_before;
            if !progressed && room_left {
                return Err(INVALID_DATA);
            }
        }
    }
}

impl Extension for PerMessageDeflate {
    fn rsv_bits(&self) -> u8 {
        RSV1
    }

    fn encode(&mut self, payload: Bytes, _is_text: bool) -> Result<(Bytes, u8), String> {
        // An empty message goes uncompressed: with context takeover, a sync flush with nothing
        // new to flush writes nothing at all, which could not be told from a missing trailer.
        if payload.len() < self.threshold || payload.is_empty() {
            return Ok((payload, 0));
        }
        let (level, bits) = (self.level, self.own_bits);
        if self.share_compressor
            && let Some(compressed) = ZlibPool::with(|pool| {
                let known = pool
                    .recent
                    .iter()
                    .find(|m| m.is_for(level, bits, &payload))?;
                Some(known.compressed.clone())
            })
        {
            // The same bytes were just compressed for another connection (a broadcast): every
            // connection without context takeover compresses them to the same result.
            return Ok((compressed, RSV1));
        }
        let mut compressor = self.take_compressor();
        let result = Self::compress(&mut compressor, &payload);
        if self.share_compressor || result.is_err() {
            // Without context takeover every message starts afresh; after a failure the
            // stream state is unknown, and starting afresh keeps later messages decodable
            // only if the peer resets too, so the error is reported to the caller.
            compressor.reset();
        }
        if !self.share_compressor {
            self.compressor = Some(compressor);
            return Ok((Bytes::from(result?), RSV1));
        }
        ZlibPool::give_back(
            |pool| &mut pool.compressors,
            || PooledCompressor {
                level,
                bits,
                compress: compressor,
            },
        );
        let compressed = Bytes::from(result?);
        if payload.len() <= MAX_REMEMBERED_MESSAGE {
            ZlibPool::with(|pool| {
                // A copy, in the buffer of the oldest one once there are enough: holding the
                // payload itself could keep a much larger buffer it is a slice of alive.
                let mut source = if pool.recent.len() == REMEMBERED_MESSAGES {
                    pool.recent.pop_front().map(|oldest| oldest.source)
                } else {
                    None
                }
                .unwrap_or_default();
                source.clear();
                source.extend_from_slice(&payload);
                pool.recent.push_back(CompressedMessage {
                    level,
                    bits,
                    source,
                    compressed: compressed.clone(),
                });
                Some(())
            });
        }
        Ok((compressed, RSV1))
    }

    fn decode(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), ProtocolError> {
        self.received_data |= !payload.is_empty();
        if self.stream_ended {
            self.after_final_block(payload)?;
        } else {
            self.inflate(payload, out, max_len, false)?;
        }
        if fin {
            // A message of no compressed bytes at all (a lazy sender's empty message) is empty:
            // the peer's stream is still at a block boundary, so no trailer is appended.
            if !self.stream_ended && std::mem::take(&mut self.received_data) {
                self.inflate(&TRAILER, out, max_len, true)?;
            }
            let stream_ended = std::mem::take(&mut self.stream_ended);
            self.stored_header_after_final = false;
            if self.share_inflater {
                // The peer compresses its next message afresh, so this inflater, reset, can
                // serve any connection's next message.
                if let Some(mut inflater) = self.inflater.take() {
                    inflater.reset(false);
                    let bits = self.peer_bits;
                    ZlibPool::give_back(
                        |pool| &mut pool.inflaters,
                        || PooledInflater { bits, inflater },
                    );
                }
            } else if stream_ended && let Some(inflater) = &mut self.inflater {
                // The peer ended its stream: its next message starts a new one.
                inflater.reset(false);
            }
        }
        Ok(())
    }
}

/// The most compressors, and the most inflaters, a thread keeps for reuse.
const POOLED_PER_KIND: usize = 4;
/// The largest message whose compressed form a thread remembers for the next connections.
const MAX_REMEMBERED_MESSAGE: usize = 64 << 10;
/// How many recently compressed messages a thread remembers: a connection applies the
/// messages queued for it in a batch, so broadcasts sent back to back reach each connection
/// one after the other.
const REMEMBERED_MESSAGES: usize = 4;

/// zlib state that connections without context takeover share: each message borrows a
/// compressor or inflater from the pool of the thread it runs on and gives it back, reset,
/// when the message is done. A thread running many such connections keeps a few hundred KiB
/// of zlib state in all instead of about 417 KiB per connection.
///
/// The pool also remembers the last four messages it compressed (copies, up to 64 KiB each)
/// and their results: a message sent to many such connections with the same level and window,
/// as a broadcast is, is compressed once per thread, not once per connection.
#[derive(Default)]
struct ZlibPool {
    compressors: Vec<PooledCompressor>,
    inflaters: Vec<PooledInflater>,
    /// Oldest first.
    recent: VecDeque<CompressedMessage>,
}

/// A message compressed without context takeover, and what it compressed to.
struct CompressedMessage {
    level: u32,
    bits: u8,
    /// A copy of the message's payload.
    source: Vec<u8>,
    compressed: Bytes,
}

impl CompressedMessage {
    /// Whether `payload`, compressed from an empty window with `level` and `bits`, gives
    /// these compressed bytes: it does exactly when it is the same bytes (DEFLATE is
    /// deterministic), which a broadcast's clones of one message are.
    fn is_for(&self, level: u32, bits: u8, payload: &[u8]) -> bool {
        (self.level, self.bits) == (level, bits) && self.source == payload
    }
}

struct PooledCompressor {
    level: u32,
    bits: u8,
    compress: Compress,
}

struct PooledInflater {
    bits: u8,
    inflater: Decompress,
}

thread_local! {
    static ZLIB_POOL: RefCell<ZlibPool> = RefCell::default();
}

impl ZlibPool {
    /// Runs `f` on this thread's pool; `None` while the thread is being torn down.
    fn with<T>(f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        ZLIB_POOL
            .try_with(|pool| pool.try_borrow_mut().ok().and_then(|mut pool| f(&mut pool)))
            .ok()
            .flatten()
    }

    /// Takes a pooled state of the kind `kind` selects that is `wanted`, if there is one.
    fn take<T>(
        kind: impl FnOnce(&mut Self) -> &mut Vec<T>,
        wanted: impl Fn(&T) -> bool,
    ) -> Option<T> {
        Self::with(|pool| {
            let kept = kind(pool);
            let at = kept.iter().position(wanted)?;
            Some(kept.swap_remove(at))
        })
    }

    /// Keeps the state `make` builds, if the pool has room for one more of its kind;
    /// otherwise it is dropped.
    fn give_back<T>(kind: impl FnOnce(&mut Self) -> &mut Vec<T>, make: impl FnOnce() -> T) {
        Self::with(|pool| {
            let kept = kind(pool);
            (kept.len() < POOLED_PER_KIND).then(|| kept.push(make()))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(config: &DeflateConfig) -> (PerMessageDeflate, PerMessageDeflate) {
        (
            PerMessageDeflate::new(Role::Client, config),
            PerMessageDeflate::new(Role::Server, config),
        )
    }

    fn roundtrip(
        sender: &mut PerMessageDeflate,
        receiver: &mut PerMessageDeflate,
        message: &[u8],
    ) -> Bytes {
        let (wire, rsv) = sender
            .encode(Bytes::copy_from_slice(message), false)
            .unwrap();
        assert_eq!(rsv, RSV1);
        let mut out = Vec::new();
        receiver.decode(&wire, true, &mut out, usize::MAX).unwrap();
        assert_eq!(out, message);
        wire
    }

    /// Text-like data that compresses, but not to nothing: words picked pseudo-randomly.
    fn text(len: usize) -> Vec<u8> {
        const WORDS: [&str; 8] = [
            "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog. ",
        ];
        let mut state = 0x2545_f491_u32;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            out.extend_from_slice(WORDS[(state % 8) as usize].as_bytes());
        }
        out.truncate(len);
        out
    }

    #[test]
    fn rfc_7692_example_hello() {
        // Section 7.2.3.1: "Hello" compressed without context takeover.
        let (mut client, mut server) = pair(&DeflateConfig::new().threshold(0));
        let mut out = Vec::new();
        server
            .decode(
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                true,
                &mut out,
                100,
            )
            .unwrap();
        assert_eq!(out, b"Hello");
        // Section 7.2.3.2: the same message again, referring back to the first.
        let mut again = Vec::new();
        server
            .decode(&[0xf2, 0x00, 0x11, 0x00, 0x00], true, &mut again, 100)
            .unwrap();
        assert_eq!(again, b"Hello");
        roundtrip(&mut client, &mut server, b"Hello");
    }

    #[test]
    fn rfc_7692_fragments_and_stored_blocks() {
        let (_, mut server) = pair(&DeflateConfig::new());
        // Section 7.2.3.1, the compressed "Hello" split over two frames.
        let mut out = Vec::new();
        server
            .decode(&[0xf2, 0x48, 0xcd], false, &mut out, 100)
            .unwrap();
        server
            .decode(&[0xc9, 0xc9, 0x07, 0x00], true, &mut out, 100)
            .unwrap();
        assert_eq!(out, b"Hello");
        // Section 7.2.3.3: a stored (uncompressed) block.
        let mut stored = Vec::new();
        server
            .decode(
                &[
                    0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
                ],
                true,
                &mut stored,
                100,
            )
            .unwrap();
        assert_eq!(stored, b"Hello");
        // Section 7.2.3.4: a final block (BFINAL set), then the header byte of the empty
        // stored block the sender appended (its `00 00 ff ff` removed): in one frame, in two
        // (the byte alone in the last), or without the byte; then a message after each, from
        // a sender that started its stream afresh.
        let hello = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        for frames in [
            vec![&hello[..]],
            vec![&hello[..7], &hello[7..]],
            vec![&hello[..7]],
        ] {
            let mut last = Vec::new();
            let count = frames.len();
            for (at, frame) in frames.into_iter().enumerate() {
                server
                    .decode(frame, at + 1 == count, &mut last, 100)
                    .unwrap();
            }
            assert_eq!(last, b"Hello");
            let (mut client, _) = pair(&DeflateConfig::new().threshold(0));
            roundtrip(&mut client, &mut server, b"still in sync");
        }
        // Anything more after the final block is refused: a second header byte, a byte that
        // is not a stored block's header, or a whole block.
        for after in [&[0x00, 0x00][..], &[0x02], &[0x00, 0x00, 0x00, 0xff, 0xff]] {
            let mut payload = hello[..7].to_vec();
            payload.extend_from_slice(after);
            let mut out = Vec::new();
            assert!(
                matches!(
                    server.decode(&payload, true, &mut out, 100),
                    Err(ProtocolError::InvalidCompressedData(_))
                ),
                "{after:x?}"
            );
            let (_, fresh) = pair(&DeflateConfig::new().threshold(0));
            server = fresh;
        }
    }

    #[test]
    fn empty_messages() {
        let (mut client, mut server) = pair(&DeflateConfig::new().threshold(0));
        // Sent uncompressed.
        assert_eq!(
            client.encode(Bytes::new(), true).unwrap(),
            (Bytes::new(), 0)
        );
        roundtrip(&mut client, &mut server, b"between");
        // Received as RFC 7692 section 7.2.3.6 writes them (one 0x00 byte), or as a sync
        // flush with nothing to flush does (no byte at all), the stream stays in sync.
        let mut out = Vec::new();
        server.decode(&[0x00], true, &mut out, 100).unwrap();
        assert_eq!(out, b"");
        server.decode(&[], true, &mut out, 100).unwrap();
        assert_eq!(out, b"");
        roundtrip(&mut client, &mut server, b"between");
    }

    #[test]
    fn context_takeover_shrinks_repeated_messages() {
        let message = text(2000);
        let (mut client, mut server) = pair(&DeflateConfig::new());
        let first = roundtrip(&mut client, &mut server, &message).len();
        let second = roundtrip(&mut client, &mut server, &message).len();
        assert!(second * 4 < first, "{second} vs {first}");

        let no_takeover = DeflateConfig::new().client_no_context_takeover(true);
        let (mut client, mut server) = pair(&no_takeover);
        let first = roundtrip(&mut client, &mut server, &message).len();
        let second = roundtrip(&mut client, &mut server, &message).len();
        assert_eq!(first, second);
        // The server still uses context takeover when only the client gave it up.
        let first = roundtrip(&mut server, &mut client, &message).len();
        let second = roundtrip(&mut server, &mut client, &message).len();
        assert!(second * 4 < first, "{second} vs {first}");
    }

    #[test]
    fn without_context_takeover_each_message_inflates_alone() {
        let config = DeflateConfig::new().server_no_context_takeover(true);
        let (_, mut server) = pair(&config);
        let message = text(3000);
        let first = server
            .encode(Bytes::from(message.clone()), false)
            .unwrap()
            .0;
        let second = server
            .encode(Bytes::from(message.clone()), false)
            .unwrap()
            .0;
        assert_eq!(first, second);
        // A fresh inflater reads the second message on its own.
        let (mut fresh, _) = pair(&config);
        let mut out = Vec::new();
        fresh.decode(&second, true, &mut out, usize::MAX).unwrap();
        assert_eq!(out, message);
    }

    #[test]
    fn a_message_sent_to_many_connections_is_compressed_once() {
        let shared = DeflateConfig::new()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true);
        let broadcast = Bytes::from(text(3000));
        let mut servers: Vec<PerMessageDeflate> = (0..10)
            .map(|_| PerMessageDeflate::new(Role::Server, &shared))
            .collect();
        let sent: Vec<Bytes> = servers
            .iter_mut()
            .map(|server| server.encode(broadcast.clone(), true).unwrap().0)
            .collect();
        // Every connection got the first compression's very bytes.
        assert!(sent.iter().all(|wire| wire.as_ptr() == sent[0].as_ptr()));
        let (mut client, _) = pair(&shared);
        let mut out = Vec::new();
        client.decode(&sent[9], true, &mut out, usize::MAX).unwrap();
        assert_eq!(out, broadcast);

        // Equal bytes in another buffer compress to the same result, so they are not
        // compressed again either.
        let copy = Bytes::from(broadcast.to_vec());
        assert_eq!(
            servers[0].encode(copy, true).unwrap().0.as_ptr(),
            sent[0].as_ptr()
        );

        // Another level compresses differently: the same bytes are compressed anew.
        let other_level = shared.clone().level(1);
        let mut fast = PerMessageDeflate::new(Role::Server, &other_level);
        let fast_wire = fast.encode(broadcast.clone(), true).unwrap().0;
        assert_ne!(fast_wire.as_ptr(), sent[0].as_ptr());
        let mut out = Vec::new();
        client
            .decode(&fast_wire, true, &mut out, usize::MAX)
            .unwrap();
        assert_eq!(out, broadcast);

        // Broadcasts sent back to back reach each connection one after the other: each is
        // still compressed once.
        // (Every result is kept, so that no address is reused.)
        let second = Bytes::from(text(2000));
        let (firsts, seconds): (Vec<Bytes>, Vec<Bytes>) = servers
            .iter_mut()
            .map(|server| {
                let one = server.encode(broadcast.clone(), true).unwrap().0;
                (one, server.encode(second.clone(), true).unwrap().0)
            })
            .unzip();
        assert!(
            firsts
                .iter()
                .all(|wire| wire.as_ptr() == firsts[0].as_ptr())
        );
        assert!(
            seconds
                .iter()
                .all(|wire| wire.as_ptr() == seconds[0].as_ptr())
        );

        // Other bytes of the same length are compressed anew.
        let mut changed = broadcast.to_vec();
        changed[1500] ^= 1;
        let other = servers[0]
            .encode(Bytes::from(changed.clone()), true)
            .unwrap()
            .0;
        assert_ne!(other.as_ptr(), sent[0].as_ptr());
        let mut out = Vec::new();
        client.decode(&other, true, &mut out, usize::MAX).unwrap();
        assert_eq!(out, changed);

        // With context takeover each connection compresses against its own history.
        let mut dedicated = PerMessageDeflate::new(Role::Server, &DeflateConfig::new());
        let own = dedicated.encode(broadcast.clone(), true).unwrap().0;
        let own_again = dedicated.encode(broadcast.clone(), true).unwrap().0;
        assert_ne!(own.as_ptr(), own_again.as_ptr());
        assert!(own_again.len() < own.len());
    }

    #[test]
    fn every_window_size_round_trips_and_8_works_as_9() {
        // Data whose repeats lie 200 and 1000 bytes back.
        let mut message = Vec::new();
        for i in 0..40u32 {
            message.extend(text(200 + (i as usize % 7)));
            message.extend((0..800u32).map(|j| (j * 7 + i) as u8));
        }
        for bits in 8..=15 {
            let config = DeflateConfig::new()
                .server_max_window_bits(bits)
                .client_max_window_bits(bits);
            let (mut client, mut server) = pair(&config);
            for _ in 0..3 {
                roundtrip(&mut client, &mut server, &message);
                roundtrip(&mut server, &mut client, &message);
            }
        }
        // What a 9-bit compressor writes, the smallest inflater reads: no match reaches back
        // past 256 bytes.
        let (mut small, _) = pair(&DeflateConfig::new().client_max_window_bits(8));
        let wire = small.encode(Bytes::from(message.clone()), false).unwrap().0;
        let distance = max_distance(&wire).unwrap();
        assert!(distance > 0 && distance <= 256, "{distance}");
        // The check would see longer ones: a 15-bit compressor reaches 1000 bytes back.
        let (mut large, _) = pair(&DeflateConfig::new());
        let wire = large.encode(Bytes::from(message), false).unwrap().0;
        assert!(max_distance(&wire).unwrap() > 256);
    }

    #[test]
    fn messages_under_the_threshold_stay_uncompressed() {
        let (mut client, _) = pair(&DeflateConfig::new().threshold(10));
        let short = Bytes::from_static(b"123456789");
        assert_eq!(
            client.encode(short.clone(), true).unwrap(),
            (short, 0),
            "under the threshold"
        );
        let (_, rsv) = client
            .encode(Bytes::from_static(b"1234567890"), true)
            .unwrap();
        assert_eq!(rsv, RSV1);
    }

    #[test]
    fn corrupt_data_fails_with_1007() {
        let (_, mut server) = pair(&DeflateConfig::new());
        let mut out = Vec::new();
        // BTYPE 11 is reserved.
        let err = server.decode(&[0xff, 0xff, 0xff], true, &mut out, 100);
        assert_eq!(
            err,
            Err(ProtocolError::InvalidCompressedData(
                "Invalid permessage-deflate data."
            ))
        );
        assert_eq!(
            err.unwrap_err().close_code(),
            wsflow_codec::CloseCode::INVALID_DATA
        );
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        // 16 MiB of zeros compress to about 16 KiB; the limit is 64 KiB.
        let (mut client, mut server) = pair(&DeflateConfig::new());
        let bomb = client
            .encode(Bytes::from(vec![0u8; 16 << 20]), false)
            .unwrap()
            .0;
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        let limit = 64 * 1024;
        let mut out = Vec::new();
        // Fed in small frames, as a peer would, and all at once.
        let mut result = Ok(());
        for chunk in bomb.chunks(1000) {
            result = server.decode(chunk, false, &mut out, limit);
            assert!(out.capacity() <= limit + 1, "{}", out.capacity());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(
            result,
            Err(ProtocolError::MessageTooLarge {
                len: limit as u64 + 1,
                max: limit as u64
            })
        );
        let (_, mut server) = pair(&DeflateConfig::new());
        let mut out = Vec::new();
        assert!(matches!(
            server.decode(&bomb, true, &mut out, limit),
            Err(ProtocolError::MessageTooLarge { .. })
        ));
        assert!(out.capacity() <= limit + 1, "{}", out.capacity());
    }

    #[test]
    fn a_message_exactly_at_the_limit_passes() {
        let (mut client, mut server) = pair(&DeflateConfig::new().threshold(0));
        let wire = client
            .encode(Bytes::from(vec![7u8; 5000]), false)
            .unwrap()
            .0;
        let mut out = Vec::new();
        server.decode(&wire, true, &mut out, 5000).unwrap();
        assert_eq!(out.len(), 5000);
    }

    /// The largest match distance in a raw DEFLATE stream of fixed or dynamic Huffman blocks.
    fn max_distance(data: &[u8]) -> Option<usize> {
        let mut bits = BitReader { data, pos: 0 };
        let mut max = 0;
        loop {
            let last = bits.take(1)? == 1;
            match bits.take(2)? {
                0 => {
                    bits.pos = bits.pos.div_ceil(8) * 8;
                    // The stored block of the sync flush lost its length with the trailer.
                    let Some(len) = bits.take(16) else {
                        return Some(max);
                    };
                    bits.take(16)?;
                    bits.pos += len as usize * 8;
                }
                1 => {
                    let lit = fixed_lengths();
                    let dist = [5u8; 30];
                    max = max.max(decode_block(&mut bits, &lit, &dist)?);
                }
                2 => {
                    let (lit, dist) = dynamic_lengths(&mut bits)?;
                    max = max.max(decode_block(&mut bits, &lit, &dist)?);
                }
                _ => return None,
            }
            if last || bits.pos >= data.len() * 8 {
                return Some(max);
            }
        }
    }

    struct BitReader<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl BitReader<'_> {
        fn take(&mut self, n: usize) -> Option<u32> {
            let mut value = 0;
            for i in 0..n {
                let byte = *self.data.get(self.pos / 8)?;
                value |= u32::from((byte >> (self.pos % 8)) & 1) << i;
                self.pos += 1;
            }
            Some(value)
        }
    }

    /// A canonical Huffman code (as zlib's `puff` decodes it): code counts per length and the
    /// symbols in code order.
    struct Huffman {
        counts: [usize; 16],
        symbols: Vec<usize>,
    }

    impl Huffman {
        fn new(lengths: &[u8]) -> Self {
            let mut counts = [0; 16];
            for &len in lengths {
                counts[usize::from(len)] += 1;
            }
            counts[0] = 0;
            let mut symbols: Vec<usize> = (0..lengths.len()).filter(|&s| lengths[s] > 0).collect();
            symbols.sort_by_key(|&s| lengths[s]);
            Self { counts, symbols }
        }

        fn decode(&self, bits: &mut BitReader<'_>) -> Option<usize> {
            let (mut code, mut first, mut index) = (0usize, 0usize, 0usize);
            for len in 1..16 {
                code |= bits.take(1)? as usize;
                let count = self.counts[len];
                if code < first + count {
                    return self.symbols.get(index + code - first).copied();
                }
                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }
            None
        }
    }

    fn fixed_lengths() -> Vec<u8> {
        (0..288)
            .map(|s| match s {
                0..=143 => 8,
                144..=255 => 9,
                256..=279 => 7,
                _ => 8,
            })
            .collect()
    }

    fn dynamic_lengths(bits: &mut BitReader<'_>) -> Option<(Vec<u8>, Vec<u8>)> {
        let hlit = bits.take(5)? as usize + 257;
        let hdist = bits.take(5)? as usize + 1;
        let hclen = bits.take(4)? as usize + 4;
        const ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];
        let mut cl = [0u8; 19];
        for &i in ORDER.iter().take(hclen) {
            cl[i] = bits.take(3)? as u8;
        }
        let cl = Huffman::new(&cl);
        let mut lengths = Vec::new();
        while lengths.len() < hlit + hdist {
            match cl.decode(bits)? {
                s @ 0..=15 => lengths.push(s as u8),
                16 => {
                    let prev = *lengths.last()?;
                    for _ in 0..3 + bits.take(2)? {
                        lengths.push(prev);
                    }
                }
                17 => lengths.extend(std::iter::repeat_n(0, 3 + bits.take(3)? as usize)),
                _ => lengths.extend(std::iter::repeat_n(0, 11 + bits.take(7)? as usize)),
            }
        }
        let dist = lengths.split_off(hlit);
        Some((lengths, dist))
    }

    fn decode_block(bits: &mut BitReader<'_>, lit: &[u8], dist: &[u8]) -> Option<usize> {
        const LEN_EXTRA: [u32; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DIST_BASE: [usize; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        let (lit, dist) = (Huffman::new(lit), Huffman::new(dist));
        let mut max = 0;
        loop {
            let symbol = lit.decode(bits)?;
            match symbol {
                0..=255 => {}
                256 => return Some(max),
                _ => {
                    bits.take(LEN_EXTRA[symbol - 257] as usize)?;
                    let d = dist.decode(bits)?;
                    let extra = if d < 4 { 0 } else { (d / 2 - 1) as u32 };
                    let distance = DIST_BASE[d] + bits.take(extra as usize)? as usize;
                    max = max.max(distance);
                }
            }
        }
    }
}
