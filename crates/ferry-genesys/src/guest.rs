//! The guest session client: acts on behalf of a customer's existing Web Messaging session to
//! deliver a file into the conversation, natively or as a link.
//!
//! [`GuestClient::validate`] opens a short connection, configures the session, reads its limits
//! and closes: use it while a file is still arriving, so ferry never holds one of the three
//! connections a token allows for longer than needed. [`GuestClient::connect`] opens a
//! [`GuestSession`] for the delivery itself.
//!
//! A native delivery is `onAttachment` → `PUT` the body to the presigned URL → wait for the
//! `UploadSuccessEvent` of that attachment id → `onMessage` naming the attachment. The message is
//! never sent for an attachment whose upload was not confirmed (by the event, or after a
//! reconnect by `getAttachment`).

mod body;
mod connection;

pub use body::{ByteStream, UploadBody};

use crate::backoff::{self, Backoff, JitterSource};
use crate::error::Error;
use crate::hosts::GenesysEndpoints;
use crate::limits::{AttachmentDecision, InboundLimits, LinkReason};
use crate::protocol::{
    ErrorCode, False, Frame, FrameBody, MessageContent, OutgoingMessage, PresignedUrlResponse, Request,
    SessionResponse,
};
use crate::secret::{Secret, SessionToken};
use connection::{CallError, Closed, Connection};
use ferry_core::checksum::{Md5, Sha256};
use ferry_core::retry::{RetryClass, RetryDecision, RetryPolicy};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// How the guest client behaves. Every wait has a bound here.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// The guest WebSocket, `wss://webmessaging.E/v1` (the `deploymentId` query is added).
    pub web_messaging_url: Url,
    /// The `Origin` header to send, when the deployment restricts origins. Default: none.
    pub origin: Option<String>,
    /// Opening the WebSocket. Default 10 s.
    pub connect_timeout: Duration,
    /// Waiting for the response to one request. Default 30 s.
    pub response_timeout: Duration,
    /// The whole presigned `PUT`. Default 1 h.
    pub upload_timeout: Duration,
    /// Waiting for the upload's success or failure event after the `PUT`. Default 2 min.
    pub upload_event_timeout: Duration,
    /// After a reconnect, how often to ask `getAttachment` whether an upload completed. Default 2 s.
    pub upload_poll_interval: Duration,
    /// An `echo` is sent this often while a connection is open. Default 30 s.
    pub keepalive_interval: Duration,
    /// Retrying requests answered with `TooManyRequestsErrorMessage` (`retryAfter` is a floor).
    /// Default: 5 attempts within 2 min.
    pub rate_limit_retry: RetryPolicy,
    /// Reconnecting a dropped connection. Default: 4 attempts (3 reconnects) within 1 min.
    pub reconnect_retry: RetryPolicy,
    /// Retrying a failed `PUT` when the body can be re-opened. Default: 3 attempts within 5 min.
    pub upload_retry: RetryPolicy,
}

impl GuestConfig {
    /// Defaults for the given WebSocket URL.
    pub fn new(web_messaging_url: Url) -> Self {
        Self {
            web_messaging_url,
            origin: None,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(3600),
            upload_event_timeout: Duration::from_secs(120),
            upload_poll_interval: Duration::from_secs(2),
            keepalive_interval: Duration::from_secs(30),
            rate_limit_retry: RetryPolicy {
                max_attempts: 5,
                initial_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(10),
                max_elapsed: Duration::from_secs(120),
            },
            reconnect_retry: RetryPolicy {
                max_attempts: 4,
                initial_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(5),
                max_elapsed: Duration::from_secs(60),
            },
            upload_retry: RetryPolicy {
                max_attempts: 3,
                initial_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(10),
                max_elapsed: Duration::from_secs(300),
            },
        }
    }

    /// Defaults for an environment's endpoints.
    pub fn for_endpoints(endpoints: &GenesysEndpoints) -> Self {
        Self::new(endpoints.web_messaging.clone())
    }

    fn validate(&self) -> Result<(), Error> {
        if !matches!(self.web_messaging_url.scheme(), "ws" | "wss") {
            return Err(Error::InvalidConfig("web_messaging_url must be ws:// or wss://".into()));
        }
        let waits = [
            self.connect_timeout,
            self.response_timeout,
            self.upload_timeout,
            self.upload_event_timeout,
            self.upload_poll_interval,
            self.keepalive_interval,
        ];
        if waits.iter().any(Duration::is_zero) {
            return Err(Error::InvalidConfig("timeouts and intervals must be positive".into()));
        }
        Ok(())
    }
}

/// A guest client: configuration plus an HTTP client for the presigned uploads. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GuestClient {
    config: Arc<GuestConfig>,
    http: reqwest::Client,
    jitter: JitterSource,
}

/// What a session looks like once configured.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The deployment's inbound attachment limits.
    pub limits: InboundLimits,
    /// The `SessionResponse` as received.
    pub response: SessionResponse,
}

/// A file to deliver, described for the conversation: name, type, size and the digests carried as
/// custom attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// ferry's id of the stored file.
    pub file_id: String,
    /// File name as shown to the agent.
    pub file_name: String,
    /// MIME type.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, if known.
    pub sha256: Option<Sha256>,
    /// MD5 of the content, if known (also sent as `fileMd5` with `onAttachment`).
    pub md5: Option<Md5>,
    /// Further custom attributes (e.g. a correlation id).
    pub attributes: BTreeMap<String, String>,
}

impl FileMeta {
    /// The custom attributes sent with the message: `ferryFileId`, `ferrySize`, `ferrySha256` /
    /// `ferryMd5` (hex) when known, then [`FileMeta::attributes`].
    pub fn custom_attributes(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert("ferryFileId".to_owned(), self.file_id.clone());
        out.insert("ferrySize".to_owned(), self.size.to_string());
        if let Some(sha) = &self.sha256 {
            out.insert("ferrySha256".to_owned(), sha.to_hex());
        }
        if let Some(md5) = &self.md5 {
            out.insert("ferryMd5".to_owned(), md5.to_hex());
        }
        out.extend(self.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

/// A native attachment that was uploaded and sent.
#[derive(Debug, Clone)]
pub struct DeliveredAttachment {
    /// The attachment id.
    pub attachment_id: String,
    /// Where Genesys serves it (expires after about 10 minutes; `getAttachment` renews it).
    pub download_url: Secret,
    /// The id of the message that carries it, if the echo had one.
    pub message_id: Option<String>,
}

/// A message that was sent.
#[derive(Debug, Clone)]
pub struct DeliveredMessage {
    /// The message id, if the echo had one.
    pub message_id: Option<String>,
}

/// How [`GuestSession::deliver`] delivered a file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Delivery {
    /// As a native attachment.
    Native(DeliveredAttachment),
    /// As a link, for this reason.
    Link {
        /// The message.
        message: DeliveredMessage,
        /// Why not natively.
        reason: LinkReason,
    },
}

/// What to do with a file that cannot be a native attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Send a link instead (the default).
    #[default]
    Link,
    /// Refuse with [`Error::NotAttachable`].
    Refuse,
}

/// A guest JWT.
#[derive(Debug, Clone)]
pub struct GuestJwt {
    /// The JWT.
    pub jwt: Secret,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
}

impl GuestClient {
    /// A client with its own HTTP client (rustls).
    pub fn new(config: GuestConfig) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| Error::InvalidConfig(format!("cannot build the HTTP client: {e}")))?;
        Self::with_http_client(config, http)
    }

    /// A client using `http` for the presigned uploads.
    pub fn with_http_client(config: GuestConfig, http: reqwest::Client) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self { config: Arc::new(config), http, jitter: JitterSource::random() })
    }

    /// Draws the jitter of retry delays (rate-limit waits, upload retries, reconnects) from
    /// `jitter` instead of `rand` (for tests and simulations that need repeatable delays).
    pub fn with_jitter(mut self, jitter: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.jitter = JitterSource::from_fn(jitter);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &GuestConfig {
        &self.config
    }

    /// Opens a short connection, configures the session, records its limits and closes, sending
    /// nothing else. Fails with [`Error::SessionNotFound`] or [`Error::ConversationClosed`] when
    /// the token cannot be used.
    pub async fn validate(&self, deployment_id: &str, token: &SessionToken) -> Result<SessionInfo, Error> {
        let session = self.connect(deployment_id, token).await?;
        let info = session.info.clone();
        session.close();
        Ok(info)
    }

    /// Opens a session for delivering files.
    pub async fn connect(&self, deployment_id: &str, token: &SessionToken) -> Result<GuestSession, Error> {
        let mut session = GuestSession {
            client: self.clone(),
            deployment_id: deployment_id.to_owned(),
            token: token.clone(),
            conn: None,
            info: SessionInfo {
                limits: InboundLimits::from_session(&empty_session()),
                response: empty_session(),
            },
            reconnect: None,
            attempted: false,
            last_loss: None,
        };
        session.ensure_connected().await?;
        Ok(session)
    }

    async fn open_configured(
        &self,
        deployment_id: &str,
        token: &SessionToken,
    ) -> Result<(Connection, SessionResponse), Error> {
        let c = &self.config;
        let conn = Connection::open(
            &c.web_messaging_url,
            deployment_id,
            c.origin.as_deref(),
            c.connect_timeout,
            c.keepalive_interval,
            token.clone(),
        )
        .await?;
        let make = |tracing_id| Request::ConfigureSession {
            token: token.clone(),
            deployment_id: deployment_id.to_owned(),
            start_new: False,
            tracing_id: Some(tracing_id),
        };
        let frame = match self.call_on(&conn, "configureSession", &make, None).await {
            Ok(frame) => check("configureSession", frame)?,
            Err(Fail::Error(e)) => return Err(e),
            Err(Fail::Call(CallError::Timeout)) => {
                return Err(Error::Timeout { waiting_for: "configureSession", after: c.response_timeout });
            }
            Err(Fail::Call(CallError::NotSent(closed) | CallError::LostAfterWrite(closed))) => {
                return Err(closed.to_error());
            }
        };
        let FrameBody::SessionResponse(response) = frame.body else {
            return Err(unexpected("configureSession", &frame));
        };
        if response.new_session {
            conn.close();
            return Err(Error::SessionNotFound);
        }
        if response.read_only {
            conn.close();
            return Err(Error::ConversationClosed);
        }
        Ok((conn, response))
    }

    /// Sends one request on `conn`, waiting out rate limits.
    async fn call_on(
        &self,
        conn: &Connection,
        action: &'static str,
        make: &(dyn Fn(String) -> Request + Send + Sync),
        attachment_id: Option<&str>,
    ) -> Result<Frame, Fail> {
        let mut schedule = self.jitter.schedule(self.config.rate_limit_retry);
        loop {
            let request = make(uuid::Uuid::new_v4().to_string());
            let frame =
                conn.call(&request, attachment_id, self.config.response_timeout).await.map_err(Fail::Call)?;
            let retry_after = match &frame.body {
                FrameBody::TooManyRequests(t) => Some(t.retry_after()),
                _ if frame.code == 429 || frame.code == 4029 => None,
                _ => return Ok(frame),
            };
            match schedule.on_failure(RetryClass::Transient, backoff::now(), retry_after) {
                RetryDecision::RetryAfter(delay) => {
                    tracing::debug!(action, ?delay, "rate limited by Genesys; waiting");
                    tokio::time::sleep(delay).await;
                }
                RetryDecision::GiveUp(_) => {
                    return Err(Fail::Error(Error::RateLimited {
                        retry_after: retry_after.unwrap_or_default(),
                    }));
                }
            }
        }
    }
}

enum Fail {
    Call(CallError),
    Error(Error),
}

fn empty_session() -> SessionResponse {
    SessionResponse {
        connected: false,
        new_session: false,
        read_only: false,
        allowed_media: None,
        blocked_extensions: None,
        extra: Default::default(),
    }
}

/// Turns error frames into errors.
fn check(action: &'static str, frame: Frame) -> Result<Frame, Error> {
    match &frame.body {
        FrameBody::GenerateUrlError(e) => {
            Err(Error::from_genesys(action, e.error_code, e.error_message.clone()))
        }
        FrameBody::Text(text) if frame.code >= 400 => {
            Err(Error::from_genesys(action, ErrorCode::from_u32(frame.code), text.clone()))
        }
        FrameBody::Unknown { class, .. } if frame.code >= 400 => {
            Err(Error::from_genesys(action, ErrorCode::from_u32(frame.code), format!("class {class}")))
        }
        _ => Ok(frame),
    }
}

fn unexpected(action: &str, frame: &Frame) -> Error {
    Error::Protocol(format!("unexpected {} (code {}) in answer to {action}", frame.class(), frame.code))
}

/// An open guest session. Dropping it closes the connection.
#[derive(Debug)]
pub struct GuestSession {
    client: GuestClient,
    deployment_id: String,
    token: SessionToken,
    conn: Option<Connection>,
    info: SessionInfo,
    /// The reconnects' schedule, from the first drop on: it spans the session, so every
    /// reconnect counts, also those that open fine and drop again.
    reconnect: Option<Backoff>,
    attempted: bool,
    last_loss: Option<Error>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("closed", &self.closed()).finish()
    }
}

impl GuestSession {
    /// The session as configured (limits, raw response).
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The deployment's inbound limits.
    pub fn limits(&self) -> &InboundLimits {
        &self.info.limits
    }

    /// Whether `file` can be a native attachment here.
    pub fn decide(&self, file: &FileMeta) -> AttachmentDecision {
        self.info.limits.decide(&file.file_name, &file.mime_type, file.size)
    }

    /// Closes the connection (this connection only; the customer's stay open).
    pub fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close();
        }
    }

    /// Delivers a file: natively when it fits the limits, otherwise as a message with `link`
    /// (or [`Error::NotAttachable`] when `fallback` is [`Fallback::Refuse`] or no link is given).
    pub async fn deliver(
        &mut self,
        file: &FileMeta,
        body: UploadBody,
        link: Option<&str>,
        caption: Option<&str>,
        fallback: Fallback,
    ) -> Result<Delivery, Error> {
        match self.decide(file) {
            AttachmentDecision::Native => {
                self.send_attachment(file, body, caption).await.map(Delivery::Native)
            }
            AttachmentDecision::Link(reason) => match (fallback, link) {
                (Fallback::Link, Some(link)) => {
                    let message = self.send_link(file, link, caption).await?;
                    Ok(Delivery::Link { message, reason })
                }
                _ => Err(Error::NotAttachable(reason)),
            },
        }
    }

    /// Uploads `body` as a native attachment and sends a message carrying it, with `caption` and
    /// the file's custom attributes. Fails with [`Error::NotAttachable`] if the file does not fit
    /// the deployment's limits.
    pub async fn send_attachment(
        &mut self,
        file: &FileMeta,
        mut body: UploadBody,
        caption: Option<&str>,
    ) -> Result<DeliveredAttachment, Error> {
        if body.len() != file.size {
            return Err(Error::InvalidConfig(format!(
                "the body has {} bytes but the file says {}",
                body.len(),
                file.size
            )));
        }
        if let AttachmentDecision::Link(reason) = self.decide(file) {
            return Err(Error::NotAttachable(reason));
        }
        let mut schedule = self.client.jitter.schedule(self.client.config.upload_retry);
        let (attachment_id, download_url) = loop {
            let attachment_id = uuid::Uuid::new_v4().to_string();
            let presigned = self.request_upload(file, &attachment_id).await?;
            let watch = self.conn.as_ref().map(|c| c.watch_upload(&attachment_id));
            if let Err(e) = self.put(&presigned, &file.mime_type, &mut body).await {
                if let Some(conn) = &self.conn {
                    conn.unwatch_upload(&attachment_id);
                }
                if !(e.is_retryable() && body.can_reopen()) {
                    return Err(e);
                }
                match schedule.on_failure(RetryClass::Transient, backoff::now(), None) {
                    RetryDecision::RetryAfter(delay) => {
                        tracing::debug!(error = %e, ?delay, "attachment upload failed; retrying");
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    RetryDecision::GiveUp(_) => return Err(e),
                }
            }
            let url = self.await_upload(&attachment_id, watch).await?;
            break (attachment_id, url);
        };
        let message = OutgoingMessage {
            kind: "Text".into(),
            text: caption.map(str::to_owned),
            content: vec![MessageContent::attachment(attachment_id.clone())],
            channel: None,
            extra: Default::default(),
        }
        .with_custom_attributes(file.custom_attributes());
        let sent = self.send_message(message).await?;
        Ok(DeliveredAttachment { attachment_id, download_url, message_id: sent.message_id })
    }

    /// Sends a message with the file's name, human-readable size and `link` (plus `caption` on a
    /// line of its own first), with the file's custom attributes.
    pub async fn send_link(
        &mut self,
        file: &FileMeta,
        link: &str,
        caption: Option<&str>,
    ) -> Result<DeliveredMessage, Error> {
        let line = format!("{} ({}): {link}", file.file_name, human_size(file.size));
        let text = match caption {
            Some(caption) if !caption.is_empty() => format!("{caption}\n{line}"),
            _ => line,
        };
        let message = OutgoingMessage::text(text).with_custom_attributes(file.custom_attributes());
        self.send_message(message).await
    }

    /// Sends a message as the guest. It is not resent if the connection drops after it was
    /// written ([`Error::DeliveryUnconfirmed`]).
    pub async fn send_message(&mut self, message: OutgoingMessage) -> Result<DeliveredMessage, Error> {
        let token = self.token.clone();
        let make = move |tracing_id| Request::OnMessage {
            token: token.clone(),
            message: message.clone(),
            tracing_id: Some(tracing_id),
        };
        let frame = self.call("onMessage", &make, None, false).await?;
        match frame.body {
            FrameBody::StructuredMessage(m) => Ok(DeliveredMessage { message_id: m.id }),
            _ => Err(unexpected("onMessage", &frame)),
        }
    }

    /// A fresh download URL for an uploaded attachment.
    pub async fn get_attachment(&mut self, attachment_id: &str) -> Result<Secret, Error> {
        let token = self.token.clone();
        let id = attachment_id.to_owned();
        let make = move |tracing_id| Request::GetAttachment {
            token: token.clone(),
            attachment_id: id.clone(),
            tracing_id: Some(tracing_id),
        };
        let frame = self.call("getAttachment", &make, Some(attachment_id), true).await?;
        match frame.body {
            FrameBody::PresignedUrlResponse(p) if p.attachment_id == attachment_id => Ok(p.url),
            _ => Err(unexpected("getAttachment", &frame)),
        }
    }

    /// Deletes an attachment that was not sent.
    pub async fn delete_attachment(&mut self, attachment_id: &str) -> Result<(), Error> {
        let token = self.token.clone();
        let id = attachment_id.to_owned();
        let make = move |tracing_id| Request::DeleteAttachment {
            token: token.clone(),
            attachment_id: id.clone(),
            tracing_id: Some(tracing_id),
        };
        let frame = self.call("deleteAttachment", &make, Some(attachment_id), true).await?;
        match frame.body {
            FrameBody::AttachmentDeletedResponse(_) => Ok(()),
            _ => Err(unexpected("deleteAttachment", &frame)),
        }
    }

    /// A guest JWT for the guest REST API.
    pub async fn get_jwt(&mut self) -> Result<GuestJwt, Error> {
        let token = self.token.clone();
        let make = move |tracing_id| Request::GetJwt { token: token.clone(), tracing_id: Some(tracing_id) };
        let frame = self.call("getJwt", &make, None, true).await?;
        match frame.body {
            FrameBody::JwtResponse(j) => Ok(GuestJwt { jwt: j.jwt, exp: j.exp }),
            _ => Err(unexpected("getJwt", &frame)),
        }
    }

    /// Sends an `echo` and waits for it to come back (a liveness check).
    pub async fn echo(&mut self) -> Result<(), Error> {
        let token = self.token.clone();
        let make = move |tracing_id| Request::Echo {
            token: token.clone(),
            message: OutgoingMessage::text("ping"),
            tracing_id: Some(tracing_id),
        };
        self.call("echo", &make, None, true).await.map(drop)
    }

    async fn request_upload(
        &mut self,
        file: &FileMeta,
        attachment_id: &str,
    ) -> Result<PresignedUrlResponse, Error> {
        let token = self.token.clone();
        let (id, name, mime, size) =
            (attachment_id.to_owned(), file.file_name.clone(), file.mime_type.clone(), file.size);
        let md5 = file.md5.map(|m| m.to_base64());
        let make = move |tracing_id| Request::OnAttachment {
            token: token.clone(),
            attachment_id: id.clone(),
            file_name: name.clone(),
            file_type: mime.clone(),
            file_size: size,
            file_md5: md5.clone(),
            errors_as_json: true,
            tracing_id: Some(tracing_id),
        };
        let frame = self.call("onAttachment", &make, Some(attachment_id), true).await?;
        match frame.body {
            FrameBody::PresignedUrlResponse(p) if p.attachment_id == attachment_id => Ok(p),
            _ => Err(unexpected("onAttachment", &frame)),
        }
    }

    async fn put(
        &self,
        presigned: &PresignedUrlResponse,
        mime: &str,
        body: &mut UploadBody,
    ) -> Result<(), Error> {
        let config = &self.client.config;
        let stream = body.open().await?;
        let mut request =
            self.client.http.put(presigned.url.expose()).header(reqwest::header::CONTENT_TYPE, mime);
        for (name, value) in &presigned.headers {
            if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            request = request.header(name.as_str(), value.as_str());
        }
        let response = match tokio::time::timeout(config.upload_timeout, request.body(stream).send()).await {
            Err(_) => {
                return Err(Error::Timeout {
                    waiting_for: "the attachment upload",
                    after: config.upload_timeout,
                });
            }
            Ok(Err(e)) => return Err(Error::UploadTransport(e.without_url())),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            return Err(Error::UploadRejected { status: status.as_u16() });
        }
        Ok(())
    }

    /// Waits for the upload event of `attachment_id`; after a dropped connection, reconnects and
    /// asks `getAttachment` until the upload is confirmed, refused or the time is up.
    async fn await_upload(
        &mut self,
        attachment_id: &str,
        watch: Option<tokio::sync::oneshot::Receiver<Frame>>,
    ) -> Result<Secret, Error> {
        let wait = self.client.config.upload_event_timeout;
        let deadline = Instant::now() + wait;
        let timeout = || Error::Timeout { waiting_for: "the upload event", after: wait };
        let mut watch = watch;
        loop {
            if let Some(rx) = watch.as_mut() {
                match tokio::time::timeout_at(deadline, rx).await {
                    Err(_) => {
                        if let Some(conn) = &self.conn {
                            conn.unwatch_upload(attachment_id);
                        }
                        return Err(timeout());
                    }
                    Ok(Ok(frame)) => return upload_outcome(frame),
                    Ok(Err(_)) => {}
                }
            }
            // The connection dropped while waiting: the event may be lost with it.
            if let Some(Closed::SessionLimit) = self.conn.as_ref().and_then(Connection::closed) {
                return Err(Error::SessionLimitReached);
            }
            self.conn = None;
            self.ensure_connected().await?;
            let rx = self.conn.as_ref().map(|c| c.watch_upload(attachment_id));
            watch = rx;
            loop {
                match self.get_attachment(attachment_id).await {
                    Ok(url) => {
                        if let Some(conn) = &self.conn {
                            conn.unwatch_upload(attachment_id);
                        }
                        return Ok(url);
                    }
                    Err(Error::Genesys { code: ErrorCode::AttachmentNotUploaded, .. }) => {}
                    Err(e) => return Err(e),
                }
                if Instant::now() >= deadline {
                    return Err(timeout());
                }
                let pause = self.client.config.upload_poll_interval.min(deadline - Instant::now());
                let Some(rx) = watch.as_mut() else { break };
                match tokio::time::timeout(pause, rx).await {
                    Ok(Ok(frame)) => return upload_outcome(frame),
                    Ok(Err(_)) => break, // dropped again: reconnect
                    Err(_) => {}
                }
            }
        }
    }

    /// Sends a request on the current connection, reconnecting first if it dropped. A request
    /// that was written before the drop is resent only if `resend_safe`.
    async fn call(
        &mut self,
        action: &'static str,
        make: &(dyn Fn(String) -> Request + Send + Sync),
        attachment_id: Option<&str>,
        resend_safe: bool,
    ) -> Result<Frame, Error> {
        loop {
            self.ensure_connected().await?;
            let conn = self.conn.as_ref().expect("connected");
            match self.client.call_on(conn, action, make, attachment_id).await {
                Ok(frame) => return check(action, frame),
                Err(Fail::Error(e)) => return Err(e),
                Err(Fail::Call(CallError::Timeout)) => {
                    return Err(Error::Timeout {
                        waiting_for: action,
                        after: self.client.config.response_timeout,
                    });
                }
                Err(Fail::Call(CallError::NotSent(closed))) => {
                    self.conn = None;
                    self.last_loss = Some(closed.to_error());
                    if closed == Closed::SessionLimit {
                        return Err(Error::SessionLimitReached);
                    }
                }
                Err(Fail::Call(CallError::LostAfterWrite(closed))) => {
                    self.conn = None;
                    self.last_loss = Some(closed.to_error());
                    if closed == Closed::SessionLimit {
                        return Err(Error::SessionLimitReached);
                    }
                    if !resend_safe {
                        return Err(Error::DeliveryUnconfirmed);
                    }
                }
            }
        }
    }

    /// Makes sure a configured connection is open, reconnecting (bounded) if needed.
    async fn ensure_connected(&mut self) -> Result<(), Error> {
        if let Some(conn) = &self.conn {
            match conn.closed() {
                None => return Ok(()),
                Some(Closed::SessionLimit) => {
                    self.conn = None;
                    return Err(Error::SessionLimitReached);
                }
                Some(_) => self.conn = None,
            }
        }
        loop {
            if self.attempted {
                let client = &self.client;
                let schedule = self
                    .reconnect
                    .get_or_insert_with(|| client.jitter.schedule(client.config.reconnect_retry));
                let reconnect = schedule.attempt();
                match schedule.on_failure(RetryClass::Transient, backoff::now(), None) {
                    RetryDecision::RetryAfter(delay) => tokio::time::sleep(delay).await,
                    RetryDecision::GiveUp(_) => {
                        let reason = format!("gave up after {} reconnects", reconnect - 1);
                        return Err(self
                            .last_loss
                            .take()
                            .unwrap_or(Error::ConnectionLost { reason: Some(reason) }));
                    }
                }
            }
            match self.client.open_configured(&self.deployment_id, &self.token).await {
                Ok((conn, response)) => {
                    self.info = SessionInfo { limits: InboundLimits::from_session(&response), response };
                    self.conn = Some(conn);
                    self.attempted = true;
                    return Ok(());
                }
                Err(e) if e.is_retryable() && !matches!(e, Error::SessionLimitReached) => {
                    tracing::debug!(error = %e, "web messaging connection failed");
                    self.attempted = true;
                    self.last_loss = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn upload_outcome(frame: Frame) -> Result<Secret, Error> {
    match frame.body {
        FrameBody::UploadSuccessEvent(e) => Ok(e.download_url),
        FrameBody::UploadFailureEvent(e) => {
            Err(Error::UploadFailed { code: e.error_code, message: e.error_message })
        }
        _ => Err(unexpected("the upload", &frame)),
    }
}

/// A file size for people: `512 bytes`, `1.5 KB`, `10 MB`, `2.3 GB` (units of 1024).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1024 {
        return if bytes == 1 { "1 byte".to_owned() } else { format!("{bytes} bytes") };
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(1023), "1023 bytes");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(10 * 1024 * 1024), "10 MB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024 / 2), "2.5 GB");
    }

    #[test]
    fn custom_attributes() {
        let meta = FileMeta {
            file_id: "f-1".into(),
            file_name: "a.pdf".into(),
            mime_type: "application/pdf".into(),
            size: 3,
            sha256: Some(Sha256::of(b"abc")),
            md5: None,
            attributes: BTreeMap::from([("corr".into(), "x".into())]),
        };
        let attrs = meta.custom_attributes();
        assert_eq!(attrs["ferryFileId"], "f-1");
        assert_eq!(attrs["ferrySize"], "3");
        assert_eq!(attrs["ferrySha256"], Sha256::of(b"abc").to_hex());
        assert_eq!(attrs["corr"], "x");
        assert!(!attrs.contains_key("ferryMd5"));
    }

    #[test]
    fn config_validation() {
        let url = Url::parse("wss://webmessaging.mypurecloud.com/v1").unwrap();
        assert!(GuestConfig::new(url.clone()).validate().is_ok());
        let mut bad = GuestConfig::new(Url::parse("https://x/v1").unwrap());
        assert!(bad.validate().is_err());
        bad = GuestConfig::new(url);
        bad.response_timeout = Duration::ZERO;
        assert!(bad.validate().is_err());
    }
}
