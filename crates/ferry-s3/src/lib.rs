//! ferry-s3 lands one verified object in S3 (or any S3-compatible store) from a stream of bytes, or
//! leaves nothing at all.
//!
//! [`Uploader::upload`] is the way in (the shape of object_store's `WriteMultipart`): it takes an
//! [`ObjectWrite`] (key, [`ObjectMeta`], and the [`ferry_core::chunk::Chunker`] that cuts the body
//! into parts), the body as a `Stream` of `Bytes`, and an optional [`Gate`], and returns the
//! [`Stored`] object or an [`Error`]. Underneath, [`ObjectUpload`] is the upload of one object fed
//! part by part (`push_part`, `finish`, `abort`), an explicit state machine; [`Uploader::resume`]
//! continues one.
//!
//! - **Lazy multipart**: the multipart upload is created with the first full part; a file that fits
//!   in one part is a single `PutObject`.
//! - **Bounded and back-pressured**: at most [`UploadConfig::max_in_flight`] parts upload at once;
//!   while they are all busy the body is not read, so an upload holds at most
//!   `part size × (max_in_flight + 1)` bytes of parts ([`MemoryGauge`] counts them). Part bodies
//!   are the body's own `Bytes` slices, never copied. Uploads can share a [`PartBudget`], charged
//!   per buffered part ([`Uploader::with_budget`]).
//! - **Hashed once, beside the network**: each digest the [`ChecksumMode`] needs is computed once
//!   per byte: a part's CRC (or, in the `md5` mode, its MD5) on the part's own task (a blocking
//!   thread, parts in parallel), the whole object's MD5 and SHA-256 (each when asked; neither: no
//!   thread) on a thread of its own fed the body's frames; the upload task itself only cuts.
//! - **Verified**: in a CRC mode every part carries its CRC, which S3 verifies (no `Content-MD5`),
//!   and the completed object's FULL_OBJECT CRC is compared with the one combined from the parts;
//!   in the `md5` mode every part carries `Content-MD5`, each returned ETag is compared with it (a
//!   mismatch re-uploads that part) and so is the multipart ETag. An object that does not verify is
//!   deleted. The [`Gate`] sees the summary (whole-object digests included) before Complete.
//! - **Retried**: throttling, 5xx, timeouts and resets retry on a [`ferry_core::retry::Schedule`]
//!   (jittered, bounded; the SDK's own retries are off); fatal errors stop at once.
//! - **No debris**: any failure (S3's, the body's, the chunker's, the gate's) aborts the multipart
//!   upload and checks no parts remain, or deletes an object that may have landed; dropping an
//!   unfinished upload (a client went away) does the same in the background
//!   ([`Uploader::cleanups_settled`] waits for it).
//! - **Tapped**: [`Uploader::upload_tapped`] hands the same part `Bytes` to a [`Tap`] (a malware
//!   scanner), at the pace of the slower reader, and awaits its verdict before completing.
//! - **Resumable**: [`Uploader::list_parts`] and [`Uploader::resume`] continue an existing upload;
//!   [`Uploader::list_uploads`] finds leftovers for a reaper.
//!
//! # Example
//!
//! ```no_run
//! use bytes::Bytes;
//! use ferry_core::chunk::Chunker;
//! use ferry_core::plan::{PlanLimits, plan_parts};
//! use ferry_s3::{Gate, ObjectMeta, ObjectWrite, S3Config, UploadConfig, Uploader, build_client};
//!
//! # async fn demo(frames: Vec<Bytes>, declared_md5: ferry_core::checksum::Md5) -> Result<(), Box<dyn std::error::Error>> {
//! let client = build_client(&S3Config::compatible("http://127.0.0.1:4566", "test", "test")).await;
//! let config = UploadConfig::default();
//! let uploader = Uploader::new(client, "uploads", config.clone());
//!
//! let plan = plan_parts(None, &PlanLimits::default())?;
//! let write = ObjectWrite {
//!     key: "incoming/report.pdf".into(),
//!     meta: ObjectMeta { content_type: Some("application/pdf".into()), ..ObjectMeta::default() },
//!     chunker: Chunker::new(plan, config.checksum_mode.chunker_options(false)),
//!     reservation: None,
//! };
//! let body = futures::stream::iter(frames.into_iter().map(Ok::<_, std::io::Error>));
//! // Asked before Complete: a refusal aborts the upload and comes back as `Error::Rejected`.
//! let gate: Gate = Box::new(move |summary| {
//!     if summary.md5 == Some(declared_md5) { Ok(()) } else { Err("Content-MD5 does not match".into()) }
//! });
//! let stored = uploader.upload(write, body, Some(gate)).await?;
//! println!("stored {} bytes as {} (ETag {})", stored.object.size, stored.object.key, stored.object.etag);
//! # Ok(()) }
//! ```

mod attempt;
mod client;
mod conditional;
mod config;
mod error;
mod listing;
mod memory;
mod objects;
pub mod resumable;
mod rope;
mod tap;
mod upload;
mod write;

/// The AWS SDK's S3 client, re-exported so callers need no direct dependency on `aws-sdk-s3`.
pub use aws_sdk_s3::Client as SdkClient;
pub use client::build_client;
pub use config::{ChecksumMode, S3Config, StaticCredentials, UploadConfig};
pub use error::{BoxError, Error, Redacted};
pub use listing::PendingUpload;
pub use memory::{MemoryGauge, PartBudget};
pub use tap::Tap;
pub use upload::{ObjectMeta, ObjectUpload, UploadedObject};
pub use write::{Gate, ObjectWrite, Stored};

use ferry_core::checksum::{Crc, Md5};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::Notify;

/// A part S3 holds for a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    /// Part number.
    pub number: u32,
    /// ETag S3 returned (unquoted).
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// The part's CRC, when known (ferry computed it; listings do not carry it).
    pub crc: Option<Crc>,
    /// The part's MD5, when ferry computed it (the `md5` checksum mode; listings do not carry it).
    pub md5: Option<Md5>,
}

/// Counters of what the uploader did.
#[derive(Debug, Default)]
pub struct UploaderStats {
    part_retries: AtomicU64,
    aborted: AtomicU64,
}

impl UploaderStats {
    /// Extra attempts made for parts (a part uploaded at the third try counts 2).
    pub fn part_retries(&self) -> u64 {
        self.part_retries.load(Ordering::Relaxed)
    }

    /// Multipart uploads aborted (failures, cancellations, explicit aborts).
    pub fn aborted(&self) -> u64 {
        self.aborted.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
struct Cleanups {
    pending: AtomicUsize,
    idle: Notify,
}

struct CleanupGuard(Arc<Cleanups>);

impl Cleanups {
    fn start(self: &Arc<Self>) -> CleanupGuard {
        self.pending.fetch_add(1, Ordering::AcqRel);
        CleanupGuard(Arc::clone(self))
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[derive(Debug)]
struct Inner {
    client: aws_sdk_s3::Client,
    bucket: String,
    config: UploadConfig,
    memory: Arc<MemoryGauge>,
    budget: Option<PartBudget>,
    stats: UploaderStats,
    cleanups: Arc<Cleanups>,
    /// Multipart uploads this process is working on (the reaper leaves them alone).
    owned: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Inner {
    fn own(&self, upload_id: &str) {
        self.owned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(upload_id.to_owned());
    }

    fn disown(&self, upload_id: &str) {
        self.owned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(upload_id);
    }

    fn owns(&self, upload_id: &str) -> bool {
        self.owned.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(upload_id)
    }
}

/// Uploads objects into one bucket. Cheap to clone; clones share the memory gauge, the statistics
/// and the background cleanups.
#[derive(Debug, Clone)]
pub struct Uploader {
    inner: Arc<Inner>,
}

impl Uploader {
    /// An uploader for `bucket` with its own [`MemoryGauge`].
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>, config: UploadConfig) -> Self {
        Self::with_memory_gauge(client, bucket, config, MemoryGauge::new())
    }

    /// An uploader counting its part bytes in a gauge shared with others.
    pub fn with_memory_gauge(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        config: UploadConfig,
        memory: Arc<MemoryGauge>,
    ) -> Self {
        let inner = Inner {
            client,
            bucket: bucket.into(),
            config,
            memory,
            budget: None,
            stats: UploaderStats::default(),
            cleanups: Arc::default(),
            owned: std::sync::Mutex::default(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// An uploader whose uploads share `budget` part by part (see [`PartBudget`]).
    pub fn with_budget(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        config: UploadConfig,
        budget: PartBudget,
    ) -> Self {
        let mut uploader = Self::new(client, bucket, config);
        if let Some(inner) = Arc::get_mut(&mut uploader.inner) {
            inner.budget = Some(budget);
        }
        uploader
    }

    /// The budget uploads share, if any.
    pub fn budget(&self) -> Option<&PartBudget> {
        self.inner.budget.as_ref()
    }

    /// Starts an upload to `key`. Nothing is sent until the first full part, or `finish`.
    pub fn begin(&self, key: impl Into<String>, meta: ObjectMeta) -> ObjectUpload {
        ObjectUpload::new(Arc::clone(&self.inner), key.into(), meta)
    }

    /// Continues the existing multipart upload `upload_id` of `key`: parts pushed again whose
    /// number, size and MD5 match a stored part are not sent again.
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`] if S3 does not know the upload, or a listing failure.
    pub async fn resume(
        &self,
        key: impl Into<String>,
        upload_id: impl Into<String>,
        meta: ObjectMeta,
    ) -> Result<ObjectUpload, Error> {
        let (key, upload_id) = (key.into(), upload_id.into());
        let existing = listing::list_parts(&self.inner, &key, &upload_id).await?;
        Ok(ObjectUpload::resumed(Arc::clone(&self.inner), key, meta, upload_id, existing))
    }

    /// The parts S3 holds for `upload_id`, in order (pages past 1,000).
    ///
    /// # Errors
    /// [`Error::NoSuchUpload`] if S3 does not know the upload, or a listing failure.
    pub async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<UploadedPart>, Error> {
        listing::list_parts(&self.inner, key, upload_id).await
    }

    /// The multipart uploads in progress under `prefix` (pages past 1,000).
    ///
    /// # Errors
    /// A listing failure once retries are spent.
    pub async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, Error> {
        listing::list_uploads(&self.inner, prefix).await
    }

    /// Aborts `upload_id` of `key` (a reaper's tool); an upload already gone counts as aborted.
    ///
    /// # Errors
    /// An abort failure once retries are spent.
    pub async fn abort(&self, key: &str, upload_id: &str) -> Result<(), Error> {
        listing::abort(&self.inner, key, upload_id).await?;
        self.inner.stats.aborted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Streams the object at `key` back: its length and its bytes (one GetObject, never held whole).
    ///
    /// # Errors
    /// When the object cannot be read once retries are spent.
    pub async fn open(
        &self,
        key: &str,
    ) -> Result<(u64, impl futures::Stream<Item = Result<bytes::Bytes, BoxError>> + Send + use<>), Error>
    {
        objects::open(&self.inner, key).await
    }

    /// A presigned GET of `key` valid for `ttl`, with `Content-Disposition` overridden if given.
    ///
    /// # Errors
    /// When the request cannot be presigned (credentials unavailable, `ttl` over 7 days).
    pub async fn presign_get(
        &self,
        key: &str,
        ttl: std::time::Duration,
        disposition: Option<&str>,
    ) -> Result<String, Error> {
        objects::presign_get(&self.inner, key, ttl, disposition).await
    }

    /// Deletes the object at `key` (absent counts as deleted).
    ///
    /// # Errors
    /// When S3 refuses once retries are spent.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        objects::delete(&self.inner, key).await
    }

    /// Copies the object at `from` to `to` in the bucket (one CopyObject, so at most 5 GiB), its
    /// metadata with it: for keeping a refused file apart (a quarantine).
    ///
    /// # Errors
    /// When S3 refuses once retries are spent.
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), Error> {
        objects::copy(&self.inner, from, to).await
    }

    /// Whether the bucket answers (one HeadBucket, no retries), for readiness probes.
    ///
    /// # Errors
    /// What S3 answered.
    pub async fn check_bucket(&self) -> Result<(), Error> {
        objects::check_bucket(&self.inner).await
    }

    /// Aborts the multipart uploads under `prefix` begun at least `max_age` before `now` that this
    /// uploader is not working on: the debris of a crashed process. Returns what it aborted. Uploads
    /// whose start S3 does not report are left alone.
    ///
    /// # Errors
    /// When listing fails; a failed abort is logged and skipped (the next run tries again).
    pub async fn reap_stale(
        &self,
        prefix: &str,
        max_age: std::time::Duration,
        now: std::time::SystemTime,
    ) -> Result<Vec<PendingUpload>, Error> {
        let mut reaped = Vec::new();
        for upload in listing::list_uploads(&self.inner, prefix).await? {
            let old_enough =
                upload.initiated.is_some_and(|t| now.duration_since(t).is_ok_and(|age| age >= max_age));
            if !old_enough || self.inner.owns(&upload.upload_id) {
                continue;
            }
            match listing::abort(&self.inner, &upload.key, &upload.upload_id).await {
                Ok(()) => {
                    tracing::info!(key = %upload.key, upload_id = %upload.upload_id, "reaped a stale multipart upload");
                    reaped.push(upload);
                }
                Err(error) => {
                    tracing::warn!(key = %upload.key, %error, "could not reap a stale multipart upload")
                }
            }
        }
        Ok(reaped)
    }

    /// Waits until every background cleanup (aborts of dropped uploads) has finished.
    pub async fn cleanups_settled(&self) {
        loop {
            let idle = self.inner.cleanups.idle.notified();
            if self.inner.cleanups.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Part bytes held by this uploader's uploads.
    pub fn memory(&self) -> &Arc<MemoryGauge> {
        &self.inner.memory
    }

    /// What the uploader did so far.
    pub fn stats(&self) -> &UploaderStats {
        &self.inner.stats
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The upload configuration.
    pub fn config(&self) -> &UploadConfig {
        &self.inner.config
    }

    /// The underlying SDK client.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.inner.client
    }
}
