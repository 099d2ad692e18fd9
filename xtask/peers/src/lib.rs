//! Conventions shared by the peer binaries of `src/bin/`: how they take their arguments and how a
//! server tells the xtask where it listens.
//!
//! The xtask starts a server peer with `--listen 127.0.0.1:0`, reads its stdout until the line
//! `listening on ws://IP:PORT` and connects there. Keeping this in one place keeps every peer
//! drivable by the same code.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;

/// The prefix of the one line a server peer prints on stdout once it accepts connections.
pub const LISTENING_PREFIX: &str = "listening on ws://";

/// A command-line mistake, shown to the user with the usage text.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses the arguments of a server peer: `--listen IP:PORT` (default `127.0.0.1:0`).
/// `usage` is printed by the caller on error.
pub fn server_listen_addr(
    args: impl IntoIterator<Item = String>,
) -> Result<SocketAddr, UsageError> {
    let mut listen = String::from("127.0.0.1:0");
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                listen = args
                    .next()
                    .ok_or_else(|| UsageError("--listen needs a value (IP:PORT)".into()))?;
            }
            other => {
                if let Some(value) = other.strip_prefix("--listen=") {
                    listen = value.to_owned();
                } else {
                    return Err(UsageError(format!("unexpected argument `{other}`")));
                }
            }
        }
    }
    listen
        .parse()
        .map_err(|err| UsageError(format!("--listen {listen}: {err}")))
}

/// Prints the `listening on ws://ADDR` line and flushes it, so a reader of a piped stdout sees it
/// at once.
pub fn announce_listening(addr: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{LISTENING_PREFIX}{addr}")?;
    stdout.flush()
}
