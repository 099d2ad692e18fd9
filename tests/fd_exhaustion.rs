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

/// Linux's "too many open files" error number.
const EMFILE: i32 = 24;

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
        // The 20 client sockets are made before the limit is lowered: connecting them takes
        // no descriptor, so every one connects (to the listener's backlog) whatever the
        // server's accepts do.
        let sockets: Vec<socket2::Socket> = (0..20)
            .map(|_| {
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap()
            })
            .collect();
        let mut stat_file = std::fs::File::open("/proc/self/stat").unwrap();
        rlimit::setrlimit(rlimit::Resource::NOFILE, open_fds() + 20, hard).unwrap();
        // Every descriptor left under the limit is taken, so the process (the server in it)
        // has none: opening one fails with EMFILE.
        let mut fillers = Vec::new();
        let exhausted = loop {
            match std::fs::File::open("/dev/null") {
                Ok(file) => {
                    fillers.push(file);
                    assert!(
                        fillers.len() < 4096,
                        "the descriptor limit was never reached"
                    );
                }
                Err(err) => break err,
            }
        };
        assert_eq!(exhausted.raw_os_error(), Some(EMFILE), "{exhausted}");
        let clients: Vec<TcpStream> = sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                socket
                    .connect(&addr.into())
                    .unwrap_or_else(|err| panic!("client {i} did not connect: {err}"));
                TcpStream::from(socket)
            })
            .collect();
        assert_eq!(clients.len(), 20);
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
        // No descriptor came free meanwhile (the server accepted none of the 20 waiting
        // connections): what was measured is a server whose accepts failed with EMFILE.
        match std::fs::File::open("/dev/null") {
            Ok(_) => panic!("a descriptor came free while the server was to be out of them"),
            Err(err) => assert_eq!(err.raw_os_error(), Some(EMFILE), "{err}"),
        }
        // Descriptors come back: the server accepts and serves again.
        drop(fillers);
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
