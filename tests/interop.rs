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
    Client, ClientConfig, CloseCode, Config, DeflateConfig, Event, Message, Runtime, Server,
    ServerConfig,
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
    run_peer_client_with(peer, url, Vec::new()).await;
}

/// [`run_peer_client`] with environment variables (`WSFLOW_CA` for `wss://`).
async fn run_peer_client_with(peer: &'static str, url: String, env: Vec<(&'static str, String)>) {
    let output = blocking::unblock(move || {
        let mut child = peer_command(peer)
            .arg(&url)
            .envs(env)
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

fn echo_server_config(runtime: Runtime) -> ServerConfig {
    ServerConfig::default().runtime(runtime).connection(
        Config::server()
            .max_received_frame_size(64 << 20)
            .max_received_message_size(64 << 20),
    )
}

async fn our_echo_server(runtime: Runtime) -> String {
    our_echo_server_with(runtime, echo_server_config(runtime), "ws").await
}

async fn our_echo_server_with(runtime: Runtime, config: ServerConfig, scheme: &str) -> String {
    let server = Server::bind("127.0.0.1:0", config).await.unwrap();
    let url = format!("{scheme}://{}/interop", server.local_addr());
    serve_echo(runtime, server);
    url
}

/// An echo server that accepts permessage-deflate with `deflate` and reports the extensions
/// each connection agreed.
async fn our_deflate_echo_server(
    runtime: Runtime,
    deflate: DeflateConfig,
) -> (
    String,
    futures_channel::mpsc::UnboundedReceiver<Vec<String>>,
) {
    let mut server = Server::bind(
        "127.0.0.1:0",
        echo_server_config(runtime).permessage_deflate(deflate),
    )
    .await
    .unwrap();
    let url = format!("ws://{}/interop", server.local_addr());
    let (agreed_tx, agreed_rx) = futures_channel::mpsc::unbounded();
    spawn(runtime, async move {
        while let Some(request) = server.next().await {
            let agreed_tx = agreed_tx.clone();
            spawn(runtime, async move {
                let Ok(mut ws) = request.accept(Some("chat")).await else {
                    return;
                };
                let _ = agreed_tx.unbounded_send(ws.extensions().to_vec());
                while let Some(received) = ws.next().await {
                    if let Ok(message) = received {
                        let _ = ws.queue(message);
                    }
                }
            });
        }
    });
    (url, agreed_rx)
}

/// Asserts that permessage-deflate was agreed as `deflate` asks: without context takeover
/// both ways where it asks for that (so both ends compress every message on its own, and the
/// wsflow end shares its zlib state between connections).
fn assert_deflate_agreed(extensions: &[String], deflate: &DeflateConfig) {
    let agreed = extensions
        .iter()
        .find(|e| e.starts_with("permessage-deflate"))
        .unwrap_or_else(|| panic!("permessage-deflate was not agreed: {extensions:?}"));
    if deflate.get_server_no_context_takeover() && deflate.get_client_no_context_takeover() {
        assert!(
            agreed.contains("server_no_context_takeover")
                && agreed.contains("client_no_context_takeover"),
            "context takeover was not turned off both ways: {agreed}"
        );
    }
}

/// Compression without context takeover both ways: every message compressed on its own, and
/// the zlib state shared between connections.
fn no_context_takeover() -> DeflateConfig {
    DeflateConfig::new()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true)
}

async fn peer_client_against_our_deflate_server(
    runtime: Runtime,
    peer: &'static str,
    deflate: DeflateConfig,
) {
    let (url, mut agreed) = our_deflate_echo_server(runtime, deflate.clone()).await;
    run_peer_client(peer, url).await;
    assert_deflate_agreed(&agreed.next().await.unwrap(), &deflate);
}

async fn peer_client_against_our_wss_server(runtime: Runtime, peer: &'static str) {
    let certs = test_certs();
    let config = echo_server_config(runtime).tls(certs.server_tls());
    let url = our_echo_server_with(runtime, config, "wss").await;
    let url = url.replace("127.0.0.1", "localhost");
    run_peer_client_with(
        peer,
        url,
        vec![("WSFLOW_CA", certs.ca_file.display().to_string())],
    )
    .await;
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
    our_client_with(client_config(runtime), url).await;
}

fn client_config(runtime: Runtime) -> ClientConfig {
    ClientConfig::default()
        .runtime(runtime)
        .no_proxy()
        .protocols(["chat"])
        .max_received_frame_size(64 << 20)
        .max_received_message_size(64 << 20)
}

/// Our client, offering permessage-deflate with `deflate`, against a peer server that accepts
/// it.
async fn our_deflate_client_against(runtime: Runtime, url: &str, deflate: DeflateConfig) {
    let config = client_config(runtime).permessage_deflate(deflate.clone());
    let mut ws = Client::new(config.clone()).connect(url).await.unwrap();
    assert_deflate_agreed(ws.extensions(), &deflate);
    ws.close(CloseCode::NORMAL, None).await.unwrap();
    assert!(ws.closed().await.was_clean);
    our_client_with(config, url).await;
}

async fn our_client_with(config: ClientConfig, url: &str) {
    let mut ws = Client::new(config).connect(url).await.unwrap();
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
    node_ws_client_against_our_wss_server: |runtime| async move {
        peer_client_against_our_wss_server(runtime, "ws_client.js").await;
    };
    python_websockets_client_against_our_wss_server: |runtime| async move {
        peer_client_against_our_wss_server(runtime, "websockets_client.py").await;
    };
    our_wss_client_against_python_websockets_wss_server: |runtime| async move {
        let certs = test_certs();
        let cert = certs.chain_file.display().to_string();
        let key = certs.key_file.display().to_string();
        let peer = PeerServer::start("websockets_server.py", &["--cert", &cert, "--key", &key]);
        assert!(peer.url.starts_with("wss://"), "{}", peer.url);
        our_client_with(client_config(runtime).tls(certs.client_tls()), &peer.url).await;
    };
    node_ws_client_against_our_deflate_server: |runtime| async move {
        peer_client_against_our_deflate_server(runtime, "ws_client.js", DeflateConfig::new())
            .await;
    };
    python_websockets_client_against_our_deflate_server: |runtime| async move {
        peer_client_against_our_deflate_server(
            runtime,
            "websockets_client.py",
            DeflateConfig::new(),
        )
        .await;
    };
    our_deflate_client_against_node_ws_server: |runtime| async move {
        let peer = PeerServer::start("ws_server.js", &["--deflate"]);
        our_deflate_client_against(runtime, &peer.url, DeflateConfig::new()).await;
    };
    our_deflate_client_against_python_websockets_server: |runtime| async move {
        let peer = PeerServer::start("websockets_server.py", &["--deflate"]);
        our_deflate_client_against(runtime, &peer.url, DeflateConfig::new()).await;
    };
    node_ws_client_against_our_deflate_server_without_context_takeover: |runtime| async move {
        peer_client_against_our_deflate_server(runtime, "ws_client.js", no_context_takeover())
            .await;
    };
    python_websockets_client_against_our_deflate_server_without_context_takeover: |runtime| async move {
        peer_client_against_our_deflate_server(
            runtime,
            "websockets_client.py",
            no_context_takeover(),
        )
        .await;
    };
    our_deflate_client_without_context_takeover_against_node_ws_server: |runtime| async move {
        let peer = PeerServer::start("ws_server.js", &["--deflate"]);
        our_deflate_client_against(runtime, &peer.url, no_context_takeover()).await;
    };
    our_deflate_client_without_context_takeover_against_python_websockets_server: |runtime| async move {
        let peer = PeerServer::start("websockets_server.py", &["--deflate"]);
        our_deflate_client_against(runtime, &peer.url, no_context_takeover()).await;
    };
}
