//! A load generator built on wsflow's own client, for what `loadgen` does not speak: `wss://`
//! and permessage-deflate. `cargo xtask bench` runs it against the wsflow echo server over
//! `ws://`, `wss://` and `ws://` with compression, so the three are compared with the same
//! client in the same run.
//!
//! ```text
//! wsflow_load --target ws://IP:PORT|wss://HOST:PORT --conns N --size BYTES --duration SECS
//!             [--warmup SECS] [--ca CA.pem] [--deflate]
//! ```
//!
//! Each connection keeps one text message in flight: JSON-like chat text (compressible, as
//! real traffic is), every echo compared with what was sent. It prints one line:
//! `result messages=M elapsed_ns=T` for the measured time.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use wsflow::{Client, ClientConfig, DeflateConfig, Message, TlsClientConfig};

struct Options {
    target: String,
    conns: usize,
    size: usize,
    duration: Duration,
    warmup: Duration,
    ca: Option<String>,
    deflate: bool,
}

const USAGE: &str = "usage: wsflow_load --target ws://IP:PORT|wss://HOST:PORT --conns N --size BYTES \
--duration SECS [--warmup SECS] [--ca CA.pem] [--deflate]";

fn parse() -> Result<Options, String> {
    let mut options = Options {
        target: String::new(),
        conns: 10,
        size: 1024,
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(250),
        ca: None,
        deflate: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let seconds = |text: String| {
            text.parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or(format!("{text}: not a number of seconds"))
        };
        match arg.as_str() {
            "--target" => options.target = value()?,
            "--conns" => options.conns = value()?.parse().map_err(|_| "--conns: not a number")?,
            "--size" => options.size = value()?.parse().map_err(|_| "--size: not a number")?,
            "--duration" => options.duration = seconds(value()?)?,
            "--warmup" => options.warmup = seconds(value()?)?,
            "--ca" => options.ca = Some(value()?),
            "--deflate" => options.deflate = true,
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    if options.target.is_empty() || options.conns == 0 || options.size == 0 {
        return Err("--target, and --conns and --size of at least 1, are needed".into());
    }
    Ok(options)
}

/// `size` bytes of chat-like JSON, different for each `seed`.
fn payload(size: usize, seed: usize) -> String {
    const WORDS: [&str; 12] = [
        "hello",
        "world",
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dog",
        "websocket",
        "message",
    ];
    let mut text = format!("{{\"id\":{seed},\"user\":\"user{}\",\"text\":\"", seed % 97);
    let mut i = seed;
    while text.len() + 2 < size {
        text.push_str(WORDS[i % WORDS.len()]);
        text.push(' ');
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    text.truncate(size.saturating_sub(2));
    text.push_str("\"}");
    text
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("wsflow_load: {err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("wsflow_load: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wsflow_load: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let mut config = ClientConfig::default()
        .no_proxy()
        .max_received_message_size(64 << 20);
    if options.deflate {
        config = config.permessage_deflate(DeflateConfig::new());
    }
    if let Some(ca) = &options.ca {
        let pem = std::fs::read(ca).map_err(|err| format!("{ca}: {err}"))?;
        let tls = TlsClientConfig::default()
            .add_root_pem(&pem)
            .map_err(|err| err.to_string())?;
        config = config.tls(tls);
    }
    let client = Client::new(config);
    let messages = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for conn in 0..options.conns {
        let mut ws = client
            .connect(&options.target)
            .await
            .map_err(|err| format!("connection {conn}: {err}"))?;
        if options.deflate
            && !ws
                .extensions()
                .iter()
                .any(|e| e.starts_with("permessage-deflate"))
        {
            return Err("the server did not agree to permessage-deflate".into());
        }
        let texts: Vec<String> = (0..8)
            .map(|i| payload(options.size, conn * 8 + i))
            .collect();
        let (messages, stop) = (messages.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let text = &texts[i % texts.len()];
                ws.send_text(text.as_str())
                    .await
                    .map_err(|err| err.to_string())?;
                match ws.next().await {
                    Some(Ok(Message::Text(echo))) if echo.as_str() == text => {}
                    other => return Err(format!("wrong echo: {other:?}")),
                }
                messages.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok::<(), String>(())
        }));
    }
    tokio::time::sleep(options.warmup).await;
    let (start, start_count) = (Instant::now(), messages.load(Ordering::Relaxed));
    tokio::time::sleep(options.duration).await;
    let (elapsed, count) = (
        start.elapsed(),
        messages.load(Ordering::Relaxed) - start_count,
    );
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.map_err(|err| err.to_string())??;
    }
    println!("result messages={count} elapsed_ns={}", elapsed.as_nanos());
    Ok(())
}
