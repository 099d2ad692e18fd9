//! `cargo xtask soak`: many connections echoing and churning on loopback for a fixed time
//! against the `echo_server` example, reporting messages, errors, and the server's memory
//! and open files at start and end.
//!
//! The load is `loadgen soak` (xtask/peers): every connection keeps one verified echo in
//! flight, and `--churn` times a second one connection is ended in a hostile way (a close
//! frame and gone, EOF mid-frame, an unmasked frame, vanished with an echo in flight) and
//! replaced. The run fails on any echo that did not verify, any connection the server ended
//! on its own, any reconnect that failed, or a server that does not get back to the open
//! files it had before the connections (a leak).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::bench::process::{Process, open_fds, rss_kib};
use crate::cmd;

const USAGE: &str = "usage: cargo xtask soak [--connections N] [--seconds S] [--churn PER_SECOND]
                         [--runtime tokio|async-std|all] [--no-build]

Runs the echo_server example and `loadgen soak` against it: N connections (default 1000), each
with one verified echo in flight, for S seconds (default 30), while --churn connections a second
(default 100) are ended in hostile ways and replaced. Prints messages, errors, churned
connections, and the server's RSS and open files before, with the connections, at the end, and
after they are gone. The open-file limit is raised for the run (10,000 connections need it).
Fails on any error or when the server's open files do not return to where they started.";

struct Options {
    connections: usize,
    seconds: u64,
    churn: u64,
    runtimes: Vec<&'static str>,
    build: bool,
}

fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut options = Options {
        connections: 1000,
        seconds: 30,
        churn: 100,
        runtimes: vec!["tokio"],
        build: true,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value\n\n{USAGE}"))
        };
        let number = |text: String| {
            text.parse::<u64>()
                .map_err(|_| format!("{arg} {text}: not a number"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--connections" => options.connections = number(value()?)? as usize,
            "--seconds" => options.seconds = number(value()?)?,
            "--churn" => options.churn = number(value()?)?,
            "--runtime" => {
                options.runtimes = match value()?.as_str() {
                    "tokio" => vec!["tokio"],
                    "async-std" => vec!["async-std"],
                    "all" => vec!["tokio", "async-std"],
                    other => return Err(format!("--runtime {other}: tokio, async-std or all")),
                }
            }
            "--no-build" => options.build = false,
            other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
        }
    }
    if options.connections == 0 || options.seconds == 0 {
        return Err("--connections and --seconds must be at least 1".into());
    }
    Ok(Some(options))
}

/// What one soak run measured.
struct Outcome {
    runtime: &'static str,
    result: String,
    rss_kib: [u64; 4],
    fds: [usize; 4],
    errors: u64,
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let Some(options) = parse(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    if options.build {
        cmd::run(
            "cargo",
            &[
                "build",
                "--release",
                "-p",
                "wsflow-peers",
                "--bin",
                "loadgen",
            ],
        )?;
        cmd::run(
            "cargo",
            &[
                "build",
                "--release",
                "-p",
                "wsflow",
                "--example",
                "echo_server",
                "--features",
                "async-std,rustls",
            ],
        )?;
    }
    // The server holds one socket per connection, the load generator as many; both inherit
    // the limit.
    let wanted = options.connections as u64 + 1024;
    let limit = rlimit::increase_nofile_limit(wanted)
        .map_err(|err| format!("cannot raise the open-file limit: {err}"))?;
    if limit < wanted {
        return Err(format!(
            "{} connections need {wanted} open files, the hard limit is {limit} (ulimit -Hn)",
            options.connections
        ));
    }
    let release = cmd::workspace_root().join("target").join("release");
    let mut outcomes = Vec::new();
    for runtime in &options.runtimes {
        outcomes.push(soak_once(&options, runtime, &release)?);
    }
    println!(
        "\n| runtime | connections | seconds | result | RSS before / connected / end / after (MiB) | open files before / connected / end / after |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
    for outcome in &outcomes {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            outcome.runtime,
            options.connections,
            options.seconds,
            outcome.result,
            outcome.rss_kib.map(mib).join(" / "),
            outcome.fds.map(|n| n.to_string()).join(" / "),
        );
    }
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.errors > 0 || o.fds[3] > o.fds[0])
        .collect();
    if failed.is_empty() {
        println!("\nsoak: passed");
        Ok(())
    } else {
        Err(format!(
            "soak failed on {}: errors, or open files not back to where they started",
            failed
                .iter()
                .map(|o| o.runtime)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

fn soak_once(
    options: &Options,
    runtime: &'static str,
    release: &std::path::Path,
) -> Result<Outcome, String> {
    println!(
        "\n== soak: {runtime}, {} connections, {} s, churn {}/s ==",
        options.connections, options.seconds, options.churn
    );
    let mut server = Process::spawn(
        "echo_server",
        Command::new(release.join("examples").join("echo_server")).args([
            "--listen",
            "127.0.0.1:0",
            "--runtime",
            runtime,
        ]),
        None,
    )?;
    let (addr, _) = server.wait_for_line("listening on ws://", Duration::from_secs(30))?;
    let pid = server.pid();
    let sample = || -> Result<(u64, usize), String> { Ok((rss_kib(pid)?, open_fds(pid)?)) };
    let before = sample()?;

    let mut load = Process::spawn(
        "loadgen soak",
        Command::new(release.join("loadgen")).args([
            "soak",
            "--target",
            &format!("ws://{}", addr.trim()),
            "--conns",
            &options.connections.to_string(),
            "--duration",
            &options.seconds.to_string(),
            "--churn",
            &options.churn.to_string(),
        ]),
        None,
    )?;
    let connect_time = Duration::from_secs(60 + options.connections as u64 / 100);
    load.wait_for_line("connected ", connect_time)?;
    let connected = sample()?;
    println!(
        "soak: {} connections open; server RSS {} KiB, {} open files",
        options.connections, connected.0, connected.1
    );
    let mut peak_rss = connected.0;
    let deadline = Instant::now() + Duration::from_secs(options.seconds + 60);
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = load.next_line(left)?;
        if let Ok(rss) = rss_kib(pid) {
            peak_rss = peak_rss.max(rss);
        }
        if let Some(rest) = line.strip_prefix("result ") {
            break rest.to_owned();
        }
        println!("soak: {line}");
    };
    let end = sample()?;
    load.send_line("exit")?;
    let _ = load.finish(Duration::from_secs(30));
    // The server notices every EOF and frees the connections; wait for its files to go back.
    let settle = Instant::now() + Duration::from_secs(15);
    let mut after = sample()?;
    while after.1 > before.1 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(100));
        after = sample()?;
    }
    server.kill();
    let errors = result
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| *name == "errors" || *name == "reconnect_failures")
        .map(|(_, value)| value.parse::<u64>().unwrap_or(u64::MAX))
        .sum();
    println!("soak: {result}; server RSS peak {peak_rss} KiB");
    Ok(Outcome {
        runtime,
        result,
        rss_kib: [before.0, connected.0, end.0, after.0],
        fds: [before.1, connected.1, end.1, after.1],
        errors,
    })
}
