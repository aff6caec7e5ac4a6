//! Storing and verifying the object: the single PutObject of a one-part file, the
//! CompleteMultipartUpload of the others, and the checks of what S3 answers against what the
//! chunker computed (each part's ETag and CRC, the whole object's ETag and FULL_OBJECT CRC).

use super::meta::{ObjectMeta, UploadedObject, apply_crc, apply_meta, returned_checksum};
use crate::attempt::{AttemptError, with_retries};
use crate::config::{ChecksumMode, UploadConfig};
use crate::error::Error;
use crate::rope::RopeBody;
use crate::{Inner, UploadedPart};
use aws_sdk_s3::types::ChecksumMode as HeadChecksumMode;
use aws_sdk_s3::types::{ChecksumType, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use ferry_core::checksum::{Crc, CrcAlgorithm, Md5};
use ferry_core::chunk::{ObjectSummary, Part};
use ferry_core::s3::{checksum_matches, etag_matches, unquote_etag};

/// Stores a one-part file (its digests already computed) with one PutObject carrying the mode's
/// `Content-MD5` or CRC; the answer is verified within each attempt, so a damaged upload is sent
/// again.
pub(crate) async fn put_single(
    inner: &Inner,
    key: &str,
    meta: &ObjectMeta,
    part: Part,
    summary: &ObjectSummary,
) -> Result<UploadedObject, Error> {
    let Part { data, md5, crc, .. } = part;
    let len = data.len();
    let _held = inner.memory.hold(len);
    // The part's own slices go out as the body: no copy, however many attempts.
    let slices: Vec<Bytes> = data.slices().to_vec();
    drop(data);
    let ((etag, version_id), attempts) =
        with_retries(&inner.config.retry, "PutObject", &inner.bucket, |_| {
            let body = RopeBody::byte_stream(&slices);
            async move {
                let req = inner
                    .client
                    .put_object()
                    .bucket(&inner.bucket)
                    .key(key)
                    .content_length(len as i64)
                    .set_content_md5(md5.map(|md5| md5.to_base64()))
                    .body(body);
                let req = apply_meta(
                    req,
                    meta,
                    |r, v| r.content_type(v),
                    |r, v| r.content_disposition(v),
                    |r, k, v| r.metadata(k, v),
                );
                let req = apply_crc(req, crc, |r, v| r.checksum_crc32_c(v), |r, v| r.checksum_crc64_nvme(v));
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
        .await?;
    tracing::debug!(%key, attempts, "object stored with one PUT");
    Ok(stored_object(inner, key, version_id, etag, summary, 1))
}

/// What CompleteMultipartUpload answered: the object's ETag, version and returned checksum.
#[derive(Debug)]
pub(crate) struct Completed {
    etag: String,
    version_id: Option<String>,
    checksum: Option<String>,
}

/// Completes `upload_id` with `parts` and the whole object's FULL_OBJECT CRC. A retried Complete
/// whose first try succeeded finds the upload gone: the object's ETag then tells whether it was ours.
pub(crate) async fn complete(
    inner: &Inner,
    key: &str,
    upload_id: &str,
    parts: &[UploadedPart],
    summary: &ObjectSummary,
) -> Result<Completed, Error> {
    let mode = inner.config.checksum_mode;
    let parts: Vec<CompletedPart> = parts
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
    let expected_crc = summary.crc;
    let (completed, _) =
        with_retries(&inner.config.retry, "CompleteMultipartUpload", &inner.bucket, |attempt| {
            let parts = parts.clone();
            let expected_etag = &expected_etag;
            async move {
                let req = inner
                    .client
                    .complete_multipart_upload()
                    .bucket(&inner.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
                let req = match summary.crc {
                    Some(crc) => apply_crc(
                        req,
                        Some(crc),
                        |r, v| r.checksum_crc32_c(v),
                        |r, v| r.checksum_crc64_nvme(v),
                    )
                    .checksum_type(ChecksumType::FullObject),
                    None => req,
                };
                match req.send().await {
                    Ok(out) => Ok(Completed {
                        etag: out.e_tag().map(unquote_etag).unwrap_or_default().to_owned(),
                        version_id: out.version_id.clone(),
                        checksum: returned_checksum(
                            summary.crc.map_or(CrcAlgorithm::Crc64Nvme, |c| c.algorithm),
                            out.checksum_crc32_c(),
                            out.checksum_crc64_nvme(),
                        )
                        .map(str::to_owned),
                    }),
                    Err(err) => {
                        let err = AttemptError::from(err);
                        if attempt > 1 && err.code.as_deref() == Some("NoSuchUpload") {
                            let head = inner
                                .client
                                .head_object()
                                .bucket(&inner.bucket)
                                .key(key)
                                .checksum_mode(HeadChecksumMode::Enabled)
                                .send()
                                .await;
                            // Ours if its ETag (when the part MD5s are known) or its CRC matches.
                            let ours = |head: &aws_sdk_s3::operation::head_object::HeadObjectOutput| match (
                                expected_etag,
                                expected_crc,
                            ) {
                                (Some(etag), _) => head.e_tag().is_some_and(|e| etag_matches(e, etag)),
                                (None, Some(crc)) => returned_checksum(
                                    crc.algorithm,
                                    head.checksum_crc32_c(),
                                    head.checksum_crc64_nvme(),
                                )
                                .is_some_and(|r| checksum_matches(r, &crc)),
                                (None, None) => false,
                            };
                            if let Ok(head) = head
                                && ours(&head)
                            {
                                return Ok(Completed {
                                    etag: unquote_etag(head.e_tag().unwrap_or_default()).to_owned(),
                                    version_id: head.version_id,
                                    checksum: None,
                                });
                            }
                        }
                        Err(err)
                    }
                }
            }
        })
        .await?;
    Ok(completed)
}

/// Checks the completed object's ETag (unless opaque) and returned FULL_OBJECT checksum against
/// the chunker's `summary`, and describes the verified object.
///
/// # Errors
/// [`Error::ChecksumMismatch`] with `part: None`; the caller deletes the object.
pub(crate) fn verify_completed(
    inner: &Inner,
    key: &str,
    completed: Completed,
    summary: &ObjectSummary,
) -> Result<UploadedObject, Error> {
    let Completed { etag, version_id, checksum } = completed;
    if !inner.config.opaque_etags
        && let Some(expected_etag) = summary.multipart_etag()
        && !etag_matches(&etag, &expected_etag)
    {
        return Err(Error::ChecksumMismatch {
            part: None,
            what: "etag",
            expected: expected_etag,
            actual: etag,
        });
    }
    if let (Some(crc), Some(returned)) = (summary.crc, checksum)
        && !checksum_matches(&returned, &crc)
    {
        return Err(Error::ChecksumMismatch {
            part: None,
            what: crc.algorithm.s3_name(),
            expected: crc.to_base64(),
            actual: returned,
        });
    }
    Ok(stored_object(inner, key, version_id, etag, summary, summary.part_count()))
}

fn stored_object(
    inner: &Inner,
    key: &str,
    version_id: Option<String>,
    etag: String,
    summary: &ObjectSummary,
    part_count: u32,
) -> UploadedObject {
    UploadedObject {
        bucket: inner.bucket.clone(),
        key: key.to_owned(),
        version_id,
        size: summary.len,
        etag,
        md5: summary.md5,
        checksum: summary.crc,
        part_count,
    }
}

/// Compares what S3 says it stored for a part (or a single PUT) with what was sent: the ETag with
/// the MD5 (unless ETags are opaque) and any returned checksum with the CRC. Returns the unquoted
/// ETag; a mismatch is a transient attempt error, so the same part number is sent again.
pub(super) fn verify_stored(
    config: &UploadConfig,
    part: u32,
    md5: Option<Md5>,
    crc: Option<Crc>,
    etag: Option<&str>,
    crc32c: Option<&str>,
    crc64: Option<&str>,
) -> Result<String, AttemptError> {
    let etag = etag.map(unquote_etag).unwrap_or_default().to_owned();
    // Without the part MD5 (a CRC mode) S3 has verified the bytes by their CRC.
    if !config.opaque_etags
        && let Some(md5) = md5
        && !etag_matches(&etag, &md5.to_hex())
    {
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
