//! Out of file descriptors: when `accept` fails because the process has no descriptor left,
//! the server pauses accepting instead of spinning on the error, and serves again as soon as
//! descriptors are freed. Its own test binary, with one test, because it lowers the process's
//! open-file limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::*;
use wsflow::{Message, Server, ServerConfig};

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// CPU time this process has used (user + system), from `/proc/self/stat`, opened in
/// advance (no descriptor is free when it is read).
fn cpu_time(stat_file: &mut std::fs::File) -> Duration {
    use std::io::{Read, Seek};
    stat_file.rewind().unwrap();
    let mut stat = String::new();
    stat_file.read_to_string(&mut stat).unwrap();
    let fields: Vec<u64> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime, in clock ticks (100 per second on Linux).
    Duration::from_millis((fields[11] + fields[12]) * 10)
}

#[test]
fn accept_errors_pause_accepting_and_serving_resumes_when_descriptors_return() {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    on_both_runtimes(|runtime| async move {
        let server = Server::bind("127.0.0.1:0", ServerConfig::default().runtime(runtime))
            .await
            .unwrap();
        let addr = server.local_addr();
        serve_echo(runtime, server);
        // Room for 20 more descriptors: 20 client sockets use them all, so the server's
        // accepts fail with EMFILE while their connections wait in the backlog.
        let mut stat_file = std::fs::File::open("/proc/self/stat").unwrap();
        rlimit::setrlimit(rlimit::Resource::NOFILE, open_fds() + 20, hard).unwrap();
        let clients: Vec<TcpStream> = (0..20)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .collect();
        assert!(!clients.is_empty());
        sleep(runtime, Duration::from_millis(200)).await;
        // With no descriptor left, a server that retried at once would burn a whole CPU.
        let (cpu_before, wall_before) = (cpu_time(&mut stat_file), Instant::now());
        sleep(runtime, Duration::from_secs(1)).await;
        let cpu = cpu_time(&mut stat_file) - cpu_before;
        let wall = wall_before.elapsed();
        assert!(
            cpu < wall / 2,
            "the server spun on accept errors: {cpu:?} of CPU in {wall:?}"
        );
        // Descriptors come back: the server accepts and serves again.
        drop(clients);
        rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard).unwrap();
        let mut ws = client(runtime)
            .connect(&format!("ws://{addr}/"))
            .await
            .unwrap();
        ws.send(Message::text("back")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("back"));
    });
}
