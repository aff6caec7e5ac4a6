//! The Genesys Cloud platform REST client: bearer tokens from a [`ferry_auth::TokenSource`], one
//! retry after a 401 (the refused token is invalidated first), `Retry-After` on 429, bounded
//! jittered retries on 502/503/504 (the decisions come from [`ferry_core::retry`]), the Genesys
//! [`ErrorBody`] and `inin-ratelimit-*` headers parsed into types, and the `ININ-Correlation-Id`
//! kept in every error. Failures are the crate's one [`Error`] (`Auth`, `Api`, `ApiTransport`,
//! `ApiDecode`, `InvalidConfig`).
//!
//! On top of it, [`PlatformClient::send_open_message`] delivers an Open Messaging inbound message
//! (`POST /api/v2/conversations/messages/{integrationId}/inbound/open/message`) whose attachment
//! Genesys then fetches from ferry's signed download link.
//!
//! Bearer tokens and attachment URLs are never logged, and `Debug` output redacts them.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::SystemTime;
//! use ferry_auth::{AuthConfig, TokenManager, TokenSource};
//! use ferry_genesys::platform::{OpenAttachment, OpenFrom, OpenMessage, PlatformClient, PlatformConfig};
//! use ferry_genesys::{GenesysEndpoints, Secret};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoints = GenesysEndpoints::for_environment("mypurecloud.ie")?;
//! let auth = AuthConfig::with_login_url(endpoints.login.as_str(), "client-id", "client-secret");
//! let tokens: Arc<dyn TokenSource> = Arc::new(TokenManager::new(auth)?);
//! let client = PlatformClient::new(PlatformConfig::for_endpoints(&endpoints), tokens)?;
//!
//! let link = Secret::new("https://ferry.example/d/f-123?sig=...");
//! let attachment = OpenAttachment::file(link, "invoice.pdf", "application/pdf", None);
//! let message = OpenMessage::file(
//!     OpenFrom::opaque("customer-1"),
//!     "f-123",
//!     SystemTime::now(),
//!     attachment,
//!     Some("Here is the invoice".into()),
//! );
//! let receipt = client.send_open_message("integration-id", &message).await?;
//! println!("delivered as {}; {:?} calls left", receipt.body.id, receipt.rate_limit.map(|l| l.remaining()));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ferry_auth::TokenSource;
use ferry_core::checksum::Sha256;
use ferry_core::retry::{RetryClass, RetryDecision, RetryPolicy, parse_retry_after_seconds};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::backoff::{self, JitterSource};
use crate::error::{Error, is_retried_status};
use crate::{GenesysEndpoints, Secret};

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

    /// Delivers an Open Messaging inbound message through the integration `integration_id`.
    /// Genesys fetches each attachment from its `url` afterwards.
    pub async fn send_open_message(
        &self,
        integration_id: &str,
        message: &OpenMessage,
    ) -> Result<PlatformResponse<OpenMessageReceipt>, Error> {
        if integration_id.is_empty() {
            return Err(Error::InvalidConfig("the integration id is empty".into()));
        }
        let segments =
            ["api", "v2", "conversations", "messages", integration_id, "inbound", "open", "message"];
        let response: PlatformResponse<Value> = self.request(Method::POST, &segments, Some(message)).await?;
        let receipt = OpenMessageReceipt::from_json(&response.body).ok_or_else(|| Error::ApiDecode {
            status: response.status,
            reason: "the answer has no message id".into(),
            correlation_id: response.correlation_id.clone(),
        })?;
        tracing::info!(
            integration_id,
            message_id = %receipt.id,
            correlation_id = response.correlation_id.as_deref().unwrap_or("-"),
            "Open Messaging message delivered"
        );
        Ok(PlatformResponse {
            body: receipt,
            status: response.status,
            rate_limit: response.rate_limit,
            correlation_id: response.correlation_id,
        })
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

async fn read_limited(mut response: reqwest::Response) -> Result<Bytes, Error> {
    let status = response.status().as_u16();
    let correlation_id = correlation_id(response.headers());
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| Error::ApiTransport { source: e.without_url() })?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Error::ApiDecode {
                status,
                reason: format!("response larger than {MAX_BODY} bytes"),
                correlation_id,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// An Open Messaging inbound message (`OpenInboundNormalizedMessage`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OpenMessage {
    /// Who sent it, when, and the sender's own message id.
    pub channel: OpenChannel,
    /// Text (with an attachment, its caption).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Attachments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<OpenContent>,
}

impl OpenMessage {
    /// A message carrying one file, with an optional caption, sent at `time`.
    pub fn file(
        from: OpenFrom,
        message_id: impl Into<String>,
        time: SystemTime,
        attachment: OpenAttachment,
        caption: Option<String>,
    ) -> Self {
        Self {
            channel: OpenChannel { from, time: rfc3339(time), message_id: message_id.into() },
            text: caption,
            content: vec![OpenContent::attachment(attachment)],
        }
    }
}

/// The `channel` of an inbound Open Messaging message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OpenChannel {
    /// The customer.
    pub from: OpenFrom,
    /// When the customer sent it, RFC 3339 (`2024-05-01T12:00:00.000Z`).
    pub time: String,
    /// The sender's id for this message (the integration's own, for de-duplication).
    pub message_id: String,
}

/// The customer of an Open Messaging message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OpenFrom {
    /// The customer's id in the integration.
    pub id: String,
    /// What kind of id it is.
    pub id_type: OpenIdType,
    /// First name, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Nickname, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
}

impl OpenFrom {
    /// A customer known by an opaque id.
    pub fn opaque(id: impl Into<String>) -> Self {
        Self { id: id.into(), id_type: OpenIdType::Opaque, first_name: None, last_name: None, nickname: None }
    }
}

/// The kinds of customer id Open Messaging accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum OpenIdType {
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// Any other id.
    Opaque,
}

/// One content item of an Open Messaging message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OpenContent {
    /// Always `"Attachment"` here.
    pub content_type: &'static str,
    /// The attachment.
    pub attachment: OpenAttachment,
}

impl OpenContent {
    /// An attachment content item.
    pub fn attachment(attachment: OpenAttachment) -> Self {
        Self { content_type: "Attachment", attachment }
    }
}

/// An attachment Genesys fetches from `url`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OpenAttachment {
    /// `Image`, `Video`, `Audio` or `File`.
    pub media_type: OpenMediaType,
    /// Where Genesys downloads the file: ferry's signed download link (redacted in `Debug`).
    pub url: Secret,
    /// MIME type.
    pub mime: String,
    /// File name shown to the agent.
    pub filename: String,
    /// Lower-case hex SHA-256 of the file, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl OpenAttachment {
    /// A file attachment (`mediaType: "File"`).
    pub fn file(
        url: Secret,
        filename: impl Into<String>,
        mime: impl Into<String>,
        sha256: Option<Sha256>,
    ) -> Self {
        Self {
            media_type: OpenMediaType::File,
            url,
            mime: mime.into(),
            filename: filename.into(),
            sha256: sha256.map(|digest| digest.to_hex()),
        }
    }
}

/// Media types of Open Messaging attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum OpenMediaType {
    /// An image.
    Image,
    /// A video.
    Video,
    /// An audio clip.
    Audio,
    /// Any other file.
    File,
}

/// What Genesys answered to an inbound Open Messaging message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenMessageReceipt {
    /// Genesys's id of the message.
    pub id: String,
    /// The sender's message id, echoed.
    pub message_id: Option<String>,
}

impl OpenMessageReceipt {
    fn from_json(body: &Value) -> Option<Self> {
        let id = body.get("id")?.as_str()?.to_owned();
        let message_id = body.pointer("/channel/messageId").and_then(Value::as_str).map(str::to_owned);
        Some(Self { id, message_id })
    }
}

/// Formats `time` as RFC 3339 in UTC with milliseconds (`1970-01-01T00:00:00.000Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (days-from-civil, inverted).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(4_107_542_399)), "2100-02-28T23:59:59.000Z");
    }

    #[test]
    fn open_message_json_shape() {
        let attachment = OpenAttachment::file(
            Secret::new("https://files.example/f?sig=s3cr3t"),
            "a.pdf",
            "application/pdf",
            Some(Sha256::of(b"abc")),
        );
        let message = OpenMessage::file(
            OpenFrom::opaque("cust-1"),
            "ext-1",
            UNIX_EPOCH,
            attachment,
            Some("caption".into()),
        );
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "channel": {"from": {"id": "cust-1", "idType": "Opaque"}, "time": "1970-01-01T00:00:00.000Z", "messageId": "ext-1"},
                "text": "caption",
                "content": [{"contentType": "Attachment", "attachment": {
                    "mediaType": "File", "url": "https://files.example/f?sig=s3cr3t", "mime": "application/pdf",
                    "filename": "a.pdf",
                    "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                }}],
            })
        );
        assert!(!format!("{message:?}").contains("s3cr3t"));
    }

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
