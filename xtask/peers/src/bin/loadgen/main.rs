//! The load generator of `cargo xtask bench`: many connections to one echo server, every echo
//! verified byte for byte, on one thread.
//!
//! ```text
//! loadgen run  --target ws://IP:PORT|raw://IP:PORT --size BYTES --depth N --conns N
//!              (--binary|--text) --duration SECS [--warmup SECS] [--server-pid PID]
//!              [--server-cpu N]
//! loadgen idle --target ws://IP:PORT|raw://IP:PORT --conns N
//! loadgen soak --target ws://IP:PORT --conns N --duration SECS [--churn PER_SECOND]
//! ```
//!
//! **soak** (`cargo xtask soak`): see the `soak` module.
//!
//! **run** opens `--conns` connections (for `ws://`, each does a WebSocket client handshake),
//! keeps `--depth` messages of `--size` payload bytes in flight on each (a new one is sent as
//! soon as an echo completes, all that became due on a connection in one write), runs
//! `--warmup` seconds unmeasured and then `--duration` seconds measured, and prints one line:
//!
//! ```text
//! result messages=M elapsed_ns=T load_idle_ns=I server_cpu_ticks=S server_user_ticks=U
//!        load_cpu_ticks=L core_busy_ticks=B core_irq_ticks=Q
//!        rtt_samples=N rtt_p50_ns=A rtt_p99_ns=B rtt_p999_ns=C
//! ```
//!
//! `messages` are echoes completed and verified during the measured time; `load_idle_ns` is the
//! part of it this process spent in polls that found nothing to do (its headroom: near zero
//! means the load generator, not the server, was the limit); the CPU ticks are `utime + stime`
//! of `/proc/PID/stat` (the server's, and our own) over the same interval, in `USER_HZ` ticks,
//! and `server_user_ticks` the server's `utime` part of them (its own code, not the kernel's);
//! `core_busy_ticks` is the time the server's CPU (`--server-cpu`, from `/proc/stat`) was not
//! idle, whoever used it, and `core_irq_ticks` the part of it spent in interrupts and softirqs
//! (where loopback delivers packets, accounted to no process). The `rtt_` fields are round
//! trips measured in the same interval: how many were timed and their median, 99th and 99.9th
//! percentiles, from a message becoming due (written at once unless the socket is full) to
//! its echo verified. One message per connection is timed at a time (see the `latency`
//! module), so `rtt_samples` is well below `messages` when more than one is in flight.
//!
//! - `ws://`: the client frames are masked (as a client must), pre-encoded once; every echo must
//!   come back as a data message of the same type with the same payload (the server may
//!   fragment it); anything else (a ping, a close, an extra byte) fails the run.
//! - `raw://` (the TCP ceiling, against `raw_echo`): the same payload bytes with no framing at
//!   all, and the same bytes expected back; a "message" is `--size` bytes of the echoed stream.
//!
//! The `N = 2 x depth` payloads of a connection all differ and are sent in turn, so an echo
//! that comes back out of order, from the wrong message or twice fails the check. Binary
//! payloads are pseudo-random bytes; text payloads are valid UTF-8, mostly multi-byte
//! characters (Greek, CJK, a 4-byte musical symbol).
//!
//! **idle** (the memory measurement) opens `--conns` connections one after another (handshake
//! for `ws://`), prints `connected N`, then waits for a line on stdin: on `echo` it sends one
//! 16-byte message on every connection and verifies its echo, prints `echoed N` and waits
//! again; on end of input (or `exit`) it ends, closing everything.
//!
//! The loop is mio (epoll, edge-triggered) on one thread; a short read means the socket is
//! drained until the next edge, so a message costs one `write` and one `read` here, no more
//! than the server spends on it. It busy-polls (`epoll_wait` with a zero timeout) and never
//! sleeps: on a virtual machine, waking an idle vCPU costs more than an echo, and a load
//! generator that sleeps between echoes turns the measurement into one of wake-up latency
//! (runs then flip between two speeds). The server is the only side that sleeps, as it would
//! in production; its own core is the one the run measures.

mod handshake;
mod idle;
mod latency;
mod payload;
mod run;
mod soak;
mod verify;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage:
  loadgen run  --target ws://IP:PORT|raw://IP:PORT --size BYTES --depth N --conns N
               (--binary|--text) --duration SECS [--warmup SECS] [--server-pid PID]
               [--server-cpu N]
  loadgen idle --target ws://IP:PORT|raw://IP:PORT --conns N
  loadgen soak --target ws://IP:PORT --conns N --duration SECS [--churn PER_SECOND]";

/// Where to connect and how to talk to it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    /// WebSocket (`ws://`) or plain bytes (`raw://`).
    pub(crate) websocket: bool,
}

/// The options of `loadgen run`.
#[derive(Debug)]
pub(crate) struct RunOptions {
    pub(crate) target: Target,
    pub(crate) size: usize,
    pub(crate) depth: usize,
    pub(crate) conns: usize,
    pub(crate) text: bool,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) server_pid: Option<u32>,
    pub(crate) server_cpu: Option<usize>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => parse_run(&args[1..]).and_then(|options| run::run(&options)),
        Some("idle") => parse_idle(&args[1..]).and_then(|(target, conns)| idle::run(target, conns)),
        Some("soak") => parse_soak(&args[1..]).and_then(|options| soak::run(&options)),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("expected `run`, `idle` or `soak`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loadgen: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` pairs and flags.
struct Args<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    flags: Vec<&'a str>,
}

impl<'a> Args<'a> {
    fn parse(args: &'a [String], flags: &[&str]) -> Result<Self, String> {
        let mut parsed = Args {
            pairs: Vec::new(),
            flags: Vec::new(),
        };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument `{arg}`\n{USAGE}"))?;
            if flags.contains(&name) {
                parsed.flags.push(name);
            } else {
                let value = iter
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value\n{USAGE}"))?;
                parsed.pairs.push((name, value));
            }
        }
        Ok(parsed)
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    fn required(&self, name: &str) -> Result<&'a str, String> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required\n{USAGE}"))
    }

    fn number(&self, name: &str) -> Result<usize, String> {
        let value = self.required(name)?;
        value
            .parse()
            .map_err(|_| format!("--{name} {value}: not a number"))
    }

    fn seconds(&self, name: &str, default: Option<f64>) -> Result<Duration, String> {
        let secs = match self.get(name) {
            Some(value) => value
                .parse::<f64>()
                .map_err(|_| format!("--{name} {value}: not a number of seconds"))?,
            None => default.ok_or_else(|| format!("--{name} is required\n{USAGE}"))?,
        };
        Duration::try_from_secs_f64(secs).map_err(|err| format!("--{name} {secs}: {err}"))
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self.pairs.iter().find(|(name, _)| !known.contains(name)) {
            Some((name, _)) => Err(format!("unknown option --{name}\n{USAGE}")),
            None => Ok(()),
        }
    }
}

fn parse_target(value: &str) -> Result<Target, String> {
    let (websocket, rest) = if let Some(rest) = value.strip_prefix("ws://") {
        (true, rest)
    } else if let Some(rest) = value.strip_prefix("raw://") {
        (false, rest)
    } else {
        return Err(format!(
            "--target {value}: expected ws://IP:PORT or raw://IP:PORT"
        ));
    };
    let addr = rest
        .trim_end_matches('/')
        .parse()
        .map_err(|err| format!("--target {value}: {err}"))?;
    Ok(Target { addr, websocket })
}

fn parse_run(args: &[String]) -> Result<RunOptions, String> {
    let args = Args::parse(args, &["binary", "text"])?;
    args.check_known(&[
        "target",
        "size",
        "depth",
        "conns",
        "duration",
        "warmup",
        "server-pid",
        "server-cpu",
    ])?;
    let text = match (args.flags.contains(&"text"), args.flags.contains(&"binary")) {
        (true, false) => true,
        (false, true) => false,
        _ => return Err(format!("exactly one of --text and --binary\n{USAGE}")),
    };
    let options = RunOptions {
        target: parse_target(args.required("target")?)?,
        size: args.number("size")?,
        depth: args.number("depth")?,
        conns: args.number("conns")?,
        text,
        warmup: args.seconds("warmup", Some(0.2))?,
        duration: args.seconds("duration", None)?,
        server_pid: match args.get("server-pid") {
            Some(pid) => Some(
                pid.parse()
                    .map_err(|_| format!("--server-pid {pid}: not a pid"))?,
            ),
            None => None,
        },
        server_cpu: match args.get("server-cpu") {
            Some(_) => Some(args.number("server-cpu")?),
            None => None,
        },
    };
    if options.size == 0 || options.depth == 0 || options.conns == 0 {
        return Err("--size, --depth and --conns must be at least 1".into());
    }
    Ok(options)
}

fn parse_idle(args: &[String]) -> Result<(Target, usize), String> {
    let args = Args::parse(args, &[])?;
    args.check_known(&["target", "conns"])?;
    Ok((
        parse_target(args.required("target")?)?,
        args.number("conns")?,
    ))
}

fn parse_soak(args: &[String]) -> Result<soak::SoakOptions, String> {
    let args = Args::parse(args, &[])?;
    args.check_known(&["target", "conns", "duration", "churn"])?;
    let target = parse_target(args.required("target")?)?;
    if !target.websocket {
        return Err("loadgen soak speaks WebSocket: --target ws://IP:PORT".into());
    }
    let options = soak::SoakOptions {
        target,
        conns: args.number("conns")?,
        duration: args.seconds("duration", None)?,
        churn_per_second: match args.get("churn") {
            Some(_) => {
                u32::try_from(args.number("churn")?).map_err(|err| format!("--churn: {err}"))?
            }
            None => 100,
        },
    };
    if options.conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    Ok(options)
}

/// Raises the open-file limit to its hard limit: 10,000 idle connections need as many
/// descriptors. (The xtask raises it too; this covers running the binary by hand.)
pub(crate) fn raise_fd_limit(needed: usize) -> Result<(), String> {
    let wanted = needed as u64 + 64;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit >= wanted => Ok(()),
        Ok(limit) => Err(format!(
            "{needed} connections need {wanted} file descriptors, the hard limit is {limit} \
             (raise it: ulimit -Hn)"
        )),
        Err(err) => Err(format!("cannot raise the open-file limit: {err}")),
    }
}

/// `utime + stime` of a process from `/proc/PID/stat` (`self` for our own), in `USER_HZ`
/// ticks, over all its threads (live and exited).
pub(crate) fn cpu_ticks(pid: &str) -> Result<u64, String> {
    let (user, system) = user_and_system_ticks(pid)?;
    Ok(user + system)
}

/// `utime` and `stime` of a process from `/proc/PID/stat`, in `USER_HZ` ticks, over all its
/// threads (live and exited): the time it ran its own code, and the kernel's on its behalf.
pub(crate) fn user_and_system_ticks(pid: &str) -> Result<(u64, u64), String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|err| format!("{path}: {err}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| format!("{path}: unexpected format"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    let field = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("{path}: unexpected format"))
    };
    Ok((field(11)?, field(12)?))
}

/// Ticks a CPU spent busy (user, nice, system, irq, softirq) and the irq + softirq part of
/// them, from `/proc/stat`, in `USER_HZ` ticks.
pub(crate) fn core_ticks(cpu: usize) -> Result<(u64, u64), String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|err| format!("/proc/stat: {err}"))?;
    let name = format!("cpu{cpu}");
    let fields: Vec<u64> = stat
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(name.as_str()))
                .then(|| words.filter_map(|w| w.parse().ok()).collect())
        })
        .ok_or_else(|| format!("/proc/stat has no {name}"))?;
    match fields.as_slice() {
        [user, nice, system, _idle, _iowait, irq, softirq, ..] => {
            Ok((user + nice + system + irq + softirq, irq + softirq))
        }
        _ => Err(format!("/proc/stat: unexpected {name} line")),
    }
}
