//! Typed configuration of the token manager, with documented defaults.

use std::fmt;
use std::time::Duration;

use ferry_core::retry::RetryPolicy;
use ferry_core::token::DEFAULT_SKEW;

/// An OAuth client secret. Its `Debug` output is redacted; read it with [`ClientSecret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for building the `Authorization` header. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

impl From<String> for ClientSecret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for ClientSecret {
    fn from(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

/// The login service's URL for a Genesys Cloud environment host: `https://login.<environment>`
/// (for example `mypurecloud.ie` gives `https://login.mypurecloud.ie`).
pub fn login_url_for_environment(environment: &str) -> String {
    format!("https://login.{}", environment.trim().trim_matches('.'))
}

/// Configuration of a [`TokenManager`](crate::TokenManager).
///
/// Build it with [`AuthConfig::for_environment`] or [`AuthConfig::with_login_url`], then adjust
/// the public fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct AuthConfig {
    /// Base URL of the login service, without `/oauth/token` (for example
    /// `https://login.mypurecloud.com`, or a loopback URL in tests).
    pub login_url: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: ClientSecret,
    /// How long before expiry a token is refreshed. Default: [`DEFAULT_SKEW`] (60 s). For tokens
    /// whose whole lifetime is shorter than twice the skew, half the lifetime is used instead, so a
    /// short-lived token is not refreshed on every call.
    pub refresh_skew: Duration,
    /// Retries within one token fetch (429 with `Retry-After`, 5xx, transport errors). Default:
    /// 4 attempts, 200 ms doubling up to 5 s, all within 30 s.
    pub retry: RetryPolicy,
    /// After a fetch failed (its retries included), the first pause before the next fetch is
    /// attempted; it doubles, jittered, with each consecutive failure. Default: 1 s.
    pub failure_backoff: Duration,
    /// The longest pause between failed fetches, and the pause after a configuration error
    /// (rejected credentials). Default: 60 s.
    pub max_failure_backoff: Duration,
    /// Timeout of one HTTP exchange with the login service; `None` for none. Default: 30 s.
    pub request_timeout: Option<Duration>,
}

impl AuthConfig {
    /// Configuration for the Genesys Cloud environment host `environment` (such as
    /// `mypurecloud.com`), with the defaults documented on each field.
    pub fn for_environment(
        environment: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> Self {
        Self::with_login_url(login_url_for_environment(environment), client_id, client_secret)
    }

    /// Configuration for an explicit login service URL (a loopback emulator, a proxy).
    pub fn with_login_url(
        login_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> Self {
        Self {
            login_url: login_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_skew: DEFAULT_SKEW,
            retry: RetryPolicy {
                max_attempts: 4,
                initial_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(5),
                max_elapsed: Duration::from_secs(30),
            },
            failure_backoff: Duration::from_secs(1),
            max_failure_backoff: Duration::from_secs(60),
            request_timeout: Some(Duration::from_secs(30)),
        }
    }

    /// The token endpoint: `{login_url}/oauth/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.login_url.trim_end_matches('/'))
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("login_url", &self.login_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("refresh_skew", &self.refresh_skew)
            .field("retry", &self.retry)
            .field("failure_backoff", &self.failure_backoff)
            .field("max_failure_backoff", &self.max_failure_backoff)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}
