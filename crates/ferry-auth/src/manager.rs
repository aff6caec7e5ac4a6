//! The token manager: a cache with refresh ahead of expiry, single-flight fetching, backoff after
//! failures, and invalidation of refused tokens.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ferry_core::retry::{RetryClass, RetryDecision, RetryPolicy, Schedule};
use ferry_core::token::{Freshness, expiry};
use tokio::time::Instant;

use crate::fetch::Fetcher;
use crate::token::{TokenFuture, TokenSource};
use crate::{AccessToken, AuthConfig, Error};

/// A client-credentials token manager.
///
/// - Tokens are cached and refreshed `refresh_skew` ahead of expiry. While a token is still
///   valid but due, one caller refreshes it and the others keep using it; a failed refresh is
///   logged and the still-valid token keeps being handed out.
/// - Single flight: when no usable token is cached, any number of concurrent callers cause one
///   token request, and all receive its token or its error.
/// - After a failed fetch, no new fetch starts until a backoff has passed (growing with
///   consecutive failures; the longest after rejected credentials); callers without a usable
///   token receive the last error meanwhile, so a misconfiguration never turns into a storm.
/// - [`invalidate`](TokenSource::invalidate) drops a refused token, once per token.
///
/// Clones share one cache.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Inner {
    config: AuthConfig,
    fetcher: Fetcher,
    state: Mutex<State>,
    /// Held by the one caller fetching a token.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    token: Option<AccessToken>,
    /// Fetches completed (successfully or not); a waiter that sees this change shares the result.
    completed: u64,
    /// Tokens issued so far (the generation of the latest).
    issued: u64,
    failure: Option<FailureState>,
    requests: u64,
}

struct FailureState {
    error: Error,
    retry_at: Instant,
    /// Consecutive failed fetches so far, and the pause each one earns.
    backoff: Schedule,
}

impl State {
    fn usable(&self, now: Instant) -> Option<(AccessToken, Freshness)> {
        let token = self.token.as_ref()?;
        let freshness = token.freshness(now);
        freshness.is_usable().then(|| (token.clone(), freshness))
    }

    fn backing_off(&self, now: Instant) -> Option<&Error> {
        self.failure.as_ref().filter(|f| now < f.retry_at).map(|f| &f.error)
    }
}

impl TokenManager {
    /// A manager with its own HTTP client (honouring `config.request_timeout`).
    pub fn new(config: AuthConfig) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::Config { reason: format!("cannot build the HTTP client: {e}") })?;
        Self::with_http_client(config, http)
    }

    /// A manager that sends its requests through `http` (shared connection pools, custom TLS, or
    /// a client without background timers for tests on paused time).
    pub fn with_http_client(config: AuthConfig, http: reqwest::Client) -> Result<Self, Error> {
        let fetcher = Fetcher::new(&config, http)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                fetcher,
                state: Mutex::new(State::default()),
                fetching: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// A token valid now: the cached one, or a new one fetched on behalf of every concurrent
    /// caller.
    pub async fn token(&self) -> Result<AccessToken, Error> {
        let inner = &self.inner;
        let observed = loop {
            match inner.plan(Instant::now()) {
                Plan::Ready(token) => return Ok(token),
                Plan::Fail(error) => return Err(error),
                Plan::Refresh { token, observed } => {
                    // One caller refreshes; the others go on with the still-valid token.
                    let Ok(guard) = inner.fetching.try_lock() else { return Ok(token) };
                    if inner.completed() != observed {
                        // Someone else refreshed (or failed to) in the meantime: look again.
                        continue;
                    }
                    let result = inner.fetch_and_store(Some(&token)).await;
                    drop(guard);
                    return result;
                }
                Plan::Fetch { observed } => break observed,
            }
        };
        let guard = inner.fetching.lock().await;
        {
            let state = inner.state();
            let now = Instant::now();
            if state.completed != observed {
                // A fetch finished while this caller waited: share its outcome.
                if let Some((token, _)) = state.usable(now) {
                    return Ok(token);
                }
                if let Some(failure) = &state.failure {
                    return Err(failure.error.clone());
                }
            }
            if let Some(error) = state.backing_off(now) {
                return Err(error.clone());
            }
        }
        let result = inner.fetch_and_store(None).await;
        drop(guard);
        result
    }

    /// Drops `token` from the cache if it is the cached one, so the next [`token`](Self::token)
    /// call fetches anew. Call it after the token was refused with HTTP 401. Reporting a token
    /// that was already dropped or replaced does nothing.
    pub fn invalidate(&self, token: &AccessToken) {
        let mut state = self.inner.state();
        if state.token.as_ref().is_some_and(|cached| cached.same_as(token)) {
            state.token = None;
            tracing::debug!(generation = token.generation(), "access token invalidated after a refusal");
        }
    }

    /// HTTP requests sent to the token endpoint so far (retries included).
    pub fn token_requests(&self) -> u64 {
        self.inner.state().requests
    }
}

/// What a `token()` call does, decided under the state lock.
enum Plan {
    Ready(AccessToken),
    Fail(Error),
    /// The token is valid but due: try to refresh it, falling back on it.
    Refresh {
        token: AccessToken,
        observed: u64,
    },
    /// No usable token: wait for the fetch lock.
    Fetch {
        observed: u64,
    },
}

impl Inner {
    fn plan(&self, now: Instant) -> Plan {
        let state = self.state();
        match state.usable(now) {
            Some((token, Freshness::Valid)) => Plan::Ready(token),
            Some((token, _)) if state.backing_off(now).is_some() => Plan::Ready(token),
            Some((token, _)) => Plan::Refresh { token, observed: state.completed },
            None => match state.backing_off(now) {
                Some(error) => Plan::Fail(error.clone()),
                None => Plan::Fetch { observed: state.completed },
            },
        }
    }

    fn completed(&self) -> u64 {
        self.state().completed
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (every update is a
        // single assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fetches a token (the caller holds `fetching`) and records the outcome. `stale` is the
    /// still-valid token being refreshed ahead of expiry, if any: it is returned if the refresh
    /// fails.
    async fn fetch_and_store(&self, stale: Option<&AccessToken>) -> Result<AccessToken, Error> {
        let counter = RequestCounter(self);
        let result = self.fetcher.fetch(&self.config, &counter).await;
        let now = Instant::now();
        let mut state = self.state();
        state.completed += 1;
        match result {
            Ok(granted) => {
                state.issued += 1;
                let lifetime = granted.expires_in;
                let skew = self.config.refresh_skew.min(lifetime / 2);
                let expires_at =
                    Instant::from_std(expiry(granted.requested_at.into_std(), granted.expires_in));
                let token = AccessToken::issued(
                    granted.access_token,
                    granted.token_type,
                    expires_at,
                    skew,
                    state.issued,
                );
                tracing::debug!(generation = state.issued, ?lifetime, "access token obtained");
                state.token = Some(token.clone());
                state.failure = None;
                Ok(token)
            }
            Err(error) => {
                // Consecutive failures share one schedule, so each pause grows from the last.
                let mut backoff = state.failure.take().map_or_else(
                    || {
                        Schedule::new(
                            self.failure_policy(),
                            now.into_std(),
                            rand::random::<u64> as fn() -> u64,
                        )
                    },
                    |failure| failure.backoff,
                );
                let pause = self.failure_pause(&mut backoff, now, &error);
                state.failure = Some(FailureState { error: error.clone(), retry_at: now + pause, backoff });
                match stale.filter(|token| token.freshness(now).is_usable()) {
                    Some(token) => {
                        tracing::warn!(error = %error, ?pause, "token refresh failed; the current token is still valid");
                        Ok(token.clone())
                    }
                    None => {
                        tracing::error!(error = %error, ?pause, "token fetch failed");
                        Err(error)
                    }
                }
            }
        }
    }

    /// The back-off between failed fetches: doubling from `failure_backoff` up to
    /// `max_failure_backoff`, for as long as the failures go on.
    fn failure_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: u32::MAX,
            initial_delay: self.config.failure_backoff,
            max_delay: self.config.max_failure_backoff.max(self.config.failure_backoff),
            max_elapsed: Duration::MAX,
        }
    }

    /// How long to wait after the failed fetch that `backoff` has counted so far before fetching
    /// again; rejected credentials wait the longest.
    fn failure_pause(&self, backoff: &mut Schedule, now: Instant, error: &Error) -> Duration {
        let max = self.failure_policy().max_delay;
        if error.is_configuration_error() {
            return max;
        }
        match backoff.on_failure(RetryClass::Transient, now.into_std(), error.retry_after()) {
            RetryDecision::RetryAfter(pause) => pause,
            RetryDecision::GiveUp(_) => max,
        }
    }
}

/// Counts requests as the fetcher sends them.
pub(crate) struct RequestCounter<'a>(&'a Inner);

impl RequestCounter<'_> {
    pub(crate) fn sent(&self) {
        self.0.state().requests += 1;
    }
}

impl TokenSource for TokenManager {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(TokenManager::token(self))
    }

    fn invalidate(&self, token: &AccessToken) {
        TokenManager::invalidate(self, token);
    }
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state();
        f.debug_struct("TokenManager")
            .field("login_url", &self.inner.config.login_url)
            .field("client_id", &self.inner.config.client_id)
            .field("cached_token", &state.token)
            .field("failing", &state.failure.as_ref().map(|f| f.backoff.attempt() - 1))
            .finish_non_exhaustive()
    }
}
