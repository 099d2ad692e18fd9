//! Opening a connection: TCP connect with TCP_NODELAY, then (for `ws://`) a minimal WebSocket
//! client handshake (RFC 6455 section 4.1), blocking. Connections are opened before the
//! measured time starts, so this need not be fast.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::Target;
use crate::payload::XorShift;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Longest response head we accept.
const MAX_HEAD: usize = 16 * 1024;
/// How long a connect or handshake may take before the run fails.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A connected stream, blocking, handshake done.
pub(crate) fn open(target: Target, rng: &mut XorShift) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&target.addr, TIMEOUT)
        .map_err(|err| format!("cannot connect to {}: {err}", target.addr))?;
    stream
        .set_nodelay(true)
        .map_err(|err| format!("TCP_NODELAY: {err}"))?;
    if target.websocket {
        handshake(&stream, target, rng)?;
    }
    Ok(stream)
}

fn handshake(mut stream: &TcpStream, target: Target, rng: &mut XorShift) -> Result<(), String> {
    let mut nonce = [0u8; 16];
    rng.fill(&mut nonce);
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.encode(nonce);
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.addr
    );
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|err| format!("read timeout: {err}"))?;
    stream
        .write_all(request.as_bytes())
        .map_err(|err| format!("sending the handshake: {err}"))?;
    // Read byte-exact up to the end of the head: the server sends nothing after it until we do.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err("handshake response head too long".into());
        }
        let n = stream
            .read(&mut buf)
            .map_err(|err| format!("reading the handshake response: {err}"))?;
        if n == 0 {
            return Err("the server closed the connection during the handshake".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n")
            && end + 4 != head.len()
        {
            return Err("the server sent data right after its handshake response".into());
        }
    }
    stream
        .set_read_timeout(None)
        .map_err(|err| format!("read timeout: {err}"))?;
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("handshake refused: {status}"));
    }
    let accept = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|(_, value)| value.trim().to_owned())
        .ok_or("handshake response without Sec-WebSocket-Accept")?;
    let expected = engine.encode(Sha1::digest(format!("{key}{GUID}").as_bytes()));
    if accept != expected {
        return Err(format!(
            "wrong Sec-WebSocket-Accept {accept:?} (expected {expected:?})"
        ));
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
