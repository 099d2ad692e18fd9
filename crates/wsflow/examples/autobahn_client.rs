//! The testee client for the Autobahn fuzzing server: asks for the number of cases, runs each
//! one by echoing every message, then asks the server to write its reports.
//!
//! ```sh
//! cargo run --release -p wsflow --features async-std --example autobahn_client -- ws://127.0.0.1:9001 [--runtime tokio|async-std] [--agent NAME] [--deflate]
//! ```
//!
//! With `--deflate`, offers permessage-deflate (RFC 7692) as `permessage-deflate;
//! client_max_window_bits`, so the server may set every parameter, and compresses every
//! message it echoes, however short.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod support;

use std::process::ExitCode;

use wsflow::core::DeflateConfig;
use wsflow::{Client, ClientConfig, Config, Error, Event, Message, WebSocket};

const LIMIT: usize = 64 << 20;

fn main() -> ExitCode {
    let args = match support::Args::parse(&["runtime", "agent"], &["deflate"]) {
        Ok(args) => args,
        Err(err) => return usage(&err),
    };
    let runtime = match args.runtime() {
        Ok(runtime) => runtime,
        Err(err) => return usage(&err),
    };
    let [base] = args.positional.as_slice() else {
        return usage("exactly one URL is needed");
    };
    let base = base.trim_end_matches('/').to_owned();
    let agent = percent_encode(args.get("agent").unwrap_or("wsflow"));
    // Threshold 0: every echoed message is compressed, so every one exercises the extension.
    let deflate = args
        .flag("deflate")
        .then(|| DeflateConfig::new().threshold(0));
    let client = Client::new(
        ClientConfig::default()
            .runtime(runtime)
            .connection(
                Config::client()
                    .max_received_frame_size(LIMIT)
                    .max_received_message_size(LIMIT)
                    .max_fragments_per_message(1 << 20)
                    .fragment_outgoing_messages(false),
            )
            .permessage_deflate(deflate),
    );
    support::block_on(runtime, async move {
        let count = match case_count(&client, &base).await {
            Ok(count) => count,
            Err(err) => {
                eprintln!("autobahn_client: cannot get the case count from {base}: {err}");
                return ExitCode::FAILURE;
            }
        };
        println!("autobahn_client: {count} cases");
        for case in 1..=count {
            let url = format!("{base}/runCase?case={case}&agent={agent}");
            // A case may end the connection any way it likes; failures show in the report.
            if let Ok(ws) = client.connect(&url).await {
                echo(ws).await;
            }
        }
        let url = format!("{base}/updateReports?agent={agent}");
        match client.connect(&url).await {
            Ok(mut ws) => {
                ws.closed().await;
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("autobahn_client: cannot update the reports: {err}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn case_count(client: &Client, base: &str) -> Result<u32, Error> {
    let mut ws = client.connect(&format!("{base}/getCaseCount")).await?;
    let mut count = None;
    while let Some(event) = ws.next_event().await {
        if let Event::Message(Message::Text(text)) = event {
            count = text.trim().parse().ok();
        }
    }
    count.ok_or_else(|| Error::Unsupported("the server did not send a case count".to_owned()))
}

async fn echo(mut ws: WebSocket) {
    while let Some(received) = ws.recv().await {
        if let Ok(message) = received {
            let _ = ws.queue(message);
            if ws.is_output_buffer_full() {
                let _ = ws.flush().await;
            }
        }
    }
}

/// `value` as a URL query component: every byte but RFC 3986's unreserved characters as `%XX`,
/// so that an agent name with spaces, `&` or `#` reaches the fuzzing server whole.
fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn usage(err: &str) -> ExitCode {
    eprintln!(
        "autobahn_client: {err}\nusage: autobahn_client ws://HOST:PORT [--runtime tokio|async-std] [--agent NAME] [--deflate]"
    );
    ExitCode::from(2)
}
