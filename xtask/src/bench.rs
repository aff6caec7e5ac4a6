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
            // ferry serve (bench profile) vs aws-cli vs one unsigned PUT, on s3s-fs and on LocalStack;
            // see crates/ferry-server/benches/e2e/main.rs. `--quick`: small sizes, to try the bench.
            let quick = rest.contains(&"--quick");
            let rest: Vec<&str> = rest.iter().copied().filter(|a| *a != "--quick").collect();
            let aws = aws_cli()?;
            // The LocalStack already running (FERRY_TEST_LOCALSTACK), else one of our own.
            let (endpoint, own) = match std::env::var(ci::LOCALSTACK_ENV) {
                Ok(endpoint) => (endpoint, None),
                Err(_) => {
                    let started = localstack::start(None)?;
                    (started.endpoint.clone(), Some(started))
                }
            };
            let mut bench = cargo();
            bench
                .args(["bench", "--quiet", "-p", "ferry-server", "--bench", "e2e"])
                .args(rest)
                .env(ci::LOCALSTACK_ENV, &endpoint)
                .env("FERRY_BENCH_AWS", aws);
            if quick {
                bench.env("FERRY_BENCH_QUICK", "1");
            }
            let result = run_checked(&mut bench);
            drop(own);
            result
        }
        other => bail!("unknown benchmark `{other}` (try: core, s3, e2e)"),
    }
}

/// The aws-cli to compare with: the one on PATH, or a pinned one installed into a venv of its own
/// under `.localstack/` (git-ignored).
fn aws_cli() -> Result<String> {
    if Command::new("aws").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Ok("aws".into());
    }
    let venv = crate::project_root().join(".localstack/awscli");
    let aws = venv.join("bin/aws");
    if !aws.exists() {
        let python = localstack::install()?;
        run_checked(Command::new(&python).args(["-m", "venv"]).arg(&venv))?;
        run_checked(Command::new(venv.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            AWS_CLI,
        ]))?;
    }
    Ok(aws.to_string_lossy().into_owned())
}

/// The aws-cli the figures in docs/performance.md were measured with (v1, as in the issue).
const AWS_CLI: &str = "awscli==1.45.11";
