//! `loadgen idle`: many connections that stay open and silent, for the memory measurement.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;

use crate::Target;
use crate::payload::{Messages, XorShift};
use crate::verify::EchoReader;

pub(crate) fn run(target: Target, conns: usize) -> Result<(), String> {
    crate::raise_fd_limit(conns)?;
    let mut rng = XorShift::new(std::process::id().into());
    let mut streams = Vec::with_capacity(conns);
    for i in 0..conns {
        let stream = crate::handshake::open(target, &mut rng)
            .map_err(|err| format!("connection {i}: {err}"))?;
        streams.push(stream);
    }
    announce(&format!("connected {conns}"))?;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.map_err(|err| format!("stdin: {err}"))?;
        match line.trim() {
            "echo" => {
                echo_once(&mut streams, target)?;
                announce(&format!("echoed {conns}"))?;
            }
            "exit" => break,
            other => return Err(format!("unknown command `{other}` on stdin")),
        }
    }
    Ok(())
}

/// One 16-byte message on every connection, each echo verified before the next is sent.
fn echo_once(streams: &mut [TcpStream], target: Target) -> Result<(), String> {
    let messages = Messages::new(16, 1, false, target.websocket);
    let frame = &messages.wire[..messages.frame_len];
    let expected_len = if target.websocket { 2 + 16 } else { 16 };
    let mut buf = [0u8; 64];
    for (i, mut stream) in streams.iter().enumerate() {
        stream
            .write_all(frame)
            .map_err(|err| format!("connection {i}: sending: {err}"))?;
        let mut reader = EchoReader::new(target.websocket);
        let mut got = 0;
        let mut done = 0;
        while done == 0 {
            let n = stream
                .read(&mut buf[..expected_len - got])
                .map_err(|err| format!("connection {i}: reading the echo: {err}"))?;
            if n == 0 {
                return Err(format!("connection {i}: closed by the server"));
            }
            got += n;
            done = reader
                .feed(&buf[..n], &messages)
                .map_err(|err| format!("connection {i}: {err}"))?;
        }
    }
    Ok(())
}

fn announce(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|err| format!("stdout: {err}"))
}
