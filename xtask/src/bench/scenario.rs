//! The load scenarios of the throughput run, and the servers it compares.

/// One shape of load: every connection keeps `depth` messages of `size` bytes in flight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scenario {
    /// The name `--scenario` selects, e.g. `1k-d16-c10`.
    pub(crate) name: &'static str,
    /// Payload bytes per message.
    pub(crate) size: usize,
    /// Messages in flight per connection.
    pub(crate) depth: usize,
    pub(crate) conns: usize,
    /// Text (valid UTF-8, mostly multi-byte characters) or binary.
    pub(crate) text: bool,
    /// The target for wsflow: msg/s as a fraction of the raw TCP echo's in the same
    /// round.
    pub(crate) target: f64,
}

impl Scenario {
    /// A human description, e.g. "1 KiB binary, 16 in flight, 10 connections".
    pub(crate) fn label(&self) -> String {
        format!(
            "{} {}, {} in flight, {} connections",
            size_label(self.size),
            if self.text {
                "text (non-ASCII)"
            } else {
                "binary"
            },
            self.depth,
            self.conns
        )
    }
}

/// `20 B`, `1 KiB`, `64 KiB`.
pub(crate) fn size_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

const fn scenario(
    name: &'static str,
    size: usize,
    depth: usize,
    conns: usize,
    text: bool,
    target: f64,
) -> Scenario {
    Scenario {
        name,
        size,
        depth,
        conns,
        text,
        target,
    }
}

/// Every scenario, in the order they run in each round.
pub(crate) const SCENARIOS: &[Scenario] = &[
    scenario("20b-d1-c10", 20, 1, 10, false, 0.97),
    scenario("1k-d1-c10", 1024, 1, 10, false, 0.97),
    scenario("20b-d1-c100", 20, 1, 100, false, 0.97),
    scenario("1k-d1-c100", 1024, 1, 100, false, 0.97),
    scenario("20b-d16-c10", 20, 16, 10, false, 0.90),
    scenario("1k-d16-c10", 1024, 16, 10, false, 0.90),
    scenario("64k-bin-d1-c10", 64 * 1024, 1, 10, false, 0.95),
    scenario("64k-text-d1-c10", 64 * 1024, 1, 10, true, 0.93),
];

/// What a server is, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The plain TCP echo: the ceiling.
    Raw,
    /// wsflow's own `echo_server`.
    Wsflow,
    /// A Rust WebSocket library from crates.io.
    Peer,
    /// uWebSockets, the reference: wsflow must match it (and beat every Rust peer).
    Reference,
}

/// How a server is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Program {
    /// A binary, relative to the cargo target directory's `release/`.
    Release(&'static str),
    /// A Node.js script, relative to the workspace root; `npm ci` installs the packages of
    /// its directory.
    Node(&'static str),
}

/// Where the server's WebSocket implementation comes from, for the report's version column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// This workspace.
    Workspace,
    /// A crate from crates.io, its version read from Cargo.lock.
    Crate(&'static str),
    /// An npm package, its version read from the `package-lock.json` beside the script.
    Npm(&'static str),
}

/// A server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServerSpec {
    /// The name `--servers` selects and the tables show.
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) program: Program,
    /// Arguments after `--listen 127.0.0.1:0`.
    pub(crate) args: &'static [&'static str],
    pub(crate) origin: Origin,
    /// How it is written, for the report.
    pub(crate) notes: &'static str,
}

/// Every server, in the order of the tables: the ceiling, ours, then the peers.
pub(crate) const SERVERS: &[ServerSpec] = &[
    ServerSpec {
        name: "raw-tcp",
        kind: Kind::Raw,
        program: Program::Release("raw_echo"),
        args: &[],
        origin: Origin::Crate("tokio"),
        notes: "plain TCP echo (xtask/peers `raw_echo`): reads into a 64 KiB buffer, writes back \
                what it read; tokio current-thread",
    },
    ServerSpec {
        name: "wsflow-tokio",
        kind: Kind::Wsflow,
        program: Program::Release("examples/echo_server"),
        args: &["--runtime", "tokio"],
        origin: Origin::Workspace,
        notes: "wsflow `echo_server --runtime tokio`: queues each echo (the rest of a read's \
                burst taken with `try_recv`), one corked write per wakeup; tokio current-thread \
                on one core (as under taskset), multi-thread otherwise",
    },
    ServerSpec {
        name: "wsflow-async-std",
        kind: Kind::Wsflow,
        program: Program::Release("examples/echo_server"),
        args: &["--runtime", "async-std"],
        origin: Origin::Workspace,
        notes: "wsflow `echo_server --runtime async-std`: the same on async-io and \
                async-executor, one executor thread per available core",
    },
    ServerSpec {
        name: "fastwebsockets",
        kind: Kind::Peer,
        program: Program::Release("fastwebsockets_echo"),
        args: &[],
        origin: Origin::Crate("fastwebsockets"),
        notes: "its echo example: hyper 1 upgrade, FragmentCollector, write_frame per message; \
                tokio current-thread",
    },
    ServerSpec {
        name: "tokio-websockets",
        kind: Kind::Peer,
        program: Program::Release("tokio_websockets_echo"),
        args: &[],
        origin: Origin::Crate("tokio-websockets"),
        notes: "its echo example: ServerBuilder::accept, next() and send() (flushes) per \
                message; tokio current-thread",
    },
    ServerSpec {
        name: "tokio-tungstenite",
        kind: Kind::Peer,
        program: Program::Release("tungstenite_echo"),
        args: &[],
        origin: Origin::Crate("tokio-tungstenite"),
        notes: "accept_async, next() and send() (flushes) per message; tokio current-thread",
    },
    ServerSpec {
        name: "uwebsockets",
        kind: Kind::Reference,
        program: Program::Node(UWS_SCRIPT),
        args: &[],
        origin: Origin::Npm("uws-pack"),
        notes: "uWebSockets (C++) through uWebSockets.js v20 on Node.js (xtask/peers/uws, npm \
                `uws-pack`: the same binaries; the registry has no uWebSockets.js): send() in \
                the message handler, which uWebSockets corks; one call into JavaScript per message",
    },
];

/// The uWebSockets echo server's script, relative to the workspace root.
pub(crate) const UWS_SCRIPT: &str = "xtask/peers/uws/echo.mjs";
