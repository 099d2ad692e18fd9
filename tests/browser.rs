//! The chat example in a real browser: two headless Chromium pages (Debian's `chromium`,
//! driven by `playwright-core` from npm) chat with each other through the example server, and
//! the test checks what each page shows (`tests/interop/chat_browser.js`).
//!
//! `#[ignore]`d because it needs Chromium and the npm packages; `cargo xtask test` installs
//! them and runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The chat example built next to this test (`cargo xtask test` builds the examples first).
fn chat_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join("examples").join("chat");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p wsflow --example chat`",
        binary.display()
    );
    binary
}

#[test]
#[ignore = "needs Chromium and playwright-core, installed by `cargo xtask test`"]
fn two_browser_pages_chat_through_the_example() {
    let mut server = Command::new(chat_binary())
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("listening on ") {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("chat did not start");
    let interop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let output = Command::new("node")
        .arg("chat_browser.js")
        .arg(&url)
        .current_dir(&interop)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.lines().last() == Some("ok"),
        "chat_browser.js failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
