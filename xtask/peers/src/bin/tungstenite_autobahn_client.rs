//! A tokio-tungstenite client for the Autobahn testsuite's `fuzzingserver` mode, the reference
//! client peer.
//!
//! `tungstenite_autobahn_client URL` (for example `ws://127.0.0.1:9001`) asks `URL/getCaseCount`
//! for the number of cases, runs every case as `URL/runCase?case=N&agent=tungstenite` (echoing
//! every text and binary message until the server closes), then asks the server to write its
//! reports with `URL/updateReports?agent=tungstenite`. A case that ends with an error is normal
//! (the testsuite sends invalid data on purpose): it is logged to stderr and the next case runs.
//! Exits 0 when every case was run and the reports were updated.

use std::process::ExitCode;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Error;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const USAGE: &str = "usage: tungstenite_autobahn_client URL  (e.g. ws://127.0.0.1:9001)";
const AGENT: &str = "tungstenite";
const LIMIT: usize = 64 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = match args.as_slice() {
        [url] if url.starts_with("ws://") => url.trim_end_matches('/').to_owned(),
        _ => {
            eprintln!("tungstenite_autobahn_client: expected one ws:// URL\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tungstenite_autobahn_client: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_all(&base)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tungstenite_autobahn_client: {err}");
            ExitCode::FAILURE
        }
    }
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(LIMIT))
        .max_frame_size(Some(LIMIT))
}

async fn run_all(base: &str) -> Result<(), String> {
    let count = case_count(base)
        .await
        .map_err(|err| format!("{base}/getCaseCount: {err}"))?;
    println!("{count} cases");
    for case in 1..=count {
        if let Err(err) = run_case(base, case).await {
            eprintln!("case {case}: {err}");
        }
    }
    let url = format!("{base}/updateReports?agent={AGENT}");
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config()), true)
            .await
            .map_err(|err| format!("{url}: {err}"))?;
    // The server writes the reports, then closes; wait for its close.
    ws.close(None)
        .await
        .map_err(|err| format!("{url}: {err}"))?;
    while let Some(message) = ws.next().await {
        if message.is_err() {
            break;
        }
    }
    println!("reports updated");
    Ok(())
}

async fn case_count(base: &str) -> Result<u32, String> {
    let url = format!("{base}/getCaseCount");
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config()), true)
            .await
            .map_err(|err| err.to_string())?;
    let message = match ws.next().await {
        Some(Ok(message)) => message,
        Some(Err(err)) => return Err(err.to_string()),
        None => return Err("closed before sending the case count".into()),
    };
    let text = message.into_text().map_err(|err| err.to_string())?;
    let count = text
        .trim()
        .parse()
        .map_err(|err| format!("case count `{text}`: {err}"))?;
    // The count arrived; a failing close does not matter.
    let _ = ws.close(None).await;
    Ok(count)
}

async fn run_case(base: &str, case: u32) -> Result<(), Error> {
    let url = format!("{base}/runCase?case={case}&agent={AGENT}");
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config()), true).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}
