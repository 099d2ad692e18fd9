//! `loadgen run`: the measured load, one mio event loop over every connection.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::RunOptions;
use crate::latency::{Histogram, Probe};
use crate::payload::{Messages, XorShift};
use crate::verify::EchoReader;

/// The shared read buffer: more than any single read returns on loopback.
const READ_BUFFER: usize = 256 * 1024;
/// A run with no echo completed for this long has stalled: the server is stuck.
const STALL: Duration = Duration::from_secs(10);

/// One connection of the run (and of `loadgen soak`).
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    /// Where the next byte to write is in the cyclic wire stream (`0..cycle_len`).
    send_pos: usize,
    /// Bytes due but not written yet.
    pub(crate) unsent: usize,
    reader: EchoReader,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, websocket: bool) -> Self {
        Conn {
            stream,
            send_pos: 0,
            unsent: 0,
            reader: EchoReader::new(websocket),
        }
    }

    /// Writes what is due until it is all written or the socket is full.
    pub(crate) fn write_due(&mut self, messages: &Messages) -> Result<(), String> {
        while self.unsent > 0 {
            // `send_pos < cycle_len` and `unsent <= depth x frame_len <= cycle_len`, and the
            // wire holds two cycles: the slice is always whole.
            let slice = &messages.wire[self.send_pos..self.send_pos + self.unsent];
            match self.stream.write(slice) {
                Ok(0) => return Err("the connection closed while writing".into()),
                Ok(n) => {
                    self.unsent -= n;
                    self.send_pos = (self.send_pos + n) % messages.cycle_len();
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(format!("write: {err}")),
            }
        }
        Ok(())
    }

    /// Reads and verifies until the socket is drained; returns the messages completed.
    pub(crate) fn read_ready(
        &mut self,
        buf: &mut [u8],
        messages: &Messages,
    ) -> Result<usize, String> {
        let mut completed = 0;
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => {
                    completed += self.reader.feed(&buf[..n], messages)?;
                    // A short read drained the socket: the next byte to arrive raises a new
                    // edge, so no read that would only say `WouldBlock` is needed.
                    if n < buf.len() {
                        return Ok(completed);
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(completed),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(format!("read: {err}")),
            }
        }
    }
}

/// Counters at one instant.
#[derive(Clone, Copy, Debug)]
struct Snapshot {
    at: Instant,
    messages: u64,
    /// Time spent in empty polls so far.
    idle: Duration,
    /// The server's user and system ticks.
    server_ticks: (u64, u64),
    load_ticks: u64,
    /// The server CPU's busy and irq ticks.
    core: (u64, u64),
}

pub(crate) fn run(options: &RunOptions) -> Result<(), String> {
    crate::raise_fd_limit(options.conns)?;
    let messages = Messages::new(
        options.size,
        options.depth,
        options.text,
        options.target.websocket,
    );
    let mut rng = XorShift::new(std::process::id().into());
    let mut poll = Poll::new().map_err(|err| format!("epoll: {err}"))?;
    let mut conns = Vec::with_capacity(options.conns);
    for i in 0..options.conns {
        let stream = crate::handshake::open(options.target, &mut rng)
            .map_err(|err| format!("connection {i}: {err}"))?;
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
        conns.push(Conn::new(stream, options.target.websocket));
    }
    let server = options.server_pid.map(|pid| pid.to_string());
    let snapshot = |messages: u64, idle: Duration| -> Result<Snapshot, String> {
        Ok(Snapshot {
            at: Instant::now(),
            messages,
            idle,
            server_ticks: match &server {
                Some(pid) => crate::user_and_system_ticks(pid)?,
                None => (0, 0),
            },
            load_ticks: crate::cpu_ticks("self")?,
            core: match options.server_cpu {
                Some(cpu) => crate::core_ticks(cpu)?,
                None => (0, 0),
            },
        })
    };

    // Every connection starts with `depth` messages in flight.
    for (i, conn) in conns.iter_mut().enumerate() {
        conn.unsent = options.depth * messages.frame_len;
        conn.write_due(&messages)
            .map_err(|err| format!("connection {i}: {err}"))?;
    }
    let mut probes = vec![Probe::start(options.depth, Instant::now()); conns.len()];
    let mut round_trips = Histogram::new();
    let mut total: u64 = 0;
    let mut last_progress = (Instant::now(), 0u64);
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; READ_BUFFER];
    let started = Instant::now();
    let mut start: Option<Snapshot> = None;
    // Time spent in polls that found nothing to do: how much headroom the load had.
    let mut idle = Duration::ZERO;
    let mut deadline = started + options.warmup;
    loop {
        let now = Instant::now();
        if now >= deadline {
            match start {
                None => {
                    let snap = snapshot(total, idle)?;
                    deadline = snap.at + options.duration;
                    start = Some(snap);
                }
                Some(start) => {
                    let end = snapshot(total, idle)?;
                    report(&start, &end, &round_trips)?;
                    return Ok(());
                }
            }
        }
        if now >= last_progress.0 + STALL {
            if total == last_progress.1 {
                return Err(format!(
                    "no echo completed for {}s: the server stalled ({total} messages so far)",
                    STALL.as_secs()
                ));
            }
            last_progress = (now, total);
        }
        // Busy-poll: never sleep, so that no echo waits for this process to be woken up.
        match poll.poll(&mut events, Some(Duration::ZERO)) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(format!("epoll: {err}")),
        }
        if events.is_empty() {
            idle += now.elapsed();
            continue;
        }
        for event in &events {
            let i = event.token().0;
            let conn = &mut conns[i];
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                let done = conn
                    .read_ready(&mut buf, &messages)
                    .map_err(|err| format!("connection {i}: {err}"))?;
                if done > 0 {
                    probes[i].echoed(done, start.is_some().then_some(&mut round_trips));
                    total += done as u64;
                    conn.unsent += done * messages.frame_len;
                    conn.write_due(&messages)
                        .map_err(|err| format!("connection {i}: {err}"))?;
                }
            }
            if event.is_writable() && conn.unsent > 0 {
                conn.write_due(&messages)
                    .map_err(|err| format!("connection {i}: {err}"))?;
            }
        }
    }
}

fn report(start: &Snapshot, end: &Snapshot, round_trips: &Histogram) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "result messages={} elapsed_ns={} load_idle_ns={} server_cpu_ticks={} \
         server_user_ticks={} load_cpu_ticks={} core_busy_ticks={} core_irq_ticks={} \
         rtt_samples={} rtt_p50_ns={} rtt_p99_ns={} rtt_p999_ns={}",
        end.messages - start.messages,
        (end.at - start.at).as_nanos(),
        (end.idle - start.idle).as_nanos(),
        (end.server_ticks.0 + end.server_ticks.1) - (start.server_ticks.0 + start.server_ticks.1),
        end.server_ticks.0 - start.server_ticks.0,
        end.load_ticks - start.load_ticks,
        end.core.0 - start.core.0,
        end.core.1 - start.core.1,
        round_trips.samples(),
        round_trips.quantile(0.5),
        round_trips.quantile(0.99),
        round_trips.quantile(0.999),
    )
    .and_then(|()| stdout.flush())
    .map_err(|err| format!("stdout: {err}"))
}
