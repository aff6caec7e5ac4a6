//! One object's upload: lazily created multipart upload, bounded parallel parts with back-pressure,
//! verification of every ETag and checksum, and abort on any failure or on drop.

use crate::attempt::{AttemptError, with_retries};
use crate::config::ChecksumMode;
use crate::error::Error;
use crate::memory::HeldBytes;
use crate::rope::RopeBody;
use crate::{Inner, UploadedPart};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use ferry_core::checksum::{Crc, CrcAlgorithm, Md5};
use ferry_core::chunk::{ObjectSummary, Part};
use ferry_core::plan::MIN_PART_SIZE;
use ferry_core::s3::{checksum_matches, etag_matches, unquote_etag};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinSet;

/// Metadata stored with the object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: BTreeMap<String, String>,
}

/// A stored object, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedObject {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version id, when the bucket is versioned.
    pub version_id: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// The ETag S3 reported (unquoted); equal to the computed one unless ETags are opaque.
    pub etag: String,
    /// MD5 of the whole object.
    pub md5: Md5,
    /// The whole object's CRC (S3's FULL_OBJECT checksum), when the mode sends one.
    pub checksum: Option<Crc>,
    /// Parts it was uploaded in (1 for a single PUT).
    pub part_count: u32,
}

/// An upload of one object, fed part by part. Create it with [`Uploader::begin`](crate::Uploader::begin).
///
/// Feed every non-last part with [`push_part`](Self::push_part) (it waits while `max_in_flight`
/// parts are uploading: that is the back-pressure), then hand the last part and the chunker's summary
/// to [`finish`](Self::finish). A file that fits one part never creates a multipart upload: it goes
/// as one PutObject.
///
/// Whatever fails, the multipart upload is aborted before the error is returned; if the upload is
/// dropped unfinished (the client went away), the abort runs in a background task that
/// [`Uploader::cleanups_settled`](crate::Uploader::cleanups_settled) waits for.
#[derive(Debug)]
pub struct ObjectUpload {
    inner: Arc<Inner>,
    key: String,
    meta: ObjectMeta,
    upload_id: Option<String>,
    in_flight: JoinSet<Result<UploadedPart, Error>>,
    completed: Vec<UploadedPart>,
    existing: BTreeMap<u32, UploadedPart>,
    next_number: u32,
    part_size: Option<u64>,
    put_in_flight: bool,
    finished: bool,
}

impl ObjectUpload {
    pub(crate) fn new(inner: Arc<Inner>, key: String, meta: ObjectMeta) -> Self {
        Self {
            inner,
            key,
            meta,
            upload_id: None,
            in_flight: JoinSet::new(),
            completed: Vec::new(),
            existing: BTreeMap::new(),
            next_number: 1,
            part_size: None,
            put_in_flight: false,
            finished: false,
        }
    }

    pub(crate) fn resumed(
        inner: Arc<Inner>,
        key: String,
        meta: ObjectMeta,
        upload_id: String,
        existing: Vec<UploadedPart>,
    ) -> Self {
        let mut upload = Self::new(inner, key, meta);
        upload.inner.own(&upload_id);
        upload.upload_id = Some(upload_id);
        upload.existing = existing.into_iter().map(|p| (p.number, p)).collect();
        upload
    }

    /// The object key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The multipart upload id, once created (it is created with the first full part).
    pub fn upload_id(&self) -> Option<&str> {
        self.upload_id.as_deref()
    }

    /// Parts currently uploading.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Hands over a full, non-last part. Creates the multipart upload on the first call; waits while
    /// `max_in_flight` parts are uploading.
    ///
    /// # Errors
    /// Any failure of this or an earlier part once retries are spent (the upload is then aborted),
    /// or [`Error::InvalidInput`] for parts out of order, of unequal sizes, or under 5 MiB.
    pub async fn push_part(&mut self, part: Part) -> Result<(), Error> {
        if let Err(e) = self.check_part(&part, false) {
            return self.fail(e).await;
        }
        let held = self.inner.memory.hold(part.len());
        if let Err(e) = self.ensure_created().await {
            return self.fail(e).await;
        }
        if let Err(e) = self.wait_for_slot(self.inner.config.max_in_flight.max(1)).await {
            return self.fail(e).await;
        }
        self.spawn_part(part, held);
        Ok(())
    }

    /// Uploads the last part (if any), waits for every part, completes the upload and verifies the
    /// object's ETag and checksum against `summary` (the chunker's). For a single-part file, one
    /// PutObject with `Content-MD5` and the checksum instead.
    ///
    /// # Errors
    /// Any failure once retries are spent; the multipart upload is aborted, and an object that was
    /// stored but does not verify is deleted.
    pub async fn finish(
        mut self,
        last: Option<Part>,
        summary: &ObjectSummary,
    ) -> Result<UploadedObject, Error> {
        let result = self.finish_inner(last, summary).await;
        match result {
            Ok(object) => {
                self.finished = true;
                Ok(object)
            }
            Err(e) => self.fail(e).await,
        }
    }

    /// Aborts the upload now and waits until S3 confirms no parts remain.
    pub async fn abort(mut self) {
        self.finished = true;
        if let Some(upload_id) = self.upload_id.take() {
            let tasks = std::mem::take(&mut self.in_flight);
            abort_and_verify(Arc::clone(&self.inner), self.key.clone(), upload_id, tasks).await;
        }
    }

    fn check_part(&mut self, part: &Part, last: bool) -> Result<(), Error> {
        if self.finished {
            return Err(Error::InvalidInput("part pushed after the upload finished or failed".into()));
        }
        if part.number != self.next_number {
            return Err(Error::InvalidInput(format!(
                "part {} pushed where part {} was due",
                part.number, self.next_number
            )));
        }
        let mode_crc = self.inner.config.checksum_mode.crc();
        if part.crc.map(|c| c.algorithm) != mode_crc {
            return Err(Error::InvalidInput(format!(
                "part {} carries CRC {:?} but the checksum mode needs {:?}",
                part.number,
                part.crc.map(|c| c.algorithm),
                mode_crc
            )));
        }
        if !last {
            match self.part_size {
                None if part.len() < MIN_PART_SIZE => {
                    return Err(Error::InvalidInput(format!(
                        "non-last part of {} bytes is under 5 MiB",
                        part.len()
                    )));
                }
                None => self.part_size = Some(part.len()),
                Some(size) if size != part.len() => {
                    return Err(Error::InvalidInput(format!(
                        "part {} has {} bytes; every non-last part must have {size}",
                        part.number,
                        part.len()
                    )));
                }
                Some(_) => {}
            }
        } else if self.part_size.is_some_and(|size| part.len() > size) {
            return Err(Error::InvalidInput(format!(
                "last part {} is larger than the part size",
                part.number
            )));
        }
        self.next_number += 1;
        Ok(())
    }

    async fn ensure_created(&mut self) -> Result<(), Error> {
        if self.upload_id.is_some() {
            return Ok(());
        }
        let inner = &self.inner;
        let (upload_id, _) =
            with_retries(&inner.config.retry, "CreateMultipartUpload", &inner.bucket, |_| async {
                let mut req = inner.client.create_multipart_upload().bucket(&inner.bucket).key(&self.key);
                req = apply_meta(
                    req,
                    &self.meta,
                    |r, v| r.content_type(v),
                    |r, v| r.content_disposition(v),
                    |r, k, v| r.metadata(k, v),
                );
                if let Some(alg) = inner.config.checksum_mode.crc() {
                    req = req.checksum_algorithm(sdk_algorithm(alg)).checksum_type(ChecksumType::FullObject);
                }
                let out = req.send().await.map_err(AttemptError::from)?;
                out.upload_id.ok_or_else(|| {
                    AttemptError::mismatch(None, "upload id", "an upload id".into(), "none".into())
                })
            })
            .await?;
        tracing::debug!(key = %self.key, %upload_id, "multipart upload created");
        self.inner.own(&upload_id);
        self.upload_id = Some(upload_id);
        Ok(())
    }

    async fn wait_for_slot(&mut self, max: usize) -> Result<(), Error> {
        while self.in_flight.len() >= max {
            self.join_one().await?;
        }
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), Error> {
        match self.in_flight.join_next().await {
            Some(Ok(Ok(part))) => {
                self.completed.push(part);
                Ok(())
            }
            Some(Ok(Err(e))) => Err(e),
            Some(Err(join)) => Err(Error::InvalidInput(format!("part task failed: {join}"))),
            None => Ok(()),
        }
    }

    fn spawn_part(&mut self, part: Part, held: HeldBytes) {
        if let Some(existing) = self.existing.get(&part.number)
            && existing.size == part.len()
            && etag_matches(&existing.etag, &part.md5.to_hex())
        {
            // Resumed upload: this part is already stored and verified by its ETag.
            self.completed.push(UploadedPart { crc: part.crc, ..existing.clone() });
            return;
        }
        let inner = Arc::clone(&self.inner);
        let key = self.key.clone();
        let upload_id = self.upload_id.clone().unwrap_or_default();
        self.in_flight.spawn(async move { upload_part(inner, key, upload_id, part, held).await });
    }

    async fn finish_inner(
        &mut self,
        last: Option<Part>,
        summary: &ObjectSummary,
    ) -> Result<UploadedObject, Error> {
        if self.upload_id.is_none() && self.completed.is_empty() {
            let part = last.ok_or_else(|| Error::InvalidInput("finish called with no part at all".into()))?;
            self.check_part(&part, true)?;
            return self.put_single(part, summary).await;
        }
        if let Some(part) = last {
            self.check_part(&part, true)?;
            let held = self.inner.memory.hold(part.len());
            self.wait_for_slot(self.inner.config.max_in_flight.max(1)).await?;
            self.spawn_part(part, held);
        }
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        self.completed.sort_by_key(|p| p.number);
        let numbers_ok = self.completed.iter().enumerate().all(|(i, p)| p.number as usize == i + 1);
        if !numbers_ok || self.completed.len() != summary.part_count() as usize {
            return Err(Error::InvalidInput(format!(
                "{} parts uploaded but the summary describes {}",
                self.completed.len(),
                summary.part_count()
            )));
        }
        self.complete(summary).await
    }

    async fn put_single(&mut self, part: Part, summary: &ObjectSummary) -> Result<UploadedObject, Error> {
        let inner = Arc::clone(&self.inner);
        let _held = inner.memory.hold(part.len());
        let slices: Vec<Bytes> = part.data.slices().to_vec();
        let len = part.len();
        let md5 = part.md5;
        let crc = part.crc;
        drop(part);
        self.put_in_flight = true;
        let (key, meta) = (self.key.clone(), self.meta.clone());
        let result = with_retries(&inner.config.retry, "PutObject", &inner.bucket, |_| {
            let body = RopeBody::byte_stream(&slices);
            let (inner, key, meta) = (&inner, &key, &meta);
            async move {
                let mut req = inner
                    .client
                    .put_object()
                    .bucket(&inner.bucket)
                    .key(key)
                    .content_length(len as i64)
                    .content_md5(md5.to_base64())
                    .body(body);
                req = apply_meta(
                    req,
                    meta,
                    |r, v| r.content_type(v),
                    |r, v| r.content_disposition(v),
                    |r, k, v| r.metadata(k, v),
                );
                req = match crc {
                    Some(c) if c.algorithm == CrcAlgorithm::Crc32c => req.checksum_crc32_c(c.to_base64()),
                    Some(c) => req.checksum_crc64_nvme(c.to_base64()),
                    None => req,
                };
                let out =
                    req.customize().disable_payload_signing().send().await.map_err(AttemptError::from)?;
                let etag = verify_stored(
                    &inner.config,
                    1,
                    md5,
                    crc,
                    out.e_tag(),
                    out.checksum_crc32_c(),
                    out.checksum_crc64_nvme(),
                )?;
                Ok((etag, out.version_id))
            }
        })
        .await;
        self.put_in_flight = false;
        let (out, attempts) = match result {
            Ok(ok) => ok,
            Err(error) => {
                // The PUT may have landed (a lost response, a damaged body S3 accepted): the key is
                // ferry's alone, so remove whatever is there rather than leave it looking complete.
                delete_object(&inner, &key).await;
                return Err(error);
            }
        };
        tracing::debug!(key = %self.key, attempts, "object stored with one PUT");
        Ok(UploadedObject {
            bucket: inner.bucket.clone(),
            key: self.key.clone(),
            version_id: out.1,
            size: summary.len,
            etag: out.0,
            md5: summary.md5,
            checksum: summary.crc,
            part_count: 1,
        })
    }

    async fn complete(&mut self, summary: &ObjectSummary) -> Result<UploadedObject, Error> {
        let inner = Arc::clone(&self.inner);
        let upload_id = self.upload_id.clone().unwrap_or_default();
        let mode = inner.config.checksum_mode;
        let parts: Vec<CompletedPart> = self
            .completed
            .iter()
            .map(|p| {
                let builder = CompletedPart::builder().part_number(p.number as i32).e_tag(&p.etag);
                // S3's rule: list part checksums iff CreateMultipartUpload named an algorithm.
                match (mode, p.crc) {
                    (ChecksumMode::Crc32c, Some(c)) => builder.checksum_crc32_c(c.to_base64()),
                    (ChecksumMode::Crc64Nvme, Some(c)) => builder.checksum_crc64_nvme(c.to_base64()),
                    _ => builder,
                }
                .build()
            })
            .collect();
        let expected_etag = summary.multipart_etag();
        let key = self.key.clone();
        let ((etag, version_id, returned), _) =
            with_retries(&inner.config.retry, "CompleteMultipartUpload", &inner.bucket, |attempt| {
                let parts = parts.clone();
                let (inner, key, upload_id, expected_etag) = (&inner, &key, &upload_id, &expected_etag);
                async move {
                    let mut req = inner
                        .client
                        .complete_multipart_upload()
                        .bucket(&inner.bucket)
                        .key(key)
                        .upload_id(upload_id)
                        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
                    if let Some(crc) = summary.crc {
                        req = match crc.algorithm {
                            CrcAlgorithm::Crc32c => req.checksum_crc32_c(crc.to_base64()),
                            CrcAlgorithm::Crc64Nvme => req.checksum_crc64_nvme(crc.to_base64()),
                        }
                        .checksum_type(ChecksumType::FullObject);
                    }
                    match req.send().await {
                        Ok(out) => Ok((
                            out.e_tag().map(unquote_etag).unwrap_or_default().to_owned(),
                            out.version_id.clone(),
                            returned_checksum(
                                summary.crc.map_or(CrcAlgorithm::Crc64Nvme, |c| c.algorithm),
                                out.checksum_crc32_c(),
                                out.checksum_crc64_nvme(),
                            )
                            .map(str::to_owned),
                        )),
                        Err(err) => {
                            let err = AttemptError::from(err);
                            // A retried Complete whose first try succeeded finds the upload gone:
                            // the object tells whether it was ours.
                            if attempt > 1 && err.code.as_deref() == Some("NoSuchUpload") {
                                let head =
                                    inner.client.head_object().bucket(&inner.bucket).key(key).send().await;
                                if let Ok(head) = head
                                    && head.e_tag().is_some_and(|e| etag_matches(e, expected_etag))
                                {
                                    return Ok((
                                        unquote_etag(head.e_tag().unwrap_or_default()).to_owned(),
                                        head.version_id,
                                        None,
                                    ));
                                }
                            }
                            Err(err)
                        }
                    }
                }
            })
            .await?;
        // The upload id is spent: nothing to abort from here on, only an object to delete if wrong.
        if let Some(id) = self.upload_id.take() {
            inner.disown(&id);
        }
        let mismatch = if !inner.config.opaque_etags && !etag_matches(&etag, &expected_etag) {
            Some(Error::ChecksumMismatch {
                part: None,
                what: "etag",
                expected: expected_etag,
                actual: etag.clone(),
            })
        } else {
            match (summary.crc, returned) {
                (Some(crc), Some(returned)) if !checksum_matches(&returned, &crc) => {
                    Some(Error::ChecksumMismatch {
                        part: None,
                        what: crc.algorithm.s3_name(),
                        expected: crc.to_base64(),
                        actual: returned,
                    })
                }
                _ => None,
            }
        };
        if let Some(error) = mismatch {
            tracing::warn!(key = %self.key, %error, "completed object does not verify; deleting it");
            delete_object(&inner, &self.key).await;
            return Err(error);
        }
        Ok(UploadedObject {
            bucket: inner.bucket.clone(),
            key: self.key.clone(),
            version_id,
            size: summary.len,
            etag,
            md5: summary.md5,
            checksum: summary.crc,
            part_count: summary.part_count(),
        })
    }

    /// Marks the upload failed, aborts it (waiting for S3 to confirm), and returns `error`.
    async fn fail<T>(&mut self, error: Error) -> Result<T, Error> {
        self.finished = true;
        if let Some(upload_id) = self.upload_id.take() {
            tracing::debug!(key = %self.key, %error, "upload failed; aborting it");
            let tasks = std::mem::take(&mut self.in_flight);
            abort_and_verify(Arc::clone(&self.inner), self.key.clone(), upload_id, tasks).await;
        }
        Err(error)
    }
}

impl Drop for ObjectUpload {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let upload_id = self.upload_id.take();
        let put = std::mem::take(&mut self.put_in_flight);
        if upload_id.is_none() && !put {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(key = %self.key, "upload dropped outside a tokio runtime: cannot abort it; the reaper or the bucket lifecycle rule will");
            return;
        };
        let inner = Arc::clone(&self.inner);
        let key = self.key.clone();
        let tasks = std::mem::take(&mut self.in_flight);
        let guard = inner.cleanups.start();
        tracing::debug!(%key, "upload dropped unfinished; cleaning up in the background");
        runtime.spawn(async move {
            match upload_id {
                Some(upload_id) => abort_and_verify(Arc::clone(&inner), key, upload_id, tasks).await,
                // A PutObject cut short may still land: remove whatever it left.
                None => delete_object(&inner, &key).await,
            }
            drop(guard);
        });
    }
}

async fn upload_part(
    inner: Arc<Inner>,
    key: String,
    upload_id: String,
    part: Part,
    held: HeldBytes,
) -> Result<UploadedPart, Error> {
    let Part { number, data, md5, crc } = part;
    let size = data.len();
    // The part's own slices go out as the body: no copy, however many attempts.
    let slices: Vec<Bytes> = data.slices().to_vec();
    drop(data);
    let (etag, attempts) = with_retries(&inner.config.retry, "UploadPart", &inner.bucket, |_| {
        let body = RopeBody::byte_stream(&slices);
        let (inner, key, upload_id) = (&inner, &key, &upload_id);
        async move {
            let mut req = inner
                .client
                .upload_part()
                .bucket(&inner.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number as i32)
                .content_length(size as i64)
                .content_md5(md5.to_base64())
                .body(body);
            req = match crc {
                Some(c) if c.algorithm == CrcAlgorithm::Crc32c => req.checksum_crc32_c(c.to_base64()),
                Some(c) => req.checksum_crc64_nvme(c.to_base64()),
                None => req,
            };
            let out = req.customize().disable_payload_signing().send().await.map_err(AttemptError::from)?;
            // A mismatch means what S3 stored is not what was sent: this part number goes again.
            let etag = verify_stored(
                &inner.config,
                number,
                md5,
                crc,
                out.e_tag(),
                out.checksum_crc32_c(),
                out.checksum_crc64_nvme(),
            )?;
            Ok(etag)
        }
    })
    .await?;
    if attempts > 1 {
        tracing::info!(%key, part = number, attempts, "part uploaded after retries");
        inner.stats.part_retries.fetch_add(u64::from(attempts - 1), std::sync::atomic::Ordering::Relaxed);
    }
    drop(slices);
    drop(held);
    Ok(UploadedPart { number, etag, size, crc })
}

/// Stops the part tasks, aborts the upload, and checks that S3 lists no parts for it any more,
/// aborting again if a part that was in flight landed after the first abort.
pub(crate) async fn abort_and_verify(
    inner: Arc<Inner>,
    key: String,
    upload_id: String,
    mut tasks: JoinSet<Result<UploadedPart, Error>>,
) {
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    for round in 1..=3 {
        match crate::listing::abort(&inner, &key, &upload_id).await {
            Ok(()) => {}
            Err(error) => tracing::warn!(%key, %upload_id, %error, "abort failed"),
        }
        match crate::listing::list_parts(&inner, &key, &upload_id).await {
            Ok(parts) if !parts.is_empty() => {
                tracing::warn!(%key, %upload_id, round, parts = parts.len(), "parts remain after abort; aborting again");
            }
            // Gone (NoSuchUpload, or AccessDenied from stores that say so for unknown ids), or empty.
            _ => {
                inner.stats.aborted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                inner.disown(&upload_id);
                return;
            }
        }
    }
    tracing::error!(%key, %upload_id, "multipart upload still lists parts after 3 aborts; the reaper will retry");
}

async fn delete_object(inner: &Inner, key: &str) {
    let result = with_retries(&inner.config.retry, "DeleteObject", &inner.bucket, |_| async {
        inner.client.delete_object().bucket(&inner.bucket).key(key).send().await.map_err(AttemptError::from)
    })
    .await;
    if let Err(error) = result {
        tracing::error!(%key, %error, "could not delete an unverified object");
    }
}

/// Compares what S3 says it stored for a part (or a single PUT) with what was sent: the ETag with
/// the MD5 (unless ETags are opaque) and any returned checksum with the CRC. Returns the unquoted
/// ETag; a mismatch is a transient attempt error, so the same part number is sent again.
fn verify_stored(
    config: &crate::UploadConfig,
    part: u32,
    md5: Md5,
    crc: Option<Crc>,
    etag: Option<&str>,
    crc32c: Option<&str>,
    crc64: Option<&str>,
) -> Result<String, AttemptError> {
    let etag = etag.map(unquote_etag).unwrap_or_default().to_owned();
    if !config.opaque_etags && !etag_matches(&etag, &md5.to_hex()) {
        return Err(AttemptError::mismatch(Some(part), "etag", md5.to_hex(), etag));
    }
    if let Some(c) = crc
        && let Some(returned) =
            returned_checksum(c.algorithm, crc32c, crc64).filter(|r| !checksum_matches(r, &c))
    {
        return Err(AttemptError::mismatch(
            Some(part),
            c.algorithm.s3_name(),
            c.to_base64(),
            returned.to_owned(),
        ));
    }
    Ok(etag)
}

fn sdk_algorithm(alg: CrcAlgorithm) -> ChecksumAlgorithm {
    match alg {
        CrcAlgorithm::Crc32c => ChecksumAlgorithm::Crc32C,
        CrcAlgorithm::Crc64Nvme => ChecksumAlgorithm::Crc64Nvme,
    }
}

fn returned_checksum<'a>(
    alg: CrcAlgorithm,
    crc32c: Option<&'a str>,
    crc64: Option<&'a str>,
) -> Option<&'a str> {
    match alg {
        CrcAlgorithm::Crc32c => crc32c,
        CrcAlgorithm::Crc64Nvme => crc64,
    }
}

/// Applies content type, disposition and user metadata to any request builder that takes them.
fn apply_meta<B>(
    mut req: B,
    meta: &ObjectMeta,
    content_type: impl Fn(B, &str) -> B,
    disposition: impl Fn(B, &str) -> B,
    user: impl Fn(B, &str, &str) -> B,
) -> B {
    if let Some(v) = &meta.content_type {
        req = content_type(req, v);
    }
    if let Some(v) = &meta.content_disposition {
        req = disposition(req, v);
    }
    for (k, v) in &meta.metadata {
        req = user(req, k, v);
    }
    req
}
