//! Memory stays flat under hostile peers: thousands of connections that declare huge frames
//! or send endless tiny fragments are refused (1009, 1008) and the server's resident memory does
//! not grow with them. Its own test binary, with one test, so nothing else moves the RSS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::Either;
use support::*;
use wsflow::codec::{Frame, OpCode};
use wsflow::{Config, Runtime, Server, ServerConfig};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One hostile connection: `flood` after the handshake, then read until the server closes.
fn attack(addr: SocketAddr, flood: &[u8]) -> Option<u16> {
    let mut raw = raw_client(addr);
    raw.write_all(UPGRADE.as_bytes()).ok()?;
    let head = read_head(&mut raw);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let _ = raw.write_all(flood);
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    // The first frame the server sent is its close frame: 0x88, length, code.
    (answer.len() >= 4 && answer[0] == 0x88).then(|| u16::from_be_bytes([answer[2], answer[3]]))
}

/// Runs `work` while `server` accepts requests (each accepted and read to its end on a task
/// of its own), and returns what `work` returned.
async fn serving<T>(
    server: &mut Server,
    runtime: Runtime,
    work: impl std::future::Future<Output = T>,
) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        match futures_util::future::select(server.next(), work.as_mut()).await {
            Either::Left((Some(request), _)) => spawn(runtime, async move {
                if let Ok(mut ws) = request.accept(None).await {
                    while ws.next().await.is_some() {}
                }
            }),
            Either::Left((None, _)) => panic!("the server stopped accepting"),
            Either::Right((output, _)) => return output,
        }
    }
}

/// Waits (at most 10 s) until every connection of `server` has ended and left its registry.
async fn until_all_closed(server: &mut Server, runtime: Runtime) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.connection_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} connections still live 10 s after their wave",
            server.connection_count()
        );
        serving(server, runtime, sleep(runtime, Duration::from_millis(5))).await;
    }
}

fn floods() -> [(Vec<u8>, u16); 2] {
    let mut huge = vec![0x82, 0xff];
    huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
    huge.extend_from_slice(&[1, 2, 3, 4]);
    let mut fragments = Vec::new();
    let mut frame = Frame::new(OpCode::Binary, vec![0u8]).with_fin(false);
    for _ in 0..20_000 {
        let mut wire = bytes::BytesMut::new();
        frame
            .clone()
            .with_mask(Some([9, 9, 9, 9]))
            .encode(&mut wire);
        fragments.extend_from_slice(&wire);
        frame = Frame::new(OpCode::Continuation, Vec::<u8>::new()).with_fin(false);
    }
    [(huge, 1009), (fragments, 1008)]
}

#[test]
fn hostile_floods_leave_resident_memory_flat() {
    on_both_runtimes(|runtime| async move {
        let server = Server::bind(
            "127.0.0.1:0",
            ServerConfig::default()
                .runtime(runtime)
                .connection(Config::server().max_fragments_per_message(1000)),
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        let mut server = server;
        let run_wave = |connections: usize| {
            blocking::unblock(move || {
                let [(huge, huge_code), (fragments, fragments_code)] = floods();
                std::thread::scope(|scope| {
                    let handles: Vec<_> = (0..connections)
                        .map(|i| {
                            let (flood, code) = if i % 2 == 0 {
                                (&huge, huge_code)
                            } else {
                                (&fragments, fragments_code)
                            };
                            scope.spawn(move || (attack(addr, flood), code))
                        })
                        .collect();
                    for handle in handles {
                        let (got, expected) = handle.join().unwrap();
                        assert_eq!(got, Some(expected));
                    }
                });
            })
        };
        // Warm up allocator pools and thread stacks first. After each wave, every connection
        // must be gone from the server (none kept alive, or kept registered, by the floods).
        serving(&mut server, runtime, run_wave(100)).await;
        until_all_closed(&mut server, runtime).await;
        let before = rss_kib();
        let mut after_waves = Vec::new();
        for _ in 0..10 {
            serving(&mut server, runtime, run_wave(200)).await;
            until_all_closed(&mut server, runtime).await;
            after_waves.push(rss_kib());
        }
        let after = *after_waves.last().unwrap();
        let grown = after.saturating_sub(before);
        println!("{runtime}: RSS {before} KiB -> {after} KiB after 2000 hostile connections");
        println!("{runtime}: RSS after each wave (KiB): {after_waves:?}");
        assert!(grown < 32 * 1024, "RSS grew by {grown} KiB");
        // Once the allocator's pools reached the waves' peak (the largest of the first three
        // waves), later waves must not keep adding to it: 1,400 more connections leaking even
        // 6 KiB each would add more than the 8 MiB allowed for the allocator's own drift.
        let settled = after_waves[..3].iter().copied().max().unwrap();
        let late_growth = after.saturating_sub(settled);
        assert!(
            late_growth < 8 * 1024,
            "RSS kept growing by {late_growth} KiB over the last 7 waves: {after_waves:?} KiB"
        );
    });
}
