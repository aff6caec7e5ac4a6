//! `cargo xtask fuzz <target>|all [seconds]`: coverage-guided fuzzing with `cargo fuzz` (libFuzzer).
//!
//! The fuzz crate is `fuzz/`, its own workspace. `cargo fuzz` needs nightly `-Z` flags; on the
//! stable toolchain they are allowed by `RUSTC_BOOTSTRAP=1`. Builds use no sanitizer (ferry forbids
//! `unsafe`) and keep debug assertions. Each target runs for `seconds` (default 600) on a working
//! corpus in `fuzz/target/corpus/<target>/` seeded from `fuzz/corpus/<target>/`; a crash lands in
//! `fuzz/artifacts/<target>/` and fails the command. Keep a crashing input, once fixed, in
//! `fuzz/regressions/<target>/`: each crate's `fuzz_<target>` test replays it. Not part of `ci`.

use crate::{cargo, project_root, run_checked};
use anyhow::{Context as _, Result, bail};
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::Stdio;

/// The fuzz targets, in the order `all` runs them.
const TARGETS: &[&str] = &["chunker", "guest_frame", "multipart", "link"];

/// What one run did, from libFuzzer's final statistics.
struct Outcome {
    target: String,
    seconds: u64,
    runs: Option<u64>,
    execs_per_sec: Option<u64>,
    corpus: usize,
    crashed: bool,
}

/// Runs `cargo xtask fuzz` with its arguments.
pub(crate) fn run(args: &[&str]) -> Result<()> {
    let (which, seconds) = match args {
        [which] => (*which, 600),
        [which, seconds] => (*which, seconds.parse().with_context(|| format!("seconds: {seconds}"))?),
        _ => bail!("usage: cargo xtask fuzz <{}|all> [seconds]", TARGETS.join("|")),
    };
    let targets: Vec<&str> = match which {
        "all" => TARGETS.to_vec(),
        one if TARGETS.contains(&one) => vec![one],
        other => bail!("unknown fuzz target {other}; known: {}", TARGETS.join(", ")),
    };
    ensure_cargo_fuzz()?;
    let mut outcomes = Vec::new();
    for target in targets {
        let outcome = fuzz(target, seconds)?;
        let crashed = outcome.crashed;
        outcomes.push(outcome);
        if crashed {
            break;
        }
    }
    eprintln!(
        "\n{:<12} {:>8} {:>12} {:>10} {:>8}  result",
        "target", "seconds", "executions", "execs/s", "corpus"
    );
    for o in &outcomes {
        let show = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
        eprintln!(
            "{:<12} {:>8} {:>12} {:>10} {:>8}  {}",
            o.target,
            o.seconds,
            show(o.runs),
            show(o.execs_per_sec),
            o.corpus,
            if o.crashed { "CRASH (see fuzz/artifacts)" } else { "no findings" }
        );
    }
    if outcomes.iter().any(|o| o.crashed) {
        bail!("a fuzz target found a failing input");
    }
    Ok(())
}

/// Installs `cargo-fuzz` unless `cargo fuzz` already answers.
fn ensure_cargo_fuzz() -> Result<()> {
    let present = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        run_checked(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

fn fuzz(target: &str, seconds: u64) -> Result<Outcome> {
    let root = project_root();
    let work = root.join("fuzz/target/corpus").join(target);
    std::fs::create_dir_all(&work)?;
    let seeds = root.join("fuzz/corpus").join(target);
    let logs = root.join("fuzz/target/logs");
    std::fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{target}.log"));
    let mut log = std::fs::File::create(&log_path)?;
    let mut cmd = cargo();
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", "--sanitizer", "none", "--debug-assertions", target])
        .arg(&work)
        .arg(&seeds)
        .args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-timeout=60",
            "-rss_limit_mb=4096",
            "-print_final_stats=1",
        ])
        .stderr(Stdio::piped());
    eprintln!(
        "$ RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none --debug-assertions {target} {} {} -- -max_total_time={seconds} -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 (log: {})",
        work.display(),
        seeds.display(),
        log_path.display()
    );
    let mut child = cmd.spawn().context("starting cargo fuzz")?;
    let stderr = child.stderr.take().context("cargo fuzz's stderr")?;
    let (mut runs, mut execs_per_sec, mut corpus) = (None, None, None);
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        writeln!(log, "{line}")?;
        // Progress lines are many; the log keeps them, the terminal gets the rest.
        if !line.starts_with('#') || line.contains("DONE") || line.contains("INITED") {
            eprintln!("{line}");
        }
        let stat = |name: &str| line.strip_prefix(name).and_then(|v| v.trim().parse::<u64>().ok());
        runs = stat("stat::number_of_executed_units:").or(runs);
        // libFuzzer's own corpus count (the folder also keeps inputs that reductions replaced).
        if line.contains("DONE") {
            corpus = line
                .split_once("corp: ")
                .and_then(|(_, rest)| rest.split('/').next())
                .and_then(|n| n.parse().ok())
                .or(corpus);
        }
        execs_per_sec = stat("stat::average_exec_per_sec:").or(execs_per_sec);
    }
    let status = child.wait()?;
    let corpus = corpus.unwrap_or_else(|| std::fs::read_dir(&work).map_or(0, |d| d.count()));
    Ok(Outcome {
        target: target.to_owned(),
        seconds,
        runs,
        execs_per_sec,
        corpus,
        crashed: !status.success(),
    })
}
