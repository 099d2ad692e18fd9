//! Child processes that cannot outlive the run, their output, and waiting with deadlines.
//!
//! Every testee and every wstest is a [`ChildGuard`]: it is killed when the guard is dropped, so
//! an error (`?`), a timeout or a panic anywhere in the run never leaves one behind. Nothing here
//! sleeps for a fixed time to let something start: we wait for a line on stdout or for a TCP
//! connect to succeed, polling with a deadline.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// How often a wait without a line to wake it checks its child and its deadline.
const POLL: Duration = Duration::from_millis(50);

/// A running child process that is killed (and reaped) when dropped.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    name: String,
    child: Child,
    /// Where its stdout and stderr go, shown when it fails.
    log: Option<PathBuf>,
}

impl ChildGuard {
    /// Starts `command`; `name` is how messages refer to it.
    pub(crate) fn spawn(name: &str, command: &mut Command) -> Result<Self, String> {
        let child = command
            .spawn()
            .map_err(|err| format!("cannot start {name} ({command:?}): {err}"))?;
        Ok(ChildGuard {
            name: name.to_owned(),
            child,
            log: None,
        })
    }

    /// Starts `command` with stderr going to `log` and stdout piped: every stdout line is
    /// appended to `log` too and sent on the returned channel, which closes when the child closes
    /// its stdout (normally: when it exits). The log keeps the whole output for later reading;
    /// the channel lets the caller react to lines as they come.
    pub(crate) fn spawn_logged(
        name: &str,
        command: &mut Command,
        log: &Path,
    ) -> Result<(Self, Receiver<String>), String> {
        let log_file =
            File::create(log).map_err(|err| format!("cannot create {}: {err}", log.display()))?;
        let stderr = log_file
            .try_clone()
            .map_err(|err| format!("cannot share {}: {err}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut guard = ChildGuard::spawn(name, command)?;
        guard.log = Some(log.to_path_buf());
        let stdout = guard
            .child
            .stdout
            .take()
            .ok_or_else(|| format!("{name}: no stdout pipe"))?;
        Ok((guard, forward_lines(stdout, log_file)))
    }

    /// Starts `command` with stdout and stderr going to `log`.
    pub(crate) fn spawn_to_log(
        name: &str,
        command: &mut Command,
        log: &Path,
    ) -> Result<Self, String> {
        let log_file =
            File::create(log).map_err(|err| format!("cannot create {}: {err}", log.display()))?;
        let stderr = log_file
            .try_clone()
            .map_err(|err| format!("cannot share {}: {err}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(stderr));
        let mut guard = ChildGuard::spawn(name, command)?;
        guard.log = Some(log.to_path_buf());
        Ok(guard)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Its exit status if it has exited.
    pub(crate) fn try_status(&mut self) -> Result<Option<ExitStatus>, String> {
        self.child
            .try_wait()
            .map_err(|err| format!("cannot check {}: {err}", self.name))
    }

    /// Waits up to `timeout` for it to exit; `None` if it is still running then.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(POLL);
        }
    }

    /// Kills it (if it still runs) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // It may exit between the check and the kill: the error is then meaningless.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// The last lines of its log, to show with an error.
    pub(crate) fn log_tail(&self) -> String {
        match &self.log {
            Some(log) => log_tail(log, 20),
            None => String::new(),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies `stream` line by line into `log` and onto the returned channel.
fn forward_lines(stream: impl Read + Send + 'static, mut log: File) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    // The log is for people; losing a line of it must not stop the run.
                    let _ = log.write_all(&line);
                    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                    // The receiver may be gone (we stopped listening): keep draining the pipe so
                    // the child never blocks on a full pipe.
                    let _ = sender.send(text);
                }
            }
        }
    });
    receiver
}

/// Runs `command` to completion with inherited stdio, failing after `timeout`.
pub(crate) fn run_with_timeout(
    name: &str,
    command: &mut Command,
    timeout: Duration,
) -> Result<(), String> {
    println!("$ {}", describe(command));
    let mut child = ChildGuard::spawn(name, command.stdin(Stdio::null()))?;
    match child.wait_timeout(timeout)? {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("{name} failed ({status}): {}", describe(command))),
        None => Err(format!(
            "{name} did not finish within {}s: {}",
            timeout.as_secs(),
            describe(command)
        )),
    }
}

/// Runs `command` with stdout and stderr captured into `log`, failing after `timeout`;
/// returns what it printed.
pub(crate) fn output_with_timeout(
    name: &str,
    command: &mut Command,
    log: &Path,
    timeout: Duration,
) -> Result<String, String> {
    let mut child = ChildGuard::spawn_to_log(name, command, log)?;
    let status = child.wait_timeout(timeout)?;
    let output = std::fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(status) if status.success() => Ok(output),
        Some(status) => Err(format!(
            "{name} failed ({status}): {}\n{output}",
            describe(command)
        )),
        None => Err(format!(
            "{name} did not finish within {}s",
            timeout.as_secs()
        )),
    }
}

/// A command as a shell line, for messages.
pub(crate) fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// An ephemeral port that was free a moment ago: bind port 0, read the port, release it.
/// (For wstest's fuzzingserver, which needs its port in the spec before it starts; the caller
/// retries with another port if wstest then fails to bind.)
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|err| format!("cannot bind an ephemeral port: {err}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|err| format!("cannot read the ephemeral port: {err}"))
}

/// Waits until `addr` accepts a TCP connection, failing if `owner` exits first or `timeout`
/// passes.
pub(crate) fn wait_until_accepting(
    addr: SocketAddr,
    owner: &mut ChildGuard,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        if let Some(status) = owner.try_status()? {
            return Err(format!(
                "{} exited ({status}) before accepting connections on {addr}\n{}",
                owner.name(),
                owner.log_tail()
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} did not accept connections on {addr} within {}s\n{}",
                owner.name(),
                timeout.as_secs(),
                owner.log_tail()
            ));
        }
        thread::sleep(POLL);
    }
}

/// The last `lines` lines of a log file, indented, headed by its path.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut tail = format!("--- last lines of {} ---", path.display());
    for line in &all[start..] {
        tail.push_str("\n  ");
        tail.push_str(line);
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_kills_its_child() {
        let mut guard = ChildGuard::spawn("sleep", Command::new("sleep").arg("600")).unwrap();
        let pid = guard.child.id();
        assert!(guard.try_status().unwrap().is_none());
        drop(guard);
        // Reaped: the pid is no longer ours (kill -0 fails).
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive);
    }

    #[test]
    fn logged_lines_arrive_and_close_at_exit() {
        let dir = std::env::temp_dir().join(format!("xtask-process-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("echo.log");
        let (mut guard, lines) = ChildGuard::spawn_logged(
            "sh",
            Command::new("sh").args(["-c", "echo one; echo two >&2; echo three"]),
            &log,
        )
        .unwrap();
        let received: Vec<String> = lines.iter().collect();
        assert_eq!(received, ["one", "three"]);
        assert!(
            guard
                .wait_timeout(Duration::from_secs(10))
                .unwrap()
                .unwrap()
                .success()
        );
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("two") && logged.contains("three"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn waiting_for_a_port_fails_when_the_owner_exits() {
        let mut guard = ChildGuard::spawn("true", &mut Command::new("true")).unwrap();
        let port = free_port().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let err = wait_until_accepting(addr, &mut guard, Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("exited"), "{err}");
    }

    #[test]
    fn timeouts_kill() {
        let started = Instant::now();
        let err = run_with_timeout(
            "sleep",
            Command::new("sleep").arg("600"),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
