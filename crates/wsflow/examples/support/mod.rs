//! What the examples share: running a future on the chosen runtime, spawning tasks on it,
//! and waiting for Ctrl-C. Not an example itself.
#![allow(dead_code)]

use std::future::Future;
use std::sync::OnceLock;

use wsflow::Runtime;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static EXECUTOR: async_executor::Executor<'static> = async_executor::Executor::new();

/// Runs `main` to completion on `runtime`, with one worker thread per core (tokio's
/// current-thread scheduler on one core).
#[allow(clippy::expect_used)] // an example cannot do anything useful without its runtime
pub(crate) fn block_on<F>(runtime: Runtime, main: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    let _ = RUNTIME.set(runtime);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    match runtime {
        #[cfg(feature = "async-std")]
        Runtime::AsyncStd => {
            for _ in 1..threads {
                std::thread::spawn(|| {
                    async_io::block_on(EXECUTOR.run(std::future::pending::<()>()))
                });
            }
            // `main` runs as a task of its own: `Executor::run` polls the future it is given
            // whenever any task wakes, and an accept loop polled that often would make a
            // failing `accept` call each time.
            async_io::block_on(EXECUTOR.run(EXECUTOR.spawn(main)))
        }
        // One core (as when a benchmark pins the server): the current-thread scheduler, which
        // the other servers of the benchmark use too, and which skips work stealing.
        _ if threads == 1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
            .block_on(main),
        _ => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
            .block_on(main),
    }
}

/// Spawns a task on the runtime `block_on` runs.
pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
    match RUNTIME.get() {
        #[cfg(feature = "async-std")]
        Some(Runtime::AsyncStd) => EXECUTOR.spawn(task).detach(),
        _ => {
            tokio::spawn(task);
        }
    }
}

/// Completes when the process receives Ctrl-C (SIGINT) or SIGTERM. Call it from a task of the
/// runtime `block_on` runs.
///
/// On tokio the runtime's own signal driver listens, so the process keeps the one thread the
/// current-thread scheduler gives it (with a second thread, glibc's socket calls pay for
/// thread-cancellation bookkeeping on every call). async-io has no signal support, so there a
/// handler thread of the `ctrlc` crate does.
pub(crate) fn ctrl_c() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    match RUNTIME.get() {
        #[cfg(feature = "async-std")]
        Some(Runtime::AsyncStd) => Box::pin(ctrl_c_thread()),
        _ => Box::pin(async {
            #[cfg(unix)]
            if let Ok(mut terminate) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                return;
            }
            let _ = tokio::signal::ctrl_c().await;
        }),
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM, as seen by the `ctrlc` crate's handler thread.
#[cfg(feature = "async-std")]
fn ctrl_c_thread() -> impl Future<Output = ()> {
    let (tx, rx) = futures_channel::oneshot::channel::<()>();
    let tx = std::sync::Mutex::new(Some(tx));
    let _ = ctrlc::set_handler(move || {
        if let Some(tx) = tx.lock().ok().and_then(|mut tx| tx.take()) {
            let _ = tx.send(());
        }
    });
    async move {
        let _ = rx.await;
    }
}

/// The value of `--name VALUE` options, and the positional arguments.
pub(crate) struct Args {
    pub(crate) options: Vec<(String, String)>,
    pub(crate) positional: Vec<String>,
    pub(crate) flags: Vec<String>,
}

impl Args {
    /// Parses `std::env::args`, where `options` lists the options that take a value and
    /// `flags` those that take none; any other `--name` is an error.
    pub(crate) fn parse(options: &[&str], flags: &[&str]) -> Result<Self, String> {
        let mut args = std::env::args().skip(1);
        let mut parsed = Args {
            options: Vec::new(),
            positional: Vec::new(),
            flags: Vec::new(),
        };
        while let Some(arg) = args.next() {
            if let Some(name) = arg.strip_prefix("--") {
                if flags.contains(&name) {
                    parsed.flags.push(name.to_owned());
                } else if options.contains(&name) {
                    let value = args.next().ok_or(format!("--{name} needs a value"))?;
                    parsed.options.push((name.to_owned(), value));
                } else {
                    return Err(format!("unknown option --{name}"));
                }
            } else {
                parsed.positional.push(arg);
            }
        }
        Ok(parsed)
    }

    /// `self`, or an error naming the first positional argument for an example that takes none.
    pub(crate) fn without_positional(self) -> Result<Self, String> {
        match self.positional.first() {
            Some(extra) => Err(format!("unexpected argument {extra}")),
            None => Ok(self),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.options
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    pub(crate) fn runtime(&self) -> Result<Runtime, String> {
        self.get("runtime").unwrap_or("tokio").parse()
    }
}

/// `--cert CHAIN.pem --key KEY.pem`: turns TLS on in a server config (feature `rustls`).
#[cfg(feature = "rustls")]
pub(crate) fn server_tls(
    cert: &str,
    key: &str,
) -> Result<impl FnOnce(wsflow::ServerConfig) -> wsflow::ServerConfig, String> {
    let tls = wsflow::TlsServerConfig::from_pem_files(cert, key).map_err(|err| err.to_string())?;
    Ok(move |config: wsflow::ServerConfig| config.tls(tls))
}

#[cfg(not(feature = "rustls"))]
pub(crate) fn server_tls(
    _cert: &str,
    _key: &str,
) -> Result<fn(wsflow::ServerConfig) -> wsflow::ServerConfig, String> {
    Err(NO_TLS.to_owned())
}

/// `--ca CA.pem`: trusts that certificate authority in a client config (feature `rustls`).
#[cfg(feature = "rustls")]
pub(crate) fn client_tls(
    ca: &str,
) -> Result<impl FnOnce(wsflow::ClientConfig) -> wsflow::ClientConfig, String> {
    let pem = std::fs::read(ca).map_err(|err| format!("cannot read {ca}: {err}"))?;
    let tls = wsflow::TlsClientConfig::default()
        .add_root_pem(&pem)
        .map_err(|err| format!("{ca}: {err}"))?;
    Ok(move |config: wsflow::ClientConfig| config.tls(tls))
}

#[cfg(not(feature = "rustls"))]
pub(crate) fn client_tls(
    _ca: &str,
) -> Result<fn(wsflow::ClientConfig) -> wsflow::ClientConfig, String> {
    Err(NO_TLS.to_owned())
}

#[cfg(not(feature = "rustls"))]
const NO_TLS: &str =
    "TLS needs the `rustls` feature: cargo run -p wsflow --features rustls --example ...";
