//! Interop with real peers nobody here wrote, both directions, on both runtimes: Node's `ws`,
//! WebSocket-Node (npm `websocket`) and Python's `websockets`.
//!
//! The peers are installed by `cargo xtask test` (npm packages in `tests/interop/node_modules`,
//! Python packages in `target/interop-venv`); these tests are `#[ignore]`d so a bare
//! `cargo test` without them does not fail, and `cargo xtask test` runs them with
//! `--ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use support::*;
use wsflow::{
    Client, ClientConfig, CloseCode, Config, Event, Message, Runtime, Server, ServerConfig,
};

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn python() -> PathBuf {
    std::env::var_os("WSFLOW_INTEROP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/interop-venv/bin/python")
        })
}

fn peer_command(peer: &str) -> Command {
    let script = interop_dir().join(peer);
    assert!(script.exists(), "missing {}", script.display());
    if peer.ends_with(".py") {
        let python = python();
        assert!(
            python.exists(),
            "{} is missing: run `cargo xtask test`, which installs the interop peers",
            python.display()
        );
        let mut command = Command::new(python);
        command.arg(script);
        command
    } else {
        assert!(
            interop_dir().join("node_modules").exists(),
            "tests/interop/node_modules is missing: run `cargo xtask test`, which installs the interop peers"
        );
        let mut command = Command::new("node");
        command.arg(script).current_dir(interop_dir());
        command
    }
}

/// A peer server process, killed when dropped.
struct PeerServer {
    child: Child,
    url: String,
}

impl PeerServer {
    fn start(peer: &str, args: &[&str]) -> Self {
        let mut child = peer_command(peer)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("{peer} did not start listening"));
        Self { child, url }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a peer client against `url` to completion; it prints `ok` and exits 0 on success.
async fn run_peer_client(peer: &'static str, url: String) {
    let output = blocking::unblock(move || {
        let mut child = peer_command(peer)
            .arg(&url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().unwrap()
    })
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "{peer} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

async fn our_echo_server(runtime: Runtime) -> String {
    let server = Server::bind(
        "127.0.0.1:0",
        ServerConfig::default().runtime(runtime).connection(
            Config::server()
                .max_received_frame_size(64 << 20)
                .max_received_message_size(64 << 20),
        ),
    )
    .await
    .unwrap();
    let url = format!("ws://{}/interop", server.local_addr());
    serve_echo(runtime, server);
    url
}

fn test_messages() -> Vec<Message> {
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 31 + 7) as u8).collect();
    vec![
        Message::text("hello"),
        Message::text("κόσμε 𝄞 日本語"),
        Message::text(""),
        Message::binary((0..=255u8).collect::<Vec<u8>>()),
        Message::binary(big),
        Message::text("x".repeat(70000)),
    ]
}

/// Our client against a peer echo server: subprotocol, messages both types (some large, so
/// peers fragment or not as they like), ping/pong, close.
async fn our_client_against(runtime: Runtime, url: &str) {
    let mut ws = Client::new(
        ClientConfig::default()
            .runtime(runtime)
            .protocols(["chat"])
            .max_received_frame_size(64 << 20)
            .max_received_message_size(64 << 20),
    )
    .connect(url)
    .await
    .unwrap();
    assert_eq!(ws.protocol(), Some("chat"));
    ws.ping(&b"wsflow ping"[..]).await.unwrap();
    loop {
        match ws.next_event().await.unwrap() {
            Event::Pong(payload) => {
                assert_eq!(&payload[..], b"wsflow ping");
                break;
            }
            Event::Ping(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    for message in test_messages() {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), message);
    }
    ws.close(CloseCode::from(4000), Some("interop done"))
        .await
        .unwrap();
    let close = ws.closed().await;
    assert!(close.was_clean, "{close:?}");
    assert_eq!(close.code.as_u16(), 4000);
}

macro_rules! interop_tests {
    ($($name:ident: $body:expr;)*) => {
        $(
            #[test]
            #[ignore = "needs the interop peers installed by `cargo xtask test`"]
            fn $name() {
                on_both_runtimes($body);
            }
        )*
    };
}

interop_tests! {
    node_ws_client_against_our_server: |runtime| async move {
        run_peer_client("ws_client.js", our_echo_server(runtime).await).await;
    };
    websocket_node_client_against_our_server: |runtime| async move {
        run_peer_client("websocket_node_client.js", our_echo_server(runtime).await).await;
    };
    python_websockets_client_against_our_server: |runtime| async move {
        run_peer_client("websockets_client.py", our_echo_server(runtime).await).await;
    };
    our_client_against_node_ws_server: |runtime| async move {
        let peer = PeerServer::start("ws_server.js", &[]);
        our_client_against(runtime, &peer.url).await;
    };
    our_client_against_websocket_node_server: |runtime| async move {
        let peer = PeerServer::start("websocket_node_server.js", &[]);
        our_client_against(runtime, &peer.url).await;
    };
    our_client_against_python_websockets_server: |runtime| async move {
        let peer = PeerServer::start("websockets_server.py", &[]);
        our_client_against(runtime, &peer.url).await;
    };
}
