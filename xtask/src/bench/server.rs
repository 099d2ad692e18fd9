//! Starting a server under test on the servers' CPU and finding where it listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::Process;
use super::scenario::{Kind, ServerSpec};
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
        let binary = binary(release, spec);
        let mut command = Command::new("taskset");
        command
            .args(["-c", SERVER_CPU])
            .arg(&binary)
            .args(["--listen", "127.0.0.1:0"])
            .args(spec.args);
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
            Kind::Wsflow | Kind::Peer => format!("ws://{}", self.addr),
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

/// Where a server's binary is.
pub(crate) fn binary(release: &Path, spec: ServerSpec) -> PathBuf {
    release.join(spec.binary)
}

/// The cargo target directory's `release/`.
pub(crate) fn release_dir(root: &Path) -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    target.join("release")
}
