//! ferry behind Debian's nginx, configured exactly as `docs/deploy.md` says (the test extracts the
//! block between its `nginx-config-begin` and `nginx-config-end` markers): TLS with a certificate
//! made here by the `openssl` CLI, a 1 GiB upload streamed through without nginx writing any of it
//! to its temporary files, ferry's peak RSS within its bound, and the client's address seen only
//! through the `X-Forwarded-For` entry nginx appends.

use crate::args;
use crate::harness::{DEPLOYMENT, Harness, MIB, Options, curl};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;
/// The host in the certificate and in nginx's `server_name`.
const HOST: &str = "files.e2e.test";
/// ferry's memory budget in this test.
const BUDGET_MIB: u64 = 64;

/// The nginx block of `docs/deploy.md`, pointed at this ferry, this certificate and `port`.
fn documented_config(ferry: std::net::SocketAddr, cert: &Path, key: &Path, port: u16) -> String {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/deploy.md"))
        .expect("docs/deploy.md");
    let begin = docs.find("<!-- nginx-config-begin -->").expect("the begin marker");
    let end = docs.find("<!-- nginx-config-end -->").expect("the end marker");
    let block = &docs[begin..end];
    let block = &block[block.find("```nginx\n").expect("an nginx block") + 9..];
    let block = &block[..block.find("```").expect("the block's end")];
    let replaced = [
        ("server 127.0.0.1:8080;", format!("server {ferry};")),
        ("listen 443 ssl;", format!("listen 127.0.0.1:{port} ssl;")),
        ("server_name files.example.com;", format!("server_name {HOST};")),
        ("/etc/ssl/certs/files.example.com.pem", cert.display().to_string()),
        ("/etc/ssl/private/files.example.com.key", key.display().to_string()),
    ];
    let mut config = block.to_owned();
    for (from, to) in replaced {
        assert_eq!(config.matches(from).count(), 1, "docs/deploy.md's nginx block has `{from}` once");
        config = config.replace(from, &to);
    }
    config
}

/// A self-signed certificate for [`HOST`], made with the `openssl` CLI.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj"])
        .arg(format!("/CN={HOST}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{HOST}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl made no certificate");
    (cert, key)
}

/// nginx in the foreground with its own prefix folder; stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    prefix: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, name: &str, server: &str) -> Self {
        let prefix = dir.join(name);
        let body_temp = prefix.join("client_body_temp");
        std::fs::create_dir_all(&body_temp).expect("nginx folders");
        // A free port: bind, note it, release it (nginx binds it right after).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = server.replace("listen 127.0.0.1:0 ssl;", &format!("listen 127.0.0.1:{port} ssl;"));
        let conf = format!(
            "daemon off;\nworker_processes 1;\nuser root;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {p}/access.log;\n  client_body_temp_path {t};\n  proxy_temp_path {p}/proxy_temp;\n\
             \n  fastcgi_temp_path {p}/fastcgi_temp;\n  uwsgi_temp_path {p}/uwsgi_temp;\n  scgi_temp_path {p}/scgi_temp;\n\
             {server}\n}}\n",
            p = prefix.display(),
            t = body_temp.display(),
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let nginx =
            ["/usr/sbin/nginx", "nginx"].into_iter().find(|n| Path::new(n).exists()).unwrap_or("nginx");
        let child = Command::new(nginx)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed (Debian: nginx-light)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen:\n{}", Self::log_of(&prefix));
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, prefix }
    }

    fn log_of(prefix: &Path) -> String {
        std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default()
    }

    fn log(&self) -> String {
        Self::log_of(&self.prefix)
    }

    /// Files in nginx's body buffer folder right now.
    fn buffered_files(&self) -> usize {
        walk(&self.prefix.join("client_body_temp"))
    }

    /// `curl` arguments reaching ferry through nginx over TLS, from `client` (a loopback address).
    fn curl_args(&self, cert: &Path, client: &str) -> Vec<String> {
        args(&[
            "--cacert",
            &cert.display().to_string(),
            "--resolve",
            &format!("{HOST}:{}:127.0.0.1", self.port),
            "--interface",
            client,
            "--max-time",
            "900",
        ])
    }

    fn url(&self, path: &str) -> String {
        format!("https://{HOST}:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries.filter_map(Result::ok).map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum()
    })
}

/// Peak resident set size of `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

/// A 1 GiB file of pseudo-random 1 MiB blocks (fast to write, not compressible by accident).
fn big_file(dir: &Path) -> PathBuf {
    let path = dir.join("big.bin");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let block = crate::harness::bytes(b"", MIB, 17);
    for i in 0..GIB / MIB as u64 {
        file.write_all(&i.to_le_bytes()).unwrap();
        file.write_all(&block[8..]).unwrap();
    }
    file.flush().unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx"]
async fn a_gib_streams_through_the_documented_nginx_over_tls() {
    let h = Harness::start(
        "proxy",
        Options {
            env: vec![("FERRY_MEMORY_BUDGET", (BUDGET_MIB * MIB as u64).to_string())],
            toml: vec![
                // Guests may send 1 GiB here (the default guest limit is lower).
                format!("[deployments.\"{DEPLOYMENT}\".guests]"),
                format!("max_file_size = {}", 2 * GIB),
                "[admission]".into(),
                "trusted_client_header = \"x-forwarded-for\"".into(),
                "per_client_per_minute = 1".into(),
                "per_client_burst = 1".into(),
            ],
            ..Options::default()
        },
    )
    .await;
    let (cert, key) = certificate(h.dir.path());
    let server = documented_config(h.ferry.addr(), &cert, &key, 0);
    let nginx = tokio::task::block_in_place(|| Nginx::start(h.dir.path(), "nginx", &server));
    let idle_rss = peak_rss(h.ferry.pid());

    // The per-client limit (1 request a minute) counts the client's address, not nginx's, and not
    // what a client claims: a second request from 127.0.0.3 is refused, one from 127.0.0.4 is not.
    let small = |client: &str, spoof: &str| {
        let mut a = nginx.curl_args(&cert, client);
        a.extend(h.guest());
        a.extend(args(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: text/plain",
            "-H",
            "X-File-Name: note.txt",
            "-H",
            &format!("X-Forwarded-For: {spoof}"),
            "--data-binary",
            "a small note",
            &nginx.url("/v1/uploads"),
        ]));
        a
    };
    let first = curl(&small("127.0.0.3", "127.0.0.9"), None).await;
    assert_eq!(first.status, 201, "{first:?}\nnginx:\n{}\nferry:\n{}", nginx.log(), h.ferry.log());
    let again = curl(&small("127.0.0.3", "127.0.0.4"), None).await;
    again.assert_error(429, "rate_limited");
    let other = curl(&small("127.0.0.4", "127.0.0.3"), None).await;
    assert_eq!(other.status, 201, "{other:?}");

    // 1 GiB through TLS and nginx, watched: nothing may appear in nginx's body buffer folder.
    let file = tokio::task::block_in_place(|| big_file(h.dir.path()));
    let mut upload = nginx.curl_args(&cert, "127.0.0.5");
    upload.extend(h.guest());
    upload.extend(args(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "X-File-Name: big.bin",
        // A client's own X-Forwarded-For must not count: nginx appends the real address last.
        "-H",
        "X-Forwarded-For: 198.51.100.7",
        "-T",
        &file.display().to_string(),
        &nginx.url("/v1/uploads"),
    ]));
    let started = Instant::now();
    let sending = tokio::spawn(async move { curl(&upload, None).await });
    let mut buffered = 0;
    while !sending.is_finished() {
        buffered = buffered.max(nginx.buffered_files());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = sending.await.unwrap();
    let took = started.elapsed();
    assert_eq!(reply.status, 201, "{reply:?}\nnginx:\n{}\nferry:\n{}", nginx.log(), h.ferry.log());
    assert_eq!(reply.json()["size"], GIB, "{reply:?}");
    assert_eq!(buffered, 0, "nginx buffered the body in a temporary file");
    assert!(!nginx.log().contains("buffered to a temporary file"), "{}", nginx.log());
    let key = ferry_testkit::reference::stored_key(&reply.json(), ferry_testkit::reference::DEFAULT_PREFIX)
        .as_deref()
        .expect("key")
        .to_owned();
    let head = h.s3.head_object().bucket(&h.bucket).key(&key).send().await.expect("HeadObject");
    assert_eq!(head.content_length(), Some(GIB as i64));
    let peak = peak_rss(h.ferry.pid());
    eprintln!(
        "1 GiB through nginx in {took:?} ({:.0} MB/s); ferry RSS idle {} MiB, peak {} MiB (budget {BUDGET_MIB} MiB)",
        GIB as f64 / took.as_secs_f64() / 1e6,
        idle_rss / MIB as u64,
        peak / MIB as u64
    );
    // Part buffers live inside the budget; the rest of the process must not grow with the file.
    let bound = idle_rss + (BUDGET_MIB + 64) * MIB as u64;
    assert!(peak < bound, "peak RSS {peak} over {bound}");

    // The control: with request buffering on, the same watch sees nginx spool a body to disk (so
    // the checks above would have caught it).
    let buffering = server.replace("proxy_request_buffering off;", "proxy_request_buffering on;");
    let control = tokio::task::block_in_place(|| Nginx::start(h.dir.path(), "nginx-buffering", &buffering));
    let mut spooled = control.curl_args(&cert, "127.0.0.6");
    spooled.extend(h.guest());
    spooled.extend(args(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "X-File-Name: spooled.bin",
        "--data-binary",
        &format!("@{}", h.file("spooled.bin", &crate::harness::bytes(b"", MIB, 5)).display()),
        &control.url("/v1/uploads"),
    ]));
    let reply = curl(&spooled, None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert!(control.log().contains("buffered to a temporary file"), "{}", control.log());

    drop(nginx);
    h.finish().await;
}

#[test]
fn the_documented_block_has_what_the_page_promises() {
    let config = documented_config("127.0.0.1:1".parse().unwrap(), Path::new("/c"), Path::new("/k"), 1);
    for line in [
        "proxy_request_buffering off;",
        "proxy_buffering off;",
        "client_max_body_size 0;",
        "proxy_read_timeout 3h;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_http_version 1.1;",
    ] {
        assert!(config.contains(line), "{line} missing from docs/deploy.md's nginx block");
    }
    // The read timeout covers the longest upload ferry allows by default.
    let limits = ferry_server::config::Config::default().limits;
    assert!(limits.max_upload_secs <= 3 * 3600, "raise proxy_read_timeout in docs/deploy.md");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn the_admin_port_says_not_ready_from_sigterm_on_while_an_upload_finishes() {
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let options = Options {
        env: vec![("FERRY_ADMIN_LISTEN", admin.to_string())],
        limits: vec!["shutdown_grace_secs = 10".into()],
        ..Options::default()
    };
    let mut h = Harness::start("admin", options).await;
    let get = |path: &str| {
        let url = format!("http://{admin}{path}");
        async move { curl(&[url], None).await }
    };
    assert_eq!(get("/readyz").await.status, 200);
    let metrics = get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(String::from_utf8_lossy(&metrics.body).contains("ferry_build_info{version="), "{metrics:?}");
    assert_eq!(curl(&[h.ferry.url("/metrics")], None).await.status, 404, "no metrics on the public port");

    let data = crate::harness::bytes(b"", 8 * MIB, 21);
    let mut upload = crate::harness::RawUpload::start(&h, "upgrade.bin", data.len()).await;
    upload.send(&data[..6 * MIB]).await;
    h.wait_pending_uploads(1).await;

    h.ferry.terminate();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let ready = get("/readyz").await;
        if ready.status == 503 {
            assert_eq!(String::from_utf8_lossy(&ready.body).trim(), "shutting down");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz still {} 2 s after SIGTERM", ready.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get("/healthz").await.status, 200, "alive while draining");
    upload.send(&data[6 * MIB..]).await;
    let (status, reference) = upload.response().await;
    assert_eq!(status, 201, "the upload in flight finishes within the grace: {reference}");
    let status = h.ferry.wait_exit(Duration::from_secs(30)).await.expect("ferry exits after SIGTERM");
    assert!(status.success(), "ferry exited with {status}");
    h.finish().await;
}
