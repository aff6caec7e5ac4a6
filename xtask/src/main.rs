//! `cargo xtask`: ferry's project automation.
//!
//! - `ci`: the whole gate — fmt check, clippy (`-D warnings`, all targets), layering and tidy
//!   checks, and every test, with LocalStack's S3 installed and started and `--include-ignored`
//!   for the tests marked `#[ignore = "needs LocalStack"]`.
//! - `deps`: the layering assertions alone.
//! - `tidy`: the source-hygiene checks alone.
//! - `faults`: the fault matrix (a part of the e2e suite, so `ci` runs it too), with its table, and
//!   the delivery-fallback cases (a stored file kept whatever Genesys refuses).
//! - `e2e`: `ferry serve` as a process against LocalStack's S3 and the Genesys emulator, via curl.
//! - `localstack install|start`: manage the pinned LocalStack used by the strict S3 tests.
//! - `tus install`: the pinned tus clients (tuspy, tus-js-client) the e2e suite drives.
//! - `bench core|s3|e2e`: benchmarks that print ratios against a baseline measured in the same run.
//! - `soak [--uploads N] [--clients C]`: ferry under concurrent load, faults and aborts (never run by `ci`).
//! - `fuzz <target>|all [seconds]`: coverage-guided fuzzing with cargo fuzz (never run by `ci`).

mod bench;
mod browser;
mod ci;
mod deps;
mod e2e;
mod fuzz;
mod licenses;
mod localstack;
mod soak;
mod tidy;
mod tus;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => ci::run(),
        ["deps"] => deps::run(),
        ["tidy"] => tidy::run(),
        ["faults"] => e2e::run(&["faults::fault_matrix", "delivery_fallback::", "--nocapture"]),
        ["licenses"] => licenses::run(),
        ["e2e", rest @ ..] => e2e::run(rest),
        ["localstack", "install"] => localstack::install().map(drop),
        ["localstack", "start"] => localstack::serve_foreground(),
        ["tus", "install"] => tus::install().map(drop),
        ["bench", what, rest @ ..] => bench::run(what, rest),
        ["browser"] => browser::run(),
        ["soak", rest @ ..] => soak::run(rest),
        ["fuzz", rest @ ..] => fuzz::run(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 ci                   fmt, clippy, layering, tidy and all tests (the CI gate)\n  \
                 deps                 layering assertions (which crate may depend on which)\n  \
                 tidy                 every .rs file opens with a //! line, no placeholders or bare ignores\n  \
                 faults               the fault matrix (S3, Genesys, client faults) and the delivery fallbacks\n  \
                 licenses             every dependency under an allowed license (cargo deny's license check)\n  \
                 e2e                  ferry serve as a process vs LocalStack + Genesys emulator, via curl\n  \
                 browser              the `ferry dev` demo page in headless Chromium (needs chromium, node)\n  \
                 localstack install   install the pinned LocalStack into .localstack/venv\n  \
                 localstack start     run LocalStack's S3 in the foreground on 127.0.0.1:4566\n  \
                 tus install          install the pinned tus clients (tuspy in .tus/venv, tus-js-client)\n  \
                 bench core           chunker throughput vs plain MD5 (FERRY_BENCH_MIB to resize)\n  \
                 bench s3             1 GiB multipart upload: ferry vs aws-cli, s3s-fs and LocalStack\n  \
                 bench e2e            1 and 4 GiB through `ferry serve` vs aws-cli; ferry's peak RSS\n  \
                 soak                 300 uploads, 16 clients, random S3/Genesys faults and aborts (not in ci)\n  \
                 fuzz <target>|all [s] cargo fuzz (libFuzzer) for s seconds each, default 600 (not in ci)"
            );
            bail!("unknown command: {}", args.join(" "))
        }
    }
}

/// The workspace root.
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// `cargo`, as the one running us.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(project_root());
    cmd
}

/// Runs `cmd`, echoing it, and fails unless it exits 0.
pub(crate) fn run_checked(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", describe(cmd));
    let status = cmd.status().with_context(|| format!("could not start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout, failing unless it exits 0.
pub(crate) fn output_of(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("could not start {}", describe(cmd)))?;
    if !out.status.success() {
        bail!("{} failed: {}", describe(cmd), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}
