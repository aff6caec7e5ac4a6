//! Shared test plumbing: servers, clients, and a driver that feeds bytes through the chunker into
//! an upload.

use aws_sdk_s3::Client;
use bytes::Bytes;
use ferry_core::chunk::Chunker;
use ferry_core::plan::{MIB, PlanLimits, plan_parts};
use ferry_core::retry::RetryPolicy;
use ferry_s3::{
    ChecksumMode, Error, ObjectMeta, S3Config, UploadConfig, UploadedObject, Uploader, build_client,
};
use ferry_sandbox::s3::{ACCESS_KEY, LocalS3, SECRET_KEY};
use std::time::Duration;

pub(crate) const PART: u64 = 5 * MIB;

/// Deterministic pseudo-random bytes.
pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    ferry_testkit::data::pseudo_random(b"", len, seed)
}

/// A retry policy fast enough for tests.
pub(crate) fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_elapsed: Duration::from_secs(30),
    }
}

pub(crate) fn config(mode: ChecksumMode) -> UploadConfig {
    UploadConfig { checksum_mode: mode, max_in_flight: 4, retry: quick_retries(), opaque_etags: false }
}

/// An s3s-fs server in a temporary folder, with one bucket.
pub(crate) struct Fs {
    pub(crate) server: LocalS3,
    _dir: tempfile::TempDir,
}

pub(crate) const BUCKET: &str = "ferry-test";

impl Fs {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = LocalS3::start(dir.path(), "127.0.0.1:0".parse().unwrap()).await.expect("s3s-fs starts");
        server.create_bucket(BUCKET).expect("bucket");
        Self { server, _dir: dir }
    }

    pub(crate) async fn client_via(&self, endpoint: &str) -> Client {
        build_client(&S3Config::compatible(endpoint, ACCESS_KEY, SECRET_KEY)).await
    }

    pub(crate) async fn client(&self) -> Client {
        self.client_via(&self.server.endpoint()).await
    }
}

/// The LocalStack endpoint for the strict tests (`#[ignore = "needs LocalStack"]`); panics, saying
/// how to start one, when there is none.
pub(crate) use ferry_testkit::localstack::endpoint as localstack;

/// A client for LocalStack at `endpoint`, and a fresh bucket.
pub(crate) async fn localstack_bucket(endpoint: &str, name: &str) -> (Client, String) {
    let client = build_client(&S3Config::compatible(endpoint, "test", "test")).await;
    let bucket = format!("{name}-{}", std::process::id());
    let _ = client.create_bucket().bucket(&bucket).send().await;
    (client, bucket)
}

/// Feeds `data` in `frame`-byte frames through a chunker (5 MiB parts) into an upload of `key`.
pub(crate) async fn upload(
    uploader: &Uploader,
    key: &str,
    data: &[u8],
    frame: usize,
) -> Result<UploadedObject, Error> {
    let limits = PlanLimits { preferred_part_size: PART, max_file_size: 1 << 40 };
    let plan = plan_parts(Some(data.len() as u64), &limits).expect("plan");
    let mut chunker = Chunker::new(plan, uploader.config().checksum_mode.inline_chunker_options(false));
    let mut upload = uploader.begin(
        key,
        ObjectMeta { content_type: Some("application/octet-stream".into()), ..ObjectMeta::default() },
    );
    let data = Bytes::copy_from_slice(data);
    for at in (0..data.len()).step_by(frame.max(1)) {
        for part in chunker.push(data.slice(at..(at + frame).min(data.len()))).expect("within plan") {
            upload.push_part(part).await?;
        }
    }
    let (last, summary) = chunker.finish().expect("complete input");
    upload.finish(last, &summary).await
}

/// The object's bytes and ETag, read back.
pub(crate) async fn read_back(client: &Client, bucket: &str, key: &str) -> (Vec<u8>, String) {
    let out = client.get_object().bucket(bucket).key(key).send().await.expect("object exists");
    let etag = out.e_tag().unwrap_or_default().trim_matches('"').to_owned();
    let body = out.body.collect().await.expect("body").into_bytes().to_vec();
    (body, etag)
}

/// Whether the object exists.
pub(crate) async fn exists(client: &Client, bucket: &str, key: &str) -> bool {
    client.head_object().bucket(bucket).key(key).send().await.is_ok()
}

/// `data` as a body of `frame`-byte frames.
pub(crate) fn frames(
    data: &Bytes,
    frame: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + use<> {
    let data = data.clone();
    let cuts: Vec<Bytes> =
        (0..data.len()).step_by(frame).map(|at| data.slice(at..(at + frame).min(data.len()))).collect();
    futures::stream::iter(cuts.into_iter().map(Ok))
}

/// Asserts that nothing of `key` is left once `uploader`'s cleanups settled: no multipart upload,
/// no part, no object.
pub(crate) async fn assert_no_upload_or_object(fs: &Fs, uploader: &Uploader, key: &str) {
    uploader.cleanups_settled().await;
    assert_eq!(fs.server.pending_multipart(), (0, 0), "multipart uploads or parts left behind");
    assert!(!exists(&fs.client().await, BUCKET, key).await, "{key} must not exist");
}
