//! A deterministic in-memory client/server pair with a manual clock: bytes move only when a
//! test says so, and time only advances when a test says so.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use wsflow_core::{CloseEvent, Config, Connection, Event, Frame, Message, Negotiated, Role};

pub struct Pair {
    pub client: Connection,
    pub server: Connection,
    pub now: Instant,
}

impl Pair {
    pub fn new() -> Self {
        Self::with_configs(Config::client(), Config::server())
    }

    pub fn with_configs(client: Config, server: Config) -> Self {
        let now = Instant::now();
        Self {
            client: Connection::new(
                Role::Client,
                client,
                Negotiated::new(),
                BytesMut::new(),
                now,
            ),
            server: Connection::new(
                Role::Server,
                server,
                Negotiated::new(),
                BytesMut::new(),
                now,
            ),
            now,
        }
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    /// Moves everything the client queued to the server.
    pub fn client_to_server(&mut self) -> usize {
        let wire = take_output(&mut self.client);
        self.server.handle_bytes(&wire, self.now);
        wire.len()
    }

    /// Moves everything the server queued to the client.
    pub fn server_to_client(&mut self) -> usize {
        let wire = take_output(&mut self.server);
        self.client.handle_bytes(&wire, self.now);
        wire.len()
    }

    /// Moves bytes both ways and collects events until nothing moves.
    pub fn run(&mut self) -> (Vec<Event>, Vec<Event>) {
        let mut client_events = Vec::new();
        let mut server_events = Vec::new();
        loop {
            client_events.extend(drain_events(&mut self.client));
            server_events.extend(drain_events(&mut self.server));
            let moved = self.client_to_server() + self.server_to_client();
            if self.server.poll_shutdown() {
                self.client.handle_eof(self.now);
            }
            if self.client.is_closed() && !self.server.is_closed() {
                self.server.handle_eof(self.now);
            }
            if moved == 0
                && self.client.poll_transmit().is_none()
                && self.server.poll_transmit().is_none()
            {
                client_events.extend(drain_events(&mut self.client));
                server_events.extend(drain_events(&mut self.server));
                if self.client.poll_transmit().is_none() && self.server.poll_transmit().is_none() {
                    return (client_events, server_events);
                }
            }
        }
    }
}

/// Everything a connection has queued for the wire, marked as written.
pub fn take_output(conn: &mut Connection) -> Vec<u8> {
    let wire: Vec<u8> = match conn.poll_transmit() {
        Some(chunks) => chunks.flatten().copied().collect(),
        None => Vec::new(),
    };
    conn.advance_transmit(wire.len());
    wire
}

/// Every frame a server connection writes until it has nothing left to send (frames held
/// above the high-water mark included, which go once what is before them is written), as
/// the client decodes them.
pub fn frames_until_drained(server: &mut Connection) -> Vec<Frame> {
    let mut sent = Vec::new();
    while server.has_transmit() {
        sent.extend(frames(&take_output(server), Role::Client));
    }
    sent
}

pub fn drain_events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

pub fn messages(events: &[Event]) -> Vec<Message> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Message(message) => Some(message.clone()),
            _ => None,
        })
        .collect()
}

pub fn closed(events: &[Event]) -> Option<CloseEvent> {
    events.iter().find_map(|event| match event {
        Event::Closed(close) => Some(close.clone()),
        _ => None,
    })
}

/// Decodes the frames a connection wrote, as the peer's decoder would see them.
pub fn frames(wire: &[u8], receiver: Role) -> Vec<Frame> {
    let config = wsflow_codec::DecoderConfig::new(receiver)
        .max_frame_size(usize::MAX >> 1)
        .allowed_rsv_bits(0b111);
    let mut decoder = wsflow_codec::FrameDecoder::with_config(config);
    let mut buf = BytesMut::from(wire);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).unwrap() {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "trailing bytes");
    frames
}

/// A client-side frame as raw wire bytes (masked), for feeding hostile input to a server.
pub fn client_frame(frame: Frame) -> Vec<u8> {
    let mut wire = BytesMut::new();
    frame
        .with_mask(Some([0x11, 0x22, 0x33, 0x44]))
        .encode(&mut wire);
    wire.to_vec()
}
