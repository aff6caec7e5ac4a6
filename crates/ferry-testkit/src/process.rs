//! `ferry serve` as a child process, the way users run it: started with only the `FERRY_…`
//! variables given here (none inherited), JSON logs to a file, waited for until it has logged the
//! address it bound (`127.0.0.1:0` unless told otherwise) and `/readyz` answers 200, and killed when
//! dropped, with the tail of its log shown if a test is panicking.

use serde_json::Value;
use std::ffi::OsStr;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How long ferry may take to log its address (a debug build's first start is slow).
const ADDRESS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `/readyz` (which checks the bucket) may take to answer 200 after that.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the log a panicking test shows.
const LOG_TAIL_LINES: usize = 60;

/// How to start one `ferry serve`.
#[derive(Debug)]
pub struct FerryCommand {
    command: Command,
    log: PathBuf,
}

impl FerryCommand {
    /// `binary serve` (for tests and benches, `env!("CARGO_BIN_EXE_ferry")`) logging to `log`,
    /// with none of the caller's `FERRY_…` variables, JSON logs, `FERRY_LISTEN=127.0.0.1:0` and
    /// `RUST_LOG=info,aws=warn,hyper=warn`; [`env`](Self::env) overrides any of them.
    pub fn new(binary: impl AsRef<OsStr>, log: impl Into<PathBuf>) -> Self {
        let mut command = Command::new(binary);
        command.arg("serve");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FERRY_") {
                command.env_remove(key);
            }
        }
        command
            .env("FERRY_LISTEN", "127.0.0.1:0")
            .env("FERRY_LOG_JSON", "true")
            .env("RUST_LOG", "info,aws=warn,hyper=warn");
        Self { command, log: log.into() }
    }

    /// One more argument after `serve` (`--config`, say).
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    /// One environment variable.
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Several environment variables, in order (a later one wins).
    #[must_use]
    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self {
        self.command.envs(vars);
        self
    }

    /// Starts ferry and waits until it serves and `/readyz` answers 200. On failure the child is
    /// killed and the error holds its log.
    pub async fn start(mut self) -> Result<Ferry, StartError> {
        let file = std::fs::File::create(&self.log)
            .map_err(|e| StartError(format!("creating the log {}: {e}", self.log.display())))?;
        let stdout = file.try_clone().map_err(|e| StartError(format!("the log file: {e}")))?;
        let child = self
            .command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .spawn()
            .map_err(|e| StartError(format!("starting {:?}: {e}", self.command.get_program())))?;
        // Not serving yet; the guard kills the child on every early return below.
        let mut ferry = Ferry { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)), log: self.log };
        ferry.addr = ferry.wait_for_address().await?;
        ferry.wait_until_ready().await?;
        Ok(ferry)
    }
}

/// Why ferry did not start (with its log).
pub struct StartError(String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A running `ferry serve`; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Ferry {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Ferry {
    /// The address ferry serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What ferry logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Sends SIGTERM (ferry's graceful shutdown); panics when `kill` fails.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM {} failed", self.pid());
    }

    /// Waits up to `within` for the process to exit; its status, or `None` if it still runs.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process (SIGKILL: no chance to clean up) unless it has exited, and reaps it.
    pub fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Polls the log for ferry's "ferry serving" line and the address in it.
    async fn wait_for_address(&mut self) -> Result<SocketAddr, StartError> {
        let deadline = Instant::now() + ADDRESS_TIMEOUT;
        loop {
            // Exit status first, log second: a ferry that logged its address and then exited is
            // seen as serving (and then as not ready), not as one that never served.
            let exited = self.child.try_wait().ok().flatten();
            let text = self.log();
            if let Some(addr) = text.lines().find_map(serving_address) {
                return Ok(addr);
            }
            if let Some(status) = exited {
                return Err(StartError(format!("ferry exited before serving ({status}):\n{text}")));
            }
            if Instant::now() >= deadline {
                return Err(StartError(format!(
                    "ferry did not log its address in {ADDRESS_TIMEOUT:?}:\n{text}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `GET /readyz` until it answers 200.
    async fn wait_until_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let status = http_status(self.addr, "/readyz").await;
            if status == Some(200) {
                return Ok(());
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                return Err(StartError(format!(
                    "ferry exited before it was ready ({exit}):\n{}",
                    self.log()
                )));
            }
            if Instant::now() >= deadline {
                return Err(StartError(format!(
                    "ferry not ready in {READY_TIMEOUT:?} (last /readyz: {status:?}):\n{}",
                    self.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(LOG_TAIL_LINES).collect();
            eprintln!("---- ferry's log (last {} lines) ----", tail.len());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The address in ferry's JSON "ferry serving" log line, if `line` is that line.
fn serving_address(line: &str) -> Option<SocketAddr> {
    let line: Value = serde_json::from_str(line).ok()?;
    let fields = &line["fields"];
    (fields["message"] == "ferry serving").then(|| fields["addr"].as_str()?.parse().ok()).flatten()
}

/// The status of a plain `GET path` (a connection of its own, no proxy), or `None` when there is
/// no well-formed answer within 5 s.
pub async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
        head.strip_prefix("HTTP/1.")?.split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), exchange).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::{FerryCommand, http_status, serving_address};
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn the_serving_line_gives_the_address() {
        let line = r#"{"level":"INFO","fields":{"message":"ferry serving","addr":"127.0.0.1:4321"}}"#;
        assert_eq!(serving_address(line), Some("127.0.0.1:4321".parse().unwrap()));
        assert_eq!(serving_address(r#"{"fields":{"message":"other","addr":"127.0.0.1:1"}}"#), None);
        assert_eq!(serving_address(r#"{"fields":{"message":"ferry serving","addr":"nowhere"}}"#), None);
        assert_eq!(serving_address("not json"), None);
    }

    /// A stand-in for ferry's `/readyz`: answers `status` to every connection.
    async fn answering(status: u16) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    /// A shell script standing in for the ferry binary: runs `body` (given `serve` as `$1`).
    fn script(dir: &tempfile::TempDir, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = dir.path().join("fake-ferry");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// The script line that logs ferry's "serving" line with `addr`.
    fn logs_serving(addr: SocketAddr) -> String {
        format!("echo '{{\"fields\":{{\"message\":\"ferry serving\",\"addr\":\"{addr}\"}}}}'")
    }

    #[tokio::test]
    async fn http_status_reads_the_status_line() {
        assert_eq!(http_status(answering(503).await, "/readyz").await, Some(503));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert_eq!(http_status(closed, "/readyz").await, None);
    }

    #[tokio::test]
    async fn a_started_ferry_is_ready_and_stops_on_sigterm() {
        let addr = answering(200).await;
        let dir = tempfile::tempdir().unwrap();
        let checks = "[ \"$1\" = serve ] || exit 9\necho \"listen=$FERRY_LISTEN extra=$FERRY_EXTRA\"";
        let binary = script(&dir, &format!("{checks}\n{}\nexec sleep 30", logs_serving(addr)));
        let mut ferry = FerryCommand::new(&binary, dir.path().join("log"))
            .env("FERRY_EXTRA", "yes")
            .start()
            .await
            .expect("the stand-in starts");
        assert_eq!(ferry.addr(), addr);
        assert_eq!(ferry.url("/x"), format!("http://{addr}/x"));
        assert!(ferry.log().contains("listen=127.0.0.1:0 extra=yes"), "{}", ferry.log());
        assert_eq!(ferry.wait_exit(Duration::from_millis(100)).await, None);
        ferry.terminate();
        let status = ferry.wait_exit(Duration::from_secs(10)).await.expect("exits on SIGTERM");
        assert!(!status.success());
    }

    #[tokio::test]
    async fn a_ferry_that_exits_is_an_error_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let binary = script(&dir, "echo 'bad config: no bucket'\nexit 2");
        let error = FerryCommand::new(&binary, dir.path().join("log")).start().await.expect_err("exits");
        let text = error.to_string();
        assert!(text.contains("exited before serving") && text.contains("bad config: no bucket"), "{text}");
    }

    #[tokio::test]
    async fn a_ferry_never_ready_is_an_error() {
        let addr = answering(503).await;
        let dir = tempfile::tempdir().unwrap();
        let binary = script(&dir, &format!("{}\nexit 0", logs_serving(addr)));
        let error = FerryCommand::new(&binary, dir.path().join("log")).start().await.expect_err("not ready");
        assert!(error.to_string().contains("exited before it was ready"), "{error}");
    }
}
