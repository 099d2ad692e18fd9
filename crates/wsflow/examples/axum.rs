//! wsflow inside an axum application: axum routes the request through its own middleware
//! and extractors, and wsflow upgrades it (feature `http`). The plain-hyper version of the
//! same integration is the `chat` example.
//!
//! ```sh
//! cargo run -p wsflow --features http --example axum -- --listen 127.0.0.1:8080
//! ```
//!
//! Prints `listening on http://ADDR/` once it accepts connections. `GET /` answers a line of
//! text; `/ws` is a WebSocket echo (subprotocol `chat` accepted when offered).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use wsflow::http::HttpUpgrade;
use wsflow::{AcceptOptions, Runtime, ServerConfig, WebSocket};

fn main() -> ExitCode {
    let args =
        match support::Args::parse(&["listen"], &[]).and_then(support::Args::without_positional) {
            Ok(args) => args,
            Err(err) => {
                eprintln!("axum: {err}\nusage: axum [--listen ADDR]");
                return ExitCode::from(2);
            }
        };
    let listen = args.get("listen").unwrap_or("127.0.0.1:8080").to_owned();
    support::block_on(Runtime::Tokio, async move {
        let listener = match tokio::net::TcpListener::bind(&listen).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("axum: cannot listen on {listen}: {err}");
                return ExitCode::FAILURE;
            }
        };
        let app = Router::new()
            .route(
                "/",
                get(|| async { "wsflow behind axum: WebSocket echo at /ws\n" }),
            )
            .route("/ws", get(upgrade));
        match listener.local_addr() {
            Ok(addr) => println!("listening on http://{addr}/"),
            Err(err) => eprintln!("axum: {err}"),
        }
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        match axum::serve(listener, service).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("axum: {err}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The `/ws` handler: validates the upgrade, answers 101 through axum, and runs the
/// connection once hyper hands the upgraded socket over.
async fn upgrade(ConnectInfo(peer): ConnectInfo<SocketAddr>, mut request: Request) -> Response {
    let upgrade = match HttpUpgrade::from_request(&request, ServerConfig::default()) {
        Ok(upgrade) => upgrade.with_peer_addr(peer),
        // Not a valid upgrade: the error carries the HTTP answer (400, 405, 426).
        Err(wsflow::Error::Handshake(err)) => {
            return err.to_http_response().map(|()| Body::empty());
        }
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let protocol = upgrade
        .request()
        .requested_protocols()
        .iter()
        .any(|p| p == "chat")
        .then_some("chat");
    let Ok((response, accepted)) = upgrade.accept(AcceptOptions::new().protocol(protocol)) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            echo(accepted.into_websocket_tokio(TokioIo::new(upgraded))).await;
        }
    });
    response.map(|()| Body::empty())
}

async fn echo(mut ws: WebSocket) {
    while let Some(received) = ws.next().await {
        if let Ok(message) = received
            && ws.send(message).await.is_err()
        {
            break;
        }
    }
}
