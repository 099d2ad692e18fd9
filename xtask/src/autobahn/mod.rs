//! `cargo xtask autobahn`: the Autobahn testsuite against wsflow's server and client.
//!
//! The user's guide is `autobahn/README.md` (the expected files, how they are produced, timings);
//! `cargo xtask autobahn --help` lists the options ([`cli`]).
//!
//! # What a run does
//!
//! 1. **wstest**: installs the testsuite once into `target/autobahn/venv` (pyenv's Python
//!    2.7.18, a virtualenv, every package pinned: see [`wstest`]) and reuses it afterwards.
//! 2. **Build**: the testee binaries, with cargo in release mode. wsflow:
//!    `cargo build --release -p wsflow --example echo_server --example autobahn_client
//!    --features async-std,rustls`; the tokio-tungstenite peers: `cargo build --release -p
//!    wsflow-peers` (also built for a wsflow server run, for the 9.x comparison).
//! 3. **One suite per role and runtime** (`--mode`, `--runtime`), each into a fresh
//!    `target/autobahn/reports/<key>/` (`<runtime>-<role>` for wsflow, `tungstenite-<role>`):
//!    - *server*: starts `echo_server --listen 127.0.0.1:0 --runtime R --deflate`, reads its
//!      stdout until `listening on ws://ADDR`, waits until ADDR accepts a TCP connection, writes
//!      a `fuzzingclient` spec and runs `wstest -m fuzzingclient -s spec.json` to completion,
//!      then kills the server;
//!    - *client*: picks a free ephemeral port (bind port 0, release it), starts
//!      `wstest -m fuzzingserver -s spec.json -u 0` there (`-u 0`: no web server on a fixed
//!      port), waits until the port accepts, runs `autobahn_client ws://127.0.0.1:PORT
//!      --runtime R --deflate` to completion, then stops wstest.
//!
//!    The wsflow testees run with `--deflate`: the server accepts permessage-deflate offers
//!    and the client offers it, so sections 12 and 13 (compression) are exercised; the cases of
//!    sections 1 to 11 offer nothing (server) or are answered without it (client), and run
//!    uncompressed as before.
//! 4. **9.x comparison**: after wsflow server suites that ran 9.x (performance) cases, the same
//!    9.x cases run against the tokio-tungstenite echo server (`tungstenite-server-perf`), so
//!    `docs/conformance.md` can put the durations side by side (`--no-perf-compare` skips it).
//! 5. **Report**: reads each `index.json`, prints a table (a row per runtime and role: cases,
//!    OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED, FAILED, close not OK) and every case that is
//!    not OK with its behaviour, and the 9.x durations.
//! 6. **Check** (wsflow only): every case must pass ([`report::passes`]: OK or INFORMATIONAL
//!    with an OK close, or UNIMPLEMENTED where the expected file's `allow_unimplemented` allows
//!    it) and match `autobahn/expected/<role>.json` ([`expected`]); `--update` rewrites those
//!    files instead of comparing. The tungstenite testee is report only.
//! 7. **Docs**: a full run (no `--cases`) saves each suite's summary in
//!    `autobahn/results/<key>.json` and re-renders `docs/conformance.md` from all summaries
//!    ([`results`]).
//!
//! # Never hanging, never leaking
//!
//! Every child is a [`process::ChildGuard`], killed on every exit path (errors, timeouts,
//! panics). Each phase has a limit: `--startup-timeout` for a server to announce itself and
//! accept connections, `--case-timeout` for wstest to start the next case (a hung testee),
//! `--suite-timeout` for a whole suite, fixed limits for the installation steps. Waiting is
//! for a line or a successful connect, never a fixed sleep. A suite that fails this way is
//! reported with the tail of its logs (`target/autobahn/logs/`) and the other suites still run.

mod cli;
mod expected;
mod process;
mod report;
mod results;
mod tls;
mod wstest;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cmd;
use cli::{Options, Role, Runtime, Testee};
use expected::{ExpectedFile, Observed};
use process::ChildGuard;
use report::{CaseResult, Counts, SuiteReport};
use results::SuiteRecord;

/// The line a server testee prints once it accepts connections, followed by `IP:PORT`.
const LISTENING_PREFIX: &str = "listening on ws://";
/// How often a long case is reported as still running.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How long a finished wstest fuzzingclient may take to exit after closing its output.
const EXIT_GRACE: Duration = Duration::from_secs(30);
/// How many ports to try for wstest's fuzzingserver (another process may take a port between
/// our release of it and wstest's bind).
const PORT_ATTEMPTS: usize = 3;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let options = cli::parse(args)?;
    if options.help {
        println!("{}", cli::USAGE);
        return Ok(());
    }
    let paths = Paths::new();
    if options.render_only {
        return render_docs(&paths);
    }
    paths.create()?;
    let wstest = wstest::bootstrap(&paths.venv, &paths.logs)?;
    println!("autobahn: {}", wstest.version);
    let binaries = build(&options, &paths)?;
    let context = Context {
        options: &options,
        paths: &paths,
        wstest: &wstest,
        binaries: &binaries,
    };

    let mut runs: Vec<SuiteRun> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let patterns = options.case_patterns();
    let suites: Vec<Suite> = options
        .roles
        .iter()
        .flat_map(|&role| {
            options.runtimes.iter().map(move |&runtime| {
                Suite::new(options.testee, runtime, role).over_tls(options.tls)
            })
        })
        .collect();
    // `--jobs N`: N suites at a time (each wstest is one single-threaded Python process).
    for group in suites.chunks(options.jobs.max(1)) {
        let outcomes: Vec<Result<SuiteRun, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|suite| scope.spawn(|| run_suite(&context, suite, &patterns)))
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|_| Err("the suite's thread panicked".to_owned()))
                })
                .collect()
        });
        for (suite, outcome) in group.iter().zip(outcomes) {
            match outcome {
                Ok(run) => runs.push(run),
                Err(err) => {
                    eprintln!("autobahn: {}: {err}", suite.label);
                    errors.push(format!("{}: {err}", suite.label));
                }
            }
        }
    }
    let mut reference: Option<SuiteRun> = None;
    if options.testee == Testee::Wsflow && options.perf_compare {
        let mut perf_cases: Vec<String> = runs
            .iter()
            .filter(|run| run.suite.role == Role::Server)
            .flat_map(|run| run.report.cases.iter())
            .filter(|case| report::section(&case.id) == "9")
            .map(|case| case.id.clone())
            .collect();
        perf_cases.sort_by(|a, b| report::case_order(a, b));
        perf_cases.dedup();
        if !perf_cases.is_empty() {
            let suite = Suite::perf_reference();
            match run_suite(&context, &suite, &perf_cases) {
                Ok(run) => reference = Some(run),
                Err(err) => {
                    eprintln!("autobahn: {}: {err}", suite.label);
                    errors.push(format!("{}: {err}", suite.label));
                }
            }
        }
    }

    print_results(&runs);
    print_performance(runs.iter().chain(reference.as_ref()));

    let mut failures: Vec<String> = Vec::new();
    if options.testee == Testee::Wsflow {
        for &role in &options.roles {
            let role_runs: Vec<&SuiteRun> =
                runs.iter().filter(|run| run.suite.role == role).collect();
            if role_runs.is_empty() {
                continue;
            }
            let incomplete = role_runs.len() < options.runtimes.len();
            failures.extend(check_role(&options, &paths, role, &role_runs, incomplete)?);
        }
    } else {
        println!(
            "\nautobahn: the {} testee is report only: not compared with expected files",
            options.testee.name()
        );
    }

    if options.is_full_run() {
        write_summaries(&paths, &wstest, &runs, reference.as_ref())?;
    } else {
        println!(
            "autobahn: filtered run (--cases): autobahn/results/ and docs/conformance.md are unchanged"
        );
    }

    println!("\nreports: {}", paths.reports.display());
    if errors.is_empty() && failures.is_empty() {
        println!("autobahn: passed");
        return Ok(());
    }
    let mut message = String::from("autobahn failed:");
    for line in errors.iter().chain(&failures) {
        message.push_str("\n  - ");
        message.push_str(line);
    }
    Err(message)
}

/// The directories of a run.
#[derive(Debug)]
struct Paths {
    root: PathBuf,
    target: PathBuf,
    venv: PathBuf,
    reports: PathBuf,
    logs: PathBuf,
    specs: PathBuf,
    expected: PathBuf,
    results: PathBuf,
    conformance: PathBuf,
}

impl Paths {
    fn new() -> Paths {
        let root = cmd::workspace_root();
        // The testees are built by the same cargo into the same target directory.
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        let autobahn = target.join("autobahn");
        Paths {
            venv: autobahn.join("venv"),
            reports: autobahn.join("reports"),
            logs: autobahn.join("logs"),
            specs: autobahn.join("specs"),
            expected: root.join("autobahn").join("expected"),
            results: root.join("autobahn").join("results"),
            conformance: root.join("docs").join("conformance.md"),
            target,
            root,
        }
    }

    fn create(&self) -> Result<(), String> {
        for dir in [&self.reports, &self.logs, &self.specs] {
            std::fs::create_dir_all(dir)
                .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        }
        Ok(())
    }

    fn expected_file(&self, role: Role) -> PathBuf {
        self.expected.join(format!("{}.json", role.name()))
    }
}

/// The testee programs.
#[derive(Debug)]
struct Binaries {
    /// `(server, client, takes --runtime)` of the testee.
    server: PathBuf,
    client: PathBuf,
    runtime_flag: bool,
    /// The testees take `--deflate` (permessage-deflate, for sections 12 and 13).
    deflate_flag: bool,
    /// The tokio-tungstenite echo server, for the 9.x comparison.
    reference_server: PathBuf,
}

fn build(options: &Options, paths: &Paths) -> Result<Binaries, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let release = paths.target.join("release");
    let peers = |binaries: &[&str]| -> Result<(), String> {
        let mut args = vec!["build", "--release", "-p", "wsflow-peers"];
        for binary in binaries {
            args.extend(["--bin", binary]);
        }
        cmd::run(&cargo, &args)
    };
    let reference_server = release.join("tungstenite_echo");
    match options.testee {
        Testee::Wsflow => {
            cmd::run(
                &cargo,
                &[
                    "build",
                    "--release",
                    "-p",
                    "wsflow",
                    "--example",
                    "echo_server",
                    "--example",
                    "autobahn_client",
                    "--features",
                    "async-std,rustls",
                ],
            )
            .map_err(|err| {
                format!(
                    "{err}\n(the wsflow testees are the examples `echo_server` and `autobahn_client` \
                     of crates/wsflow; `--testee tungstenite` runs the pipeline without them)"
                )
            })?;
            if options.roles.contains(&Role::Server) && options.perf_compare {
                peers(&["tungstenite_echo"])?;
            }
            let examples = release.join("examples");
            Ok(Binaries {
                server: examples.join("echo_server"),
                client: examples.join("autobahn_client"),
                runtime_flag: true,
                deflate_flag: true,
                reference_server,
            })
        }
        Testee::Tungstenite => {
            peers(&["tungstenite_echo", "tungstenite_autobahn_client"])?;
            Ok(Binaries {
                server: reference_server.clone(),
                client: release.join("tungstenite_autobahn_client"),
                runtime_flag: false,
                deflate_flag: false,
                reference_server,
            })
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Context<'a> {
    options: &'a Options,
    paths: &'a Paths,
    wstest: &'a wstest::Wstest,
    binaries: &'a Binaries,
}

/// One role of one testee on one runtime.
#[derive(Debug, Clone)]
struct Suite {
    testee: Testee,
    runtime: Runtime,
    role: Role,
    /// The report directory and log names: `tokio-server`, `tungstenite-client`, ...
    key: String,
    /// The summary name in autobahn/results/: `wsflow-tokio-server`, `tungstenite-client`, ...
    record_key: String,
    /// For people: `wsflow tokio server`.
    label: String,
    /// The server serves wss:// (TLS).
    tls: bool,
    /// Runs the reference echo server (the 9.x comparison) instead of the testee's.
    reference: bool,
}

impl Suite {
    fn new(testee: Testee, runtime: Runtime, role: Role) -> Suite {
        let (key, label) = match testee {
            Testee::Wsflow => (
                format!("{}-{}", runtime.name(), role.name()),
                format!("wsflow {} {}", runtime.name(), role.name()),
            ),
            Testee::Tungstenite => (
                format!("tungstenite-{}", role.name()),
                format!("tokio-tungstenite {}", role.name()),
            ),
        };
        let record_key = match testee {
            Testee::Wsflow => format!("wsflow-{key}"),
            Testee::Tungstenite => key.clone(),
        };
        Suite {
            testee,
            runtime,
            role,
            key,
            record_key,
            label,
            reference: false,
            tls: false,
        }
    }

    /// The same suite over wss:// (server role).
    fn over_tls(mut self, tls: bool) -> Suite {
        if tls {
            self.tls = true;
            self.key.push_str("-wss");
            self.record_key.push_str("-wss");
            self.label.push_str(" (wss)");
        }
        self
    }

    fn perf_reference() -> Suite {
        Suite {
            key: "tungstenite-server-perf".to_owned(),
            record_key: "tungstenite-server-perf".to_owned(),
            label: "tokio-tungstenite server (9.x comparison)".to_owned(),
            reference: true,
            ..Suite::new(Testee::Tungstenite, Runtime::Tokio, Role::Server)
        }
    }

    /// The agent name a server suite gives wstest.
    fn server_agent(&self) -> String {
        match self.testee {
            Testee::Wsflow => format!("wsflow-{}", self.runtime.name()),
            Testee::Tungstenite => "tokio-tungstenite".to_owned(),
        }
    }
}

/// A suite that ran to the end.
#[derive(Debug)]
struct SuiteRun {
    suite: Suite,
    report_dir: PathBuf,
    report: SuiteReport,
    wall: Duration,
}

fn run_suite(context: &Context<'_>, suite: &Suite, cases: &[String]) -> Result<SuiteRun, String> {
    println!(
        "\n== autobahn: {} (cases: {}) ==",
        suite.label,
        cases.join(",")
    );
    let report_dir = context.paths.reports.join(&suite.key);
    if report_dir.exists() {
        std::fs::remove_dir_all(&report_dir)
            .map_err(|err| format!("cannot clear {}: {err}", report_dir.display()))?;
    }
    std::fs::create_dir_all(&report_dir)
        .map_err(|err| format!("cannot create {}: {err}", report_dir.display()))?;
    let started = Instant::now();
    match suite.role {
        Role::Server => run_server_suite(context, suite, cases, &report_dir)?,
        Role::Client => run_client_suite(context, suite, cases, &report_dir)?,
    }
    let wall = started.elapsed();
    let report = report::read_index(&report_dir)?;
    println!(
        "autobahn: {}: {} cases in {:.1}s (agent `{}`)",
        suite.label,
        report.cases.len(),
        wall.as_secs_f64(),
        report.agent
    );
    Ok(SuiteRun {
        suite: suite.clone(),
        report_dir,
        report,
        wall,
    })
}

fn log_path(context: &Context<'_>, suite: &Suite, what: &str) -> PathBuf {
    context.paths.logs.join(format!("{}-{what}.log", suite.key))
}

fn write_spec(
    context: &Context<'_>,
    suite: &Suite,
    spec: &serde_json::Value,
) -> Result<PathBuf, String> {
    let path = context.paths.specs.join(format!("{}.json", suite.key));
    let text = serde_json::to_string_pretty(spec).map_err(|err| err.to_string())?;
    std::fs::write(&path, text).map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    Ok(path)
}

fn run_server_suite(
    context: &Context<'_>,
    suite: &Suite,
    cases: &[String],
    report_dir: &Path,
) -> Result<(), String> {
    let options = context.options;
    let binaries = context.binaries;
    let program = if suite.reference {
        &binaries.reference_server
    } else {
        &binaries.server
    };
    let mut command = Command::new(program);
    command.args(["--listen", "127.0.0.1:0"]);
    if binaries.runtime_flag && !suite.reference {
        command.args(["--runtime", suite.runtime.name()]);
    }
    if binaries.deflate_flag && !suite.reference {
        command.arg("--deflate");
    }
    if suite.tls {
        let (cert, key) = tls::certificate(&context.paths.target.join("autobahn").join("tls"))?;
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    println!("$ {}", process::describe(&command));
    let (mut server, lines) = ChildGuard::spawn_logged(
        &format!("the {} testee", suite.label),
        &mut command,
        &log_path(context, suite, "testee"),
    )?;
    let addr = wait_for_listening(&mut server, &lines, options.startup_timeout)?;
    process::wait_until_accepting(addr, &mut server, options.startup_timeout)?;
    let scheme = if suite.tls { "wss" } else { "ws" };
    println!("autobahn: testee listening on {scheme}://{addr}");

    let spec = json!({
        "outdir": report_dir,
        "servers": [{"agent": suite.server_agent(), "url": format!("{scheme}://{addr}")}],
        "cases": cases,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    });
    let spec_path = write_spec(context, suite, &spec)?;
    let mut command = context.wstest.command();
    command
        .arg("-m")
        .arg("fuzzingclient")
        .arg("-s")
        .arg(&spec_path);
    println!("$ {}", process::describe(&command));
    let (mut wstest, wstest_lines) =
        ChildGuard::spawn_logged("wstest", &mut command, &log_path(context, suite, "wstest"))?;
    supervise(
        context,
        &mut wstest,
        &wstest_lines,
        Watch::Server(&mut server),
    )?;
    // The guard kills the server when it goes out of scope; say so explicitly.
    server.kill();
    Ok(())
}

fn run_client_suite(
    context: &Context<'_>,
    suite: &Suite,
    cases: &[String],
    report_dir: &Path,
) -> Result<(), String> {
    let options = context.options;
    let (mut wstest, wstest_lines, port) = {
        let mut attempt = 1;
        loop {
            let port = process::free_port()?;
            let spec = json!({
                "url": format!("ws://127.0.0.1:{port}"),
                "outdir": report_dir,
                "cases": cases,
                "exclude-cases": [],
                "exclude-agent-cases": {},
            });
            let spec_path = write_spec(context, suite, &spec)?;
            let mut command = context.wstest.command();
            // `-u 0`: no embedded web server (it would listen on the fixed port 8080).
            command
                .arg("-m")
                .arg("fuzzingserver")
                .arg("-s")
                .arg(&spec_path)
                .args(["-u", "0"]);
            println!("$ {}", process::describe(&command));
            let (mut wstest, lines) = ChildGuard::spawn_logged(
                "wstest",
                &mut command,
                &log_path(context, suite, "wstest"),
            )?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match process::wait_until_accepting(addr, &mut wstest, options.startup_timeout) {
                Ok(()) => break (wstest, lines, port),
                Err(err) if attempt < PORT_ATTEMPTS && wstest.try_status()?.is_some() => {
                    println!(
                        "autobahn: wstest could not start on port {port}, trying another: {err}"
                    );
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    };
    let mut command = Command::new(&context.binaries.client);
    command.arg(format!("ws://127.0.0.1:{port}"));
    if context.binaries.runtime_flag {
        command.args(["--runtime", suite.runtime.name()]);
    }
    if context.binaries.deflate_flag {
        command.arg("--deflate");
    }
    println!("$ {}", process::describe(&command));
    let mut client = ChildGuard::spawn_to_log(
        &format!("the {} testee", suite.label),
        &mut command,
        &log_path(context, suite, "testee"),
    )?;
    supervise(
        context,
        &mut wstest,
        &wstest_lines,
        Watch::Client(&mut client),
    )?;
    wstest.kill();
    Ok(())
}

/// Reads a server's stdout until `listening on ws://ADDR`.
fn wait_for_listening(
    server: &mut ChildGuard,
    lines: &Receiver<String>,
    timeout: Duration,
) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(format!(
                "{} did not print `{LISTENING_PREFIX}ADDR` within {}s\n{}",
                server.name(),
                timeout.as_secs(),
                server.log_tail()
            ));
        }
        match lines.recv_timeout(remaining) {
            Ok(line) => {
                let line = line
                    .trim()
                    .replacen("listening on wss://", LISTENING_PREFIX, 1);
                if let Some(addr) = line.strip_prefix(LISTENING_PREFIX) {
                    let addr = addr.trim_end_matches('/');
                    return addr.parse().map_err(|err| {
                        format!(
                            "{} printed `{line}`: `{addr}` is not IP:PORT ({err})",
                            server.name()
                        )
                    });
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let status = server.wait_timeout(Duration::from_secs(5))?;
                let status = status.map_or("still running".to_owned(), |status| status.to_string());
                return Err(format!(
                    "{} closed its stdout ({status}) without printing `{LISTENING_PREFIX}ADDR`\n{}",
                    server.name(),
                    server.log_tail()
                ));
            }
        }
    }
}

/// The other process of a suite while wstest runs.
#[derive(Debug)]
enum Watch<'a> {
    /// A testee server that must stay up until wstest (the fuzzingclient) exits.
    Server(&'a mut ChildGuard),
    /// A testee client whose successful exit ends the suite (wstest, the fuzzingserver, never
    /// exits by itself).
    Client(&'a mut ChildGuard),
}

/// What wstest's output told about the progress of a suite.
#[derive(Debug)]
struct Progress {
    started: Instant,
    last_case_at: Instant,
    last_heartbeat: Instant,
    total: Option<usize>,
    done: usize,
    current: Option<String>,
}

impl Progress {
    fn new() -> Progress {
        let now = Instant::now();
        Progress {
            started: now,
            last_case_at: now,
            last_heartbeat: now,
            total: None,
            done: 0,
            current: None,
        }
    }

    fn position(&self) -> String {
        let total = self.total.map_or("?".to_owned(), |total| total.to_string());
        match &self.current {
            Some(case) => format!("at case {case} ({}/{total})", self.done),
            None => "before the first case".to_owned(),
        }
    }

    /// Takes one line of wstest's output; an error if the selection holds no case.
    fn observe(&mut self, line: &str) -> Result<(), String> {
        // "Ok, will run 517 test cases against 1 servers" / "... for any clients connecting"
        if let Some(rest) = line.strip_prefix("Ok, will run ") {
            let total = rest
                .split_whitespace()
                .next()
                .and_then(|count| count.parse().ok());
            if total == Some(0) {
                return Err("no test case matches the --cases selection".to_owned());
            }
            self.total = total;
        }
        // "Running test case ID 1.1.1 for agent X from peer tcp4:127.0.0.1:PORT"
        if let Some(rest) = line.strip_prefix("Running test case ID ") {
            let case = rest.split_whitespace().next().unwrap_or("?").to_owned();
            let section_changed = self
                .current
                .as_deref()
                .is_none_or(|current| report::section(current) != report::section(&case));
            self.done += 1;
            self.last_case_at = Instant::now();
            self.current = Some(case);
            if section_changed {
                self.print();
            }
        }
        Ok(())
    }

    fn print(&mut self) {
        self.last_heartbeat = Instant::now();
        let position = self.position();
        println!(
            "  [{:>6.1}s] {}",
            self.started.elapsed().as_secs_f64(),
            position.strip_prefix("at ").unwrap_or(&position)
        );
    }
}

/// Follows wstest until the suite ends: wstest exits (server suites) or the testee client exits
/// 0 (client suites). Fails when a process dies unexpectedly or a limit passes.
fn supervise(
    context: &Context<'_>,
    wstest: &mut ChildGuard,
    lines: &Receiver<String>,
    mut watch: Watch<'_>,
) -> Result<Progress, String> {
    let options = context.options;
    let mut progress = Progress::new();
    let logs = |wstest: &ChildGuard, watch: &Watch<'_>| {
        let testee = match watch {
            Watch::Server(child) | Watch::Client(child) => child.log_tail(),
        };
        format!("{}\n{testee}", wstest.log_tail())
    };
    loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => progress.observe(&line)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // wstest closed its output: it is exiting.
                let status = wstest.wait_timeout(EXIT_GRACE)?;
                return match (&watch, status) {
                    (Watch::Server(_), Some(status)) if status.success() => Ok(progress),
                    (_, status) => Err(format!(
                        "wstest exited ({}) {}\n{}",
                        status.map_or("closed its output".to_owned(), |s| s.to_string()),
                        progress.position(),
                        logs(wstest, &watch)
                    )),
                };
            }
        }
        let exited = match &mut watch {
            Watch::Server(server) => server
                .try_status()?
                .map(|status| (status, server.name().to_owned(), false)),
            Watch::Client(client) => client
                .try_status()?
                .map(|status| (status, client.name().to_owned(), true)),
        };
        if let Some((status, name, is_client)) = exited {
            if is_client && status.success() {
                return Ok(progress);
            }
            return Err(format!(
                "{name} exited ({status}) {}\n{}",
                progress.position(),
                logs(wstest, &watch)
            ));
        }
        if progress.last_case_at.elapsed() > options.case_timeout {
            return Err(format!(
                "no progress for {}s {}: the testee seems hung (--case-timeout)\n{}",
                options.case_timeout.as_secs(),
                progress.position(),
                logs(wstest, &watch)
            ));
        }
        if progress.started.elapsed() > options.suite_timeout {
            return Err(format!(
                "the suite did not finish within {}s, {} (--suite-timeout)\n{}",
                options.suite_timeout.as_secs(),
                progress.position(),
                logs(wstest, &watch)
            ));
        }
        if progress.last_heartbeat.elapsed() > HEARTBEAT {
            progress.print();
        }
    }
}

fn print_results(runs: &[SuiteRun]) {
    if runs.is_empty() {
        return;
    }
    println!("\n== autobahn results ==\n");
    let mut header: Vec<String> = ["testee", "runtime", "role"].map(str::to_owned).to_vec();
    header.extend(Counts::HEADER.iter().map(|name| (*name).to_owned()));
    header.push("wall time".to_owned());
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            let mut row = vec![
                run.suite.testee.name().to_owned(),
                run.suite.runtime.name().to_owned(),
                run.suite.role.name().to_owned(),
            ];
            row.extend(Counts::of(&run.report.cases).cells());
            row.push(format!("{:.1} s", run.wall.as_secs_f64()));
            row
        })
        .collect();
    println!("{}", report::table(&header, &rows));
    for run in runs {
        let not_ok: Vec<&CaseResult> = run
            .report
            .cases
            .iter()
            .filter(|case| !case.is_ok())
            .collect();
        if not_ok.is_empty() {
            println!("\nnot OK in {}: none", run.suite.label);
            continue;
        }
        println!("\nnot OK in {} ({} cases):", run.suite.label, not_ok.len());
        // Every case, grouped by outcome (no section compression here: the console lists all).
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for case in not_ok {
            let outcome = case.outcome();
            match groups.iter_mut().find(|(group, _)| *group == outcome) {
                Some((_, ids)) => ids.push(case.id.clone()),
                None => groups.push((outcome, vec![case.id.clone()])),
            }
        }
        for (outcome, ids) in groups {
            println!("  {outcome} ({}):", ids.len());
            for line in report::wrap(&ids, 96) {
                println!("    {line}");
            }
        }
    }
}

fn print_performance<'a>(runs: impl Iterator<Item = &'a SuiteRun>) {
    let columns: Vec<&SuiteRun> = runs
        .filter(|run| run.suite.role == Role::Server)
        .filter(|run| {
            run.report
                .cases
                .iter()
                .any(|case| report::section(&case.id) == "9")
        })
        .collect();
    if columns.is_empty() {
        return;
    }
    println!("\n== 9.x durations (ms, as measured by wstest) ==\n");
    let mut cases: Vec<&str> = columns
        .iter()
        .flat_map(|run| run.report.cases.iter())
        .filter(|case| report::section(&case.id) == "9")
        .map(|case| case.id.as_str())
        .collect();
    cases.sort_by(|a, b| report::case_order(a, b));
    cases.dedup();
    let mut header = vec!["case".to_owned()];
    header.extend(columns.iter().map(|run| run.suite.label.clone()));
    let mut totals = vec![0u64; columns.len()];
    let mut rows: Vec<Vec<String>> = cases
        .iter()
        .map(|id| {
            let mut row = vec![(*id).to_owned()];
            for (index, run) in columns.iter().enumerate() {
                match run.report.cases.iter().find(|case| case.id == *id) {
                    Some(case) => {
                        totals[index] += case.duration_ms;
                        row.push(case.duration_ms.to_string());
                    }
                    None => row.push("–".to_owned()),
                }
            }
            row
        })
        .collect();
    let mut total = vec!["total".to_owned()];
    total.extend(totals.iter().map(u64::to_string));
    rows.push(total);
    println!("{}", report::table(&header, &rows));
}

/// Checks (or, with `--update`, rewrites) the expected file of one role against its runs;
/// returns the failures.
fn check_role(
    options: &Options,
    paths: &Paths,
    role: Role,
    runs: &[&SuiteRun],
    incomplete: bool,
) -> Result<Vec<String>, String> {
    let path = paths.expected_file(role);
    let shown = path
        .strip_prefix(&paths.root)
        .unwrap_or(&path)
        .display()
        .to_string();
    let mut file = ExpectedFile::load(&path)?;
    let mut failures = Vec::new();

    if options.update {
        if incomplete {
            failures.push(format!(
                "{shown}: not updated, because not every runtime's {} suite finished",
                role.name()
            ));
        } else {
            let mut ids: Vec<&str> = runs
                .iter()
                .flat_map(|run| run.report.cases.iter().map(|case| case.id.as_str()))
                .collect();
            ids.sort_by(|a, b| report::case_order(a, b));
            ids.dedup();
            let observed: Vec<Observed<'_>> = ids
                .iter()
                .map(|id| Observed {
                    id,
                    runs: runs
                        .iter()
                        .filter_map(|run| {
                            run.report
                                .cases
                                .iter()
                                .find(|case| case.id == *id)
                                .map(|case| (run.suite.runtime.name(), case))
                        })
                        .collect(),
                })
                .collect();
            file.update(&observed, options.is_full_run());
            file.save(&path)?;
            println!("\nautobahn: updated {shown} ({} cases)", file.cases.len());
        }
    }

    if !options.update && file.cases.is_empty() {
        failures.push(format!(
            "{shown} has no cases yet: review a full run, then write it with \
             `cargo xtask autobahn --update` (see autobahn/README.md)"
        ));
    }
    for run in runs {
        let failing: Vec<String> = run
            .report
            .cases
            .iter()
            .filter(|case| !report::passes(case, &file.allow_unimplemented))
            .map(|case| format!("{} {}", case.id, case.outcome()))
            .collect();
        if !failing.is_empty() {
            failures.push(format!(
                "{}: {} cases not OK: {}",
                run.suite.label,
                failing.len(),
                abbreviate(&failing, 20)
            ));
        }
        if options.update || file.cases.is_empty() {
            continue;
        }
        let differences = file.compare(&run.report.cases, options.is_full_run());
        if !differences.is_empty() {
            println!("\ndifferences between {} and {shown}:", run.suite.label);
            for difference in differences.iter().take(100) {
                println!("  {difference}");
            }
            if differences.len() > 100 {
                println!("  ... and {} more", differences.len() - 100);
            }
            failures.push(format!(
                "{}: {} differences from {shown}: {}",
                run.suite.label,
                differences.len(),
                abbreviate(&differences, 5)
            ));
        }
    }
    let missing = file.missing_reasons();
    if !missing.is_empty() {
        failures.push(format!(
            "{shown}: {} cases not OK need a written reason: {}",
            missing.len(),
            abbreviate(&missing, 10)
        ));
    }
    failures.dedup();
    Ok(failures)
}

/// `a; b; c; ... (N more)`.
fn abbreviate(items: &[String], shown: usize) -> String {
    let mut text = items
        .iter()
        .take(shown)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > shown {
        text.push_str(&format!("; ... ({} more)", items.len() - shown));
    }
    text
}

/// Saves the summaries of a full run and re-renders docs/conformance.md.
fn write_summaries(
    paths: &Paths,
    wstest: &wstest::Wstest,
    runs: &[SuiteRun],
    reference: Option<&SuiteRun>,
) -> Result<(), String> {
    let all: Vec<&SuiteRun> = runs.iter().chain(reference).collect();
    if all.is_empty() {
        return Ok(());
    }
    for run in all {
        let suite = &run.suite;
        let record = SuiteRecord::new(
            &suite.record_key,
            [suite.testee.name(), suite.runtime.name(), suite.role.name()],
            &run.report.agent,
            &wstest.version,
            run.wall.as_secs_f64(),
            &run.report.cases,
            &|case| report::case_description(&run.report_dir, case),
        );
        record.save(&paths.results)?;
    }
    render_docs(paths)
}

/// Renders docs/conformance.md (and the README's table) from autobahn/results/.
fn render_docs(paths: &Paths) -> Result<(), String> {
    let records = results::load_all(&paths.results)?;
    let text = results::render_conformance(&records);
    std::fs::write(&paths.conformance, text)
        .map_err(|err| format!("cannot write {}: {err}", paths.conformance.display()))?;
    println!(
        "autobahn: rendered {} from {}",
        paths.conformance.display(),
        paths.results.display()
    );
    crate::readme::update()
}
