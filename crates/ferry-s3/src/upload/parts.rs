//! The multipart upload while its parts go up: created lazily with the first full part, at most
//! `max_in_flight` part tasks at once (the caller waits for a free slot: that is the back-pressure),
//! each part hashed on its own task (off the async workers, in parallel with the other parts) when
//! the chunker deferred its digests, sent as its own slices and retried until its ETag or checksum
//! match.

use super::cleanup::Cleanup;
use super::meta::{ObjectMeta, apply_crc, apply_meta, sdk_algorithm};
use super::verify::verify_stored;
use crate::attempt::{AttemptError, with_retries};
use crate::config::{ChecksumMode, UploadConfig};
use crate::error::Error;
use crate::memory::HeldBytes;
use crate::rope::RopeBody;
use crate::{Inner, UploadedPart};
use aws_sdk_s3::types::ChecksumType;
use bytes::Bytes;
use ferry_core::chunk::Part;
use ferry_core::s3::etag_matches;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinSet;

/// A multipart upload S3 holds, with the parts uploading and those done.
#[derive(Debug)]
pub(super) struct Multipart {
    pub(super) upload_id: String,
    in_flight: JoinSet<Result<UploadedPart, Error>>,
    completed: Vec<UploadedPart>,
    /// Parts S3 already held when the upload was resumed.
    existing: BTreeMap<u32, UploadedPart>,
}

impl Multipart {
    /// Creates the multipart upload (CreateMultipartUpload with the object's metadata and, by the
    /// checksum mode, a FULL_OBJECT algorithm); the uploader owns it until it is completed or aborted.
    pub(super) async fn create(inner: &Inner, key: &str, meta: &ObjectMeta) -> Result<Self, Error> {
        let (upload_id, _) =
            with_retries(&inner.config.retry, "CreateMultipartUpload", &inner.bucket, |_| async {
                let mut req = inner.client.create_multipart_upload().bucket(&inner.bucket).key(key);
                req = apply_meta(
                    req,
                    meta,
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
        tracing::debug!(%key, %upload_id, "multipart upload created");
        inner.own(&upload_id);
        Ok(Self::resumed(upload_id, Vec::new()))
    }

    /// An existing multipart upload holding `existing` parts (the caller owns the id already).
    pub(super) fn resumed(upload_id: String, existing: Vec<UploadedPart>) -> Self {
        Self {
            upload_id,
            in_flight: JoinSet::new(),
            completed: Vec::new(),
            existing: existing.into_iter().map(|p| (p.number, p)).collect(),
        }
    }

    /// Parts uploading now.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Waits until fewer than `max` parts are uploading.
    ///
    /// # Errors
    /// The first failure of a part that finished meanwhile.
    pub(super) async fn wait_for_slot(&mut self, max: usize) -> Result<(), Error> {
        while self.in_flight.len() >= max.max(1) {
            self.join_one().await?;
        }
        Ok(())
    }

    /// Starts uploading `part` (counted in the gauge by `held` until it is sent), unless a resumed
    /// upload already holds exactly these bytes under its number.
    pub(super) fn spawn(&mut self, inner: &Arc<Inner>, key: &str, part: Part, held: HeldBytes) {
        if let Some(existing) = self.existing.get(&part.number)
            && existing.size == part.len()
        {
            // Resumed upload (a rare path: hashed here): a part already stored under this number
            // is kept when its ETag is these bytes' MD5.
            let mode_crc = inner.config.checksum_mode.crc();
            let (md5, crc) = part.data.digests(part.md5.is_none(), mode_crc.filter(|_| part.crc.is_none()));
            let (md5, crc) = (part.md5.or(md5), part.crc.or(crc));
            if md5.is_some_and(|md5| etag_matches(&existing.etag, &md5.to_hex())) {
                self.completed.push(UploadedPart { crc, md5, ..existing.clone() });
                return;
            }
        }
        let (inner, key, upload_id) = (Arc::clone(inner), key.to_owned(), self.upload_id.clone());
        self.in_flight.spawn(upload_part(inner, key, upload_id, part, held));
    }

    /// Waits for every part, then returns them all in order, checking they are exactly parts
    /// `1..=expected`.
    ///
    /// # Errors
    /// The first part failure, or [`Error::InvalidInput`] if the parts do not match `expected`.
    pub(super) async fn join_all(&mut self, expected: u32) -> Result<Vec<UploadedPart>, Error> {
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        self.completed.sort_by_key(|p| p.number);
        let numbers_ok = self.completed.iter().enumerate().all(|(i, p)| p.number as usize == i + 1);
        if !numbers_ok || self.completed.len() != expected as usize {
            return Err(Error::InvalidInput(format!(
                "{} parts uploaded but the summary describes {expected}",
                self.completed.len()
            )));
        }
        Ok(std::mem::take(&mut self.completed))
    }

    /// What to remove if the upload goes no further.
    pub(super) fn into_cleanup(self) -> Cleanup {
        Cleanup::Abort { upload_id: self.upload_id, tasks: self.in_flight }
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
}

/// Creates a multipart upload as [`Multipart::create`] does and returns its id alone (for
/// resumable uploads, which keep their parts in their state object).
pub(crate) async fn create_upload_id(inner: &Inner, key: &str, meta: &ObjectMeta) -> Result<String, Error> {
    Multipart::create(inner, key, meta).await.map(|multipart| multipart.upload_id)
}

/// `part` with the digests the checksum mode needs (the MD5 in the `md5` mode, the CRC in the
/// others), computed on a blocking thread when the chunker deferred them: an 8 MiB MD5 is
/// milliseconds of CPU that must not stall the async workers.
///
/// # Errors
/// Only if the hashing thread panicked.
pub(crate) async fn with_digests(config: &UploadConfig, mut part: Part) -> Result<Part, Error> {
    let want_md5 = config.checksum_mode == ChecksumMode::Md5 && part.md5.is_none();
    let want_crc = config.checksum_mode.crc().filter(|_| part.crc.is_none());
    if !want_md5 && want_crc.is_none() {
        return Ok(part);
    }
    let data = part.data.clone();
    let (md5, crc) = tokio::task::spawn_blocking(move || data.digests(want_md5, want_crc))
        .await
        .map_err(|e| Error::InvalidInput(format!("hashing part {} failed: {e}", part.number)))?;
    part.md5 = part.md5.or(md5);
    part.crc = part.crc.or(crc);
    Ok(part)
}

/// One part's UploadPart under the retry policy: its digests (see [`with_digests`]), its own
/// slices as the body (no copy, however many attempts), `Content-MD5` when the part MD5 is known
/// and the mode's CRC, the answer verified.
pub(crate) async fn upload_part(
    inner: Arc<Inner>,
    key: String,
    upload_id: String,
    part: Part,
    held: HeldBytes,
) -> Result<UploadedPart, Error> {
    let Part { number, data, md5, crc } = with_digests(&inner.config, part).await?;
    let size = data.len();
    let slices: Vec<Bytes> = data.slices().to_vec();
    drop(data);
    let (etag, attempts) = with_retries(&inner.config.retry, "UploadPart", &inner.bucket, |_| {
        let body = RopeBody::byte_stream(&slices);
        let (inner, key, upload_id) = (&inner, &key, &upload_id);
        async move {
            let req = inner
                .client
                .upload_part()
                .bucket(&inner.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number as i32)
                .content_length(size as i64)
                .set_content_md5(md5.map(|md5| md5.to_base64()))
                .body(body);
            let req = apply_crc(req, crc, |r, v| r.checksum_crc32_c(v), |r, v| r.checksum_crc64_nvme(v));
            let out = req.customize().disable_payload_signing().send().await.map_err(AttemptError::from)?;
            // A mismatch means what S3 stored is not what was sent: this part number goes again.
            verify_stored(
                &inner.config,
                number,
                md5,
                crc,
                out.e_tag(),
                out.checksum_crc32_c(),
                out.checksum_crc64_nvme(),
            )
        }
    })
    .await?;
    if attempts > 1 {
        tracing::info!(%key, part = number, attempts, "part uploaded after retries");
        inner.stats.part_retries.fetch_add(u64::from(attempts - 1), std::sync::atomic::Ordering::Relaxed);
    }
    drop(slices);
    drop(held);
    Ok(UploadedPart { number, etag, size, crc, md5 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::checksum::{CrcAlgorithm, Md5};
    use ferry_core::chunk::{Chunker, ChunkerOptions};
    use ferry_core::plan::{PlanLimits, plan_parts};

    fn deferred_part(data: &'static [u8]) -> Part {
        let plan = plan_parts(Some(data.len() as u64), &PlanLimits::default()).unwrap();
        let options =
            ChunkerOptions { crc: None, part_md5: false, whole_md5: false, sha256: false, defer: true };
        let mut chunker = Chunker::new(plan, options);
        assert!(chunker.push(Bytes::from_static(data)).unwrap().is_empty());
        let whole = chunker.whole_hasher().finish();
        chunker.finish_with(whole).unwrap().0.unwrap()
    }

    #[tokio::test]
    async fn each_mode_hashes_only_what_it_sends() {
        let config = |checksum_mode| UploadConfig { checksum_mode, ..UploadConfig::default() };
        let part = with_digests(&config(ChecksumMode::Md5), deferred_part(b"ferry")).await.unwrap();
        assert_eq!((part.md5, part.crc), (Some(Md5::of(b"ferry")), None));
        let part = with_digests(&config(ChecksumMode::Crc64Nvme), deferred_part(b"ferry")).await.unwrap();
        let crc = CrcAlgorithm::Crc64Nvme.checksum(b"ferry");
        assert_eq!((part.md5, part.crc), (None, Some(crc)), "no part MD5 when S3 checks the CRC");
        let part = with_digests(&config(ChecksumMode::Crc32c), deferred_part(b"")).await.unwrap();
        assert_eq!(part.crc, Some(CrcAlgorithm::Crc32c.empty()));
    }
}
