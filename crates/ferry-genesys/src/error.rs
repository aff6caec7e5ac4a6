//! The crate's one error type, for the guest WebSocket client and the platform REST client alike,
//! with [`Error::fault`] saying whose problem a failure is (the caller's session, the caller's
//! file, ferry's configuration, or Genesys itself) so that a server can choose a status.

use crate::limits::LinkReason;
use crate::platform::{ErrorBody, RateLimit};
use crate::protocol::ErrorCode;
use ferry_core::retry::{Failure, RetryClass, classify};
use std::time::Duration;

/// A boxed error from a caller-supplied body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong talking to Genesys. No variant carries a session token, a
/// presigned URL, a bearer token or a JWT.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value or argument is invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The environment host is not in the table.
    #[error("unknown Genesys environment {0:?}")]
    UnknownEnvironment(String),
    /// The WebSocket could not be opened (refused, TLS, DNS).
    #[error("cannot connect to the Web Messaging WebSocket: {0}")]
    Connect(#[source] BoxError),
    /// The server answered the WebSocket upgrade with an HTTP error (an `Origin` the deployment
    /// does not allow, or an unknown deployment, gets 403).
    #[error("the Web Messaging WebSocket upgrade was refused with HTTP {status}")]
    HandshakeRejected {
        /// HTTP status.
        status: u16,
    },
    /// The connection dropped.
    #[error("the Web Messaging connection was lost{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    ConnectionLost {
        /// What the server or transport said, if anything.
        reason: Option<String>,
    },
    /// The server closed this connection because the customer opened another one (a token allows
    /// three). ferry does not reconnect, which would push one of the customer's own tabs off.
    #[error("the guest session's connection limit was reached; the customer is using it")]
    SessionLimitReached,
    /// Nothing arrived in time.
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        /// What was awaited.
        waiting_for: &'static str,
        /// How long.
        after: Duration,
    },
    /// The token had no session (Genesys answered `newSession: true`, or code 4007).
    #[error("the guest session does not exist")]
    SessionNotFound,
    /// The session's conversation has ended (`readOnly: true`).
    #[error("the guest conversation is closed (read-only)")]
    ConversationClosed,
    /// The session ended while ferry was using it (`SessionExpiredEvent`, `LogoutEvent`,
    /// `SessionClearedEvent`): nothing more can be sent on this token.
    #[error("the guest session ended ({0})")]
    SessionEnded(crate::guest::SessionEnd),
    /// The file cannot be a native attachment, and the caller asked not to fall back to a link.
    #[error("the file cannot be attached natively: {0}")]
    NotAttachable(LinkReason),
    /// The server answered a guest request with an error code.
    #[error("Genesys refused {action} with code {code}: {message}")]
    Genesys {
        /// The request action.
        action: &'static str,
        /// The code.
        code: ErrorCode,
        /// The server's text.
        message: String,
    },
    /// Still rate limited (`TooManyRequestsErrorMessage`) after the bounded retries.
    #[error("rate limited by Genesys; asked to retry after {retry_after:?}")]
    RateLimited {
        /// The last `retryAfter`.
        retry_after: Duration,
    },
    /// The presigned `PUT` got an HTTP error.
    #[error("the attachment upload was rejected with HTTP {status}")]
    UploadRejected {
        /// HTTP status.
        status: u16,
    },
    /// The presigned `PUT` failed in transport (the URL is stripped from the error).
    #[error("the attachment upload failed: {0}")]
    UploadTransport(#[source] reqwest::Error),
    /// The caller's body stream failed or had the wrong length.
    #[error("the attachment body failed: {0}")]
    Body(#[source] BoxError),
    /// Genesys reported the upload failed (`UploadFailureEvent`).
    #[error("Genesys rejected the uploaded attachment with code {code}: {message}")]
    UploadFailed {
        /// The code.
        code: ErrorCode,
        /// The server's text.
        message: String,
    },
    /// `onMessage` was written but the connection dropped before its echo: it may or may not have
    /// been delivered, and it is not resent automatically (that could duplicate it).
    #[error("the message was sent but not confirmed before the connection dropped")]
    DeliveryUnconfirmed,
    /// The server broke the guest protocol (an unexpected frame class, malformed JSON).
    #[error("Web Messaging protocol violation: {0}")]
    Protocol(String),
    /// No platform token could be obtained from the login service.
    #[error("cannot obtain a platform token: {0}")]
    Auth(#[from] ferry_auth::Error),
    /// The platform REST API answered with an error (after the retries that apply).
    #[error(
        "Genesys platform API answered HTTP {status}{}{}{}",
        body.as_ref().and_then(|b| b.code.as_deref()).map(|c| format!(" ({c})")).unwrap_or_default(),
        body.as_ref().and_then(|b| b.message.as_deref()).map(|m| format!(": {m}")).unwrap_or_default(),
        correlation_id.as_deref().map(|id| format!(" [correlation id {id}]")).unwrap_or_default()
    )]
    Api {
        /// HTTP status.
        status: u16,
        /// The parsed error body, if it was one.
        body: Option<Box<ErrorBody>>,
        /// `ININ-Correlation-Id`.
        correlation_id: Option<String>,
        /// The rate-limit headers.
        rate_limit: Option<RateLimit>,
        /// `Retry-After`, if sent.
        retry_after: Option<Duration>,
    },
    /// A platform API request could not be sent or its answer not read.
    #[error("platform API request failed: {source}")]
    ApiTransport {
        /// The HTTP client error, its URL stripped.
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx platform API answer whose body is not what was expected.
    #[error(
        "unexpected platform API response (HTTP {status}): {reason}{}",
        correlation_id.as_deref().map(|id| format!(" [correlation id {id}]")).unwrap_or_default()
    )]
    ApiDecode {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
        /// `ININ-Correlation-Id`.
        correlation_id: Option<String>,
    },
}

/// Whose problem an [`Error`] is: what a server needs to choose a status. See [`Error::fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Genesys refused the customer's session or token: no such session (`newSession: true`,
    /// 4007), an expired one (4006), an ended conversation (`readOnly: true`), or any other
    /// refusal of `configureSession` (a token of another deployment, 4001, 4003, 403, …). The
    /// caller needs another session.
    Session,
    /// Genesys, or the deployment's limits, refused this file or message: its type, size, name or
    /// content (4001–4005, an `UploadFailureEvent` such as 4003, a 413 on the presigned `PUT`),
    /// a caption or custom attributes too large (4011, 4013), or [`Error::NotAttachable`].
    Content,
    /// Genesys refused what ferry's configuration sends, or that configuration cannot work: an
    /// `Origin` the deployment does not allow or an unknown deployment (the WebSocket upgrade
    /// answered 4xx), a feature the deployment has switched off (4000), OAuth client credentials
    /// the login service rejects, a platform API 4xx (a missing role, an unknown integration, a
    /// request it finds invalid), an invalid setting. The operator has to fix it.
    Configuration,
    /// Genesys could not be reached, timed out, is rate limiting ferry, failed (5xx), broke the
    /// protocol, pushed ferry off a session the customer is using, or the outcome is unknown
    /// ([`Error::DeliveryUnconfirmed`]). [`Error::is_retryable`] says whether trying later helps,
    /// [`Error::retry_after`] how long Genesys asked to wait.
    Unavailable,
    /// The caller-supplied body stream failed ([`Error::Body`]); its source says why.
    Body,
}

impl Error {
    /// Whether trying the whole operation again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_)
            | Self::ConnectionLost { .. }
            | Self::SessionLimitReached
            | Self::Timeout { .. }
            | Self::RateLimited { .. }
            | Self::UploadTransport(_)
            | Self::ApiTransport { .. } => true,
            Self::HandshakeRejected { status } | Self::UploadRejected { status } => {
                classify(&Failure::Http { status: *status, code: None }) == RetryClass::Transient
            }
            Self::Genesys { code, .. } | Self::UploadFailed { code, .. } => {
                let code = u16::try_from(code.as_u32()).unwrap_or(u16::MAX);
                classify(&Failure::Genesys(code)) == RetryClass::Transient
            }
            Self::Auth(error) => error.is_retryable(),
            Self::Api { status, .. } => is_retried_status(*status),
            _ => false,
        }
    }

    /// Whose problem this is: the customer's session, the file, ferry's configuration, Genesys,
    /// or the caller's body stream.
    pub fn fault(&self) -> Fault {
        match self {
            Self::SessionNotFound | Self::ConversationClosed | Self::SessionEnded(_) => Fault::Session,
            Self::NotAttachable(_) => Fault::Content,
            Self::InvalidConfig(_) | Self::UnknownEnvironment(_) => Fault::Configuration,
            Self::Body(_) => Fault::Body,
            Self::HandshakeRejected { status } => match status {
                408 | 429 | 500..=599 => Fault::Unavailable,
                400..=499 => Fault::Configuration,
                _ => Fault::Unavailable,
            },
            Self::Genesys { action: "configureSession", code, .. } => match code {
                ErrorCode::FeatureUnavailable => Fault::Configuration,
                ErrorCode::RequestRateTooHigh => Fault::Unavailable,
                _ => Fault::Session,
            },
            Self::Genesys { code, .. } | Self::UploadFailed { code, .. } => code_fault(*code),
            Self::UploadRejected { status: 413 } => Fault::Content,
            Self::Auth(error) => match error {
                ferry_auth::Error::Rejected { .. } => Fault::Configuration,
                error if error.is_configuration_error() => Fault::Configuration,
                _ => Fault::Unavailable,
            },
            Self::Api { status: 408 | 429, .. } => Fault::Unavailable,
            Self::Api { status: 400..=499, .. } => Fault::Configuration,
            Self::Connect(_)
            | Self::ConnectionLost { .. }
            | Self::SessionLimitReached
            | Self::Timeout { .. }
            | Self::RateLimited { .. }
            | Self::UploadRejected { .. }
            | Self::UploadTransport(_)
            | Self::DeliveryUnconfirmed
            | Self::Protocol(_)
            | Self::Api { .. }
            | Self::ApiTransport { .. }
            | Self::ApiDecode { .. } => Fault::Unavailable,
        }
    }

    /// Whether Genesys (or its login service) is rate limiting ferry: a guest
    /// `TooManyRequestsErrorMessage` or code 4029, or HTTP 429 from the platform API, the login
    /// service or the WebSocket upgrade.
    pub fn is_rate_limited(&self) -> bool {
        match self {
            Self::RateLimited { .. } => true,
            Self::Genesys { code, .. } => *code == ErrorCode::RequestRateTooHigh,
            Self::Api { status, .. } | Self::HandshakeRejected { status } => *status == 429,
            Self::Auth(error) => matches!(error, ferry_auth::Error::RateLimited { .. }),
            _ => false,
        }
    }

    /// How long Genesys asked to wait before trying again, if it said: the guest `retryAfter`,
    /// or the platform API's or the login service's `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            Self::Api { retry_after, .. } => *retry_after,
            Self::Auth(error) => error.retry_after(),
            _ => None,
        }
    }

    /// The Web Messaging error code, for errors that carry one.
    pub fn genesys_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Genesys { code, .. } | Self::UploadFailed { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The HTTP status Genesys answered with: the platform API's, the WebSocket upgrade's or the
    /// presigned `PUT`'s.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. }
            | Self::ApiDecode { status, .. }
            | Self::HandshakeRejected { status }
            | Self::UploadRejected { status } => Some(*status),
            _ => None,
        }
    }

    /// The `ININ-Correlation-Id` of the failed platform API exchange, if known.
    pub fn correlation_id(&self) -> Option<&str> {
        match self {
            Self::Api { correlation_id, .. } | Self::ApiDecode { correlation_id, .. } => {
                correlation_id.as_deref()
            }
            _ => None,
        }
    }

    /// The Genesys platform error body, for API errors that carried one.
    pub fn error_body(&self) -> Option<&ErrorBody> {
        match self {
            Self::Api { body, .. } => body.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn from_genesys(action: &'static str, code: ErrorCode, message: String) -> Self {
        match code {
            ErrorCode::SessionNotFound => Self::SessionNotFound,
            _ => Self::Genesys { action, code, message },
        }
    }
}

/// The platform API statuses retried: throttling and gateway faults (the Genesys Java SDK's set).
/// A 500 is not retried: for a non-idempotent POST it may have taken effect.
pub(crate) fn is_retried_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Whose problem a Web Messaging error code is, outside `configureSession`.
fn code_fault(code: ErrorCode) -> Fault {
    match code {
        ErrorCode::FeatureUnavailable => Fault::Configuration,
        ErrorCode::FileTypeInvalid
        | ErrorCode::FileSizeInvalid
        | ErrorCode::FileContentInvalid
        | ErrorCode::FileNameInvalid
        | ErrorCode::FileNameTooLong
        | ErrorCode::MessageTooLong
        | ErrorCode::CustomAttributesTooLarge => Fault::Content,
        ErrorCode::SessionExpired | ErrorCode::SessionNotFound => Fault::Session,
        _ => Fault::Unavailable,
    }
}

/// The JSON body of a 2xx answer to one of the guest-side GETs (a deployment's `config.json`, the
/// guest messages API); any other status is [`Error::Api`], a body that is not JSON
/// [`Error::ApiDecode`] naming `what`.
pub(crate) async fn json_answer(response: reqwest::Response, what: &str) -> Result<serde_json::Value, Error> {
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Err(Error::Api {
            status,
            body: None,
            correlation_id: None,
            rate_limit: None,
            retry_after: None,
        });
    }
    response.json().await.map_err(|e| Error::ApiDecode {
        status,
        reason: format!("{what} is not JSON: {}", e.without_url()),
        correlation_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable() {
        assert!(Error::RateLimited { retry_after: Duration::from_secs(1) }.is_retryable());
        assert!(Error::UploadRejected { status: 503 }.is_retryable());
        assert!(!Error::UploadRejected { status: 403 }.is_retryable());
        assert!(!Error::SessionNotFound.is_retryable());
        assert!(!Error::ConversationClosed.is_retryable());
        assert!(!Error::DeliveryUnconfirmed.is_retryable());
        let g = |code| Error::Genesys { action: "onMessage", code, message: String::new() };
        assert!(g(ErrorCode::RequestRateTooHigh).is_retryable());
        assert!(!g(ErrorCode::FileTypeInvalid).is_retryable());
        assert!(matches!(
            Error::from_genesys("getJwt", ErrorCode::SessionNotFound, "x".into()),
            Error::SessionNotFound
        ));
        assert!(api(503).is_retryable());
        assert!(!api(500).is_retryable(), "a POST that failed with 500 may have taken effect");
        assert!(!api(400).is_retryable());
    }

    fn api(status: u16) -> Error {
        Error::Api { status, body: None, correlation_id: None, rate_limit: None, retry_after: None }
    }

    #[test]
    fn faults_separate_session_content_configuration_and_genesys() {
        let on = |action, code| Error::Genesys { action, code, message: String::new() };
        // The caller's session or token.
        assert_eq!(Error::SessionNotFound.fault(), Fault::Session);
        assert_eq!(Error::ConversationClosed.fault(), Fault::Session);
        for code in [4001, 4003, 4006, 403] {
            assert_eq!(on("configureSession", ErrorCode::from_u32(code)).fault(), Fault::Session, "{code}");
        }
        assert_eq!(on("onMessage", ErrorCode::SessionExpired).fault(), Fault::Session);
        // The caller's file.
        assert_eq!(on("onAttachment", ErrorCode::FileTypeInvalid).fault(), Fault::Content);
        let failed = Error::UploadFailed { code: ErrorCode::FileContentInvalid, message: String::new() };
        assert_eq!(failed.fault(), Fault::Content);
        assert_eq!(Error::UploadRejected { status: 413 }.fault(), Fault::Content);
        // ferry's configuration.
        assert_eq!(Error::HandshakeRejected { status: 403 }.fault(), Fault::Configuration);
        assert_eq!(on("configureSession", ErrorCode::FeatureUnavailable).fault(), Fault::Configuration);
        assert_eq!(on("onAttachment", ErrorCode::FeatureUnavailable).fault(), Fault::Configuration);
        assert_eq!(api(403).fault(), Fault::Configuration);
        assert_eq!(api(404).fault(), Fault::Configuration);
        let rejected = ferry_auth::Error::InvalidClient {
            status: 401,
            error: "invalid_client".into(),
            description: None,
        };
        assert_eq!(Error::Auth(rejected).fault(), Fault::Configuration);
        assert_eq!(Error::InvalidConfig("x".into()).fault(), Fault::Configuration);
        // Genesys itself.
        assert_eq!(Error::HandshakeRejected { status: 503 }.fault(), Fault::Unavailable);
        assert_eq!(on("configureSession", ErrorCode::RequestRateTooHigh).fault(), Fault::Unavailable);
        assert_eq!(on("getAttachment", ErrorCode::AttachmentNotUploaded).fault(), Fault::Unavailable);
        assert_eq!(Error::UploadRejected { status: 403 }.fault(), Fault::Unavailable);
        assert_eq!(Error::SessionLimitReached.fault(), Fault::Unavailable);
        assert_eq!(Error::DeliveryUnconfirmed.fault(), Fault::Unavailable);
        assert_eq!(api(429).fault(), Fault::Unavailable);
        assert_eq!(api(408).fault(), Fault::Unavailable);
        assert_eq!(api(500).fault(), Fault::Unavailable);
        let server = ferry_auth::Error::Server { status: 503 };
        assert_eq!(Error::Auth(server).fault(), Fault::Unavailable);
        assert_eq!(Error::Body("gone".into()).fault(), Fault::Body);
    }

    #[test]
    fn rate_limits_and_their_delays() {
        let guest = Error::RateLimited { retry_after: Duration::from_secs(3) };
        assert!(guest.is_rate_limited());
        assert_eq!(guest.retry_after(), Some(Duration::from_secs(3)));
        let platform = Error::Api {
            status: 429,
            body: None,
            correlation_id: Some("c".into()),
            rate_limit: None,
            retry_after: Some(Duration::from_secs(90)),
        };
        assert!(platform.is_rate_limited());
        assert_eq!(platform.retry_after(), Some(Duration::from_secs(90)));
        assert_eq!(platform.status(), Some(429));
        assert_eq!(platform.correlation_id(), Some("c"));
        let login = Error::Auth(ferry_auth::Error::RateLimited { retry_after: Some(Duration::from_secs(7)) });
        assert!(login.is_rate_limited());
        assert_eq!(login.retry_after(), Some(Duration::from_secs(7)));
        let frame = Error::Genesys {
            action: "onMessage",
            code: ErrorCode::RequestRateTooHigh,
            message: String::new(),
        };
        assert!(frame.is_rate_limited());
        assert_eq!(frame.genesys_code(), Some(ErrorCode::RequestRateTooHigh));
        assert!(!api(503).is_rate_limited());
        assert_eq!(Error::SessionNotFound.retry_after(), None);
    }
}
