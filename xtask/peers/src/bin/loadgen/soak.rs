//! `loadgen soak`: many connections echoing for a fixed time while some are torn down in
//! hostile ways and replaced (churn), every echo verified.
//!
//! Each connection keeps one message in flight, of one of four kinds (16 B binary, 125 B text,
//! 1000 B binary, 20,000 B text: the server fragments nothing but must reassemble nothing
//! either). `--churn` times a second one connection, picked at random, is ended in one of
//! four ways in turn and replaced by a fresh one:
//!
//! 1. a close frame (1000) sent, then the socket dropped without waiting for the answer;
//! 2. half a data frame sent, then the socket dropped (EOF mid-frame);
//! 3. an unmasked data frame (a protocol error the server must answer with 1002);
//! 4. dropped with its echo still in flight (the peer vanished).
//!
//! It prints `connected N` once every connection is open, `progress seconds=T messages=M
//! errors=E churned=C` every ten seconds, and at the end `result messages=M errors=E
//! churned=C reconnect_failures=R`. An error is an echo that did not verify or a connection
//! the server ended on its own; the connection is then replaced and the run goes on. After the
//! result it keeps every connection open until a line (or the end) arrives on stdin.

use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::Target;
use crate::payload::{Messages, XorShift, encode_client_frame};
use crate::run::Conn;

/// The options of `loadgen soak`.
#[derive(Debug)]
pub(crate) struct SoakOptions {
    pub(crate) target: Target,
    pub(crate) conns: usize,
    pub(crate) duration: Duration,
    pub(crate) churn_per_second: u32,
}

/// Message sizes and types (text or not) the connections cycle through.
const KINDS: [(usize, bool); 4] = [(16, false), (125, true), (1000, false), (20_000, true)];
/// How often progress is printed.
const PROGRESS: Duration = Duration::from_secs(10);
/// Errors described on stderr (the rest are only counted).
const DESCRIBED: u64 = 10;

struct Slot {
    conn: Conn,
    kind: usize,
}

#[derive(Default)]
struct Counters {
    messages: u64,
    errors: u64,
    churned: u64,
    reconnect_failures: u64,
}

pub(crate) fn run(options: &SoakOptions) -> Result<(), String> {
    crate::raise_fd_limit(options.conns)?;
    let sets: Vec<Messages> = KINDS
        .iter()
        .map(|&(size, text)| Messages::new(size, 1, text, true))
        .collect();
    let mut rng = XorShift::new(std::process::id().into());
    let poll = Poll::new().map_err(|err| format!("epoll: {err}"))?;
    let mut slots: Vec<Option<Slot>> = Vec::with_capacity(options.conns);
    for i in 0..options.conns {
        let slot = open(options.target, &poll, i, &sets, &mut rng)
            .map_err(|err| format!("connection {i}: {err}"))?;
        slots.push(Some(slot));
    }
    announce(&format!("connected {}", options.conns))?;

    let mut counters = Counters::default();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let started = Instant::now();
    let deadline = started + options.duration;
    let churn_every = match options.churn_per_second {
        0 => None,
        n => Some(Duration::from_secs(1) / n),
    };
    let mut next_churn = started + churn_every.unwrap_or(options.duration);
    let mut next_progress = started + PROGRESS;
    let mut poll = poll;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_progress {
            announce(&format!(
                "progress seconds={} messages={} errors={} churned={}",
                started.elapsed().as_secs(),
                counters.messages,
                counters.errors,
                counters.churned
            ))?;
            next_progress += PROGRESS;
        }
        if let Some(every) = churn_every {
            while Instant::now() >= next_churn {
                let i = (rng.next_u64() % slots.len() as u64) as usize;
                if let Some(slot) = slots[i].take() {
                    end_hostile(slot, counters.churned, &sets, &mut poll, &mut rng);
                    counters.churned += 1;
                }
                next_churn += every;
            }
        }
        // Slots left empty by a churn or an error get a fresh connection.
        for (i, slot) in slots.iter_mut().enumerate().filter(|(_, s)| s.is_none()) {
            match open(options.target, &poll, i, &sets, &mut rng) {
                Ok(opened) => *slot = Some(opened),
                Err(err) => {
                    counters.reconnect_failures += 1;
                    if counters.reconnect_failures <= DESCRIBED {
                        eprintln!("loadgen soak: reconnecting {i}: {err}");
                    }
                }
            }
        }
        match poll.poll(&mut events, Some(Duration::from_millis(1))) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(format!("epoll: {err}")),
        }
        for event in &events {
            let i = event.token().0;
            let Some(slot) = slots[i].as_mut() else {
                continue;
            };
            let messages = &sets[slot.kind];
            let outcome = (|| -> Result<(), String> {
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    let done = slot.conn.read_ready(&mut buf, messages)?;
                    if done > 0 {
                        counters.messages += done as u64;
                        slot.conn.unsent += done * messages.frame_len;
                    }
                }
                if slot.conn.unsent > 0 {
                    slot.conn.write_due(messages)?;
                }
                Ok(())
            })();
            if let Err(err) = outcome {
                counters.errors += 1;
                if counters.errors <= DESCRIBED {
                    eprintln!("loadgen soak: connection {i}: {err}");
                }
                if let Some(mut slot) = slots[i].take() {
                    let _ = poll.registry().deregister(&mut slot.conn.stream);
                }
            }
        }
    }
    announce(&format!(
        "result messages={} errors={} churned={} reconnect_failures={}",
        counters.messages, counters.errors, counters.churned, counters.reconnect_failures
    ))?;
    // Hold the connections open until told (a line or the end of stdin), so the caller can
    // measure the server with all of them still there.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    Ok(())
}

/// A fresh connection in slot `i`, its first message sent.
fn open(
    target: Target,
    poll: &Poll,
    i: usize,
    sets: &[Messages],
    rng: &mut XorShift,
) -> Result<Slot, String> {
    let stream = crate::handshake::open(target, rng)?;
    stream
        .set_nonblocking(true)
        .map_err(|err| format!("non-blocking: {err}"))?;
    let mut stream = TcpStream::from_std(stream);
    poll.registry()
        .register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(|err| format!("epoll register: {err}"))?;
    let kind = (rng.next_u64() % KINDS.len() as u64) as usize;
    let mut conn = Conn::new(stream, true);
    conn.unsent = sets[kind].frame_len;
    conn.write_due(&sets[kind])?;
    Ok(Slot { conn, kind })
}

/// Ends a connection in the `nth` hostile way (see the module docs).
fn end_hostile(mut slot: Slot, nth: u64, sets: &[Messages], poll: &mut Poll, rng: &mut XorShift) {
    let _ = poll.registry().deregister(&mut slot.conn.stream);
    let mut key = [0u8; 4];
    rng.fill(&mut key);
    let mut bytes = Vec::new();
    match nth % 4 {
        0 => encode_client_frame(&mut bytes, 0x8, &1000u16.to_be_bytes(), key),
        1 => {
            encode_client_frame(&mut bytes, 0x2, sets[2].payload(0), key);
            bytes.truncate(bytes.len() / 2);
        }
        2 => bytes.extend_from_slice(&[0x82, 0x03, 1, 2, 3]),
        _ => {}
    }
    // Non-blocking: whatever fits in the socket buffer goes; the rest never will.
    let _ = slot.conn.stream.write(&bytes);
}

fn announce(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|err| format!("stdout: {err}"))
}
