//! [`PlatformClient`]: bearer tokens, one retry after a 401, and the retries of 429/502/503/504
//! and refused connections on a retry schedule; with its configuration, the typed error body,
//! the rate-limit headers and the response type.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_auth::TokenSource;
use ferry_core::retry::{RetryClass, RetryDecision, RetryPolicy, parse_retry_after_seconds};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::GenesysEndpoints;
use crate::backoff::{self, JitterSource};
use crate::error::{Error, is_retried_status};

/// Largest response body read from the platform API.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Configuration of a [`PlatformClient`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlatformConfig {
    /// Platform REST base URL, `https://api.E` (a loopback URL in tests).
    pub api_url: Url,
    /// Retries of 429 and 502/503/504 answers (and refused connections). Default: 4 attempts,
    /// 250 ms doubling up to 10 s, all within 60 s; a `Retry-After` is honoured as a floor.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP exchange; `None` for none. Default: 30 s.
    pub request_timeout: Option<Duration>,
}

impl PlatformConfig {
    /// The defaults for a platform base URL.
    pub fn new(api_url: Url) -> Self {
        Self {
            api_url,
            retry: RetryPolicy {
                max_attempts: 4,
                initial_delay: Duration::from_millis(250),
                max_delay: Duration::from_secs(10),
                max_elapsed: Duration::from_secs(60),
            },
            request_timeout: Some(Duration::from_secs(30)),
        }
    }

    /// The defaults for an environment's endpoints.
    pub fn for_endpoints(endpoints: &GenesysEndpoints) -> Self {
        Self::new(endpoints.api.clone())
    }
}

/// The `inin-ratelimit-*` headers of a response, for pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests counted in the current window (`inin-ratelimit-count`).
    pub count: u64,
    /// Requests allowed per window (`inin-ratelimit-allowed`).
    pub allowed: u64,
    /// Time until the window resets (`inin-ratelimit-reset`, in seconds).
    pub reset: Duration,
}

impl RateLimit {
    /// Parses the three headers; `None` unless all are present and numeric.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
        Some(Self {
            count: number("inin-ratelimit-count")?,
            allowed: number("inin-ratelimit-allowed")?,
            reset: Duration::from_secs(number("inin-ratelimit-reset")?),
        })
    }

    /// Requests left in the current window.
    pub fn remaining(&self) -> u64 {
        self.allowed.saturating_sub(self.count)
    }
}

/// The Genesys platform error body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ErrorBody {
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// Machine-readable code (`too.many.requests.retry.after`, `bad.request`, …).
    #[serde(default)]
    pub code: Option<String>,
    /// The HTTP status, repeated.
    #[serde(default)]
    pub status: Option<u16>,
    /// Genesys's id for the failed request, for support cases.
    #[serde(default)]
    pub context_id: Option<String>,
    /// Structured details.
    #[serde(default)]
    pub details: Vec<Value>,
    /// Nested errors.
    #[serde(default)]
    pub errors: Vec<Value>,
}

/// A successful platform response.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlatformResponse<T> {
    /// The parsed body.
    pub body: T,
    /// HTTP status.
    pub status: u16,
    /// The rate-limit headers, if sent.
    pub rate_limit: Option<RateLimit>,
    /// `ININ-Correlation-Id`, if sent.
    pub correlation_id: Option<String>,
}

/// A platform REST client. Cheap to clone.
#[derive(Clone)]
pub struct PlatformClient {
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    config: Arc<PlatformConfig>,
    jitter: JitterSource,
}

impl fmt::Debug for PlatformClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformClient")
            .field("api_url", &self.config.api_url.as_str())
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl PlatformClient {
    /// A client with its own HTTP connection pool.
    pub fn new(config: PlatformConfig, tokens: Arc<dyn TokenSource>) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::InvalidConfig(format!("cannot build the HTTP client: {e}")))?;
        Self::with_http_client(config, tokens, http)
    }

    /// A client sending through `http`.
    pub fn with_http_client(
        config: PlatformConfig,
        tokens: Arc<dyn TokenSource>,
        http: reqwest::Client,
    ) -> Result<Self, Error> {
        if config.api_url.cannot_be_a_base() || !matches!(config.api_url.scheme(), "http" | "https") {
            return Err(Error::InvalidConfig(format!("{} is not an http(s) base URL", config.api_url)));
        }
        Ok(Self { http, tokens, config: Arc::new(config), jitter: JitterSource::random() })
    }

    /// Draws the jitter of retry delays from `jitter` instead of `rand` (for tests and
    /// simulations that need repeatable delays).
    pub fn with_jitter(mut self, jitter: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.jitter = JitterSource::from_fn(jitter);
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// Sends `method` to the API path made of `segments` (each percent-encoded here), with an
    /// optional JSON body, and parses the JSON answer as `T`.
    pub async fn request<B, T>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<PlatformResponse<T>, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let mut url = self.config.api_url.clone();
        url.path_segments_mut()
            .map_err(|()| Error::InvalidConfig("the API URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        let body = match body {
            Some(body) => Some(Bytes::from(
                serde_json::to_vec(body)
                    .map_err(|e| Error::InvalidConfig(format!("request body does not serialise: {e}")))?,
            )),
            None => None,
        };
        let (status, headers, bytes) = self.exchange(&method, &url, body).await?;
        let correlation_id = correlation_id(&headers);
        let parsed =
            if bytes.is_empty() { serde_json::from_slice(b"null") } else { serde_json::from_slice(&bytes) };
        let body = parsed.map_err(|e| Error::ApiDecode {
            status,
            reason: format!(
                "body does not match the expected shape ({:?} at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
            correlation_id: correlation_id.clone(),
        })?;
        Ok(PlatformResponse { body, status, rate_limit: RateLimit::from_headers(&headers), correlation_id })
    }
    /// One call with its retries: a fresh token per attempt, one extra attempt after a 401,
    /// `Retry-After` and jittered backoff on 429/502/503/504 and refused connections.
    async fn exchange(
        &self,
        method: &Method,
        url: &Url,
        body: Option<Bytes>,
    ) -> Result<(u16, HeaderMap, Bytes), Error> {
        let mut schedule = self.jitter.schedule(self.config.retry);
        let mut reauthenticated = false;
        loop {
            let token = self.tokens.token().await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, token.authorization())
                .header(ACCEPT, "application/json");
            if let Some(body) = &body {
                request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
            }
            if let Some(timeout) = self.config.request_timeout {
                request = request.timeout(timeout);
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let bytes = read_limited(response).await?;
                    if (200..300).contains(&status) {
                        return Ok((status, headers, bytes));
                    }
                    let retry_after = headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after_seconds);
                    let error = Error::Api {
                        status,
                        body: serde_json::from_slice::<ErrorBody>(&bytes).ok().map(Box::new),
                        correlation_id: correlation_id(&headers),
                        rate_limit: RateLimit::from_headers(&headers),
                        retry_after,
                    };
                    if status == 401 && !reauthenticated {
                        tracing::info!(%error, "platform API refused the token; fetching a new one");
                        self.tokens.invalidate(&token);
                        reauthenticated = true;
                        continue;
                    }
                    if !is_retried_status(status) {
                        return Err(error);
                    }
                    (error, retry_after)
                }
                // A refused connection never reached the server: safe to retry even a POST.
                Err(error) if error.is_connect() => {
                    (Error::ApiTransport { source: error.without_url() }, None)
                }
                Err(error) => return Err(Error::ApiTransport { source: error.without_url() }),
            };
            let (error, retry_after) = failure;
            let attempt = schedule.attempt();
            match schedule.on_failure(RetryClass::Transient, backoff::now(), retry_after) {
                RetryDecision::RetryAfter(delay) => {
                    tracing::warn!(attempt, ?delay, %error, "platform API call failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                RetryDecision::GiveUp(reason) => {
                    tracing::warn!(attempt, ?reason, %error, "platform API call failed; giving up");
                    return Err(error);
                }
            }
        }
    }
}

fn correlation_id(headers: &HeaderMap) -> Option<String> {
    headers.get("inin-correlation-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn read_limited(response: reqwest::Response) -> Result<Bytes, Error> {
    let status = response.status().as_u16();
    let correlation_id = correlation_id(response.headers());
    ferry_auth::body::read_limited(response, MAX_BODY).await.map_err(|error| match error {
        ferry_auth::body::BodyError::Transport(source) => {
            Error::ApiTransport { source: source.without_url() }
        }
        other => Error::ApiDecode { status, reason: other.to_string(), correlation_id },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("inin-ratelimit-count", "12".parse().unwrap());
        headers.insert("inin-ratelimit-allowed", "300".parse().unwrap());
        assert_eq!(RateLimit::from_headers(&headers), None);
        headers.insert("inin-ratelimit-reset", "41".parse().unwrap());
        let limit = RateLimit::from_headers(&headers).unwrap();
        assert_eq!(limit, RateLimit { count: 12, allowed: 300, reset: Duration::from_secs(41) });
        assert_eq!(limit.remaining(), 288);
    }

    #[test]
    fn errors_name_code_message_and_correlation_id() {
        let error = Error::Api {
            status: 400,
            body: Some(Box::new(ErrorBody {
                message: Some("bad from".into()),
                code: Some("bad.request".into()),
                ..ErrorBody::default()
            })),
            correlation_id: Some("corr-1".into()),
            rate_limit: None,
            retry_after: None,
        };
        assert_eq!(
            error.to_string(),
            "Genesys platform API answered HTTP 400 (bad.request): bad from [correlation id corr-1]"
        );
        assert_eq!(error.correlation_id(), Some("corr-1"));
        assert!(!error.is_retryable());
    }
}
