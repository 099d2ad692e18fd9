//! The `tracing` feature: a connection reports its opening, its failure and its close (with
//! the code) as tracing events, captured here by a subscriber writing to memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use support::*;
use wsflow::{CloseCode, Runtime, Server, ServerConfig};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// What was written so far.
    fn log(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Captures the events of this thread (debug and above) until the guard is dropped.
fn capturing() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// Runs `test` on a tokio current-thread runtime with a server bound to a port of its own.
fn with_tokio_server<F: std::future::Future<Output = ()>>(test: impl FnOnce(Server) -> F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let server = Server::bind(
                "127.0.0.1:0",
                ServerConfig::default().runtime(Runtime::Tokio),
            )
            .await
            .unwrap();
            test(server).await;
        });
}

#[test]
fn connections_report_open_failure_and_close() {
    let (captured, _guard) = capturing();
    with_tokio_server(|mut server| async move {
        let addr = server.local_addr();
        let url = format!("ws://{addr}/");
        let client = client(Runtime::Tokio);
        // A request that is not an upgrade: answered 400 by the server while it waits
        // for a good one, and reported (WebSocket-Node's `upgradeError`).
        let refused = std::thread::spawn(move || {
            let mut raw = raw_client(addr);
            raw.write_all(b"GET /chat HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            read_head(&mut raw)
        });
        let waiting = async {
            while !refused.is_finished() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        // `accept` is cancel-safe: polled until the refused client has its answer.
        let serving = futures_util::future::select(Box::pin(server.accept()), Box::pin(waiting));
        assert!(matches!(
            serving.await,
            futures_util::future::Either::Right(_)
        ));
        let head = refused.join().unwrap();
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
        let connecting = client.connect(&url);
        let accepting = async { server.accept().await.unwrap().accept(None).await.unwrap() };
        let (ws, mut accepted) = futures_util::future::join(connecting, accepting).await;
        let mut ws = ws.unwrap();
        ws.close(CloseCode::from(4001), Some("bye")).await.unwrap();
        let (client_close, server_close) =
            futures_util::future::join(ws.closed(), accepted.closed()).await;
        assert_eq!(client_close.code.as_u16(), 4001);
        assert_eq!(server_close.code.as_u16(), 4001);
    });
    let log = captured.log();
    assert_eq!(log.matches("websocket upgrade refused").count(), 1, "{log}");
    assert_eq!(
        log.matches("websocket connection opened").count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("websocket connection closed").count(),
        2,
        "{log}"
    );
    assert!(log.contains("code=4001"), "{log}");
    assert!(
        log.contains("role=Server") && log.contains("role=Client"),
        "{log}"
    );
}

#[test]
fn a_protocol_violation_is_reported_with_its_close_code() {
    let (captured, _guard) = capturing();
    with_tokio_server(|mut server| async move {
        let addr = server.local_addr();
        // A client that completes the handshake and then sends an unmasked frame ("hi"):
        // a protocol violation, for which the server fails the connection with 1002.
        let violator = std::thread::spawn(move || {
            let mut raw = raw_client(addr);
            raw.write_all(UPGRADE.as_bytes()).unwrap();
            let head = read_head(&mut raw);
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            raw.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
            read_to_end(&mut raw)
        });
        let mut accepted = server.accept().await.unwrap().accept(None).await.unwrap();
        let failed = accepted.next().await;
        assert!(matches!(failed, Some(Err(_))), "{failed:?}");
        let close = accepted.closed().await;
        assert_eq!(close.code, CloseCode::PROTOCOL_ERROR);
        // The connection is kept (not dropped) until the client has read to its end.
        while !violator.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let answer = violator.join().unwrap();
        // The server's close frame: 0x88, its length, then 1002.
        assert!(
            answer.len() >= 4 && answer[0] == 0x88 && answer[2..4] == [0x03, 0xea],
            "{answer:?}"
        );
        drop(accepted);
    });
    let log = captured.log();
    assert_eq!(
        log.matches("websocket connection failed").count(),
        1,
        "{log}"
    );
    let failure = log
        .lines()
        .find(|line| line.contains("websocket connection failed"))
        .unwrap();
    assert!(failure.contains("WARN"), "{failure}");
    assert!(failure.contains("role=Server"), "{failure}");
    assert!(failure.contains("close_code=Some(1002)"), "{failure}");
}
