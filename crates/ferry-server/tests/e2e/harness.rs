//! The end-to-end plumbing: LocalStack's S3 (`ferry_testkit::localstack`), the Genesys emulator
//! in process, `ferry serve` as a child process (`ferry_testkit::process`) configured by `FERRY_…`
//! variables and a TOML file, and `curl` as the HTTP client.

use ferry_s3::{S3Config, SdkClient, build_client};
use ferry_sandbox::genesys::{DEMO_DEPLOYMENT_ID, GenesysEmulator, GenesysEmulatorConfig};
use ferry_testkit::process::FerryCommand;
use serde_json::Value;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub(crate) const MIB: usize = 1 << 20;
/// The deployment the emulator knows and ferry is configured for.
pub(crate) const DEPLOYMENT: &str = DEMO_DEPLOYMENT_ID;
/// Shared with "site backends" (`ferry ticket`).
pub(crate) const TICKET_SECRET: &str = "e2e-ticket-secret-0123456789abcdef-not-for-production";

/// A ticket for [`DEPLOYMENT`] minted by `ferry ticket --secret <secret>` and `extra` arguments, as
/// a site backend mints one (`FERRY_TICKET_SECRET` unset for it).
pub(crate) fn ferry_ticket(secret: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["ticket", "--deployment", DEPLOYMENT, "--secret", secret])
        .args(extra)
        .env_remove("FERRY_TICKET_SECRET")
        .output()
        .expect("ferry ticket runs");
    assert!(out.status.success(), "ferry ticket failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// A ticket signed with [`TICKET_SECRET`] for [`DEPLOYMENT`], valid ten minutes, unique, unless
/// `edit` changes its claims.
pub(crate) fn ticket(edit: impl FnOnce(&mut ferry_server::tickets::Claims)) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let mut claims = ferry_server::tickets::Claims {
        dep: DEPLOYMENT.into(),
        exp: now + 600,
        jti: uuid::Uuid::new_v4().to_string(),
        ..ferry_server::tickets::Claims::default()
    };
    edit(&mut claims);
    ferry_server::tickets::mint(TICKET_SECRET.as_bytes(), &claims)
}

/// A ticket for deployment `dep` naming the Open Messaging customer `from`, valid ten minutes.
pub(crate) fn open_messaging_ticket(dep: &str, from: &str) -> String {
    ticket(|claims| {
        claims.dep = dep.into();
        claims.from = Some(from.into());
    })
}

/// Starts a harness for `case` with the Open Messaging deployment `om` (client `om`) served by
/// `platform`; `extra` is appended to its `[deployments.om.open_messaging]` table. ferry listens on
/// a port chosen here and names it as its public URL, since Genesys fetches files through the
/// download link.
pub(crate) async fn start_open_messaging(
    case: &str,
    platform: &ferry_sandbox::platform::PlatformEmulator,
    extra: &str,
) -> Harness {
    let toml = vec![format!(
        "[deployments.om]\ndelivery = \"open-messaging\"\n[deployments.om.open_messaging]\nintegration_id = \"int-1\"\nclient_id = \"om\"\nclient_secret = \"om-secret\"\napi_url = \"{}\"\nlogin_url = \"{}\"\n{extra}",
        platform.api_url(),
        platform.login_url()
    )];
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let env = vec![
        ("FERRY_LISTEN", format!("127.0.0.1:{port}")),
        ("FERRY_PUBLIC_URL", format!("http://127.0.0.1:{port}")),
    ];
    Harness::start(case, Options { toml, env, ..Options::default() }).await
}

pub(crate) const LINK_SECRET: &str = "e2e-link-secret-0123456789abcdef-not-for-production";
/// ferry's public host in download links; curl is pointed at the real port with `--connect-to`.
pub(crate) const PUBLIC_HOST: &str = "ferry.e2e.test";

/// The LocalStack endpoint; panics, saying how to start one, when there is none (every case is
/// `#[ignore = "needs LocalStack"]`, run by `cargo xtask e2e` and `cargo xtask ci`).
pub(crate) use ferry_testkit::localstack::endpoint as localstack;
/// `ferry serve`, a child process; killed (and its log shown, when a test fails) on drop.
pub(crate) use ferry_testkit::process::Ferry;

/// How to configure one ferry.
#[derive(Default)]
pub(crate) struct Options {
    /// Extra `FERRY_…` variables (they override the defaults below).
    pub(crate) env: Vec<(&'static str, String)>,
    /// Extra lines for the `[limits]` table of the TOML file.
    pub(crate) limits: Vec<String>,
    /// Extra TOML appended at the end of the file (more deployments, say).
    pub(crate) toml: Vec<String>,
}

/// One end-to-end environment: emulator, bucket, ferry.
pub(crate) struct Harness {
    pub(crate) emulator: GenesysEmulator,
    /// The guest session token of an open conversation.
    pub(crate) token: String,
    pub(crate) s3: SdkClient,
    pub(crate) bucket: String,
    pub(crate) ferry: Ferry,
    pub(crate) dir: tempfile::TempDir,
    /// The settings ferry was started with (for restarts).
    env: Vec<(&'static str, String)>,
}

impl Harness {
    /// Starts everything for `case`, and waits until ferry is ready; panics when LocalStack is not
    /// available.
    pub(crate) async fn start(case: &str, options: Options) -> Self {
        let endpoint = localstack();
        let dir = tempfile::tempdir().expect("temp dir");
        let emulator =
            GenesysEmulator::start(GenesysEmulatorConfig::default()).await.expect("emulator starts");
        let token = emulator.state().create_session(DEPLOYMENT);

        let s3 = build_client(&S3Config::compatible(&endpoint, "test", "test")).await;
        let bucket = format!("ferry-e2e-{case}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        s3.create_bucket().bucket(&bucket).send().await.expect("bucket created in LocalStack");

        let mut toml = String::from("[limits]\n");
        for line in &options.limits {
            toml.push_str(line);
            toml.push('\n');
        }
        toml.push_str(&format!(
            "\n[deployments.\"{DEPLOYMENT}\"]\nweb_messaging_url = \"{}\"\nguest_api_url = \"{}\"\n",
            emulator.ws_url(),
            emulator.base_url()
        ));
        for line in &options.toml {
            toml.push_str(line);
            toml.push('\n');
        }
        let config = dir.path().join("ferry.toml");
        std::fs::write(&config, toml).expect("config file");

        let mut env: Vec<(&str, String)> = vec![
            ("FERRY_CONFIG", config.display().to_string()),
            ("FERRY_PUBLIC_URL", format!("http://{PUBLIC_HOST}")),
            ("FERRY_ALLOW_INSECURE", "true".into()),
            ("FERRY_S3_BUCKET", bucket.clone()),
            ("FERRY_S3_ENDPOINT", endpoint.clone()),
            ("FERRY_S3_ACCESS_KEY_ID", "test".into()),
            ("FERRY_S3_SECRET_ACCESS_KEY", "test".into()),
            ("FERRY_S3_PART_SIZE_MIB", "5".into()),
            ("FERRY_LINK_SECRET", LINK_SECRET.into()),
            ("FERRY_TICKET_SECRET", TICKET_SECRET.into()),
        ];
        for (k, v) in options.env {
            env.retain(|(key, _)| *key != k);
            env.push((k, v));
        }
        let ferry = spawn(&env, &dir.path().join("ferry.log")).await;
        Self { emulator, token, s3, bucket, ferry, dir, env }
    }

    /// Kills ferry with SIGKILL (no chance to clean up), then starts a new one with the same
    /// settings plus `extra`, and waits until it is ready.
    pub(crate) async fn crash_and_restart(&mut self, extra: &[(&'static str, String)]) {
        self.ferry.kill();
        let mut env = self.env.clone();
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((*k, v.clone()));
        }
        self.ferry = spawn(&env, &self.dir.path().join("ferry-restarted.log")).await;
    }

    /// `--connect-to` for links under the public URL.
    pub(crate) fn connect_to(&self) -> String {
        let addr = self.ferry.addr();
        format!("{PUBLIC_HOST}:80:{}:{}", addr.ip(), addr.port())
    }

    /// `curl` arguments for a guest-session upload.
    pub(crate) fn guest(&self) -> Vec<String> {
        vec![
            "-H".into(),
            format!("Authorization: Bearer {}", self.token),
            "-H".into(),
            format!("X-Genesys-Deployment-Id: {DEPLOYMENT}"),
        ]
    }

    /// curl arguments for a guest's raw upload of the file at `path`, sent as `content_type` named
    /// `name`.
    pub(crate) fn guest_file_upload(&self, path: &Path, content_type: &str, name: &str) -> Vec<String> {
        let mut request = self.guest();
        request.extend(file_body(path, content_type, name));
        request
    }

    /// Uploads `data` as `om.bin` with an Open Messaging ticket (deployment `om`, customer
    /// `customer-1`, as [`start_open_messaging`] configures).
    pub(crate) async fn open_messaging_upload(&self, data: &[u8]) -> Reply {
        let ticket = open_messaging_ticket("om", "customer-1");
        let args =
            ticket_file_upload(&ticket, &self.file("om.bin", data), "application/octet-stream", "om.bin");
        self.post(&args, None).await
    }

    /// Writes `data` to a file in the harness's folder.
    pub(crate) fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).expect("write test file");
        path
    }

    /// `curl -X POST …/v1/uploads` with `args`.
    pub(crate) async fn post(&self, args: &[String], stdin: Option<Vec<u8>>) -> Reply {
        let mut all = vec!["-X".into(), "POST".into(), self.ferry.url("/v1/uploads")];
        all.extend_from_slice(args);
        curl(&all, stdin).await
    }

    /// Keys in the bucket, but for used-ticket markers (`ferry/.tickets/…`, bookkeeping).
    pub(crate) async fn keys(&self) -> Vec<String> {
        self.all_keys().await.into_iter().filter(|k| !k.starts_with("ferry/.tickets/")).collect()
    }

    /// Every key in the bucket, used-ticket markers too.
    pub(crate) async fn all_keys(&self) -> Vec<String> {
        let out = self.s3.list_objects_v2().bucket(&self.bucket).send().await.expect("ListObjectsV2");
        out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    }

    /// Another `ferry serve` on the same bucket and emulator (a replica), with the same settings
    /// plus `extra`, ready.
    pub(crate) async fn start_replica(&self, name: &str, extra: &[(&'static str, String)]) -> Ferry {
        let mut env = self.env.clone();
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((*k, v.clone()));
        }
        spawn(&env, &self.dir.path().join(format!("ferry-{name}.log"))).await
    }

    /// An object's bytes.
    pub(crate) async fn object(&self, key: &str) -> Vec<u8> {
        let out = self.s3.get_object().bucket(&self.bucket).key(key).send().await.expect("GetObject");
        out.body.collect().await.expect("object body").into_bytes().to_vec()
    }

    /// Multipart uploads in progress in the bucket.
    pub(crate) async fn pending_uploads(&self) -> usize {
        let out =
            self.s3.list_multipart_uploads().bucket(&self.bucket).send().await.expect("ListMultipartUploads");
        out.uploads().len()
    }

    /// Waits (bounded) until the bucket lists `n` or more multipart uploads in progress.
    pub(crate) async fn wait_pending_uploads(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.pending_uploads().await < n {
            assert!(Instant::now() < deadline, "fewer than {n} multipart uploads appeared in 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded) until no multipart upload is in progress, and asserts the bucket is empty.
    pub(crate) async fn assert_nothing_stored(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let pending = self.pending_uploads().await;
            if pending == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{pending} multipart upload(s) still in progress after 15 s\n{}",
                self.ferry.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(self.keys().await, Vec::<String>::new(), "objects left in the bucket");
    }

    /// A counter or gauge from `/metrics` (0 when absent).
    pub(crate) async fn metric(&self, name: &str) -> u64 {
        let reply = curl(&[self.ferry.url("/metrics")], None).await;
        assert_eq!(reply.status, 200);
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0, |v| v.trim().parse::<f64>().expect("numeric metric") as u64)
    }

    /// The conversation of the harness's session as the emulator saw it.
    pub(crate) fn conversation(&self) -> Value {
        let snapshot = self.emulator.state().conversation(&self.token).expect("the session exists");
        serde_json::to_value(snapshot).expect("snapshot serializes")
    }

    /// Waits (bounded) until ferry holds no guest connection on the session: it checks the session
    /// and delivers on short connections of its own, never keeping one while a body streams.
    pub(crate) async fn assert_no_guest_connection(&self, token: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.emulator.state().connection_count(token) > 0 {
            assert!(Instant::now() < deadline, "ferry still holds a guest connection after 5 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The end of every case: ferry broke none of Genesys's rules and logged no secrets; the
    /// bucket is emptied and removed.
    pub(crate) async fn finish(mut self) {
        assert_eq!(self.emulator.state().violations(), Vec::<String>::new(), "emulator violations");
        self.ferry.kill();
        let log = self.ferry.log();
        for (what, secret) in [
            ("the session token", self.token.as_str()),
            ("the link secret", LINK_SECRET),
            ("the ticket secret", TICKET_SECRET),
            ("a presigned URL", "X-Amz-Signature"),
            ("a download-link signature", "signature="),
        ] {
            assert!(!log.contains(secret), "ferry's log contains {what}:\n{log}");
        }
        for key in self.all_keys().await {
            let _ = self.s3.delete_object().bucket(&self.bucket).key(key).send().await;
        }
        let _ = self.s3.delete_bucket().bucket(&self.bucket).send().await;
    }
}

/// Starts `ferry serve` (this build's binary) with exactly the settings `env`, and waits until it
/// is ready.
async fn spawn(env: &[(&str, String)], log: &Path) -> Ferry {
    FerryCommand::new(env!("CARGO_BIN_EXE_ferry"), log)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .start()
        .await
        .expect("ferry starts")
}

/// What curl got.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// curl's stderr (with `-v`, the request and response headers).
    pub(crate) trace: String,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(2000)]).into_owned();
        f.debug_struct("Reply").field("status", &self.status).field("body", &body).finish_non_exhaustive()
    }
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts an error answer: status and `error.code`, with a request id.
    pub(crate) fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{self:?}");
        assert!(body["error"]["requestId"].as_str().is_some_and(|r| !r.is_empty()), "{self:?}");
    }
}

/// Runs `curl` with `args` (and `stdin`), returning status, body and stderr.
pub(crate) async fn curl(args: &[String], stdin: Option<Vec<u8>>) -> Reply {
    let args = args.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--noproxy", "*", "--max-time", "60", "-w", "\n%{http_code}"])
            .args(&args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("curl is installed");
        let feeder = stdin.map(|data| {
            let mut pipe = child.stdin.take().expect("stdin");
            std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            })
        });
        let out = child.wait_with_output().expect("curl runs");
        if let Some(feeder) = feeder {
            let _ = feeder.join();
        }
        let mut body = out.stdout;
        let cut = body.iter().rposition(|b| *b == b'\n').unwrap_or(0);
        let status = String::from_utf8_lossy(&body[cut..]).trim().parse().unwrap_or(0);
        body.truncate(cut);
        Reply { status, body, trace: String::from_utf8_lossy(&out.stderr).into_owned() }
    })
    .await
    .expect("curl task")
}

/// A request written by hand on a socket, so a test controls exactly when the body stops.
pub(crate) struct RawUpload {
    stream: tokio::net::TcpStream,
}

impl RawUpload {
    /// Connects and sends the head of a raw-body guest upload of `len` bytes.
    pub(crate) async fn start(harness: &Harness, name: &str, len: usize) -> Self {
        let mut stream =
            tokio::net::TcpStream::connect(harness.ferry.addr()).await.expect("connect to ferry");
        let head = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nX-Genesys-Deployment-Id: {DEPLOYMENT}\r\n\
             Content-Type: application/octet-stream\r\nX-File-Name: {name}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
            harness.ferry.addr(),
            harness.token,
        );
        stream.write_all(head.as_bytes()).await.expect("send head");
        Self { stream }
    }

    /// Sends part of the body.
    pub(crate) async fn send(&mut self, data: &[u8]) {
        self.stream.write_all(data).await.expect("send body");
        self.stream.flush().await.expect("flush");
    }

    /// Reads the answer: status and JSON body.
    pub(crate) async fn response(mut self) -> (u16, Value) {
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), self.stream.read_to_end(&mut raw))
            .await
            .expect("answer within 60 s")
            .expect("read answer");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

/// Deterministic pseudo-random bytes after a `head` (a magic number, say).
pub(crate) fn bytes(head: &[u8], len: usize, seed: u64) -> Vec<u8> {
    ferry_testkit::data::pseudo_random(head, len, seed)
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    ferry_core::checksum::Sha256::of(data).to_hex()
}

/// curl arguments for a raw upload of the file at `path`, sent as `content_type` named `name`.
fn file_body(path: &Path, content_type: &str, name: &str) -> Vec<String> {
    crate::args(&[
        "-H",
        &format!("Content-Type: {content_type}"),
        "-H",
        &format!("X-File-Name: {name}"),
        "--data-binary",
        &format!("@{}", path.display()),
    ])
}

/// curl arguments for an upload with `ticket` of the file at `path`, sent as `content_type` named
/// `name`.
pub(crate) fn ticket_file_upload(ticket: &str, path: &Path, content_type: &str, name: &str) -> Vec<String> {
    let mut request = crate::args(&["-H", &format!("Authorization: Ferry-Ticket {ticket}")]);
    request.extend(file_body(path, content_type, name));
    request
}
