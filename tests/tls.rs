//! `wss://` end to end on both runtimes: our client and our server over rustls with a
//! certificate authority generated in the test (`rcgen`), an untrusted certificate refused
//! with a clear error, and a server that keeps serving after peers that fail TLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;

use futures_util::StreamExt;
use support::*;
use wsflow::{
    Client, ClientConfig, CloseCode, Error, Message, Runtime, Server, ServerConfig, TlsClientConfig,
};

async fn wss_echo_server(runtime: Runtime, certs: &TestCerts) -> String {
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::default()
            .runtime(runtime)
            .tls(certs.server_tls())
            .max_received_message_size(4 << 20),
    )
    .await
    .unwrap();
    let url = format!("wss://127.0.0.1:{}/secure", server.local_addr().port());
    serve_echo(runtime, server);
    url
}

fn wss_client(runtime: Runtime, tls: TlsClientConfig) -> Client {
    Client::new(
        ClientConfig::default()
            .runtime(runtime)
            .no_proxy()
            .tls(tls)
            .max_received_message_size(4 << 20),
    )
}

/// Text, binary (large enough to span many TLS records) and a clean close over TLS.
async fn echo_round_trip(client: &Client, url: &str) {
    let mut ws = client.connect(url).await.unwrap();
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 13 + 5) as u8).collect();
    for message in [
        Message::text("over TLS"),
        Message::text("κόσμε 𝄞"),
        Message::binary(big),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), message);
    }
    ws.close(CloseCode::NORMAL, Some("bye")).await.unwrap();
    let close = ws.closed().await;
    assert!(close.was_clean, "{close:?}");
    assert_eq!(close.code, CloseCode::NORMAL);
}

#[test]
fn wss_echo_between_our_client_and_server() {
    on_both_runtimes(|runtime| async move {
        let certs = test_certs();
        let url = wss_echo_server(runtime, &certs).await;
        echo_round_trip(&wss_client(runtime, certs.client_tls()), &url).await;
        // The certificate names `localhost` too.
        let by_name = url.replace("127.0.0.1", "localhost");
        echo_round_trip(&wss_client(runtime, certs.client_tls()), &by_name).await;
    });
}

#[test]
fn wss_client_refuses_an_untrusted_certificate_with_a_clear_error() {
    on_both_runtimes(|runtime| async move {
        let certs = test_certs();
        let url = wss_echo_server(runtime, &certs).await;
        // Only the webpki roots: the test CA is unknown.
        let err = wss_client(runtime, TlsClientConfig::default())
            .connect(&url)
            .await
            .unwrap_err();
        let Error::Tls(why) = &err else {
            panic!("expected a TLS error, got {err:?}")
        };
        assert!(why.contains("certificate"), "{why}");
        // Another CA is not trusted either.
        let other = test_certs();
        let err = wss_client(runtime, other.client_tls())
            .connect(&url)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Tls(_)), "{err:?}");
        // The server is unharmed.
        echo_round_trip(&wss_client(runtime, certs.client_tls()), &url).await;
    });
}

#[test]
fn wss_server_drops_peers_that_do_not_speak_tls_and_keeps_serving() {
    on_both_runtimes(|runtime| async move {
        let certs = test_certs();
        let url = wss_echo_server(runtime, &certs).await;
        let addr: std::net::SocketAddr = url
            .trim_start_matches("wss://")
            .trim_end_matches("/secure")
            .parse()
            .unwrap();
        // A plain-text upgrade request to the TLS port: the TLS layer rejects it and the
        // socket is closed (a socket left open fails the read, by its timeout).
        let (rest, _) = blocking::unblock(move || {
            let mut raw = raw_client(addr);
            raw.write_all(UPGRADE.as_bytes()).unwrap();
            read_until_eof(&mut raw)
        })
        .await;
        assert!(!rest.starts_with(b"HTTP/1.1 101"), "{rest:?}");
        // A plain ws:// client fails the handshake instead of hanging.
        let plain = url.replace("wss://", "ws://");
        let err = client(runtime).connect(&plain).await.unwrap_err();
        assert!(!matches!(err, Error::HandshakeTimeout(_)), "{err:?}");
        echo_round_trip(&wss_client(runtime, certs.client_tls()), &url).await;
    });
}

#[test]
fn wss_without_the_rustls_root_of_the_server_name_is_a_tls_error() {
    on_both_runtimes(|runtime| async move {
        let certs = test_certs();
        let url = wss_echo_server(runtime, &certs).await;
        // The certificate names localhost and 127.0.0.1, not 127.0.0.2 (also loopback).
        let wrong_name = url.replace("127.0.0.1", "127.0.0.2");
        let err = wss_client(runtime, certs.client_tls())
            .connect(&wrong_name)
            .await;
        match err {
            Err(Error::Tls(why)) => assert!(why.contains("certificate"), "{why}"),
            // Some systems do not route 127.0.0.2; then nothing listens there.
            Err(Error::Io(_)) => {}
            other => panic!("expected a TLS error, got {other:?}"),
        }
    });
}

/// Over TLS, a write can leave part of a message in rustls, which writes it only when
/// flushed. A server whose last sends fill its socket (a small send buffer, a client that
/// reads slowly) and that then only reads must still get every message to the client.
#[test]
fn wss_sends_that_fill_the_socket_all_reach_a_slow_reader() {
    on_both_runtimes(|runtime| async move {
        let certs = test_certs();
        let mut server =
            small_send_buffer_server(runtime, ServerConfig::default().tls(certs.server_tls()));
        let url = format!("wss://127.0.0.1:{}/", server.local_addr().port());
        let (count, size) = (32usize, 128 * 1024);
        let message = move |i: usize| Message::binary(vec![i as u8; size]);
        spawn(runtime, async move {
            let mut ws = server.next().await.unwrap().accept(None).await.unwrap();
            for i in 0..count {
                ws.send(message(i)).await.unwrap();
            }
            // Nothing more to send: the connection is only read from now on.
            while ws.next().await.is_some() {}
        });
        let mut ws = wss_client(runtime, certs.client_tls())
            .connect(&url)
            .await
            .unwrap();
        for i in 0..count {
            // Slowly, so that the server's socket stays full.
            sleep(runtime, std::time::Duration::from_millis(10)).await;
            let next = Box::pin(ws.next());
            let deadline = Box::pin(sleep(runtime, std::time::Duration::from_secs(10)));
            match futures_util::future::select(next, deadline).await {
                futures_util::future::Either::Left((received, _)) => {
                    assert!(received.unwrap().unwrap() == message(i), "message {i}");
                }
                futures_util::future::Either::Right(_) => {
                    panic!("message {i} of {count} never came")
                }
            }
        }
        ws.close(CloseCode::NORMAL, None).await.unwrap();
    });
}

/// A TLS connection ends by writing its close_notify, which a peer that reads nothing never
/// takes. A server that drops such a peer (the keepalive) must still see the connection end.
#[test]
fn wss_connection_dropped_by_the_keepalive_ends_though_the_peer_reads_nothing() {
    on_both_runtimes(|runtime| async move {
        let certs = test_certs();
        let config = wsflow::Config::server()
            .keepalive_interval(std::time::Duration::from_millis(200))
            .keepalive_grace_period(std::time::Duration::from_millis(200))
            .close_timeout(std::time::Duration::from_millis(300));
        let mut server = small_send_buffer_server(
            runtime,
            ServerConfig::default()
                .tls(certs.server_tls())
                .connection(config),
        );
        let url = format!("wss://127.0.0.1:{}/", server.local_addr().port());
        // Connected, then never read again.
        let connector = wss_client(runtime, certs.client_tls());
        let accepting = async { server.next().await.unwrap().accept(None).await.unwrap() };
        let (client, mut ws) = futures_util::future::join(connector.connect(&url), accepting).await;
        let client = client.unwrap();
        ws.queue(Message::binary(vec![3u8; 4 << 20])).unwrap();
        let reading = Box::pin(async move {
            let mut messages = 0;
            while ws.next().await.is_some() {
                messages += 1;
            }
            (messages, ws.closed().await)
        });
        let deadline = Box::pin(sleep(runtime, std::time::Duration::from_secs(10)));
        match futures_util::future::select(reading, deadline).await {
            futures_util::future::Either::Left(((messages, close), _)) => {
                assert_eq!(messages, 0);
                assert_eq!(close.description, "Peer not responding.");
            }
            futures_util::future::Either::Right(_) => panic!("the connection never ended"),
        }
        drop(client);
    });
}
