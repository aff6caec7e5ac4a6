//! Emulator of the Genesys Cloud login service (`POST /oauth/token`) and of the platform REST API
//! pieces ferry uses (Open Messaging inbound messages), on one loopback server.
//!
//! - `POST /oauth/token` checks HTTP Basic client credentials against the configured clients and
//!   issues opaque bearer tokens with a configurable `expires_in`; scripted [`TokenFault`]s answer
//!   the next requests with 5xx, 429 + `Retry-After`, or malformed JSON; bad credentials get
//!   `invalid_client`. Every request is counted.
//! - Platform endpoints require a bearer token issued here and not expired or revoked, and answer
//!   errors with the Genesys `ErrorBody` (`message, code, status, contextId, details, errors`).
//! - `POST /api/v2/conversations/messages/{integrationId}/inbound/open/message` validates the body
//!   and fetches each attachment `url` like Genesys does, streaming it and recording its size and
//!   SHA-256. `GET /api/v2/organizations/me` is a plain authenticated endpoint.
//! - Every response carries `inin-ratelimit-count`, `inin-ratelimit-allowed`,
//!   `inin-ratelimit-reset` and `ININ-Correlation-Id`; past `rate_limit_allowed` requests in a
//!   window, platform calls get 429 `too.many.requests.retry.after`.
//! - `GET /sandbox/platform/open-messages` (and [`PlatformState::open_messages`]) lists what
//!   arrived.
//!
//! Expiry uses tokio's clock, so tests on paused time see tokens expire when they advance it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Configuration of the platform emulator.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlatformConfig {
    /// OAuth clients accepted by `/oauth/token`, as `(client_id, client_secret)`.
    pub clients: Vec<(String, String)>,
    /// Lifetime of issued tokens; `expires_in` is its whole seconds (at least 1). Default: 86 399 s.
    pub token_lifetime: Duration,
    /// Platform requests allowed per rate-limit window before 429s. Default: 300.
    pub rate_limit_allowed: u64,
    /// Length of a rate-limit window. Default: 60 s.
    pub rate_limit_window: Duration,
    /// Largest attachment fetched; larger ones are recorded as failed. Default: 25 MiB.
    pub max_attachment_bytes: u64,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            token_lifetime: Duration::from_secs(86_399),
            rate_limit_allowed: 300,
            rate_limit_window: Duration::from_secs(60),
            max_attachment_bytes: 25 * 1024 * 1024,
        }
    }
}

impl PlatformConfig {
    /// The defaults, with one accepted client.
    pub fn with_client(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self { clients: vec![(client_id.into(), client_secret.into())], ..Self::default() }
    }
}

/// A scripted answer for the next request to `/oauth/token`, served before any other check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFault {
    /// Answer with this HTTP status and a `server_error` body.
    Status(u16),
    /// Answer 429 with `Retry-After: <seconds>`.
    RateLimited {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// Answer 200 with a body that is not JSON.
    MalformedJson,
}

/// A scripted answer for the next authenticated platform request, served after the bearer check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiFault {
    /// Answer with this HTTP status and an `ErrorBody`.
    Status(u16),
    /// Answer 429 `too.many.requests.retry.after` with `Retry-After: <seconds>`.
    RateLimited {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// Answer 401 as if the token had been revoked.
    Unauthorized,
}

/// An Open Messaging message the emulator accepted. `Debug` leaves out the body, whose
/// attachment URLs are signed links.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedOpenMessage {
    /// The id the emulator gave the message (returned as `id`).
    pub id: String,
    /// The integration id from the path.
    pub integration_id: String,
    /// The OAuth client whose token sent it.
    pub client_id: String,
    /// The request body as received.
    pub body: Value,
    /// One entry per attachment, in order.
    pub attachments: Vec<FetchedAttachment>,
}

impl fmt::Debug for ReceivedOpenMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedOpenMessage")
            .field("id", &self.id)
            .field("integration_id", &self.integration_id)
            .field("client_id", &self.client_id)
            .field("text", &self.body.get("text"))
            .field("attachments", &self.attachments)
            .finish_non_exhaustive()
    }
}

/// The emulator's fetch of one attachment URL.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchedAttachment {
    /// The URL fetched.
    pub url: String,
    /// The declared `mime`, `filename`, `mediaType` and `sha256`.
    pub mime: Option<String>,
    /// Declared file name.
    pub filename: Option<String>,
    /// Declared media type.
    pub media_type: Option<String>,
    /// Declared SHA-256 (as sent).
    pub declared_sha256: Option<String>,
    /// HTTP status of the fetch, if a response arrived.
    pub status: Option<u16>,
    /// Bytes received.
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes received (complete fetches only).
    pub sha256: Option<String>,
    /// Whether `declared_sha256` (hex or base64) matches what was received.
    pub sha256_matches: Option<bool>,
    /// Why the fetch failed, if it did.
    pub error: Option<String>,
}

impl fmt::Debug for FetchedAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is usually a signed link: show only where it points.
        let shown = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("FetchedAttachment")
            .field("url", &format_args!("{shown}?<redacted>"))
            .field("mime", &self.mime)
            .field("filename", &self.filename)
            .field("status", &self.status)
            .field("size", &self.size)
            .field("sha256", &self.sha256)
            .field("sha256_matches", &self.sha256_matches)
            .field("error", &self.error)
            .finish()
    }
}

/// Shared state of the emulator: configuration, issued tokens, scripted faults, counters and what
/// arrived. Cheap to clone.
#[derive(Clone)]
pub struct PlatformState {
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
}

struct Inner {
    config: PlatformConfig,
    tokens: HashMap<String, IssuedToken>,
    token_faults: VecDeque<TokenFault>,
    api_faults: VecDeque<ApiFault>,
    token_requests: u64,
    tokens_issued: u64,
    api_requests: u64,
    window_start: Option<Instant>,
    window_count: u64,
    open_messages: Vec<ReceivedOpenMessage>,
}

struct IssuedToken {
    client_id: String,
    expires_at: Instant,
}

impl fmt::Debug for PlatformState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("PlatformState")
            .field("token_requests", &inner.token_requests)
            .field("tokens_issued", &inner.tokens_issued)
            .field("api_requests", &inner.api_requests)
            .field("open_messages", &inner.open_messages.len())
            .finish_non_exhaustive()
    }
}

impl PlatformState {
    /// Fresh state for `config`.
    pub fn new(config: PlatformConfig) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                config,
                tokens: HashMap::new(),
                token_faults: VecDeque::new(),
                api_faults: VecDeque::new(),
                token_requests: 0,
                tokens_issued: 0,
                api_requests: 0,
                window_start: None,
                window_count: 0,
                open_messages: Vec::new(),
            })),
            // No idle-connection timer: tests on paused tokio time must not see the clock jump.
            http: reqwest::Client::builder().pool_idle_timeout(None).build().unwrap_or_default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Requests received by `/oauth/token`, faulty ones included.
    pub fn token_requests(&self) -> u64 {
        self.lock().token_requests
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.lock().tokens_issued
    }

    /// Requests received by the platform endpoints.
    pub fn api_requests(&self) -> u64 {
        self.lock().api_requests
    }

    /// Queues a scripted answer for a coming token request.
    pub fn push_token_fault(&self, fault: TokenFault) {
        self.lock().token_faults.push_back(fault);
    }

    /// The next `n` token requests fail with `status`.
    pub fn fail_next_token_requests(&self, n: usize, status: u16) {
        let mut inner = self.lock();
        inner.token_faults.extend(std::iter::repeat_n(TokenFault::Status(status), n));
    }

    /// Queues a scripted answer for a coming authenticated platform request.
    pub fn push_api_fault(&self, fault: ApiFault) {
        self.lock().api_faults.push_back(fault);
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().config.token_lifetime = lifetime;
    }

    /// Revokes every token issued so far: they are refused with 401 from now on.
    pub fn revoke_all_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// The Open Messaging messages accepted so far.
    pub fn open_messages(&self) -> Vec<ReceivedOpenMessage> {
        self.lock().open_messages.clone()
    }

    /// Counts one response toward the rate-limit window and returns `(count, allowed, reset)`.
    fn rate_limit_tick(&self) -> (u64, u64, Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        let window = inner.config.rate_limit_window;
        let start = match inner.window_start {
            Some(start) if now.duration_since(start) < window => start,
            _ => {
                inner.window_count = 0;
                inner.window_start = Some(now);
                now
            }
        };
        inner.window_count += 1;
        let reset = window.saturating_sub(now.duration_since(start));
        (inner.window_count, inner.config.rate_limit_allowed, reset)
    }
}

/// A running emulator on a loopback port. Dropping it stops the server.
#[derive(Debug)]
pub struct PlatformEmulator {
    addr: SocketAddr,
    state: PlatformState,
    server: JoinHandle<()>,
}

impl PlatformEmulator {
    /// Binds `127.0.0.1:0` and serves [`router`] with fresh state for `config`.
    pub async fn start(config: PlatformConfig) -> std::io::Result<Self> {
        let state = PlatformState::new(config);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "platform emulator stopped");
            }
        });
        Ok(Self { addr, state, server })
    }

    /// Base URL of the emulated login service (`https://login.E` in production).
    pub fn login_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URL of the emulated platform API (`https://api.E` in production).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The emulator's state: knobs and inspection.
    pub fn state(&self) -> &PlatformState {
        &self.state
    }
}

impl Drop for PlatformEmulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The emulator's routes over `state`.
pub fn router(state: PlatformState) -> Router {
    Router::new()
        .route("/oauth/token", post(token))
        .route("/api/v2/organizations/me", get(organization))
        .route(
            "/api/v2/conversations/messages/{integration_id}/inbound/open/message",
            post(inbound_open_message),
        )
        .route("/sandbox/platform/open-messages", get(list_open_messages))
        .layer(middleware::from_fn_with_state(state.clone(), platform_headers))
        .with_state(state)
}

/// Adds the rate-limit and correlation headers Genesys puts on every response.
async fn platform_headers(State(state): State<PlatformState>, request: Request, next: Next) -> Response {
    let (count, allowed, reset) = state.rate_limit_tick();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("inin-ratelimit-count", HeaderValue::from(count));
    headers.insert("inin-ratelimit-allowed", HeaderValue::from(allowed));
    headers.insert("inin-ratelimit-reset", HeaderValue::from(reset.as_secs().max(1)));
    if let Ok(id) = HeaderValue::try_from(uuid::Uuid::new_v4().to_string()) {
        headers.insert("ININ-Correlation-Id", id);
    }
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "description": description, "error_description": description})))
        .into_response()
}

/// The Genesys platform `ErrorBody`.
fn error_body(status: StatusCode, code: &str, message: &str, details: Vec<Value>) -> Response {
    let body = json!({
        "message": message,
        "code": code,
        "status": status.as_u16(),
        "contextId": uuid::Uuid::new_v4().to_string(),
        "details": details,
        "errors": [],
    });
    (status, Json(body)).into_response()
}

fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut response = error_body(
        StatusCode::TOO_MANY_REQUESTS,
        "too.many.requests.retry.after",
        &format!("Rate limit exceeded the maximum. Retry the request in [{retry_after_secs}] seconds"),
        Vec::new(),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

async fn token(State(state): State<PlatformState>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = {
        let mut inner = state.lock();
        inner.token_requests += 1;
        inner.token_faults.pop_front()
    };
    match fault {
        Some(TokenFault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return oauth_error(status, "server_error", "scripted failure");
        }
        Some(TokenFault::RateLimited { retry_after_secs }) => {
            let mut response =
                oauth_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "scripted rate limit");
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return response;
        }
        Some(TokenFault::MalformedJson) => {
            return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"access_token\": ")
                .into_response();
        }
        None => {}
    }
    let form = String::from_utf8_lossy(&body);
    let grant = form.split('&').filter_map(|pair| pair.split_once('=')).find(|(key, _)| *key == "grant_type");
    match grant {
        Some((_, "client_credentials")) => {}
        Some(_) => {
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "unsupported grant");
        }
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    }
    let Some((client_id, secret)) = basic_credentials(&headers) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication is required");
    };
    let mut inner = state.lock();
    if !inner.config.clients.iter().any(|(id, s)| *id == client_id && *s == secret) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "client not found or secret mismatch");
    }
    let lifetime = inner.config.token_lifetime;
    let expires_in = lifetime.as_secs().max(1);
    let access_token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    inner.tokens_issued += 1;
    inner
        .tokens
        .insert(access_token.clone(), IssuedToken { client_id, expires_at: Instant::now() + lifetime });
    Json(json!({"access_token": access_token, "token_type": "bearer", "expires_in": expires_in}))
        .into_response()
}

/// Checks the bearer token and serves scripted API faults; `Ok(client id)` or the error response.
fn authenticate(state: &PlatformState, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let (client_id, fault) = {
        let mut inner = state.lock();
        inner.api_requests += 1;
        let allowed = inner.config.rate_limit_allowed;
        if inner.window_count > allowed {
            let reset = inner
                .window_start
                .map(|start| inner.config.rate_limit_window.saturating_sub(start.elapsed()))
                .unwrap_or_default();
            return Err(Box::new(too_many_requests(reset.as_secs().max(1))));
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let Some(bearer) = bearer else {
            return Err(Box::new(error_body(
                StatusCode::UNAUTHORIZED,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
                Vec::new(),
            )));
        };
        let now = Instant::now();
        let client_id = match inner.tokens.get(&bearer) {
            Some(issued) if now < issued.expires_at => issued.client_id.clone(),
            _ => {
                return Err(Box::new(error_body(
                    StatusCode::UNAUTHORIZED,
                    "bad.credentials",
                    "Invalid login credentials.",
                    Vec::new(),
                )));
            }
        };
        (client_id, inner.api_faults.pop_front())
    };
    match fault {
        None => Ok(client_id),
        Some(ApiFault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err(Box::new(error_body(
                status,
                "scripted.failure",
                "The sandbox was told to fail this request.",
                Vec::new(),
            )))
        }
        Some(ApiFault::RateLimited { retry_after_secs }) => {
            Err(Box::new(too_many_requests(retry_after_secs)))
        }
        Some(ApiFault::Unauthorized) => Err(Box::new(error_body(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
            Vec::new(),
        ))),
    }
}

async fn organization(State(state): State<PlatformState>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers) {
        Ok(client_id) => {
            Json(json!({"id": "sandbox-org", "name": "ferry sandbox", "thirdPartyOrgName": client_id}))
                .into_response()
        }
        Err(response) => *response,
    }
}

async fn list_open_messages(State(state): State<PlatformState>) -> Response {
    Json(state.open_messages()).into_response()
}

fn bad_request(message: &str, field: &str) -> Box<Response> {
    Box::new(error_body(
        StatusCode::BAD_REQUEST,
        "bad.request",
        message,
        vec![json!({"errorCode": "invalid.property", "fieldName": field})],
    ))
}

/// The declared attachment fields, checked.
struct DeclaredAttachment {
    url: String,
    mime: Option<String>,
    filename: Option<String>,
    media_type: Option<String>,
    sha256: Option<String>,
}

fn validate_open_message(body: &Value) -> Result<Vec<DeclaredAttachment>, Box<Response>> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let channel = body.get("channel").ok_or_else(|| bad_request("channel is required", "channel"))?;
    let from = channel.get("from").ok_or_else(|| bad_request("channel.from is required", "channel.from"))?;
    if text(from.get("id")).is_none_or(|id| id.is_empty()) {
        return Err(bad_request("channel.from.id is required", "channel.from.id"));
    }
    match text(from.get("idType")).as_deref() {
        Some("Email" | "Phone" | "Opaque") => {}
        _ => {
            return Err(bad_request(
                "channel.from.idType must be Email, Phone or Opaque",
                "channel.from.idType",
            ));
        }
    }
    if text(channel.get("time")).is_none() {
        return Err(bad_request("channel.time is required", "channel.time"));
    }
    let content = match body.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(bad_request("content must be an array", "content")),
    };
    let has_text = text(body.get("text")).is_some_and(|t| !t.is_empty());
    if content.is_empty() && !has_text {
        return Err(bad_request("a message needs text or content", "text"));
    }
    let mut attachments = Vec::new();
    for (index, item) in content.iter().enumerate() {
        let field = |name: &str| format!("content[{index}].{name}");
        if text(item.get("contentType")).as_deref() != Some("Attachment") {
            return Err(bad_request("only Attachment content is emulated", &field("contentType")));
        }
        let attachment = item
            .get("attachment")
            .ok_or_else(|| bad_request("attachment is required", &field("attachment")))?;
        let media_type = text(attachment.get("mediaType"));
        if !matches!(media_type.as_deref(), Some("Image" | "Video" | "Audio" | "File" | "Link")) {
            return Err(bad_request("attachment.mediaType is invalid", &field("attachment.mediaType")));
        }
        let url = text(attachment.get("url"))
            .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
            .ok_or_else(|| bad_request("attachment.url must be an http(s) URL", &field("attachment.url")))?;
        attachments.push(DeclaredAttachment {
            url,
            mime: text(attachment.get("mime")),
            filename: text(attachment.get("filename")),
            media_type,
            sha256: text(attachment.get("sha256")),
        });
    }
    Ok(attachments)
}

async fn inbound_open_message(
    State(state): State<PlatformState>,
    Path(integration_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client_id = match authenticate(&state, &headers) {
        Ok(client_id) => client_id,
        Err(response) => return *response,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error_body(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "The request body is not JSON.",
            Vec::new(),
        );
    };
    let declared = match validate_open_message(&body) {
        Ok(declared) => declared,
        Err(response) => return *response,
    };
    let max = state.lock().config.max_attachment_bytes;
    let mut attachments = Vec::new();
    for attachment in declared {
        attachments.push(fetch_attachment(&state.http, attachment, max).await);
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let response = json!({
        "id": id,
        "channel": {
            "id": integration_id,
            "platform": "Open",
            "type": "Private",
            "messageId": body.pointer("/channel/messageId"),
            "from": body.pointer("/channel/from"),
            "time": body.pointer("/channel/time"),
        },
        "type": "Text",
        "text": body.get("text"),
        "content": body.get("content"),
        "direction": "Inbound",
    });
    state.lock().open_messages.push(ReceivedOpenMessage { id, integration_id, client_id, body, attachments });
    (StatusCode::ACCEPTED, Json(response)).into_response()
}

/// Fetches an attachment as Genesys would, streaming it through SHA-256.
async fn fetch_attachment(
    http: &reqwest::Client,
    declared: DeclaredAttachment,
    max: u64,
) -> FetchedAttachment {
    let mut fetched = FetchedAttachment {
        url: declared.url,
        mime: declared.mime,
        filename: declared.filename,
        media_type: declared.media_type,
        declared_sha256: declared.sha256,
        status: None,
        size: 0,
        sha256: None,
        sha256_matches: None,
        error: None,
    };
    let mut response = match http.get(&fetched.url).send().await {
        Ok(response) => response,
        Err(error) => {
            fetched.error = Some(format!("fetch failed: {}", error.without_url()));
            return fetched;
        }
    };
    fetched.status = Some(response.status().as_u16());
    if !response.status().is_success() {
        fetched.error = Some(format!("fetch answered HTTP {}", response.status().as_u16()));
        return fetched;
    }
    let mut hasher = sha2::Sha256::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                fetched.size += chunk.len() as u64;
                if fetched.size > max {
                    fetched.error = Some(format!("attachment larger than {max} bytes"));
                    return fetched;
                }
                hasher.update(&chunk);
            }
            Ok(None) => break,
            Err(error) => {
                fetched.error = Some(format!("fetch broke off: {}", error.without_url()));
                return fetched;
            }
        }
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let base64 = base64::engine::general_purpose::STANDARD.encode(digest);
    fetched.sha256_matches = fetched
        .declared_sha256
        .as_deref()
        .map(|declared| declared.eq_ignore_ascii_case(&hex) || declared == base64);
    fetched.sha256 = Some(hex);
    fetched
}
