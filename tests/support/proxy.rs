//! Minimal HTTP `CONNECT` and SOCKS5 (RFC 1928/1929) proxies for the tests, on threads of
//! their own, each counting the tunnels it opened.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wsflow::ProxyKind;

/// A proxy running on its own threads; `tunnels` counts the tunnels it opened.
pub struct TestProxy {
    pub addr: SocketAddr,
    tunnels: Arc<AtomicUsize>,
}

pub type Credentials = Option<(&'static str, &'static str)>;

impl TestProxy {
    pub fn start(kind: ProxyKind, credentials: Credentials) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnels = Arc::new(AtomicUsize::new(0));
        let counter = tunnels.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let target = match kind {
                        ProxyKind::HttpConnect => http_connect(&stream, credentials),
                        ProxyKind::Socks5 => socks5(&stream, credentials),
                        _ => unreachable!(),
                    };
                    if let Some(target) = target {
                        counter.fetch_add(1, Ordering::SeqCst);
                        splice(stream, target);
                    }
                });
            }
        });
        Self { addr, tunnels }
    }

    pub fn url(&self, scheme: &str, credentials: Credentials) -> String {
        match credentials {
            Some((user, password)) => format!("{scheme}://{user}:{password}@{}", self.addr),
            None => format!("{scheme}://{}", self.addr),
        }
    }

    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }
}

/// Copies both ways until each side ends, passing half-closes on.
fn splice(client: TcpStream, target: TcpStream) {
    let (mut client_read, mut target_write) =
        (client.try_clone().unwrap(), target.try_clone().unwrap());
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut target_write);
        let _ = target_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut target_read, mut client_write) = (target, client);
    let _ = std::io::copy(&mut target_read, &mut client_write);
    let _ = client_write.shutdown(std::net::Shutdown::Write);
    let _ = upstream.join();
}

/// The HTTP `CONNECT` side: 407 without the right basic credentials, 502 when the target is
/// unreachable, 200 and a tunnel otherwise.
fn http_connect(mut stream: &TcpStream, credentials: Credentials) -> Option<TcpStream> {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?;
    let mut parts = request_line.split(' ');
    assert_eq!(parts.next(), Some("CONNECT"), "{request_line}");
    let authority = parts.next()?.to_owned();
    if let Some((user, password)) = credentials {
        use base64::Engine as _;
        let expected = format!(
            "basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let given = lines
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
            .map(|(_, value)| value.trim().to_owned());
        let accepted = given.is_some_and(|value| {
            let (scheme, token) = value.split_once(' ').unwrap_or((&value, ""));
            format!("{} {token}", scheme.to_ascii_lowercase()) == expected
        });
        if !accepted {
            let _ = stream.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
            );
            return None;
        }
    }
    match TcpStream::connect(authority.as_str()) {
        Ok(target) => {
            stream
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .ok()?;
            Some(target)
        }
        Err(_) => {
            let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            None
        }
    }
}

/// The SOCKS5 side: username/password (RFC 1929) when configured, CONNECT by IPv4, IPv6 or
/// domain name.
fn socks5(mut stream: &TcpStream, credentials: Credentials) -> Option<TcpStream> {
    let mut greeting = [0u8; 2];
    stream.read_exact(&mut greeting).ok()?;
    assert_eq!(greeting[0], 5);
    let mut methods = vec![0u8; greeting[1] as usize];
    stream.read_exact(&mut methods).ok()?;
    let wanted = if credentials.is_some() { 2 } else { 0 };
    if !methods.contains(&wanted) {
        let _ = stream.write_all(&[5, 0xff]);
        return None;
    }
    stream.write_all(&[5, wanted]).ok()?;
    if let Some((user, password)) = credentials {
        let mut version_and_len = [0u8; 2];
        stream.read_exact(&mut version_and_len).ok()?;
        let mut given_user = vec![0u8; version_and_len[1] as usize];
        stream.read_exact(&mut given_user).ok()?;
        let mut len = [0u8];
        stream.read_exact(&mut len).ok()?;
        let mut given_password = vec![0u8; len[0] as usize];
        stream.read_exact(&mut given_password).ok()?;
        if given_user != user.as_bytes() || given_password != password.as_bytes() {
            let _ = stream.write_all(&[1, 1]);
            return None;
        }
        stream.write_all(&[1, 0]).ok()?;
    }
    let mut request = [0u8; 4];
    stream.read_exact(&mut request).ok()?;
    assert_eq!(&request[..3], &[5, 1, 0], "only CONNECT is expected");
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            stream.read_exact(&mut ip).ok()?;
            Ipv4Addr::from(ip).to_string()
        }
        4 => {
            let mut ip = [0u8; 16];
            stream.read_exact(&mut ip).ok()?;
            Ipv6Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8];
            stream.read_exact(&mut len).ok()?;
            let mut name = vec![0u8; len[0] as usize];
            stream.read_exact(&mut name).ok()?;
            String::from_utf8(name).ok()?
        }
        other => panic!("address type {other}"),
    };
    let mut port = [0u8; 2];
    stream.read_exact(&mut port).ok()?;
    let port = u16::from_be_bytes(port);
    match TcpStream::connect((host.as_str(), port)) {
        Ok(target) => {
            stream.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).ok()?;
            Some(target)
        }
        Err(_) => {
            let _ = stream.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
            None
        }
    }
}
