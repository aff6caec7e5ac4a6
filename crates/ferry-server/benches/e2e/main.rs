//! `cargo xtask bench e2e`: whole files uploaded through `ferry serve` (this build's binary, its
//! own process, fed by `curl -T` with upload tickets) in each checksum mode, against `aws s3 cp`
//! and one unsigned PUT (the S3 server's ceiling) to the same server in the same run, on s3s-fs
//! (in this process) and on LocalStack's S3. Per row: MB/s, the uploader's CPU seconds per GiB
//! (ferry's own process, or the client's), the S3 server's CPU, and ferry's idle and peak RSS;
//! then 16 × 256 MiB at once through one ferry against one 4 GiB stream; then the issue's goals as
//! ratios. It never fails on a figure; a failed upload is shown in its row.
//!
//! Settings (environment):
//! - `FERRY_BENCH_QUICK=1`: 64 and 256 MiB, 4 × 64 MiB at once (a check of the bench itself).
//! - `FERRY_BENCH_SIZES_MIB` (default `1024,4096`), `FERRY_BENCH_CONCURRENT` (`16x256`).
//! - `FERRY_BENCH_SERVERS` (default `s3s-fs,localstack`); LocalStack at `FERRY_TEST_LOCALSTACK`.
//! - `FERRY_BENCH_ONLY`: run only the rows whose label contains one of these comma-separated words.
//! - `FERRY_BENCH_AWS` (default `aws`), `FERRY_BENCH_DIR` (files and s3s-fs data; default temp).
//! - `FERRY_BENCH_FERRY_ENV` (`K=V;K=V`): extra environment for ferry's process.

mod cases;
mod ferry;
mod procfs;
mod report;
mod scan;
mod servers;
mod sigv4;
mod tus;

use cases::{Bench, Goal, MIB, Measured};
use servers::Server;
use std::path::{Path, PathBuf};

/// ferry's default `limits.memory_budget`.
const BUDGET: u64 = 512 * MIB;

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn write_file(dir: &Path, mib: u64) -> PathBuf {
    let path = dir.join(format!("bench-{mib}.bin"));
    if !path.exists() {
        let file = std::fs::File::create(&path).expect("bench file");
        ferry_testkit::data::write_pseudo_random(&file, mib * MIB, 0x1234_5678_9abc_def1 ^ mib)
            .expect("write");
        file.sync_all().expect("sync");
    }
    path
}

fn machine() -> String {
    let out = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    format!("{} CPUs ({cpu}), kernel {}; {}", out("nproc", &[]), out("uname", &["-r"]), out("uptime", &[]))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::var("FERRY_BENCH_QUICK").is_ok_and(|v| v == "1");
    let sizes: Vec<u64> = env_list("FERRY_BENCH_SIZES_MIB", if quick { "64,256" } else { "1024,4096" })
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let concurrent = std::env::var("FERRY_BENCH_CONCURRENT")
        .unwrap_or_else(|_| (if quick { "4x64" } else { "16x256" }).into());
    let (uploads, each): (u32, u64) = concurrent
        .split_once('x')
        .and_then(|(n, m)| Some((n.parse().ok()?, m.parse().ok()?)))
        .expect("FERRY_BENCH_CONCURRENT is NxMIB");
    let only = env_list("FERRY_BENCH_ONLY", "");
    let aws = std::env::var("FERRY_BENCH_AWS").unwrap_or_else(|_| "aws".into());
    let base = std::env::var_os("FERRY_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::tempdir_in(base).expect("temp dir");

    println!("bench e2e: machine: {}", machine());
    println!(
        "ferry: this build's `ferry serve` (bench profile), 8 MiB parts, 4 in flight, fed by `curl -T` with tickets; `{aws}` with AWS_CA_BUNDLE unset"
    );
    let mut files: Vec<u64> = sizes.clone();
    files.push(each);
    files.sort_unstable();
    files.dedup();
    for &mib in &files {
        write_file(dir.path(), mib);
    }
    ferry::binary(dir.path());
    for name in env_list("FERRY_BENCH_SERVERS", "s3s-fs,localstack") {
        let server = match name.as_str() {
            "s3s-fs" => Server::s3s_fs(&dir.path().join("s3s-fs")).await,
            "localstack" => match std::env::var("FERRY_TEST_LOCALSTACK") {
                Ok(endpoint) => Server::localstack(&endpoint).await,
                Err(_) => {
                    println!(
                        "\nLocalStack skipped: FERRY_TEST_LOCALSTACK is not set (`cargo xtask bench e2e` sets it)"
                    );
                    continue;
                }
            },
            other => panic!("unknown server {other} (s3s-fs, localstack)"),
        };
        let bench = Bench { server: &server, dir: dir.path(), aws: &aws };
        let selected = |label: &str| only.is_empty() || only.iter().any(|w| label.contains(w.as_str()));
        let mut rows: Vec<Measured> = Vec::new();
        let all = cases::cases(&server);
        for &mib in &sizes {
            for case in all.iter().filter(|c| selected(c.label)) {
                let row = cases::run(&bench, case, &write_file(dir.path(), mib), mib).await;
                eprintln!(
                    "  {}: {} {} MiB: {:.1} MB/s {:?}",
                    server.name,
                    row.label,
                    mib,
                    row.mbps(),
                    row.failure
                );
                rows.push(row);
            }
        }
        if selected(tus::LABEL) {
            tus::rows(&bench, &all, &sizes, |mib| write_file(dir.path(), mib), &mut rows).await;
        }
        // Many at once through one ferry, against one stream of the same total.
        let default = all
            .iter()
            .find(|c| matches!(c.goal, Goal::Default | Goal::DefaultWithoutCrc))
            .expect("a default row");
        let mut pair = None;
        if selected("concurrent") || selected(default.label) {
            let cases::Kind::Ferry(setup) = &default.kind else { unreachable!("the default row is ferry") };
            let total = u64::from(uploads) * each;
            let mut many = ferry::run(&bench, setup, &write_file(dir.path(), each), each, uploads).await;
            many.label = format!("{} × {uploads} concurrent", default.label);
            let one =
                match rows.iter().find(|r| r.goal == default.goal && r.mib == total && r.failure.is_none()) {
                    Some(one) => one.clone(),
                    None => {
                        let mut one =
                            cases::run(&bench, default, &write_file(dir.path(), total), total).await;
                        one.label = format!("{} (one stream for the concurrent case)", default.label);
                        one
                    }
                };
            if !rows.iter().any(|r| r.label == one.label && r.mib == one.mib) {
                rows.push(one.clone());
            }
            rows.push(many.clone());
            pair = Some((many, one));
        }
        report::table(&server.name, &rows);
        report::goals(&server.name, &rows, &sizes, pair.as_ref().map(|(a, b)| (a, b)), BUDGET);
        server.drop_bucket().await;
    }
    println!("\nafter the run: {}", machine());
}
