//! The bench's rows: what uploads a file ([`Kind`]), and how each is run and measured. A new row is
//! one more [`Case`] in [`cases`] (a ferry configuration is a [`FerrySetup`]; a new kind of client
//! is one more [`Kind`] and its arm in [`run`]).

use crate::ferry::{self, FerrySetup};
use crate::procfs;
use crate::servers::{BUCKET, Server};
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) const MIB: u64 = 1 << 20;

/// What a row stands for in the goals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Goal {
    /// ferry's default configuration (`checksum = "crc64nvme"`).
    Default,
    /// ferry's configuration where the CRC modes cannot run (s3s-fs: `md5`, as `ferry dev`).
    DefaultWithoutCrc,
    /// The CRC-only configuration: the default mode without the whole-file MD5.
    CrcOnly,
    /// `aws s3 cp`, the baseline.
    Baseline,
    /// One unsigned PUT: the S3 server's ingest ceiling.
    Ceiling,
    /// Shown, not judged.
    None,
}

/// How a row uploads the file.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// `curl -T` with an upload ticket into `ferry serve` (release build, its own process).
    Ferry(FerrySetup),
    /// `aws s3 cp` straight to the S3 server.
    AwsCli,
    /// One `PUT` of the whole file to a presigned URL (`UNSIGNED-PAYLOAD`).
    UnsignedPut,
    /// The default ferry row (this checksum mode) with malware scanning by a local clamd.
    Scanned(&'static str),
}

/// One row of the table.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) label: &'static str,
    pub(crate) kind: Kind,
    pub(crate) goal: Goal,
}

/// The rows, in the order they run. CRC modes are skipped where the server has no flexible checksums.
pub(crate) fn cases(server: &Server) -> Vec<Case> {
    let crc = |label, checksum, data_path, goal| Case {
        label,
        kind: Kind::Ferry(FerrySetup::new(checksum, data_path)),
        goal,
    };
    let mut all = Vec::new();
    if server.flexible_checksums {
        all.push(crc("ferry crc64nvme (default)", "crc64nvme", "", Goal::Default));
        all.push(crc("ferry crc64nvme, CRC only", "crc64nvme", "whole_file_md5 = false", Goal::CrcOnly));
        all.push(crc("ferry crc32c", "crc32c", "", Goal::None));
    }
    let md5_goal = if server.flexible_checksums { Goal::None } else { Goal::DefaultWithoutCrc };
    all.push(crc("ferry md5", "md5", "", md5_goal));
    let default_mode = if server.flexible_checksums { "crc64nvme" } else { "md5" };
    all.push(Case {
        label: "ferry + ClamAV scan (CPU: ferry + clamd)",
        kind: Kind::Scanned(default_mode),
        goal: Goal::None,
    });
    all.push(Case { label: "aws s3 cp", kind: Kind::AwsCli, goal: Goal::Baseline });
    all.push(Case { label: "unsigned PUT (curl)", kind: Kind::UnsignedPut, goal: Goal::Ceiling });
    all
}

/// ferry's resident set during one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rss {
    /// `VmHWM` right after start-up.
    pub(crate) idle: u64,
    /// `VmHWM` after the upload(s).
    pub(crate) peak: u64,
    /// The largest `VmRSS` sampled every 100 ms.
    pub(crate) sampled: u64,
}

/// One measured run.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    pub(crate) label: String,
    pub(crate) goal: Goal,
    /// Bytes uploaded (all uploads of the run).
    pub(crate) bytes: u64,
    /// One file's size, MiB.
    pub(crate) mib: u64,
    pub(crate) elapsed: Duration,
    /// The uploader's CPU: ferry's own process, or the client's.
    pub(crate) uploader_cpu: Duration,
    /// The S3 server's CPU over the run.
    pub(crate) s3_cpu: Duration,
    /// ferry's memory (ferry rows).
    pub(crate) rss: Option<Rss>,
    /// Uploads that failed, and the first failure.
    pub(crate) failures: u32,
    pub(crate) failure: Option<String>,
}

impl Measured {
    pub(crate) fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn cpu_per_gib(&self) -> f64 {
        self.uploader_cpu.as_secs_f64() / (self.bytes as f64 / (1024.0 * MIB as f64))
    }
}

/// Everything a run needs besides its case.
pub(crate) struct Bench<'a> {
    pub(crate) server: &'a Server,
    pub(crate) dir: &'a Path,
    pub(crate) aws: &'a str,
}

/// Runs `case` once with `file` (`mib` MiB); never panics on a failed upload (the row says it).
pub(crate) async fn run(bench: &Bench<'_>, case: &Case, file: &Path, mib: u64) -> Measured {
    sync();
    let mut measured = match &case.kind {
        Kind::Ferry(setup) => ferry::run(bench, setup, file, mib, 1).await,
        Kind::AwsCli => aws_cli(bench, file, mib).await,
        Kind::UnsignedPut => unsigned_put(bench, file, mib).await,
        Kind::Scanned(checksum) => crate::scan::run(bench, checksum, file, mib).await,
    };
    measured.label = case.label.into();
    measured.goal = case.goal;
    measured
}

/// A run with nothing measured yet.
pub(crate) fn blank(bytes: u64, mib: u64) -> Measured {
    Measured {
        label: String::new(),
        goal: Goal::None,
        bytes,
        mib,
        elapsed: Duration::ZERO,
        uploader_cpu: Duration::ZERO,
        s3_cpu: Duration::ZERO,
        rss: None,
        failures: 0,
        failure: None,
    }
}

/// Checks that `key` holds `len` bytes, then deletes it; the failure, if not.
pub(crate) async fn check_and_remove(server: &Server, key: &str, len: u64) -> Option<String> {
    let size = server.size_of(key).await;
    server.remove(key).await;
    (size != Some(len)).then(|| format!("stored object {key}: {size:?} bytes, expected {len}"))
}

async fn aws_cli(bench: &Bench<'_>, file: &Path, mib: u64) -> Measured {
    let (server, aws, path) = (bench.server, bench.aws.to_owned(), file.display().to_string());
    let (endpoint, ak, sk) = (server.endpoint.clone(), server.access_key.clone(), server.secret_key.clone());
    let s3_before = server.cpu();
    let started = Instant::now();
    let (ok, out, cpu) = tokio::task::spawn_blocking(move || {
        let target = format!("s3://{BUCKET}/aws-bench");
        let envs = [
            ("AWS_ACCESS_KEY_ID", ak.as_str()),
            ("AWS_SECRET_ACCESS_KEY", sk.as_str()),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ];
        let args = [
            "s3",
            "cp",
            "--only-show-errors",
            "--endpoint-url",
            endpoint.as_str(),
            path.as_str(),
            target.as_str(),
        ];
        procfs::run_timed(&aws, &args, &envs, &["AWS_CA_BUNDLE", "AWS_PROFILE"])
    })
    .await
    .expect("aws task");
    let mut m = blank(mib * MIB, mib);
    m.elapsed = started.elapsed();
    m.s3_cpu = server.cpu().saturating_sub(s3_before);
    m.uploader_cpu = cpu;
    m.failure = if ok {
        check_and_remove(server, "aws-bench", mib * MIB).await
    } else {
        Some(format!("aws s3 cp failed: {out}"))
    };
    m.failures = u32::from(m.failure.is_some());
    m
}

async fn unsigned_put(bench: &Bench<'_>, file: &Path, mib: u64) -> Measured {
    let server = bench.server;
    let url = crate::sigv4::presigned_put(
        &server.endpoint,
        BUCKET,
        "put-bench",
        &server.access_key,
        &server.secret_key,
    );
    let path = file.display().to_string();
    let s3_before = server.cpu();
    let started = Instant::now();
    let (ok, out, cpu) = tokio::task::spawn_blocking(move || {
        let args = [
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-T",
            &path,
            "-H",
            "Expect:",
            &url,
        ];
        procfs::run_timed("curl", &args, &[], &[])
    })
    .await
    .expect("curl task");
    let mut m = blank(mib * MIB, mib);
    m.elapsed = started.elapsed();
    m.s3_cpu = server.cpu().saturating_sub(s3_before);
    m.uploader_cpu = cpu;
    m.failure = if ok && out == "200" {
        check_and_remove(server, "put-bench", mib * MIB).await
    } else {
        Some(format!("PUT answered {out}"))
    };
    m.failures = u32::from(m.failure.is_some());
    m
}

/// Flushes every dirty page, so one upload's writes are not paid for by the next.
pub(crate) fn sync() {
    let _ = std::process::Command::new("sync").status();
}
