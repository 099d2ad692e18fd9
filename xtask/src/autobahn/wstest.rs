//! Installs the Autobahn testsuite's `wstest` once, reproducibly, into `target/autobahn/venv`.
//!
//! wstest 0.8.2 is Python 2 software: it runs on pyenv's Python 2.7.18 in a virtualenv made by
//! the last virtualenv that supports Python 2. Every package of the virtualenv is pinned
//! ([`PINNED`], the output of `pip freeze` of a working install) and installed with
//! `--no-deps`, so a fresh machine gets exactly the set that was tested here, whatever newer
//! versions the registry offers (most current releases no longer support Python 2). A stamp
//! file records what was installed; the virtualenv is rebuilt when the pins change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process;

/// The pyenv Python that runs wstest.
const PYTHON_VERSION: &str = "2.7.18";

/// The virtualenv that creates the environment: 20.15.1 is the newest release that installs
/// on Python 2.7 (`virtualenv<20.22` resolves to it), and it seeds pip 20.3.4,
/// setuptools 44.1.1 and wheel 0.37.1.
const VIRTUALENV: &str = "virtualenv==20.15.1";

/// Every package of the wstest virtualenv: autobahntestsuite 0.8.2 and its whole dependency
/// tree at the newest versions that still support Python 2.7 (`pip freeze` leaves out
/// `argparse`, a dependency of unittest2: it is listed here by hand).
pub(crate) const PINNED: &[&str] = &[
    "autobahntestsuite==0.8.2",
    "autobahn==0.10.9",
    "argparse==1.4.0",
    "attrs==21.4.0",
    "Automat==22.10.0",
    "cffi==1.15.1",
    "constantly==15.1.0",
    "cryptography==3.3.2",
    "enum34==1.1.10",
    "hyperlink==21.0.0",
    "idna==2.10",
    "incremental==22.10.0",
    "ipaddress==1.0.23",
    "Jinja2==2.11.3",
    "klein==20.6.0",
    "linecache2==1.0.0",
    "MarkupSafe==1.1.1",
    "pyasn1==0.5.1",
    "pyasn1-modules==0.3.0",
    "pycparser==2.21",
    "PyHamcrest==1.10.1",
    "pyOpenSSL==21.0.0",
    "service-identity==21.1.0",
    "six==1.17.0",
    "traceback2==1.4.0",
    "Tubes==0.2.1",
    "Twisted==20.3.0",
    "txaio==2.1.0",
    "typing==3.10.0.0",
    "ujson==2.0.3",
    "unittest2==1.1.0",
    "Werkzeug==1.0.1",
    "wsaccel==0.6.6",
    "zope.interface==5.5.2",
];

const STAMP: &str = "wsflow-autobahn.stamp";
const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const QUICK_TIMEOUT: Duration = Duration::from_secs(120);

/// An installed, working wstest.
#[derive(Debug)]
pub(crate) struct Wstest {
    pub(crate) program: PathBuf,
    /// For example `AutobahnTestSuite 0.8.2 (Autobahn 0.10.9)`.
    pub(crate) version: String,
}

impl Wstest {
    /// A `wstest` command with Python 2's deprecation warnings silenced (they would bury the
    /// testsuite's own output in every log).
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.env("PYTHONWARNINGS", "ignore");
        command
    }
}

/// Returns the wstest of `venv`, installing it first unless an install with the same pins is
/// there.
pub(crate) fn bootstrap(venv: &Path, logs: &Path) -> Result<Wstest, String> {
    let stamp = venv.join(STAMP);
    let wanted = stamp_text();
    let program = venv.join("bin").join("wstest");
    let installed = std::fs::read_to_string(&stamp).is_ok_and(|text| text == wanted);
    if installed && program.exists() {
        println!("autobahn: using wstest from {}", venv.display());
    } else {
        install(venv)?;
        std::fs::write(&stamp, wanted)
            .map_err(|err| format!("cannot write {}: {err}", stamp.display()))?;
    }
    let wstest = Wstest {
        version: String::new(),
        program,
    };
    let help = logs.join("wstest-help.log");
    process::output_with_timeout(
        "wstest --help",
        wstest.command().arg("--help"),
        &help,
        QUICK_TIMEOUT,
    )
    .map_err(|err| format!("{err}\n(remove {} to reinstall it)", venv.display()))?;
    let about = logs.join("wstest-version.log");
    let version = process::output_with_timeout(
        "wstest -a",
        wstest.command().arg("-a"),
        &about,
        QUICK_TIMEOUT,
    )?;
    Ok(Wstest {
        version: parse_version(&version),
        ..wstest
    })
}

fn stamp_text() -> String {
    format!(
        "python {PYTHON_VERSION}\n{VIRTUALENV}\n{}\n",
        PINNED.join("\n")
    )
}

fn install(venv: &Path) -> Result<(), String> {
    println!("autobahn: installing wstest into {} (once)", venv.display());
    if venv.exists() {
        std::fs::remove_dir_all(venv)
            .map_err(|err| format!("cannot remove the old {}: {err}", venv.display()))?;
    }
    if let Some(parent) = venv.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|err| format!("cannot create {}: {err}", parent.display()))?;
    }
    let python2 = || {
        let mut command = Command::new("python2.7");
        command.env("PYENV_VERSION", PYTHON_VERSION);
        command
    };
    process::run_with_timeout("python2.7", python2().arg("--version"), QUICK_TIMEOUT).map_err(
        |err| {
            format!(
                "{err}\nwstest needs Python {PYTHON_VERSION} from pyenv: `pyenv install {PYTHON_VERSION}`"
            )
        },
    )?;
    process::run_with_timeout(
        "pip install virtualenv",
        python2().args(["-m", "pip", "install", VIRTUALENV]),
        INSTALL_TIMEOUT,
    )?;
    let venv_arg = venv.to_string_lossy().into_owned();
    process::run_with_timeout(
        "virtualenv",
        python2().args(["-m", "virtualenv", "--no-periodic-update", &venv_arg]),
        INSTALL_TIMEOUT,
    )?;
    let pip = venv.join("bin").join("pip");
    let mut install = Command::new(&pip);
    install
        .args(["install", "--no-deps", "--disable-pip-version-check"])
        .args(PINNED);
    process::run_with_timeout(
        "pip install autobahntestsuite",
        &mut install,
        INSTALL_TIMEOUT,
    )?;
    // The pins were installed without dependency resolution: check that they are complete and
    // consistent.
    process::run_with_timeout(
        "pip check",
        Command::new(&pip).args(["check", "--disable-pip-version-check"]),
        QUICK_TIMEOUT,
    )
}

/// `Autobahn 0.10.9\nAutobahnTestSuite 0.8.2` -> `AutobahnTestSuite 0.8.2 (Autobahn 0.10.9)`.
fn parse_version(output: &str) -> String {
    let mut suite = None;
    let mut autobahn = None;
    for line in output.lines() {
        if let Some(version) = line.trim().strip_prefix("AutobahnTestSuite ") {
            suite = Some(version.trim().to_owned());
        } else if let Some(version) = line.trim().strip_prefix("Autobahn ") {
            autobahn = Some(version.trim().to_owned());
        }
    }
    match (suite, autobahn) {
        (Some(suite), Some(autobahn)) => format!("AutobahnTestSuite {suite} (Autobahn {autobahn})"),
        (Some(suite), None) => format!("AutobahnTestSuite {suite}"),
        _ => "AutobahnTestSuite (unknown version)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line() {
        let output = "warning: python 2\nAutobahn 0.10.9\nAutobahnTestSuite 0.8.2\n";
        assert_eq!(
            parse_version(output),
            "AutobahnTestSuite 0.8.2 (Autobahn 0.10.9)"
        );
    }

    #[test]
    fn the_testsuite_itself_is_pinned() {
        assert!(PINNED.contains(&"autobahntestsuite==0.8.2"));
        assert!(PINNED.iter().all(|pin| pin.contains("==")));
    }
}
