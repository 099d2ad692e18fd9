//! `cargo xtask test`: the whole test suite, set up from nothing (the README's test command;
//! `.ci/run` runs it on a fresh machine).
//!
//! 1. Installs the real peers the interop and browser tests talk to: the npm packages of
//!    `tests/interop/package.json` (Node's `ws`, WebSocket-Node, `playwright-core`), Python's
//!    `websockets` into `target/interop-venv`, and Debian's `chromium` (with `apt-get`, when
//!    running as root and it is missing).
//! 2. `cargo test` of the whole workspace (unit, property, end-to-end, doc tests), then the
//!    `#[ignore]`d interop and browser tests, which need those peers.
//! 3. `cargo xtask autobahn --jobs 2`: every case, both roles, both runtimes, checked against
//!    `autobahn/expected/`, two suites at a time to keep CI under its time budget.
//! 4. Builds the fuzz targets and runs each briefly, when `cargo fuzz` is available.
//!
//! `--skip-autobahn`, `--skip-interop` and `--skip-fuzz` leave a part out while developing; CI
//! never passes them.

use std::path::Path;
use std::process::Command;

use crate::cmd;

const USAGE: &str = "usage: cargo xtask test [--skip-autobahn] [--skip-interop] [--skip-fuzz]

Runs every test of wsflow, installing what they need first (npm packages, Python packages,
Chromium via apt-get when root). This is the README's test command; .ci/run runs it.";

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut skip_autobahn = false;
    let mut skip_interop = false;
    let mut skip_fuzz = false;
    for arg in args {
        match arg.as_str() {
            "--skip-autobahn" => skip_autobahn = true,
            "--skip-interop" => skip_interop = true,
            "--skip-fuzz" => skip_fuzz = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
        }
    }
    let root = cmd::workspace_root();
    if !skip_interop {
        install_peers(&root)?;
    }
    cmd::run(
        "cargo",
        &["test", "--workspace", "--all-features", "--all-targets"],
    )?;
    cmd::run("cargo", &["test", "--workspace", "--all-features", "--doc"])?;
    if !skip_interop {
        // The browser test runs the chat example binary; `cargo test` does not always place
        // example binaries under `target/debug/examples/`, so build them explicitly.
        cmd::run(
            "cargo",
            &["build", "-p", "wsflow", "--all-features", "--examples"],
        )?;
        cmd::run(
            "cargo",
            &[
                "test",
                "--all-features",
                "--test",
                "interop",
                "--test",
                "browser",
                "--test",
                "examples",
                "--",
                "--ignored",
            ],
        )?;
    }
    if !skip_autobahn {
        // Every case, both roles, both runtimes: two suites at a time (each wstest is one
        // single-threaded Python process), about 17 minutes on 2 cores instead of 32.
        crate::autobahn::run(&["--jobs".to_owned(), "2".to_owned()])?;
    }
    if !skip_fuzz {
        fuzz_smoke(&root)?;
    }
    println!("xtask test: all passed");
    Ok(())
}

/// npm packages, the Python venv, and Chromium.
fn install_peers(root: &Path) -> Result<(), String> {
    let interop = root.join("tests/interop");
    cmd::run_in(
        &interop,
        "npm",
        &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
        &[],
    )?;
    let venv = root.join("target/interop-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        cmd::run("python3", &["-m", "venv", &venv.to_string_lossy()])?;
    }
    cmd::run(
        &python.to_string_lossy(),
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            &interop.join("requirements.txt").to_string_lossy(),
        ],
    )?;
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    if !Path::new(&chromium).exists() {
        if !is_root() {
            return Err("Chromium is missing: install Debian's `chromium` package \
                 (`sudo apt-get install chromium`) and run again"
                .to_owned());
        }
        cmd::run_in(
            root,
            "apt-get",
            &["update", "-qq"],
            &[("DEBIAN_FRONTEND", "noninteractive")],
        )?;
        cmd::run_in(
            root,
            "apt-get",
            &[
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "chromium",
            ],
            &[("DEBIAN_FRONTEND", "noninteractive")],
        )?;
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Builds every fuzz target and runs each for a few seconds. cargo-fuzz needs the sanitizer
/// flags of a nightly compiler; `RUSTC_BOOTSTRAP=1` allows them on stable for the fuzz crate
/// only.
fn fuzz_smoke(root: &Path) -> Result<(), String> {
    let has_cargo_fuzz = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_cargo_fuzz {
        println!(
            "xtask test: cargo-fuzz is not installed; skipping the fuzz smoke run (`cargo install cargo-fuzz`)"
        );
        return Ok(());
    }
    let fuzz = root.join("fuzz");
    let env = [("RUSTC_BOOTSTRAP", "1")];
    cmd::run_in(&fuzz, "cargo", &["fuzz", "build", "-O"], &env)?;
    let list = Command::new("cargo")
        .args(["fuzz", "list"])
        .current_dir(&fuzz)
        .envs(env)
        .output()
        .map_err(|err| format!("cargo fuzz list: {err}"))?;
    for target in String::from_utf8_lossy(&list.stdout).lines() {
        let corpus = fuzz.join("corpus").join(target);
        let seeds = fuzz.join("seeds").join(target);
        std::fs::create_dir_all(&corpus).map_err(|err| format!("{}: {err}", corpus.display()))?;
        let mut args = vec![
            "fuzz".to_owned(),
            "run".to_owned(),
            "-O".to_owned(),
            target.to_owned(),
            corpus.to_string_lossy().into_owned(),
        ];
        if seeds.exists() {
            args.push(seeds.to_string_lossy().into_owned());
        }
        // An input that takes over 10 s is a hang: reported as a failure, not waited out.
        args.extend([
            "--".to_owned(),
            "-max_total_time=10".to_owned(),
            "-timeout=10".to_owned(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cmd::run_in(&fuzz, "cargo", &args, &env)?;
    }
    Ok(())
}
