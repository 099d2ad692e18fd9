//! `cargo xtask bench`: wsflow's speed measured side by side with its peers, in one run on one
//! machine.
//!
//! `cargo xtask bench --help` is the user's guide ([`cli::USAGE`]); docs/performance.md, which
//! a full run generates, explains the method next to the results ([`docs`]).
//!
//! # What a run does
//!
//! 1. **Build** (unless `--no-build`): `cargo build --release -p wsflow-peers` (the peers, the
//!    raw TCP echo and the load generator), then `cargo build --release -p wsflow --example
//!    echo_server --features async-std,rustls`, then `npm ci` for the uWebSockets server
//!    (xtask/peers/uws; also whenever its packages are not installed).
//! 2. **Prepare** ([`system`]): `taskset` present, two CPUs, the open-file limit raised for us
//!    and our children, enough local ports for the memory run; then this process moves to the
//!    load generator's CPU so the servers' CPU runs nothing but the server under load.
//! 3. **Throughput**: for each round, start every server afresh ([`server`]: pinned to CPU 0,
//!    ready once it prints `listening on ws://ADDR`); for each scenario ([`scenario`]), give
//!    each server one slice of `loadgen run` ([`load`]) in turn, starting one server later
//!    every round. A failed slice (a wrong echo, a crash) is reported and the run goes on
//!    (a crashed server is restarted); the run then exits non-zero.
//! 4. **Memory**: for each server, a fresh process, `loadgen idle` with 10,000 connections,
//!    and its RSS before, with them idle, and after one echo on each.
//! 5. **Report** ([`report`]): per scenario the medians over rounds, the ratio to the raw TCP
//!    echo in the same round, server CPU per message; wsflow's tokio/async-std ratio and its
//!    ratios to the peers, also per round; the
//!    memory table; the targets, met or missed (missing one does not fail the run: it
//!    is a measurement). A full run writes docs/performance.md ([`docs`]).

mod cli;
mod docs;
mod load;
pub(crate) mod process;
mod report;
mod scenario;
mod server;
mod system;
mod transport;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cmd;
use cli::Options;
use load::{MemorySample, Sample};
use report::Report;
use server::RunningServer;

/// The docs section of the transport comparison ([`transport`]).
const TRANSPORT_INTRO: &str = "
## Transport: ws://, wss://, permessage-deflate

The wsflow echo server (tokio) over plain `ws://`, over `wss://` (rustls, TLS 1.3), and over
`ws://` with permessage-deflate (every echo compressed), all driven by the same client:
`wsflow_load` (xtask/peers), wsflow's own client, since the load generator above speaks
neither TLS nor compression. Ten connections, one 1 KiB message of chat-like JSON text in
flight on each; server on CPU 0, client on CPU 1; medians over the rounds, and the ratio to
plain `ws://` with the same client in the same run.

";

/// Most the machine may be busy with other work when a scenario starts (of all CPUs).
const QUIET_BUSY: f64 = 0.10;
/// How long to wait for that before one scenario, and in a whole run, before measuring anyway.
const QUIET_WAIT_EACH: Duration = Duration::from_secs(15);
const QUIET_WAIT_TOTAL: Duration = Duration::from_secs(60);

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let Some(options) = cli::parse(args)? else {
        println!("{}", cli::USAGE);
        return Ok(());
    };
    let root = cmd::workspace_root();
    if options.build {
        cmd::run("cargo", &["build", "--release", "-p", "wsflow-peers"])?;
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
    server::install_node_servers(&options.servers, options.build)?;
    let release = server::release_dir(&root);
    let loadgen = release.join("loadgen");
    if !loadgen.is_file() {
        return Err(format!(
            "{} is missing: build it (drop --no-build)",
            loadgen.display()
        ));
    }
    if let Some(missing) = options
        .servers
        .iter()
        .find_map(|spec| server::missing(&release, *spec))
    {
        return Err(missing);
    }
    system::prepare(if options.memory {
        options.memory_conns
    } else {
        0
    })?;
    system::pin_self()?;
    let machine = system::Machine::detect();
    let logs = release
        .parent()
        .unwrap_or(&release)
        .join("bench")
        .join("logs");
    std::fs::create_dir_all(&logs)
        .map_err(|err| format!("cannot create {}: {err}", logs.display()))?;

    let started = Instant::now();
    let mut failures = Vec::new();
    let samples = if options.throughput {
        throughput(&options, &release, &loadgen, &logs, &mut failures)?
    } else {
        Vec::new()
    };
    let memory = if options.memory {
        memory(&options, &release, &loadgen, &logs, &mut failures)
    } else {
        Vec::new()
    };
    // wss:// and permessage-deflate beside ws://, on wsflow's own client.
    let transport = if options.throughput
        && options
            .servers
            .iter()
            .any(|server| server.name == "wsflow-tokio")
    {
        match transport::run(&options, &release, &logs) {
            Ok(table) => Some(table),
            Err(err) => {
                failures.push(format!("transport comparison: {err}"));
                None
            }
        }
    } else {
        None
    };
    let wall_time = started.elapsed();

    let report = Report {
        scenarios: &options.scenarios,
        servers: &options.servers,
        samples: &samples,
        memory: &memory,
        ticks_per_sec: system::clock_ticks_per_second(),
    };
    println!("\n## Throughput\n\n{}", report.throughput_tables());
    if let Some(table) = report.runtime_table() {
        println!("## wsflow: tokio / async-std\n\n{table}");
    }
    if let Some(table) = report.memory_table() {
        println!("## Memory per idle connection\n\n{table}");
    }
    if let Some(table) = &transport {
        println!("## Transport: ws://, wss://, permessage-deflate\n\n{table}");
    }
    let (targets, met, total) = report.targets();
    println!("## Targets: {met} of {total} met\n\n{targets}");
    let (disturbed, slices) = report.disturbed_slices();
    if disturbed > 0 {
        println!(
            "xtask bench: {disturbed} of {slices} slices saw other processes use more than 5% of \
             CPU {} (another job on the machine): rerun on a quiet machine for clean figures",
            system::SERVER_CPU
        );
    }
    println!(
        "xtask bench: {} in {} s ({})",
        machine.cpu_model,
        wall_time.as_secs(),
        options.command
    );

    if !failures.is_empty() {
        return Err(format!(
            "{} measurement(s) failed (docs/performance.md not written):\n- {}",
            failures.len(),
            failures.join("\n- ")
        ));
    }
    if options.write_docs {
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
        let context = docs::Context {
            options: &options,
            machine: &machine,
            wall_time,
            lock: &lock,
        };
        let mut page = docs::render(&report, &context);
        if let Some(table) = &transport {
            page.push_str(TRANSPORT_INTRO);
            page.push_str(table);
        }
        let path = root.join("docs").join("performance.md");
        std::fs::write(&path, page)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        println!("xtask bench: wrote {}", path.display());
        crate::readme::update()?;
    }
    Ok(())
}

/// The interleaved rounds; failed slices go to `failures`.
fn throughput(
    options: &Options,
    release: &Path,
    loadgen: &Path,
    logs: &Path,
    failures: &mut Vec<String>,
) -> Result<Vec<Sample>, String> {
    let slices = options.rounds * options.scenarios.len() * options.servers.len();
    let per_slice = options.slice + options.warmup + Duration::from_millis(150);
    println!(
        "xtask bench: {} rounds x {} scenarios x {} servers = {slices} slices of {} s, about \
         {} s",
        options.rounds,
        options.scenarios.len(),
        options.servers.len(),
        options.slice.as_secs_f64(),
        (per_slice * slices as u32).as_secs()
    );
    let mut samples = Vec::new();
    let mut quiet_budget = QUIET_WAIT_TOTAL;
    for round in 0..options.rounds {
        let log = |name: &str| logs.join(format!("{name}-round{}.log", round + 1));
        let mut running = Vec::new();
        for spec in &options.servers {
            running.push(RunningServer::start(*spec, release, &log(spec.name))?);
        }
        for scenario in &options.scenarios {
            wait_until_quiet(&mut quiet_budget);
            for k in 0..running.len() {
                let server = &mut running[(k + round) % options.servers.len()];
                let result = load::slice(
                    loadgen,
                    server,
                    scenario,
                    round,
                    options.slice,
                    options.warmup,
                );
                match result {
                    Ok(sample) => {
                        println!(
                            "round {}/{}  {:<16} {:<17} {:>11} msg/s  {:>6.2} µs/msg",
                            round + 1,
                            options.rounds,
                            scenario.name,
                            server.spec.name,
                            report::thousands(
                                sample.messages as f64 / sample.elapsed.as_secs_f64()
                            ),
                            sample.server_ticks as f64 / system::clock_ticks_per_second() * 1e6
                                / sample.messages.max(1) as f64,
                        );
                        samples.push(sample);
                    }
                    Err(err) => {
                        let failure = format!(
                            "round {} {} {}: {err}",
                            round + 1,
                            scenario.name,
                            server.spec.name
                        );
                        println!("FAILED {failure}");
                        failures.push(failure);
                        if server.check_alive().is_err() {
                            let spec = server.spec;
                            *server = RunningServer::start(spec, release, &log(spec.name))?;
                        }
                    }
                }
            }
        }
        for server in &mut running {
            if let Err(err) = server.check_alive() {
                failures.push(format!("round {}: {err}", round + 1));
            }
        }
    }
    Ok(samples)
}

/// Other jobs on the machine disturb the measurement: before each scenario of each round
/// (when our servers are idle), wait until the machine is mostly idle, up to
/// [`QUIET_WAIT_EACH`] each time and [`QUIET_WAIT_TOTAL`] in all (a machine that stays busy
/// should not stretch the run without end). The tables' *others on CPU 0* column and the
/// disturbance count show what remained.
fn wait_until_quiet(budget: &mut Duration) {
    let started = Instant::now();
    let limit = QUIET_WAIT_EACH.min(*budget);
    let mut busy = 0.0;
    while let Some(now) = system::machine_busy(Duration::from_millis(250)) {
        busy = now;
        if busy <= QUIET_BUSY || started.elapsed() >= limit {
            break;
        }
    }
    let waited = started.elapsed().saturating_sub(Duration::from_millis(250));
    *budget = budget.saturating_sub(waited);
    if busy > QUIET_BUSY {
        println!(
            "xtask bench: the machine is {:.0}% busy with other work (waited {} s): measuring \
             anyway",
            busy * 100.0,
            waited.as_secs()
        );
    }
}

/// The memory run; failed servers go to `failures`.
fn memory(
    options: &Options,
    release: &Path,
    loadgen: &Path,
    logs: &Path,
    failures: &mut Vec<String>,
) -> Vec<MemorySample> {
    println!(
        "xtask bench: memory with {} idle connections per server",
        options.memory_conns
    );
    let mut samples = Vec::new();
    for spec in &options.servers {
        let log = logs.join(format!("{}-memory.log", spec.name));
        match load::memory(loadgen, *spec, release, &log, options.memory_conns) {
            Ok(sample) => {
                println!(
                    "memory  {:<17} {:>8.1} KiB per idle connection",
                    spec.name,
                    (sample.idle_kib as f64 - sample.before_kib as f64) / sample.conns as f64
                );
                samples.push(sample);
            }
            Err(err) => {
                let failure = format!("memory {}: {err}", spec.name);
                println!("FAILED {failure}");
                failures.push(failure);
            }
        }
    }
    samples
}
