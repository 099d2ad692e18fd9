//! Starting a server under test on the servers' CPU and finding where it listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::Process;
use super::scenario::{Kind, Program, ServerSpec};
use super::system::SERVER_CPU;

/// The line every server prints once it accepts connections (wsflow's `echo_server` and the
/// peers of `xtask/peers` alike), followed by `IP:PORT`.
const LISTENING_PREFIX: &str = "listening on ws://";
/// How long a server may take to print it.
const STARTUP: Duration = Duration::from_secs(30);

/// A running server.
#[derive(Debug)]
pub(crate) struct RunningServer {
    pub(crate) spec: ServerSpec,
    pub(crate) process: Process,
    pub(crate) addr: SocketAddr,
}

impl RunningServer {
    /// Starts `spec` pinned to the servers' CPU, its stderr going to `log`, and waits until
    /// it says it accepts connections.
    pub(crate) fn start(spec: ServerSpec, release: &Path, log: &Path) -> Result<Self, String> {
        let mut command = Command::new("taskset");
        command.args(["-c", SERVER_CPU]);
        match spec.program {
            Program::Release(_) => command.arg(program_path(release, spec)),
            Program::Node(_) => command.arg("node").arg(program_path(release, spec)),
        };
        command.args(["--listen", "127.0.0.1:0"]).args(spec.args);
        let mut process = Process::spawn(spec.name, &mut command, Some(log))?;
        let (addr, _) = process.wait_for_line(LISTENING_PREFIX, STARTUP)?;
        let addr = addr
            .trim()
            .trim_end_matches('/')
            .parse()
            .map_err(|err| format!("{}: bad address `{addr}`: {err}", spec.name))?;
        Ok(RunningServer {
            spec,
            process,
            addr,
        })
    }

    /// The load generator's `--target`.
    pub(crate) fn target(&self) -> String {
        match self.spec.kind {
            Kind::Raw => format!("raw://{}", self.addr),
            Kind::Wsflow | Kind::Peer | Kind::Reference => format!("ws://{}", self.addr),
        }
    }

    /// The server's pid (taskset execs it, so it is the pid we started).
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Fails if the server has exited (it must run until we kill it).
    pub(crate) fn check_alive(&mut self) -> Result<(), String> {
        if self.process.is_running() {
            Ok(())
        } else {
            Err(format!("{} exited during the run", self.spec.name))
        }
    }
}

/// Where a server's binary (or script) is.
pub(crate) fn program_path(release: &Path, spec: ServerSpec) -> PathBuf {
    match spec.program {
        Program::Release(binary) => release.join(binary),
        Program::Node(script) => crate::cmd::workspace_root().join(script),
    }
}

/// Installs the npm packages of the Node.js servers among `servers` (`npm ci` in each
/// script's directory, from its lock file). Skipped where they are installed already, unless
/// `refresh`.
pub(crate) fn install_node_servers(servers: &[ServerSpec], refresh: bool) -> Result<(), String> {
    for spec in servers {
        let Program::Node(script) = spec.program else {
            continue;
        };
        let script = crate::cmd::workspace_root().join(script);
        let dir = script.parent().unwrap_or(Path::new("."));
        if refresh || !dir.join("node_modules").is_dir() {
            crate::cmd::run_in(
                dir,
                "npm",
                &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
                &[],
            )
            .map_err(|err| format!("{}: installing its npm packages: {err}", spec.name))?;
        }
    }
    Ok(())
}

/// What is missing to start `spec`, if anything.
pub(crate) fn missing(release: &Path, spec: ServerSpec) -> Option<String> {
    let path = program_path(release, spec);
    if !path.is_file() {
        return Some(format!(
            "{} is missing: build it (drop --no-build)",
            path.display()
        ));
    }
    if let Program::Node(_) = spec.program {
        let modules = path.with_file_name("node_modules");
        if !modules.is_dir() {
            return Some(format!(
                "{} is missing: drop --no-build to run `npm ci` there",
                modules.display()
            ));
        }
    }
    None
}

/// The cargo target directory's `release/`.
pub(crate) fn release_dir(root: &Path) -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    target.join("release")
}
