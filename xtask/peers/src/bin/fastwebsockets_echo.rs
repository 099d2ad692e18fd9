//! A fastwebsockets echo server, a benchmark peer.
//!
//! `fastwebsockets_echo [--listen IP:PORT]` (default `127.0.0.1:0`) prints
//! `listening on ws://ADDR` once it accepts connections, then echoes every text and binary
//! message until it is killed. Written as fastwebsockets' own `examples/echo_server.rs`: the
//! upgrade through hyper 1 (`fastwebsockets::upgrade`), a `FragmentCollector` (whole messages,
//! text validated as UTF-8), `write_frame` per message, each connection task `unconstrained`,
//! on a current-thread tokio runtime. Additions: TCP_NODELAY, and the message limit set
//! explicitly to 64 MiB (fastwebsockets' default; it has no separate frame limit). Pings are
//! answered and closes echoed by fastwebsockets itself (auto pong, auto close: its defaults).

use std::process::ExitCode;

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;

const USAGE: &str = "usage: fastwebsockets_echo [--listen IP:PORT]";
const LIMIT: usize = 64 << 20;

fn main() -> ExitCode {
    let addr = match wsflow_peers::server_listen_addr(std::env::args().skip(1)) {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("fastwebsockets_echo: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("fastwebsockets_echo: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fastwebsockets_echo: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: std::net::SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    wsflow_peers::announce_listening(listener.local_addr()?)?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let connection = http1::Builder::new()
                .serve_connection(io, service_fn(server_upgrade))
                .with_upgrades();
            if let Err(err) = connection.await {
                eprintln!("fastwebsockets_echo: HTTP: {err}");
            }
        });
    }
}

async fn server_upgrade(
    mut request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgrade) = upgrade::upgrade(&mut request)?;
    tokio::task::spawn(async move {
        if let Err(err) = tokio::task::unconstrained(echo(upgrade)).await {
            // The load generator resets its connections at the end of a run.
            eprintln!("fastwebsockets_echo: {err}");
        }
    });
    Ok(response)
}

async fn echo(upgrade: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = upgrade.await?;
    ws.set_max_message_size(LIMIT);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}
