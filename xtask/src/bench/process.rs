//! Child processes that cannot outlive the run, read line by line with deadlines, and what
//! `/proc` says about them. Nothing here sleeps to let something start: we wait for the line
//! that says it has.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How often a wait for a child's exit checks it.
const POLL: Duration = Duration::from_millis(20);

/// A running child, killed and reaped when dropped; its stdout comes line by line.
#[derive(Debug)]
pub(crate) struct Process {
    name: String,
    child: Child,
    lines: Receiver<String>,
    /// Where its stderr goes, shown when it fails.
    log: Option<std::path::PathBuf>,
}

impl Process {
    /// Starts `command` with stdout piped (see [`Process::next_line`]), stderr into `log`
    /// (or piped into the lines too, when `None`), and stdin piped.
    pub(crate) fn spawn(
        name: &str,
        command: &mut Command,
        log: Option<&Path>,
    ) -> Result<Self, String> {
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        match log {
            Some(log) => {
                let file = std::fs::File::create(log)
                    .map_err(|err| format!("cannot create {}: {err}", log.display()))?;
                command.stderr(Stdio::from(file));
            }
            None => {
                command.stderr(Stdio::piped());
            }
        }
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot start {name} ({}): {err}", describe(command)))?;
        let (sender, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            forward_lines(stdout, sender.clone(), "");
        }
        if let Some(stderr) = child.stderr.take() {
            forward_lines(stderr, sender, "stderr: ");
        }
        Ok(Process {
            name: name.to_owned(),
            child,
            lines,
            log: log.map(Path::to_path_buf),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line of output, waiting up to `timeout`; an error if the child closed its
    /// output (exited) or the time ran out.
    pub(crate) fn next_line(&mut self, timeout: Duration) -> Result<String, String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "{} printed nothing for {} s{}",
                self.name,
                timeout.as_secs_f64(),
                self.log_tail()
            )),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait(Duration::from_secs(5));
                Err(format!(
                    "{} exited ({}){}",
                    self.name,
                    status.map_or_else(|_| "still running".to_owned(), |s| s.to_string()),
                    self.log_tail()
                ))
            }
        }
    }

    /// Reads lines until one starts with `prefix`; returns the rest of it.
    pub(crate) fn wait_for_line(
        &mut self,
        prefix: &str,
        timeout: Duration,
    ) -> Result<(String, Vec<String>), String> {
        let deadline = Instant::now() + timeout;
        let mut other = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .next_line(left)
                .map_err(|err| format!("waiting for `{prefix}...`: {err}\n{}", other.join("\n")))?;
            match line.strip_prefix(prefix) {
                Some(rest) => return Ok((rest.to_owned(), other)),
                None => other.push(line),
            }
        }
    }

    /// Every remaining line, once the child has exited (waiting up to `timeout` for it).
    pub(crate) fn finish(
        &mut self,
        timeout: Duration,
    ) -> Result<(ExitStatus, Vec<String>), String> {
        let status = self.wait(timeout)?;
        // The forwarding threads end when the pipes close: collect what they still hold.
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            lines.push(line);
        }
        Ok((status, lines))
    }

    /// Waits up to `timeout` for the child to exit; kills it then.
    fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    self.kill();
                    return Err(format!(
                        "{} did not finish within {} s (killed)",
                        self.name,
                        timeout.as_secs_f64()
                    ));
                }
                Ok(None) => thread::sleep(POLL),
                Err(err) => return Err(format!("cannot check {}: {err}", self.name)),
            }
        }
    }

    /// Its stdin, to send it commands; closing it (dropping) is end of input.
    pub(crate) fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.child.stdin.as_mut()
    }

    pub(crate) fn close_stdin(&mut self) {
        self.child.stdin.take();
    }

    pub(crate) fn send_line(&mut self, line: &str) -> Result<(), String> {
        let name = self.name.clone();
        let stdin = self
            .stdin()
            .ok_or_else(|| format!("{name}: stdin is closed"))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|err| format!("{name}: cannot write to its stdin: {err}"))
    }

    /// Kills it (if it still runs) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // It may exit between the check and the kill: the error is then meaningless.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Whether it is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_tail(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(10);
        let mut tail = format!("\n--- last lines of {} ---", log.display());
        for line in &lines[start..] {
            tail.push_str("\n  ");
            tail.push_str(line);
        }
        tail
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn forward_lines(stream: impl Read + Send + 'static, sender: mpsc::Sender<String>, prefix: &str) {
    let prefix = prefix.to_owned();
    thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            // The receiver may be gone; keep draining so the child never blocks on a full pipe.
            let _ = sender.send(format!("{prefix}{line}"));
        }
    });
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

/// Resident memory of a process in KiB (`VmRSS` of `/proc/PID/status`).
pub(crate) fn rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|err| format!("{path}: {err}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("{path}: no VmRSS"))
}

/// How many file descriptors a process has open.
pub(crate) fn open_fds(pid: u32) -> Result<usize, String> {
    let path = format!("/proc/{pid}/fd");
    std::fs::read_dir(&path)
        .map(Iterator::count)
        .map_err(|err| format!("{path}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_arrive_and_the_exit_is_seen() {
        let mut process = Process::spawn(
            "sh",
            Command::new("sh").args(["-c", "echo one; echo two >&2; read x; echo got $x"]),
            None,
        )
        .unwrap();
        let (rest, _) = process
            .wait_for_line("on", Duration::from_secs(10))
            .unwrap();
        assert_eq!(rest, "e");
        process.send_line("three").unwrap();
        let (status, lines) = process.finish(Duration::from_secs(10)).unwrap();
        assert!(status.success());
        assert!(lines.contains(&"got three".to_owned()), "{lines:?}");
    }

    #[test]
    fn our_own_memory_and_descriptors_are_readable() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(open_fds(pid).unwrap() >= 3);
    }
}
