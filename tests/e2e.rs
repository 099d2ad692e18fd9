//! End-to-end tests over real loopback sockets, each run on both runtimes: echo both ways,
//! subprotocols, rejections, the router, senders and broadcast, close codes, shutdown,
//! timeouts, remote addresses and many concurrent connections.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use wsflow::codec::{Frame, OpCode};
use wsflow::{
    Client, CloseCode, CloseInitiator, Config, DeflateConfig, Error, Event, HandshakeError,
    Message, Router, Runtime, Server, ServerConfig, WebSocket,
};

/// Polls `server`, which must yield no request, until `done` says so (at most 10 s): its
/// handshakes are read and answered meanwhile.
async fn serve_until(server: &mut Server, runtime: Runtime, done: impl Fn(&Server) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done(server) {
        assert!(std::time::Instant::now() < deadline, "timed out");
        let accepting = futures_util::future::select(
            server.next(),
            Box::pin(sleep(runtime, Duration::from_millis(5))),
        )
        .await;
        assert!(matches!(accepting, futures_util::future::Either::Right(_)));
    }
}

async fn echo_server(runtime: Runtime, config: ServerConfig) -> Server {
    Server::bind("127.0.0.1:0", config.runtime(runtime))
        .await
        .unwrap()
}

/// Connects `client` to `url` while `server` accepts the request: (the client's end, the
/// server's end).
async fn connect_and_accept(
    server: &mut Server,
    client: &Client,
    url: &str,
) -> (WebSocket, WebSocket) {
    let connecting = client.connect(url);
    let accepting = async { server.next().await.unwrap().accept(None).await.unwrap() };
    let (ws, accepted) = futures_util::future::join(connecting, accepting).await;
    (ws.unwrap(), accepted)
}

/// Reads the server's end of a connection until it ends, on its own task: what it sends is
/// sent through its senders.
fn read_until_closed(runtime: Runtime, mut accepted: WebSocket) {
    spawn(
        runtime,
        async move { while accepted.next().await.is_some() {} },
    );
}

#[test]
fn messages_echo_both_ways_with_their_types() {
    on_both_runtimes(|runtime| async move {
        let server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/echo", server.local_addr());
        serve_echo(runtime, server);
        let mut ws = client(runtime).connect(&url).await.unwrap();
        ws.send_text("héllo").await.unwrap();
        ws.send_binary(vec![0u8, 1, 2, 255]).await.unwrap();
        let big: String = "x".repeat(200_000);
        ws.send(big.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("héllo"));
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(vec![0u8, 1, 2, 255])
        );
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(big));
        ws.close(CloseCode::NORMAL, None).await.unwrap();
        let close = ws.closed().await;
        assert!(close.was_clean, "{close:?}");
        assert_eq!(close.code, CloseCode::NORMAL);
        assert!(ws.next().await.is_none());
    });
}

#[test]
fn sink_and_stream_work_with_futures_combinators() {
    on_both_runtimes(|runtime| async move {
        let server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/", server.local_addr());
        serve_echo(runtime, server);
        let mut ws = client(runtime).connect(&url).await.unwrap();
        let mut outgoing =
            futures_util::stream::iter((0..100).map(|i| Ok(Message::text(i.to_string()))));
        ws.send_all(&mut outgoing).await.unwrap();
        let received: Vec<Message> = ws.by_ref().take(100).map(Result::unwrap).collect().await;
        let expected: Vec<Message> = (0..100).map(|i| Message::text(i.to_string())).collect();
        assert_eq!(received, expected);
        SinkExt::close(&mut ws).await.unwrap();
        assert_eq!(ws.close_reason_code(), Some(CloseCode::NORMAL));
    });
}

#[test]
fn subprotocols_are_negotiated() {
    on_both_runtimes(|runtime| async move {
        let server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/", server.local_addr());
        serve_echo(runtime, server);
        let ws = Client::new(client_config(runtime).protocols(["superchat", "Chat"]))
            .connect(&url)
            .await
            .unwrap();
        assert_eq!(ws.protocol(), Some("chat"));
        let ws = client(runtime).connect(&url).await.unwrap();
        assert_eq!(ws.protocol(), None);
    });
}

#[test]
fn rejections_reach_the_client_with_status_and_headers() {
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/", server.local_addr());
        spawn(runtime, async move {
            while let Some(request) = server.next().await {
                let origin_ok = request.origin() == Some("https://good.example");
                if origin_ok {
                    let _ = request.accept(None).await;
                } else {
                    request
                        .reject_with_headers(403, Some("bad\r\norigin"), &[("X-Extra", "yes")])
                        .await
                        .unwrap();
                }
            }
        });
        let err = Client::new(client_config(runtime).origin("https://evil.example"))
            .connect(&url)
            .await
            .unwrap_err();
        let Error::Handshake(handshake) = &err else {
            panic!("unexpected {err:?}");
        };
        let HandshakeError::UnexpectedStatus {
            status, headers, ..
        } = &**handshake
        else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(*status, 403);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            header("X-WebSocket-Reject-Reason").as_deref(),
            Some("badorigin")
        );
        assert_eq!(header("X-Extra").as_deref(), Some("yes"));
        let ws = Client::new(client_config(runtime).origin("https://good.example"))
            .connect(&url)
            .await;
        assert!(ws.is_ok());
    });
}

#[test]
fn router_dispatches_by_path_and_protocol() {
    on_both_runtimes(|runtime| async move {
        let mut router = Router::new();
        for (path, protocol, name) in [
            ("/chat", Some("chat"), "chat"),
            ("/chat", None, "chat-plain"),
            ("/rooms/*", Some("*"), "rooms"),
        ] {
            router.mount(path, protocol, move |routed| async move {
                let accepted = if name == "rooms" {
                    // The matched protocol replaces the one in the options.
                    let options = wsflow::handshake::AcceptOptions::new()
                        .protocol(Some("ignored"))
                        .header("X-Room", "7");
                    routed.accept_with(options).await
                } else {
                    routed.accept().await
                };
                if let Ok(mut ws) = accepted {
                    let _ = ws.send_text(name).await;
                    ws.closed().await;
                }
            });
        }
        let mut server = echo_server(runtime, ServerConfig::default()).await;
        let base = format!("ws://{}", server.local_addr());
        spawn(runtime, async move {
            while let Some(request) = server.next().await {
                spawn(runtime, router.dispatch(request));
            }
        });
        let first_message = |path: &'static str, protocols: Vec<&'static str>| {
            let url = format!("{base}{path}");
            async move {
                let mut ws = Client::new(client_config(runtime).protocols(protocols))
                    .connect(&url)
                    .await?;
                let message = ws.next().await.unwrap().unwrap();
                Ok::<_, Error>((
                    message.as_text().unwrap().to_owned(),
                    ws.protocol().map(str::to_owned),
                ))
            }
        };
        assert_eq!(
            first_message("/chat", vec!["other", "chat"]).await.unwrap(),
            ("chat".to_owned(), Some("chat".to_owned()))
        );
        assert_eq!(
            first_message("/chat", vec![]).await.unwrap(),
            ("chat-plain".to_owned(), None)
        );
        assert_eq!(
            first_message("/rooms/7", vec!["anything"]).await.unwrap(),
            ("rooms".to_owned(), Some("anything".to_owned()))
        );
        let err = first_message("/nowhere", vec![]).await.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Handshake(handshake)
                    if matches!(**handshake, HandshakeError::UnexpectedStatus { status: 404, .. })
            ),
            "{err:?}"
        );
        let err = first_message("/chat", vec!["unknown"]).await.unwrap_err();
        assert!(matches!(
            &err,
            Error::Handshake(handshake)
                if matches!(**handshake, HandshakeError::UnexpectedStatus { status: 404, .. })
        ));
    });
}

#[test]
fn senders_from_other_tasks_and_broadcast() {
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/", server.local_addr());
        // Each client with the address the server sees it from (its sender's `peer_addr`).
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (ws, accepted) = connect_and_accept(&mut server, &client(runtime), &url).await;
            let peer = accepted
                .peer_addr()
                .expect("the accepted socket's peer address");
            // The server side only reads; its senders and the broadcast write through it.
            read_until_closed(runtime, accepted);
            clients.push((ws, peer));
        }
        // Wait until every accepted connection is registered.
        while server.connection_count() < 3 {
            sleep(runtime, Duration::from_millis(5)).await;
        }
        assert_eq!(server.broadcast_text("to everyone"), 3);
        let senders = server.connections();
        assert_eq!(senders.len(), 3);
        // Each sender names the connection it writes to: a client must get exactly the
        // message naming its own connection, so no sender writes to another connection.
        for sender in &senders {
            let sender = sender.clone();
            let peer = sender.peer_addr().expect("the sender's peer address");
            spawn(runtime, async move {
                sender.send_text(format!("private {peer}")).await.unwrap();
            });
        }
        for (ws, peer) in &mut clients {
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                Message::text("to everyone")
            );
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                Message::text(format!("private {peer}"))
            );
        }
    });
}

#[test]
fn compressed_broadcasts_without_context_takeover_reach_every_connection_intact() {
    // The connections share zlib state, and a broadcast is compressed once per thread: every
    // client must still get every message, in order, between private messages of its own.
    const CLIENTS: usize = 6;
    on_both_runtimes(|runtime| async move {
        let shared = DeflateConfig::new()
            .threshold(0)
            .server_no_context_takeover(true)
            .client_no_context_takeover(true);
        let config = ServerConfig::default().permessage_deflate(shared);
        let mut server = echo_server(runtime, config).await;
        let url = format!("ws://{}/", server.local_addr());
        let client_config = client_config(runtime).permessage_deflate(DeflateConfig::new());
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let client = Client::new(client_config.clone());
            let (ws, accepted) = connect_and_accept(&mut server, &client, &url).await;
            read_until_closed(runtime, accepted);
            assert!(ws.extensions()[0].contains("client_no_context_takeover"));
            clients.push(ws);
        }
        while server.connection_count() < CLIENTS {
            sleep(runtime, Duration::from_millis(5)).await;
        }
        let news = Message::text("news for everyone, ".repeat(200));
        let data = Message::binary((0..40_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let private = |i: usize, round: usize| {
            Message::text(format!("private {i} in round {round}, ").repeat(50))
        };
        for round in 0..3 {
            for message in [&news, &data] {
                assert_eq!(server.broadcast(message.clone()), CLIENTS);
            }
            for (i, sender) in server.connections().iter().enumerate() {
                sender.try_send(private(i, round)).unwrap();
            }
        }
        // `connections()` follows no particular order: each client learns its index from its
        // first private message.
        let mut indexes = Vec::new();
        for ws in &mut clients {
            let mut index = None;
            for round in 0..3 {
                assert_eq!(ws.next().await.unwrap().unwrap(), news);
                assert_eq!(ws.next().await.unwrap().unwrap(), data);
                let received = ws.next().await.unwrap().unwrap();
                let i = *index.get_or_insert_with(|| {
                    (0..CLIENTS)
                        .find(|&i| received == private(i, round))
                        .expect("a private message of the first round")
                });
                assert_eq!(received, private(i, round));
            }
            indexes.extend(index);
        }
        indexes.sort_unstable();
        assert_eq!(indexes, (0..CLIENTS).collect::<Vec<_>>());
    });
}

#[test]
fn messages_from_other_threads_wake_an_idle_connection_every_time() {
    // Senders on plain threads race the driver going to sleep: each message must wake it
    // (a lost wake-up would leave messages unsent and the test would time out).
    const THREADS: usize = 4;
    const PER_THREAD: usize = 300;
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/", server.local_addr());
        let (mut ws, accepted) = connect_and_accept(&mut server, &client(runtime), &url).await;
        let (mut reader, sender) = accepted.split();
        spawn(
            runtime,
            async move { while reader.next().await.is_some() {} },
        );
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        sender.try_send(format!("{thread} {i}")).unwrap();
                        if i % 7 == 0 {
                            // Let the driver catch up and go idle now and then.
                            std::thread::sleep(Duration::from_micros(50));
                        }
                    }
                })
            })
            .collect();
        let got = std::sync::atomic::AtomicUsize::new(0);
        let receive_all = async {
            let mut next = [0usize; THREADS];
            for _ in 0..THREADS * PER_THREAD {
                let message = ws.next().await.unwrap().unwrap();
                got.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (thread, i) = message.as_text().unwrap().split_once(' ').unwrap();
                let thread: usize = thread.parse().unwrap();
                // Each thread's messages arrive in the order it sent them.
                assert_eq!(i.parse::<usize>().unwrap(), next[thread]);
                next[thread] += 1;
            }
        };
        // Well under the keepalive interval, whose ping would wake a stuck connection.
        let deadline = sleep(runtime, Duration::from_secs(5));
        if let futures_util::future::Either::Right(_) =
            futures_util::future::select(Box::pin(receive_all), Box::pin(deadline)).await
        {
            panic!(
                "messages from other threads were not all delivered within 5 s on {runtime}: \
                 {} of {} received, {} bytes still waiting to be sent",
                got.load(std::sync::atomic::Ordering::Relaxed),
                THREADS * PER_THREAD,
                sender.buffered_amount()
            );
        }
        for thread in threads {
            thread.join().unwrap();
        }
    });
}

#[test]
fn a_stream_and_sink_split_across_tasks_still_applies_sender_commands() {
    // `StreamExt::split` gives the `Stream` to one task and the `Sink` to another. The reading
    // task must stay the one that senders wake: a flush by the writing task must not take that
    // over, or a command from a `Sender` would wake a task that never polls the connection.
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/", server.local_addr());
        let (mut ws, accepted) = connect_and_accept(&mut server, &client(runtime), &url).await;
        let sender = accepted.sender();
        let (mut sink, mut stream) = StreamExt::split(accepted);
        spawn(
            runtime,
            async move { while stream.next().await.is_some() {} },
        );
        // Let the reading task poll first and wait.
        sleep(runtime, Duration::from_millis(50)).await;
        // The writing task (this one) sends through the sink, then goes on to other things.
        sink.send(Message::text("through the sink")).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text("through the sink")
        );
        sender.try_send("through a sender").unwrap();
        let next = Box::pin(ws.next());
        let deadline = Box::pin(sleep(runtime, Duration::from_secs(5)));
        match futures_util::future::select(next, deadline).await {
            futures_util::future::Either::Left((message, _)) => {
                assert_eq!(message.unwrap().unwrap(), Message::text("through a sender"));
            }
            futures_util::future::Either::Right(_) => {
                panic!("the sender's message was not sent: the reading task was not woken")
            }
        }
        drop(sink);
    });
}

/// A raw blocking client with a small kernel receive buffer (set before connecting, so the
/// window stays small), upgraded to WebSocket.
fn small_buffer_client(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(32 * 1024).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut raw: std::net::TcpStream = socket.into();
    raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    raw.write_all(UPGRADE.as_bytes()).unwrap();
    assert!(read_head(&mut raw).starts_with("HTTP/1.1 101"));
    raw
}

/// A raw client with a small receive buffer that completes the handshake and then reads
/// at most 8 KiB a millisecond, on its own thread, until `stop` is set or the connection
/// ends: counts the text messages "marker" in `markers`.
fn slow_reader(
    addr: std::net::SocketAddr,
    markers: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let mut raw = small_buffer_client(addr);
        let mut decoder = wsflow::codec::FrameDecoder::new(wsflow::Role::Client);
        let mut wire = bytes::BytesMut::new();
        let mut chunk = [0u8; 8 * 1024];
        while !stop.load(Ordering::SeqCst) {
            match raw.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => wire.extend_from_slice(&chunk[..n]),
            }
            while let Some(frame) = decoder.decode(&mut wire).unwrap() {
                if frame.opcode == OpCode::Text && frame.payload[..] == b"marker"[..] {
                    markers.fetch_add(1, Ordering::SeqCst);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

#[test]
fn a_send_to_a_peer_that_reads_slowly_outlasts_the_keepalive() {
    // The connection's own send, which writes as it waits...
    on_both_runtimes(|runtime| send_to_a_slow_reader(runtime, SlowSend::Owner));
    // ...and a `Sender`'s, written by the task that reads the connection.
    on_both_runtimes(|runtime| send_to_a_slow_reader(runtime, SlowSend::Sender));
}

#[test]
fn a_close_behind_a_long_send_to_a_peer_that_reads_slowly_outlasts_the_close_timeout() {
    on_both_runtimes(|runtime| send_to_a_slow_reader(runtime, SlowSend::ThenClose));
}

/// How [`send_to_a_slow_reader`] sends.
#[derive(Clone, Copy, PartialEq)]
enum SlowSend {
    /// `WebSocket::send_binary`.
    Owner,
    /// A `Sender`'s, while the `WebSocket` is read.
    Sender,
    /// `WebSocket::queue`, then `close()`: the close frame goes out behind the message.
    ThenClose,
}

/// 8 MiB to a peer that reads them slowly and sends nothing, with a short keepalive and
/// close timeout: the send (and the close behind it) must end well, not by the keepalive
/// dropping the peer or the close timing out. It takes about two seconds (8 KiB read at a
/// time with a 2 ms pause), in which nothing is read from the peer: the peer taking the
/// bytes is its sign of life.
async fn send_to_a_slow_reader(runtime: Runtime, how: SlowSend) {
    let config = Config::server()
        .keepalive_interval(Duration::from_millis(500))
        .keepalive_grace_period(Duration::from_millis(500))
        .close_timeout(Duration::from_millis(500));
    let mut server = small_send_buffer_server(runtime, ServerConfig::default().connection(config));
    let size = 8 << 20;
    // The message goes in frames of 16 KiB, each with a 4-byte header (and keepalive pings
    // may come between them).
    let on_the_wire = size
        + size / (16 * 1024) * 4
        + if how == SlowSend::ThenClose {
            // The close frame: code 1000 and its default description.
            4 + "Normal connection closure".len()
        } else {
            0
        };
    let addr = server.local_addr();
    let client = std::thread::spawn(move || {
        let mut raw = small_buffer_client(addr);
        let mut chunk = [0u8; 8 * 1024];
        let mut received = 0;
        while received < on_the_wire {
            match raw.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        received
    });
    let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
    let started = std::time::Instant::now();
    if how == SlowSend::Sender {
        let sender = ws.sender();
        let reading = Box::pin(async move { while ws.next().await.is_some() {} });
        let sending = Box::pin(async move {
            sender.send_binary(vec![0u8; size]).await.unwrap();
            sender.flush().await.unwrap();
        });
        if let futures_util::future::Either::Right(_) =
            futures_util::future::select(sending, reading).await
        {
            panic!("the connection ended first");
        }
    } else if how == SlowSend::ThenClose {
        ws.queue(Message::binary(vec![0u8; size])).unwrap();
        ws.close(CloseCode::NORMAL, None).await.unwrap();
    } else {
        ws.send_binary(vec![0u8; size]).await.unwrap();
    }
    assert!(started.elapsed() > Duration::from_secs(1));
    assert!(client.join().unwrap() >= on_the_wire);
}

#[test]
fn a_sender_flush_waits_for_what_was_sent_before_it_not_for_later_sends() {
    // Through `Sender::flush` and through a `Sender`'s `Sink` flush, the connection read by
    // its own task.
    on_both_runtimes(|runtime| flush_behind_busy_senders(runtime, false));
}

#[test]
fn the_owners_flush_waits_for_what_was_queued_before_it_not_for_later_sends() {
    // Through `WebSocket::send` and the `WebSocket`'s `Sink` flush, which also apply and
    // write what the senders queue.
    on_both_runtimes(|runtime| flush_behind_busy_senders(runtime, true));
}

/// Another thread keeps at least 256 KiB waiting to be sent to a client that reads slowly,
/// so the connection's buffer does not empty while the flushes wait. A flush must still end
/// once the messages sent before it are written (a flush that waited for an empty buffer
/// would not): two markers, sent and flushed by `Sender`s, or by the `WebSocket` itself
/// (`by_owner`).
async fn flush_behind_busy_senders(runtime: Runtime, by_owner: bool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let mut server = small_send_buffer_server(runtime, ServerConfig::default());
    let markers = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let client = slow_reader(server.local_addr(), markers.clone(), stop.clone());
    let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
    let sender = ws.sender();
    let flushing = Arc::new(AtomicBool::new(false));
    let stop_busy = Arc::new(AtomicBool::new(false));
    let busy = {
        let sender = sender.clone();
        let (stop, flushing) = (stop_busy.clone(), flushing.clone());
        std::thread::spawn(move || {
            let chunk = bytes::Bytes::from(vec![1u8; 8 * 1024]);
            // The least waiting while the flushes waited.
            let mut lowest = usize::MAX;
            while !stop.load(Ordering::SeqCst) {
                let waiting = sender.buffered_amount();
                if flushing.load(Ordering::SeqCst) {
                    lowest = lowest.min(waiting);
                }
                if waiting < 512 * 1024 {
                    sender.try_send(Message::binary(chunk.clone())).unwrap();
                } else {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            lowest
        })
    };
    // Until the kernel's buffers are full: the connection's own holds 256 KiB or more for
    // 200 ms in a row (while something reads the connection, which writes what senders
    // queue).
    let backed_up = async {
        let mut full_for = 0;
        while full_for < 20 {
            sleep(runtime, Duration::from_millis(10)).await;
            full_for = if sender.buffered_amount() >= 256 * 1024 {
                full_for + 1
            } else {
                0
            };
        }
    };
    // The `WebSocket`, if it stays with this task.
    let mut owner = if by_owner {
        let reading = async { while ws.next().await.is_some() {} };
        futures_util::future::select(Box::pin(reading), Box::pin(backed_up)).await;
        Some(ws)
    } else {
        let (mut reader, _) = ws.split();
        spawn(
            runtime,
            async move { while reader.next().await.is_some() {} },
        );
        backed_up.await;
        None
    };
    flushing.store(true, Ordering::SeqCst);
    let flushes = async {
        if let Some(ws) = &mut owner {
            SinkExt::send(ws, Message::text("marker")).await.unwrap();
            ws.send_text("marker").await.unwrap();
        } else {
            let mut sink = sender.clone();
            SinkExt::send(&mut sink, Message::text("marker"))
                .await
                .unwrap();
            sender.send_text("marker").await.unwrap();
            sender.flush().await.unwrap();
        }
    };
    let deadline = sleep(runtime, Duration::from_secs(20));
    let flushed = matches!(
        futures_util::future::select(Box::pin(flushes), Box::pin(deadline)).await,
        futures_util::future::Either::Left(_)
    );
    flushing.store(false, Ordering::SeqCst);
    stop_busy.store(true, Ordering::SeqCst);
    let lowest = busy.join().unwrap();
    // Both markers were written when the flushes ended: the client reads them soon.
    for _ in 0..1000 {
        if markers.load(Ordering::SeqCst) == 2 {
            break;
        }
        sleep(runtime, Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    assert!(
        flushed,
        "a flush on {runtime} waited for messages sent after it \
         ({lowest} bytes were waiting at the least)"
    );
    // The buffer did not empty meanwhile, so the flushes did not end by waiting for that.
    assert!(
        lowest > 0,
        "the send buffer emptied during the flushes on {runtime}: the test shows nothing"
    );
    assert_eq!(markers.load(Ordering::SeqCst), 2);
}

#[test]
fn a_stream_and_sink_split_across_tasks_both_go_on_after_waiting_on_a_full_socket() {
    // With `StreamExt::split`, the writing task's flush and the reading task's own write (the
    // pong to a ping) both wait on one full socket, and tokio keeps one write wake-up per
    // socket, for whichever task asked last. Once the peer reads, both must go on: the
    // writes all arrive, then the pong.
    const MESSAGES: usize = 4;
    const SIZE: usize = 256 * 1024;
    on_both_runtimes(|runtime| async move {
        let mut server = small_send_buffer_server(runtime, ServerConfig::default());
        let addr = server.local_addr();
        let (ping_now, may_ping) = std::sync::mpsc::channel::<()>();
        let (read_now, may_read) = std::sync::mpsc::channel::<()>();
        let peer = blocking::unblock(move || {
            let mut raw = small_buffer_client(addr);
            may_ping.recv().unwrap();
            let mut ping = bytes::BytesMut::new();
            Frame::new(OpCode::Ping, &b"still there?"[..])
                .with_mask(Some([1, 2, 3, 4]))
                .encode(&mut ping);
            raw.write_all(&ping).unwrap();
            may_read.recv().unwrap();
            let mut decoder = wsflow::codec::FrameDecoder::new(wsflow::Role::Client);
            let mut wire = bytes::BytesMut::new();
            let mut chunk = [0u8; 64 * 1024];
            let mut data = 0;
            let mut pong_after = None;
            // The pong may come between the messages' frames.
            while pong_after.is_none() || data < MESSAGES * SIZE {
                match raw.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => wire.extend_from_slice(&chunk[..n]),
                }
                while let Some(frame) = decoder.decode(&mut wire).unwrap() {
                    match frame.opcode {
                        OpCode::Binary | OpCode::Continuation => data += frame.payload.len(),
                        OpCode::Pong => {
                            assert_eq!(&frame.payload[..], b"still there?");
                            pong_after = Some(data);
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            (data, pong_after)
        });
        let ws = server.next().await.unwrap().accept(None).await.unwrap();
        let (mut sink, mut stream) = StreamExt::split(ws);
        spawn(
            runtime,
            async move { while stream.next().await.is_some() {} },
        );
        // The writing task on its own: woken by nothing but the connection.
        let (written, writes) = futures_channel::oneshot::channel();
        spawn(runtime, async move {
            for i in 0..MESSAGES {
                sink.send(Message::binary(vec![i as u8; SIZE]))
                    .await
                    .unwrap();
            }
            let _ = written.send(());
        });
        let peer_steps = async {
            // The writes fill the socket and wait; then the ping comes, and its pong waits.
            sleep(runtime, Duration::from_millis(200)).await;
            ping_now.send(()).unwrap();
            sleep(runtime, Duration::from_millis(200)).await;
            read_now.send(()).unwrap();
            peer.await
        };
        let both = futures_util::future::join(writes, peer_steps);
        let deadline = sleep(runtime, Duration::from_secs(20));
        match futures_util::future::select(Box::pin(both), Box::pin(deadline)).await {
            futures_util::future::Either::Left(((Ok(()), (data, pong_after)), _)) => {
                assert_eq!(data, MESSAGES * SIZE);
                assert!(pong_after.is_some(), "no pong on {runtime}");
            }
            futures_util::future::Either::Left(((Err(_), _), _)) => panic!("the writes failed"),
            futures_util::future::Either::Right(_) => {
                panic!("the writing task or the reading task was not woken on {runtime}")
            }
        }
    });
}

#[test]
fn close_codes_and_reasons_reach_the_other_side() {
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/", server.local_addr());
        let (tx, rx) = futures_channel::oneshot::channel();
        spawn(runtime, async move {
            let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
            let mut events = Vec::new();
            while let Some(event) = ws.next_event().await {
                events.push(event);
            }
            let _ = tx.send(events);
        });
        let mut ws = client(runtime).connect(&url).await.unwrap();
        ws.ping(&b"ping!"[..]).await.unwrap();
        assert!(matches!(ws.next_event().await, Some(Event::Pong(p)) if &p[..] == b"ping!"));
        ws.close(CloseCode::from(4321), Some("done here"))
            .await
            .unwrap();
        let close = ws.closed().await;
        assert_eq!(close.code.as_u16(), 4321);
        assert!(close.was_clean);
        let events = rx.await.unwrap();
        assert!(matches!(&events[0], Event::Ping(p) if &p[..] == b"ping!"));
        let Some(Event::Closed(server_close)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(server_close.code.as_u16(), 4321);
        assert_eq!(server_close.description, "done here");
        assert_eq!(server_close.initiator, CloseInitiator::Peer);
        assert!(server_close.was_clean);
    });
}

// Timeouts set to `Duration::MAX` mean "never" on both ends: connecting, the close handshake
// and the server's shutdown still work (each deadline panicked on overflow before).
#[test]
fn timeouts_set_to_duration_max_mean_never() {
    on_both_runtimes(|runtime| async move {
        let never = Config::server()
            .keepalive_interval(Duration::MAX)
            .keepalive_grace_period(Duration::MAX)
            .close_timeout(Duration::MAX);
        let config = ServerConfig::default()
            .handshake_timeout(Duration::MAX)
            .connection(never);
        let mut server = echo_server(runtime, config).await;
        let url = format!("ws://{}/", server.local_addr());
        let client = Client::new(
            client_config(runtime)
                .handshake_timeout(Duration::MAX)
                .connection(Config::client().close_timeout(Duration::MAX)),
        );
        let (mut ws, accepted) = connect_and_accept(&mut server, &client, &url).await;
        read_until_closed(runtime, accepted);
        ws.send_text("still here").await.unwrap();
        ws.close(CloseCode::NORMAL, None).await.unwrap();
        let close = ws.closed().await;
        assert!(close.was_clean, "{close:?}");
        server.shut_down().await;
        assert_eq!(server.connection_count(), 0);
    });
}

// `close_all_connections` closes the live connections and refuses the requests pending then
// with 503, and serves later ones (WebSocket-Node's `closeAllConnections`; every later request
// was refused too before).
#[test]
fn close_all_connections_refuses_only_the_requests_pending_then() {
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(runtime, ServerConfig::default()).await;
        // WebSocket-Node's `config` property.
        assert_eq!(server.config().get_runtime(), runtime);
        assert_eq!(
            server.config().get_handshake_timeout(),
            Duration::from_secs(10)
        );
        let url = format!("ws://{}/", server.local_addr());
        let (mut live, accepted) = connect_and_accept(&mut server, &client(runtime), &url).await;
        read_until_closed(runtime, accepted);
        // A request handed out and not answered yet.
        let (connected_tx, connected_rx) = futures_channel::oneshot::channel();
        let pending_url = url.clone();
        spawn(runtime, async move {
            let _ = connected_tx.send(client(runtime).connect(&pending_url).await);
        });
        let pending = server.next().await.unwrap();
        server.close_all_connections(CloseCode::GOING_AWAY).unwrap();
        assert!(matches!(
            pending.accept(None).await,
            Err(Error::ShuttingDown)
        ));
        let refused = connected_rx.await.unwrap().unwrap_err();
        assert!(
            matches!(&refused, Error::Handshake(e)
                if matches!(**e, HandshakeError::UnexpectedStatus { status: 503, .. })),
            "{refused:?}"
        );
        assert_eq!(live.closed().await.code, CloseCode::GOING_AWAY);
        // A request that comes later is served.
        let (mut later, accepted) = connect_and_accept(&mut server, &client(runtime), &url).await;
        read_until_closed(runtime, accepted);
        later.close(CloseCode::NORMAL, None).await.unwrap();
        assert!(later.closed().await.was_clean);
    });
}

// A connection whose 101 is still being written when all connections are closed is closed
// too, once registered (it was missed and outlived the shutdown before stop 34).
#[test]
fn a_connection_accepted_while_all_are_closed_is_closed_too() {
    on_both_runtimes(|runtime| async move {
        let config = ServerConfig::default()
            .connection(Config::server().close_timeout(Duration::from_millis(200)));
        let mut server = echo_server(runtime, config).await;
        let addr = server.local_addr();
        // A client that sends its request, reads the first bytes of the answer and says so,
        // then reads nothing more until told to.
        let (answering_tx, answering_rx) = futures_channel::oneshot::channel::<()>();
        let (read_tx, read_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let mut raw = raw_client(addr);
            raw.write_all(UPGRADE.as_bytes()).unwrap();
            let mut wire = vec![0u8; b"HTTP/1.1 101".len()];
            raw.read_exact(&mut wire).unwrap();
            assert_eq!(wire, b"HTTP/1.1 101");
            answering_tx.send(()).unwrap();
            read_rx.recv().unwrap();
            wire.extend(read_to_end(&mut raw));
            wire
        });
        let request = server.next().await.unwrap();
        // A 101 far larger than the socket buffers: its write waits for the client.
        let big = "x".repeat(32 << 20);
        let (accepted_tx, accepted_rx) = futures_channel::oneshot::channel();
        spawn(runtime, async move {
            let accepting =
                request.accept_with(wsflow::handshake::AcceptOptions::new().header("X-Big", &big));
            let mut ws = accepting.await.unwrap();
            // Read until the close goes out and the connection ends.
            let close = ws.closed().await;
            let _ = accepted_tx.send(close);
        });
        // The 101 is being written (the rest of it waits for the client) when all
        // connections are closed.
        answering_rx.await.unwrap();
        server.close_all_connections(CloseCode::from(4000)).unwrap();
        read_tx.send(()).unwrap();
        // The raw client never answers the close: it ends by the close timeout.
        let close = accepted_rx.await.unwrap();
        assert_eq!(close.initiator, CloseInitiator::Local, "{close:?}");
        let wire = blocking::unblock(move || peer.join().unwrap()).await;
        // After the head, the server's close frame with the code.
        let head_end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(&wire[head_end..head_end + 4], &[0x88, 0x02, 0x0f, 0xa0]);
    });
}

// Shutdown is bounded by the close timeout plus a second, however slow the pending
// handshakes are (it waited for each to finish or time out before stop 34).
#[test]
fn shutdown_does_not_wait_for_a_silent_handshake() {
    on_both_runtimes(|runtime| async move {
        let config = ServerConfig::default()
            .handshake_timeout(Duration::from_secs(600))
            .connection(Config::server().close_timeout(Duration::from_millis(200)));
        let mut server = echo_server(runtime, config).await;
        let addr = server.local_addr();
        let silent = std::thread::spawn(move || {
            let mut raw = raw_client(addr);
            raw.write_all(&UPGRADE.as_bytes()[..20]).unwrap();
            read_until_eof(&mut raw)
        });
        serve_until(&mut server, runtime, |s| s.pending_requests() == 1).await;
        let finished = {
            let shutting_down = futures_util::future::select(
                Box::pin(server.shut_down()),
                // Far more than the 1.2 s it may take, far less than the 20 s after which
                // the silent client's read times out (failing the test).
                Box::pin(sleep(runtime, Duration::from_secs(10))),
            )
            .await;
            matches!(shutting_down, futures_util::future::Either::Left(_))
        };
        assert!(finished, "shut_down waited for the silent handshake");
        assert_eq!(server.pending_requests(), 0);
        // Its socket was closed without an answer.
        let (answer, waited) = blocking::unblock(move || silent.join().unwrap()).await;
        assert!(
            answer.is_empty(),
            "{} (closed after {waited:?})",
            String::from_utf8_lossy(&answer)
        );
    });
}

// Empty messages count against the high-water mark (with their smallest header), so a
// sender cannot queue them without bound for a connection nothing polls.
#[test]
fn empty_messages_count_against_the_high_water_mark() {
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/", server.local_addr());
        let (_ws, accepted) = connect_and_accept(&mut server, &client(runtime), &url).await;
        let sender = accepted.sender();
        let mut queued = 0usize;
        let refused = loop {
            match sender.try_send(Message::binary(Vec::new())) {
                Ok(()) => queued += 1,
                Err(err) => break err,
            }
            assert!(
                queued <= 1 << 20,
                "{queued} empty messages queued, none refused"
            );
        };
        assert!(matches!(refused, Error::BufferFull { .. }), "{refused:?}");
        assert_eq!(queued, (1 << 20) / 2 + 1);
    });
}

#[test]
fn shutdown_closes_connections_with_1001_and_answers_new_requests_503() {
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(runtime, ServerConfig::default()).await;
        let addr = server.local_addr();
        let url = format!("ws://{addr}/");
        let (mut ws, accepted) = connect_and_accept(&mut server, &client(runtime), &url).await;
        read_until_closed(runtime, accepted);
        while server.connection_count() < 1 {
            sleep(runtime, Duration::from_millis(5)).await;
        }
        // A handshake in flight when shutdown starts is answered 503: its request is
        // finished only once shutdown has begun.
        let (finish_request, request_may_finish) = std::sync::mpsc::channel::<()>();
        let late = std::thread::spawn(move || {
            let mut raw = raw_client(addr);
            let (start, rest) = UPGRADE.split_at(20);
            raw.write_all(start.as_bytes()).unwrap();
            request_may_finish.recv().unwrap();
            raw.write_all(rest.as_bytes()).unwrap();
            read_head(&mut raw)
        });
        // Let the server accept that socket and start reading its request.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while server.pending_requests() < 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the request never arrived"
            );
            let accepting = futures_util::future::select(
                server.next(),
                Box::pin(sleep(runtime, Duration::from_millis(5))),
            )
            .await;
            assert!(matches!(accepting, futures_util::future::Either::Right(_)));
        }
        assert_eq!(server.pending_requests(), 1);
        let shutting = async {
            let shutting_down = server.shut_down();
            finish_request.send(()).unwrap();
            shutting_down.await;
            server.connection_count()
        };
        let reading = async {
            let mut events = Vec::new();
            while let Some(event) = ws.next_event().await {
                events.push(event);
            }
            events
        };
        let (remaining, events) = futures_util::future::join(shutting, reading).await;
        assert_eq!(remaining, 0);
        let Some(Event::Closed(close)) = events.last() else {
            panic!("{events:?}")
        };
        assert_eq!(close.code, CloseCode::GOING_AWAY);
        assert!(close.was_clean);
        let head = blocking::unblock(move || late.join().unwrap()).await;
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    });
}

// With a limit per address, one client holding sockets open without finishing its requests
// gets its further sockets closed at once, and its slots back as its handshakes end.
#[test]
fn pending_handshakes_per_ip_are_limited() {
    on_both_runtimes(|runtime| async move {
        let config = ServerConfig::default().max_pending_handshakes_per_ip(2);
        assert_eq!(config.get_max_pending_handshakes_per_ip(), Some(2));
        let mut server = echo_server(runtime, config).await;
        let addr = server.local_addr();
        let url = format!("ws://{addr}/");
        let mut silent: Vec<_> = (0..2)
            .map(|_| {
                let mut raw = raw_client(addr);
                raw.write_all(b"GET / HTTP/1.1\r\n").unwrap();
                raw
            })
            .collect();
        serve_until(&mut server, runtime, |s| s.pending_requests() == 2).await;
        // A third socket from the same address is closed without an answer.
        let mut third = raw_client(addr);
        third.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let refused = std::thread::spawn(move || read_to_end(&mut third));
        serve_until(&mut server, runtime, |_| refused.is_finished()).await;
        assert!(refused.join().unwrap().is_empty());
        assert_eq!(server.pending_requests(), 2);
        // One silent client leaves: its slot is free again, and a real client connects.
        drop(silent.pop());
        serve_until(&mut server, runtime, |s| s.pending_requests() == 1).await;
        let (mut ws, accepted) = connect_and_accept(&mut server, &client(runtime), &url).await;
        read_until_closed(runtime, accepted);
        ws.close(CloseCode::NORMAL, None).await.unwrap();
        assert!(ws.closed().await.was_clean);
    });
}

#[test]
fn slow_handshakes_are_dropped_without_affecting_others() {
    on_both_runtimes(|runtime| async move {
        let server = echo_server(
            runtime,
            ServerConfig::default().handshake_timeout(Duration::from_secs(1)),
        )
        .await;
        let addr = server.local_addr();
        serve_echo(runtime, server);
        // Slowloris: one byte every 50 ms, never finishing the head (it would take 3 s to
        // write these 60 bytes).
        let slow = blocking::unblock(move || {
            let mut raw = raw_client(addr);
            let started = std::time::Instant::now();
            for byte in UPGRADE.as_bytes().iter().take(60) {
                if raw.write_all(&[*byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let answer = read_to_end(&mut raw);
            (
                started.elapsed(),
                String::from_utf8_lossy(&answer).into_owned(),
            )
        });
        // Meanwhile a normal client is served.
        let mut ws = client(runtime)
            .connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        ws.send_text("fast").await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("fast"));
        let (elapsed, answer) = slow.await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    });
}

#[test]
fn garbage_instead_of_http_is_answered_400() {
    on_both_runtimes(|runtime| async move {
        let server = echo_server(runtime, ServerConfig::default()).await;
        let addr = server.local_addr();
        serve_echo(runtime, server);
        let answer = blocking::unblock(move || {
            let mut raw = raw_client(addr);
            raw.write_all(b"\x16\x03\x01\x02\x00garbage that is not HTTP\r\n\r\n")
                .unwrap();
            String::from_utf8_lossy(&read_to_end(&mut raw)).into_owned()
        })
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    });
}

#[test]
fn frames_sent_right_after_the_101_are_not_lost() {
    on_both_runtimes(|runtime| async move {
        // A hand-written server that sends its 101 and a text frame in one write.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") {
                socket.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .trim()
                .to_owned();
            let mut answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                wsflow::handshake::accept_key(&key)
            )
            .into_bytes();
            answer.extend_from_slice(&[0x81, 0x05]);
            answer.extend_from_slice(b"early");
            socket.write_all(&answer).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        });
        let mut ws = client(runtime)
            .connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("early"));
        blocking::unblock(move || server.join().unwrap()).await;
    });
}

/// A hand-written server that answers each of `answers` connections with a 101 carrying a
/// 20 KiB cookie, the way some servers do.
fn server_with_a_large_cookie(
    answers: usize,
) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..answers {
            let (mut socket, _) = listener.accept().unwrap();
            let head = read_head(&mut socket);
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .trim()
                .to_owned();
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Set-Cookie: session={}\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                "c".repeat(20 * 1024),
                wsflow::handshake::accept_key(&key)
            );
            // The client may hang up before taking it all.
            let _ = socket.write_all(answer.as_bytes());
            let _ = read_to_end(&mut socket);
        }
    });
    (addr, server)
}

#[test]
fn the_client_s_response_head_limit_is_configurable() {
    on_both_runtimes(|runtime| async move {
        let (addr, server) = server_with_a_large_cookie(2);
        let url = format!("ws://{addr}/");
        let err = client(runtime).connect(&url).await.unwrap_err();
        assert!(
            matches!(&err, Error::Handshake(e)
                if matches!(**e, HandshakeError::ResponseHeadTooLarge { limit: 16384 })),
            "{err:?}"
        );
        let roomy = Client::new(client_config(runtime).max_response_head_size(64 * 1024));
        let ws = roomy.connect(&url).await.unwrap();
        drop(ws);
        blocking::unblock(move || server.join().unwrap()).await;
    });
}

#[test]
fn try_recv_hands_out_the_rest_of_a_burst_and_stops_before_anything_else() {
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(runtime, ServerConfig::default()).await;
        let addr = server.local_addr();
        // A raw client writes four binary messages, a ping and two text messages in one
        // write, then reads the pong and the server's close and answers it.
        let (written_tx, written_rx) = std::sync::mpsc::channel();
        let peer = std::thread::spawn(move || {
            let mut stream = raw_client(addr);
            stream.write_all(UPGRADE.as_bytes()).unwrap();
            assert!(read_head(&mut stream).starts_with("HTTP/1.1 101"));
            let mut burst = bytes::BytesMut::new();
            let masked = |frame: Frame, wire: &mut bytes::BytesMut| {
                frame.with_mask(Some([7, 1, 9, 3])).encode(wire);
            };
            for payload in ["one", "two", "three", "four"] {
                masked(Frame::new(OpCode::Binary, payload), &mut burst);
            }
            masked(Frame::new(OpCode::Ping, "p"), &mut burst);
            for payload in ["five", "six"] {
                masked(Frame::new(OpCode::Text, payload), &mut burst);
            }
            stream.write_all(&burst).unwrap();
            // On loopback the bytes are in the server's receive queue once written.
            written_tx.send(()).unwrap();
            let mut pong_and_close = [0u8; 5];
            stream.read_exact(&mut pong_and_close).unwrap();
            assert_eq!(pong_and_close[..4], [0x8a, 1, b'p', 0x88]);
            let mut close_payload = vec![0; usize::from(pong_and_close[4])];
            stream.read_exact(&mut close_payload).unwrap();
            assert_eq!(close_payload[..2], [0x03, 0xe8]);
            let mut close = bytes::BytesMut::new();
            masked(Frame::close(CloseCode::NORMAL, "").unwrap(), &mut close);
            stream.write_all(&close).unwrap();
            read_to_end(&mut stream)
        });
        let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
        // Nothing read yet, and `try_recv` does not read.
        assert_eq!(ws.try_recv(), None);
        blocking::unblock(move || written_rx.recv().unwrap()).await;
        assert_eq!(ws.try_recv(), None);
        // (message, whether `try_recv` handed it out)
        let mut received = Vec::new();
        while received.len() < 6 {
            received.push((ws.recv().await.unwrap().unwrap(), false));
            while let Some(message) = ws.try_recv() {
                received.push((message, true));
            }
        }
        let expected = [
            (Message::binary("one"), false),
            (Message::binary("two"), true),
            (Message::binary("three"), true),
            (Message::binary("four"), true),
            // The ping comes first: `recv` answers it, then reads on.
            (Message::text("five"), false),
            (Message::text("six"), true),
        ];
        assert_eq!(received, expected);
        ws.close(CloseCode::NORMAL, None).await.unwrap();
        assert_eq!(ws.try_recv(), None);
        assert!(ws.closed().await.was_clean);
        assert!(ws.recv().await.is_none());
        assert_eq!(ws.try_recv(), None);
        assert!(
            blocking::unblock(move || peer.join().unwrap())
                .await
                .is_empty()
        );
    });
}

#[test]
fn remote_address_honours_x_forwarded_for_unless_ignored() {
    on_both_runtimes(|runtime| async move {
        for ignore in [false, true] {
            let mut server = echo_server(
                runtime,
                ServerConfig::default().ignore_x_forwarded_for(ignore),
            )
            .await;
            let addr = server.local_addr();
            let url = format!("ws://{addr}/");
            let client = Client::new(
                client_config(runtime).header("X-Forwarded-For", "203.0.113.7, 10.0.0.1"),
            );
            let (_ws, accepted) = connect_and_accept(&mut server, &client, &url).await;
            if ignore {
                assert_eq!(accepted.remote_address(), Some("127.0.0.1"));
                assert_eq!(accepted.remote_addresses(), ["127.0.0.1"]);
            } else {
                assert_eq!(accepted.remote_address(), Some("203.0.113.7"));
                assert_eq!(
                    accepted.remote_addresses(),
                    ["203.0.113.7", "10.0.0.1", "127.0.0.1"]
                );
            }
            assert_eq!(accepted.peer_addr().unwrap().ip().to_string(), "127.0.0.1");
        }
    });
}

#[test]
fn a_long_x_forwarded_for_chain_keeps_its_first_and_last_entries() {
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/", server.local_addr());
        // 1,400 entries in 14 KB (the head's limit is 16 KiB): as many strings for as long
        // as the connection lives, if all were kept.
        let chain: Vec<String> = (0..1400)
            .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
            .collect();
        let client = Client::new(client_config(runtime).header("X-Forwarded-For", chain.join(",")));
        let (_ws, accepted) = connect_and_accept(&mut server, &client, &url).await;
        let kept = accepted.remote_addresses();
        assert_eq!(kept.len(), wsflow::MAX_FORWARDED + 1);
        assert_eq!(kept[0], chain[0]);
        assert_eq!(
            kept[1..wsflow::MAX_FORWARDED],
            chain[chain.len() - (wsflow::MAX_FORWARDED - 1)..]
        );
        assert_eq!(kept[wsflow::MAX_FORWARDED], "127.0.0.1");
        assert_eq!(accepted.remote_address(), Some("10.0.0.0"));
    });
}

#[test]
fn a_connection_idle_past_its_keepalive_reads_again_after_giving_its_buffer_back() {
    // An idle connection holds no read buffer: none before its first message, and it gives
    // its buffer back when a keepalive interval passes without input. It then waits for the
    // socket to be readable and allocates a buffer again; nothing is lost on the way.
    on_both_runtimes(|runtime| async move {
        let server = echo_server(
            runtime,
            ServerConfig::default()
                .connection(Config::server().keepalive_interval(Duration::from_millis(100))),
        )
        .await;
        let url = format!("ws://{}/", server.local_addr());
        serve_echo(runtime, server);
        let mut ws = client(runtime).connect(&url).await.unwrap();
        sleep(runtime, Duration::from_millis(50)).await;
        let big = "é".repeat(50_000);
        for round in 0..3 {
            ws.send_text(format!("round {round}")).await.unwrap();
            ws.send_text(big.clone()).await.unwrap();
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                Message::text(format!("round {round}"))
            );
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                Message::text(big.clone())
            );
            // Past the keepalive: the server pings (answered by the client as it reads) and
            // releases its read buffer, in the same step. The ping is seen here (each pong the
            // client answers with starts the server's wait over, so pings keep coming while
            // the client reads), and nothing else comes meanwhile.
            // Matched as it comes, so that the future borrowing `ws` ends with the match.
            match futures_util::future::select(
                Box::pin(ws.next_event()),
                Box::pin(sleep(runtime, Duration::from_secs(10))),
            )
            .await
            {
                futures_util::future::Either::Left((Some(Event::Ping(payload)), _)) => {
                    assert!(payload.is_empty(), "a keepalive ping carries no payload");
                }
                futures_util::future::Either::Left((other, _)) => {
                    panic!("a keepalive ping was expected while idle, got {other:?}")
                }
                futures_util::future::Either::Right(_) => {
                    panic!("no keepalive ping within 10 s of an idle interval of 100 ms")
                }
            }
            let idle = async {
                sleep(runtime, Duration::from_millis(250)).await;
            };
            let reading = async { ws.next().await };
            if let futures_util::future::Either::Right(_) =
                futures_util::future::select(Box::pin(idle), Box::pin(reading)).await
            {
                panic!("no message was expected while idle");
            }
        }
        ws.close(CloseCode::NORMAL, None).await.unwrap();
        assert!(ws.closed().await.was_clean);
    });
}

#[test]
fn keepalive_drops_a_peer_that_went_silent() {
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(
            runtime,
            ServerConfig::default().connection(
                Config::server()
                    .keepalive_interval(Duration::from_millis(200))
                    .keepalive_grace_period(Duration::from_millis(200)),
            ),
        )
        .await;
        let addr = server.local_addr();
        // Before the peer connects: the server's connection, and so its keepalive wait,
        // cannot start earlier than this.
        let before_connect = std::time::Instant::now();
        // Completes the handshake, then never reads or answers again (but keeps the socket
        // until the server has given up on it).
        let (server_gave_up, socket_may_go) = std::sync::mpsc::channel::<()>();
        let silent = std::thread::spawn(move || {
            let mut raw = raw_client(addr);
            raw.write_all(UPGRADE.as_bytes()).unwrap();
            let _ = socket_may_go.recv_timeout(Duration::from_secs(30));
            drop(raw);
        });
        let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
        let started = std::time::Instant::now();
        let close = ws.closed().await;
        server_gave_up.send(()).unwrap();
        assert_eq!(close.code, CloseCode::ABNORMAL);
        assert_eq!(close.description, "Peer not responding.");
        // About 0.4 s (interval and grace period); the bound leaves room for a slow machine.
        assert!(started.elapsed() < Duration::from_secs(10));
        // Never earlier: the ping goes out a whole interval after the connection's start at
        // the soonest, and the drop a whole grace period after the ping (the margin only
        // absorbs rounding; a drop at the interval alone, without the grace, fails here).
        let dropped_after = before_connect.elapsed();
        assert!(
            dropped_after >= Duration::from_millis(380),
            "dropped {dropped_after:?} after connecting: before the interval and the grace period"
        );
        blocking::unblock(move || silent.join().unwrap()).await;
    });
}

#[test]
fn close_frees_the_socket_after_the_timeout_when_the_peer_never_answers() {
    on_both_runtimes(|runtime| async move {
        let mut server = echo_server(
            runtime,
            ServerConfig::default()
                .connection(Config::server().close_timeout(Duration::from_millis(300))),
        )
        .await;
        let addr = server.local_addr();
        let silent = std::thread::spawn(move || {
            let mut raw = raw_client(addr);
            raw.write_all(UPGRADE.as_bytes()).unwrap();
            let _ = read_head(&mut raw);
            // Reads the close frame, never answers; sees end of file once the server gives up.
            let rest = read_to_end(&mut raw);
            assert_eq!(&rest[..2], &[0x88, 0x02]);
        });
        let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
        ws.close(CloseCode::GOING_AWAY, Some("")).await.unwrap();
        let close = ws.closed().await;
        assert_eq!(close.code, CloseCode::ABNORMAL);
        assert!(!close.was_clean);
        blocking::unblock(move || silent.join().unwrap()).await;
    });
}

#[test]
fn many_concurrent_connections() {
    on_both_runtimes(|runtime| async move {
        let server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/", server.local_addr());
        serve_echo(runtime, server);
        let tasks = (0..200).map(|i| {
            let url = url.clone();
            async move {
                let mut ws = client(runtime).connect(&url).await.unwrap();
                for j in 0..10 {
                    ws.queue(format!("{i}-{j}")).unwrap();
                }
                ws.flush().await.unwrap();
                for j in 0..10 {
                    assert_eq!(
                        ws.next().await.unwrap().unwrap(),
                        Message::text(format!("{i}-{j}"))
                    );
                }
                ws.close(CloseCode::NORMAL, None).await.unwrap();
                assert!(ws.closed().await.was_clean);
            }
        });
        futures_util::future::join_all(tasks).await;
    });
}

#[test]
fn echoes_held_back_by_a_client_that_stops_reading_all_arrive_once_it_reads() {
    on_both_runtimes(|runtime| async move {
        let server = echo_server(runtime, ServerConfig::default()).await;
        let url = format!("ws://{}/", server.local_addr());
        serve_echo(runtime, server);
        let mut ws = client(runtime).connect(&url).await.unwrap();
        // 16 MiB of echoes, more than loopback's socket buffers hold: the server's writes find
        // its socket full and must wait to be woken when the client reads again.
        let count = 4096u32;
        let message = |i: u32| {
            let mut payload = vec![(i % 251) as u8; 4096];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            Message::binary(payload)
        };
        for i in 0..count {
            ws.queue(message(i)).unwrap();
            if i % 64 == 63 {
                ws.flush().await.unwrap();
            }
        }
        ws.flush().await.unwrap();
        sleep(runtime, Duration::from_millis(200)).await;
        let read_all = async {
            for i in 0..count {
                assert_eq!(ws.next().await.unwrap().unwrap(), message(i), "echo {i}");
            }
        };
        let timeout = sleep(runtime, Duration::from_secs(30));
        match futures_util::future::select(Box::pin(read_all), Box::pin(timeout)).await {
            futures_util::future::Either::Left(_) => {}
            futures_util::future::Either::Right(_) => panic!("the echoes stopped coming"),
        }
        ws.close(CloseCode::NORMAL, None).await.unwrap();
        assert!(ws.closed().await.was_clean);
    });
}

#[test]
fn oversized_messages_close_with_1009() {
    on_both_runtimes(|runtime| async move {
        let server = echo_server(
            runtime,
            ServerConfig::default().max_received_message_size(1000),
        )
        .await;
        let url = format!("ws://{}/", server.local_addr());
        serve_echo(runtime, server);
        let mut ws = client(runtime).connect(&url).await.unwrap();
        ws.send_binary(vec![0u8; 2000]).await.unwrap();
        let close = ws.closed().await;
        assert_eq!(close.code, CloseCode::MESSAGE_TOO_BIG);
        assert_eq!(close.initiator, CloseInitiator::Peer);
    });
}
