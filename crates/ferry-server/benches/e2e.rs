//! `cargo xtask bench e2e`: 1 GiB and 4 GiB files uploaded through `ferry serve` (this build's
//! binary, a separate process) with `curl`, and in the same run the same files uploaded straight
//! to the same S3 server with `aws s3 cp`. Prints MB/s, the ratio ferry / aws-cli, and ferry's
//! peak RSS (`VmHWM`) per size; ferry is restarted for each size so each peak is its own.
//!
//! The S3 server is s3s-fs (as in `ferry dev`) in this process, data in a temporary folder; the
//! Genesys emulator runs here too. Uploads use a guest session on a deployment configured with
//! `delivery = "link"`: the session is checked with Genesys and a link message is sent, so the whole
//! path runs but no GiBs are streamed into the emulator.
//!
//! Settings: `FERRY_BENCH_SIZES_MIB` (default `1024,4096`), `FERRY_BENCH_AWS` (default `aws`),
//! `FERRY_BENCH_DIR` (where the files and the store live; default the system temp folder).

use ferry_s3::{S3Config, build_client};
use ferry_sandbox::genesys::{DEMO_DEPLOYMENT_ID, GenesysEmulator, GenesysEmulatorConfig};
use ferry_sandbox::s3::{ACCESS_KEY, LocalS3, SECRET_KEY};
use ferry_testkit::data::write_pseudo_random;
use ferry_testkit::process::{Ferry, FerryCommand};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const BUCKET: &str = "bench";

fn write_random_file(path: &Path, mib: u64) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    write_pseudo_random(&file, mib * MIB, 0x1234_5678_9abc_def1 ^ mib)?;
    file.sync_all()
}

/// Flushes every dirty page, so one upload's writes are not paid for by the next.
fn sync() {
    let _ = Command::new("sync").status();
}

/// Peak resident set of `pid`, bytes.
fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

/// CPU time `pid` has used (user + system), from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
    // Clock ticks: 100 per second on Linux (USER_HZ).
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// Starts `ferry serve` (this build) with `config`, freshly, and waits until it is ready.
async fn start_ferry(config: &Path, log: &Path) -> Ferry {
    FerryCommand::new(env!("CARGO_BIN_EXE_ferry"), log)
        .arg("--config")
        .arg(config)
        .start()
        .await
        .expect("ferry starts")
}

/// SIGTERM, and up to 30 s for ferry to exit (then SIGKILL, on drop).
async fn stop_ferry(mut ferry: Ferry) {
    ferry.terminate();
    ferry.wait_exit(Duration::from_secs(30)).await;
}

/// Runs curl; returns the status and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

struct Row {
    mib: u64,
    ferry: Duration,
    aws: Option<Duration>,
    idle_rss: u64,
    peak_rss: u64,
    /// CPU time ferry spent on the upload.
    ferry_cpu: Duration,
    /// ferry's high-water mark after 25, 50, 75 and 100 % of the upload's time.
    quarters: [u64; 4],
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<u64> = std::env::var("FERRY_BENCH_SIZES_MIB")
        .unwrap_or_else(|_| "1024,4096".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let aws = std::env::var("FERRY_BENCH_AWS").unwrap_or_else(|_| "aws".into());
    let base = std::env::var_os("FERRY_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::tempdir_in(base).expect("temp dir");

    let store =
        LocalS3::start(dir.path().join("s3s-fs"), "127.0.0.1:0".parse().unwrap()).await.expect("s3s-fs");
    store.create_bucket(BUCKET).expect("bucket");
    let client = build_client(&S3Config::compatible(store.endpoint(), ACCESS_KEY, SECRET_KEY)).await;
    let emulator = GenesysEmulator::start(GenesysEmulatorConfig::default()).await.expect("emulator");
    let token = emulator.state().create_session(DEMO_DEPLOYMENT_ID);

    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nlink_secret = \"{secret}\"\n\n[s3]\nbucket = \"{BUCKET}\"\nendpoint = \"{endpoint}\"\n\
             path_style = true\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n\
             # s3s-fs has no flexible checksums: Content-MD5 and ETags protect every part.\nchecksum = \"md5\"\n\n\
             [deployments.\"{DEMO_DEPLOYMENT_ID}\"]\nweb_messaging_url = \"{ws}\"\ndelivery = \"link\"\n",
            secret = uuid::Uuid::new_v4().simple().to_string().repeat(2),
            endpoint = store.endpoint(),
            ws = emulator.ws_url(),
        ),
    )
    .expect("config");

    println!(
        "bench e2e: `ferry serve` (this build, separate process; 8 MiB parts, 4 in flight, md5) fed by `curl -T`, \
         vs `{aws} s3 cp`, same s3s-fs server, same run"
    );
    let mut rows = Vec::new();
    for &mib in &sizes {
        let file = dir.path().join(format!("bench-{mib}.bin"));
        write_random_file(&file, mib).expect("bench file");
        sync();
        let len = mib * MIB;

        // Through ferry, freshly started so its peak is this upload's.
        let ferry = start_ferry(&config, &dir.path().join(format!("ferry-{mib}.log"))).await;
        let pid = ferry.pid();
        let idle_rss = vm_hwm(pid);
        let cpu_before = cpu_time(pid);
        let url = ferry.url("/v1/uploads");
        let auth = format!("Authorization: Bearer {token}");
        let deployment = format!("X-Genesys-Deployment-Id: {DEMO_DEPLOYMENT_ID}");
        let path = file.display().to_string();
        let started = Instant::now();
        let upload = tokio::task::spawn_blocking(move || {
            curl(&[
                "-X",
                "POST",
                "-T",
                &path,
                "-H",
                "Expect:",
                "-H",
                &auth,
                "-H",
                &deployment,
                "-H",
                "Content-Type: application/octet-stream",
                "-H",
                "X-File-Name: bench.bin",
                &url,
            ])
        });
        // ferry's high-water mark over the upload, to see when it is reached.
        let mut timeline = Vec::new();
        while !upload.is_finished() {
            timeline.push((started.elapsed(), vm_hwm(pid)));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (status, body) = upload.await.expect("curl task");
        let ferry_time = started.elapsed();
        let peak_rss = vm_hwm(pid);
        let ferry_cpu = cpu_time(pid).saturating_sub(cpu_before);
        let at = |fraction: f64| {
            timeline
                .iter()
                .take_while(|(t, _)| t.as_secs_f64() <= fraction * ferry_time.as_secs_f64())
                .last()
                .map_or(0, |(_, hwm)| *hwm)
        };
        stop_ferry(ferry).await;
        assert_eq!(status, 201, "ferry refused the upload: {body}");
        let reference: serde_json::Value = serde_json::from_str(&body).expect("reference");
        assert_eq!(reference["size"], len, "{reference}");
        assert_eq!(reference["delivery"]["mode"], "link", "{reference}");
        let key = ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX)
            .as_deref()
            .expect("key")
            .to_owned();
        let head = client.head_object().bucket(BUCKET).key(&key).send().await.expect("stored object");
        assert_eq!(head.content_length(), Some(len as i64));
        client.delete_object().bucket(BUCKET).key(&key).send().await.expect("delete");
        sync();

        // Straight to the same server with aws-cli.
        let (aws_cmd, endpoint, path) = (aws.clone(), store.endpoint(), file.clone());
        let aws_time = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let status = Command::new(&aws_cmd)
                .args(["s3", "cp", "--only-show-errors", "--endpoint-url", &endpoint])
                .arg(&path)
                .arg(format!("s3://{BUCKET}/aws-bench"))
                .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .env_remove("AWS_CA_BUNDLE")
                .env_remove("AWS_PROFILE")
                .status();
            match status {
                Ok(s) if s.success() => Some(started.elapsed()),
                other => {
                    eprintln!("aws s3 cp failed: {other:?}");
                    None
                }
            }
        })
        .await
        .expect("aws task");
        let _ = client.delete_object().bucket(BUCKET).key("aws-bench").send().await;
        std::fs::remove_file(&file).expect("remove bench file");
        sync();
        rows.push(Row {
            mib,
            ferry: ferry_time,
            aws: aws_time,
            idle_rss,
            peak_rss,
            ferry_cpu,
            quarters: [at(0.25), at(0.5), at(0.75), peak_rss],
        });
    }

    println!(
        "{:>8} {:>11} {:>10} {:>10} {:>16} {:>16} {:>18}",
        "size", "ferry MB/s", "aws MB/s", "ferry/aws", "ferry peak RSS", "ferry idle RSS", "ferry CPU s/GiB"
    );
    for row in &rows {
        let mb = (row.mib * MIB) as f64 / 1e6;
        let ferry_mbps = mb / row.ferry.as_secs_f64();
        let (aws_mbps, ratio) = match row.aws {
            Some(t) => {
                (format!("{:.0}", mb / t.as_secs_f64()), format!("{:.2}", ferry_mbps * t.as_secs_f64() / mb))
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:>4} MiB {:>11.0} {:>10} {:>10} {:>12.1} MiB {:>12.1} MiB {:>18.2}",
            row.mib,
            ferry_mbps,
            aws_mbps,
            ratio,
            row.peak_rss as f64 / MIB as f64,
            row.idle_rss as f64 / MIB as f64,
            row.ferry_cpu.as_secs_f64() / (row.mib as f64 / 1024.0),
        );
    }
    for row in &rows {
        let [a, b, c, d] = row.quarters.map(|v| v as f64 / MIB as f64);
        println!(
            "{:>4} MiB: ferry's RSS high-water mark after 25/50/75/100% of the upload: {a:.1} / {b:.1} / {c:.1} / {d:.1} MiB",
            row.mib
        );
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last())
        && rows.len() > 1
    {
        let growth = last.peak_rss as f64 / first.peak_rss as f64 - 1.0;
        println!(
            "peak RSS at {} MiB vs {} MiB: {:+.1}% ({} the 10% bound)",
            last.mib,
            first.mib,
            growth * 100.0,
            if growth.abs() <= 0.10 { "within" } else { "OUTSIDE" }
        );
    }
    drop(emulator);
}
