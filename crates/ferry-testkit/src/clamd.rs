//! Debian's ClamAV daemon (`/usr/sbin/clamd`, package `clamav-daemon`) on loopback, for tests
//! that need a real scanner (`#[ignore = "needs clamd"]`).
//!
//! The test's folder gets a `clamd.conf` and a signature database written here, never downloaded
//! (freshclam is never run): an MD5 signature (`.hdb`) of the EICAR test string and a body
//! signature (`.ndb`) of [`PATTERN`]. `StreamMaxLength`, `MaxFileSize` and `MaxScanSize` are
//! raised so gigabyte files are scanned whole, and `AlertExceedsMax` makes anything larger a
//! detection (`Heuristics.Limits.Exceeded…`), never a silent pass. clamd listens on a free
//! loopback port and on a Unix socket in the folder, and is killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Where Debian installs the daemon.
pub const CLAMD: &str = "/usr/sbin/clamd";
/// The EICAR anti-virus test file (68 bytes), harmless by design.
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// The name clamd reports for [`EICAR`] (clamd adds `.UNOFFICIAL` to a local database's names).
pub const EICAR_SIGNATURE: &str = "Ferry.Test.EICAR.UNOFFICIAL";
/// A byte pattern the body signature finds anywhere in a file.
pub const PATTERN: &[u8] = b"ferry-clamd-test-pattern:7f3a9c51e0";
/// The name clamd reports for [`PATTERN`].
pub const PATTERN_SIGNATURE: &str = "Ferry.Test.Pattern.UNOFFICIAL";
/// What clamd is told to scan at most (its `StreamMaxLength`, `MaxFileSize`, `MaxScanSize`):
/// clamd scans at most 2 GiB - 1 of one file whatever it is told.
pub const MAX_BYTES: u64 = 2_000 * 1024 * 1024;

/// How long clamd may take to answer `PING` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running clamd.
#[derive(Debug)]
pub struct Clamd {
    child: Option<Child>,
    port: u16,
    socket: PathBuf,
}

impl Clamd {
    /// Whether Debian's clamd is installed here.
    pub fn installed() -> bool {
        Path::new(CLAMD).exists()
    }

    /// Starts clamd with its files in `dir` and the limits at [`MAX_BYTES`]; waits until it
    /// answers `PING`. Panics, saying what to install, when clamd is missing.
    pub async fn start(dir: &Path) -> Self {
        Self::start_with_limit(dir, MAX_BYTES).await
    }

    /// As [`Clamd::start`], but clamd scans at most `max_bytes` of a file (`MaxFileSize`,
    /// `MaxScanSize`; its stream limit stays at [`MAX_BYTES`]): a larger file is reported as
    /// `Heuristics.Limits.Exceeded…`.
    pub async fn start_with_limit(dir: &Path, max_bytes: u64) -> Self {
        assert!(
            Self::installed(),
            "{CLAMD} is missing: install Debian's clamav-daemon (no freshclam needed)"
        );
        let db = dir.join("clamav-db");
        std::fs::create_dir_all(&db).expect("database folder");
        std::fs::write(
            db.join("ferry-test.hdb"),
            format!("{}:{}:Ferry.Test.EICAR\n", md5_hex(EICAR), EICAR.len()),
        )
        .expect("hdb written");
        std::fs::write(db.join("ferry-test.ndb"), format!("Ferry.Test.Pattern:0:*:{}\n", hex(PATTERN)))
            .expect("ndb written");
        let port = free_port();
        let socket = dir.join("clamd.sock");
        let temp = dir.join("clamav-tmp");
        std::fs::create_dir_all(&temp).expect("temp folder");
        let config = format!(
            "Foreground yes\nDatabaseDirectory {db}\nTCPSocket {port}\nTCPAddr 127.0.0.1\nLocalSocket {socket}\n\
             TemporaryDirectory {temp}\nLogFile {log}\nStreamMaxLength {MAX_BYTES}\nMaxFileSize {max_bytes}\n\
             MaxScanSize {max_bytes}\nAlertExceedsMax yes\nMaxThreads 4\nSelfCheck 3600\n",
            db = db.display(),
            socket = socket.display(),
            temp = temp.display(),
            log = dir.join("clamd.log").display(),
        );
        let conf = dir.join("clamd.conf");
        std::fs::write(&conf, config).expect("clamd.conf written");
        let child = Command::new(CLAMD)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamd starts");
        let clamd = Self { child: Some(child), port, socket };
        let deadline = Instant::now() + START_TIMEOUT;
        while clamd.command(b"zPING\0").await.as_deref() != Some(b"PONG\0".as_slice()) {
            assert!(Instant::now() < deadline, "clamd did not answer PING within {START_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        clamd
    }

    /// `127.0.0.1:<port>`.
    pub fn tcp_address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// clamd's process id (`None` once stopped or killed).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The Unix socket clamd listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Sends one command (`zVERSION\0`, say) over TCP and returns the whole answer; `None` when
    /// clamd cannot be reached.
    pub async fn command(&self, command: &[u8]) -> Option<Vec<u8>> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
        stream.write_all(command).await.ok()?;
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await.ok()?.ok()?;
        Some(answer)
    }

    /// Stops clamd the way an operator does (SIGTERM), and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Kills clamd at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("address").port()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The MD5 of `data` (the `.hdb` format's first field), by `md5sum`, which every Debian has.
fn md5_hex(data: &[u8]) -> String {
    use std::io::Write as _;
    let mut child =
        Command::new("md5sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("md5sum runs");
    child.stdin.take().expect("stdin").write_all(data).expect("md5sum input");
    let out = child.wait_with_output().expect("md5sum output");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a digest").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eicar_signature_is_its_md5() {
        assert_eq!(EICAR.len(), 68);
        assert_eq!(md5_hex(EICAR), "44d88612fea8a8f36de82e1278abb02f");
        assert_eq!(hex(b"\x00\xffA"), "00ff41");
    }

    #[tokio::test]
    #[ignore = "needs clamd"]
    async fn clamd_finds_both_test_signatures_and_stops() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut clamd = Clamd::start(dir.path()).await;
        let version = clamd.command(b"zVERSION\0").await.expect("VERSION answered");
        assert!(version.starts_with(b"ClamAV "), "{version:?}");
        let scan = |data: Vec<u8>| {
            let mut request = b"zINSTREAM\0".to_vec();
            request.extend_from_slice(&u32::try_from(data.len()).expect("small").to_be_bytes());
            request.extend_from_slice(&data);
            request.extend_from_slice(&[0, 0, 0, 0]);
            request
        };
        let eicar = clamd.command(&scan(EICAR.to_vec())).await.expect("scanned");
        assert_eq!(String::from_utf8_lossy(&eicar), format!("stream: {EICAR_SIGNATURE} FOUND\0"));
        let mut body = vec![b'a'; 10_000];
        body.extend_from_slice(PATTERN);
        let pattern = clamd.command(&scan(body)).await.expect("scanned");
        assert_eq!(String::from_utf8_lossy(&pattern), format!("stream: {PATTERN_SIGNATURE} FOUND\0"));
        let clean = clamd.command(&scan(b"nothing to see".to_vec())).await.expect("scanned");
        assert_eq!(clean, b"stream: OK\0");
        clamd.stop();
        assert!(clamd.command(b"zPING\0").await.is_none(), "clamd still answers after SIGTERM");
    }
}
