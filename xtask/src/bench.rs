//! `cargo xtask bench …`: benchmarks. Each prints its figures next to a baseline measured in the
//! same run, never a bare number and never a pass/fail on time.

use crate::{cargo, run_checked};
use anyhow::{Result, bail};

pub(crate) fn run(what: &str, rest: &[&str]) -> Result<()> {
    match what {
        "core" => {
            run_checked(cargo().args(["bench", "--quiet", "-p", "ferry-core", "--bench", "core"]).args(rest))
        }
        other => bail!("unknown benchmark `{other}` (try: core)"),
    }
}
