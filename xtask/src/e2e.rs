//! `cargo xtask e2e`: ferry end to end. Starts LocalStack's S3, then runs the `e2e` test target of
//! ferry-server, which runs `ferry serve` as a separate process against that S3 and the Genesys
//! emulator (started in the test) and drives it with `curl`. Its cases are
//! `#[ignore = "needs LocalStack"]`, so they run here with `--include-ignored`. Extra arguments go
//! to the test binary (a name filter, `--nocapture`).

use crate::{cargo, ci, localstack, run_checked};
use anyhow::Result;
use std::time::Instant;

pub(crate) fn run(rest: &[&str]) -> Result<()> {
    let tus_clients = crate::tus::install()?;
    let localstack = localstack::start(None)?;
    let started = Instant::now();
    let result = run_checked(
        cargo()
            .args(["test", "-p", "ferry-server", "--test", "e2e", "--", ci::INCLUDE_IGNORED])
            .args(rest)
            .env(ci::LOCALSTACK_ENV, &localstack.endpoint)
            .envs(tus_clients.env()),
    );
    drop(localstack);
    eprintln!("e2e: {:.1?} (build and tests, LocalStack start not included)", started.elapsed());
    result
}
