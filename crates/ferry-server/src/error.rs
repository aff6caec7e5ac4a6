//! The one place library errors become HTTP. [`ErrorCode`] names every answer ferry gives with its
//! stable string and its status; [`AppError`] is a code, a safe message and (where the client should
//! wait) a `Retry-After`, rendered as `{"error":{"code","message","requestId"}}`. The `From`
//! conversions sort the libraries' errors into codes, so handlers use `?`: the client's faults are
//! 4xx with a message saying what was wrong; an operator's (a missing bucket, refused credentials,
//! a setting Genesys refuses) is 500 with a code that says whose; a service that is unwell is 502 or
//! 503. 5xx messages say little, and the cause goes to the log.

#[allow(unused_imports, reason = "the tus status 460 in the table below")]
use crate::tus::TusStatus as _;
use axum::Json;
use axum::response::{IntoResponse, Response};
use ferry_core::chunk::ChunkError;
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use std::time::Duration;

/// Defines [`ErrorCode`] from one table, so its list, strings and statuses cannot drift apart.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal, $status:ident;)*) => {
        /// A stable error code: the `code` of an error body. `docs/api.md` and the OpenAPI file list
        /// every one (`tests/openapi.rs` checks them against [`ErrorCode::ALL`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the documentation's table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable string clients match on.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            /// The HTTP status the code comes with.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    /// A guest session without `X-Genesys-Deployment-Id`.
    MissingDeployment = "missing_deployment", BAD_REQUEST;
    /// A raw upload without `X-File-Name`.
    MissingFileName = "missing_file_name", BAD_REQUEST;
    /// A file name that is badly encoded, has control characters or is too long.
    InvalidFileName = "invalid_file_name", BAD_REQUEST;
    /// `Content-MD5` or `Repr-Digest` is not a digest.
    InvalidDigest = "invalid_digest", BAD_REQUEST;
    /// A malformed form, no `file` part, two of them, or an oversized extra field.
    InvalidMultipart = "invalid_multipart", BAD_REQUEST;
    /// A caption that is too long, not UTF-8 text or has control characters.
    InvalidCaption = "invalid_caption", BAD_REQUEST;
    /// A `conversationId` that is not 1 to 128 letters, digits, `-`, `_` or `.`, or given twice.
    InvalidConversationId = "invalid_conversation_id", BAD_REQUEST;
    /// The body is longer than its `Content-Length`.
    LengthMismatch = "length_mismatch", BAD_REQUEST;
    /// The body is shorter than its `Content-Length`.
    IncompleteBody = "incomplete_body", BAD_REQUEST;
    /// The body ended abnormally.
    ClientDisconnected = "client_disconnected", BAD_REQUEST;
    /// An Open Messaging deployment, and a ticket without `from`.
    MissingRecipient = "missing_recipient", BAD_REQUEST;
    /// No usable `Authorization`.
    MissingSession = "missing_session", UNAUTHORIZED;
    /// The token is not one Genesys issues, or Genesys has no session for it.
    UnknownSession = "unknown_session", UNAUTHORIZED;
    /// The ticket is malformed, tampered with, expired or used, or tickets are off.
    InvalidTicket = "invalid_ticket", UNAUTHORIZED;
    /// ferry is not configured for the deployment.
    DeploymentNotAllowed = "deployment_not_allowed", FORBIDDEN;
    /// A download link that is malformed, tampered with or expired.
    InvalidLink = "invalid_link", FORBIDDEN;
    /// Genesys refused the caller's session: it expired, or its connections are all in use.
    SessionRefused = "session_refused", FORBIDDEN;
    /// The deployment does not take uploads from guest sessions (`guests.uploads = false`).
    GuestUploadsDisabled = "guest_uploads_disabled", FORBIDDEN;
    /// An agent sign-in that cannot be completed: expired or started in another browser, a state
    /// that is not this browser's, a code Genesys refuses (used, wrong verifier), or cancelled.
    SignInFailed = "sign_in_failed", FORBIDDEN;
    /// The signed-in agent belongs to another Genesys organisation than the deployment's.
    WrongOrganization = "wrong_organization", FORBIDDEN;
    /// The signed-in agent holds none of the deployment's required roles or divisions.
    AgentNotAllowed = "agent_not_allowed", FORBIDDEN;
    /// The body stalled.
    BodyTimeout = "body_timeout", REQUEST_TIMEOUT;
    /// The body arrives slower than the minimum rate.
    TooSlow = "too_slow", REQUEST_TIMEOUT;
    /// The upload took longer than allowed.
    UploadTimeout = "upload_timeout", REQUEST_TIMEOUT;
    /// The conversation has ended.
    ConversationClosed = "conversation_closed", CONFLICT;
    /// Larger than a limit.
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE;
    /// Larger than the malware scanner takes, and `scan.too_large = "refuse"`.
    TooLargeToScan = "too_large_to_scan", PAYLOAD_TOO_LARGE;
    /// A blocked extension, a type not allowed, or content that is not what it claims.
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE;
    /// The bytes do not match the declared digest.
    ChecksumMismatch = "checksum_mismatch", UNPROCESSABLE_ENTITY;
    /// The malware scanner found a signature (named in the message); nothing was kept.
    MalwareDetected = "malware_detected", UNPROCESSABLE_ENTITY;
    /// Too many upload requests from one client address.
    RateLimited = "rate_limited", TOO_MANY_REQUESTS;
    /// A guest session is over a quota: uploads or bytes per hour, or uploads at once.
    GuestQuotaExceeded = "guest_quota_exceeded", TOO_MANY_REQUESTS;
    /// Too many guest sessions are being checked with Genesys for the deployment.
    SessionChecksLimited = "session_checks_limited", TOO_MANY_REQUESTS;
    /// The request's headers are larger than ferry accepts.
    HeadersTooLarge = "headers_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE;
    /// The storage is misconfigured (no such bucket, access denied): the operator's to fix.
    StorageMisconfigured = "storage_misconfigured", INTERNAL_SERVER_ERROR;
    /// Genesys refuses a setting of ferry's (credentials, origin, integration): the operator's to fix.
    GenesysMisconfigured = "genesys_misconfigured", INTERNAL_SERVER_ERROR;
    /// Genesys refused ferry's WebSocket connection (401/403 on the upgrade): the deployment's
    /// `origin` setting (or its id) is not one Genesys accepts.
    GenesysOriginRefused = "genesys_origin_refused", INTERNAL_SERVER_ERROR;
    /// Genesys could not be reached or refused the delivery.
    GenesysUnavailable = "genesys_unavailable", BAD_GATEWAY;
    /// Genesys Cloud could not be reached to complete an agent sign-in.
    SignInUnavailable = "sign_in_unavailable", BAD_GATEWAY;
    /// S3 failed.
    StorageUnavailable = "storage_unavailable", SERVICE_UNAVAILABLE;
    /// Genesys is rate limiting ferry.
    GenesysRateLimited = "genesys_rate_limited", SERVICE_UNAVAILABLE;
    /// The memory budget is in use.
    ServerBusy = "server_busy", SERVICE_UNAVAILABLE;
    /// tus: a header is missing or malformed (`Upload-Offset`, `Upload-Length`, `Upload-Metadata`, …).
    InvalidTusHeader = "invalid_tus_header", BAD_REQUEST;
    /// tus: a credential other than the one that created the upload.
    UploadForbidden = "upload_forbidden", FORBIDDEN;
    /// tus: no such upload (or the URL's signature does not hold).
    UploadNotFound = "upload_not_found", NOT_FOUND;
    /// tus: `Upload-Offset` is not the upload's offset, or the upload takes no more bytes.
    UploadOffsetMismatch = "upload_offset_mismatch", CONFLICT;
    /// tus: the upload is not complete yet (`GET` on the upload URL).
    UploadIncomplete = "upload_incomplete", CONFLICT;
    /// tus: the upload's expiry has passed.
    UploadExpired = "upload_expired", GONE;
    /// tus: a request without `Tus-Resumable: 1.0.0`.
    TusVersionUnsupported = "tus_version_unsupported", PRECONDITION_FAILED;
    /// tus: another request holds the upload's lease.
    UploadLocked = "upload_locked", LOCKED;
    /// tus: the request's bytes do not match its `Upload-Checksum` (460; nothing of them kept).
    UploadChecksumMismatch = "upload_checksum_mismatch", TUS_CHECKSUM_MISMATCH;
    /// The malware scanner could not be reached, failed or took too long, and
    /// `scan.unavailable = "refuse"`.
    ScannerUnavailable = "scanner_unavailable", SERVICE_UNAVAILABLE;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: a code, a message safe to show, and maybe a `Retry-After`.
#[derive(Debug)]
pub struct AppError {
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
    request_id: String,
}

impl AppError {
    /// An error with `code` and a message safe to show.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None, request_id: String::new() }
    }

    /// Adds a `Retry-After` of `secs` seconds.
    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Sets the request id shown in the body.
    #[must_use]
    pub fn with_request_id(mut self, id: &str) -> Self {
        id.clone_into(&mut self.request_id);
        self
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds of the `Retry-After` header, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
    }

    /// 413 for a file over `max` bytes.
    pub fn too_large(max: u64) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, format!("files may be at most {max} bytes"))
    }

    fn storage_unavailable() -> Self {
        Self::new(ErrorCode::StorageUnavailable, "the file could not be stored; nothing was kept")
    }

    fn genesys_rate_limited(retry_after: Duration) -> Self {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        Self::new(ErrorCode::GenesysRateLimited, "Genesys is limiting requests; try again shortly")
            .retry_after(secs.max(1))
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status().as_u16(), self.code, self.message)
    }
}

/// So an `AppError` can travel through a library's boxed error (a body stream's, a gate's) and
/// be taken back out.
impl std::error::Error for AppError {}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inner<'a> {
    code: &'static str,
    message: &'a str,
    request_id: &'a str,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner { code: self.code.as_str(), message: &self.message, request_id: &self.request_id },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// S3's failures: the operator's (no bucket, no access, a refused key or region) are 500
/// `storage_misconfigured`; the rest 503 `storage_unavailable`, with `Retry-After` when a later
/// try may succeed. What the body stream or the digest gate raised comes back as it was, and the
/// chunker's refusals say what the body did.
impl From<ferry_s3::Error> for AppError {
    fn from(error: ferry_s3::Error) -> Self {
        use ferry_s3::Error as S3;
        match error {
            S3::Body(source) | S3::Rejected(source) => match source.downcast::<AppError>() {
                Ok(own) => *own,
                Err(other) => {
                    tracing::info!(error = %other, "the request body failed");
                    Self::new(ErrorCode::ClientDisconnected, "the request body ended abnormally")
                }
            },
            S3::Chunk(chunk) => chunk.into(),
            error if error.is_operator_fault() => {
                tracing::error!(%error, kind = error.kind(), "storage is misconfigured");
                Self::new(
                    ErrorCode::StorageMisconfigured,
                    "ferry's storage is misconfigured; nothing was kept",
                )
            }
            error => {
                tracing::error!(%error, kind = error.kind(), "storage failed");
                let answer = Self::storage_unavailable();
                if error.is_retryable() { answer.retry_after(5) } else { answer }
            }
        }
    }
}

/// Genesys's failures, sorted by [`ferry_genesys::Fault`]: the caller's session (unknown 401,
/// closed 409, otherwise refused 403, as when all its connections are in use); rate limits 503 with
/// `Retry-After`; a setting of ferry's that Genesys refuses (origin, OAuth client, role,
/// integration) 500; the rest (unreachable, failing, refusing this file) 502.
impl From<ferry_genesys::Error> for AppError {
    fn from(error: ferry_genesys::Error) -> Self {
        use ferry_genesys::{Error as G, Fault};
        if error.is_rate_limited() {
            tracing::warn!(%error, "Genesys is rate limiting");
            return Self::genesys_rate_limited(error.retry_after().unwrap_or(Duration::from_secs(5)));
        }
        match (&error, error.fault()) {
            (G::SessionNotFound, _) => {
                Self::new(ErrorCode::UnknownSession, "Genesys has no session for this token")
            }
            (G::ConversationClosed, _) => Self::new(
                ErrorCode::ConversationClosed,
                "the conversation has ended; start a new one to send files",
            ),
            (G::SessionLimitReached, _) | (_, Fault::Session) => {
                tracing::info!(%error, "Genesys refused the guest session");
                Self::new(
                    ErrorCode::SessionRefused,
                    "Genesys refused this session: it has expired, or all its connections are in use",
                )
            }
            (G::HandshakeRejected { status: 401 | 403 }, _) => {
                tracing::error!(%error, "Genesys refused the WebSocket Origin (deployments.<id>.origin)");
                Self::new(
                    ErrorCode::GenesysOriginRefused,
                    "Genesys refused ferry's connection for this deployment: check its `origin` setting",
                )
            }
            (_, Fault::Configuration) => {
                tracing::error!(%error, "Genesys refused ferry's settings");
                Self::new(
                    ErrorCode::GenesysMisconfigured,
                    "Genesys refused ferry's settings for this deployment; nothing was kept",
                )
            }
            _ => {
                tracing::error!(%error, "Genesys failed");
                Self::new(
                    ErrorCode::GenesysUnavailable,
                    "Genesys could not be reached or refused the delivery; nothing was kept",
                )
            }
        }
    }
}

/// The chunker's refusals: the body broke its declared length or a size limit.
impl From<ChunkError> for AppError {
    fn from(error: ChunkError) -> Self {
        match error {
            ChunkError::TooLong { declared: true, .. } => {
                Self::new(ErrorCode::LengthMismatch, "the body is longer than its Content-Length")
            }
            ChunkError::TooLong { limit, .. } => Self::too_large(limit),
            ChunkError::TooShort { .. } => {
                Self::new(ErrorCode::IncompleteBody, "the body ended before its Content-Length")
            }
            _ => Self::new(ErrorCode::PayloadTooLarge, "the file is larger than allowed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn codes_are_unique_snake_case_and_4xx_or_5xx() {
        let strings: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(strings.len(), ErrorCode::ALL.len(), "no two codes share a string");
        for code in ErrorCode::ALL {
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code}");
        }
    }

    #[test]
    fn storage_faults_are_sorted_by_whose_they_are() {
        let missing = AppError::from(ferry_s3::Error::NoSuchBucket { bucket: "b".into() });
        assert_eq!(
            (missing.status(), missing.code()),
            (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::StorageMisconfigured)
        );
        let denied =
            AppError::from(ferry_s3::Error::AccessDenied { operation: "PutObject", message: String::new() });
        assert_eq!(denied.code(), ErrorCode::StorageMisconfigured);
        assert_eq!(denied.retry_after_secs(), None);
        let own = AppError::new(ErrorCode::ChecksumMismatch, "no");
        let gate = AppError::from(ferry_s3::Error::Rejected(Box::new(own)));
        assert_eq!((gate.code(), gate.message()), (ErrorCode::ChecksumMismatch, "no"));
        let body = AppError::from(ferry_s3::Error::Body(Box::new(AppError::new(ErrorCode::TooSlow, "slow"))));
        assert_eq!(body.code(), ErrorCode::TooSlow);
        let short = AppError::from(ferry_s3::Error::Chunk(ChunkError::TooShort { received: 1, declared: 2 }));
        assert_eq!(short.code(), ErrorCode::IncompleteBody);
        let throttled = AppError::from(ferry_s3::Error::Throttled { operation: "UploadPart", attempts: 3 });
        assert_eq!(
            (throttled.code(), throttled.retry_after_secs()),
            (ErrorCode::StorageUnavailable, Some(5))
        );
    }

    #[test]
    fn genesys_faults_are_sorted_by_whose_they_are() {
        let limited =
            AppError::from(ferry_genesys::Error::RateLimited { retry_after: Duration::from_millis(2500) });
        assert_eq!(limited.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!((limited.code(), limited.retry_after_secs()), (ErrorCode::GenesysRateLimited, Some(3)));
        let refused = AppError::from(ferry_genesys::Error::SessionLimitReached);
        assert_eq!((refused.status(), refused.code()), (StatusCode::FORBIDDEN, ErrorCode::SessionRefused));
        let origin = AppError::from(ferry_genesys::Error::HandshakeRejected { status: 403 });
        assert_eq!(
            (origin.status(), origin.code()),
            (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::GenesysOriginRefused)
        );
        assert!(origin.message().contains("`origin`"), "the message names the setting");
        let unknown_deployment = AppError::from(ferry_genesys::Error::HandshakeRejected { status: 404 });
        assert_eq!(unknown_deployment.code(), ErrorCode::GenesysMisconfigured);
        let gone = AppError::from(ferry_genesys::Error::UploadRejected { status: 403 });
        assert_eq!((gone.status(), gone.code()), (StatusCode::BAD_GATEWAY, ErrorCode::GenesysUnavailable));
        let unknown = AppError::from(ferry_genesys::Error::SessionNotFound);
        assert_eq!(unknown.code(), ErrorCode::UnknownSession);
        let closed = AppError::from(ferry_genesys::Error::ConversationClosed);
        assert_eq!(closed.status(), StatusCode::CONFLICT);
        let client = AppError::from(ferry_genesys::Error::Auth(ferry_auth::Error::InvalidClient {
            status: 401,
            error: "invalid_client".into(),
            description: None,
        }));
        assert_eq!(client.code(), ErrorCode::GenesysMisconfigured);
        let role = AppError::from(ferry_genesys::Error::Api {
            status: 403,
            body: None,
            correlation_id: None,
            rate_limit: None,
            retry_after: None,
        });
        assert_eq!(role.code(), ErrorCode::GenesysMisconfigured);
        let busy = AppError::from(ferry_genesys::Error::Api {
            status: 429,
            body: None,
            correlation_id: None,
            rate_limit: None,
            retry_after: None,
        });
        assert_eq!((busy.code(), busy.retry_after_secs()), (ErrorCode::GenesysRateLimited, Some(5)));
    }

    #[test]
    fn chunk_errors_say_what_the_body_did() {
        let longer = AppError::from(ChunkError::TooLong { limit: 5, declared: true });
        assert_eq!(longer.code(), ErrorCode::LengthMismatch);
        let huge = AppError::from(ChunkError::TooLong { limit: 5, declared: false });
        assert_eq!(
            (huge.code(), huge.message()),
            (ErrorCode::PayloadTooLarge, "files may be at most 5 bytes")
        );
        let short = AppError::from(ChunkError::TooShort { received: 1, declared: 5 });
        assert_eq!(short.code(), ErrorCode::IncompleteBody);
    }
}
