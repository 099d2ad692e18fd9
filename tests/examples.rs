//! The example programs as users run them: `echo_server --cert --key` serving `wss://`,
//! `echo_server --deflate --no-context-takeover` compressing every message on its own, and the
//! line client with `--ca` (trusting the test's certificate authority) and `--proxy` (through
//! an HTTP `CONNECT` proxy run in the test).
//!
//! `#[ignore]`d because they need the example binaries, which `cargo test` does not place in
//! `target/debug/examples/`; `cargo xtask test` builds them and runs these tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::proxy::TestProxy;
use support::*;
use wsflow::ProxyKind;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p wsflow --all-features --examples`",
        binary.display()
    );
    binary
}

/// A running echo_server, killed when dropped.
struct EchoServer {
    child: Child,
    url: String,
}

impl EchoServer {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(example("echo_server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().unwrap().unwrap();
        let url = line.strip_prefix("listening on ").unwrap().to_owned();
        Self { child, url }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the line client against `url`: each line sent comes back echoed, and it exits 0
/// after a clean close.
fn run_client(url: &str, args: &[&str]) {
    let mut child = Command::new(example("client"))
        .arg(url)
        .args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all("first line\nκόσμε 𝄞\n".as_bytes()).unwrap();
    // Give the echoes time to come back before stdin ends and the client closes.
    std::thread::sleep(Duration::from_millis(300));
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "client failed: {stdout}\n{stderr}");
    assert_eq!(stdout, "first line\nκόσμε 𝄞\n", "{stderr}");
}

#[test]
#[ignore = "needs the example binaries, built by `cargo xtask test`"]
fn echo_server_serves_wss_to_the_client_trusting_a_ca() {
    let certs = test_certs();
    let cert = certs.chain_file.to_str().unwrap();
    let key = certs.key_file.to_str().unwrap();
    for runtime in ["tokio", "async-std"] {
        let server = EchoServer::start(&["--cert", cert, "--key", key, "--runtime", runtime]);
        assert!(server.url.starts_with("wss://"), "{}", server.url);
        let url = server.url.replace("127.0.0.1", "localhost");
        run_client(
            &url,
            &[
                "--ca",
                certs.ca_file.to_str().unwrap(),
                "--runtime",
                runtime,
            ],
        );
    }
}

#[test]
#[ignore = "needs the example binaries, built by `cargo xtask test`"]
fn client_goes_through_a_proxy() {
    let server = EchoServer::start(&[]);
    let credentials = Some(("user", "pass"));
    let proxy = TestProxy::start(ProxyKind::HttpConnect, credentials);
    run_client(&server.url, &["--proxy", &proxy.url("http", credentials)]);
    assert_eq!(proxy.tunnels(), 1);

    let socks = TestProxy::start(ProxyKind::Socks5, None);
    run_client(
        &server.url,
        &[
            "--proxy",
            &socks.url("socks5", None),
            "--runtime",
            "async-std",
        ],
    );
    assert_eq!(socks.tunnels(), 1);
}

#[test]
#[ignore = "needs the example binaries, built by `cargo xtask test`"]
fn axum_example_routes_http_and_upgrades_websockets() {
    let mut child = Command::new(example("axum"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let addr = line
        .strip_prefix("listening on http://")
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    // Plain HTTP goes through axum's router.
    let mut raw = raw_client(addr.parse().unwrap());
    raw.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8(read_to_end(&mut raw)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("wsflow behind axum"), "{answer}");
    // A WebSocket upgrade on /ws, on both runtimes' clients.
    on_both_runtimes(|runtime| {
        let url = format!("ws://{addr}/ws");
        async move {
            use futures_util::StreamExt;
            let mut ws = wsflow::Client::new(
                wsflow::ClientConfig::default()
                    .runtime(runtime)
                    .no_proxy()
                    .protocols(["chat"]),
            )
            .connect(&url)
            .await
            .unwrap();
            assert_eq!(ws.protocol(), Some("chat"));
            for message in [
                wsflow::Message::text("through axum"),
                wsflow::Message::binary(vec![1u8; 100_000]),
            ] {
                ws.send(message.clone()).await.unwrap();
                assert_eq!(ws.next().await.unwrap().unwrap(), message);
            }
            ws.close(wsflow::CloseCode::NORMAL, None).await.unwrap();
            assert!(ws.closed().await.was_clean);
        }
    });
    // A plain GET on /ws is not an upgrade: wsflow's answer goes back through axum.
    let mut raw = raw_client(addr.parse().unwrap());
    raw.write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8(read_to_end(&mut raw)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
#[ignore = "needs the example binaries, built by `cargo xtask test`"]
fn echo_server_compresses_without_context_takeover_when_asked() {
    let refused = Command::new(example("echo_server"))
        .args(["--listen", "127.0.0.1:0", "--no-context-takeover"])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "--no-context-takeover needs --deflate"
    );

    let server = EchoServer::start(&["--deflate", "--no-context-takeover"]);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let config = client_config(wsflow::Runtime::Tokio)
                .permessage_deflate(wsflow::DeflateConfig::new().threshold(0));
            let mut ws = wsflow::Client::new(config)
                .connect(&server.url)
                .await
                .unwrap();
            let agreed = ws.extensions().join(", ");
            assert!(
                agreed.starts_with("permessage-deflate")
                    && agreed.contains("server_no_context_takeover")
                    && agreed.contains("client_no_context_takeover"),
                "{agreed}"
            );
            for _ in 0..3 {
                let text = "compressed on its own, ".repeat(40);
                ws.send_text(text.as_str()).await.unwrap();
                let echo = ws.recv().await.unwrap().unwrap();
                assert_eq!(echo.as_text(), Some(text.as_str()));
            }
        });
}

#[test]
#[ignore = "needs the example binaries, built by `cargo xtask test`"]
fn examples_refuse_unknown_options_and_stray_arguments() {
    let cases: [(&str, &[&str], &str); 6] = [
        (
            "echo_server",
            &["--listen", "127.0.0.1:0", "--port", "9001"],
            "unknown option --port",
        ),
        (
            "echo_server",
            &["127.0.0.1:0"],
            "unexpected argument 127.0.0.1:0",
        ),
        (
            "chat",
            &["--listne", "127.0.0.1:0"],
            "unknown option --listne",
        ),
        (
            "axum",
            &["--listen", "127.0.0.1:0", "extra"],
            "unexpected argument extra",
        ),
        (
            "client",
            &["ws://127.0.0.1:9/", "--protocl", "chat"],
            "unknown option --protocl",
        ),
        (
            "autobahn_client",
            &["ws://127.0.0.1:9", "--deflate", "--agnet", "me"],
            "unknown option --agnet",
        ),
    ];
    for (name, args, error) in cases {
        let refused = Command::new(example(name)).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{name} {args:?}: {stderr}");
        assert!(stderr.contains(error), "{name} {args:?}: {stderr}");
        assert!(stderr.contains("usage:"), "{name} {args:?}: {stderr}");
    }
}

/// A fuzzing server's view of `autobahn_client`: it asks for the case count, runs none (the
/// count is 0) and asks for the report under its agent name, which reaches the server whole
/// however many URL delimiters it holds.
#[test]
#[ignore = "needs the example binaries, built by `cargo xtask test`"]
fn autobahn_client_percent_encodes_its_agent_name() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut server = runtime
        .block_on(wsflow::Server::bind(
            "127.0.0.1:0",
            wsflow::ServerConfig::default().runtime(wsflow::Runtime::Tokio),
        ))
        .unwrap();
    let mut child = Command::new(example("autobahn_client"))
        .arg(format!("ws://{}", server.local_addr()))
        .args(["--runtime", "tokio", "--agent", "my agent&case=1#x%"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let resources = runtime.block_on(async {
        use futures_util::StreamExt;
        let mut resources = Vec::new();
        while resources.len() < 2 {
            let request = server.next().await.unwrap();
            resources.push(request.resource().to_owned());
            let mut ws = request.accept(None).await.unwrap();
            if resources.len() == 1 {
                ws.send(wsflow::Message::text("0")).await.unwrap();
            }
            ws.close(wsflow::CloseCode::NORMAL, None).await.unwrap();
            while ws.next().await.is_some() {}
        }
        resources
    });
    assert_eq!(
        resources,
        [
            "/getCaseCount",
            "/updateReports?agent=my%20agent%26case%3D1%23x%25"
        ]
    );
    assert!(child.wait().unwrap().success());
}
