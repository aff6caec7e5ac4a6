//! The S3 servers the bench uploads to: s3s-fs in this process (as `ferry dev` embeds it) and
//! LocalStack's S3 (strict, with flexible checksums), each with a client for checking and deleting
//! what was stored and a way to read the server's CPU time.

use crate::procfs;
use ferry_s3::{S3Config, SdkClient as Client, build_client};
use ferry_sandbox::s3::{ACCESS_KEY, LocalS3, SECRET_KEY};
use std::path::Path;
use std::time::Duration;

/// The bucket the bench stores into (created when missing).
pub(crate) const BUCKET: &str = "ferry-bench";

/// One S3 server under test.
pub(crate) struct Server {
    /// Its name in the tables.
    pub(crate) name: String,
    /// `http://127.0.0.1:PORT`.
    pub(crate) endpoint: String,
    /// Credentials it accepts.
    pub(crate) access_key: String,
    /// Credentials it accepts.
    pub(crate) secret_key: String,
    /// Whether it verifies flexible checksums (S3's CRCs): the CRC modes run only there.
    pub(crate) flexible_checksums: bool,
    /// The process whose CPU time is the server's; s3s-fs runs in the bench's own process, so its
    /// figure also holds the bench's light work (sampling `/proc` every 100 ms).
    pub(crate) pid: Option<u32>,
    /// For checking and deleting objects.
    pub(crate) client: Client,
    _store: Option<LocalS3>,
}

impl Server {
    /// s3s-fs in this process, its data under `dir`.
    pub(crate) async fn s3s_fs(dir: &Path) -> Self {
        let store =
            LocalS3::start(dir, "127.0.0.1:0".parse().expect("address")).await.expect("s3s-fs starts");
        store.create_bucket(BUCKET).expect("bucket");
        let endpoint = store.endpoint();
        let client = build_client(&S3Config::compatible(&endpoint, ACCESS_KEY, SECRET_KEY)).await;
        Self {
            name: "s3s-fs 0.14 (in the bench's process)".into(),
            endpoint,
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            flexible_checksums: false,
            pid: Some(std::process::id()),
            client,
            _store: Some(store),
        }
    }

    /// LocalStack's S3 at `endpoint` (its process found by the port it listens on).
    pub(crate) async fn localstack(endpoint: &str) -> Self {
        let client = build_client(&S3Config::compatible(endpoint, "test", "test")).await;
        // An existing bucket (a re-run) answers an error that changes nothing.
        let _ = client.create_bucket().bucket(BUCKET).send().await;
        let port = url::Url::parse(endpoint).ok().and_then(|u| u.port_or_known_default());
        let pid = port.and_then(procfs::listener_pid);
        if pid.is_none() {
            eprintln!(
                "bench: no process found listening for {endpoint}: the S3 server's CPU is not measured"
            );
        }
        Self {
            name: "LocalStack 4.4 S3".into(),
            endpoint: endpoint.trim_end_matches('/').into(),
            access_key: "test".into(),
            secret_key: "test".into(),
            flexible_checksums: true,
            pid,
            client,
            _store: None,
        }
    }

    /// The server's CPU time so far (zero when its process is unknown).
    pub(crate) fn cpu(&self) -> Duration {
        self.pid.map_or(Duration::ZERO, procfs::cpu_time)
    }

    /// The stored object's size, if it is there.
    pub(crate) async fn size_of(&self, key: &str) -> Option<u64> {
        let head = self.client.head_object().bucket(BUCKET).key(key).send().await.ok()?;
        head.content_length().and_then(|l| u64::try_from(l).ok())
    }

    /// Deletes `key` (whether or not it is there).
    pub(crate) async fn remove(&self, key: &str) {
        let _ = self.client.delete_object().bucket(BUCKET).key(key).send().await;
    }

    /// Deletes the bucket once the bench is done with it (LocalStack's outlives the bench).
    pub(crate) async fn drop_bucket(&self) {
        if self._store.is_none() {
            let _ = self.client.delete_bucket().bucket(BUCKET).send().await;
        }
    }
}
