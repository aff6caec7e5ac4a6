//! Appending a request's bytes to a resumable upload, and completing it.
//!
//! The committed tail and the request's bytes go through a chunker planned like the upload
//! (every non-last part the same size); each part it fills is hashed into the carried whole-file
//! hash and uploaded under the next uncommitted part number; what is left past the last full part
//! goes to a fresh tail object. Only then, and only if the caller's [`Check`] passes, one
//! conditional write commits it all. A request that fails before leaves the committed state as it
//! was: its parts sit under uncommitted numbers that the next request overwrites (S3 keeps the
//! last upload of a part number), its tail object is deleted.

use super::{HashCarry, Held, Phase, ResumableError, ResumableStore, StatePart, StoredObject, Tail};
use crate::attempt::{AttemptError, with_retries};
use crate::error::{BoxError, Error};
use crate::upload::{parts, verify};
use crate::{Stored, UploadedPart};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use ferry_core::checksum::WholeHasher;
use ferry_core::chunk::{ChunkError, Chunker, ChunkerOptions, ObjectSummary, Part};
use ferry_core::plan::PartPlan;
use futures::{Stream, StreamExt};
use std::sync::Arc;
use tokio::task::JoinSet;

/// Asked once the request's body has ended and before anything is committed (a per-request
/// checksum); an `Err` keeps nothing of the request's bytes ([`ResumableError::Rejected`]).
pub type Check = Box<dyn FnOnce() -> Result<(), BoxError> + Send>;

/// What an append did.
#[derive(Debug)]
pub struct Appended {
    /// The committed offset now.
    pub offset: u64,
    /// The stored, verified object, when the append brought the last byte.
    pub stored: Option<Stored>,
}

/// The part uploads of one request: those in flight and those done.
#[derive(Debug, Default)]
struct PartTasks {
    running: JoinSet<Result<UploadedPart, Error>>,
    done: Vec<UploadedPart>,
}

impl PartTasks {
    /// Waits for one running upload.
    async fn join_one(&mut self) -> Result<(), Error> {
        if let Some(joined) = self.running.join_next().await {
            let part = joined.map_err(|e| Error::InvalidInput(format!("part task failed: {e}")))??;
            self.done.push(part);
        }
        Ok(())
    }

    /// Waits for every upload; returns all the parts in order.
    async fn join_all(mut self) -> Result<Vec<UploadedPart>, Error> {
        while !self.running.is_empty() {
            self.join_one().await?;
        }
        self.done.sort_by_key(|p| p.number);
        Ok(self.done)
    }
}

impl ResumableStore {
    /// Appends `body` at `offset` to the upload `held` holds; completes it when the body brings
    /// the last byte of a known length. The lease is renewed while frames arrive.
    ///
    /// # Errors
    /// [`ResumableError::OffsetMismatch`], [`ResumableError::Closed`], [`ResumableError::TooLong`],
    /// [`ResumableError::Body`], [`ResumableError::Rejected`], [`ResumableError::Moved`] (the lease
    /// was lost), or S3's failure: in every case nothing of this request is committed.
    pub async fn append<S, E>(
        &self,
        held: &mut Held,
        offset: u64,
        body: S,
        check: Option<Check>,
    ) -> Result<Appended, ResumableError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        if held.state.phase != Phase::Open {
            return Err(ResumableError::Closed);
        }
        let committed = held.state.offset();
        if committed != offset {
            return Err(ResumableError::OffsetMismatch { committed, requested: offset });
        }
        let result = self.append_committed(held, body, check).await;
        held.filling = None;
        if result.is_err() {
            held.revert();
        }
        result
    }

    async fn append_committed<S, E>(
        &self,
        held: &mut Held,
        body: S,
        check: Option<Check>,
    ) -> Result<Appended, ResumableError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let mut tasks = PartTasks::default();
        let result = self.append_parts(held, body, check, &mut tasks).await;
        let result = match result {
            Ok(cut) => tasks.join_all().await.map(|parts| (parts, cut)).map_err(ResumableError::from),
            Err(error) => Err(error),
        };
        let (new_parts, (last, carry, received)) = match result {
            Ok(done) => done,
            Err(error) => {
                // `tasks` is dropped here, which aborts the uploads still running.
                return Err(error);
            }
        };
        let state = &mut held.state;
        let new_offset = state.parts_len() + received;
        let base_number = state.parts.len() as u32;
        let final_part = state.length == Some(new_offset);
        let old_tail = state.tail.take();
        state.parts.extend(new_parts.iter().map(StatePart::from_uploaded));
        state.hash = carry.save();
        if final_part {
            return self.finish(held, last, carry, old_tail).await;
        }
        // Not the end: the leftover is the next tail (a full leftover waits too: only a later byte
        // proves it is not the last part).
        let tail = match last.filter(|p| !p.is_empty()) {
            Some(part) => Some(self.write_tail(&held.id, part).await?),
            None => None,
        };
        held.state.tail.clone_from(&tail);
        debug_assert_eq!(held.state.parts.len() as u32, base_number + new_parts.len() as u32);
        if let Err(error) = self.save(held).await {
            if let Some(tail) = tail {
                self.drop_tail(&tail.key).await;
            }
            return Err(error);
        }
        if let Some(old) = old_tail {
            self.drop_tail(&old.key).await;
        }
        Ok(Appended { offset: new_offset, stored: None })
    }

    /// Reads the committed tail and `body` through a chunker, uploading the full parts it cuts
    /// (hashed into the carried hash). Returns the parts, the leftover, the carry over the full
    /// parts and the bytes received since the last committed part (tail included).
    async fn append_parts<S, E>(
        &self,
        held: &mut Held,
        body: S,
        check: Option<Check>,
        tasks: &mut PartTasks,
    ) -> Result<(Option<Part>, HashCarry, u64), ResumableError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<BoxError>,
    {
        let inner = Arc::clone(&self.uploader.inner);
        let state = &held.state;
        let base = state.parts_len();
        let plan = PartPlan { part_size: state.part_size, declared_len: None, max_len: state.limit() - base };
        let options =
            ChunkerOptions { crc: None, part_md5: false, whole_md5: false, sha256: false, defer: true };
        let mut chunker = Chunker::new(plan, options);
        let carry = HashCarry::restore(&state.hash).map_err(|e| ResumableError::Damaged(e.to_string()))?;
        let mut hashing = Hashing::start(carry);
        let first_number = state.parts.len() as u32;
        if let Some(tail) = &state.tail {
            let bytes = self.read_tail(&tail.key).await?;
            chunker.push(bytes).map_err(|e| too_long(e, plan.max_len + base))?;
        }
        let mut body = std::pin::pin!(body);
        while let Some(frame) = body.next().await {
            let frame = frame.map_err(|e| ResumableError::Body(e.into()))?;
            // Before any part goes up: a request that stalled past its lease finds out here (the
            // renewal is refused) and sends nothing under a part number another request now owns.
            self.renew_if_due(held).await?;
            let parts = chunker.push(frame).map_err(|e| too_long(e, plan.max_len + base))?;
            for mut part in parts {
                part.number += first_number;
                hashing = hashing.feed(&part).await?;
                self.send_part(held, &inner, part, tasks).await?;
            }
        }
        self.renew_if_due(held).await?;
        if let Some(check) = check {
            check().map_err(ResumableError::Rejected)?;
        }
        let received = chunker.received();
        let (last, _) =
            chunker.finish_with(WholeHasher::new(false, false).finish()).map_err(|e| too_long(e, 0))?;
        let mut last = last.map(|mut part| {
            part.number += first_number;
            part
        });
        // The chunker keeps a full leftover back because only a later byte proves it is not the
        // last part. With the length known and not reached, it is not: it goes up now as a part
        // rather than into a tail object the next request would read back (a client sending whole
        // parts per PATCH then writes no tail at all).
        let not_last = held.state.length.is_some_and(|length| base + received < length);
        let part_size = held.state.part_size;
        if let Some(part) = last.take_if(|part| not_last && part.len() == part_size) {
            hashing = hashing.feed(&part).await?;
            self.send_part(held, &inner, part, tasks).await?;
        }
        Ok((last, hashing.finish().await?, received))
    }

    /// Uploads `part` in a task (at most `max_in_flight` at once), creating the multipart upload
    /// first if need be (its id is saved at once, so a removal finds it).
    async fn send_part(
        &self,
        held: &mut Held,
        inner: &Arc<crate::Inner>,
        part: Part,
        tasks: &mut PartTasks,
    ) -> Result<(), ResumableError> {
        let upload_id = match &held.state.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = parts::create_upload_id(inner, &held.state.key, &held.state.meta()).await?;
                inner.disown(&id);
                held.state.upload_id = Some(id.clone());
                self.save(held).await?;
                id
            }
        };
        while tasks.running.len() >= inner.config.max_in_flight.max(1) {
            tasks.join_one().await?;
        }
        // The part takes the share it filled under; the next part's share is waited for before
        // reading on (the back-pressure of a shared budget).
        let share = match (held.filling.take(), &inner.budget) {
            (Some(share), _) => Some(share),
            (None, Some(budget)) => budget.acquire(part.len()).await,
            (None, None) => None,
        };
        let part_size = held.state.part_size;
        let held_bytes = inner.memory.hold(part.len()).with_share(share);
        tasks.running.spawn(parts::upload_part(
            Arc::clone(inner),
            held.state.key.clone(),
            upload_id,
            part,
            held_bytes,
        ));
        if let Some(budget) = &inner.budget {
            held.filling = budget.acquire(part_size).await;
        }
        Ok(())
    }

    /// Commits the last part and completes the object.
    async fn finish(
        &self,
        held: &mut Held,
        last: Option<Part>,
        mut carry: HashCarry,
        old_tail: Option<Tail>,
    ) -> Result<Appended, ResumableError> {
        let inner = Arc::clone(&self.uploader.inner);
        // The chunker always leaves a last part: a full part waits for the byte after it.
        let last = last.ok_or_else(|| Error::InvalidInput("no last part to complete with".into()))?;
        carry = Hashing::start(carry).feed(&last).await?.finish().await?;
        held.state.hash = carry.save();
        if held.state.parts.is_empty() {
            // One part: a single PutObject, as for a small single-request upload. A crash before
            // the state says so leaves the request to be sent again (the same bytes, the same key).
            let part = parts::with_digests(&inner.config, last).await?;
            let mut summary = summary_of(held, carry);
            summary.set_part_digests(&[(part.len(), part.md5, part.crc)]);
            let object =
                verify::put_single(&inner, &held.state.key, &held.state.meta(), part, &summary).await?;
            held.state.phase = Phase::Stored(StoredObject::new(&object, summary.sha256));
            held.state.tail = None;
            self.save(held).await?;
            if let Some(old) = old_tail {
                self.drop_tail(&old.key).await;
            }
            return Ok(Appended { offset: summary.len, stored: Some(Stored { object, summary }) });
        }
        let mut tasks = PartTasks::default();
        self.send_part(held, &inner, last, &mut tasks).await?;
        for part in tasks.join_all().await? {
            held.state.parts.push(StatePart::from_uploaded(&part));
        }
        held.state.tail = None;
        held.state.phase = Phase::Completing;
        self.save(held).await?;
        if let Some(old) = old_tail {
            self.drop_tail(&old.key).await;
        }
        let stored = self.complete(held).await?;
        Ok(Appended { offset: stored.summary.len, stored: Some(stored) })
    }

    /// Completes an upload whose every part is committed ([`Phase::Completing`]), verifies the
    /// object as a single-request upload is verified, and records it ([`Phase::Stored`]). A
    /// completion interrupted after S3 completed it is recognised by the object's ETag or CRC.
    ///
    /// # Errors
    /// S3's failure (the state stays `Completing`, so a later request tries again), or
    /// [`Error::ChecksumMismatch`] (the object is deleted and the state says `Failed`).
    pub async fn complete(&self, held: &mut Held) -> Result<Stored, ResumableError> {
        let inner = Arc::clone(&self.uploader.inner);
        let carry =
            HashCarry::restore(&held.state.hash).map_err(|e| ResumableError::Damaged(e.to_string()))?;
        let crc = inner.config.checksum_mode.crc();
        let parts: Vec<UploadedPart> = held.state.parts.iter().map(|p| p.to_uploaded(crc)).collect();
        let mut summary = summary_of(held, carry);
        summary.set_part_digests(&parts.iter().map(|p| (p.size, p.md5, p.crc)).collect::<Vec<_>>());
        let upload_id = held.state.upload_id.clone().ok_or(ResumableError::Closed)?;
        let key = held.state.key.clone();
        let completed = match verify::complete(&inner, &key, &upload_id, &parts, &summary).await {
            Ok(completed) => completed,
            Err(error) if is_no_such_upload(&error) => {
                let object = completed_earlier(&inner, &key, &summary).await?;
                return self.stored(held, object, summary).await;
            }
            Err(error) => return Err(error.into()),
        };
        let object = match verify::verify_completed(&inner, &key, completed, &summary) {
            Ok(object) => object,
            Err(error) => {
                tracing::warn!(%key, %error, "completed resumable object does not verify; deleting it");
                self.uploader.delete(&key).await?;
                held.state.phase = Phase::Failed { reason: error.to_string() };
                self.save(held).await?;
                return Err(error.into());
            }
        };
        self.stored(held, object, summary).await
    }

    async fn stored(
        &self,
        held: &mut Held,
        object: crate::UploadedObject,
        summary: ObjectSummary,
    ) -> Result<Stored, ResumableError> {
        held.state.phase = Phase::Stored(StoredObject::new(&object, summary.sha256));
        self.save(held).await?;
        Ok(Stored { object, summary })
    }

    async fn read_tail(&self, key: &str) -> Result<Bytes, ResumableError> {
        Ok(self.get_object(key).await?.0.0)
    }

    async fn write_tail(&self, id: &str, part: Part) -> Result<Tail, ResumableError> {
        let inner = &self.uploader.inner;
        let key = self.tail_key(id);
        let bytes = part.data.to_contiguous();
        let len = bytes.len() as u64;
        let _held = inner.memory.hold(len);
        with_retries(&inner.config.retry, "PutObject", &inner.bucket, |_| {
            let req = inner
                .client
                .put_object()
                .bucket(&inner.bucket)
                .key(&key)
                .content_length(len as i64)
                .content_md5(ferry_core::checksum::Md5::of(&bytes).to_base64())
                .body(ByteStream::from(bytes.clone()));
            async move { req.send().await.map_err(AttemptError::from) }
        })
        .await?;
        Ok(Tail { key, len })
    }
}

/// The whole-object summary of a held upload whose hash covers every byte.
fn summary_of(held: &Held, carry: HashCarry) -> ObjectSummary {
    let digests = carry.finish();
    let len = held.state.length.unwrap_or_else(|| held.state.parts_len());
    ObjectSummary {
        len,
        part_size: held.state.part_size,
        parts: (held.state.parts.len() as u32).max(1),
        md5: digests.md5,
        sha256: digests.sha256,
        crc: None,
        part_md5s: Vec::new(),
        part_crcs: Vec::new(),
    }
}

/// The object an earlier, interrupted completion stored (its multipart upload is gone): ours if
/// its size and its multipart ETag (`md5` mode) or FULL_OBJECT CRC match the summary.
async fn completed_earlier(
    inner: &crate::Inner,
    key: &str,
    summary: &ObjectSummary,
) -> Result<crate::UploadedObject, Error> {
    let (head, _) = with_retries(&inner.config.retry, "HeadObject", &inner.bucket, |_| async {
        inner
            .client
            .head_object()
            .bucket(&inner.bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .map_err(AttemptError::from)
    })
    .await?;
    let etag = ferry_core::s3::unquote_etag(head.e_tag().unwrap_or_default()).to_owned();
    let crc_ok = summary.crc.is_some_and(|crc| {
        let returned = match crc.algorithm {
            ferry_core::checksum::CrcAlgorithm::Crc32c => head.checksum_crc32_c(),
            ferry_core::checksum::CrcAlgorithm::Crc64Nvme => head.checksum_crc64_nvme(),
        };
        returned.is_some_and(|r| ferry_core::s3::checksum_matches(r, &crc))
    });
    let etag_ok = summary.multipart_etag().is_some_and(|e| ferry_core::s3::etag_matches(&etag, &e));
    let size_ok = head.content_length().is_some_and(|l| l as u64 == summary.len);
    if !size_ok || !(crc_ok || etag_ok) {
        return Err(Error::NoSuchUpload { upload_id: String::new() });
    }
    Ok(crate::UploadedObject {
        bucket: inner.bucket.clone(),
        key: key.to_owned(),
        version_id: head.version_id().map(str::to_owned),
        size: summary.len,
        etag,
        md5: summary.md5,
        checksum: summary.crc,
        part_count: summary.parts,
    })
}

/// The carried whole-file hash, fed part by part on a blocking thread one part behind the reader,
/// so hashing overlaps reading the request and sending the parts (the parts are hashed in order).
struct Hashing(tokio::task::JoinHandle<HashCarry>);

impl Hashing {
    fn start(carry: HashCarry) -> Self {
        Self(tokio::task::spawn_blocking(move || carry))
    }

    /// Waits for the previous part's hashing, then starts hashing `part`.
    async fn feed(self, part: &Part) -> Result<Self, Error> {
        let carry = self.finish().await?;
        let data = part.data.clone();
        Ok(Self(tokio::task::spawn_blocking(move || {
            let mut carry = carry;
            for slice in data.slices() {
                carry.update(slice);
            }
            carry
        })))
    }

    /// The carry over every part fed.
    async fn finish(self) -> Result<HashCarry, Error> {
        self.0.await.map_err(|e| Error::InvalidInput(format!("hashing failed: {e}")))
    }
}

/// S3 no longer knows the multipart upload (completed or aborted).
fn is_no_such_upload(error: &Error) -> bool {
    matches!(error, Error::NoSuchUpload { .. })
        || matches!(error, Error::Service { code: Some(code), .. } if code == "NoSuchUpload")
}

fn too_long(error: ChunkError, limit: u64) -> ResumableError {
    match error {
        ChunkError::TooLong { .. } => ResumableError::TooLong { limit },
        other => ResumableError::S3(Error::Chunk(other)),
    }
}
