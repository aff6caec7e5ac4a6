//! The access token handed to callers, and the [`TokenSource`] seam that servers hold as
//! `Arc<dyn TokenSource>`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ferry_core::token::{Freshness, freshness};
use tokio::time::Instant;

use crate::Error;

/// A bearer access token and when it expires. Cheap to clone; `Debug` redacts the token.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<str>,
    token_type: Arc<str>,
    expires_at: Instant,
    refresh_skew: Duration,
    generation: u64,
}

impl AccessToken {
    /// A token whose text is `value`, expiring at `expires_at`, to be refreshed `refresh_skew`
    /// ahead of expiry. For [`TokenSource`] implementations other than
    /// [`TokenManager`](crate::TokenManager) (a fixed token in a test, a token from elsewhere).
    pub fn new(value: impl Into<String>, expires_at: Instant, refresh_skew: Duration) -> Self {
        Self::issued(value.into(), "bearer".into(), expires_at, refresh_skew, 0)
    }

    pub(crate) fn issued(
        value: String,
        token_type: String,
        expires_at: Instant,
        refresh_skew: Duration,
        generation: u64,
    ) -> Self {
        Self { value: value.into(), token_type: token_type.into(), expires_at, refresh_skew, generation }
    }

    /// The token text, for an `Authorization` header. Never log it.
    pub fn secret(&self) -> &str {
        &self.value
    }

    /// The `Authorization` header value: `Bearer <token>`. Never log it.
    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.value)
    }

    /// The `token_type` the login service sent (`bearer`).
    pub fn token_type(&self) -> &str {
        &self.token_type
    }

    /// When the token expires (on tokio's clock, so paused test time applies).
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// Which fetch of its token manager produced this token (1 for the first; 0 for tokens made
    /// with [`AccessToken::new`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the token is fresh, due for refresh, or expired at `now`.
    pub fn freshness(&self, now: Instant) -> Freshness {
        freshness(self.expires_at.into_std(), now.into_std(), self.refresh_skew)
    }

    /// Whether `other` is the very same token (same fetch, same text).
    pub(crate) fn same_as(&self, other: &AccessToken) -> bool {
        self.generation == other.generation && self.value == other.value
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("generation", &self.generation)
            .finish()
    }
}

/// The future returned by [`TokenSource::token`].
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<AccessToken, Error>> + Send + 'a>>;

/// Something that hands out bearer tokens. Object safe, so servers and clients hold
/// `Arc<dyn TokenSource>`.
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// A token that is valid now.
    fn token(&self) -> TokenFuture<'_>;

    /// Reports that `token` was refused (HTTP 401), so the next [`token`](Self::token) call
    /// fetches a new one. Reporting the same token again, from any number of callers, has no
    /// further effect.
    fn invalidate(&self, token: &AccessToken);
}
