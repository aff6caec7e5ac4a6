//! Clean-up in one place: what an unfinished upload may have left in S3 ([`Cleanup`]), and removing
//! it. Every failure, explicit abort and drop of an upload ends here.

use crate::attempt::{AttemptError, with_retries};
use crate::error::Error;
use crate::{Inner, UploadedPart};
use std::sync::Arc;
use tokio::task::JoinSet;

/// What an upload that will not finish leaves behind.
#[derive(Debug)]
pub(super) enum Cleanup {
    /// A multipart upload exists and parts may be uploading: stop them, abort the upload, and check
    /// that S3 lists no parts for it any more.
    Abort { upload_id: String, tasks: JoinSet<Result<UploadedPart, Error>> },
    /// A PutObject or CompleteMultipartUpload was sent: the key may hold an object that is not (or
    /// not yet) verified. Abort the multipart upload if it is not spent, then delete the object (the
    /// key is this upload's alone).
    Delete { upload_id: Option<String> },
}

impl Cleanup {
    /// Removes what was left. Never fails: what cannot be removed is logged, and the reaper (or the
    /// bucket's lifecycle rule) removes it later.
    pub(super) async fn run(self, inner: Arc<Inner>, key: String) {
        match self {
            Self::Abort { upload_id, tasks } => abort_and_verify(&inner, &key, &upload_id, tasks).await,
            Self::Delete { upload_id } => {
                if let Some(upload_id) = upload_id {
                    abort_and_verify(&inner, &key, &upload_id, JoinSet::new()).await;
                }
                delete_object(&inner, &key).await;
            }
        }
    }
}

/// Stops the part tasks, aborts the upload, and checks that S3 lists no parts for it any more,
/// aborting again if a part that was in flight landed after the first abort.
async fn abort_and_verify(
    inner: &Inner,
    key: &str,
    upload_id: &str,
    mut tasks: JoinSet<Result<UploadedPart, Error>>,
) {
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    for round in 1..=3 {
        if let Err(error) = crate::listing::abort(inner, key, upload_id).await {
            tracing::warn!(%key, %upload_id, %error, "abort failed");
        }
        match crate::listing::list_parts(inner, key, upload_id).await {
            Ok(parts) if !parts.is_empty() => {
                tracing::warn!(%key, %upload_id, round, parts = parts.len(), "parts remain after abort; aborting again");
            }
            // Gone (NoSuchUpload, or AccessDenied from stores that say so for unknown ids), or empty.
            _ => {
                inner.stats.aborted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                inner.disown(upload_id);
                return;
            }
        }
    }
    tracing::error!(%key, %upload_id, "multipart upload still lists parts after 3 aborts; the reaper will retry");
}

/// Deletes whatever object is at `key` (absent counts as deleted).
async fn delete_object(inner: &Inner, key: &str) {
    let result = with_retries(&inner.config.retry, "DeleteObject", &inner.bucket, |_| async {
        inner.client.delete_object().bucket(&inner.bucket).key(key).send().await.map_err(AttemptError::from)
    })
    .await;
    if let Err(error) = result {
        tracing::error!(%key, %error, "could not delete an unverified object");
    }
}
