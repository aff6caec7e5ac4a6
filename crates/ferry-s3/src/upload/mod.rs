//! One object's upload as an explicit state machine: nothing sent yet, a multipart upload with
//! parts in flight, the object being stored (PutObject or Complete), done, or aborted. Every step
//! that fails hands the state to the one clean-up ([`cleanup::Cleanup`]), which runs in a task of its
//! own, so neither an error nor a dropped future can leave anything behind.
//!
//! - [`meta`]: what is stored with the object, and the request builders' helpers.
//! - [`parts`]: the multipart upload and its bounded, back-pressured part tasks.
//! - [`verify`]: PutObject, CompleteMultipartUpload and the checks of what S3 answered.
//! - [`cleanup`]: aborting, re-listing and deleting.

mod cleanup;
mod meta;
pub(crate) mod parts;
pub(crate) mod verify;

pub use meta::{ObjectMeta, UploadedObject};

use crate::error::Error;
use crate::memory::HeldBytes;
use crate::{Gate, Inner, UploadedPart};
use ferry_core::chunk::{ObjectSummary, Part};
use ferry_core::plan::MIN_PART_SIZE;
use parts::Multipart;
use std::sync::Arc;

/// Where an upload is in its life.
#[derive(Debug)]
enum State {
    /// Nothing sent: no multipart upload, no object. A file that ends here goes as one PutObject.
    NotStarted,
    /// The multipart upload exists; parts are uploading or done.
    Multipart(Multipart),
    /// A PutObject or CompleteMultipartUpload is under way, or answered and the object is not yet
    /// verified: the key may hold an object. `upload_id` until Complete has succeeded.
    Storing { upload_id: Option<String> },
    /// Stored and verified: the object is the caller's.
    Completed,
    /// Failed or aborted; its clean-up has run or is running in the background.
    Aborted,
}

/// An upload of one object, fed part by part. Create it with [`Uploader::begin`](crate::Uploader::begin);
/// [`Uploader::upload`](crate::Uploader::upload) drives one from a stream of bytes.
///
/// Feed every non-last part with [`push_part`](Self::push_part) (it waits while `max_in_flight`
/// parts are uploading: that is the back-pressure), then hand the last part and the chunker's summary
/// to [`finish`](Self::finish). A file that fits one part never creates a multipart upload: it goes
/// as one PutObject.
///
/// Whatever fails, the multipart upload is aborted (and an unverified object deleted) before the
/// error is returned; if the upload is dropped unfinished (the client went away), the same clean-up
/// runs in a background task that [`Uploader::cleanups_settled`](crate::Uploader::cleanups_settled)
/// waits for.
#[derive(Debug)]
pub struct ObjectUpload {
    inner: Arc<Inner>,
    key: String,
    meta: ObjectMeta,
    state: State,
    /// The number the next part must have.
    next_number: u32,
    /// The size of every non-last part, fixed by the first.
    part_size: Option<u64>,
}

impl ObjectUpload {
    pub(crate) fn new(inner: Arc<Inner>, key: String, meta: ObjectMeta) -> Self {
        Self { inner, key, meta, state: State::NotStarted, next_number: 1, part_size: None }
    }

    pub(crate) fn resumed(
        inner: Arc<Inner>,
        key: String,
        meta: ObjectMeta,
        upload_id: String,
        existing: Vec<UploadedPart>,
    ) -> Self {
        inner.own(&upload_id);
        let mut upload = Self::new(inner, key, meta);
        upload.state = State::Multipart(Multipart::resumed(upload_id, existing));
        upload
    }

    /// The uploader's shared budget, if any.
    pub(crate) fn budget(&self) -> Option<crate::PartBudget> {
        self.inner.budget.clone()
    }

    /// The object key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The multipart upload id, once created (it is created with the first full part) and until
    /// it is completed or aborted.
    pub fn upload_id(&self) -> Option<&str> {
        match &self.state {
            State::Multipart(multipart) => Some(&multipart.upload_id),
            State::Storing { upload_id } => upload_id.as_deref(),
            State::NotStarted | State::Completed | State::Aborted => None,
        }
    }

    /// Parts currently uploading.
    pub fn in_flight(&self) -> usize {
        match &self.state {
            State::Multipart(multipart) => multipart.in_flight(),
            _ => 0,
        }
    }

    /// Hands over a full, non-last part. Creates the multipart upload on the first call; waits while
    /// `max_in_flight` parts are uploading.
    ///
    /// # Errors
    /// Any failure of this or an earlier part once retries are spent (the upload is then aborted),
    /// or [`Error::InvalidInput`] for parts out of order, of unequal sizes, or under 5 MiB.
    pub async fn push_part(&mut self, part: Part) -> Result<(), Error> {
        self.push_part_with(part, None).await
    }

    /// [`push_part`](Self::push_part), the part keeping `share` (its share of a
    /// [`PartBudget`](crate::PartBudget)) until S3 has it.
    pub(crate) async fn push_part_with(
        &mut self,
        part: Part,
        share: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<(), Error> {
        match self.push(part, share).await {
            Ok(()) => Ok(()),
            Err(error) => self.fail(error).await,
        }
    }

    /// Uploads the last part (if any), waits for every part, completes the upload and verifies the
    /// object's ETag and checksum against `summary` (the chunker's). For a single-part file, one
    /// PutObject with the mode's `Content-MD5` or CRC instead.
    ///
    /// # Errors
    /// Any failure once retries are spent; the multipart upload is aborted, and an object that was
    /// stored but does not verify is deleted.
    pub async fn finish(self, last: Option<Part>, summary: &ObjectSummary) -> Result<UploadedObject, Error> {
        self.finish_gated(last, summary, None).await.map(|(object, _)| object)
    }

    /// Aborts the upload now and waits until S3 confirms no parts remain.
    pub async fn abort(mut self) {
        if let Some(cleanup) = self.start_cleanup() {
            let _ = cleanup.await;
        }
    }

    /// [`finish`](Self::finish), with `gate` asked once every part is uploaded and before the object
    /// is stored (PutObject) or completed; its refusal aborts the upload as [`Error::Rejected`].
    /// Returns the object and `summary` completed with the part digests hashed on the part tasks.
    pub(crate) async fn finish_gated(
        mut self,
        last: Option<Part>,
        summary: &ObjectSummary,
        gate: Option<Gate>,
    ) -> Result<(UploadedObject, ObjectSummary), Error> {
        match self.store(last, summary, gate).await {
            Ok(object) => {
                self.state = State::Completed;
                Ok(object)
            }
            Err(error) => self.fail(error).await,
        }
    }

    /// Cleans up whatever the upload left (waiting for it) and returns `error`. Idempotent: an
    /// upload already aborted has nothing left to clean.
    pub(crate) async fn fail<T>(&mut self, error: Error) -> Result<T, Error> {
        if let Some(cleanup) = self.start_cleanup() {
            tracing::debug!(key = %self.key, %error, "upload failed; cleaning up");
            let _ = cleanup.await;
        }
        Err(error)
    }

    async fn push(
        &mut self,
        part: Part,
        share: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<(), Error> {
        self.check_part(&part, false)?;
        let held = self.inner.memory.hold(part.len()).with_share(share);
        if let State::NotStarted = self.state {
            self.state = State::Multipart(Multipart::create(&self.inner, &self.key, &self.meta).await?);
        }
        self.send_part(part, held).await
    }

    /// Waits for a free slot, then starts the part's upload.
    async fn send_part(&mut self, part: Part, held: HeldBytes) -> Result<(), Error> {
        let State::Multipart(multipart) = &mut self.state else {
            return Err(Error::InvalidInput("no multipart upload under way (finished or failed)".into()));
        };
        multipart.wait_for_slot(self.inner.config.max_in_flight).await?;
        multipart.spawn(&self.inner, &self.key, part, held);
        Ok(())
    }

    async fn store(
        &mut self,
        last: Option<Part>,
        summary: &ObjectSummary,
        gate: Option<Gate>,
    ) -> Result<(UploadedObject, ObjectSummary), Error> {
        let mut summary = summary.clone();
        let check = |gate: Option<Gate>, summary: &ObjectSummary| {
            gate.map_or(Ok(()), |gate| gate(summary)).map_err(Error::Rejected)
        };
        if let State::NotStarted = self.state {
            let part = last.ok_or_else(|| Error::InvalidInput("finish called with no part at all".into()))?;
            self.check_part(&part, true)?;
            let part = parts::with_digests(&self.inner.config, part).await?;
            summary.set_part_digests(&[(part.len(), part.md5, part.crc)]);
            check(gate, &summary)?;
            self.state = State::Storing { upload_id: None };
            let object = verify::put_single(&self.inner, &self.key, &self.meta, part, &summary).await?;
            return Ok((object, summary));
        }
        if let Some(part) = last {
            self.check_part(&part, true)?;
            let held = self.inner.memory.hold(part.len());
            self.send_part(part, held).await?;
        }
        let parts = self.multipart()?.join_all(summary.part_count()).await?;
        let digests: Vec<_> = parts.iter().map(|p| (p.size, p.md5, p.crc)).collect();
        summary.set_part_digests(&digests);
        // The body has ended and every part is stored: the caller's last word before Complete.
        check(gate, &summary)?;
        let upload_id = self.multipart()?.upload_id.clone();
        // Every part task has finished: the multipart state has nothing left to stop.
        self.state = State::Storing { upload_id: Some(upload_id.clone()) };
        let completed = verify::complete(&self.inner, &self.key, &upload_id, &parts, &summary).await?;
        // The upload id is spent: from here on there is only an object to delete if it is wrong.
        self.inner.disown(&upload_id);
        self.state = State::Storing { upload_id: None };
        let object = verify::verify_completed(&self.inner, &self.key, completed, &summary).inspect_err(
            |error| tracing::warn!(key = %self.key, %error, "completed object does not verify; deleting it"),
        )?;
        Ok((object, summary))
    }

    fn multipart(&mut self) -> Result<&mut Multipart, Error> {
        match &mut self.state {
            State::Multipart(multipart) => Ok(multipart),
            _ => Err(Error::InvalidInput("no multipart upload under way (finished or failed)".into())),
        }
    }

    fn check_part(&mut self, part: &Part, last: bool) -> Result<(), Error> {
        if let State::Storing { .. } | State::Completed | State::Aborted = self.state {
            return Err(Error::InvalidInput("part pushed after the upload finished or failed".into()));
        }
        if part.number != self.next_number {
            return Err(Error::InvalidInput(format!(
                "part {} pushed where part {} was due",
                part.number, self.next_number
            )));
        }
        // A part without a CRC has it computed on its task; one with a CRC must have the mode's.
        let mode_crc = self.inner.config.checksum_mode.crc();
        if part.crc.is_some() && part.crc.map(|c| c.algorithm) != mode_crc {
            return Err(Error::InvalidInput(format!(
                "part {} carries CRC {:?} but the checksum mode needs {:?}",
                part.number,
                part.crc.map(|c| c.algorithm),
                mode_crc
            )));
        }
        match (last, self.part_size) {
            (false, None) if part.len() < MIN_PART_SIZE => {
                return Err(Error::InvalidInput(format!(
                    "non-last part of {} bytes is under 5 MiB",
                    part.len()
                )));
            }
            (false, None) => self.part_size = Some(part.len()),
            (false, Some(size)) if size != part.len() => {
                return Err(Error::InvalidInput(format!(
                    "part {} has {} bytes; every non-last part must have {size}",
                    part.number,
                    part.len()
                )));
            }
            (true, Some(size)) if part.len() > size => {
                return Err(Error::InvalidInput(format!(
                    "last part {} is larger than the part size",
                    part.number
                )));
            }
            _ => {}
        }
        self.next_number += 1;
        Ok(())
    }

    /// Takes what the upload left in S3 and removes it in a task of its own, counted by
    /// [`Uploader::cleanups_settled`](crate::Uploader::cleanups_settled): dropping the caller's
    /// future cannot cut it short. `None` when nothing is left (or no runtime can run the task).
    fn start_cleanup(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let cleanup = match std::mem::replace(&mut self.state, State::Aborted) {
            State::Multipart(multipart) => multipart.into_cleanup(),
            State::Storing { upload_id } => cleanup::Cleanup::Delete { upload_id },
            State::NotStarted | State::Aborted => return None,
            State::Completed => {
                self.state = State::Completed;
                return None;
            }
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(key = %self.key, "upload ended outside a tokio runtime: cannot clean it up; the reaper or the bucket lifecycle rule will");
            return None;
        };
        let guard = self.inner.cleanups.start();
        let (inner, key) = (Arc::clone(&self.inner), self.key.clone());
        Some(runtime.spawn(async move {
            cleanup.run(inner, key).await;
            drop(guard);
        }))
    }
}

impl Drop for ObjectUpload {
    fn drop(&mut self) {
        if self.start_cleanup().is_some() {
            tracing::debug!(key = %self.key, "upload dropped unfinished; cleaning up in the background");
        }
    }
}
