//! A tokio-tungstenite echo server, the reference server peer.
//!
//! `tungstenite_echo [--listen IP:PORT]` (default `127.0.0.1:0`) prints `listening on ws://ADDR`
//! once it accepts connections, then echoes every text and binary message of every connection
//! until it is killed. Limits: 64 MiB per message and per frame. TCP_NODELAY is on. It runs on a
//! current-thread tokio runtime: the Autobahn testsuite drives one connection at a time, and a
//! single thread keeps the comparison with other servers free of cross-thread wake-ups.

use std::process::ExitCode;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const USAGE: &str = "usage: tungstenite_echo [--listen IP:PORT]";
const LIMIT: usize = 64 << 20;

fn main() -> ExitCode {
    let addr = match wsflow_peers::server_listen_addr(std::env::args().skip(1)) {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("tungstenite_echo: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tungstenite_echo: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tungstenite_echo: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    wsflow_peers::announce_listening(listener.local_addr()?)?;
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(err) = echo(stream).await {
                // Autobahn sends invalid data on purpose: a protocol error ends the connection
                // and is expected, so it is logged, not fatal.
                eprintln!("tungstenite_echo: {peer}: {err}");
            }
        });
    }
}

async fn echo(stream: TcpStream) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(LIMIT))
        .max_frame_size(Some(LIMIT));
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    // Pings are answered and closes are echoed by tungstenite while reading; `send` flushes.
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}
