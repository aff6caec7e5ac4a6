//! Conditional writes: create an object only if no object has its key (`If-None-Match: *`).
//!
//! S3 (since 2024), MinIO and LocalStack 4.4 refuse the second of two such writes with
//! 412 `PreconditionFailed`, or 409 `ConditionalRequestConflict` when the two race; both mean
//! "someone else created it first". ferry-server records used upload tickets this way, so a ticket
//! is single-use across any number of processes. A store that ignores the header accepts both
//! writes: [`Uploader::supports_conditional_writes`] finds that out by writing one key twice.

use crate::Uploader;
use crate::attempt::{AttemptError, with_retries};
use crate::error::Error;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use bytes::Bytes;
use std::time::SystemTime;

impl Uploader {
    /// Creates `key` with `body` unless an object with that key exists. `expires` is stored as the
    /// object's `Expires` (a bucket lifecycle rule removes markers; ferry never reads them back).
    ///
    /// Returns `true` when this call created the object, `false` when it already existed
    /// (412 `PreconditionFailed`, or 409 `ConditionalRequestConflict` for a concurrent write).
    ///
    /// # Errors
    /// Any other S3 failure, after the usual retries.
    pub async fn put_if_absent(&self, key: &str, body: Bytes, expires: SystemTime) -> Result<bool, Error> {
        let inner = &self.inner;
        let result = with_retries(&inner.config.retry, "PutObject", &inner.bucket, |_| {
            let body = body.clone();
            async move {
                inner
                    .client
                    .put_object()
                    .bucket(&inner.bucket)
                    .key(key)
                    .if_none_match("*")
                    .expires(DateTime::from(expires))
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(AttemptError::from)
            }
        })
        .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if is_already_there(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Whether the store honours `If-None-Match: *`: writes `probe_key` twice (the second write must
    /// be refused), then deletes it.
    ///
    /// # Errors
    /// S3 failures (the bucket does not answer, access denied).
    pub async fn supports_conditional_writes(&self, probe_key: &str) -> Result<bool, Error> {
        let expires = SystemTime::now() + std::time::Duration::from_secs(3600);
        let body = Bytes::from_static(b"ferry conditional-write probe");
        let first = self.put_if_absent(probe_key, body.clone(), expires).await?;
        let second = self.put_if_absent(probe_key, body, expires).await?;
        self.delete(probe_key).await?;
        Ok(first && !second)
    }
}

/// 412 `PreconditionFailed` or 409 `ConditionalRequestConflict`: the key exists (or is being
/// created by a concurrent write that will win); for an `If-Match` write, the ETag no longer
/// matches (how the resumable state's conditional writes read it).
pub(crate) fn is_already_there(error: &Error) -> bool {
    match error {
        Error::Service { status, code, .. } => {
            matches!(code.as_deref(), Some("PreconditionFailed" | "ConditionalRequestConflict"))
                || matches!(status, Some(412))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::tests::service;

    #[test]
    fn precondition_failures_and_conflicts_mean_the_key_exists() {
        assert!(is_already_there(&service(412, "PreconditionFailed")));
        assert!(is_already_there(&service(409, "ConditionalRequestConflict")));
        assert!(!is_already_there(&service(409, "OperationAborted")));
        assert!(!is_already_there(&service(500, "InternalError")));
        assert!(!is_already_there(&Error::NoSuchBucket { bucket: "b".into() }));
    }

    #[tokio::test]
    #[ignore = "needs LocalStack"]
    async fn localstack_refuses_the_second_write_and_races_have_one_winner() {
        let endpoint = ferry_testkit::localstack::endpoint();
        let client = crate::build_client(&crate::S3Config::compatible(&endpoint, "test", "test")).await;
        let bucket = format!("ferry-conditional-{}", std::process::id());
        let _ = client.create_bucket().bucket(&bucket).send().await;
        let uploader = Uploader::new(client, bucket, crate::UploadConfig::default());
        assert!(uploader.supports_conditional_writes("probe").await.unwrap());
        let expires = SystemTime::now() + std::time::Duration::from_secs(60);
        let key = "tickets/race";
        let tries = (0..8).map(|_| uploader.put_if_absent(key, Bytes::from_static(b"x"), expires));
        let created = futures::future::join_all(tries).await;
        let winners = created.into_iter().map(Result::unwrap).filter(|c| *c).count();
        assert_eq!(winners, 1, "exactly one of eight concurrent writes creates the key");
        assert!(!uploader.put_if_absent(key, Bytes::new(), expires).await.unwrap());
        uploader.delete(key).await.unwrap();
    }
}
