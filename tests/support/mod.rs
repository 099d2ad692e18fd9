//! Helpers shared by the end-to-end tests: run a test body on both runtimes, raw sockets.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

pub mod proxy;

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use wsflow::{Client, ClientConfig, Runtime, Server};

/// Runs `test` once on tokio (multi-threaded) and once on async-io (async-std / smol), each
/// with a time limit so a hang fails instead of blocking the suite.
pub fn on_both_runtimes<F, Fut>(test: F)
where
    F: Fn(Runtime) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), test(Runtime::Tokio))
                .await
                .expect("test timed out on tokio");
        });
    let executor = std::sync::Arc::new(async_executor::Executor::new());
    EXECUTOR.with(|cell| *cell.borrow_mut() = Some(executor.clone()));
    let body = test(Runtime::AsyncStd);
    async_io::block_on(executor.run(async move {
        let timeout = async {
            async_io::Timer::after(Duration::from_secs(60)).await;
            panic!("test timed out on async-std");
        };
        futures_util::future::select(Box::pin(body), Box::pin(timeout)).await;
    }));
    EXECUTOR.with(|cell| *cell.borrow_mut() = None);
}

thread_local! {
    static EXECUTOR: std::cell::RefCell<Option<std::sync::Arc<async_executor::Executor<'static>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Spawns a task on the runtime the current test runs on.
pub fn spawn<F: Future<Output = ()> + Send + 'static>(runtime: Runtime, task: F) {
    match runtime {
        Runtime::AsyncStd => EXECUTOR.with(|cell| {
            cell.borrow()
                .as_ref()
                .expect("no async-std executor")
                .spawn(task)
                .detach();
        }),
        _ => {
            tokio::spawn(task);
        }
    }
}

/// Sleeps on the runtime the test runs on.
pub async fn sleep(runtime: Runtime, duration: Duration) {
    match runtime {
        Runtime::AsyncStd => {
            async_io::Timer::after(duration).await;
        }
        _ => tokio::time::sleep(duration).await,
    }
}

/// A blocking raw TCP client for sending hand-made bytes.
pub fn raw_client(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

pub const UPGRADE: &str = "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Reads until the end of an HTTP head and returns it.
pub fn read_head(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Reads until end of file.
pub fn read_to_end(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    rest
}

/// Reads until the peer closes the connection, and returns what came and how long it took.
/// Unlike [`read_to_end`], only a real close ends it: an end of file, or a reset (a peer that
/// closes with unread data resets the connection). A read that times out (the stream's read
/// timeout: the peer kept the connection open) or fails otherwise panics.
pub fn read_until_eof(stream: &mut std::net::TcpStream) -> (Vec<u8>, Duration) {
    use std::io::{ErrorKind, Read};
    let start = std::time::Instant::now();
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if err.kind() == ErrorKind::ConnectionReset => break,
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "the peer did not close the connection: the read timed out after {:?} \
                     ({err}), {} bytes read: {:?}",
                    start.elapsed(),
                    received.len(),
                    String::from_utf8_lossy(&received)
                )
            }
            Err(err) => panic!(
                "reading until the peer closes the connection: {err} after {:?}, {} bytes read",
                start.elapsed(),
                received.len()
            ),
        }
    }
    (received, start.elapsed())
}

/// Accepts every request (with `chat` if offered) and echoes, on the test's runtime.
pub fn serve_echo(runtime: Runtime, mut server: Server) {
    spawn(runtime, async move {
        while let Some(request) = server.next().await {
            let protocol = request
                .requested_protocols()
                .iter()
                .any(|p| p == "chat")
                .then_some("chat");
            spawn(runtime, async move {
                let Ok(mut ws) = request.accept(protocol).await else {
                    return;
                };
                // Read to the end, past an error, so the close handshake completes.
                while let Some(received) = ws.next().await {
                    if let Ok(message) = received {
                        let _ = ws.queue(message);
                    }
                }
            });
        }
    });
}

/// A client configuration for the tests' own loopback servers: direct, whatever proxy the
/// environment names.
pub fn client_config(runtime: Runtime) -> ClientConfig {
    ClientConfig::default().no_proxy().runtime(runtime)
}

/// A client with [`client_config`].
pub fn client(runtime: Runtime) -> Client {
    Client::new(client_config(runtime))
}

/// A test certificate authority and a `localhost`/`127.0.0.1` certificate it signed, as PEM
/// text and as files (for the example binaries and the interop peers).
pub struct TestCerts {
    pub ca_pem: String,
    pub chain_pem: String,
    pub key_pem: String,
    pub ca_file: std::path::PathBuf,
    pub chain_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
}

/// Generates a fresh CA and server certificate with `rcgen` and writes them to a temporary
/// folder of their own.
pub fn test_certs() -> TestCerts {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wsflow test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &*ca)
        .unwrap();

    let dir = std::env::temp_dir().join(format!(
        "wsflow-certs-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let certs = TestCerts {
        ca_pem: ca.as_ref().pem(),
        chain_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
        ca_file: dir.join("ca.pem"),
        chain_file: dir.join("chain.pem"),
        key_file: dir.join("key.pem"),
    };
    std::fs::write(&certs.ca_file, &certs.ca_pem).unwrap();
    std::fs::write(&certs.chain_file, &certs.chain_pem).unwrap();
    std::fs::write(&certs.key_file, &certs.key_pem).unwrap();
    certs
}

impl TestCerts {
    /// Server TLS options presenting the certificate.
    pub fn server_tls(&self) -> wsflow::TlsServerConfig {
        wsflow::TlsServerConfig::from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes())
            .unwrap()
    }

    /// Client TLS options trusting the test CA.
    pub fn client_tls(&self) -> wsflow::TlsClientConfig {
        wsflow::TlsClientConfig::default()
            .add_root_pem(self.ca_pem.as_bytes())
            .unwrap()
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        if let Some(dir) = self.ca_file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A server on `runtime` with `config` whose connections have a 32 KiB kernel send buffer
/// (accepted sockets take the listener's), which fills at once and does not grow: a peer that
/// reads slowly keeps it full.
pub fn small_send_buffer_server(runtime: Runtime, config: wsflow::ServerConfig) -> Server {
    Server::from_std_listener(small_send_buffer_listener(), config.runtime(runtime)).unwrap()
}

/// A listener on 127.0.0.1 whose accepted sockets inherit a 32 KiB kernel send buffer.
fn small_send_buffer_listener() -> std::net::TcpListener {
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener.set_send_buffer_size(32 * 1024).unwrap();
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&addr.into()).unwrap();
    listener.listen(16).unwrap();
    listener.set_nonblocking(true).unwrap();
    listener.into()
}
