//! `cargo xtask ci`: the gate every change passes. It runs, in order: `cargo fmt --check`, the
//! layering and tidy checks, clippy with `-D warnings` on all targets, every test of the workspace
//! with LocalStack's S3 running (installed on first use) and `--include-ignored`, so the tests
//! marked `#[ignore = "needs LocalStack"]` run too (the end-to-end suite runs `ferry serve`
//! against it), then the demo page in headless Chromium.

use crate::{cargo, deps, localstack, run_checked, tidy};
use anyhow::Result;
use std::time::Instant;

/// Environment variable naming the LocalStack endpoint for the tests that need it (read by
/// `ferry_testkit::localstack`).
pub(crate) const LOCALSTACK_ENV: &str = "FERRY_TEST_LOCALSTACK";
/// libtest's flag that also runs the `#[ignore = "needs …"]` tests, whose needs `ci` provides.
pub(crate) const INCLUDE_IGNORED: &str = "--include-ignored";

pub(crate) fn run() -> Result<()> {
    let started = Instant::now();
    let step = |name: &str| eprintln!("\n== ci: {name} ({:.0?} in)", started.elapsed());

    step("fmt");
    run_checked(cargo().args(["fmt", "--all", "--", "--check"]))?;
    step("layering");
    deps::run()?;
    step("tidy");
    tidy::run()?;
    step("licenses");
    crate::licenses::run()?;
    step("clippy");
    run_checked(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    step("clippy (production build, no dev stand-ins)");
    run_checked(cargo().args([
        "clippy",
        "-p",
        "ferry-server",
        "--no-default-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;

    step("tus clients");
    let tus_clients = crate::tus::install()?;
    step("localstack");
    let localstack = localstack::start(None)?;
    step("tests");
    let result = run_checked(
        cargo()
            .args(["test", "--workspace", "--locked", "--no-fail-fast", "--", INCLUDE_IGNORED])
            .env(LOCALSTACK_ENV, &localstack.endpoint)
            .envs(tus_clients.env()),
    );
    drop(localstack);
    result?;
    step("browser");
    crate::browser::run_with(false)?;
    step("done");
    Ok(())
}
