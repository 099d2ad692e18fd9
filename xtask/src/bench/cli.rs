//! The command line of `cargo xtask bench`, parsed by hand (the xtask keeps few dependencies).
//!
//! `--quick` and the default full run are a contract other checks rely on: keep them.

use std::time::Duration;

use super::scenario::{SCENARIOS, SERVERS, Scenario, ServerSpec};

pub(crate) const USAGE: &str = "\
usage: cargo xtask bench [options]

Measures wsflow's echo server beside its Rust peers, uWebSockets (through uWebSockets.js on
Node.js) and a raw TCP echo (the ceiling), all in one run on this machine: every server pinned to CPU 0 (taskset -c 0), the load generator
(xtask/peers `loadgen`) on CPU 1. For each round, for each scenario, each server gets one
slice of load in turn (a fresh server process per round), and every echo is verified byte for
byte. Prints, per scenario, the median over rounds of msg/s, MB/s (payload one way), the ratio
to the raw TCP echo in the same round, and the server's CPU time per message; then wsflow's
tokio/async-std ratio, a memory run (server RSS per idle connection with 10,000 connections),
and which of the issue's targets are met. Before each scenario of each round it waits for the
machine to be idle (up to 15 s each time, 60 s per run) and counts the slices that other
processes disturbed anyway (column `others on CPU 0`). Exits 0 when every measurement
completed, whether or not targets are met; non-zero if a server failed (a wrong echo, a crash,
a stall).

A full run (no --quick, no filters) writes docs/performance.md; --write-docs writes it from
any run.

options:
  --quick                 2 rounds of 0.5 s slices (about 2 minutes) instead of 5 rounds of
                          2 s slices (about 11 minutes); the memory run is the same
  --rounds N              rounds [default: 5, quick: 2]
  --slice SECS            measured seconds per slice [default: 2, quick: 0.5]; each slice
                          first runs 0.25 s (quick: 0.1 s) of unmeasured warm-up
  --scenario NAMES        only these scenarios (comma-separated, or repeat the option):
                            20b-d1-c10       20 B binary, 1 in flight, 10 connections
                            1k-d1-c10        1 KiB binary, 1 in flight, 10 connections
                            20b-d1-c100      20 B binary, 1 in flight, 100 connections
                            1k-d1-c100       1 KiB binary, 1 in flight, 100 connections
                            20b-d16-c10      20 B binary, 16 in flight, 10 connections
                            1k-d16-c10       1 KiB binary, 16 in flight, 10 connections
                            64k-bin-d1-c10   64 KiB binary, 1 in flight, 10 connections
                            64k-text-d1-c10  64 KiB text (mostly multi-byte UTF-8), 1 in
                                             flight, 10 connections
  --servers NAMES         only these servers (comma-separated): raw-tcp, wsflow-tokio,
                          wsflow-async-std, fastwebsockets, tokio-websockets,
                          tokio-tungstenite, uwebsockets [default: all]; ratios need
                          raw-tcp
  --memory-conns N        idle connections of the memory run [default: 10000]
  --no-memory             skip the memory run
  --memory-only           only the memory run
  --write-docs            write docs/performance.md from this run even if filtered or quick
  --no-build              use the binaries already in target/release instead of building
                          them (cargo build --release -p wsflow-peers; cargo build --release
                          -p wsflow --example echo_server --features async-std,rustls) and
                          the npm packages already in xtask/peers/uws (npm ci)
  -h, --help              this text

files:
  target/bench/logs/      each server's stderr, per round (and per memory run)
  docs/performance.md     the tables of the latest full run (generated)";

/// What to run.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) rounds: usize,
    pub(crate) slice: Duration,
    pub(crate) warmup: Duration,
    pub(crate) scenarios: Vec<Scenario>,
    pub(crate) servers: Vec<ServerSpec>,
    pub(crate) throughput: bool,
    pub(crate) memory: bool,
    pub(crate) memory_conns: usize,
    /// Write docs/performance.md at the end.
    pub(crate) write_docs: bool,
    pub(crate) build: bool,
    /// The arguments as given, for the report.
    pub(crate) command: String,
}

/// `None`: `--help` was asked for.
pub(crate) fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut quick = false;
    let mut rounds = None;
    let mut slice = None;
    let mut scenario_names: Vec<String> = Vec::new();
    let mut server_names: Vec<String> = Vec::new();
    let mut memory_conns = 10_000;
    let mut no_memory = false;
    let mut memory_only = false;
    let mut force_docs = false;
    let mut build = true;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| iter.next().cloned())
                .ok_or_else(|| format!("{name} needs a value ({what})\n\n{USAGE}"))
        };
        match name {
            "-h" | "--help" => return Ok(None),
            "--quick" => quick = true,
            "--rounds" => rounds = Some(number(name, &value("a number")?)?),
            "--slice" => slice = Some(seconds(name, &value("seconds")?)?),
            "--scenario" | "--scenarios" => {
                scenario_names.extend(split_list(&value("scenario names")?));
            }
            "--servers" | "--server" => server_names.extend(split_list(&value("server names")?)),
            "--memory-conns" => memory_conns = number(name, &value("a number")?)?,
            "--no-memory" => no_memory = true,
            "--memory-only" => memory_only = true,
            "--write-docs" => force_docs = true,
            "--no-build" => build = false,
            other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
        }
    }
    if no_memory && memory_only {
        return Err("--no-memory and --memory-only exclude each other".into());
    }
    let scenarios = select(&scenario_names, SCENARIOS, |s| s.name, "scenario")?;
    let servers = select(&server_names, SERVERS, |s| s.name, "server")?;
    let rounds = rounds.unwrap_or(if quick { 2 } else { 5 });
    if rounds == 0 || memory_conns == 0 {
        return Err("--rounds and --memory-conns must be at least 1".into());
    }
    let filtered = !scenario_names.is_empty()
        || !server_names.is_empty()
        || no_memory
        || memory_only
        || rounds != 5
        || slice.is_some()
        || memory_conns != 10_000;
    let command = if args.is_empty() {
        "cargo xtask bench".to_owned()
    } else {
        format!("cargo xtask bench {}", args.join(" "))
    };
    Ok(Some(Options {
        rounds,
        slice: slice.unwrap_or(if quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(2)
        }),
        warmup: if quick {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(250)
        },
        scenarios,
        servers,
        throughput: !memory_only,
        memory: !no_memory,
        memory_conns,
        write_docs: force_docs || !(quick || filtered),
        build,
        command,
    }))
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The items named in `names` (all of them if `names` is empty), in their canonical order.
fn select<T: Copy>(
    names: &[String],
    all: &[T],
    name_of: impl Fn(&T) -> &'static str,
    what: &str,
) -> Result<Vec<T>, String> {
    if let Some(unknown) = names
        .iter()
        .find(|name| !all.iter().any(|item| name_of(item) == name.as_str()))
    {
        let known: Vec<&str> = all.iter().map(&name_of).collect();
        return Err(format!(
            "unknown {what} `{unknown}` (one of: {})",
            known.join(", ")
        ));
    }
    Ok(all
        .iter()
        .filter(|item| names.is_empty() || names.iter().any(|n| n == name_of(item)))
        .copied()
        .collect())
}

fn number(name: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("{name} {value}: not a number"))
}

fn seconds(name: &str, value: &str) -> Result<Duration, String> {
    let secs: f64 = value
        .parse()
        .map_err(|_| format!("{name} {value}: not a number of seconds"))?;
    if !(0.05..=600.0).contains(&secs) {
        return Err(format!("{name} {value}: between 0.05 and 600 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_default_is_the_full_run_that_writes_the_docs() {
        let options = parse(&[]).unwrap().unwrap();
        assert_eq!(options.rounds, 5);
        assert_eq!(options.slice, Duration::from_secs(2));
        assert_eq!(options.scenarios.len(), SCENARIOS.len());
        assert_eq!(options.servers.len(), SERVERS.len());
        assert!(options.write_docs && options.memory && options.throughput);
    }

    #[test]
    fn quick_and_filters_do_not_write_the_docs() {
        let quick = parse(&args(&["--quick"])).unwrap().unwrap();
        assert_eq!((quick.rounds, quick.write_docs), (2, false));
        let filtered = parse(&args(&["--scenario", "1k-d16-c10,20b-d1-c10"]))
            .unwrap()
            .unwrap();
        let names: Vec<&str> = filtered.scenarios.iter().map(|s| s.name).collect();
        assert_eq!(names, ["20b-d1-c10", "1k-d16-c10"]);
        assert!(!filtered.write_docs);
        let forced = parse(&args(&["--quick", "--write-docs"])).unwrap().unwrap();
        assert!(forced.write_docs);
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(parse(&args(&["--servers", "nginx"])).is_err());
        assert!(parse(&args(&["--scenario=1m"])).is_err());
        assert!(parse(&args(&["--fast"])).is_err());
        assert!(parse(&args(&["--help"])).unwrap().is_none());
    }
}
