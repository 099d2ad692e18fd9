//! Core micro-benchmarks: messages per second through an in-memory client/server pair,
//! wsflow-core's sans-IO `Connection` beside tungstenite's `WebSocket` over in-memory streams,
//! in the same run. No sockets, no runtime: what is left is framing, masking, parsing, UTF-8
//! validation and the connections' own bookkeeping.
//!
//! - `core_echo`: one round trip per iteration (the client sends a message, the server receives
//!   it and sends it back, the client receives the echo), for 20 B, 1 KiB and 64 KiB, binary and
//!   text (mostly multi-byte UTF-8).
//! - `core_one_way_16`: sixteen messages per iteration from the client to the server in one
//!   transfer, as when messages are pipelined: the server parses them all from one read.
//! - `core_read_in_pieces`: one 256 KiB message from the client to the server, read by the
//!   server in pieces of 16 KiB or 64 KiB, as a socket delivers a message longer than one read:
//!   the server buffers the frame in progress, unmasks each piece and validates text as it
//!   arrives (events are taken after each piece, as a driver takes them after each read).
//! - `core_compressed_fan_out`: one 2 KiB JSON message sent by a server to 100 connections
//!   with permessage-deflate, as a broadcast does (wsflow only: the peer has no compression).
//!   Without context takeover the connections share the thread's compressor, and the same
//!   message is compressed once for all of them (`same_message`); `different_messages` gives
//!   each connection a message of its own (one byte differs), which is compressed each time;
//!   `context_takeover` gives each connection its own compressor, which compresses the message
//!   against that connection's history.
//!
//! Both sides move bytes the same way: the sender's output is copied into a `Vec` (a socket
//! write), then into the receiver (a socket read). Both use the configuration of the echo
//! server of `cargo xtask bench`: 64 MiB limits, messages sent unfragmented; everything else
//! is each library's default. (tungstenite's default read path zero-fills its read buffer
//! before reading, which dominates its small-message figures here; over a socket it does the
//! same.)
//!
//! Run with `cargo bench --bench core`; `-- --quick` for a fast pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wsflow_core::{
    Config, Connection, DeflateConfig, Event, Message, Negotiated, PerMessageDeflate, Role,
    Utf8Bytes,
};

const LIMIT: usize = 64 << 20;
const SIZES: [usize; 3] = [20, 1024, 64 * 1024];
const BATCH: usize = 16;
const MIXED: &str = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 日本語のテキスト ";

/// A payload of exactly `size` bytes: pseudo-random bytes, or mostly multi-byte UTF-8.
fn payload(size: usize, text: bool) -> Bytes {
    if text {
        let mut s = String::with_capacity(size);
        'fill: loop {
            for ch in MIXED.chars() {
                if s.len() + ch.len_utf8() > size {
                    break 'fill;
                }
                s.push(ch);
            }
        }
        while s.len() < size {
            s.push('.');
        }
        Bytes::from(s)
    } else {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        Bytes::from(
            (0..size)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect::<Vec<u8>>(),
        )
    }
}

// ----- wsflow-core ------------------------------------------------------------------------

struct WsflowPair {
    client: Connection,
    server: Connection,
    now: Instant,
    wire: Vec<u8>,
}

impl WsflowPair {
    fn new() -> Self {
        let config = |config: Config| {
            config
                .max_received_frame_size(LIMIT)
                .max_received_message_size(LIMIT)
                .fragment_outgoing_messages(false)
                .keepalive(false)
        };
        let now = Instant::now();
        let connection =
            |role, cfg| Connection::new(role, cfg, Negotiated::new(), BytesMut::new(), now);
        WsflowPair {
            client: connection(Role::Client, config(Config::client())),
            server: connection(Role::Server, config(Config::server())),
            now,
            wire: Vec::with_capacity(128 * 1024),
        }
    }

    /// Everything `from` queued, written to the wire and read by `to`.
    fn transfer(from: &mut Connection, to: &mut Connection, wire: &mut Vec<u8>, now: Instant) {
        wire.clear();
        if let Some(chunks) = from.poll_transmit() {
            for chunk in chunks {
                wire.extend_from_slice(chunk);
            }
        }
        from.advance_transmit(wire.len());
        to.handle_bytes(wire, now);
    }

    fn move_to_server(&mut self) {
        Self::transfer(&mut self.client, &mut self.server, &mut self.wire, self.now);
    }

    fn move_to_client(&mut self) {
        Self::transfer(&mut self.server, &mut self.client, &mut self.wire, self.now);
    }

    fn echo(&mut self, message: Message) -> Message {
        self.client.send(message).unwrap();
        self.move_to_server();
        let Some(Event::Message(received)) = self.server.poll_event() else {
            panic!("the server received no message");
        };
        self.server.send(received).unwrap();
        self.move_to_client();
        let Some(Event::Message(echo)) = self.client.poll_event() else {
            panic!("the client received no echo");
        };
        echo
    }
}

fn wsflow_message(payload: &Bytes, text: bool) -> Message {
    if text {
        Message::Text(Utf8Bytes::try_from(payload.clone()).unwrap())
    } else {
        Message::Binary(payload.clone())
    }
}

// ----- tungstenite ------------------------------------------------------------------------

/// One end of an in-memory connection: reads what was moved into `input`, writes to `output`.
#[derive(Default)]
struct Pipe {
    input: Vec<u8>,
    read: usize,
    output: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = &self.input[self.read..];
        if left.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.read += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type TungsteniteSocket = tungstenite::protocol::WebSocket<Pipe>;

struct TungstenitePair {
    client: TungsteniteSocket,
    server: TungsteniteSocket,
}

impl TungstenitePair {
    fn new() -> Self {
        use tungstenite::protocol::{Role, WebSocketConfig};
        let config = WebSocketConfig::default()
            .max_message_size(Some(LIMIT))
            .max_frame_size(Some(LIMIT));
        let socket = |role| TungsteniteSocket::from_raw_socket(Pipe::default(), role, Some(config));
        TungstenitePair {
            client: socket(Role::Client),
            server: socket(Role::Server),
        }
    }

    /// Everything `from` wrote, moved to `to`'s input (the buffers swap, keeping capacity).
    fn transfer(from: &mut TungsteniteSocket, to: &mut TungsteniteSocket) {
        let from = from.get_mut();
        let to = to.get_mut();
        debug_assert_eq!(to.read, to.input.len(), "unread input");
        to.input.clear();
        to.read = 0;
        std::mem::swap(&mut from.output, &mut to.input);
    }

    fn echo(&mut self, message: tungstenite::Message) -> tungstenite::Message {
        self.client.send(message).unwrap();
        Self::transfer(&mut self.client, &mut self.server);
        let received = self.server.read().unwrap();
        self.server.send(received).unwrap();
        Self::transfer(&mut self.server, &mut self.client);
        self.client.read().unwrap()
    }
}

fn tungstenite_message(payload: &Bytes, text: bool) -> tungstenite::Message {
    if text {
        let text = tungstenite::protocol::frame::Utf8Bytes::try_from(payload.clone()).unwrap();
        tungstenite::Message::Text(text)
    } else {
        tungstenite::Message::Binary(payload.clone())
    }
}

// ----- benchmarks -------------------------------------------------------------------------

fn echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_echo");
    group.throughput(Throughput::Elements(1));
    for text in [false, true] {
        let kind = if text { "text" } else { "binary" };
        for size in SIZES {
            let payload = payload(size, text);
            let mut pair = WsflowPair::new();
            group.bench_function(BenchmarkId::new(format!("wsflow_{kind}"), size), |b| {
                b.iter(|| black_box(pair.echo(wsflow_message(&payload, text))));
            });
            assert_eq!(
                pair.echo(wsflow_message(&payload, text)),
                wsflow_message(&payload, text)
            );
            let mut pair = TungstenitePair::new();
            group.bench_function(BenchmarkId::new(format!("tungstenite_{kind}"), size), |b| {
                b.iter(|| black_box(pair.echo(tungstenite_message(&payload, text))));
            });
            assert_eq!(
                pair.echo(tungstenite_message(&payload, text)),
                tungstenite_message(&payload, text)
            );
        }
    }
    group.finish();
}

fn one_way_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_one_way_16");
    group.throughput(Throughput::Elements(BATCH as u64));
    for size in [20, 1024] {
        let payload = payload(size, false);
        let mut pair = WsflowPair::new();
        group.bench_function(BenchmarkId::new("wsflow_binary", size), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    pair.client.send_binary(payload.clone()).unwrap();
                }
                pair.move_to_server();
                for _ in 0..BATCH {
                    let Some(Event::Message(message)) = pair.server.poll_event() else {
                        panic!("the server received no message");
                    };
                    black_box(message);
                }
            });
        });
        let mut pair = TungstenitePair::new();
        group.bench_function(BenchmarkId::new("tungstenite_binary", size), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    pair.client
                        .write(tungstenite::Message::Binary(payload.clone()))
                        .unwrap();
                }
                pair.client.flush().unwrap();
                TungstenitePair::transfer(&mut pair.client, &mut pair.server);
                for _ in 0..BATCH {
                    black_box(pair.server.read().unwrap());
                }
            });
        });
    }
    group.finish();
}

fn read_in_pieces(c: &mut Criterion) {
    const SIZE: usize = 256 * 1024;
    let mut group = c.benchmark_group("core_read_in_pieces");
    group.throughput(Throughput::Bytes(SIZE as u64));
    for text in [false, true] {
        let kind = if text { "text" } else { "binary" };
        let payload = payload(SIZE, text);
        for piece in [16 * 1024, 64 * 1024] {
            let mut pair = WsflowPair::new();
            pair.client.send(wsflow_message(&payload, text)).unwrap();
            let mut wire = Vec::new();
            for chunk in pair.client.poll_transmit().unwrap() {
                wire.extend_from_slice(chunk);
            }
            let id = BenchmarkId::new(format!("wsflow_{kind}"), format!("{}k", piece / 1024));
            group.bench_function(id, |b| {
                b.iter(|| {
                    // As a driver does: the events after each read, before the next.
                    let mut received = 0;
                    for chunk in wire.chunks(piece) {
                        pair.server.handle_bytes(chunk, pair.now);
                        if let Some(Event::Message(message)) = pair.server.poll_event() {
                            black_box(message);
                            received += 1;
                        }
                    }
                    assert_eq!(received, 1);
                });
            });
            let mut pair = TungstenitePair::new();
            pair.client
                .send(tungstenite_message(&payload, text))
                .unwrap();
            let wire = std::mem::take(&mut pair.client.get_mut().output);
            let id = BenchmarkId::new(format!("tungstenite_{kind}"), format!("{}k", piece / 1024));
            group.bench_function(id, |b| {
                b.iter(|| {
                    for chunk in wire.chunks(piece) {
                        let input = pair.server.get_mut();
                        input.input.clear();
                        input.input.extend_from_slice(chunk);
                        input.read = 0;
                        match pair.server.read() {
                            Ok(message) => {
                                black_box(message);
                            }
                            Err(tungstenite::Error::Io(err))
                                if err.kind() == io::ErrorKind::WouldBlock => {}
                            Err(err) => panic!("{err}"),
                        }
                    }
                });
            });
        }
    }
    group.finish();
}

/// A server connection with permessage-deflate agreed as `agreed` says.
fn compressing_server(agreed: &DeflateConfig) -> Connection {
    let negotiated = Negotiated::new()
        .extension(Box::new(PerMessageDeflate::new(Role::Server, agreed)))
        .extensions(vec!["permessage-deflate".to_owned()]);
    Connection::new(
        Role::Server,
        Config::server(),
        negotiated,
        BytesMut::new(),
        Instant::now(),
    )
}

/// Sends `message(i)` on connection `i` of `connections`, then empties every send queue (the
/// bytes are counted, as a socket write would take them).
fn fan_out(connections: &mut [Connection], message: impl Fn(usize) -> Utf8Bytes) -> usize {
    let mut written = 0;
    for (i, connection) in connections.iter_mut().enumerate() {
        connection.send_text(message(i)).unwrap();
        let queued: usize = connection.poll_transmit().unwrap().map(<[u8]>::len).sum();
        connection.advance_transmit(queued);
        written += queued;
    }
    written
}

fn compressed_fan_out(c: &mut Criterion) {
    const CONNECTIONS: usize = 100;
    let mut group = c.benchmark_group("core_compressed_fan_out");
    group.throughput(Throughput::Elements(CONNECTIONS as u64));
    let json: String = (0..24)
        .map(|i| format!(r#"{{"user":"user{i}","text":"message number {i} to the room"}},"#))
        .collect();
    let message = Utf8Bytes::try_from(Bytes::from(json)).unwrap();
    let shared = DeflateConfig::new()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true);
    let personal: Vec<Utf8Bytes> = (0..CONNECTIONS)
        .map(|i| {
            let mut bytes = message.as_bytes().to_vec();
            bytes[10] = b'a' + (i % 26) as u8;
            bytes[11] = b'a' + (i / 26) as u8;
            Utf8Bytes::try_from(Bytes::from(bytes)).unwrap()
        })
        .collect();
    let variants: [(&str, DeflateConfig, bool); 3] = [
        ("same_message", shared.clone(), false),
        ("different_messages", shared, true),
        ("context_takeover", DeflateConfig::new(), false),
    ];
    for (name, agreed, distinct) in variants {
        let mut connections: Vec<Connection> = (0..CONNECTIONS)
            .map(|_| compressing_server(&agreed))
            .collect();
        let send = |i: usize| {
            if distinct {
                personal[i].clone()
            } else {
                message.clone()
            }
        };
        // Compressed, well under the message's size.
        assert!(fan_out(&mut connections, send) < CONNECTIONS * message.len() / 2);
        group.bench_function(BenchmarkId::new(name, message.len()), |b| {
            b.iter(|| black_box(fan_out(&mut connections, send)));
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    echo,
    one_way_batch,
    read_in_pieces,
    compressed_fan_out
);
criterion_main!(benches);
