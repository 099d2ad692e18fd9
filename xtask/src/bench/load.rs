//! Running the load generator: one throughput slice, or one memory measurement.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{self, Process};
use super::scenario::{Scenario, ServerSpec};
use super::server::RunningServer;
use super::system::{LOAD_CPU, SERVER_CPU};

/// Time allowed beyond the slice itself: connecting, handshakes, start-up.
const SLICE_GRACE: Duration = Duration::from_secs(60);
/// Limit for opening (or echoing on) every idle connection of the memory run.
const MEMORY_STEP: Duration = Duration::from_secs(300);
/// Limit for the server to have accepted every connection the load generator opened.
const ACCEPT_WAIT: Duration = Duration::from_secs(60);

/// One slice: one server under one scenario for one round.
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    pub(crate) round: usize,
    pub(crate) scenario: &'static str,
    pub(crate) server: &'static str,
    /// Echoes completed and verified in the measured time.
    pub(crate) messages: u64,
    pub(crate) elapsed: Duration,
    /// Time the load generator found nothing to do.
    pub(crate) load_idle: Duration,
    /// The server's `utime + stime` over the measured time, in `USER_HZ` ticks.
    pub(crate) server_ticks: u64,
    /// The `utime` part of `server_ticks`: the server's own code, not the kernel's.
    pub(crate) server_user_ticks: u64,
    /// The servers' CPU's busy ticks (anyone's, interrupts included), and the interrupt and
    /// softirq part of them.
    pub(crate) core_busy_ticks: u64,
    pub(crate) core_irq_ticks: u64,
    /// Round trips timed in the measured time (one message per connection at a time), and
    /// their median, 99th and 99.9th percentiles.
    pub(crate) rtt_samples: u64,
    pub(crate) rtt_percentiles: [Duration; 3],
}

/// Runs `loadgen run` against `server` for one slice.
pub(crate) fn slice(
    loadgen: &Path,
    server: &RunningServer,
    scenario: &Scenario,
    round: usize,
    duration: Duration,
    warmup: Duration,
) -> Result<Sample, String> {
    let mut command = Command::new("taskset");
    command
        .args(["-c", LOAD_CPU])
        .arg(loadgen)
        .args(["run", "--target", &server.target()])
        .args(["--size", &scenario.size.to_string()])
        .args(["--depth", &scenario.depth.to_string()])
        .args(["--conns", &scenario.conns.to_string()])
        .arg(if scenario.text { "--text" } else { "--binary" })
        .args(["--duration", &duration.as_secs_f64().to_string()])
        .args(["--warmup", &warmup.as_secs_f64().to_string()])
        .args(["--server-pid", &server.pid().to_string()])
        .args(["--server-cpu", SERVER_CPU]);
    let described = process::describe(&command);
    let mut load = Process::spawn("loadgen", &mut command, None)?;
    let (status, lines) = load.finish(duration + warmup + SLICE_GRACE)?;
    let result = lines.iter().find_map(|line| line.strip_prefix("result "));
    match result {
        Some(result) if status.success() => parse_result(result, round, scenario, server.spec)
            .map_err(|err| format!("{err}\n$ {described}")),
        _ => Err(format!(
            "the load generator failed ({status}) against {}:\n  {}\n$ {described}",
            server.spec.name,
            lines.join("\n  ")
        )),
    }
}

fn parse_result(
    line: &str,
    round: usize,
    scenario: &Scenario,
    server: ServerSpec,
) -> Result<Sample, String> {
    let field = |name: &str| -> Result<u64, String> {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("the load generator's result lacks {name}: `{line}`"))
    };
    Ok(Sample {
        round,
        scenario: scenario.name,
        server: server.name,
        messages: field("messages")?,
        elapsed: Duration::from_nanos(field("elapsed_ns")?),
        load_idle: Duration::from_nanos(field("load_idle_ns")?),
        server_ticks: field("server_cpu_ticks")?,
        server_user_ticks: field("server_user_ticks")?,
        core_busy_ticks: field("core_busy_ticks")?,
        core_irq_ticks: field("core_irq_ticks")?,
        rtt_samples: field("rtt_samples")?,
        rtt_percentiles: [
            Duration::from_nanos(field("rtt_p50_ns")?),
            Duration::from_nanos(field("rtt_p99_ns")?),
            Duration::from_nanos(field("rtt_p999_ns")?),
        ],
    })
}

/// The server's RSS once it stops changing: an accepted connection's task may not have run
/// yet (the raw TCP echo allocates its buffer there), so wait until three readings 50 ms
/// apart agree, for up to 10 s.
fn settled_rss(server: &mut RunningServer) -> Result<u64, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = process::rss_kib(server.pid())?;
    let mut same = 0;
    while same < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        server.check_alive()?;
        let now = process::rss_kib(server.pid())?;
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    Ok(last)
}

/// A server's memory with idle connections.
#[derive(Clone, Debug)]
pub(crate) struct MemorySample {
    pub(crate) server: &'static str,
    pub(crate) conns: usize,
    /// RSS right after start-up, KiB.
    pub(crate) before_kib: u64,
    /// RSS with every connection open (handshake done) and idle, KiB.
    pub(crate) idle_kib: u64,
    /// RSS after one message echoed on every connection, idle again, KiB.
    pub(crate) after_echo_kib: u64,
}

/// Starts `spec` afresh, opens `conns` idle connections to it and reads its RSS before,
/// with them open (handshake done), and after one 16-byte echo on each.
pub(crate) fn memory(
    loadgen: &Path,
    spec: ServerSpec,
    release: &Path,
    log: &Path,
    conns: usize,
) -> Result<MemorySample, String> {
    let mut server = RunningServer::start(spec, release, log)?;
    let pid = server.pid();
    let fds = process::open_fds(pid)?;
    let before_kib = process::rss_kib(pid)?;
    let mut command = Command::new("taskset");
    command
        .args(["-c", LOAD_CPU])
        .arg(loadgen)
        .args(["idle", "--target", &server.target()])
        .args(["--conns", &conns.to_string()]);
    let mut load = Process::spawn("loadgen idle", &mut command, None)?;
    load.wait_for_line("connected ", MEMORY_STEP)?;
    // For the raw echo, connected means queued for accept: wait until the server took them.
    let deadline = Instant::now() + ACCEPT_WAIT;
    while process::open_fds(pid)? < fds + conns {
        server.check_alive()?;
        if Instant::now() >= deadline {
            return Err(format!(
                "{} holds {} descriptors, expected at least {} after {conns} connections",
                spec.name,
                process::open_fds(pid)?,
                fds + conns
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let idle_kib = settled_rss(&mut server)?;
    load.send_line("echo")?;
    load.wait_for_line("echoed ", MEMORY_STEP)?;
    let after_echo_kib = settled_rss(&mut server)?;
    load.close_stdin();
    let (status, lines) = load.finish(MEMORY_STEP)?;
    if !status.success() {
        return Err(format!(
            "the load generator failed ({status}) against {}:\n  {}",
            spec.name,
            lines.join("\n  ")
        ));
    }
    server.check_alive()?;
    Ok(MemorySample {
        server: spec.name,
        conns,
        before_kib,
        idle_kib,
        after_echo_kib,
    })
}
