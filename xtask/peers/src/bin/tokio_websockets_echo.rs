//! A tokio-websockets echo server, a benchmark peer.
//!
//! `tokio_websockets_echo [--listen IP:PORT]` (default `127.0.0.1:0`) prints
//! `listening on ws://ADDR` once it accepts connections, then echoes every text and binary
//! message until it is killed. Written as tokio-websockets' own `examples/echo_server.rs`:
//! `ServerBuilder::accept`, then `next()` and `send()` (the `SinkExt` send, which flushes) per
//! message, each connection task `unconstrained`, on a current-thread tokio runtime.
//! Differences: TCP_NODELAY is on, and the limits are the library's defaults made explicit
//! (64 MiB payload, outgoing frames of up to 4 MiB) instead of the example's unlimited ones.
//! Pings are answered and closes echoed by tokio-websockets itself.

use std::process::ExitCode;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_websockets::{Config, Error, Limits, ServerBuilder};

const USAGE: &str = "usage: tokio_websockets_echo [--listen IP:PORT]";
const LIMIT: usize = 64 << 20;

fn main() -> ExitCode {
    let addr = match wsflow_peers::server_listen_addr(std::env::args().skip(1)) {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("tokio_websockets_echo: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tokio_websockets_echo: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tokio_websockets_echo: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    wsflow_peers::announce_listening(listener.local_addr()?)?;
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(tokio::task::unconstrained(async move {
            if let Err(err) = echo(stream).await {
                // The load generator resets its connections at the end of a run.
                eprintln!("tokio_websockets_echo: {peer}: {err}");
            }
        }));
    }
}

async fn echo(stream: TcpStream) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let (_request, mut ws) = ServerBuilder::new()
        .config(Config::default().frame_size(4 * 1024 * 1024))
        .limits(Limits::default().max_payload_len(Some(LIMIT)))
        .accept(stream)
        .await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}
