//! The ferry rows: `ferry serve` (this build, its own process, started fresh for each run so its
//! peak RSS is that run's) fed by `curl -T` with upload tickets, one upload or several at once.
//! Quotas and rate limits are set out of the way: one client address plays every uploader.

use crate::cases::{Bench, Measured, Rss, blank, check_and_remove};
use crate::procfs;
use crate::servers::BUCKET;
use ferry_testkit::process::{Ferry, FerryCommand};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DEPLOYMENT: &str = "bench-deployment";
const TICKET_SECRET: &str = "bench-ticket-secret-0123456789abcdef-not-for-production";

/// A ferry configuration: the checksum mode and extra `[data_path]` lines.
#[derive(Debug, Clone)]
pub(crate) struct FerrySetup {
    pub(crate) checksum: &'static str,
    pub(crate) data_path: &'static str,
}

impl FerrySetup {
    pub(crate) fn new(checksum: &'static str, data_path: &'static str) -> Self {
        Self { checksum, data_path }
    }

    /// The TOML file for `bench`'s server, a fresh link key.
    fn config(&self, bench: &Bench<'_>) -> String {
        self.config_with_link_key(bench, &uuid::Uuid::new_v4().simple().to_string().repeat(2))
    }

    /// The TOML file for `bench`'s server with the link key `link` (replicas share one).
    pub(crate) fn config_with_link_key(&self, bench: &Bench<'_>, link: &str) -> String {
        let server = bench.server;
        format!(
            "listen = \"127.0.0.1:0\"\nlink_secret = \"{link}\"\nticket_secret = \"{TICKET_SECRET}\"\n\n\
             [tickets]\nsingle_process = true\n\n\
             [s3]\nbucket = \"{BUCKET}\"\nendpoint = \"{endpoint}\"\npath_style = true\n\
             access_key_id = \"{ak}\"\nsecret_access_key = \"{sk}\"\nchecksum = \"{checksum}\"\n\n\
             [admission]\nper_client_per_minute = 0\n\n\
             [data_path]\nmax_uploads_per_client = 0\n{data_path}\n\
             [deployments.\"{DEPLOYMENT}\"]\ndelivery = \"link\"\n",
            endpoint = server.endpoint,
            ak = server.access_key,
            sk = server.secret_key,
            checksum = self.checksum,
            data_path = self.data_path,
        )
    }
}

/// The `ferry` binary every row runs: a copy of this build's, taken once, so a rebuild of the
/// shared target folder during a long run cannot swap it between rows.
pub(crate) fn binary(dir: &Path) -> PathBuf {
    let copy = dir.join("ferry");
    if !copy.exists() {
        std::fs::copy(env!("CARGO_BIN_EXE_ferry"), &copy).expect("copying the ferry binary");
    }
    copy
}

/// `FERRY_BENCH_FERRY_ENV` (`K=V;K=V`): variables for ferry's process, to try allocator settings
/// (`MALLOC_ARENA_MAX=2`, say) without a rebuild.
fn extra_env() -> Vec<(String, String)> {
    let text = std::env::var("FERRY_BENCH_FERRY_ENV").unwrap_or_default();
    text.split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .collect()
}

/// A fresh single-use ticket.
pub(crate) fn ticket() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = ferry_server::tickets::Claims {
        dep: DEPLOYMENT.into(),
        exp: now + 3000,
        jti: uuid::Uuid::new_v4().to_string(),
        iat: Some(now),
        ..ferry_server::tickets::Claims::default()
    };
    ferry_server::tickets::mint(TICKET_SECRET.as_bytes(), &claims)
}

/// One upload with curl: the status and the body.
fn curl_upload(url: &str, file: &str, ticket: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "-w", "\n%{http_code}", "-X", "POST", "-T", file, "-H", "Expect:"])
        .args(["-H", &format!("Authorization: Ferry-Ticket {ticket}")])
        .args(["-H", "Content-Type: application/octet-stream", "-H", "X-File-Name: bench.bin", url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// `uploads` uploads of `file` (`mib` MiB) at once through one fresh `ferry serve`.
pub(crate) async fn run(
    bench: &Bench<'_>,
    setup: &FerrySetup,
    file: &Path,
    mib: u64,
    uploads: u32,
) -> Measured {
    let server = bench.server;
    let config = bench.dir.join("ferry.toml");
    std::fs::write(&config, setup.config(bench)).expect("ferry config");
    let log = bench.dir.join(format!("ferry-{}-{mib}-x{uploads}.log", setup.checksum));
    let started = FerryCommand::new(binary(bench.dir), &log)
        .arg("--config")
        .arg(&config)
        .envs(extra_env())
        .start()
        .await;
    let ferry: Ferry = match started {
        Ok(ferry) => ferry,
        Err(error) => {
            let mut failed = blank(u64::from(uploads) * mib * crate::cases::MIB, mib);
            failed.failures = uploads;
            failed.failure =
                Some(format!("ferry did not start: {}", error.to_string().lines().last().unwrap_or("")));
            return failed;
        }
    };
    let pid = ferry.pid();
    let idle = procfs::vm_hwm(pid).unwrap_or(0);
    let (cpu_before, s3_before) = (procfs::cpu_time(pid), server.cpu());
    let url = ferry.url("/v1/uploads");
    let started = Instant::now();
    let tasks: Vec<_> = (0..uploads)
        .map(|_| {
            let (url, path, ticket) = (url.clone(), file.display().to_string(), ticket());
            tokio::task::spawn_blocking(move || curl_upload(&url, &path, &ticket))
        })
        .collect();
    let mut sampled = 0;
    while !tasks.iter().all(tokio::task::JoinHandle::is_finished) {
        sampled = sampled.max(procfs::vm_rss(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let uploader_cpu = procfs::cpu_time(pid).saturating_sub(cpu_before);
    let s3_cpu = server.cpu().saturating_sub(s3_before);
    let peak = procfs::vm_hwm(pid).unwrap_or(0);
    let mut measured = blank(u64::from(uploads) * mib * crate::cases::MIB, mib);
    measured.elapsed = elapsed;
    measured.uploader_cpu = uploader_cpu;
    measured.s3_cpu = s3_cpu;
    measured.rss = Some(Rss { idle, peak, sampled });
    for task in tasks {
        let (status, body) = task.await.expect("curl task");
        let problem = match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(reference) if status == 201 => {
                match ferry_testkit::reference::stored_key(
                    &reference,
                    ferry_testkit::reference::DEFAULT_PREFIX,
                ) {
                    Some(key) => check_and_remove(server, &key, mib * crate::cases::MIB).await,
                    None => Some(format!("no file id in {reference}")),
                }
            }
            _ => Some(format!("ferry answered {status}: {}", body.chars().take(300).collect::<String>())),
        };
        if let Some(problem) = problem {
            measured.failures += 1;
            measured.failure.get_or_insert(problem);
        }
    }
    ferry.terminate();
    let mut ferry = ferry;
    ferry.wait_exit(Duration::from_secs(30)).await;
    measured
}
