//! `cargo xtask bench …`: benchmarks. Each prints its figures next to a baseline measured in the
//! same run, never a bare number and never a pass/fail on time.

use crate::{cargo, ci, localstack, run_checked};
use anyhow::{Result, bail};
use std::process::Command;

pub(crate) fn run(what: &str, rest: &[&str]) -> Result<()> {
    match what {
        "core" => {
            run_checked(cargo().args(["bench", "--quiet", "-p", "ferry-core", "--bench", "core"]).args(rest))
        }
        "s3" => {
            let aws = aws_cli()?;
            let localstack = localstack::start(None)?;
            let result = run_checked(
                cargo()
                    .args(["bench", "--quiet", "-p", "ferry-s3", "--bench", "upload"])
                    .args(rest)
                    .env(ci::LOCALSTACK_ENV, &localstack.endpoint)
                    .env("FERRY_BENCH_AWS", aws),
            );
            drop(localstack);
            result
        }
        "e2e" => {
            // ferry serve (bench profile: release) vs aws-cli on s3s-fs; see crates/ferry-server/benches/e2e.rs.
            let aws = aws_cli()?;
            run_checked(
                cargo()
                    .args(["bench", "--quiet", "-p", "ferry-server", "--bench", "e2e"])
                    .args(rest)
                    .env("FERRY_BENCH_AWS", aws),
            )
        }
        other => bail!("unknown benchmark `{other}` (try: core, s3, e2e)"),
    }
}

/// The aws-cli to compare with: the one on PATH, or one installed into the LocalStack venv.
fn aws_cli() -> Result<String> {
    if Command::new("aws").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Ok("aws".into());
    }
    let python = localstack::install()?;
    run_checked(Command::new(&python).args(["-m", "pip", "install", "--quiet", "awscli"]))?;
    Ok(python.with_file_name("aws").to_string_lossy().into_owned())
}
