//! The tus row: the file in 64 MiB PATCHes (`FERRY_BENCH_TUS_PATCH_MIB`) through Debian's HAProxy,
//! round-robin per request over three `ferry serve` replicas on one bucket (so consecutive
//! PATCHes land on different replicas, each taking the upload's lease from the bucket), against
//! one `POST /v1/uploads` of the same file through one ferry in the same configuration (the
//! default row). The goal: at most 10 % slower.
//!
//! The client is a plain HTTP/1.1 exchange per request (a connection each, the body streamed from
//! the file with its `Content-Length`), so the row measures ferry and the balancer, not a client
//! library. CPU is the three replicas' together; RSS the largest replica's.

use crate::cases::{Bench, Case, Goal, Kind, MIB, Measured, Rss, check_and_remove};
use crate::ferry::{FerrySetup, ticket};
use crate::procfs;
use ferry_testkit::balancer::{self, Balancer};
use ferry_testkit::process::{Ferry, FerryCommand};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// One link key for all three replicas: each verifies the upload URLs the others signed.
const LINK_KEY: &str = "bench-tus-link-secret-0123456789abcdef-shared-by-replicas";
/// The label of the row (and the word `FERRY_BENCH_ONLY` selects it by).
pub(crate) const LABEL: &str = "tus via HAProxy, 3 replicas";

/// The PATCH size.
fn patch_bytes() -> u64 {
    std::env::var("FERRY_BENCH_TUS_PATCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(64) * MIB
}

/// An answer: status, headers (lower-case names) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One request on a connection of its own: `head` lines, then `body_len` bytes of `file` from
/// `from` (streamed in 1 MiB blocks).
fn exchange(addr: SocketAddr, head: &str, file: Option<(&Path, u64, u64)>) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(900)))?;
    let len = file.map_or(0, |(_, _, len)| len);
    write!(
        stream,
        "{head}Host: {addr}\r\nTus-Resumable: 1.0.0\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )?;
    if let Some((path, from, len)) = file {
        let mut source = std::fs::File::open(path)?;
        source.seek(SeekFrom::Start(from))?;
        let mut block = vec![0u8; MIB as usize];
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(MIB)).expect("a block");
            source.read_exact(&mut block[..n])?;
            stream.write_all(&block[..n])?;
            left -= n as u64;
        }
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let mut body = String::new();
    let _ = reader.read_to_string(&mut body);
    Ok(Answer { status, headers, body })
}

/// The path of an upload URL (absolute or not).
fn path_of(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned()),
        None => location.to_owned(),
    }
}

/// Creation, the PATCHes and the reference; the stored key, or what went wrong.
fn upload(addr: SocketAddr, file: &Path, size: u64) -> Result<(String, usize), String> {
    let creation = format!(
        "POST /v1/tus/ HTTP/1.1\r\nAuthorization: Ferry-Ticket {}\r\nUpload-Length: {size}\r\n\
         Upload-Metadata: filename YmVuY2guYmlu,filetype YXBwbGljYXRpb24vb2N0ZXQtc3RyZWFt\r\n",
        ticket()
    );
    let created = exchange(addr, &creation, None).map_err(|e| format!("creation: {e}"))?;
    if created.status != 201 {
        return Err(format!("creation answered {}: {}", created.status, created.body));
    }
    let path = path_of(created.header("location").ok_or("no Location")?);
    let step = patch_bytes();
    let mut offset = 0;
    let mut patches = 0;
    while offset < size {
        let len = step.min(size - offset);
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nUpload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
        );
        let answer = exchange(addr, &head, Some((file, offset, len)))
            .map_err(|e| format!("PATCH at {offset}: {e}"))?;
        if answer.status != 204 {
            return Err(format!("PATCH at {offset} answered {}: {}", answer.status, answer.body));
        }
        offset += len;
        patches += 1;
    }
    let got = exchange(addr, &format!("GET {path} HTTP/1.1\r\n"), None).map_err(|e| format!("GET: {e}"))?;
    let reference: serde_json::Value = serde_json::from_str(&got.body)
        .map_err(|e| format!("GET answered {} ({e}): {}", got.status, got.body))?;
    let key = ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX)
        .ok_or_else(|| format!("no file id in {reference}"))?;
    Ok((key, patches))
}

/// The row for `file` (`mib` MiB) in `setup`'s configuration.
pub(crate) async fn run(bench: &Bench<'_>, setup: &FerrySetup, file: &Path, mib: u64) -> Measured {
    let server = bench.server;
    let config_file = bench.dir.join("ferry-tus.toml");
    std::fs::write(&config_file, setup.config_with_link_key(bench, LINK_KEY)).expect("ferry config");
    let public = balancer::free_port();
    let mut replicas: Vec<Ferry> = Vec::new();
    for i in 0..3 {
        let log = bench.dir.join(format!("ferry-tus-{mib}-{i}.log"));
        let ferry = FerryCommand::new(env!("CARGO_BIN_EXE_ferry"), &log)
            .arg("--config")
            .arg(&config_file)
            .env("FERRY_PUBLIC_URL", format!("http://{public}"))
            .start()
            .await
            .expect("ferry starts");
        replicas.push(ferry);
    }
    let addrs: Vec<SocketAddr> = replicas.iter().map(Ferry::addr).collect();
    let lb = Balancer::start_on(bench.dir, public, &addrs);
    let pids: Vec<u32> = replicas.iter().map(Ferry::pid).collect();
    let idle = pids.iter().filter_map(|p| procfs::vm_hwm(*p)).max().unwrap_or(0);
    let cpu = |pids: &[u32]| pids.iter().map(|p| procfs::cpu_time(*p)).sum::<Duration>();
    let (cpu_before, s3_before) = (cpu(&pids), server.cpu());
    crate::cases::sync();
    let started = Instant::now();
    let (addr, path, size) = (lb.addr(), file.to_path_buf(), mib * MIB);
    let task = tokio::task::spawn_blocking(move || upload(addr, &path, size));
    let mut sampled = 0;
    while !task.is_finished() {
        sampled = sampled.max(pids.iter().filter_map(|p| procfs::vm_rss(*p)).max().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let result = task.await.expect("tus task");
    let mut measured = Measured {
        label: LABEL.into(),
        goal: Goal::None,
        bytes: size,
        mib,
        elapsed,
        uploader_cpu: cpu(&pids).saturating_sub(cpu_before),
        s3_cpu: server.cpu().saturating_sub(s3_before),
        rss: Some(Rss {
            idle,
            peak: pids.iter().filter_map(|p| procfs::vm_hwm(*p)).max().unwrap_or(0),
            sampled,
        }),
        failures: 0,
        failure: None,
    };
    measured.failure = match result {
        Ok((key, patches)) => {
            eprintln!("  tus: {patches} PATCHes through HAProxy over {} replicas", addrs.len());
            check_and_remove(server, &key, size).await
        }
        Err(problem) => Some(problem),
    };
    measured.failures = u32::from(measured.failure.is_some());
    drop(lb);
    for mut ferry in replicas {
        ferry.terminate();
        ferry.wait_exit(Duration::from_secs(30)).await;
    }
    measured
}

/// The tus row for the smallest of `sizes` (1 GiB by default), in the default row's configuration,
/// followed by its goal line against that size's default row (one `POST /v1/uploads`, in `rows`
/// unless `FERRY_BENCH_ONLY` left it out).
pub(crate) async fn rows(
    bench: &Bench<'_>,
    all: &[Case],
    sizes: &[u64],
    files: impl Fn(u64) -> std::path::PathBuf,
    rows: &mut Vec<Measured>,
) {
    let Some(default) = all.iter().find(|c| matches!(c.goal, Goal::Default | Goal::DefaultWithoutCrc)) else {
        return;
    };
    let (Kind::Ferry(setup), Some(&mib)) = (&default.kind, sizes.iter().min()) else { return };
    let row = run(bench, setup, &files(mib), mib).await;
    eprintln!("  {}: {} {} MiB: {:.1} MB/s {:?}", bench.server.name, row.label, mib, row.mbps(), row.failure);
    match rows.iter().find(|r| r.goal == default.goal && r.mib == mib) {
        Some(one) => goal(&row, one),
        None => println!("  tus: no `{}` row at {mib} MiB to compare with", default.label),
    }
    rows.push(row);
}

/// The goal line: the tus row against one `POST /v1/uploads` of the same size in the same
/// configuration (`one`).
pub(crate) fn goal(tus: &Measured, one: &Measured) {
    let slower = (tus.elapsed.as_secs_f64() / one.elapsed.as_secs_f64().max(1e-9) - 1.0) * 100.0;
    let verdict = match (&tus.failure, &one.failure) {
        (None, None) if slower <= 10.0 => "goal met",
        (None, None) => "goal missed",
        _ => "a run failed",
    };
    println!(
        "  tus, {} MiB in {} MiB PATCHes via HAProxy over 3 replicas: {:.1} MB/s vs one POST /v1/uploads ({}): {:.1} MB/s → {slower:+.1} % time (goal ≤ +10 %): {verdict}",
        tus.mib,
        patch_bytes() / MIB,
        tus.mbps(),
        one.label,
        one.mbps(),
    );
}
