//! Stored objects: reading one back as a stream, presigning a download, deleting, and checking that
//! the bucket answers.

use crate::Inner;
use crate::attempt::{AttemptError, with_retries};
use crate::error::{BoxError, Error};
use bytes::Bytes;
use futures::Stream;
use std::time::Duration;

/// The object's bytes as a stream (one GetObject; the body is never held whole).
pub(crate) async fn open(
    inner: &Inner,
    key: &str,
) -> Result<(u64, impl Stream<Item = Result<Bytes, BoxError>> + Send + use<>), Error> {
    let (out, _) = with_retries(&inner.config.retry, "GetObject", &inner.bucket, |_| async {
        inner.client.get_object().bucket(&inner.bucket).key(key).send().await.map_err(AttemptError::from)
    })
    .await?;
    let len = out.content_length().unwrap_or_default().max(0) as u64;
    let body = out.body;
    let stream = futures::stream::unfold(body, |mut body| async move {
        match body.next().await {
            Some(Ok(bytes)) => Some((Ok(bytes), body)),
            Some(Err(e)) => Some((Err(Box::new(e) as BoxError), body)),
            None => None,
        }
    });
    Ok((len, stream))
}

/// A presigned GET of `key`, valid for `ttl`, optionally overriding `Content-Disposition`.
pub(crate) async fn presign_get(
    inner: &Inner,
    key: &str,
    ttl: Duration,
    disposition: Option<&str>,
) -> Result<String, Error> {
    let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
        .map_err(|e| Error::InvalidInput(format!("presigning: {e}")))?;
    let request = inner
        .client
        .get_object()
        .bucket(&inner.bucket)
        .key(key)
        .set_response_content_disposition(disposition.map(str::to_owned))
        .presigned(config)
        .await
        .map_err(|e| Error::InvalidInput(format!("presigning: {e}")))?;
    Ok(request.uri().to_owned())
}

/// Deletes `key` (absent counts as deleted).
pub(crate) async fn delete(inner: &Inner, key: &str) -> Result<(), Error> {
    with_retries(&inner.config.retry, "DeleteObject", &inner.bucket, |_| async {
        inner.client.delete_object().bucket(&inner.bucket).key(key).send().await.map_err(AttemptError::from)
    })
    .await
    .map(drop)
}

/// Copies `from` to `to` in the bucket (one CopyObject: up to 5 GiB), metadata included.
pub(crate) async fn copy(inner: &Inner, from: &str, to: &str) -> Result<(), Error> {
    let source = format!("{}/{from}", inner.bucket);
    with_retries(&inner.config.retry, "CopyObject", &inner.bucket, |_| async {
        inner
            .client
            .copy_object()
            .bucket(&inner.bucket)
            .key(to)
            .copy_source(&source)
            .send()
            .await
            .map_err(AttemptError::from)
    })
    .await
    .map(drop)
}

/// Whether the bucket answers (HeadBucket), without retries: for readiness probes.
pub(crate) async fn check_bucket(inner: &Inner) -> Result<(), Error> {
    with_retries(&ferry_core::retry::RetryPolicy::never(), "HeadBucket", &inner.bucket, |_| async {
        inner.client.head_bucket().bucket(&inner.bucket).send().await.map_err(AttemptError::from)
    })
    .await
    .map(drop)
}
