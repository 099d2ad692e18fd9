//! The machine: what the run needs from it (two CPUs, `taskset`, file descriptors, local
//! ports) and what the report says about it.

use std::process::Command;

/// The CPU the servers run on.
pub(crate) const SERVER_CPU: &str = "0";
/// The CPU the load generator (and this process, while it waits) runs on.
pub(crate) const LOAD_CPU: &str = "1";

/// Checks the machine and raises the open-file limit for us and our children. `conns` is the
/// memory run's connection count (0 without a memory run).
pub(crate) fn prepare(conns: usize) -> Result<(), String> {
    let taskset = Command::new("taskset").arg("-V").output();
    if !taskset.is_ok_and(|out| out.status.success()) {
        return Err("`taskset` (util-linux) is needed to pin servers and load to CPUs".into());
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return Err(format!(
            "the benchmark pins servers to CPU {SERVER_CPU} and the load to CPU {LOAD_CPU}: \
             it needs 2 CPUs, this process may use {cpus}"
        ));
    }
    // Each side of the memory run holds `conns` sockets (the server one per connection, the
    // load generator one per connection); the limit is inherited by every child.
    let wanted = conns as u64 + 1024;
    let limit = rlimit::increase_nofile_limit(wanted)
        .map_err(|err| format!("cannot raise the open-file limit: {err}"))?;
    if limit < wanted {
        return Err(format!(
            "{conns} idle connections need about {wanted} open files per process, the hard \
             limit is {limit}: raise it (ulimit -Hn, /etc/security/limits.conf) or pass a \
             smaller --memory-conns"
        ));
    }
    if conns > 0 {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .map_err(|err| format!("/proc/sys/net/ipv4/ip_local_port_range: {err}"))?;
        let bounds: Vec<u32> = range
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let ports = match bounds.as_slice() {
            [low, high] if high >= low => (high - low + 1) as usize,
            _ => {
                return Err(format!(
                    "ip_local_port_range: unexpected `{}`",
                    range.trim()
                ));
            }
        };
        // One local port per connection (from one client address to one server port), and a
        // margin for the throughput runs' connections in TIME_WAIT.
        if ports < conns + 2000 {
            return Err(format!(
                "{conns} connections from one address need as many local ports; \
                 ip_local_port_range gives {ports} ({}): widen it (sysctl \
                 net.ipv4.ip_local_port_range=\"1024 65535\") or pass a smaller --memory-conns",
                range.trim()
            ));
        }
    }
    Ok(())
}

/// Moves this process to the load generator's CPU, so that the servers' CPU has nothing but
/// the server under load (we only wait for lines while a slice runs).
pub(crate) fn pin_self() -> Result<(), String> {
    let pid = std::process::id().to_string();
    let status = Command::new("taskset")
        .args(["-p", "-c", LOAD_CPU, &pid])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|err| format!("taskset: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("taskset -p -c {LOAD_CPU} {pid} failed ({status})"))
    }
}

/// What the report says about the machine and the toolchain.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cpu_model: String,
    pub(crate) cpus: String,
    pub(crate) kernel: String,
    pub(crate) rustc: String,
    pub(crate) date: String,
}

impl Machine {
    pub(crate) fn detect() -> Self {
        let lscpu = output("lscpu", &[]);
        let field = |name: &str| {
            lscpu
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(|value| value.trim_start_matches(':').trim().to_owned())
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let threads = field("Thread(s) per core");
        let hypervisor = field("Hypervisor vendor");
        let mut cpus = format!("{} CPUs ({} thread(s) per core)", field("CPU(s)"), threads);
        if hypervisor != "unknown" {
            cpus.push_str(&format!(", virtual machine ({hypervisor})"));
        }
        Machine {
            cpu_model: field("Model name"),
            cpus,
            kernel: output("uname", &["-r"]).trim().to_owned(),
            rustc: output("rustc", &["-V"]).trim().to_owned(),
            date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
                .trim()
                .to_owned(),
        }
    }
}

/// What a command printed, or an empty string.
fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// The version of `krate` in the workspace's Cargo.lock.
pub(crate) fn locked_version(lock: &str, krate: &str) -> Option<String> {
    let needle = format!("name = \"{krate}\"\nversion = \"");
    let start = lock.find(&needle)? + needle.len();
    let end = lock[start..].find('"')? + start;
    Some(lock[start..end].to_owned())
}

/// The version of `package` in an npm `package-lock.json` (lockfile version 2 or 3).
pub(crate) fn npm_locked_version(lock: &str, package: &str) -> Option<String> {
    let entry = format!("\"node_modules/{package}\": {{");
    let start = lock.find(&entry)? + entry.len();
    let needle = "\"version\": \"";
    let start = lock[start..].find(needle)? + start + needle.len();
    let end = lock[start..].find('"')? + start;
    Some(lock[start..end].to_owned())
}

/// `USER_HZ`: the unit of the CPU times in `/proc/PID/stat`.
pub(crate) fn clock_ticks_per_second() -> f64 {
    output("getconf", &["CLK_TCK"])
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// The machine's busy and total ticks over all CPUs, from `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect();
    match fields.as_slice() {
        [user, nice, system, idle, iowait, irq, softirq, ..] => {
            let busy = user + nice + system + irq + softirq;
            Some((busy, busy + idle + iowait))
        }
        _ => None,
    }
}

/// How busy the whole machine is over `window` (0.0 to 1.0), `None` if `/proc/stat` is not
/// readable.
pub(crate) fn machine_busy(window: std::time::Duration) -> Option<f64> {
    let (busy0, total0) = machine_ticks()?;
    std::thread::sleep(window);
    let (busy1, total1) = machine_ticks()?;
    let total = total1.saturating_sub(total0);
    (total > 0).then(|| busy1.saturating_sub(busy0) as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_lock_file() {
        let lock = "[[package]]\nname = \"fastwebsockets\"\nversion = \"0.10.0\"\nsource = \"x\"\n";
        assert_eq!(
            locked_version(lock, "fastwebsockets").as_deref(),
            Some("0.10.0")
        );
        assert_eq!(locked_version(lock, "hyper"), None);
    }

    #[test]
    fn the_uwebsockets_version_comes_from_its_package_lock() {
        let lock = std::fs::read_to_string(
            crate::cmd::workspace_root()
                .join(crate::bench::scenario::UWS_SCRIPT)
                .with_file_name("package-lock.json"),
        )
        .unwrap();
        assert_eq!(
            npm_locked_version(&lock, "uws-pack").as_deref(),
            Some("20.0.8")
        );
        assert_eq!(npm_locked_version(&lock, "ws"), None);
    }
}
