//! Hostile peers, overload and faults, on both runtimes: floods of fragments and huge frame
//! declarations are refused with the right close code; a peer that never reads cannot make
//! the server buffer without bound; resets in the middle of a message, write errors and
//! cancelled futures lose nothing accepted and leak no connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use futures_util::StreamExt;
use support::*;
use wsflow::codec::{Frame, OpCode};
use wsflow::{CloseCode, Config, Error, Event, Message, Runtime, Server, ServerConfig, WebSocket};

/// A raw client that completed the handshake.
fn raw_upgraded(addr: SocketAddr) -> TcpStream {
    let mut raw = raw_client(addr);
    raw.write_all(UPGRADE.as_bytes()).unwrap();
    let head = read_head(&mut raw);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    raw
}

/// A raw client that completes the handshake and then never reads, on a blocking thread,
/// until it is told to go (or 60 s pass): the sender that tells it, and the task to await to
/// know it has gone.
fn silent_peer(addr: SocketAddr) -> (std::sync::mpsc::Sender<()>, blocking::Task<()>) {
    let (may_go, go) = std::sync::mpsc::channel::<()>();
    let peer = blocking::unblock(move || {
        let raw = raw_upgraded(addr);
        let _ = go.recv_timeout(Duration::from_secs(60));
        drop(raw);
    });
    (may_go, peer)
}

fn masked(frame: Frame) -> Vec<u8> {
    let mut wire = bytes::BytesMut::new();
    frame.with_mask(Some([1, 2, 3, 4])).encode(&mut wire);
    wire.to_vec()
}

/// Reads frames from a raw socket until the server's close frame, returning its code.
fn read_close_code(raw: &mut TcpStream) -> Option<u16> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut decoder = wsflow::codec::FrameDecoder::new(wsflow::Role::Client);
        let mut bytes = bytes::BytesMut::from(&data[..]);
        while let Ok(Some(frame)) = decoder.decode(&mut bytes) {
            if frame.opcode == OpCode::Close {
                return frame.close_status().map(|code| code.as_u16());
            }
        }
        match raw.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

async fn server_with(runtime: Runtime, config: Config) -> (Server, SocketAddr) {
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::default().runtime(runtime).connection(config),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    (server, addr)
}

/// Accepts connections and reads them to the end; reports each connection's events.
fn serve_reading(
    runtime: Runtime,
    mut server: Server,
) -> futures_channel::mpsc::UnboundedReceiver<Vec<Event>> {
    let (tx, rx) = futures_channel::mpsc::unbounded();
    spawn(runtime, async move {
        while let Some(request) = server.next().await {
            let tx = tx.clone();
            spawn(runtime, async move {
                let Ok(mut ws) = request.accept(None).await else {
                    return;
                };
                let mut events = Vec::new();
                while let Some(event) = ws.next_event().await {
                    events.push(event);
                }
                let _ = tx.unbounded_send(events);
            });
        }
    });
    rx
}

fn close_of(events: &[Event]) -> wsflow::CloseEvent {
    match events.last() {
        Some(Event::Closed(close)) => close.clone(),
        other => panic!("no close event: {other:?}"),
    }
}

#[test]
fn huge_frame_declarations_are_refused_with_1009_before_any_payload() {
    on_both_runtimes(|runtime| async move {
        let (server, addr) = server_with(runtime, Config::server()).await;
        let mut reports = serve_reading(runtime, server);
        let code = blocking::unblock(move || {
            let mut raw = raw_upgraded(addr);
            // A binary frame declaring 2^62 bytes, and nothing else.
            let mut header = vec![0x82, 0xff];
            header.extend_from_slice(&(1u64 << 62).to_be_bytes());
            header.extend_from_slice(&[1, 2, 3, 4]);
            raw.write_all(&header).unwrap();
            read_close_code(&mut raw)
        })
        .await;
        assert_eq!(code, Some(1009));
        let events = reports.next().await.unwrap();
        assert_eq!(close_of(&events).code, CloseCode::MESSAGE_TOO_BIG);
    });
}

#[test]
fn endless_tiny_fragments_are_refused_with_1008() {
    on_both_runtimes(|runtime| async move {
        let (server, addr) =
            server_with(runtime, Config::server().max_fragments_per_message(1000)).await;
        let mut reports = serve_reading(runtime, server);
        let code = blocking::unblock(move || {
            let mut raw = raw_upgraded(addr);
            let mut flood = masked(Frame::new(OpCode::Binary, vec![0u8]).with_fin(false));
            let empty = masked(Frame::new(OpCode::Continuation, Vec::<u8>::new()).with_fin(false));
            for _ in 0..5000 {
                flood.extend_from_slice(&empty);
            }
            // The server may close before reading all of it.
            let _ = raw.write_all(&flood);
            read_close_code(&mut raw)
        })
        .await;
        assert_eq!(code, Some(1008));
        let events = reports.next().await.unwrap();
        assert_eq!(close_of(&events).code, CloseCode::POLICY_VIOLATION);
    });
}

#[test]
fn a_reset_in_the_middle_of_a_message_ends_with_1006_and_frees_the_connection() {
    on_both_runtimes(|runtime| async move {
        let (mut server, addr) = server_with(runtime, Config::server()).await;
        let client = blocking::unblock(move || {
            let raw = raw_upgraded(addr);
            let frame = masked(Frame::new(OpCode::Binary, vec![7u8; 10_000]));
            (&raw).write_all(&frame[..5000]).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            // SO_LINGER 0: close sends RST instead of FIN.
            socket2::SockRef::from(&raw)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(raw);
        });
        // Accepted here rather than by `serve_reading`, so that the test keeps the server
        // and sees its registry.
        let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
        assert_eq!(server.connection_count(), 1);
        let mut events = Vec::new();
        while let Some(event) = ws.next_event().await {
            events.push(event);
        }
        client.await;
        let close = close_of(&events);
        assert_eq!(close.code, CloseCode::ABNORMAL);
        assert!(!close.was_clean);
        assert!(!events.iter().any(|e| matches!(e, Event::Message(_))));
        // The ended connection is freed: once the application drops it, the registry is
        // empty.
        drop(ws);
        assert_eq!(server.connection_count(), 0);
    });
}

#[test]
fn connection_count_returns_to_zero_after_every_kind_of_ending() {
    on_both_runtimes(|runtime| async move {
        let (mut server, addr) = server_with(
            runtime,
            Config::server().close_timeout(Duration::from_millis(200)),
        )
        .await;
        let clients = blocking::unblock(move || {
            let mut sockets = Vec::new();
            // Clean close, reset, plain FIN without close frame, protocol violation, silence.
            for kind in 0..5 {
                let mut raw = raw_upgraded(addr);
                match kind {
                    0 => {
                        raw.write_all(&masked(Frame::close(CloseCode::NORMAL, "").unwrap()))
                            .unwrap();
                        let _ = read_close_code(&mut raw);
                    }
                    1 => {
                        socket2::SockRef::from(&raw)
                            .set_linger(Some(Duration::ZERO))
                            .unwrap();
                        drop(raw);
                        continue;
                    }
                    2 => raw.shutdown(std::net::Shutdown::Write).unwrap(),
                    3 => raw.write_all(&[0x83, 0x80, 0, 0, 0, 0]).unwrap(),
                    _ => {}
                }
                sockets.push(raw);
            }
            sockets
        });
        let mut sockets = None;
        let mut accepted: Vec<WebSocket> = Vec::new();
        let mut clients = Box::pin(clients);
        while accepted.len() < 5 {
            match futures_util::future::select(server.next(), clients.as_mut()).await {
                futures_util::future::Either::Left((request, _)) => {
                    accepted.push(request.unwrap().accept(None).await.unwrap());
                }
                futures_util::future::Either::Right((done, _)) => {
                    sockets = Some(done);
                    break;
                }
            }
        }
        while accepted.len() < 5 {
            accepted.push(server.next().await.unwrap().accept(None).await.unwrap());
        }
        let sockets = match sockets {
            Some(sockets) => sockets,
            None => clients.await,
        };
        assert_eq!(server.connection_count(), 5);
        // The silent one is closed by us; the rest end on their own.
        let drivers = accepted
            .into_iter()
            .enumerate()
            .map(|(i, mut ws)| async move {
                if i == 4 {
                    ws.close(CloseCode::GOING_AWAY, None).await.unwrap();
                }
                ws.closed().await
            });
        let closes = futures_util::future::join_all(drivers).await;
        // In the order of the kinds: each client waits for its 101 before the next connects.
        let endings: Vec<(CloseCode, bool)> = closes
            .iter()
            .map(|close| (close.code, close.was_clean))
            .collect();
        assert_eq!(
            endings,
            [
                // The client's close frame, answered (the socket then ends by the close
                // timeout, the client keeping it open).
                (CloseCode::NORMAL, true),
                // A reset, and a FIN without a close frame: no close handshake.
                (CloseCode::ABNORMAL, false),
                (CloseCode::ABNORMAL, false),
                // The reserved opcode fails the connection with 1002, never answered.
                (CloseCode::PROTOCOL_ERROR, false),
                // Our 1001, never answered: the close timeout ends it without a handshake.
                (CloseCode::ABNORMAL, false),
            ],
            "{closes:?}"
        );
        drop(sockets);
        // Every WebSocket was dropped at the end of its future: the registry is empty.
        assert_eq!(server.connection_count(), 0);
    });
}

#[test]
fn a_peer_that_never_reads_makes_senders_wait_at_the_high_water_mark() {
    on_both_runtimes(|runtime| async move {
        let hwm = 256 * 1024;
        let (mut server, addr) =
            server_with(runtime, Config::server().send_high_water_mark(hwm)).await;
        // A client that completes the handshake and then never reads (until the test ends).
        let (test_done, idle) = silent_peer(addr);
        let ws = server.next().await.unwrap().accept(None).await.unwrap();
        let (mut reader, sender) = ws.split();
        spawn(
            runtime,
            async move { while reader.next().await.is_some() {} },
        );
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0usize;
        // Keep sending until a send has to wait; the kernel buffers take some first. A send
        // that took long while the connection's buffer was below the mark was only slowed
        // down (a busy machine): it was not queued, and the loop goes on.
        loop {
            let send = sender.send_binary(chunk.clone());
            let timeout = sleep(runtime, Duration::from_millis(300));
            match futures_util::future::select(Box::pin(send), Box::pin(timeout)).await {
                futures_util::future::Either::Left((result, _)) => {
                    result.unwrap();
                    sent += chunk.len();
                    assert!(sent < 64 << 20, "the sender never had to wait");
                }
                futures_util::future::Either::Right(_) if sender.buffered_amount() > hwm => break,
                futures_util::future::Either::Right(_) => {}
            }
        }
        // Waiting means the connection's own buffer stays near the mark.
        assert!(
            sender.buffered_amount() <= hwm + chunk.len(),
            "{} buffered",
            sender.buffered_amount()
        );
        // A fail-fast sender gets an error instead of waiting.
        let fast = sender.clone().fail_fast(true);
        assert!(matches!(
            fast.send_binary(chunk.clone()).await,
            Err(Error::BufferFull { .. })
        ));
        test_done.send(()).unwrap();
        idle.await;
    });
}

#[test]
fn a_peer_that_floods_pings_and_never_reads_cannot_grow_the_send_buffer() {
    on_both_runtimes(|runtime| async move {
        let hwm = 64 * 1024;
        // Small kernel buffers on both sides, so that they hold few of the pongs.
        let mut server = small_send_buffer_server(
            runtime,
            ServerConfig::default().connection(Config::server().send_high_water_mark(hwm)),
        );
        let addr = server.local_addr();
        // 16 MiB of pings, far more than the kernel buffers hold, then a message that marks
        // the end; the peer reads nothing until told to, then reads until the pong of its
        // last ping.
        let pings = 128 * 1024u32;
        let payload = |i: u32| format!("{i:0125}");
        let (may_read, read) = std::sync::mpsc::channel::<()>();
        let peer = blocking::unblock(move || {
            let mut raw = small_window_client(addr);
            raw.write_all(UPGRADE.as_bytes()).unwrap();
            assert!(read_head(&mut raw).starts_with("HTTP/1.1 101"));
            let mut flood = Vec::with_capacity(1 << 20);
            for i in 0..pings {
                flood.extend(masked(Frame::new(OpCode::Ping, payload(i))));
                if flood.len() >= 1 << 20 {
                    raw.write_all(&flood).unwrap();
                    flood.clear();
                }
            }
            flood.extend(masked(Frame::new(OpCode::Text, "done")));
            raw.write_all(&flood).unwrap();
            read.recv_timeout(Duration::from_secs(60)).unwrap();
            let mut decoder = wsflow::codec::FrameDecoder::new(wsflow::Role::Client);
            let mut input = bytes::BytesMut::new();
            let mut pongs = 0u32;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                while let Some(frame) = decoder.decode(&mut input).unwrap() {
                    assert_eq!(frame.opcode, OpCode::Pong);
                    pongs += 1;
                    if frame.payload[..] == *payload(pings - 1).as_bytes() {
                        // The socket stays open until the test is done with the count.
                        return (pongs, raw);
                    }
                }
                let n = raw.read(&mut buf).unwrap();
                assert!(n > 0, "the pong of the last ping never came");
                input.extend_from_slice(&buf[..n]);
            }
        });
        let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
        let mut seen = 0u32;
        loop {
            match ws.next_event().await.unwrap() {
                Event::Ping(_) => seen += 1,
                Event::Message(message) => {
                    assert_eq!(message, Message::text("done"));
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen, pings);
        // Past the mark the connection keeps one pong, the latest, not one per ping.
        assert!(
            ws.buffered_amount() <= hwm + 127,
            "{} bytes of pongs queued",
            ws.buffered_amount()
        );
        may_read.send(()).unwrap();
        // Keep the connection going while the peer reads its pongs.
        let pumping = Box::pin(async move { while ws.next_event().await.is_some() {} });
        let pongs = match futures_util::future::select(Box::pin(peer), pumping).await {
            futures_util::future::Either::Left(((pongs, _raw), _)) => pongs,
            futures_util::future::Either::Right(_) => panic!("the connection ended first"),
        };
        assert!(pongs < pings, "{pongs} pongs");
    });
}

#[test]
fn a_peer_that_floods_messages_while_the_close_is_awaited_cannot_make_the_server_keep_them_all() {
    // After `close()`, and on a connection still open.
    on_both_runtimes(|runtime| flood_while_the_close_is_awaited(runtime, true));
    on_both_runtimes(|runtime| flood_while_the_close_is_awaited(runtime, false));
}

/// A peer sends up to 64 MiB of 1 KiB messages, and never a close frame, while the server
/// awaits `closed()` and reads nothing: the messages are kept, up to the largest message the
/// connection takes (and one read more); then the connection reads no more, having begun the
/// close if the application had not, the peer's close (if it sent one) cannot come, and the
/// close timeout ends it.
async fn flood_while_the_close_is_awaited(runtime: Runtime, close_first: bool) {
    let limit = 64 * 1024;
    let config = Config::server()
        .max_received_message_size(limit)
        .close_timeout(Duration::from_secs(1));
    let (mut server, addr) = server_with(runtime, config).await;
    let peer = blocking::unblock(move || {
        let mut raw = raw_upgraded(addr);
        let mut burst = Vec::new();
        for _ in 0..256 {
            burst.extend(masked(Frame::new(OpCode::Binary, vec![7u8; 1024])));
        }
        for _ in 0..256 {
            if raw.write_all(&burst).is_err() {
                break;
            }
        }
    });
    let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
    if close_first {
        ws.close(CloseCode::NORMAL, None).await.unwrap();
    }
    let close = within_10_s(runtime, "the connection never ended", ws.closed()).await;
    assert!(!close.was_clean, "{close:?}");
    let mut kept = 0;
    // (The peer may reset the connection once it is done: an error, not a message.)
    while let Some(message) = ws.next().await {
        kept += message.map_or(0, |message| message.len());
    }
    assert!(kept > 0);
    // One read is 256 KiB at most.
    assert!(kept <= limit + 256 * 1024, "{kept} bytes kept");
    drop(ws);
    peer.await;
}

/// A raw client with a 4 KiB kernel receive buffer that completes the handshake, sends one
/// message and then reads nothing until told to go (or 60 s pass).
fn stalled_peer(addr: SocketAddr) -> (std::sync::mpsc::Sender<()>, blocking::Task<()>) {
    stalled_client(addr, true)
}

/// A raw client with a 4 KiB kernel receive buffer (set before connecting, so its window
/// stays small): what it does not read soon fills the kernel buffers.
fn small_window_client(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// [`stalled_peer`]; or, without `upgraded`, one that sends its request and reads nothing,
/// not even the answer.
fn stalled_client(
    addr: SocketAddr,
    upgraded: bool,
) -> (std::sync::mpsc::Sender<()>, blocking::Task<()>) {
    let (may_go, go) = std::sync::mpsc::channel::<()>();
    let peer = blocking::unblock(move || {
        let mut raw = small_window_client(addr);
        raw.write_all(UPGRADE.as_bytes()).unwrap();
        if upgraded {
            assert!(read_head(&mut raw).starts_with("HTTP/1.1 101"));
            raw.write_all(&masked(Frame::new(OpCode::Text, "hello")))
                .unwrap();
        }
        let _ = go.recv_timeout(Duration::from_secs(60));
        drop(raw);
    });
    (may_go, peer)
}

/// Runs `wait` for at most 10 s; panics with `what` if it takes longer.
async fn within_10_s<T>(
    runtime: Runtime,
    what: &str,
    wait: impl std::future::Future<Output = T>,
) -> T {
    let deadline = Box::pin(sleep(runtime, Duration::from_secs(10)));
    match futures_util::future::select(Box::pin(wait), deadline).await {
        futures_util::future::Either::Left((done, _)) => done,
        futures_util::future::Either::Right(_) => panic!("{what}"),
    }
}

#[test]
fn a_send_or_close_waiting_on_a_peer_that_stopped_reading_ends_by_the_timers() {
    on_both_runtimes(|runtime| async move {
        let config = Config::server()
            .keepalive_interval(Duration::from_millis(200))
            .keepalive_grace_period(Duration::from_millis(200))
            .close_timeout(Duration::from_millis(300));
        let mut server =
            small_send_buffer_server(runtime, ServerConfig::default().connection(config));
        let addr = server.local_addr();
        // The echo loop of the docs: its send waits while the peer reads nothing, and the
        // keepalive, not a read, has to end it.
        let (peer_may_go, peer) = stalled_peer(addr);
        let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
        let message = ws.next().await.unwrap().unwrap();
        assert_eq!(message, Message::text("hello"));
        let big = vec![1u8; 4 << 20];
        let sent = within_10_s(runtime, "the send never ended", ws.send_binary(big.clone())).await;
        assert!(sent.is_err(), "4 MiB went to a peer that reads nothing");
        let close = within_10_s(runtime, "no close event", ws.closed()).await;
        assert_eq!(close.code, CloseCode::ABNORMAL);
        assert_eq!(close.description, "Peer not responding.");
        peer_may_go.send(()).unwrap();
        peer.await;
        // A close queued behind output the peer never takes ends by the close timeout.
        let (peer_may_go, peer) = stalled_peer(addr);
        let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
        ws.queue(Message::binary(big)).unwrap();
        within_10_s(
            runtime,
            "the close never ended",
            ws.close(CloseCode::NORMAL, None),
        )
        .await
        .unwrap();
        let close = within_10_s(runtime, "no close event", ws.closed()).await;
        assert!(!close.was_clean, "{close:?}");
        peer_may_go.send(()).unwrap();
        peer.await;
        // Split, with another task reading: that one runs the timers, and the send learns
        // from it that the connection ended without its bytes.
        let (peer_may_go, peer) = stalled_peer(addr);
        let ws = server.next().await.unwrap().accept(None).await.unwrap();
        let (mut sink, mut stream) = futures_util::StreamExt::split(ws);
        spawn(
            runtime,
            async move { while stream.next().await.is_some() {} },
        );
        let sent = within_10_s(
            runtime,
            "the split send never ended",
            futures_util::SinkExt::send(&mut sink, Message::binary(vec![2u8; 4 << 20])),
        )
        .await;
        assert!(sent.is_err(), "4 MiB went to a peer that reads nothing");
        peer_may_go.send(()).unwrap();
        peer.await;
        // Read in one task, then handed to another that sends: the first task's waker is
        // still the one registered as reading, though that task is gone.
        let (peer_may_go, peer) = stalled_peer(addr);
        let ws = server.next().await.unwrap().accept(None).await.unwrap();
        let (handed, handed_over) = futures_channel::oneshot::channel();
        spawn(runtime, async move {
            let mut ws = ws;
            let message = ws.next().await.unwrap().unwrap();
            assert_eq!(message, Message::text("hello"));
            handed.send(ws).unwrap();
        });
        let mut ws = handed_over.await.unwrap();
        let sent = within_10_s(
            runtime,
            "the send of a moved WebSocket never ended",
            ws.send_binary(vec![3u8; 4 << 20]),
        )
        .await;
        assert!(sent.is_err(), "4 MiB went to a peer that reads nothing");
        peer_may_go.send(()).unwrap();
        peer.await;
    });
}

#[test]
fn an_answer_the_peer_never_reads_is_given_up_after_the_handshake_timeout() {
    on_both_runtimes(|runtime| async move {
        let mut server = small_send_buffer_server(
            runtime,
            ServerConfig::default().handshake_timeout(Duration::from_secs(1)),
        );
        let (peer_may_go, peer) = stalled_client(server.local_addr(), false);
        let request = within_10_s(runtime, "no request", server.next())
            .await
            .unwrap();
        // An answer far larger than the kernel buffers, to a peer that reads nothing.
        let big = "x".repeat(4096);
        let headers: Vec<(String, &str)> = (0..64)
            .map(|i| (format!("X-Big-{i}"), big.as_str()))
            .collect();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), *value))
            .collect();
        let answered = within_10_s(
            runtime,
            "the rejection never ended",
            request.reject_with_headers(403, Some("no"), &headers),
        )
        .await;
        match answered {
            Err(Error::Io(err)) => assert_eq!(err.kind(), std::io::ErrorKind::TimedOut),
            other => panic!("{other:?}"),
        }
        peer_may_go.send(()).unwrap();
        peer.await;
    });
}

#[test]
fn pings_from_senders_to_a_peer_that_never_reads_are_held_past_the_high_water_mark() {
    on_both_runtimes(|runtime| async move {
        let hwm = 64 * 1024;
        let (mut server, addr) =
            server_with(runtime, Config::server().send_high_water_mark(hwm)).await;
        let (test_done, idle) = silent_peer(addr);
        let ws = server.next().await.unwrap().accept(None).await.unwrap();
        let (mut reader, sender) = ws.split();
        let payload = bytes::Bytes::from(vec![b'p'; 125]);
        let refused = |result: Result<(), Error>| match result {
            Ok(()) => false,
            Err(Error::BufferFull { .. }) => true,
            Err(err) => panic!("{err}"),
        };
        // Nothing polls the connection yet: the pings wait in the senders' queue, where each
        // counts its 127 bytes, so the queue stops at the mark.
        let mut queued = 0;
        while !refused(sender.ping(payload.clone())) {
            queued += 1;
            assert!(queued <= hwm / 127 + 1, "{queued} pings queued");
        }
        assert!(refused(sender.pong(payload.clone())));
        // Now the connection takes them, and a large send passes the mark once the kernel
        // buffers are full: the pings that follow are held by the connection, the latest
        // only, neither refused nor kept.
        spawn(
            runtime,
            async move { while reader.next().await.is_some() {} },
        );
        let large = 16 << 20;
        sender.send_binary(vec![0u8; large]).await.unwrap();
        for i in 0..10_000 {
            sender.ping(payload.clone()).unwrap();
            sender.pong(payload.clone()).unwrap();
            // Let the connection take what was queued: between pauses the senders' queue
            // holds at most 16 KiB.
            if i % 64 == 0 {
                sleep(runtime, Duration::from_millis(1)).await;
            }
        }
        sleep(runtime, Duration::from_millis(50)).await;
        assert!(
            sender.buffered_amount() <= large + 128 * 127,
            "{} buffered",
            sender.buffered_amount()
        );
        assert!(!sender.is_closed());
        test_done.send(()).unwrap();
        idle.await;
    });
}

#[test]
fn a_send_waiting_for_room_fails_when_the_connection_closes_under_it() {
    on_both_runtimes(|runtime| async move {
        let hwm = 64 * 1024;
        let (mut server, addr) =
            server_with(runtime, Config::server().send_high_water_mark(hwm)).await;
        // A client that completes the handshake, never reads, and then goes away.
        let (peer_may_go, peer) = silent_peer(addr);
        let ws = server.next().await.unwrap().accept(None).await.unwrap();
        let (mut reader, sender) = ws.split();
        // The reading task stops at the close but keeps its half: the senders must learn of
        // the close from the close itself, not from the connection being dropped.
        let (closed, closed_seen) = futures_channel::oneshot::channel::<()>();
        spawn(runtime, async move {
            while reader.next().await.is_some() {}
            let _ = closed.send(());
            std::future::pending::<()>().await;
            drop(reader);
        });
        // Send until a send waits for room.
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0usize;
        let waiting = loop {
            let send = Box::pin(sender.send_binary(chunk.clone()));
            let timeout = Box::pin(sleep(runtime, Duration::from_millis(300)));
            match futures_util::future::select(send, timeout).await {
                futures_util::future::Either::Left((result, _)) => {
                    result.unwrap();
                    sent += chunk.len();
                    assert!(sent < 64 << 20, "the sender never had to wait");
                }
                futures_util::future::Either::Right((_, send))
                    if sender.buffered_amount() > hwm =>
                {
                    break send;
                }
                futures_util::future::Either::Right((_, send)) => send.await.unwrap(),
            }
        };
        assert!(!sender.is_closed());
        peer_may_go.send(()).unwrap();
        peer.await;
        let deadline = Box::pin(sleep(runtime, Duration::from_secs(10)));
        match futures_util::future::select(waiting, deadline).await {
            futures_util::future::Either::Left((result, _)) => {
                assert!(matches!(result, Err(Error::ConnectionGone)), "{result:?}");
            }
            futures_util::future::Either::Right(_) => {
                panic!("the send waiting for room was not woken by the close")
            }
        }
        closed_seen.await.unwrap();
        assert!(sender.is_closed());
        // The connection ended abnormally and discarded its output: nothing waits.
        assert_eq!(sender.buffered_amount(), 0);
        assert!(matches!(
            sender.try_send("late"),
            Err(Error::ConnectionGone)
        ));
    });
}

#[test]
fn broadcast_skips_a_slow_reader_without_stalling_the_others() {
    on_both_runtimes(|runtime| async move {
        let hwm = 64 * 1024;
        let (mut server, addr) =
            server_with(runtime, Config::server().send_high_water_mark(hwm)).await;
        let url = format!("ws://{addr}/");
        // One peer that never reads...
        let (test_done, slow) = silent_peer(addr);
        let request = server.next().await.unwrap();
        let (mut slow_reader, slow_sender) = request.accept(None).await.unwrap().split();
        spawn(runtime, async move {
            while slow_reader.next().await.is_some() {}
        });
        // ...and three that do.
        let mut fast = Vec::new();
        for _ in 0..3 {
            let client = client(runtime);
            let connecting = client.connect(&url);
            let accepting = async { server.next().await.unwrap().accept(None).await.unwrap() };
            let (ws, accepted) = futures_util::future::join(connecting, accepting).await;
            let (mut reader, _) = accepted.split();
            spawn(
                runtime,
                async move { while reader.next().await.is_some() {} },
            );
            fast.push(ws.unwrap());
        }
        while server.connection_count() < 4 {
            sleep(runtime, Duration::from_millis(5)).await;
        }
        let chunk = vec![5u8; 32 * 1024];
        let mut skipped_slow = false;
        for round in 0..200u32 {
            let mut message = chunk.clone();
            message[..4].copy_from_slice(&round.to_be_bytes());
            let delivered = server.broadcast_binary(message.clone());
            assert!(delivered >= 3, "round {round}: delivered to {delivered}");
            skipped_slow |= delivered == 3;
            for ws in &mut fast {
                assert_eq!(
                    ws.next().await.unwrap().unwrap(),
                    Message::binary(message.clone())
                );
            }
        }
        assert!(skipped_slow, "the slow reader never filled up");
        assert!(slow_sender.buffered_amount() <= hwm + chunk.len());
        test_done.send(()).unwrap();
        slow.await;
    });
}

#[test]
fn cancelling_a_receive_in_the_middle_of_a_message_loses_nothing() {
    on_both_runtimes(|runtime| async move {
        let (mut server, addr) = server_with(runtime, Config::server()).await;
        let (send_second_half, second_half_may_go) = std::sync::mpsc::channel::<()>();
        let writer = blocking::unblock(move || {
            let mut raw = raw_upgraded(addr);
            let frame = masked(Frame::new(OpCode::Text, "a message in two halves"));
            raw.write_all(&frame[..10]).unwrap();
            second_half_may_go.recv().unwrap();
            raw.write_all(&frame[10..]).unwrap();
            raw.write_all(&masked(Frame::close(CloseCode::NORMAL, "").unwrap()))
                .unwrap();
            let _ = read_close_code(&mut raw);
        });
        let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
        // The first half arrives; the receive is cancelled while waiting for the rest.
        let first = futures_util::future::select(
            Box::pin(ws.recv()),
            Box::pin(sleep(runtime, Duration::from_millis(150))),
        )
        .await;
        assert!(matches!(first, futures_util::future::Either::Right(_)));
        drop(first);
        send_second_half.send(()).unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::text("a message in two halves")
        );
        assert!(ws.closed().await.was_clean);
        writer.await;
    });
}

#[test]
fn writing_to_a_reset_peer_reports_an_error_and_closes_1006() {
    on_both_runtimes(|runtime| async move {
        let (mut server, addr) = server_with(runtime, Config::server()).await;
        let reset = blocking::unblock(move || {
            let raw = raw_upgraded(addr);
            socket2::SockRef::from(&raw)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(raw);
        });
        let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
        reset.await;
        sleep(runtime, Duration::from_millis(50)).await;
        // Sends may succeed into the kernel buffer once; the failure shows as an error event.
        for _ in 0..100 {
            if ws.send_binary(vec![1u8; 64 * 1024]).await.is_err() {
                break;
            }
        }
        let mut events = Vec::new();
        while let Some(event) = ws.next_event().await {
            events.push(event);
        }
        assert_eq!(close_of(&events).code, CloseCode::ABNORMAL);
    });
}
