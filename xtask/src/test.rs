//! `cargo xtask test`: the whole test suite, as run by `.ci/run` on a fresh machine.

use crate::cmd;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!(
            "`cargo xtask test` takes no arguments (got `{arg}`)"
        ));
    }
    cmd::run(
        "cargo",
        &["test", "--workspace", "--all-features", "--all-targets"],
    )?;
    cmd::run("cargo", &["test", "--workspace", "--all-features", "--doc"])?;
    println!("xtask test: all passed");
    Ok(())
}
