//! Listing and aborting multipart uploads: resumption (the parts an upload already has) and
//! debris control (the uploads left under a prefix).

use crate::attempt::{AttemptError, with_retries};
use crate::error::Error;
use crate::{Inner, UploadedPart};
use ferry_core::s3::unquote_etag;
use std::time::SystemTime;

/// A multipart upload S3 still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// Object key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// When it was created, if S3 said.
    pub initiated: Option<SystemTime>,
}

/// Every part of `upload_id`, paging past 1,000.
pub(crate) async fn list_parts(
    inner: &Inner,
    key: &str,
    upload_id: &str,
) -> Result<Vec<UploadedPart>, Error> {
    let mut parts = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let (page, _) = with_retries(&inner.config.retry, "ListParts", &inner.bucket, |_| {
            let marker = marker.clone();
            async move {
                inner
                    .client
                    .list_parts()
                    .bucket(&inner.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .set_part_number_marker(marker)
                    .send()
                    .await
                    .map_err(AttemptError::from)
            }
        })
        .await
        .map_err(|e| match e {
            Error::Service { code: Some(code), .. } if code == "NoSuchUpload" => {
                Error::NoSuchUpload { upload_id: upload_id.to_owned() }
            }
            other => other,
        })?;
        for part in page.parts() {
            parts.push(UploadedPart {
                number: part.part_number().unwrap_or_default() as u32,
                etag: part.e_tag().map(unquote_etag).unwrap_or_default().to_owned(),
                size: part.size().unwrap_or_default() as u64,
                crc: None,
                md5: None,
            });
        }
        match (page.is_truncated(), page.next_part_number_marker()) {
            (Some(true), Some(next)) if !next.is_empty() => marker = Some(next.to_owned()),
            _ => break,
        }
    }
    parts.sort_by_key(|p| p.number);
    Ok(parts)
}

/// Every multipart upload under `prefix`, paging past 1,000.
pub(crate) async fn list_uploads(inner: &Inner, prefix: &str) -> Result<Vec<PendingUpload>, Error> {
    let mut uploads = Vec::new();
    let mut markers: (Option<String>, Option<String>) = (None, None);
    loop {
        let (page, _) = with_retries(&inner.config.retry, "ListMultipartUploads", &inner.bucket, |_| {
            let (key_marker, id_marker) = markers.clone();
            async move {
                inner
                    .client
                    .list_multipart_uploads()
                    .bucket(&inner.bucket)
                    .prefix(prefix)
                    .set_key_marker(key_marker)
                    .set_upload_id_marker(id_marker)
                    .send()
                    .await
                    .map_err(AttemptError::from)
            }
        })
        .await?;
        for upload in page.uploads() {
            uploads.push(PendingUpload {
                key: upload.key().unwrap_or_default().to_owned(),
                upload_id: upload.upload_id().unwrap_or_default().to_owned(),
                initiated: upload.initiated().and_then(|t| SystemTime::try_from(*t).ok()),
            });
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        let next =
            (page.next_key_marker().map(str::to_owned), page.next_upload_id_marker().map(str::to_owned));
        if next.0.is_none() || next == markers {
            break;
        }
        markers = next;
    }
    Ok(uploads)
}

/// Aborts `upload_id`; an upload that is already gone counts as aborted.
pub(crate) async fn abort(inner: &Inner, key: &str, upload_id: &str) -> Result<(), Error> {
    let result = with_retries(&inner.config.retry, "AbortMultipartUpload", &inner.bucket, |_| async {
        inner
            .client
            .abort_multipart_upload()
            .bucket(&inner.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(AttemptError::from)
    })
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(Error::Service { code: Some(code), .. }) if code == "NoSuchUpload" => Ok(()),
        Err(e) => Err(e),
    }
}
