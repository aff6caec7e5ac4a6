//! The pinned LocalStack used by the tests that need S3's strict behaviour (BadDigest, InvalidPart,
//! FULL_OBJECT checksums, ListMultipartUploads).
//!
//! Installed into `.localstack/venv` (a Python 3.11 venv, pinned versions from
//! `shared/reference/s3-multipart.md`), started on a free loopback port with S3 only, waited for,
//! and stopped by PID when the [`LocalStack`] guard drops.

use crate::{project_root, run_checked};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PACKAGES: &[&str] = &[
    "localstack-core[runtime]==4.4.0",
    "cbor2==5.6.5",
    "pyopenssl==24.2.1",
    "cryptography==43.0.3",
    "service_identity==24.2.0",
];

fn venv() -> PathBuf {
    project_root().join(".localstack/venv")
}

/// Installs LocalStack unless the venv already has it; returns the venv's python.
pub(crate) fn install() -> Result<PathBuf> {
    let python = venv().join("bin/python");
    let marker = venv().join(".ferry-installed");
    if marker.exists() {
        return Ok(python);
    }
    let host_python = ["python3.11", "python3"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .context("LocalStack needs python3 (3.11)")?;
    run_checked(Command::new(host_python).args(["-m", "venv"]).arg(venv()))?;
    run_checked(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(PACKAGES),
    )?;
    std::fs::write(&marker, PACKAGES.join("\n"))?;
    Ok(python)
}

/// A running LocalStack; killed when dropped.
pub(crate) struct LocalStack {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) endpoint: String,
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        // LocalStack's runtime exits cleanly on SIGTERM; kill its process group's leader by PID.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn s3_ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /_localstack/health HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.contains("\"s3\": \"available\"") || body.contains("\"s3\": \"running\"")
}

/// Installs if needed and starts LocalStack's S3 on `port` (a free one when `None`), waiting until
/// it answers.
pub(crate) fn start(port: Option<u16>) -> Result<LocalStack> {
    let python = install()?;
    let port = match port {
        Some(p) => p,
        None => free_port()?,
    };
    let data = project_root().join(".localstack/state");
    std::fs::create_dir_all(&data)?;
    let log = std::fs::File::create(project_root().join(".localstack/localstack.log"))?;
    let child = Command::new(python)
        .args(["-m", "localstack.runtime.main"])
        .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("SERVICES", "s3")
        .env("EAGER_SERVICE_LOADING", "1")
        .env("PERSISTENCE", "0")
        .env("DISABLE_EVENTS", "1")
        .env("SKIP_SSL_CERT_DOWNLOAD", "1")
        .env("LOCALSTACK_VOLUME_DIR", &data)
        .env("FILESYSTEM_ROOT", &data)
        .env("DEBUG", "0")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting LocalStack")?;
    let mut running = LocalStack { child, endpoint: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if s3_ready(port) {
            eprintln!("localstack: S3 ready at {}", running.endpoint);
            return Ok(running);
        }
        if let Some(status) = running.child.try_wait()? {
            bail!("LocalStack exited ({status}); see .localstack/localstack.log");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("LocalStack did not become ready in 90 s; see .localstack/localstack.log")
}

/// `cargo xtask localstack start`: LocalStack in the foreground on port 4566, until Ctrl-C.
pub(crate) fn serve_foreground() -> Result<()> {
    let mut running = start(Some(4566))?;
    println!("LocalStack S3 at {} (Ctrl-C to stop)", running.endpoint);
    running.child.wait()?;
    Ok(())
}
