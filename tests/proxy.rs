//! Client connections through proxies, on both runtimes: a minimal HTTP `CONNECT` proxy and a
//! minimal SOCKS5 proxy (RFC 1928/1929), written here and run on loopback, each counting the
//! tunnels it opened. `ws://` and `wss://` (TLS inside the tunnel) through both, with and
//! without credentials; refused credentials and an unreachable proxy are clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::TcpListener;

use futures_util::StreamExt;
use support::proxy::TestProxy;
use support::*;
use wsflow::{
    Client, ClientConfig, CloseCode, Error, Message, Proxy, ProxyKind, Runtime, Server,
    ServerConfig,
};

/// An echo server, `wss://` when certificates are given; its URL names `localhost` so that
/// the SOCKS5 proxy resolves the name.
async fn echo_server(runtime: Runtime, certs: Option<&TestCerts>) -> String {
    let mut config = ServerConfig::default().runtime(runtime);
    if let Some(certs) = certs {
        config = config.tls(certs.server_tls());
    }
    let server = Server::bind("127.0.0.1:0", config).await.unwrap();
    let scheme = if certs.is_some() { "wss" } else { "ws" };
    let url = format!(
        "{scheme}://localhost:{}/through",
        server.local_addr().port()
    );
    serve_echo(runtime, server);
    url
}

async fn round_trip(config: ClientConfig, url: &str) -> Result<(), Error> {
    let mut ws = Client::new(config).connect(url).await?;
    for message in [
        Message::text("through the tunnel"),
        Message::binary(vec![7u8; 200_000]),
    ] {
        ws.send(message.clone()).await?;
        assert_eq!(ws.next().await.unwrap()?, message);
    }
    ws.close(CloseCode::NORMAL, None).await?;
    assert!(ws.closed().await.was_clean);
    Ok(())
}

fn config(runtime: Runtime, proxy: &str, certs: Option<&TestCerts>) -> ClientConfig {
    let mut config = ClientConfig::default()
        .runtime(runtime)
        .proxy(Proxy::parse(proxy).unwrap());
    if let Some(certs) = certs {
        config = config.tls(certs.client_tls());
    }
    config
}

#[test]
fn ws_and_wss_through_an_http_connect_proxy_with_basic_auth() {
    on_both_runtimes(|runtime| async move {
        let credentials = Some(("alice", "s3cret:with@signs"));
        let proxy = TestProxy::start(ProxyKind::HttpConnect, credentials);
        // Credentials with reserved characters travel percent-encoded in the URL.
        let proxy_url = format!("http://alice:s3cret%3Awith%40signs@{}", proxy.addr);
        let url = echo_server(runtime, None).await;
        round_trip(config(runtime, &proxy_url, None), &url)
            .await
            .unwrap();
        assert_eq!(proxy.tunnels(), 1);

        let certs = test_certs();
        let url = echo_server(runtime, Some(&certs)).await;
        round_trip(config(runtime, &proxy_url, Some(&certs)), &url)
            .await
            .unwrap();
        assert_eq!(proxy.tunnels(), 2);
    });
}

#[test]
fn ws_and_wss_through_a_socks5_proxy_with_and_without_password() {
    on_both_runtimes(|runtime| async move {
        let open = TestProxy::start(ProxyKind::Socks5, None);
        let url = echo_server(runtime, None).await;
        round_trip(config(runtime, &open.url("socks5", None), None), &url)
            .await
            .unwrap();
        assert_eq!(open.tunnels(), 1);

        let credentials = Some(("bob", "hunter2"));
        let guarded = TestProxy::start(ProxyKind::Socks5, credentials);
        let certs = test_certs();
        let url = echo_server(runtime, Some(&certs)).await;
        round_trip(
            config(runtime, &guarded.url("socks5h", credentials), Some(&certs)),
            &url,
        )
        .await
        .unwrap();
        // By IP address too (SOCKS5 address type 1).
        let by_ip = url.replace("localhost", "127.0.0.1");
        round_trip(
            config(runtime, &guarded.url("socks5", credentials), Some(&certs)),
            &by_ip,
        )
        .await
        .unwrap();
        assert_eq!(guarded.tunnels(), 2);
    });
}

fn proxy_error(result: Result<(), Error>) -> String {
    match result {
        Err(Error::Proxy(why)) => why,
        other => panic!("expected a proxy error, got {other:?}"),
    }
}

#[test]
fn refused_proxy_credentials_are_clear_errors() {
    on_both_runtimes(|runtime| async move {
        let url = echo_server(runtime, None).await;
        let http = TestProxy::start(ProxyKind::HttpConnect, Some(("alice", "right")));
        let why = proxy_error(
            round_trip(
                config(runtime, &http.url("http", Some(("alice", "wrong"))), None),
                &url,
            )
            .await,
        );
        assert!(
            why.contains("407") && why.contains("refused the credentials"),
            "{why}"
        );
        let why =
            proxy_error(round_trip(config(runtime, &http.url("http", None), None), &url).await);
        assert!(
            why.contains("407") && why.contains("requires credentials"),
            "{why}"
        );

        let socks = TestProxy::start(ProxyKind::Socks5, Some(("bob", "right")));
        let why = proxy_error(
            round_trip(
                config(runtime, &socks.url("socks5", Some(("bob", "wrong"))), None),
                &url,
            )
            .await,
        );
        assert!(why.contains("refused the username and password"), "{why}");
        let why =
            proxy_error(round_trip(config(runtime, &socks.url("socks5", None), None), &url).await);
        assert!(why.contains("requires credentials"), "{why}");
        assert_eq!(http.tunnels() + socks.tunnels(), 0);
    });
}

#[test]
fn unreachable_proxy_and_unreachable_target_are_clear_errors() {
    on_both_runtimes(|runtime| async move {
        // A port nothing listens on: bind, note it, close.
        let closed_port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = echo_server(runtime, None).await;
        let why = proxy_error(
            round_trip(
                config(runtime, &format!("http://127.0.0.1:{closed_port}"), None),
                &url,
            )
            .await,
        );
        assert!(why.contains("cannot reach the proxy"), "{why}");

        let http = TestProxy::start(ProxyKind::HttpConnect, None);
        let dead_target = format!("ws://127.0.0.1:{closed_port}/");
        let why = proxy_error(
            round_trip(config(runtime, &http.url("http", None), None), &dead_target).await,
        );
        assert!(why.contains("502"), "{why}");
        let socks = TestProxy::start(ProxyKind::Socks5, None);
        let why = proxy_error(
            round_trip(
                config(runtime, &socks.url("socks5", None), None),
                &dead_target,
            )
            .await,
        );
        assert!(why.contains("refused"), "{why}");
    });
}
