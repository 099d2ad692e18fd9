//! A plain TCP echo server: the ceiling `cargo xtask bench` measures every WebSocket server
//! against.
//!
//! `raw_echo [--listen IP:PORT]` (default `127.0.0.1:0`) prints `listening on ws://ADDR` (the
//! same line as the WebSocket peers, so the xtask drives every server alike, although this one
//! speaks no WebSocket) and then, for every connection, reads into one 64 KiB buffer and writes
//! back exactly what it read, until the peer closes. No framing, no parsing, no copy beyond the
//! kernel's: what is left is the cost of the TCP round trip itself. TCP_NODELAY is on. It runs
//! on a current-thread tokio runtime, like the other peers.

use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: raw_echo [--listen IP:PORT]";
/// One read's worth: as much as loopback usually delivers at once (its MTU is 64 KiB).
const BUFFER: usize = 64 * 1024;

fn main() -> ExitCode {
    let addr = match wsflow_peers::server_listen_addr(std::env::args().skip(1)) {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("raw_echo: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("raw_echo: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("raw_echo: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    wsflow_peers::announce_listening(listener.local_addr()?)?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            // A reset by the load generator at the end of a run is how connections end here.
            let _ = echo(stream).await;
        });
    }
}

async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}
