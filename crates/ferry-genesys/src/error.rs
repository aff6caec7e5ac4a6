//! The crate's error type.

use crate::limits::LinkReason;
use crate::protocol::ErrorCode;
use ferry_core::retry::{Failure, RetryClass, classify};
use std::time::Duration;

/// A boxed error from a caller-supplied body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong talking to Genesys. No variant carries a session token, a
/// presigned URL or a JWT.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The environment host is not in the table.
    #[error("unknown Genesys environment {0:?}")]
    UnknownEnvironment(String),
    /// The WebSocket could not be opened (refused, TLS, DNS).
    #[error("cannot connect to the Web Messaging WebSocket: {0}")]
    Connect(#[source] BoxError),
    /// The server answered the WebSocket upgrade with an HTTP error (an `Origin` the deployment
    /// does not allow gets 403).
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
    /// The file cannot be a native attachment, and the caller asked not to fall back to a link.
    #[error("the file cannot be attached natively: {0}")]
    NotAttachable(LinkReason),
    /// The server answered a request with an error code.
    #[error("Genesys refused {action} with code {code}: {message}")]
    Genesys {
        /// The request action.
        action: &'static str,
        /// The code.
        code: ErrorCode,
        /// The server's text.
        message: String,
    },
    /// Still rate limited after the bounded retries.
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
    /// The server broke the protocol (an unexpected frame class, malformed JSON).
    #[error("Web Messaging protocol violation: {0}")]
    Protocol(String),
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
            | Self::UploadTransport(_) => true,
            Self::HandshakeRejected { status } | Self::UploadRejected { status } => {
                classify(&Failure::Http { status: *status, code: None }) == RetryClass::Transient
            }
            Self::Genesys { code, .. } | Self::UploadFailed { code, .. } => {
                let code = u16::try_from(code.as_u32()).unwrap_or(u16::MAX);
                classify(&Failure::Genesys(code)) == RetryClass::Transient
            }
            _ => false,
        }
    }

    pub(crate) fn from_genesys(action: &'static str, code: ErrorCode, message: String) -> Self {
        match code {
            ErrorCode::SessionNotFound => Self::SessionNotFound,
            _ => Self::Genesys { action, code, message },
        }
    }
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
    }
}
