//! `cargo xtask soak`: hundreds of uploads through `ferry serve` (a separate process) from many
//! concurrent clients, with random S3 and Genesys faults and random client aborts; then every
//! outcome is checked against what S3 and the conversation hold, and ferry's memory against its
//! budget.
//!
//! In this process: s3s-fs (`LocalS3`, data in a temporary folder) behind the fault proxy
//! (`FaultProxy`, ferry's S3 endpoint), and the Genesys emulator (ferry's `web_messaging_url`),
//! with one guest session per client. ferry is the release binary next to this example (or
//! `--ferry`), configured by a TOML file plus `FERRY_…` variables.
//!
//! Invariants (any failure exits 1):
//! - every 201 names an object that is in the bucket, streams back with the file's SHA-256, and was
//!   delivered exactly once: a native attachment with that SHA-256 referenced by exactly one
//!   message, or exactly one message carrying the file's download link;
//! - the bucket holds exactly the 201s' objects and no multipart upload is left; the conversations
//!   hold exactly one message per 201 (a refused upload claimed nothing);
//! - the emulator saw no violation; ferry holds no guest connection once idle; its counters agree;
//! - ferry's peak RSS (VmRSS sampled every 100 ms) stayed under its idle RSS + `FERRY_MEMORY_BUDGET`
//!   + a fixed allowance (`--rss-allowance-mib`, default 64 MiB);
//! - ferry's log holds no session token, presigned URL or link signature, and SIGTERM stops it
//!   cleanly.

mod client;
mod plan;

use clap::Parser;
use client::{Answer, Sent};
use ferry_s3::{S3Config, SdkClient, build_client};
use ferry_sandbox::genesys::{DEMO_DEPLOYMENT_ID, Faults, GenesysEmulator, GenesysEmulatorConfig};
use ferry_sandbox::s3::{ACCESS_KEY, LocalS3, SECRET_KEY};
use ferry_sandbox::s3_faults::FaultProxy;
use ferry_testkit::process::{Ferry, FerryCommand};
use plan::{AbortKind, GenesysFault, Job, MIB, NATIVE_LIMIT, PlanSettings, Rng};
use serde_json::Value;
use sha2::Digest as _;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BUCKET: &str = "soak";
const PUBLIC_URL: &str = "http://ferry.soak.invalid";

/// The soak's settings.
#[derive(Debug, Parser)]
#[command(name = "soak", about = "ferry soak: concurrent uploads with faults and aborts, then invariants")]
struct Args {
    /// Uploads in all.
    #[arg(long, default_value_t = 300)]
    uploads: usize,
    /// Concurrent clients (each its own guest session).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Largest ordinary upload, MiB (sizes are drawn from 0 B up to this).
    #[arg(long, default_value_t = 64)]
    max_mib: u64,
    /// How many big uploads.
    #[arg(long, default_value_t = 3)]
    big: usize,
    /// Size of the big uploads, MiB.
    #[arg(long, default_value_t = 512)]
    big_mib: u64,
    /// Seed of the plan (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// ferry's FERRY_MEMORY_BUDGET, MiB.
    #[arg(long, default_value_t = 256)]
    memory_budget_mib: u64,
    /// RSS allowed above idle RSS + memory budget, MiB.
    #[arg(long, default_value_t = 64)]
    rss_allowance_mib: u64,
    /// Share of uploads the client aborts partway.
    #[arg(long, default_value_t = 0.06)]
    abort_rate: f64,
    /// Share of uploads that inject an S3 fault as they start.
    #[arg(long, default_value_t = 0.3)]
    s3_fault_rate: f64,
    /// Share of uploads that inject a Genesys fault as they start.
    #[arg(long, default_value_t = 0.15)]
    genesys_fault_rate: f64,
    /// Share of S3 faults that persist past ferry's retries.
    #[arg(long, default_value_t = 0.1)]
    persistent_share: f64,
    /// No client hangs up after sending the whole body (aborts happen partway only).
    #[arg(long)]
    no_hang_ups: bool,
    /// The ferry binary (default: `ferry` in the folder above this example's).
    #[arg(long)]
    ferry: Option<PathBuf>,
    /// Where the temporary folder (S3 data, ferry's log) goes (default: the system's).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the temporary folder (it is always kept when an invariant fails).
    #[arg(long)]
    keep: bool,
}

/// One upload's result.
#[derive(Debug)]
struct Record {
    job: Job,
    client: usize,
    answer: Result<Answer, String>,
    sent: Sent,
    /// The client hung up after the whole body, before the answer.
    reset_after_body: bool,
    busy_retries: u32,
    elapsed: Duration,
}

impl Record {
    fn created(&self) -> Option<&Answer> {
        self.answer.as_ref().ok().filter(|a| a.status == 201)
    }

    fn outcome(&self) -> String {
        match &self.answer {
            Ok(a) if a.status == 201 => {
                let mode = a.json().and_then(|j| j.pointer("/delivery/mode")?.as_str().map(str::to_owned));
                format!("201 created, {}", mode.unwrap_or_else(|| "?".into()))
            }
            Ok(a) => format!("{} {}", a.status, a.code().unwrap_or_else(|| "(no code)".into())),
            Err(_) if self.reset_after_body => "no answer: client reset after the whole body".into(),
            Err(_) if self.sent == Sent::Reset => "no answer: client reset partway".into(),
            Err(_) => "no answer: connection error".into(),
        }
    }

    fn describe(&self) -> String {
        let abort = self.job.abort.map_or(String::new(), |a| format!(", abort {:?} at {}", a.kind, a.at));
        let answer = match &self.answer {
            Ok(a) => format!("{} {}", a.status, String::from_utf8_lossy(&a.body[..a.body.len().min(300)])),
            Err(e) => e.clone(),
        };
        format!(
            "#{} ({} B, {}{abort}, client {}, sent {:?}, s3 fault {:?}, genesys fault {:?}): {answer}",
            self.job.index,
            self.job.size,
            self.job.shape.label(),
            self.client,
            self.sent,
            self.job.s3_fault.as_ref().map(|f| &f.rule),
            self.job.genesys_fault
        )
    }
}

/// Starts `ferry serve` (`binary`) with `config` and the memory budget, and waits until it is
/// ready.
async fn start_ferry(binary: &Path, config: &Path, budget: u64, log: &Path) -> anyhow::Result<Ferry> {
    Ok(FerryCommand::new(binary, log)
        .arg("--config")
        .arg(config)
        .env("FERRY_MEMORY_BUDGET", budget.to_string())
        .start()
        .await?)
}

/// SIGTERM, then up to 60 s for a clean exit.
async fn terminate(ferry: &mut Ferry) -> Result<(), String> {
    ferry.terminate();
    match ferry.wait_exit(Duration::from_secs(60)).await {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("ferry exited with {status}")),
        None => {
            ferry.kill();
            Err("ferry did not stop within 60 s of SIGTERM".into())
        }
    }
}

/// A `/proc/<pid>/status` field, bytes.
fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    Some(kb * 1024)
}

/// Samples ferry's VmRSS every 100 ms until stopped: (peak, samples).
fn sample_rss(
    pid: u32,
    stop: Arc<AtomicBool>,
    current: Arc<AtomicU64>,
) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let (mut peak, mut samples) = (0u64, 0u64);
        while !stop.load(Ordering::Relaxed) {
            if let Some(rss) = proc_status_bytes(pid, "VmRSS:") {
                peak = peak.max(rss);
                samples += 1;
                current.store(rss, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (peak, samples)
    })
}

/// What every client shares.
struct Ctx {
    addr: SocketAddr,
    tokens: Vec<String>,
    queue: Mutex<VecDeque<Job>>,
    proxy: FaultProxy,
    emulator: GenesysEmulator,
    done: AtomicUsize,
    bytes_sent: AtomicU64,
}

async fn run_job(ctx: &Ctx, client: usize, job: Job) -> Record {
    if let Some(fault) = &job.s3_fault {
        ctx.proxy.add_rule(fault.rule.clone());
    }
    if let Some(fault) = job.genesys_fault {
        ctx.emulator.update_faults(|f| match fault {
            GenesysFault::Throttle(n) => f.throttle_requests += n,
            GenesysFault::UploadFailure => f.fail_uploads += 1,
            GenesysFault::RefusePut => f.refuse_uploads += 1,
            GenesysFault::DropSocket(frames) => {
                f.drop_after_frames = Some(frames);
                f.drop_connections = Some(f.drop_connections.unwrap_or(0) + 1);
            }
        });
    }
    let started = Instant::now();
    let mut rng = Rng::new(job.seed ^ 0x5eed);
    // Big files on a busy 2-core machine: allow about 1 MiB/s, at least 10 minutes.
    let limit = Duration::from_secs(600 + job.size / MIB);
    let mut busy_retries = 0;
    loop {
        let attempt =
            client::attempt(ctx.addr, &ctx.tokens[client], DEMO_DEPLOYMENT_ID, &job, busy_retries + 1, limit)
                .await;
        if let Ok(answer) = &attempt.answer
            && answer.status == 503
            && answer.code().as_deref() == Some("server_busy")
            && busy_retries < 500
        {
            // A client backing off: somewhere between 0.5 s and the Retry-After ferry asked for.
            let retry_after: u64 = answer.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or(1);
            busy_retries += 1;
            tokio::time::sleep(Duration::from_millis(rng.range(500, (retry_after * 1000).max(500)))).await;
            continue;
        }
        if let Sent::All { .. } = attempt.sent {
            ctx.bytes_sent.fetch_add(job.size, Ordering::Relaxed);
        } else if let Some(abort) = job.abort
            && matches!(attempt.sent, Sent::HalfClosed | Sent::Reset)
        {
            ctx.bytes_sent.fetch_add(abort.at, Ordering::Relaxed);
        }
        ctx.done.fetch_add(1, Ordering::Relaxed);
        return Record {
            job,
            client,
            answer: attempt.answer,
            sent: attempt.sent,
            reset_after_body: attempt.reset_after_body,
            busy_retries,
            elapsed: started.elapsed(),
        };
    }
}

async fn run_client(ctx: Arc<Ctx>, client: usize) -> Vec<Record> {
    let mut records = Vec::new();
    loop {
        let Some(job) = ctx.queue.lock().expect("queue").pop_front() else { return records };
        records.push(run_job(&ctx, client, job).await);
    }
}

/// A counter or gauge from ferry's `/metrics` (by full name with labels).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

async fn metrics(addr: SocketAddr) -> String {
    match client::get(addr, "/metrics").await {
        Ok(a) if a.status == 200 => String::from_utf8_lossy(&a.body).into_owned(),
        _ => String::new(),
    }
}

/// Every key in the bucket with its size.
async fn list_objects(s3: &SdkClient) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut keys = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ListObjectsV2: {e:?}"))?;
        for object in out.contents() {
            if let Some(key) = object.key() {
                keys.insert(key.to_owned(), object.size().unwrap_or(-1));
            }
        }
        match out.next_continuation_token() {
            Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return Ok(keys),
        }
    }
}

/// Streams an object back and hashes it: (bytes, SHA-256 hex).
async fn object_sha256(s3: &SdkClient, key: &str) -> Result<(u64, String), String> {
    let mut out =
        s3.get_object().bucket(BUCKET).key(key).send().await.map_err(|e| format!("GetObject: {e:?}"))?;
    let mut hasher = sha2::Sha256::new();
    let mut len = 0u64;
    while let Some(chunk) = out.body.next().await {
        let chunk = chunk.map_err(|e| format!("GetObject body: {e}"))?;
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((len, client::hex(&hasher.finalize())))
}

/// Follows a download link (ferry's 302, then the presigned GET) and hashes what comes back.
async fn download_sha256(ferry: SocketAddr, http: &reqwest::Client, url: &str) -> Result<String, String> {
    let path = url.strip_prefix(PUBLIC_URL).ok_or("the link is not under the public URL")?;
    let answer = client::get(ferry, path).await?;
    if answer.status != 302 {
        return Err(format!("link answered {} (expected 302)", answer.status));
    }
    let location = answer.header("location").ok_or("302 without Location")?;
    let mut response = http.get(location).send().await.map_err(|e| format!("presigned GET: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("presigned GET answered {}", response.status()));
    }
    let mut hasher = sha2::Sha256::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("presigned GET body: {e}"))? {
        hasher.update(&chunk);
    }
    Ok(client::hex(&hasher.finalize()))
}

/// This run's flags with its seed, without `--ferry` (the xtask adds it).
fn reproduce_args(seed: u64) -> String {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--ferry" || arg == "--seed" {
            args.next();
        } else if !arg.starts_with("--ferry=") && !arg.starts_with("--seed=") {
            out.push(arg);
        }
    }
    out.push(format!("--seed {seed}"));
    out.join(" ")
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

struct Check {
    failures: Vec<String>,
    passed: Vec<String>,
}

impl Check {
    fn expect(&mut self, ok: bool, what: impl Into<String>, detail: impl FnOnce() -> String) {
        let what = what.into();
        if ok {
            self.passed.push(what);
        } else {
            self.failures.push(format!("{what}: {}", detail()));
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("soak: {error:#}");
            ExitCode::from(2)
        }
    }
}

#[allow(clippy::too_many_lines)]
async fn run(args: Args) -> anyhow::Result<bool> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    println!("soak: reproduce with `cargo xtask soak {}`", reproduce_args(seed));
    let binary = match &args.ferry {
        Some(path) => path.clone(),
        None => {
            let exe = std::env::current_exe()?;
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("ferry"))
                .ok_or_else(|| anyhow::anyhow!("no ferry binary"))?
        }
    };
    anyhow::ensure!(binary.is_file(), "no ferry binary at {} (build it, or pass --ferry)", binary.display());
    let settings = PlanSettings {
        uploads: args.uploads,
        max_size: args.max_mib * MIB,
        big: args.big,
        big_size: args.big_mib * MIB,
        abort_rate: args.abort_rate,
        s3_fault_rate: args.s3_fault_rate,
        genesys_fault_rate: args.genesys_fault_rate,
        persistent_share: args.persistent_share,
        hang_ups: !args.no_hang_ups,
    };
    let jobs = plan::plan(&settings, seed);
    let planned_bytes: u64 = jobs.iter().map(|j| j.size).sum();
    let budget = args.memory_budget_mib * MIB;
    println!(
        "soak: seed {seed}, {} uploads ({} planned, {} of {} MiB), {} clients, ferry {} (FERRY_MEMORY_BUDGET {})",
        jobs.len(),
        mib(planned_bytes),
        args.big.min(args.uploads),
        args.big_mib,
        args.clients,
        binary.display(),
        mib(budget)
    );

    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new().prefix("ferry-soak-").tempdir_in(base)?;
    let store = LocalS3::start(dir.path().join("s3"), "127.0.0.1:0".parse()?).await?;
    store.create_bucket(BUCKET)?;
    let proxy = FaultProxy::start(store.addr()).await?;
    let emulator = GenesysEmulator::start(GenesysEmulatorConfig {
        faults: Faults { refuse_status: 503, ..Faults::default() },
        ..GenesysEmulatorConfig::default()
    })
    .await?;
    let tokens: Vec<String> =
        (0..args.clients.max(1)).map(|_| emulator.create_session(DEMO_DEPLOYMENT_ID)).collect();
    let link_secret = format!("{:016x}{:016x}{:016x}", Rng::new(seed).next_u64(), seed, !seed);
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "allow_insecure = true\npublic_url = \"{PUBLIC_URL}\"\nlink_secret = \"{link_secret}\"\n\n[s3]\nbucket = \"{BUCKET}\"\n\
             endpoint = \"{endpoint}\"\npath_style = true\naccess_key_id = \"{ACCESS_KEY}\"\n\
             secret_access_key = \"{SECRET_KEY}\"\n# s3s-fs has no flexible checksums: Content-MD5 and ETags.\n\
             checksum = \"md5\"\n\n[deployments.\"{DEMO_DEPLOYMENT_ID}\"]\nweb_messaging_url = \"{ws}\"\n",
            endpoint = proxy.endpoint(),
            ws = emulator.ws_url(),
        ),
    )?;
    let log = dir.path().join("ferry.log");
    let mut ferry = start_ferry(&binary, &config, budget, &log).await?;
    let addr = ferry.addr();
    let pid = ferry.pid();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = proc_status_bytes(pid, "VmRSS:").unwrap_or(0);
    let rss_limit = idle_rss + budget + args.rss_allowance_mib * MIB;
    println!("soak: ferry pid {pid} on {addr}, idle RSS {}; data in {}", mib(idle_rss), dir.path().display());

    // The run.
    let stop = Arc::new(AtomicBool::new(false));
    let current_rss = Arc::new(AtomicU64::new(idle_rss));
    let sampler = sample_rss(pid, Arc::clone(&stop), Arc::clone(&current_rss));
    let total = jobs.len();
    let ctx = Arc::new(Ctx {
        addr,
        tokens: tokens.clone(),
        queue: Mutex::new(jobs.into_iter().collect()),
        proxy,
        emulator,
        done: AtomicUsize::new(0),
        bytes_sent: AtomicU64::new(0),
    });
    let started = Instant::now();
    let progress = {
        let (ctx, current_rss) = (Arc::clone(&ctx), Arc::clone(&current_rss));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!(
                    "soak: {:>4}/{total} done, {} sent, ferry RSS {}, {:.0} s",
                    ctx.done.load(Ordering::Relaxed),
                    mib(ctx.bytes_sent.load(Ordering::Relaxed)),
                    mib(current_rss.load(Ordering::Relaxed)),
                    started.elapsed().as_secs_f64()
                );
            }
        })
    };
    let clients: Vec<_> =
        (0..args.clients.max(1)).map(|c| tokio::spawn(run_client(Arc::clone(&ctx), c))).collect();
    let mut records = Vec::new();
    for handle in clients {
        records.extend(handle.await?);
    }
    records.sort_by_key(|r| r.job.index);
    let upload_phase = started.elapsed();
    progress.abort();

    // Quiesce: no more faults; ferry finishes its aborts and cleanups.
    ctx.proxy.clear_rules();
    let genesys_left = ctx.emulator.faults();
    ctx.emulator.set_faults(Faults { refuse_status: 503, ..Faults::default() });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut metrics_text;
    loop {
        metrics_text = metrics(addr).await;
        let idle = metric(&metrics_text, "ferry_uploads_in_flight") == Some(0.0)
            && metric(&metrics_text, "ferry_memory_budget_used_bytes") == Some(0.0)
            && store.pending_multipart().0 == 0;
        if idle || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (peak_rss, samples) = sampler.join().map_err(|_| anyhow::anyhow!("RSS sampler panicked"))?;
    let hwm = proc_status_bytes(pid, "VmHWM:").unwrap_or(0);

    // Invariants.
    let verify_started = Instant::now();
    let mut check = Check { failures: Vec::new(), passed: Vec::new() };
    let s3 = build_client(&S3Config::compatible(store.endpoint(), ACCESS_KEY, SECRET_KEY)).await;
    let objects = list_objects(&s3).await?;
    let created: Vec<&Record> = records.iter().filter(|r| r.created().is_some()).collect();
    let conversations: Vec<_> =
        tokens.iter().map(|t| ctx.emulator.conversation(t).expect("every client's session exists")).collect();
    let all_messages: Vec<(usize, &ferry_sandbox::genesys::MessageSnapshot)> =
        conversations.iter().enumerate().flat_map(|(i, c)| c.messages.iter().map(move |m| (i, m))).collect();
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (mut links_checked, mut link_samples) = (0usize, 0usize);
    let mut verified_bytes = 0u64;
    for record in &created {
        let answer = record.created().expect("created");
        let job = &record.job;
        let what = format!("#{} ({} B, {})", job.index, job.size, job.shape.label());
        let Sent::All { sha256 } = &record.sent else {
            check.expect(false, format!("{what}: a 201 came after the whole body"), || record.describe());
            continue;
        };
        let Some(reference) = answer.json() else {
            check.expect(false, format!("{what}: the 201 carries a JSON reference"), || record.describe());
            continue;
        };
        let key = ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX)
            .as_deref()
            .unwrap_or_default()
            .to_owned();
        let id = reference["id"].as_str().unwrap_or_default().to_owned();
        let mode = reference.pointer("/delivery/mode").and_then(Value::as_str).unwrap_or_default().to_owned();
        check.expect(
            reference["size"] == job.size
                && reference.pointer("/checksums/sha256").and_then(Value::as_str) == Some(sha256.as_str())
                && reference["name"] == job.name()
                && reference.get("text").and_then(Value::as_str) == job.caption.as_deref(),
            format!("{what}: the reference names the file (size, sha256, name, caption)"),
            || reference.to_string(),
        );
        // Stored, and byte-identical.
        match objects.get(&key) {
            None => check
                .expect(false, format!("{what}: its object {key} is in the bucket"), || record.describe()),
            Some(_) => match object_sha256(&s3, &key).await {
                Ok((len, sha)) => {
                    verified_bytes += len;
                    check.expect(
                        len == job.size && &sha == sha256,
                        format!("{what}: the object is byte-identical"),
                        || format!("{len} B, sha256 {sha}, expected {} B {sha256}", job.size),
                    );
                }
                Err(e) => check.expect(false, format!("{what}: the object streams back"), || e),
            },
        }
        // Delivered exactly once.
        let native_expected = (1..=NATIVE_LIMIT).contains(&job.size);
        check.expect(
            (mode == "native") == native_expected && matches!(mode.as_str(), "native" | "link"),
            format!(
                "{what}: delivered {} (the deployment takes 1 B to 10240 KB natively)",
                if native_expected { "natively" } else { "as a link" }
            ),
            || format!("mode {mode:?}"),
        );
        let conversation = &conversations[record.client];
        if mode == "native" {
            let attachment_id = reference
                .pointer("/delivery/genesysAttachmentId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let with_id: Vec<_> = conversation.attachments.iter().filter(|a| a.id == attachment_id).collect();
            let with_sha: Vec<_> = conversation
                .attachments
                .iter()
                .filter(|a| a.state == "uploaded" && a.sha256.as_deref() == Some(sha256.as_str()))
                .collect();
            check.expect(
                with_id.len() == 1
                    && with_id[0].state == "uploaded"
                    && with_id[0].sha256.as_deref() == Some(sha256.as_str())
                    && with_sha.len() == 1,
                format!("{what}: exactly one uploaded attachment with its SHA-256, the one named"),
                || format!("named {with_id:?}; uploaded with this sha256: {}", with_sha.len()),
            );
            let referencing: Vec<_> = all_messages
                .iter()
                .filter(|(_, m)| m.attachment_ids.iter().any(|a| a == attachment_id))
                .collect();
            check.expect(
                referencing.len() == 1 && referencing[0].0 == record.client,
                format!("{what}: exactly one message carries its attachment, in its conversation"),
                || format!("{} messages", referencing.len()),
            );
        } else {
            let needle = format!("/v1/files/{id}?");
            let carrying: Vec<_> = all_messages
                .iter()
                .filter(|(_, m)| !id.is_empty() && m.text.as_deref().is_some_and(|t| t.contains(&needle)))
                .collect();
            check.expect(
                carrying.len() == 1 && carrying[0].0 == record.client,
                format!("{what}: exactly one message carries its link, in its conversation"),
                || format!("{} messages", carrying.len()),
            );
            if link_samples < 5 {
                link_samples += 1;
                let url = reference["downloadUrl"].as_str().unwrap_or_default();
                match download_sha256(addr, &http, url).await {
                    Ok(sha) => {
                        links_checked += 1;
                        check.expect(
                            &sha == sha256,
                            format!("{what}: its download link serves the file"),
                            || sha,
                        );
                    }
                    Err(e) => check.expect(false, format!("{what}: its download link works"), || e),
                }
            }
        }
    }
    let created_keys: std::collections::BTreeSet<String> = created
        .iter()
        .filter_map(|r| {
            r.created()?.json().and_then(|r| {
                ferry_testkit::reference::stored_key(&r, ferry_testkit::reference::DEFAULT_PREFIX)
            })
        })
        .collect();
    // Objects no 201 names may only be uploads whose client hung up after the whole body (ferry
    // carried on): those must then be complete and delivered exactly once, like a 201.
    let hung_up: Vec<&Record> = records.iter().filter(|r| r.reset_after_body).collect();
    let mut late = 0usize;
    let mut late_owners = std::collections::BTreeSet::new();
    let mut strays = Vec::new();
    for key in objects.keys().filter(|k| !created_keys.contains(*k)) {
        match object_sha256(&s3, key).await {
            Ok((len, sha)) => {
                let owner =
                    hung_up.iter().find(|r| matches!(&r.sent, Sent::All { sha256 } if *sha256 == sha));
                match owner {
                    Some(record) => {
                        late += 1;
                        late_owners.insert(record.job.index);
                        verified_bytes += len;
                        let job = &record.job;
                        let conversation = &conversations[record.client];
                        let attachment = conversation
                            .attachments
                            .iter()
                            .find(|a| a.state == "uploaded" && a.sha256.as_deref() == Some(sha.as_str()));
                        let carrying = all_messages
                            .iter()
                            .filter(|(_, m)| {
                                attachment.is_some_and(|a| m.attachment_ids.contains(&a.id))
                                    || m.text
                                        .as_deref()
                                        .is_some_and(|t| t.contains(&format!("{} (", job.name())))
                            })
                            .count();
                        check.expect(
                            len == job.size && carrying == 1,
                            format!(
                                "#{} (client hung up after the body, ferry kept it): complete and delivered exactly once",
                                job.index
                            ),
                            || format!("{len} B, {carrying} messages: {}", record.describe()),
                        );
                    }
                    None => strays.push(format!("{key} ({len} B)")),
                }
            }
            Err(e) => strays.push(format!("{key} ({e})")),
        }
    }
    check.expect(
        objects.len() == created.len() + late && strays.is_empty(),
        "the bucket holds exactly the 201s' objects (a refused upload kept nothing)",
        || format!("{} objects for {} 201s; not from a 201: {strays:?}", objects.len(), created.len()),
    );
    // s3s-fs checks the upload id when an UploadPart starts, so a part whose request was already
    // under way when ferry aborted is written after the abort removed the upload: such part files
    // belong to no upload, and S3 itself frees them. Open uploads are the invariant; these are counted.
    let pending = store.pending_multipart();
    check.expect(pending.0 == 0, "no multipart upload left open", || {
        format!("{pending:?} (uploads, part files)")
    });
    check.expect(
        all_messages.len() == created.len() + late,
        "the conversations hold exactly one message per 201 (a refused upload claimed nothing)",
        || {
            format!(
                "{} messages for {} 201s and {late} kept after a hang-up",
                all_messages.len(),
                created.len()
            )
        },
    );
    // Nothing in any conversation names a file whose upload was refused.
    for record in records.iter().filter(|r| r.created().is_none()) {
        let name = record.job.name();
        let claimed = all_messages.iter().any(|(client, m)| {
            m.text.as_deref().is_some_and(|t| t.contains(&format!("{name} (")))
                || m.attachment_ids.iter().any(|id| {
                    conversations[*client].attachments.iter().any(|a| &a.id == id && a.file_name == name)
                })
        });
        if !late_owners.contains(&record.job.index) {
            check.expect(
                !claimed,
                format!("#{}: a refused upload claimed nothing in the conversation", record.job.index),
                || record.describe(),
            );
        }
    }
    let violations = ctx.emulator.violations();
    check
        .expect(violations.is_empty(), "the Genesys emulator saw no violation", || format!("{violations:?}"));
    let held: usize = tokens.iter().map(|t| ctx.emulator.connection_count(t)).sum();
    check.expect(held == 0, "ferry holds no guest connection once idle", || format!("{held} connections"));
    let ferry_created =
        metric(&metrics_text, "ferry_uploads_total{outcome=\"created\"}").unwrap_or(0.0) as usize;
    check.expect(
        ferry_created == created.len() + late,
        "ferry's ferry_uploads_total{outcome=\"created\"} equals the 201s received (+ kept after a hang-up)",
        || format!("{ferry_created} vs {} + {late}", created.len()),
    );
    check.expect(
        metric(&metrics_text, "ferry_uploads_in_flight") == Some(0.0)
            && metric(&metrics_text, "ferry_memory_budget_used_bytes") == Some(0.0),
        "ferry is idle afterwards: nothing in flight, the memory budget all free",
        || "see /metrics".into(),
    );
    check.expect(
        peak_rss <= rss_limit,
        format!(
            "peak RSS {} <= idle {} + budget {} + allowance {} = {}",
            mib(peak_rss),
            mib(idle_rss),
            mib(budget),
            mib(args.rss_allowance_mib * MIB),
            mib(rss_limit)
        ),
        || format!("peak {}", mib(peak_rss)),
    );
    let clean: Vec<&Record> = records.iter().filter(|r| r.job.abort.is_none()).collect();
    let clean_created = clean.iter().filter(|r| r.created().is_some()).count();
    check.expect(
        clean.is_empty() || clean_created * 10 >= clean.len() * 7,
        format!("at least 70% of the uploads no client aborted succeeded ({clean_created}/{})", clean.len()),
        || "too many failures".into(),
    );
    for record in &records {
        let what = format!("#{}", record.job.index);
        if record.job.size == 0 && record.answer.is_ok() {
            // docs/api.md: an empty file is stored like any other and delivered as a link.
            check.expect(
                record.created().is_some_and(|a| {
                    a.json().and_then(|j| j.pointer("/delivery/mode")?.as_str().map(str::to_owned)).as_deref()
                        == Some("link")
                }),
                format!("{what}: an empty file is stored and delivered as a link"),
                || record.describe(),
            );
        }
        if let Some(abort) = record.job.abort
            && abort.kind != AbortKind::AfterBody
        {
            check.expect(
                record.created().is_none(),
                format!("{what}: an aborted upload is not a 201"),
                || record.describe(),
            );
            if abort.kind == AbortKind::HalfClose && matches!(record.sent, Sent::HalfClosed) {
                let ok = match &record.answer {
                    Ok(a) => {
                        a.status == 400
                            && matches!(
                                a.code().as_deref(),
                                Some("incomplete_body" | "client_disconnected" | "invalid_multipart")
                            )
                    }
                    // ferry may close before answering a body that ended early.
                    Err(_) => true,
                };
                check.expect(
                    ok,
                    format!("{what}: a half-closed body is answered 400 (or not at all)"),
                    || record.describe(),
                );
            }
        }
        if let Ok(a) = &record.answer
            && a.status != 201
        {
            let ok = a.json().is_some_and(|j| {
                j.pointer("/error/code").and_then(Value::as_str).is_some_and(|c| !c.is_empty())
                    && j.pointer("/error/requestId").and_then(Value::as_str).is_some_and(|c| !c.is_empty())
            });
            check.expect(ok, format!("{what}: an error answer carries a code and a request id"), || {
                record.describe()
            });
        }
        if record.answer.is_err() && !record.reset_after_body && record.sent != Sent::Reset {
            check.expect(false, format!("{what}: a client that did not abort gets an answer"), || {
                record.describe()
            });
        }
    }
    let verify_time = verify_started.elapsed();
    let sigterm = terminate(&mut ferry).await;
    check.expect(sigterm.is_ok(), "ferry stops cleanly on SIGTERM", || sigterm.clone().unwrap_err());
    let log_text = ferry.log();
    let leaked: Vec<&str> = [
        ("a session token", tokens.iter().any(|t| log_text.contains(t.as_str()))),
        ("the link secret", log_text.contains(&link_secret)),
        ("a presigned URL", log_text.contains("X-Amz-Signature")),
        ("a download-link signature", log_text.contains("signature=")),
    ]
    .into_iter()
    .filter_map(|(what, found)| found.then_some(what))
    .collect();
    check.expect(leaked.is_empty(), "ferry's log holds no secret", || format!("it holds {leaked:?}"));

    // Tallies.
    let mut outcomes: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for record in &records {
        let entry = outcomes.entry(record.outcome()).or_default();
        entry.0 += 1;
        entry.1 += record.job.size;
    }
    let mut injected: BTreeMap<String, usize> = BTreeMap::new();
    let mut persistent = 0;
    let (mut throttle_in, mut failure_in, mut refuse_in, mut drop_in) = (0u32, 0u32, 0u32, 0u32);
    for record in &records {
        if let Some(fault) = &record.job.s3_fault {
            let label = plan::s3_label(plan::target_label(fault.rule.target), &fault.rule.action);
            *injected.entry(label).or_default() += fault.rule.times as usize;
            persistent += usize::from(fault.persistent);
        }
        match record.job.genesys_fault {
            Some(GenesysFault::Throttle(n)) => throttle_in += n,
            Some(GenesysFault::UploadFailure) => failure_in += 1,
            Some(GenesysFault::RefusePut) => refuse_in += 1,
            Some(GenesysFault::DropSocket(_)) => drop_in += 1,
            None => {}
        }
    }
    let mut fired: BTreeMap<String, usize> = BTreeMap::new();
    for entry in ctx.proxy.log() {
        if let Some(action) = &entry.fault {
            *fired.entry(plan::s3_label(plan::op_label(entry.op), action)).or_default() += 1;
        }
    }
    let duration = started.elapsed();
    let aborts_half =
        records.iter().filter(|r| r.job.abort.is_some_and(|a| a.kind == AbortKind::HalfClose)).count();
    let aborts_reset =
        records.iter().filter(|r| r.job.abort.is_some_and(|a| a.kind == AbortKind::Reset)).count();
    let hang_ups =
        records.iter().filter(|r| r.job.abort.is_some_and(|a| a.kind == AbortKind::AfterBody)).count();
    let hung_up_n = records.iter().filter(|r| r.reset_after_body).count();
    let busy: u32 = records.iter().map(|r| r.busy_retries).sum();
    let sent = ctx.bytes_sent.load(Ordering::Relaxed);
    let slowest = records.iter().map(|r| r.elapsed).max().unwrap_or_default();

    println!();
    println!("### Outcomes (seed {seed}: {} uploads, {} clients)", records.len(), args.clients);
    println!();
    println!("| outcome | uploads | bytes |");
    println!("| --- | ---: | ---: |");
    for (outcome, (n, bytes)) in &outcomes {
        println!("| {outcome} | {n} | {} |", mib(*bytes));
    }
    println!("| **all** | **{}** | **{}** |", records.len(), mib(records.iter().map(|r| r.job.size).sum()));
    println!();
    println!("### Faults");
    println!();
    println!("| fault | injected | fired |");
    println!("| --- | ---: | ---: |");
    let labels: std::collections::BTreeSet<String> = injected.keys().chain(fired.keys()).cloned().collect();
    for label in labels {
        println!(
            "| {label} | {} | {} |",
            injected.get(&label).copied().unwrap_or(0),
            fired.get(&label).copied().unwrap_or(0)
        );
    }
    for (label, put_in, left) in [
        (GenesysFault::Throttle(1).label(), throttle_in, genesys_left.throttle_requests),
        (GenesysFault::UploadFailure.label(), failure_in, genesys_left.fail_uploads),
        (GenesysFault::RefusePut.label(), refuse_in, genesys_left.refuse_uploads),
        (GenesysFault::DropSocket(1).label(), drop_in, genesys_left.drop_connections.unwrap_or(0)),
    ] {
        println!("| {label} | {put_in} | {} |", put_in.saturating_sub(left));
    }
    println!("| client abort: half-close (FIN) partway | {aborts_half} | {aborts_half} |");
    println!("| client abort: reset (RST) partway | {aborts_reset} | {aborts_reset} |");
    println!(
        "| client hang-up (RST) 0-1.5 s (mostly < 150 ms) after the whole body, unless answered first | {hang_ups} | {hung_up_n} |"
    );
    println!();
    println!(
        "S3 and Genesys faults are armed as an upload starts and hit the next matching request of any upload; \
         \"injected\" counts the requests armed to fail, \"fired\" those that did (a rule for a part number no \
         later upload reached never fires). {persistent} of the S3 faults were persistent ({} failures in a row; ferry makes \
         6 attempts per request).",
        plan::PERSISTENT_TIMES
    );
    println!();
    println!("### Run");
    println!();
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| bytes sent by clients | {} |", mib(sent));
    println!("| bytes verified (streamed back from S3) | {} |", mib(verified_bytes));
    println!("| download links followed and verified | {links_checked} |");
    println!("| busy retries (503 server_busy, client backed off) | {busy} |");
    println!("| s3s-fs part files written after their upload was aborted (see below) | {} |", pending.1);
    println!("| hung up after the body, and ferry kept and delivered the file | {late} |");
    let m = |name: &str| metric(&metrics_text, name).map_or("-".into(), |v| format!("{v:.0}"));
    println!(
        "| ferry part retries / multipart aborts (/metrics) | {} / {} |",
        m("ferry_part_retries_total"),
        m("ferry_multipart_aborted_total")
    );
    println!(
        "| ferry RSS: idle / peak VmRSS ({samples} samples, 100 ms) / VmHWM | {} / {} / {} |",
        mib(idle_rss),
        mib(peak_rss),
        mib(hwm)
    );
    println!(
        "| RSS rule: peak <= idle + FERRY_MEMORY_BUDGET + allowance | {} <= {} + {} + {} = {} |",
        mib(peak_rss),
        mib(idle_rss),
        mib(budget),
        mib(args.rss_allowance_mib * MIB),
        mib(rss_limit)
    );
    println!("| slowest upload (incl. busy back-off) | {:.1} s |", slowest.as_secs_f64());
    println!(
        "| duration: uploads / verification / total | {:.0} s / {:.0} s / {:.0} s |",
        upload_phase.as_secs_f64(),
        verify_time.as_secs_f64(),
        duration.as_secs_f64()
    );
    println!();
    println!("### Invariants: {} checks passed, {} failed", check.passed.len(), check.failures.len());
    let mut summary: Vec<&str> =
        check.passed.iter().filter(|p| !p.starts_with('#')).map(String::as_str).collect();
    summary.dedup();
    for line in summary {
        println!("- ok: {line}");
    }
    for failure in &check.failures {
        println!("- FAILED: {failure}");
    }
    let ok = check.failures.is_empty();
    if ok && !args.keep {
        drop(store);
        dir.close()?;
    } else {
        let kept = dir.keep();
        println!("\nkept {} (ferry.log, S3 data)", kept.display());
    }
    Ok(ok)
}
