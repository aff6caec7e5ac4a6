//! The one error type of ferry-s3.

use ferry_core::chunk::ChunkError;
use std::fmt;

/// A boxed source error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an upload (or a listing) failed. Whatever the variant, the upload that failed has been
/// aborted and nothing of it remains: no multipart upload, no parts, no object (see
/// [`crate::ObjectUpload`]).
///
/// Three variants come from the caller's side of [`Uploader::upload`](crate::Uploader::upload)
/// rather than from S3: [`Error::Body`], [`Error::Chunk`] and [`Error::Rejected`].
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
    /// The body stream yielded an error: it is the caller's own error, boxed (downcast it to get it
    /// back).
    #[error("the body failed: {0}")]
    Body(#[source] BoxError),
    /// The chunker refused the body: longer than declared or than the maximum, or shorter than
    /// declared.
    #[error("the body does not fit its plan: {0}")]
    Chunk(#[source] ChunkError),
    /// The caller's [`Gate`](crate::Gate) refused the object (a declared digest did not match, …);
    /// the gate's error, boxed.
    #[error("the upload was rejected: {0}")]
    Rejected(#[source] BoxError),
}

/// S3 error codes that say ferry's configuration is wrong (credentials, region, bucket, key, a
/// feature the store lacks) rather than that S3 is unwell.
const OPERATOR_CODES: &[&str] = &[
    "AccessDenied",
    "AllAccessDisabled",
    "AccountProblem",
    "AuthorizationHeaderMalformed",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidBucketName",
    "InvalidToken",
    "NoSuchBucket",
    "NotImplemented",
    "PermanentRedirect",
    "SignatureDoesNotMatch",
];

impl Error {
    /// Whether trying the whole upload again later could succeed (S3 was unreachable, throttling,
    /// or damaged the data), as opposed to a configuration problem, a caller bug, or the caller's
    /// input ([`Error::Body`], [`Error::Chunk`], [`Error::Rejected`]).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Throttled { .. } | Self::Transport { .. } | Self::ChecksumMismatch { .. } => true,
            Self::Service { status, .. } => status.is_none_or(|s| s >= 500),
            _ => false,
        }
    }

    /// Whether an operator must fix ferry's configuration: the bucket is missing, the credentials
    /// are wrong or may not do this, the region or endpoint is wrong, the KMS key is unusable, or
    /// the store lacks a feature the checksum mode needs. Such failures are neither S3 being unwell
    /// ([`is_retryable`](Self::is_retryable)) nor the caller's input.
    pub fn is_operator_fault(&self) -> bool {
        match self {
            Self::AccessDenied { .. } | Self::NoSuchBucket { .. } => true,
            Self::Service { status, code, .. } => {
                matches!(status, Some(301 | 401 | 403))
                    || code.as_deref().is_some_and(|c| OPERATOR_CODES.contains(&c) || c.starts_with("KMS."))
            }
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
            Self::Body(_) => "body",
            Self::Chunk(_) => "chunk",
            Self::Rejected(_) => "rejected",
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An S3 service error with this status and code, for the classification tests.
    pub(crate) fn service(status: u16, code: &str) -> Error {
        Error::Service {
            operation: "PutObject",
            status: Some(status),
            code: Some(code.into()),
            message: String::new(),
            attempts: 1,
        }
    }

    #[test]
    fn operator_faults_are_configuration_not_weather() {
        assert!(Error::NoSuchBucket { bucket: "b".into() }.is_operator_fault());
        assert!(Error::AccessDenied { operation: "PutObject", message: String::new() }.is_operator_fault());
        assert!(service(403, "InvalidAccessKeyId").is_operator_fault());
        assert!(service(400, "AuthorizationHeaderMalformed").is_operator_fault());
        assert!(service(400, "KMS.DisabledException").is_operator_fault());
        assert!(service(301, "").is_operator_fault());
        assert!(!service(503, "SlowDown").is_operator_fault());
        assert!(!service(500, "InternalError").is_operator_fault());
        assert!(!service(400, "InvalidDigest").is_operator_fault());
        assert!(!Error::Throttled { operation: "UploadPart", attempts: 6 }.is_operator_fault());
        assert!(!Error::Rejected("digest".into()).is_operator_fault());
    }

    #[test]
    fn the_callers_side_is_neither_retryable_nor_an_operator_fault() {
        let body = Error::Body(Box::new(std::io::Error::other("client went away")));
        let chunk = Error::Chunk(ChunkError::TooShort { received: 1, declared: 2 });
        let rejected = Error::Rejected("Content-MD5 does not match".into());
        for (error, kind) in [(&body, "body"), (&chunk, "chunk"), (&rejected, "rejected")] {
            assert!(!error.is_retryable() && !error.is_operator_fault(), "{error}");
            assert_eq!(error.kind(), kind);
        }
        // The caller gets its own error back.
        let Error::Body(source) = body else { unreachable!() };
        assert_eq!(source.downcast::<std::io::Error>().unwrap().to_string(), "client went away");
        assert!(std::error::Error::source(&chunk).is_some());
    }
}
