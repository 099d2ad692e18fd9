//! A line-based client: sends each line of stdin as a text message and prints each text
//! message received as a line.
//!
//! ```sh
//! cargo run --release -p wsflow --features async-std --example client -- ws://127.0.0.1:9001/ [--protocol P]... [--runtime tokio|async-std]
//! cargo run --release -p wsflow --features async-std,rustls --example client -- wss://localhost:9001/ --ca CA.pem
//! cargo run --release -p wsflow --features async-std --example client -- ws://example.com/ --proxy socks5://user:pass@127.0.0.1:1080
//! ```
//!
//! `--ca CA.pem` trusts that certificate authority for `wss://` besides the webpki roots
//! (feature `rustls`). `--proxy URL` connects through an HTTP `CONNECT` (`http://`) or SOCKS5
//! (`socks5://`) proxy, credentials in the URL; without it the proxy environment variables
//! apply (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`), like curl.
//!
//! At the end of stdin it closes with 1000 and exits 0 once the close handshake is done; on
//! any failure it prints what went wrong and exits non-zero.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::io::BufRead;
use std::process::ExitCode;

use wsflow::{Client, ClientConfig, CloseCode, Event, Message, Proxy};

fn main() -> ExitCode {
    let args = match support::Args::parse(&["runtime", "protocol", "proxy", "ca"], &[]) {
        Ok(args) => args,
        Err(err) => return usage(&err),
    };
    let runtime = match args.runtime() {
        Ok(runtime) => runtime,
        Err(err) => return usage(&err),
    };
    let [url] = args.positional.as_slice() else {
        return usage("exactly one URL is needed");
    };
    let mut config = ClientConfig::default()
        .runtime(runtime)
        .protocols(args.all("protocol"))
        .max_received_message_size(64 << 20)
        .max_received_frame_size(64 << 20);
    if let Some(proxy) = args.get("proxy") {
        match Proxy::parse(proxy) {
            Ok(proxy) => config = config.proxy(proxy),
            Err(err) => return usage(&err.to_string()),
        }
    }
    if let Some(ca) = args.get("ca") {
        match support::client_tls(ca) {
            Ok(tls) => config = tls(config),
            Err(err) => return usage(&err),
        }
    }
    let url = url.clone();
    support::block_on(runtime, async move {
        let ws = match Client::new(config).connect(&url).await {
            Ok(ws) => ws,
            Err(err) => {
                eprintln!("client: cannot connect to {url}: {err}");
                return ExitCode::FAILURE;
            }
        };
        let (mut reader, sender) = ws.split();
        // Stdin is read on a thread of its own; its lines go through the sender.
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if async_io::block_on(sender.send_text(line)).is_err() {
                    return;
                }
            }
            let _ = sender.close(CloseCode::NORMAL, None);
        });
        while let Some(event) = reader.next_event().await {
            match event {
                Event::Message(Message::Text(text)) => println!("{text}"),
                Event::Message(Message::Binary(data)) => {
                    eprintln!("client: ({} binary bytes)", data.len())
                }
                Event::Error(err) => eprintln!("client: {err}"),
                Event::Closed(close) => {
                    if close.was_clean && close.code == CloseCode::NORMAL {
                        return ExitCode::SUCCESS;
                    }
                    eprintln!(
                        "client: connection closed with {} ({})",
                        close.code, close.description
                    );
                    return ExitCode::FAILURE;
                }
                _ => {}
            }
        }
        ExitCode::FAILURE
    })
}

fn usage(err: &str) -> ExitCode {
    eprintln!(
        "client: {err}\nusage: client URL [--protocol P]... [--runtime tokio|async-std] [--ca CA.pem] [--proxy URL]"
    );
    ExitCode::from(2)
}
