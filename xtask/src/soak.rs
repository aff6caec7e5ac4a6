//! `cargo xtask soak [--uploads N] [--clients C] [other soak flags]`: builds ferry and the soak
//! driver (`crates/ferry-server/examples/soak`) in release, then runs the soak against
//! `target/release/ferry`. Not part of `cargo xtask ci`: the default run moves gigabytes and takes
//! minutes. Every flag is passed to the driver (`--help` lists them: sizes, rates, `--seed`).

use crate::{cargo, project_root, run_checked};
use anyhow::Result;
use std::path::PathBuf;
use std::process::Command;

pub(crate) fn run(rest: &[&str]) -> Result<()> {
    run_checked(cargo().args([
        "build",
        "--release",
        "-p",
        "ferry-server",
        "--bin",
        "ferry",
        "--example",
        "soak",
    ]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| project_root().join("target"), PathBuf::from);
    let release = target.join("release");
    run_checked(
        Command::new(release.join("examples").join("soak"))
            .arg("--ferry")
            .arg(release.join("ferry"))
            .args(rest)
            .current_dir(project_root()),
    )
}
