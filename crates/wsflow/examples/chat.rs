//! A chat room: an HTML page and a WebSocket endpoint on one port, served by hyper, with
//! wsflow upgrading the `/ws` requests hyper accepted (feature `http`). The README's demo.
//!
//! ```sh
//! cargo run --release -p wsflow --example chat            # then open http://127.0.0.1:8080/
//! cargo run --release -p wsflow --example chat -- --listen 127.0.0.1:0
//! ```
//!
//! Every message a browser sends (JSON `{"name", "text"}`) goes to everyone in the room;
//! joins and leaves are announced. Prints `listening on http://ADDR/  (open it in two browser
//! windows)` once it accepts connections.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use wsflow::http::HttpUpgrade;
use wsflow::{AcceptOptions, DeflateConfig, Message, Runtime, Sender, ServerConfig, WebSocket};

const PAGE: &str = include_str!("chat/index.html");

/// Everyone connected, by connection number.
#[derive(Default)]
struct Room {
    members: Mutex<Vec<(u64, Sender)>>,
    next_id: AtomicU64,
}

impl Room {
    /// Sends `message` to every member: clones of one message, so the text is shared rather
    /// than copied and, with compression, compressed once per thread rather than once per
    /// member.
    fn broadcast(&self, message: Message) {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        for (_, sender) in members.iter() {
            // A member whose send buffer is full misses the message rather than slowing
            // everyone down.
            let _ = sender.try_send(message.clone());
        }
    }

    fn system(&self, text: &str) {
        self.broadcast(Message::text(format!(
            "{{\"system\":{}}}",
            json_string(text)
        )));
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() -> ExitCode {
    let args =
        match support::Args::parse(&["listen"], &[]).and_then(support::Args::without_positional) {
            Ok(args) => args,
            Err(err) => {
                eprintln!("chat: {err}\nusage: chat [--listen ADDR]");
                return ExitCode::from(2);
            }
        };
    let listen = args.get("listen").unwrap_or("127.0.0.1:8080").to_owned();
    support::block_on(Runtime::Tokio, async move {
        let listener = match tokio::net::TcpListener::bind(&listen).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("chat: cannot listen on {listen}: {err}");
                return ExitCode::FAILURE;
            }
        };
        let addr = listener
            .local_addr()
            .map_or(listen.clone(), |a| a.to_string());
        println!("listening on http://{addr}/  (open it in two browser windows)");
        let room = Arc::new(Room::default());
        let mut ctrl_c = std::pin::pin!(support::ctrl_c());
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut ctrl_c => break,
            };
            let Ok((stream, peer)) = accepted else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let room = room.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(request, peer, room.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
        ExitCode::SUCCESS
    })
}

async fn handle(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    room: Arc<Room>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => Response::builder()
            .header("Content-Type", "text/html; charset=utf-8")
            .body(Full::new(Bytes::from_static(PAGE.as_bytes()))),
        (&Method::GET, "/ws") => {
            let upgrade = match HttpUpgrade::from_request(&request, chat_config()) {
                Ok(upgrade) => upgrade.with_peer_addr(peer),
                Err(wsflow::Error::Handshake(err)) => {
                    return Ok(err.to_http_response().map(|()| Full::default()));
                }
                Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
            };
            let protocol = upgrade
                .request()
                .requested_protocols()
                .iter()
                .any(|p| p == "chat")
                .then_some("chat");
            let Ok((response, accepted)) = upgrade.accept(AcceptOptions::new().protocol(protocol))
            else {
                return Ok(status(StatusCode::INTERNAL_SERVER_ERROR));
            };
            let on_upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    chat(accepted.into_websocket_tokio(TokioIo::new(upgraded)), room).await;
                }
            });
            return Ok(response.map(|()| Full::default()));
        }
        _ => return Ok(status(StatusCode::NOT_FOUND)),
    };
    Ok(response.unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR)))
}

/// Connection options: browsers offer permessage-deflate on every connection; the chat
/// accepts it (small messages stay uncompressed below the default threshold). A chat holds
/// many connections that are mostly idle, so it turns context takeover off both ways: each
/// message is compressed on its own, and the connections share the thread's zlib state instead
/// of keeping about 417 KiB each.
fn chat_config() -> ServerConfig {
    ServerConfig::default().permessage_deflate(
        DeflateConfig::new()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true),
    )
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = code;
    response
}

async fn chat(mut ws: WebSocket, room: Arc<Room>) {
    let id = room.next_id.fetch_add(1, Ordering::Relaxed);
    let who = ws.remote_address().unwrap_or("someone").to_owned();
    room.members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, ws.sender()));
    room.system(&format!("{who} joined"));
    while let Some(received) = ws.next().await {
        if let Ok(Message::Text(text)) = received {
            // The page sends JSON; pass it on as is, after checking it is small.
            if text.len() <= 4096 {
                room.broadcast(Message::Text(text));
            }
        }
    }
    room.members
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(member, _)| *member != id);
    room.system(&format!("{who} left"));
}
