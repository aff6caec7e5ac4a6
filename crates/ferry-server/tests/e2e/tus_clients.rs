//! tus with real clients and real infrastructure: tuspy (PyPI) and tus-js-client under Node (npm),
//! both pinned and installed by `cargo xtask tus install`, upload through `ferry serve` into
//! LocalStack. A TCP proxy cuts a PATCH mid-body and the client resumes; three replicas behind
//! Debian's HAProxy (round-robin per request) take a 300 MiB upload whose PATCHes land on
//! different replicas while the replica receiving one is SIGKILLed.
//!
//! Every case checks the bytes (S3's object against the file), the digests (the reference that a
//! `GET` on the upload URL returns), that nothing is left behind (no multipart upload, no key but
//! the file's), and that the conversation shows the file exactly once.
//!
//! The clients wait longer than ferry's lease expiry ([`LEASE_EXPIRY`]) between retries, so a
//! retry after a replica died finds the upload free again.

use crate::harness::{DEPLOYMENT, Ferry, Harness, MIB, Options, curl, sha256_hex};
use ferry_core::checksum::Md5;
use ferry_testkit::balancer::{self, Balancer};
use ferry_testkit::cut::CutProxy;
use ferry_testkit::tus::{tus_js_dir, tuspy_python};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// ferry's `tus.lease_secs` in these tests: how long a lease outlives its last renewal.
const LEASE_EXPIRY: Duration = Duration::from_secs(5);
/// What the clients wait before each retry: past the lease's expiry.
const RETRY_DELAY: Duration = Duration::from_secs(LEASE_EXPIRY.as_secs() + 3);
/// How long one client run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(600);

/// The pinned clients' drivers, in `xtask/tus`.
fn tuspy_driver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/tus/tuspy_upload.py")
}

/// The headers of the harness's guest session, sent with every tus request.
fn guest_headers(h: &Harness) -> Value {
    json!({ "Authorization": format!("Bearer {}", h.token), "X-Genesys-Deployment-Id": DEPLOYMENT })
}

/// One client run: a child process writing its result line to `out`.
struct ClientRun {
    name: &'static str,
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl ClientRun {
    fn spawn(name: &'static str, mut command: Command, dir: &Path) -> Self {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("client stdout file"))
            .stderr(std::fs::File::create(&err).expect("client stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self { name, child, out, err }
    }

    /// tuspy with `options` (see `xtask/tus/tuspy_upload.py`).
    fn tuspy(options: &Value, dir: &Path) -> Self {
        let mut command = Command::new(tuspy_python());
        command.arg(tuspy_driver()).arg(options.to_string());
        Self::spawn("tuspy", command, dir)
    }

    /// tus-js-client under Node with `options` (see `xtask/tus/tus_js_upload.mjs`).
    fn tus_js(options: &Value, dir: &Path) -> Self {
        let js = tus_js_dir();
        let mut command = Command::new("node");
        command.arg(js.join("tus_js_upload.mjs")).arg(options.to_string()).current_dir(&js);
        Self::spawn("tus-js-client", command, dir)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Whether the client is still running.
    fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Waits for the client to succeed; its result line.
    async fn finish(mut self) -> Value {
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("client status") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("{} did not finish in {CLIENT_TIMEOUT:?}:\n{}", self.name, self.stderr());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let out = std::fs::read_to_string(&self.out).unwrap_or_default();
        assert!(status.success(), "{} failed ({status}):\n{}\n{out}", self.name, self.stderr());
        let line = out.lines().last().unwrap_or_else(|| panic!("{} printed nothing", self.name));
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}'s result is not JSON ({e}): {line}", self.name))
    }
}

impl Drop for ClientRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The harness with ferry's public URL on `public` (the proxy or balancer in front of it), so
/// the upload URLs ferry hands out lead through it.
async fn harness(case: &str, public: SocketAddr) -> Harness {
    Harness::start(
        case,
        Options {
            env: vec![("FERRY_PUBLIC_URL", format!("http://{public}"))],
            toml: vec![
                // Guests may send 300 MiB here (the default guest limit is lower).
                format!("[deployments.\"{DEPLOYMENT}\".guests]"),
                format!("max_file_size = {}", 512 * MIB),
                format!("[tus]\nlease_secs = {}", LEASE_EXPIRY.as_secs()),
            ],
            ..Options::default()
        },
    )
    .await
}

/// `GET` on the upload URL (with the guest session): the attachment reference of a completed
/// upload.
async fn reference(h: &Harness, upload_url: &str) -> Value {
    let mut request = vec![upload_url.to_owned(), "-H".into(), "Tus-Resumable: 1.0.0".into()];
    request.extend(h.guest());
    let reply = curl(&request, None).await;
    assert_eq!(reply.status, 200, "GET on the upload URL: {reply:?}");
    reply.json()
}

/// The stored object is the file and nothing else is left: the file's key and the upload's state
/// object (`ferry/.tus/<uuid>/state`, which answers `GET` with the reference until the upload
/// expires and the reaper removes it), no tail object, no multipart upload in progress. Returns
/// the file's key.
async fn assert_stored_once(h: &Harness, reference: &Value, data_md5: &str, size: usize) -> String {
    assert_eq!(reference["status"], "uploaded", "{reference}");
    assert_eq!(reference["size"], size, "{reference}");
    assert_eq!(reference["checksums"]["md5"], data_md5, "{reference}");
    let key = ferry_testkit::reference::stored_key(reference, ferry_testkit::reference::DEFAULT_PREFIX)
        .expect("a file id");
    let uuid = key.rsplit('/').next().expect("the key ends with the upload's id");
    let mut expected = vec![format!("ferry/.tus/{uuid}/state"), key.clone()];
    expected.sort();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut keys = h.keys().await;
        keys.sort();
        let pending = h.pending_uploads().await;
        if keys == expected && pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "debris 30 s after completion: keys {keys:?} (want {expected:?}), {pending} multipart upload(s)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    key
}

/// The conversation shows the file once: one message, and at most the one attachment it names.
fn assert_delivered_once(h: &Harness, reference: &Value) {
    let conversation = h.conversation();
    let messages = conversation["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "delivered exactly once: {conversation}");
    let attachments = conversation["attachments"].as_array().expect("attachments");
    match reference["delivery"]["mode"].as_str() {
        Some("native") => {
            assert_eq!(attachments.len(), 1, "{conversation}");
            assert_eq!(attachments[0]["id"], reference["delivery"]["genesysAttachmentId"], "{conversation}");
            assert_eq!(attachments[0]["state"], "uploaded", "{conversation}");
        }
        Some("link") => assert_eq!(attachments.len(), 0, "{conversation}"),
        other => panic!("delivery mode {other:?}: {reference}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack, tuspy"]
async fn tuspy_resumes_an_upload_cut_mid_patch() {
    let public = balancer::free_port();
    let h = harness("tuspy", public).await;
    // 9 MiB in 4 MiB PATCHes over 5 MiB parts: bytes wait in a tail object between PATCHes; the
    // second PATCH is cut 2 MiB in.
    let data = ferry_testkit::data::pseudo_random(b"%PDF-1.7\n", 9 * MIB, 14);
    let path = h.file("report.pdf", &data);
    let proxy = CutProxy::start_on(public, h.ferry.addr(), 6 * MIB as u64);
    let options = json!({
        "endpoint": proxy.url("/v1/tus/"),
        "file": path,
        "headers": guest_headers(&h),
        "metadata": { "filename": "report.pdf", "filetype": "application/pdf", "caption": "the report" },
        "chunk_size": 4 * MIB,
        "retries": 4,
        "retry_delay": RETRY_DELAY.as_secs_f64(),
        "checksum": true,
    });
    let result = ClientRun::tuspy(&options, h.dir.path()).finish().await;
    assert!(proxy.has_cut(), "the proxy cut a PATCH");
    assert_eq!(result["retried"], true, "tuspy resumed after the cut: {result}");
    assert_eq!(result["offset"], data.len(), "{result}");
    let upload_url = result["url"].as_str().expect("the upload URL");
    assert!(upload_url.starts_with(&proxy.url("/v1/tus/")), "{upload_url}");

    let reference = reference(&h, upload_url).await;
    let key = assert_stored_once(&h, &reference, &Md5::of(&data).to_hex(), data.len()).await;
    assert!(h.object(&key).await == data, "the stored bytes are the file's");
    assert_eq!(reference["name"], "report.pdf", "{reference}");
    assert_eq!(reference["contentType"], "application/pdf", "{reference}");
    assert_eq!(reference["delivery"]["mode"], "native", "9 MiB fits the deployment: {reference}");
    let conversation = h.conversation();
    assert_eq!(conversation["attachments"][0]["sha256"], sha256_hex(&data), "{conversation}");
    assert_delivered_once(&h, &reference);
    drop(proxy);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack, node"]
async fn tus_js_client_resumes_an_upload_cut_mid_patch() {
    let public = balancer::free_port();
    let h = harness("tusjs", public).await;
    // Creation-with-upload: the first 3 MiB go with the POST; the cut falls in the second PATCH.
    let data = ferry_testkit::data::pseudo_random(b"\x89PNG\r\n\x1a\n", 8 * MIB + 12_345, 15);
    let path = h.file("scan.png", &data);
    let proxy = CutProxy::start_on(public, h.ferry.addr(), 5 * MIB as u64);
    let delay = u64::try_from(RETRY_DELAY.as_millis()).expect("a short delay");
    let options = json!({
        "endpoint": proxy.url("/v1/tus/"),
        "file": path,
        "headers": guest_headers(&h),
        "metadata": { "filename": "scan.png", "filetype": "image/png" },
        "chunkSize": 3 * MIB,
        "retryDelays": [delay, delay, delay, delay],
        "withUpload": true,
    });
    let result = ClientRun::tus_js(&options, h.dir.path()).finish().await;
    assert!(proxy.has_cut(), "the proxy cut a PATCH");
    let errors = result["errors"].as_array().expect("errors");
    assert!(!errors.is_empty(), "tus-js-client resumed after the cut: {result}");
    let upload_url = result["url"].as_str().expect("the upload URL");

    let reference = reference(&h, upload_url).await;
    let key = assert_stored_once(&h, &reference, &Md5::of(&data).to_hex(), data.len()).await;
    assert!(h.object(&key).await == data, "the stored bytes are the file's");
    assert_eq!(reference["name"], "scan.png", "{reference}");
    assert_eq!(reference["delivery"]["mode"], "native", "{reference}");
    assert_delivered_once(&h, &reference);
    drop(proxy);
    h.finish().await;
}

/// CPU time of process `pid` so far, in clock ticks (utime + stime of `/proc/<pid>/stat`). A replica
/// reading a PATCH's body hashes and copies it; the others only answer HAProxy's health checks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
}

/// PATCH requests in a replica's access log.
fn patches(ferry: &Ferry) -> usize {
    ferry.log().lines().filter(|l| l.contains("ferry::access") && l.contains("\"PATCH\"")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack, haproxy, node"]
async fn three_replicas_behind_haproxy_survive_a_sigkill_mid_patch() {
    let public = balancer::free_port();
    let mut h = harness("tusha", public).await;
    let b = h.start_replica("b", &[]).await;
    let c = h.start_replica("c", &[]).await;
    let lb = Balancer::start_on(h.dir.path(), public, &[h.ferry.addr(), b.addr(), c.addr()]);
    let mut replicas = vec![b, c];

    // 300 MiB in 64 MiB PATCHes (long enough that a replica found busy is still reading one).
    let size = 300 * MIB;
    let data = ferry_testkit::data::pseudo_random(b"%PDF-1.7\n", size, 16);
    let md5 = Md5::of(&data).to_hex();
    let path = h.file("video.pdf", &data);
    drop(data);
    let delay = u64::try_from(RETRY_DELAY.as_millis()).expect("a short delay");
    let options = json!({
        "endpoint": lb.url("/v1/tus/"),
        "file": path,
        "headers": guest_headers(&h),
        "metadata": { "filename": "video.pdf", "filetype": "application/pdf" },
        "chunkSize": 64 * MIB,
        "retryDelays": [delay, delay, delay, delay, delay],
    });
    let mut client = ClientRun::tus_js(&options, h.dir.path());

    // Once two PATCHes (128 MiB) are in, SIGKILL the replica that is busy with a PATCH now: sampled
    // over 100 ms and killed at once, so the PATCH it reads has most of its bytes still to come.
    let deadline = Instant::now() + Duration::from_secs(300);
    let killed = loop {
        assert!(client.running(), "the upload ended before a replica was killed:\n{}", client.stderr());
        assert!(Instant::now() < deadline, "two PATCHes did not reach the replicas in 300 s");
        let done: usize = std::iter::once(&h.ferry).chain(replicas.iter()).map(patches).sum();
        let pids = [h.ferry.pid(), replicas[0].pid(), replicas[1].pid()];
        let before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let used: Vec<u64> = pids.iter().zip(&before).map(|(p, b)| cpu_ticks(*p) - b).collect();
        let busiest = (0..3).max_by_key(|i| used[*i]).expect("three replicas");
        // Clock ticks are 10 ms: a replica streaming a PATCH uses well over 40 ms of every 100.
        if done >= 2 && used[busiest] >= 4 && used.iter().filter(|u| **u >= 4).count() == 1 {
            break busiest;
        }
    };
    match killed {
        0 => h.ferry.kill(),
        i => replicas[i - 1].kill(),
    }

    let result = client.finish().await;
    let errors = result["errors"].as_array().expect("errors");
    assert!(!errors.is_empty(), "the client saw the killed replica's PATCH fail: {result}");
    let upload_url = result["url"].as_str().expect("the upload URL");
    let served: Vec<usize> = std::iter::once(&h.ferry).chain(replicas.iter()).map(patches).collect();
    assert!(
        served.iter().filter(|n| **n > 0).count() >= 2,
        "PATCHes landed on different replicas: {served:?} (replica {killed} killed)"
    );

    eprintln!(
        "tus via HAProxy: PATCHes per replica {served:?}, replica {killed} killed; client retried after {errors:?}"
    );
    let reference = reference(&h, upload_url).await;
    let key = assert_stored_once(&h, &reference, &md5, size).await;
    let stored = h.object(&key).await;
    assert_eq!(stored.len(), size);
    assert_eq!(Md5::of(&stored).to_hex(), md5, "the stored bytes are the file's");
    assert_delivered_once(&h, &reference);
    if killed == 0 {
        // The harness checks the log of its own ferry: hand it a live one.
        h.ferry = replicas.remove(0);
    }
    drop(replicas);
    drop(lb);
    h.finish().await;
}
