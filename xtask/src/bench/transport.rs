//! The transport comparison: wsflow's echo server over `ws://`, over `wss://` (rustls) and
//! over `ws://` with permessage-deflate, driven by the same client (`wsflow_load`, wsflow's own
//! client, in xtask/peers: `loadgen` speaks neither TLS nor compression) in the same run.
//!
//! Ten connections, one 1 KiB message of chat-like JSON text in flight on each (compressible,
//! as real traffic is; the `--deflate` echo server compresses every message it sends back).
//! Each round starts each variant's server afresh, pinned to the servers' CPU, the client on
//! the load CPU; the table gives medians over rounds and the ratio to plain `ws://`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::cli::Options;
use super::process::Process;
use super::system::{LOAD_CPU, SERVER_CPU};

/// One way to carry the same echo.
struct Variant {
    name: &'static str,
    server_args: Vec<String>,
    client_args: Vec<String>,
    scheme: &'static str,
}

/// The certificate authority and server certificate for `wss://`, generated with rcgen.
fn certificates(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf), String> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let error = |err: rcgen::Error| format!("cannot generate the benchmark certificate: {err}");
    std::fs::create_dir_all(dir)
        .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "wsflow bench CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(error)?)
        .map_err(error)?;
    let key = KeyPair::generate().map_err(error)?;
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .map_err(error)?
        .signed_by(&key, &*ca)
        .map_err(error)?;
    let files = (
        dir.join("ca.pem"),
        dir.join("chain.pem"),
        dir.join("key.pem"),
    );
    for (path, pem) in [
        (&files.0, ca.as_ref().pem()),
        (&files.1, leaf.pem()),
        (&files.2, key.serialize_pem()),
    ] {
        std::fs::write(path, pem)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    }
    Ok(files)
}

/// Runs the comparison; returns the Markdown table.
pub(crate) fn run(options: &Options, release: &Path, logs: &Path) -> Result<String, String> {
    let (ca, chain, key) = certificates(&logs.join("tls"))?;
    let path = |p: &Path| p.display().to_string();
    let variants = [
        Variant {
            name: "ws://",
            server_args: vec![],
            client_args: vec![],
            scheme: "ws",
        },
        Variant {
            name: "wss:// (rustls)",
            server_args: vec!["--cert".into(), path(&chain), "--key".into(), path(&key)],
            client_args: vec!["--ca".into(), path(&ca)],
            scheme: "wss",
        },
        Variant {
            name: "ws:// + permessage-deflate",
            server_args: vec!["--deflate".into()],
            client_args: vec!["--deflate".into()],
            scheme: "ws",
        },
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..options.rounds {
        for (i, variant) in variants.iter().enumerate() {
            let rate = slice(options, release, logs, variant)?;
            println!(
                "round {}/{}  transport        {:<28} {:>9.0} msg/s",
                round + 1,
                options.rounds,
                variant.name,
                rate
            );
            rates[i].push(rate);
        }
    }
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    let mut table = String::from("| transport | msg/s | × ws:// |\n| --- | ---: | ---: |\n");
    for (variant, rate) in variants.iter().zip(&medians) {
        table.push_str(&format!(
            "| {} | {} | {:.3} |\n",
            variant.name,
            thousands(*rate),
            rate / medians[0]
        ));
    }
    Ok(table)
}

fn slice(options: &Options, release: &Path, logs: &Path, variant: &Variant) -> Result<f64, String> {
    let mut command = Command::new("taskset");
    command
        .args(["-c", SERVER_CPU])
        .arg(release.join("examples").join("echo_server"))
        .args(["--listen", "127.0.0.1:0", "--runtime", "tokio"])
        .args(&variant.server_args);
    let log = logs.join("transport-server.log");
    let mut server = Process::spawn("echo_server", &mut command, Some(&log))?;
    let prefix = format!("listening on {}://", variant.scheme);
    let (addr, _) = server.wait_for_line(&prefix, Duration::from_secs(30))?;
    let port = addr
        .trim()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut command = Command::new("taskset");
    command
        .args(["-c", LOAD_CPU])
        .arg(release.join("wsflow_load"))
        .args([
            "--target",
            &format!("{}://localhost:{port}/", variant.scheme),
            "--conns",
            "10",
            "--size",
            "1024",
            "--duration",
            &options.slice.as_secs_f64().to_string(),
            "--warmup",
            &options.warmup.as_secs_f64().to_string(),
        ])
        .args(&variant.client_args);
    let mut load = Process::spawn("wsflow_load", &mut command, None)?;
    let timeout = options.slice + options.warmup + Duration::from_secs(30);
    let (result, other) = load.wait_for_line("result ", timeout)?;
    server.kill();
    let field = |name: &str| -> Result<f64, String> {
        result
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("wsflow_load printed `{result}` ({})", other.join("; ")))
    };
    Ok(field("messages")? / (field("elapsed_ns")? / 1e9))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
