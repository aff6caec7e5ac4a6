//! The one error type of ferry-s3.

use std::fmt;

/// A boxed source error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an upload (or a listing) failed. Whatever the variant, the upload that failed has been
/// aborted and no parts of it remain (see [`crate::ObjectUpload`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// What S3 stored differs from what was sent: a part's ETag or checksum (`part: Some(n)`) or the
    /// whole object's (`part: None`), after every allowed re-upload.
    #[error("checksum mismatch on {}: {what} expected {expected}, S3 returned {actual}", part.map_or("the object".to_string(), |p| format!("part {p}")))]
    ChecksumMismatch {
        /// The part number, or `None` for the whole object.
        part: Option<u32>,
        /// Which digest (`etag`, `CRC64NVME`, …).
        what: &'static str,
        /// What ferry computed.
        expected: String,
        /// What S3 returned.
        actual: String,
    },
    /// The credentials may not do this.
    #[error("access denied by S3 on {operation}: {message}")]
    AccessDenied {
        /// The S3 operation.
        operation: &'static str,
        /// S3's message.
        message: String,
    },
    /// The bucket does not exist.
    #[error("no such bucket `{bucket}`")]
    NoSuchBucket {
        /// Bucket name.
        bucket: String,
    },
    /// The multipart upload id is unknown (aborted, completed, or never existed).
    #[error("no such multipart upload `{upload_id}`")]
    NoSuchUpload {
        /// Upload id.
        upload_id: String,
    },
    /// A non-last part was under 5 MiB.
    #[error("S3 refused a part under 5 MiB: {message}")]
    EntityTooSmall {
        /// S3's message.
        message: String,
    },
    /// S3 kept throttling (503 SlowDown, 429) until the retry budget ran out.
    #[error("S3 throttled {operation} through {attempts} attempts")]
    Throttled {
        /// The S3 operation.
        operation: &'static str,
        /// Attempts made.
        attempts: u32,
    },
    /// Connections failed, were reset or timed out until the retry budget ran out.
    #[error("could not reach S3 for {operation} after {attempts} attempts")]
    Transport {
        /// The S3 operation.
        operation: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: BoxError,
    },
    /// Any other answer from S3.
    #[error("S3 answered {operation} with {} {}: {message}", status.map_or("no status".into(), |s| s.to_string()), code.as_deref().unwrap_or("(no code)"))]
    Service {
        /// The S3 operation.
        operation: &'static str,
        /// HTTP status.
        status: Option<u16>,
        /// S3 error code.
        code: Option<String>,
        /// S3's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The caller broke the upload protocol (parts out of order, unequal part sizes, pushing after
    /// finishing): a bug in the caller, never retried.
    #[error("invalid use of the uploader: {0}")]
    InvalidInput(String),
}

impl Error {
    /// Whether trying the whole upload again later could succeed (S3 was unreachable, throttling,
    /// or damaged the data), as opposed to a configuration problem or a caller bug.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled { .. } | Self::Transport { .. } | Self::ChecksumMismatch { .. } => true,
            Self::Service { status, .. } => status.is_none_or(|s| s >= 500),
            _ => false,
        }
    }

    /// A stable, machine-readable name for the variant (for metrics and API error bodies).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ChecksumMismatch { .. } => "checksum_mismatch",
            Self::AccessDenied { .. } => "access_denied",
            Self::NoSuchBucket { .. } => "no_such_bucket",
            Self::NoSuchUpload { .. } => "no_such_upload",
            Self::EntityTooSmall { .. } => "entity_too_small",
            Self::Throttled { .. } => "throttled",
            Self::Transport { .. } => "transport",
            Self::Service { .. } => "service",
            Self::InvalidInput(_) => "invalid_input",
        }
    }
}

/// A value shown as `****` in `Debug` output (secrets, presigned URLs).
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(pub String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"****\"")
    }
}
