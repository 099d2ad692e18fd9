//! `cargo xtask <task>`: wsflow's project automation, one binary with few dependencies.
//!
//! - `cargo xtask test`: everything the project checks, on a fresh machine (the README's test
//!   command; `.ci/run` runs it).
//! - `cargo xtask autobahn`: the Autobahn testsuite against wsflow's server and client, checked
//!   against `autobahn/expected/`; renders `docs/conformance.md` (see the [`autobahn`] module).

use std::process::ExitCode;

mod autobahn;
mod bench;
mod cmd;
mod readme;
mod soak;
mod test;

const USAGE: &str = "usage: cargo xtask <task> [options]

tasks:
  test        run every test of the workspace (the README's test command)
  autobahn    the Autobahn testsuite against wsflow (`cargo xtask autobahn --help`)
  bench       throughput and memory beside the peers (`cargo xtask bench [--quick]`,
              `cargo xtask bench --help`)
  readme      copy the generated Autobahn and benchmark tables into README.md
  soak        many connections echoing and churning for a while (`cargo xtask soak --help`)
  help        this text";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        None | Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some("test") => test::run(&rest),
        Some("autobahn") => autobahn::run(&rest),
        Some("bench") => bench::run(&rest),
        Some("soak") => soak::run(&rest),
        Some("readme") => readme::run(&rest),
        Some(other) => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
