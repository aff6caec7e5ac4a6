//! The one error type of ferry-auth, cloneable so that every caller waiting on a shared token
//! request receives the same outcome.

use std::sync::Arc;
use std::time::Duration;

use ferry_core::retry::{Failure, RetryClass, classify};

/// What went wrong while obtaining an access token.
///
/// Messages never contain the client secret, a token, or a response body.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The login service rejected the client credentials (`invalid_client`,
    /// `unauthorized_client`, or a bare 401). This is a configuration error: retrying cannot help
    /// until the client id or secret is fixed.
    #[error(
        "OAuth client credentials rejected by the login service (HTTP {status}, {error}{}): \
         check the configured client id and secret",
        description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    InvalidClient {
        /// HTTP status of the refusal.
        status: u16,
        /// The OAuth `error` code (or `"unauthorized"` when the server sent none).
        error: String,
        /// The server's `error_description`, if any.
        description: Option<String>,
    },
    /// The login service refused the request for another reason (a 4xx that is not about the
    /// credentials, such as `unsupported_grant_type`).
    #[error(
        "token request refused with HTTP {status}{}{}",
        error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
        description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
    )]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The OAuth `error` code, if any.
        error: Option<String>,
        /// The server's `error_description`, if any.
        description: Option<String>,
    },
    /// The login service kept answering 429 until the retry budget ran out.
    #[error("login service rate limited the token request{}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited {
        /// The last `Retry-After` the server sent.
        retry_after: Option<Duration>,
    },
    /// The login service kept failing with a server error until the retry budget ran out.
    #[error("login service failed with HTTP {status}")]
    Server {
        /// The last HTTP status seen.
        status: u16,
    },
    /// The login service could not be reached, or the exchange broke off.
    #[error("could not complete the token request: {source}")]
    Transport {
        /// The underlying HTTP client error.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// A 2xx response that is not a usable token (not JSON, no `access_token`, bad `expires_in`).
    #[error("login service sent an unusable token response: {reason}")]
    MalformedResponse {
        /// What was wrong (never the body itself).
        reason: String,
    },
    /// The configuration cannot work (empty client id, unparsable login URL, HTTP client setup).
    #[error("invalid ferry-auth configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Whether the error is the operator's to fix (credentials or configuration), as opposed to
    /// a passing condition of the login service or the network.
    pub fn is_configuration_error(&self) -> bool {
        matches!(self, Self::InvalidClient { .. } | Self::Config { .. })
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.failure().is_some_and(|failure| classify(&failure) == RetryClass::Transient)
    }

    /// The delay the login service asked for, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// This error in the terms of `ferry_core::retry`; `None` for errors that are never retried.
    pub(crate) fn failure(&self) -> Option<Failure<'static>> {
        match self {
            Self::RateLimited { .. } => Some(Failure::Http { status: 429, code: None }),
            Self::Server { status } => Some(Failure::Http { status: *status, code: None }),
            Self::Rejected { status, .. } => Some(Failure::Http { status: *status, code: None }),
            Self::Transport { source } => Some(if source.is_timeout() {
                Failure::Timeout
            } else if source.is_connect() {
                Failure::ConnectFailed
            } else {
                Failure::ConnectionReset
            }),
            Self::InvalidClient { .. } | Self::MalformedResponse { .. } | Self::Config { .. } => None,
        }
    }
}

impl From<reqwest::Error> for Error {
    fn from(source: reqwest::Error) -> Self {
        // reqwest errors carry the URL; the login URL holds no secret, but strip it anyway so that
        // an operator-supplied URL with userinfo can never leak.
        Self::Transport { source: Arc::new(source.without_url()) }
    }
}
