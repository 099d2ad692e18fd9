//! The command line of `cargo xtask autobahn`, parsed by hand (the xtask keeps few dependencies).
//!
//! The flags `--runtime`, `--mode`, `--cases`, `--update` and `--testee` are a contract used by
//! CI and the docs: keep them.

use std::time::Duration;

pub(crate) const USAGE: &str = "\
usage: cargo xtask autobahn [options]

Runs the Autobahn testsuite (wstest 0.8.2, installed once into target/autobahn/venv) against
the wsflow server and client, prints a result table per runtime and role and every case that is
not OK, compares the results with autobahn/expected/{server,client}.json, and, after a full run,
regenerates docs/conformance.md. Exits non-zero unless every case is OK (or INFORMATIONAL, or
UNIMPLEMENTED where the expected file allows it) and the results match the expected files.

options:
  --runtime tokio|async-std|all   wsflow runtime(s) to test [default: all]
  --mode server|client|all        role(s) to test [default: all]
                                    server: wstest -m fuzzingclient against the testee's
                                            echo server (`--listen 127.0.0.1:0`)
                                    client: the testee's Autobahn client against
                                            wstest -m fuzzingserver on an ephemeral port
  --cases PATTERN                 only these cases: wstest patterns, comma-separated, e.g.
                                  `1.*`, `9.1.*,5.3`, `12.1.1` [default: every case]; a
                                  filtered run checks only the cases it ran and does not
                                  touch autobahn/results/ or docs/conformance.md
  --update                        rewrite autobahn/expected/<role>.json from this run instead
                                  of comparing: keeps the written reasons, gives a new non-OK
                                  case the reason \"TODO: explain\" (the run fails until it is
                                  written); with --cases only the cases run are rewritten
  --testee wsflow|tungstenite     implementation under test [default: wsflow]
                                    wsflow: examples echo_server and autobahn_client of the
                                            wsflow crate (built with --features async-std,rustls)
                                    tungstenite: the tokio-tungstenite peers of xtask/peers
                                            (tokio only; report only: no expected files, and
                                            its non-OK cases do not fail the run)
  --tls                           test the server over wss:// (TLS from rustls): the echo_server
                                  testee serves a certificate generated into
                                  target/autobahn/tls/ and wstest connects with wss:// (it does
                                  not verify certificates); server role only, no 9.x comparison;
                                  suites are named <runtime>-server-wss
  --jobs N                        run N suites at once [default: 1]; each wstest is one
                                  single-threaded Python process, so on 2 cores `--jobs 2`
                                  halves the wall time (the 9.x durations are then measured on
                                  a busier machine)
  --render                        run nothing: re-render docs/conformance.md (and the README's
                                  table) from autobahn/results/
  --no-perf-compare               after a wsflow server run that includes 9.x cases, do not
                                  run the same 9.x cases against the tokio-tungstenite echo
                                  server for the duration comparison
  --case-timeout SECS             fail when wstest starts no new case for SECS seconds: a hung
                                  testee [default: 120]
  --suite-timeout SECS            fail when one suite (one runtime and role) runs longer
                                  [default: 1800]
  --startup-timeout SECS          limit for a testee server to print `listening on ws://ADDR`
                                  and for it (or wstest) to accept TCP connections [default: 60]
  -h, --help                      this text

files:
  target/autobahn/venv/           wstest (Python 2.7.18 from pyenv, pinned packages)
  target/autobahn/reports/KEY/    wstest's HTML and JSON reports; KEY is <runtime>-<role> for
                                  wsflow, tungstenite-<role>, and tungstenite-server-perf for
                                  the 9.x comparison run
  target/autobahn/logs/           the output of wstest and of the testee of each suite
  autobahn/expected/*.json        the checked-in expected results (see autobahn/README.md)
  autobahn/results/*.json         summary of the latest full run of each suite (generated)
  docs/conformance.md             rendered from autobahn/results/ (generated)";

/// The implementation under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Testee {
    Wsflow,
    Tungstenite,
}

impl Testee {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Testee::Wsflow => "wsflow",
            Testee::Tungstenite => "tungstenite",
        }
    }
}

/// Which side of the connection the testee plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

/// The async runtime the wsflow testee runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runtime {
    Tokio,
    AsyncStd,
}

impl Runtime {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Runtime::Tokio => "tokio",
            Runtime::AsyncStd => "async-std",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) runtimes: Vec<Runtime>,
    pub(crate) roles: Vec<Role>,
    /// `None`: every case (a full run).
    pub(crate) cases: Option<Vec<String>>,
    pub(crate) update: bool,
    pub(crate) testee: Testee,
    pub(crate) perf_compare: bool,
    /// Server suites over wss://.
    pub(crate) tls: bool,
    /// Suites run at once.
    pub(crate) jobs: usize,
    pub(crate) case_timeout: Duration,
    pub(crate) suite_timeout: Duration,
    pub(crate) startup_timeout: Duration,
    pub(crate) help: bool,
    /// Only re-render docs/conformance.md from autobahn/results/.
    pub(crate) render_only: bool,
}

impl Options {
    pub(crate) fn is_full_run(&self) -> bool {
        self.cases.is_none()
    }

    /// The case patterns for the wstest spec.
    pub(crate) fn case_patterns(&self) -> Vec<String> {
        self.cases.clone().unwrap_or_else(|| vec!["*".to_owned()])
    }
}

pub(crate) fn parse(args: &[String]) -> Result<Options, String> {
    let mut runtime: Option<String> = None;
    let mut mode = String::from("all");
    let mut cases: Option<Vec<String>> = None;
    let mut update = false;
    let mut testee = Testee::Wsflow;
    let mut perf_compare = true;
    let mut tls = false;
    let mut jobs = 1;
    let mut case_timeout = Duration::from_secs(120);
    let mut suite_timeout = Duration::from_secs(1800);
    let mut startup_timeout = Duration::from_secs(60);
    let mut help = false;
    let mut render_only = false;

    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            match inline.clone() {
                Some(value) => Ok(value),
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("`{flag}` needs a value\n\n{USAGE}")),
            }
        };
        match flag {
            "-h" | "--help" => help = true,
            "--runtime" => runtime = Some(value()?),
            "--mode" => mode = value()?,
            "--cases" => cases = parse_cases(&value()?)?,
            "--testee" => {
                testee = match value()?.as_str() {
                    "wsflow" => Testee::Wsflow,
                    "tungstenite" => Testee::Tungstenite,
                    other => {
                        return Err(format!(
                            "--testee must be wsflow or tungstenite (got `{other}`)"
                        ));
                    }
                }
            }
            "--update" => update = true,
            "--no-perf-compare" => perf_compare = false,
            "--tls" => tls = true,
            "--render" => render_only = true,
            "--jobs" => {
                let text = value()?;
                jobs = text
                    .parse()
                    .ok()
                    .filter(|jobs| *jobs >= 1)
                    .ok_or_else(|| format!("--jobs {text}: a number of suites, at least 1"))?;
            }
            "--case-timeout" => case_timeout = parse_secs(flag, &value()?)?,
            "--suite-timeout" => suite_timeout = parse_secs(flag, &value()?)?,
            "--startup-timeout" => startup_timeout = parse_secs(flag, &value()?)?,
            other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
        }
    }

    let roles = match mode.as_str() {
        "server" => vec![Role::Server],
        "client" | "all" if tls => {
            if mode == "client" || testee != Testee::Wsflow {
                return Err("--tls tests the wsflow server (wstest connects over wss://): use --mode server".into());
            }
            vec![Role::Server]
        }
        "client" => vec![Role::Client],
        "all" => vec![Role::Server, Role::Client],
        other => {
            return Err(format!(
                "--mode must be server, client or all (got `{other}`)"
            ));
        }
    };
    let runtimes = match (testee, runtime.as_deref()) {
        (_, Some("tokio")) => vec![Runtime::Tokio],
        (Testee::Wsflow, Some("async-std")) => vec![Runtime::AsyncStd],
        (Testee::Wsflow, None | Some("all")) => vec![Runtime::Tokio, Runtime::AsyncStd],
        // The tungstenite peers are tokio programs: `all` means tokio for them.
        (Testee::Tungstenite, None | Some("all")) => vec![Runtime::Tokio],
        (Testee::Tungstenite, Some("async-std")) => {
            return Err("the tungstenite testee runs on tokio only: use --runtime tokio".into());
        }
        (_, Some(other)) => {
            return Err(format!(
                "--runtime must be tokio, async-std or all (got `{other}`)"
            ));
        }
    };
    if update && testee == Testee::Tungstenite {
        return Err(
            "--update writes wsflow's expected files; the tungstenite testee is report only".into(),
        );
    }
    Ok(Options {
        runtimes,
        roles,
        cases,
        update,
        testee,
        perf_compare: perf_compare && !tls,
        tls,
        jobs,
        case_timeout,
        suite_timeout,
        startup_timeout,
        help,
        render_only,
    })
}

/// `1.*, 9.1.*,5.3` -> `["1.*", "9.1.*", "5.3"]`; `*` alone means every case.
fn parse_cases(value: &str) -> Result<Option<Vec<String>>, String> {
    let patterns: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|pattern| !pattern.is_empty())
        .map(str::to_owned)
        .collect();
    if patterns.is_empty() {
        return Err("--cases needs at least one pattern, e.g. `1.*`".into());
    }
    for pattern in &patterns {
        if !pattern
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '*')
        {
            return Err(format!(
                "--cases: `{pattern}` is not a case pattern (digits, dots and `*`, e.g. `9.1.*`)"
            ));
        }
    }
    if patterns.iter().any(|pattern| pattern == "*") {
        return Ok(None);
    }
    Ok(Some(patterns))
}

fn parse_secs(flag: &str, value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "{flag} takes a number of seconds > 0 (got `{value}`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &str) -> Result<Options, String> {
        let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
        parse(&args)
    }

    #[test]
    fn defaults_run_everything_for_wsflow() {
        let options = parse_str("").unwrap();
        assert_eq!(options.runtimes, [Runtime::Tokio, Runtime::AsyncStd]);
        assert_eq!(options.roles, [Role::Server, Role::Client]);
        assert!(options.is_full_run());
        assert_eq!(options.case_patterns(), ["*"]);
        assert_eq!(options.testee, Testee::Wsflow);
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let options =
            parse_str("--runtime=tokio --mode client --cases 1.*,9.1.* --case-timeout=5").unwrap();
        assert_eq!(options.runtimes, [Runtime::Tokio]);
        assert_eq!(options.roles, [Role::Client]);
        assert_eq!(options.case_patterns(), ["1.*", "9.1.*"]);
        assert_eq!(options.case_timeout, Duration::from_secs(5));
    }

    #[test]
    fn star_is_a_full_run() {
        assert!(parse_str("--cases *").unwrap().is_full_run());
    }

    #[test]
    fn tungstenite_is_tokio_only_and_report_only() {
        let options = parse_str("--testee tungstenite").unwrap();
        assert_eq!(options.runtimes, [Runtime::Tokio]);
        assert!(parse_str("--testee tungstenite --runtime async-std").is_err());
        assert!(parse_str("--testee tungstenite --update").is_err());
    }

    #[test]
    fn mistakes_are_errors() {
        assert!(parse_str("--mode both").is_err());
        assert!(parse_str("--cases 1.x").is_err());
        assert!(parse_str("--cases").is_err());
        assert!(parse_str("--frobnicate").is_err());
        assert!(parse_str("--suite-timeout 0").is_err());
    }
}
