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
//! - Agent sign-in (`agents`): `GET /oauth/authorize` (a sign-in page with demo agents),
//!   `grant_type=authorization_code` with PKCE S256 at `/oauth/token`, `GET /api/v2/tokens/me` and
//!   `GET /api/v2/users/me`.
//! - `GET /sandbox/platform/open-messages` (and [`PlatformState::open_messages`]) lists what
//!   arrived.
//!
//! Expiry uses tokio's clock, so tests on paused time see tokens expire when they advance it.
//!
//! This file holds the configuration, the state and the router; `oauth` the token endpoint,
//! `agents` the authorization-code sign-in, `api`
//! the bearer check and the Genesys error bodies, `open_messaging` the inbound messages and the
//! attachment fetches.

mod agents;
mod api;
mod oauth;
mod open_messaging;

pub use agents::{
    CodeClient, DEMO_DIVISION_ID, DEMO_ORGANIZATION_ID, DemoAgent, OTHER_ORGANIZATION_ID, demo_agents, s256,
};

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;
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
    /// Clients allowed the authorization-code grant (agent sign-in). Default: none.
    pub code_clients: Vec<CodeClient>,
    /// Who can sign in on `/oauth/authorize`. Default: [`demo_agents`].
    pub agents: Vec<DemoAgent>,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            token_lifetime: Duration::from_secs(86_399),
            rate_limit_allowed: 300,
            rate_limit_window: Duration::from_secs(60),
            max_attachment_bytes: 25 * 1024 * 1024,
            code_clients: Vec::new(),
            agents: demo_agents(),
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
    sign_in: agents::SignIn,
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
                sign_in: agents::SignIn::default(),
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
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/authorize", get(agents::authorize_page).post(agents::authorize_submit))
        .route("/api/v2/tokens/me", get(agents::tokens_me))
        .route("/api/v2/users/me", get(agents::users_me))
        .route("/api/v2/organizations/me", get(api::organization))
        .route(
            "/api/v2/conversations/messages/{integration_id}/inbound/open/message",
            post(open_messaging::inbound_open_message),
        )
        .route("/sandbox/platform/open-messages", get(open_messaging::list_open_messages))
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
