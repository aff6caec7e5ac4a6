//! `cargo xtask bench s3`: a 1 GiB file uploaded by ferry-s3 and, in the same run, by `aws s3 cp`,
//! to an in-process s3s-fs server and to LocalStack (when `FERRY_TEST_LOCALSTACK` names one or one
//! runs on 127.0.0.1:4566).
//! Prints MB/s, the ratio ferry / aws-cli, and the most part bytes ferry held at once.
//!
//! `FERRY_BENCH_MIB` sets the size (default 1024); `FERRY_BENCH_AWS` the aws-cli to run
//! (default `aws`).

use bytes::Bytes;
use ferry_core::chunk::Chunker;
use ferry_core::plan::{MIB, PlanLimits, plan_parts};
use ferry_s3::{ChecksumMode, ObjectMeta, S3Config, UploadConfig, Uploader, build_client};
use ferry_sandbox::s3::{ACCESS_KEY, LocalS3, SECRET_KEY};
use ferry_testkit::data::write_pseudo_random;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

struct Target {
    name: &'static str,
    endpoint: String,
    access_key: &'static str,
    secret_key: &'static str,
    mode: ChecksumMode,
}

async fn ferry_upload(target: &Target, bucket: &str, path: &Path) -> (Duration, u64) {
    let client =
        build_client(&S3Config::compatible(&target.endpoint, target.access_key, target.secret_key)).await;
    let _ = client.create_bucket().bucket(bucket).send().await;
    let config = UploadConfig { checksum_mode: target.mode, ..UploadConfig::default() };
    let uploader = Uploader::new(client, bucket, config);
    let len = std::fs::metadata(path).expect("file").len();
    let start = Instant::now();
    let plan =
        plan_parts(Some(len), &PlanLimits { max_file_size: 1 << 40, ..PlanLimits::default() }).expect("plan");
    let mut chunker = Chunker::new(plan, target.mode.inline_chunker_options(false));
    let mut upload = uploader.begin("ferry-bench", ObjectMeta::default());
    let mut file = tokio::fs::File::open(path).await.expect("open");
    loop {
        let mut buf = bytes::BytesMut::with_capacity(1 << 20);
        let n = file.read_buf(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        let frame: Bytes = buf.freeze();
        for part in chunker.push(frame).expect("plan holds") {
            upload.push_part(part).await.expect("part");
        }
    }
    let (last, summary) = chunker.finish().expect("finish");
    upload.finish(last, &summary).await.expect("upload");
    (start.elapsed(), uploader.memory().peak())
}

fn aws_upload(aws: &str, target: &Target, bucket: &str, path: &Path) -> Option<Duration> {
    let start = Instant::now();
    let status = Command::new(aws)
        .args(["s3", "cp", "--only-show-errors", "--endpoint-url", &target.endpoint])
        .arg(path)
        .arg(format!("s3://{bucket}/aws-bench"))
        .env("AWS_ACCESS_KEY_ID", target.access_key)
        .env("AWS_SECRET_ACCESS_KEY", target.secret_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("AWS_PROFILE")
        .status();
    match status {
        Ok(s) if s.success() => Some(start.elapsed()),
        other => {
            eprintln!("aws s3 cp to {} failed: {other:?}", target.name);
            None
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mib: usize = std::env::var("FERRY_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let aws = std::env::var("FERRY_BENCH_AWS").unwrap_or_else(|_| "aws".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bench.bin");
    write_pseudo_random(
        std::fs::File::create(&file).expect("bench file"),
        mib as u64 * MIB,
        0x1234_5678_9abc_def1,
    )
    .expect("bench file");
    let local =
        LocalS3::start(dir.path().join("s3s-fs"), "127.0.0.1:0".parse().unwrap()).await.expect("s3s-fs");
    local.create_bucket("bench").expect("bucket");

    let mut targets = vec![Target {
        name: "s3s-fs (in process)",
        endpoint: local.endpoint(),
        access_key: ACCESS_KEY,
        secret_key: SECRET_KEY,
        mode: ChecksumMode::Md5,
    }];
    match ferry_testkit::localstack::find() {
        Some(endpoint) => targets.push(Target {
            name: "LocalStack S3",
            endpoint,
            access_key: "test",
            secret_key: "test",
            mode: ChecksumMode::Crc64Nvme,
        }),
        None => eprintln!("no LocalStack: LocalStack row skipped (cargo xtask bench s3 starts one)"),
    }

    let mb = (mib as u64 * MIB) as f64 / 1e6;
    println!(
        "bench s3: {mib} MiB file, ferry-s3 (8 MiB parts, 4 in flight) vs `{aws} s3 cp`, same run, same server"
    );
    println!(
        "{:<22} {:>11} {:>11} {:>14} {:>18}",
        "server", "ferry MB/s", "aws MB/s", "ferry/aws", "ferry peak held"
    );
    for target in &targets {
        let (ferry, peak) = ferry_upload(target, "bench", &file).await;
        let aws_time = {
            let (aws, target, file) = (
                aws.clone(),
                Target { name: target.name, endpoint: target.endpoint.clone(), ..*target },
                file.clone(),
            );
            tokio::task::spawn_blocking(move || aws_upload(&aws, &target, "bench", &file))
                .await
                .expect("aws task")
        };
        let ferry_mbps = mb / ferry.as_secs_f64();
        match aws_time {
            Some(t) => {
                let aws_mbps = mb / t.as_secs_f64();
                println!(
                    "{:<22} {:>11.0} {:>11.0} {:>14.2} {:>14.1} MiB",
                    target.name,
                    ferry_mbps,
                    aws_mbps,
                    ferry_mbps / aws_mbps,
                    peak as f64 / MIB as f64
                );
            }
            None => println!(
                "{:<22} {:>11.0} {:>11} {:>14} {:>14.1} MiB",
                target.name,
                ferry_mbps,
                "-",
                "-",
                peak as f64 / MIB as f64
            ),
        }
    }
}
