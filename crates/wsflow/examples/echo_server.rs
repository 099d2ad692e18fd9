//! An echo server: every message comes back with its type.
//!
//! ```sh
//! cargo run --release -p wsflow --features async-std --example echo_server -- --listen 127.0.0.1:9001 [--runtime tokio|async-std] [--deflate [--no-context-takeover]]
//! cargo run --release -p wsflow --features async-std,rustls --example echo_server -- --cert CHAIN.pem --key KEY.pem
//! ```
//!
//! Prints `listening on ws://ADDR` once it accepts connections (`wss://ADDR` with `--cert` and
//! `--key`, which serve TLS with that PEM certificate chain and key; feature `rustls`). Accepts the subprotocol `chat`
//! when offered. Messages and frames up to 64 MiB. With `--deflate`, accepts permessage-deflate
//! offers (RFC 7692, every parameter) and compresses every message it echoes, however short;
//! clients that do not offer it are served uncompressed. `--no-context-takeover` adds
//! `server_no_context_takeover` and `client_no_context_takeover` to every answer: every message
//! is compressed on its own, and the connections share the thread's zlib state instead of
//! keeping about 417 KiB each. Ends cleanly on Ctrl-C. This is the
//! testee of `cargo xtask autobahn` and of the benchmarks.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::process::ExitCode;

use std::future::Future;

use futures_util::Stream;
use wsflow::core::DeflateConfig;
use wsflow::{Accepting, Config, Server, ServerConfig, WebSocket};

const LIMIT: usize = 64 << 20;

fn main() -> ExitCode {
    let args = match support::Args::parse(
        &["listen", "runtime", "cert", "key"],
        &["deflate", "no-context-takeover"],
    )
    .and_then(support::Args::without_positional)
    {
        Ok(args) => args,
        Err(err) => return usage(&err),
    };
    let runtime = match args.runtime() {
        Ok(runtime) => runtime,
        Err(err) => return usage(&err),
    };
    let listen = args.get("listen").unwrap_or("127.0.0.1:9001").to_owned();
    // Threshold 0: every echoed message is compressed, so every one exercises the extension.
    let no_takeover = args.flag("no-context-takeover");
    let deflate = args.flag("deflate").then(|| {
        DeflateConfig::new()
            .threshold(0)
            .server_no_context_takeover(no_takeover)
            .client_no_context_takeover(no_takeover)
    });
    if no_takeover && deflate.is_none() {
        return usage("--no-context-takeover goes with --deflate");
    }
    let tls = match (args.get("cert"), args.get("key")) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some((cert.to_owned(), key.to_owned())),
        _ => return usage("--cert and --key go together"),
    };
    support::block_on(runtime, async move {
        let mut config = ServerConfig::default()
            .runtime(runtime)
            .connection(
                Config::server()
                    .max_received_frame_size(LIMIT)
                    .max_received_message_size(LIMIT)
                    .max_fragments_per_message(1 << 20)
                    .fragment_outgoing_messages(false)
                    .keepalive(false),
            )
            .permessage_deflate(deflate);
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        if let Some((cert, key)) = tls {
            match support::server_tls(&cert, &key) {
                Ok(tls) => config = tls(config),
                Err(err) => {
                    eprintln!("echo_server: {err}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let mut server = match Server::bind(listen.as_str(), config).await {
            Ok(server) => server,
            Err(err) => {
                eprintln!("echo_server: cannot listen on {listen}: {err}");
                return ExitCode::FAILURE;
            }
        };
        println!("listening on {scheme}://{}", server.local_addr());
        let mut ctrl_c = std::pin::pin!(support::ctrl_c());
        loop {
            let next = std::future::poll_fn(|cx| {
                use std::task::Poll;
                if ctrl_c.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                std::pin::Pin::new(&mut server).poll_next(cx).map(Some)
            });
            match next.await {
                None => break,
                Some(None) => break,
                Some(Some(request)) => {
                    let protocol = request
                        .requested_protocols()
                        .iter()
                        .any(|p| p == "chat")
                        .then_some("chat");
                    support::spawn(serve(request.accept(protocol)));
                }
            }
        }
        server.shut_down().await;
        ExitCode::SUCCESS
    })
}

/// Completes the handshake, then echoes. A plain `fn` returning an `async move` block, as is
/// `echo`: an `async fn` would keep its arguments and their moved-out copies both in the task,
/// and every byte of a task is per connection (tokio rounds its task cells up to 128 bytes).
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn serve(accepting: Accepting) -> impl Future<Output = ()> + Send {
    async move {
        let Ok(ws) = accepting.await else {
            return;
        };
        echo(ws).await;
    }
}

/// Echoes until the connection closes. Messages are queued, not flushed one by one: the
/// connection writes everything queued in one go when it has read all that was ready.
#[allow(clippy::manual_async_fn)] // on purpose: see `serve`
fn echo(mut ws: WebSocket) -> impl Future<Output = ()> + Send {
    async move {
        loop {
            // A `match` rather than `while let`, so that nothing received is kept in the task
            // across the flush below.
            match ws.recv().await {
                Some(Ok(message)) => {
                    // Fails only once the connection is closing; keep reading to finish the
                    // close.
                    let _ = ws.queue(message);
                    // The rest of the messages that came in the same read, without a round
                    // trip through the future for each.
                    while !ws.is_output_buffer_full() {
                        let Some(message) = ws.try_recv() else { break };
                        let _ = ws.queue(message);
                    }
                }
                Some(Err(_)) => {}
                None => break,
            }
            if ws.is_output_buffer_full() {
                let _ = ws.flush().await;
            }
        }
    }
}

fn usage(err: &str) -> ExitCode {
    eprintln!(
        "echo_server: {err}\nusage: echo_server [--listen ADDR] [--runtime tokio|async-std] [--deflate [--no-context-takeover]] [--cert CHAIN.pem --key KEY.pem]"
    );
    ExitCode::from(2)
}
