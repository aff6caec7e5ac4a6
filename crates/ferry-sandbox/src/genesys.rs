//! A Genesys Cloud Web Messaging emulator: the guest WebSocket and the presigned uploads behind
//! it, on loopback, with fault knobs and an inspection API.
//!
//! It follows the contract in `genesys-web-messaging.md` and shares no code with the
//! `ferry-genesys` client, so a misreading of the protocol in one is not mirrored in the other.
//!
//! - `GET /v1?deploymentId=…` upgrades to the guest WebSocket. Sessions are keyed by token;
//!   `configureSession` on an unknown token creates an empty session (`newSession: true`). A token
//!   holds at most three connections: a fourth pushes the oldest off with a
//!   `ConnectionClosedEvent` (`SessionLimitReached`). Messages fan out to every connection of the
//!   token. An `Origin` a deployment does not allow is refused with 403 at the upgrade, as is an
//!   unknown deployment.
//! - `onAttachment` issues a presigned URL served here (`PUT /__uploads/{key}`). The `PUT` must
//!   carry the returned headers, the declared `Content-Type` and a `Content-Length` equal to the
//!   declared size; the body is streamed through SHA-256 and MD5 and dropped, so only name, size
//!   and digests are kept. Then an `UploadSuccessEvent` (or `UploadFailureEvent`) goes to every
//!   connection of the token.
//! - `onMessage` referring to an attachment that did not upload is refused with 4010 and recorded
//!   as a *violation*; so are the requests ferry must never send on a customer's token
//!   (`configureSession` with `startNew: true`, `closeSession` with `closeAllConnections: true`,
//!   `clearConversation`).
//! - Knobs ([`Faults`]) refuse a native attachment at each step (a `GenerateUrlError`, a non-2xx
//!   presigned `PUT`, an `UploadFailureEvent` after a good `PUT`, no upload event at all), drop
//!   the socket after recording an `onMessage`, end the session or conversation
//!   ([`EmulatorState::end_session`], or in place of an upload event), and leave `tracingId` out
//!   where the official fixtures have none, or everywhere ([`TracingIds`]).
//! - `GET /webdeployments/v1/deployments/{id}/config.json` serves the deployment's public
//!   configuration (`messenger.fileUpload.enableAttachments` and `modes[]`).
//! - `GET /api/v2/webmessaging/messages` with a guest JWT from `getJwt` lists the session's
//!   messages (newest first, `pageSize`/`pageNumber`) with their custom attributes.
//! - `GET /__sandbox/conversations` lists sessions (token shortened), attachments (name, size,
//!   SHA-256) and messages, plus violations. [`EmulatorState`] offers the same to Rust.
//!
//! Choices where the contract is silent (marked *unverified* there): `getAttachment` answers with a
//! `PresignedUrlResponse` carrying the download URL, or `class: "string"` 4010 (not uploaded; 4009
//! with [`Faults::not_uploaded_code`]) / 4009 (unknown); requests on a read-only conversation get `class: "string"` code 4000; errors
//! without a JSON class use `class: "string"` with the code on the frame.

mod actions;
mod events;
mod server;
mod state;
mod uploads;
mod wire;

pub use state::EmulatorState;

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The deployment id of the default configuration (and of `ferry dev`'s demo session).
pub const DEMO_DEPLOYMENT_ID: &str = "ferry-demo-deployment";

/// A Web Messenger deployment as the emulator knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Deployment id (`deploymentId`).
    pub id: String,
    /// Origins allowed to open the WebSocket; `None` allows any (and a missing `Origin`).
    pub allowed_origins: Option<Vec<String>>,
    /// Allowed inbound MIME types (`*/*`, `image/*`, …); empty disables guest attachments.
    pub allowed_file_types: Vec<String>,
    /// Largest inbound file, KB of 1,000 bytes (as the official clients read it); 0 states no
    /// limit in `SessionResponse` (official clients then attach nothing).
    pub max_file_size_kb: u64,
    /// Blocked extensions, with the dot.
    pub blocked_extensions: Vec<String>,
    /// Longest message text, in characters (4011 beyond).
    pub max_message_chars: usize,
    /// Largest custom attributes, in bytes of JSON (4013 beyond).
    pub max_custom_attributes_bytes: usize,
    /// `SessionResponse` leaves `allowedMedia` out (the limits are then only in `config.json`).
    pub omit_allowed_media: bool,
}

impl Deployment {
    /// A deployment with the limits seen in every Genesys sample: any type (`*/*`), 10240 KB,
    /// the usual executables blocked, any origin.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            allowed_origins: None,
            allowed_file_types: vec!["*/*".into()],
            max_file_size_kb: 10240,
            blocked_extensions: [".exe", ".bat", ".cmd", ".com", ".msi", ".scr", ".vbs", ".js"]
                .map(String::from)
                .to_vec(),
            max_message_chars: 4096,
            max_custom_attributes_bytes: 2048,
            omit_allowed_media: false,
        }
    }
}

/// A fixed-window request rate limit per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub max_requests: u32,
    /// The window.
    pub window: Duration,
}

/// Faults to inject. Counters count down as they fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults {
    /// The next this-many presigned `PUT`s are answered with `refuse_status` and store nothing.
    pub refuse_uploads: u32,
    /// Status for refused uploads. Default 403.
    pub refuse_status: u16,
    /// The next this-many accepted uploads end with an `UploadFailureEvent` of `failure_code`.
    pub fail_uploads: u32,
    /// Code for failed uploads. Default 4003 (file content invalid).
    pub failure_code: u32,
    /// Connections opened while this is set drop their socket (no close frame) right after
    /// sending this many frames.
    pub drop_after_frames: Option<u32>,
    /// How many connections `drop_after_frames` applies to; `None` for all.
    pub drop_connections: Option<u32>,
    /// Delay before upload events are pushed.
    pub event_delay: Duration,
    /// The next this-many requests are answered with `TooManyRequestsErrorMessage`.
    pub throttle_requests: u32,
    /// `retryAfter` (seconds) in rate-limit frames. Default 1.
    pub retry_after_secs: u64,
    /// A standing per-token rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Actions that are silently ignored (no answer at all).
    pub ignore_actions: Vec<String>,
    /// Which frames carry the request's `tracingId` back. Default [`TracingIds::Echo`].
    pub tracing_ids: TracingIds,
    /// The next this-many valid `onAttachment` requests are refused with a `GenerateUrlError`
    /// (`type: "message"`, as in the official fixtures) of `refuse_attachment_code`.
    pub refuse_attachments: u32,
    /// Code for refused attachments. Default 4002 (file size invalid).
    pub refuse_attachment_code: u32,
    /// The next this-many accepted uploads push no upload event at all.
    pub swallow_upload_events: u32,
    /// The next accepted upload ends the session or conversation (this event is pushed instead
    /// of the upload event).
    pub end_on_upload: Option<SessionEnd>,
    /// The next this-many `onMessage` requests are recorded, then the socket is dropped before
    /// the echo (the message arrived; the sender cannot know).
    pub drop_after_message: u32,
    /// The code `getAttachment` answers for an attachment not uploaded yet: 4010 (default) or
    /// 4009 (the official behaviour may be either).
    pub not_uploaded_code: u32,
    /// The next this-many `getAttachment` requests on an uploaded attachment answer
    /// `not_uploaded_code` all the same, as Genesys does while it still processes a file.
    pub pending_polls: u32,
}

/// Which frames carry the request's `tracingId` back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TracingIds {
    /// Every answer echoes it.
    #[default]
    Echo,
    /// Like the official fixtures: none on `SessionResponse`, `PresignedUrlResponse`,
    /// `GenerateUrlError`, string errors and `TooManyRequestsErrorMessage`.
    LikeFixtures,
    /// Never.
    Never,
}

/// How a session or conversation ends (see [`EmulatorState::end_session`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// `SessionExpiredEvent` (code 4006).
    Expired,
    /// `LogoutEvent`.
    LoggedOut,
    /// `SessionClearedEvent`.
    Cleared,
    /// A `StructuredMessage` event: Presence `Disconnect` with `metadata.readOnly`.
    ConversationEnded,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            refuse_uploads: 0,
            refuse_status: 403,
            fail_uploads: 0,
            failure_code: 4003,
            drop_after_frames: None,
            drop_connections: None,
            event_delay: Duration::ZERO,
            throttle_requests: 0,
            retry_after_secs: 1,
            rate_limit: None,
            ignore_actions: Vec::new(),
            tracing_ids: TracingIds::Echo,
            refuse_attachments: 0,
            refuse_attachment_code: 4002,
            swallow_upload_events: 0,
            end_on_upload: None,
            drop_after_message: 0,
            not_uploaded_code: 4010,
            pending_polls: 0,
        }
    }
}

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct GenesysEmulatorConfig {
    /// The deployments. Default: one, [`DEMO_DEPLOYMENT_ID`], with [`Deployment::new`] limits.
    pub deployments: Vec<Deployment>,
    /// Initial faults. Default: none.
    pub faults: Faults,
    /// Lifetime of guest JWTs from `getJwt`. Default 15 min.
    pub jwt_lifetime: Duration,
    /// Where to listen. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
}

impl Default for GenesysEmulatorConfig {
    fn default() -> Self {
        Self {
            deployments: vec![Deployment::new(DEMO_DEPLOYMENT_ID)],
            faults: Faults::default(),
            jwt_lifetime: Duration::from_secs(900),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// A conversation as the inspection API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSnapshot {
    /// The first 8 characters of the token (tokens are never shown whole).
    pub token_hint: String,
    /// Deployment id.
    pub deployment_id: String,
    /// Whether the conversation has ended.
    pub read_only: bool,
    /// Open connections on the token.
    pub connections: usize,
    /// Attachments, in the order they were announced.
    pub attachments: Vec<AttachmentSnapshot>,
    /// Messages, in order.
    pub messages: Vec<MessageSnapshot>,
}

/// An attachment as the inspection API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentSnapshot {
    /// Attachment id.
    pub id: String,
    /// File name.
    pub file_name: String,
    /// Declared MIME type.
    pub file_type: String,
    /// Declared size.
    pub declared_size: u64,
    /// The `fileMd5` the client declared, if any (official clients send none).
    pub declared_md5: Option<String>,
    /// `pending`, `uploaded`, `failed` or `deleted`.
    pub state: String,
    /// Bytes received (uploaded only).
    pub size: Option<u64>,
    /// Hex SHA-256 of the bytes received (uploaded only).
    pub sha256: Option<String>,
    /// Hex MD5 of the bytes received (uploaded only).
    pub md5: Option<String>,
    /// Failure code (failed only).
    pub error_code: Option<u32>,
}

/// A message as the inspection API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSnapshot {
    /// Message id.
    pub id: String,
    /// Text.
    pub text: Option<String>,
    /// Attachment ids it carries.
    pub attachment_ids: Vec<String>,
    /// Custom attributes.
    pub custom_attributes: BTreeMap<String, String>,
}

/// Builds the emulator's routes over `state` (for mounting into another server). Presigned and
/// download URLs are made from the base URL `state` was created with.
pub fn router(state: EmulatorState) -> axum::Router {
    server::router(state)
}

/// A running emulator. Dereferences to its [`EmulatorState`] for sessions, faults and inspection.
#[derive(Debug)]
pub struct GenesysEmulator {
    state: EmulatorState,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl GenesysEmulator {
    /// Binds (loopback, port 0 by default) and serves until [`GenesysEmulator::shutdown`] or drop.
    pub async fn start(config: GenesysEmulatorConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let state = EmulatorState::new(config, format!("http://{addr}"));
        let app = router(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "genesys emulator stopped");
            }
        });
        Ok(Self { state, addr, shutdown: Some(tx), task: Some(task) })
    }

    /// The state: sessions, faults, inspection.
    pub fn state(&self) -> &EmulatorState {
        &self.state
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:port/v1` (add `?deploymentId=…`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }

    /// Closes every WebSocket and stops serving.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn stop(&mut self) {
        self.state.close_all_connections();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl std::ops::Deref for GenesysEmulator {
    type Target = EmulatorState;

    fn deref(&self) -> &EmulatorState {
        &self.state
    }
}

impl Drop for GenesysEmulator {
    fn drop(&mut self) {
        self.stop();
    }
}
