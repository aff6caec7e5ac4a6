//! Resumable uploads whose whole state lives in the bucket, so any process can serve any request.
//!
//! - The multipart upload holds the full parts; a small **state object** (`<prefix><id>/state`,
//!   [`ResumableState`]) holds the plan, the committed parts, the committed offset, the whole-file
//!   hash state at the last part boundary ([`HashCarry`]), the caller's own fields and the lease;
//!   bytes past the last full part wait in a **tail object** until a later request fills the part.
//! - The state object moves only by **conditional writes**: created with `If-None-Match: *`,
//!   replaced with `If-Match: <its ETag>`. A writer whose ETag is stale gets
//!   [`ResumableError::Moved`] and has changed nothing.
//! - A request that appends holds a **lease** (holder id and expiry in the state object), renewed
//!   by conditional writes while bytes flow ([`Held::renew_if_due`]); another request meanwhile
//!   gets [`ResumableError::Locked`]. A lease that stops being renewed expires and may be taken
//!   over.
//! - An append ([`ResumableStore::append`], in `append`) uploads the parts it fills under part
//!   numbers that are not yet committed, writes its leftover bytes to a fresh tail object, and
//!   commits everything with one conditional write: a request that fails (a cut connection, a
//!   checksum the caller refuses, a lost lease) leaves the committed state as it was.
//! - The last byte completes and verifies the object exactly as [`Uploader::upload`] does (the
//!   multipart ETag or the FULL_OBJECT CRC combined from the part CRCs, the whole-file digests
//!   from the carried hash); a completion cut short is finished by the next request.

mod append;
mod digest;
mod state;

pub use append::{Appended, Check};
pub use digest::{DamagedHashState, HashCarry};
pub use state::{Lease, Phase, ResumableState, StatePart, StoredObject, Tail};

use crate::attempt::{AttemptError, FailureKind, with_retries};
use crate::error::{BoxError, Error};
use crate::{PendingUpload, Uploader};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use std::time::{Duration, SystemTime};

/// Why a resumable operation did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumableError {
    /// No upload with that id (never created, or deleted).
    #[error("no such resumable upload")]
    NotFound,
    /// An upload with that id exists already.
    #[error("the resumable upload exists already")]
    Exists,
    /// Another request holds the lease until `until_ms`.
    #[error("another request holds the upload")]
    Locked {
        /// Unix milliseconds when that lease expires unless renewed.
        until_ms: u64,
    },
    /// The state object changed since it was read: another request moved the upload (or took an
    /// expired lease over). Nothing of this request was committed.
    #[error("the upload was moved by another request")]
    Moved,
    /// The request's offset is not the committed one.
    #[error("the upload is at offset {committed}, not {requested}")]
    OffsetMismatch {
        /// The committed offset.
        committed: u64,
        /// The offset the request named.
        requested: u64,
    },
    /// The bytes would take the upload past its length (or past the maximum).
    #[error("the upload may carry at most {limit} bytes")]
    TooLong {
        /// The limit.
        limit: u64,
    },
    /// The upload is finished (or failed) and takes no more bytes.
    #[error("the upload takes no more bytes")]
    Closed,
    /// The body failed (the caller's own error, boxed).
    #[error("the body failed: {0}")]
    Body(#[source] BoxError),
    /// The caller's check refused the request's bytes; nothing of them was kept.
    #[error("the bytes were refused: {0}")]
    Rejected(#[source] BoxError),
    /// The state object does not parse.
    #[error("the state object is damaged: {0}")]
    Damaged(String),
    /// S3 failed.
    #[error(transparent)]
    S3(#[from] Error),
}

/// A state object as read, with the ETag a conditional write must name.
#[derive(Debug, Clone)]
pub struct Versioned {
    /// The state.
    pub state: ResumableState,
    /// Its ETag.
    pub etag: String,
}

/// The resumable uploads of one bucket: state objects under `prefix`.
#[derive(Debug, Clone)]
pub struct ResumableStore {
    uploader: Uploader,
    prefix: String,
}

/// A leased upload: the request that holds it may append, finish, replace or release it.
#[derive(Debug)]
pub struct Held {
    /// The upload id.
    pub id: String,
    /// The state as last written by this holder.
    pub state: ResumableState,
    /// The state as last written: what a failed request goes back to.
    saved: ResumableState,
    etag: String,
    holder: String,
    lease: Duration,
    renewed: std::time::Instant,
    /// The memory-budget share of the part being filled (see [`Held::reserve`]).
    filling: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl ResumableStore {
    /// Resumable uploads through `uploader`, their state objects under `prefix` (which must not be
    /// a prefix of any final object's key).
    pub fn new(uploader: Uploader, prefix: impl Into<String>) -> Self {
        Self { uploader, prefix: prefix.into() }
    }

    /// The uploader.
    pub fn uploader(&self) -> &Uploader {
        &self.uploader
    }

    fn state_key(&self, id: &str) -> String {
        format!("{}{id}/state", self.prefix)
    }

    /// A fresh tail object key for `id`.
    fn tail_key(&self, id: &str) -> String {
        format!("{}{id}/tail-{:016x}", self.prefix, rand::random::<u64>())
    }

    /// Creates upload `id` with `state` (`If-None-Match: *`); returns its ETag.
    ///
    /// # Errors
    /// [`ResumableError::Exists`], or S3's failure.
    pub async fn create(&self, id: &str, state: &ResumableState) -> Result<String, ResumableError> {
        self.put_state(id, state, Condition::Absent).await
    }

    /// Reads upload `id`.
    ///
    /// # Errors
    /// [`ResumableError::NotFound`], [`ResumableError::Damaged`], or S3's failure.
    pub async fn load(&self, id: &str) -> Result<Versioned, ResumableError> {
        let ((body, etag), _) = match self.get_object(&self.state_key(id)).await {
            Err(error) if is_not_found(&error) => return Err(ResumableError::NotFound),
            other => other?,
        };
        let state = serde_json::from_slice(&body).map_err(|e| ResumableError::Damaged(e.to_string()))?;
        Ok(Versioned { state, etag })
    }

    /// Replaces upload `id`'s state with `state` if its ETag is still `etag`; returns the new ETag.
    ///
    /// # Errors
    /// [`ResumableError::Moved`] when it changed meanwhile, or S3's failure.
    pub async fn replace(
        &self,
        id: &str,
        state: &ResumableState,
        etag: &str,
    ) -> Result<String, ResumableError> {
        self.put_state(id, state, Condition::Matches(etag)).await
    }

    async fn put_state(
        &self,
        id: &str,
        state: &ResumableState,
        condition: Condition<'_>,
    ) -> Result<String, ResumableError> {
        let inner = &self.uploader.inner;
        let key = self.state_key(id);
        let body =
            Bytes::from(serde_json::to_vec(state).map_err(|e| ResumableError::Damaged(e.to_string()))?);
        let result = with_retries(&inner.config.retry, "PutObject", &inner.bucket, |_| {
            let req = inner
                .client
                .put_object()
                .bucket(&inner.bucket)
                .key(&key)
                .content_type("application/json")
                .body(ByteStream::from(body.clone()));
            let req = match condition {
                Condition::Absent => req.if_none_match("*"),
                Condition::Matches(etag) => req.if_match(etag),
            };
            async move { req.send().await.map_err(AttemptError::from) }
        })
        .await;
        match result {
            Ok((out, _)) => Ok(out.e_tag().unwrap_or_default().to_owned()),
            Err(error) if crate::conditional::is_already_there(&error) => Err(match condition {
                Condition::Absent => ResumableError::Exists,
                Condition::Matches(_) => ResumableError::Moved,
            }),
            // An If-Match on a deleted object: gone under us.
            Err(error) if is_not_found(&error) => Err(ResumableError::NotFound),
            Err(error) => Err(error.into()),
        }
    }

    /// Takes the lease on upload `id` for `lease` as `holder`: an unexpired lease of another holder
    /// is [`ResumableError::Locked`]; an expired one is taken over.
    ///
    /// # Errors
    /// [`ResumableError::NotFound`], [`ResumableError::Locked`], [`ResumableError::Moved`] when
    /// another request took it between the read and the write, or S3's failure.
    pub async fn acquire(&self, id: &str, holder: &str, lease: Duration) -> Result<Held, ResumableError> {
        let Versioned { mut state, etag } = self.load(id).await?;
        let now = unix_ms(SystemTime::now());
        if state.locked_for(holder, now) {
            let until_ms = state.lease.as_ref().map_or(now, |l| l.until_ms);
            return Err(ResumableError::Locked { until_ms });
        }
        state.lease = Some(Lease { holder: holder.to_owned(), until_ms: now + lease.as_millis() as u64 });
        let etag = self.replace(id, &state, &etag).await.map_err(|e| match e {
            ResumableError::Moved => ResumableError::Locked { until_ms: now + lease.as_millis() as u64 },
            other => other,
        })?;
        let renewed = std::time::Instant::now();
        let saved = state.clone();
        let holder = holder.to_owned();
        Ok(Held { id: id.to_owned(), state, saved, etag, holder, lease, renewed, filling: None })
    }

    /// Writes `held.state` (the holder's changes), keeping the lease.
    ///
    /// # Errors
    /// [`ResumableError::Moved`] when the lease was lost, or S3's failure.
    pub async fn save(&self, held: &mut Held) -> Result<(), ResumableError> {
        held.state.lease = Some(Lease { holder: held.holder.clone(), until_ms: held.lease_until() });
        held.etag = self.replace(&held.id, &held.state, &held.etag).await?;
        held.renewed = std::time::Instant::now();
        held.saved = held.state.clone();
        Ok(())
    }

    /// Renews the lease when a third of it has passed since the last write.
    ///
    /// # Errors
    /// [`ResumableError::Moved`] when the lease was lost meanwhile, or S3's failure.
    pub async fn renew_if_due(&self, held: &mut Held) -> Result<(), ResumableError> {
        if held.renewed.elapsed() >= held.lease / 3 {
            self.save(held).await?;
        }
        Ok(())
    }

    /// Gives the lease up, writing `held.state`.
    ///
    /// # Errors
    /// [`ResumableError::Moved`] when the lease was lost, or S3's failure.
    pub async fn release(&self, mut held: Held) -> Result<ResumableState, ResumableError> {
        held.state.lease = None;
        held.etag = self.replace(&held.id, &held.state, &held.etag).await?;
        Ok(held.state)
    }

    /// Removes upload `id` and all it holds but a stored object: every multipart upload of its
    /// key, its tail objects and its state object. An upload already gone counts as removed.
    ///
    /// # Errors
    /// S3's failure (what is left, the reaper removes later).
    pub async fn remove(&self, id: &str, state: &ResumableState) -> Result<(), ResumableError> {
        let uploader = &self.uploader;
        if !matches!(state.phase, Phase::Stored(_)) {
            for pending in uploader.list_uploads(&state.key).await? {
                if pending.key == state.key {
                    uploader.abort(&pending.key, &pending.upload_id).await?;
                }
            }
        }
        for key in self.list_keys(&format!("{}{id}/", self.prefix)).await? {
            if !key.ends_with("/state") {
                uploader.delete(&key).await?;
            }
        }
        uploader.delete(&self.state_key(id)).await?;
        Ok(())
    }

    /// Deletes the object at `key` if it is not the committed tail (a tail this request wrote and
    /// did not commit). Failures are logged: the upload's removal deletes it at the latest.
    async fn drop_tail(&self, key: &str) {
        if let Err(error) = self.uploader.delete(key).await {
            tracing::warn!(%key, %error, "could not delete an uncommitted tail object");
        }
    }

    /// The ids of every resumable upload (pages past 1,000).
    ///
    /// # Errors
    /// A listing failure once retries are spent.
    pub async fn ids(&self) -> Result<Vec<String>, ResumableError> {
        let keys = self.list_keys(&self.prefix).await?;
        Ok(keys
            .iter()
            .filter_map(|k| k.strip_prefix(&self.prefix)?.strip_suffix("/state"))
            .map(str::to_owned)
            .collect())
    }

    /// Removes the uploads whose expiry has passed at `now` and that no unexpired lease holds;
    /// returns their ids. A stored object is kept (only its state goes).
    ///
    /// # Errors
    /// When listing fails; a failed removal is logged and skipped.
    pub async fn reap_expired(&self, now: SystemTime) -> Result<Vec<String>, ResumableError> {
        let now_s = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut reaped = Vec::new();
        for id in self.ids().await? {
            let Ok(Versioned { state, .. }) = self.load(&id).await else { continue };
            if state.expires > now_s || state.locked_for("", unix_ms(now)) {
                continue;
            }
            match self.remove(&id, &state).await {
                Ok(()) => reaped.push(id),
                Err(error) => tracing::warn!(%id, %error, "could not remove an expired resumable upload"),
            }
        }
        Ok(reaped)
    }

    /// Whether upload `id` has a state object.
    ///
    /// # Errors
    /// S3's failure.
    pub async fn exists(&self, id: &str) -> Result<bool, ResumableError> {
        let inner = &self.uploader.inner;
        let key = self.state_key(id);
        let result = with_retries(&inner.config.retry, "HeadObject", &inner.bucket, |_| async {
            inner
                .client
                .head_object()
                .bucket(&inner.bucket)
                .key(&key)
                .send()
                .await
                .map_err(AttemptError::from)
        })
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// [`Uploader::reap_stale`] that leaves alone the multipart uploads of live resumable uploads
    /// (`id_of` names the resumable id a key would belong to): those end with their expiry.
    ///
    /// # Errors
    /// When listing fails; a failed abort is logged and skipped.
    pub async fn reap_stale_except_resumable(
        &self,
        prefix: &str,
        max_age: Duration,
        now: SystemTime,
        id_of: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<PendingUpload>, ResumableError> {
        let uploader = &self.uploader;
        let mut reaped = Vec::new();
        for upload in uploader.list_uploads(prefix).await? {
            let old_enough =
                upload.initiated.is_some_and(|t| now.duration_since(t).is_ok_and(|age| age >= max_age));
            if !old_enough || uploader.inner.owns(&upload.upload_id) {
                continue;
            }
            if let Some(id) = id_of(&upload.key)
                && self.exists(&id).await.unwrap_or(true)
            {
                continue;
            }
            match uploader.abort(&upload.key, &upload.upload_id).await {
                Ok(()) => reaped.push(upload),
                Err(error) => {
                    tracing::warn!(key = %upload.key, %error, "could not reap a stale multipart upload")
                }
            }
        }
        Ok(reaped)
    }

    /// The bytes and ETag of the small object at `key`.
    async fn get_object(&self, key: &str) -> Result<((Bytes, String), u32), Error> {
        let inner = &self.uploader.inner;
        with_retries(&inner.config.retry, "GetObject", &inner.bucket, |_| async {
            let out = inner.client.get_object().bucket(&inner.bucket).key(key).send().await;
            let out = out.map_err(AttemptError::from)?;
            let etag = out.e_tag().unwrap_or_default().to_owned();
            let body = out.body.collect().await.map_err(|e| AttemptError {
                status: None,
                code: None,
                message: e.to_string(),
                kind: FailureKind::Reset,
                retry_after: None,
                source: Some(Box::new(e)),
            })?;
            Ok((body.into_bytes(), etag))
        })
        .await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let inner = &self.uploader.inner;
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (out, _) = with_retries(&inner.config.retry, "ListObjectsV2", &inner.bucket, |_| {
                let req = inner
                    .client
                    .list_objects_v2()
                    .bucket(&inner.bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone());
                async move { req.send().await.map_err(AttemptError::from) }
            })
            .await?;
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
            match out.next_continuation_token() {
                Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(keys),
            }
        }
    }
}

impl Held {
    fn lease_until(&self) -> u64 {
        unix_ms(SystemTime::now()) + self.lease.as_millis() as u64
    }

    /// Hands over the first part's share of the uploader's [`PartBudget`](crate::PartBudget), taken
    /// by the caller when it admitted the request: the next append fills its first part under it,
    /// then waits for each next part's share before reading on (as [`Uploader::upload`] does).
    pub fn reserve(&mut self, share: tokio::sync::OwnedSemaphorePermit) {
        self.filling = Some(share);
    }

    /// The lease the next writes take (a request about to do something long, such as delivering,
    /// takes a longer one rather than leaving it to expire while it works).
    pub fn set_lease(&mut self, lease: Duration) {
        self.lease = lease;
    }

    /// Forgets the changes made since the last write (a failed request's).
    pub fn revert(&mut self) {
        self.state = self.saved.clone();
    }

    /// The holder's id.
    pub fn holder(&self) -> &str {
        &self.holder
    }
}

#[derive(Debug, Clone, Copy)]
enum Condition<'a> {
    Absent,
    Matches(&'a str),
}

fn is_not_found(error: &Error) -> bool {
    matches!(error, Error::Service { status: Some(404), .. })
        || matches!(error, Error::Service { code: Some(code), .. } if code == "NoSuchKey" || code == "NotFound")
}
