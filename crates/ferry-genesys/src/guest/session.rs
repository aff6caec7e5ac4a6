//! [`GuestSession`]: one open guest session and its actions: deliver a file natively or as a
//! link, send a message, get or delete an attachment, get a JWT, echo. The native path retries a
//! failed presigned `PUT` on a retry schedule when the body can be re-opened.

use super::client::unexpected;
use super::connection::Connection;
use super::{
    DeliveredAttachment, DeliveredMessage, Delivery, Fallback, FileMeta, GuestClient, GuestJwt, SessionInfo,
    UploadBody, human_size,
};
use crate::backoff::{self, Backoff};
use crate::deployment::DeploymentConfig;
use crate::error::Error;
use crate::limits::{AttachmentDecision, InboundLimits, LinkReason};
use crate::protocol::{
    FrameBody, MessageContent, OutgoingMessage, PresignedUrlResponse, Request, SessionResponse,
};
use crate::secret::{Secret, SessionToken};
use ferry_core::retry::{RetryClass, RetryDecision};
use std::sync::Arc;

/// An open guest session. Dropping it closes the connection.
#[derive(Debug)]
pub struct GuestSession {
    pub(super) client: GuestClient,
    pub(super) deployment_id: String,
    pub(super) token: SessionToken,
    pub(super) conn: Option<Connection>,
    pub(super) info: SessionInfo,
    /// The reconnects' schedule, from the first drop on: it spans the session, so every
    /// reconnect counts, also those that open fine and drop again.
    pub(super) reconnect: Option<Backoff>,
    pub(super) attempted: bool,
    pub(super) last_loss: Option<Error>,
    /// The deployment's `config.json`, consulted when `SessionResponse` states no limits.
    pub(super) deployment_config: Option<Arc<DeploymentConfig>>,
}

impl GuestSession {
    /// A session not connected yet.
    pub(super) fn new(client: GuestClient, deployment_id: &str, token: &SessionToken) -> Self {
        Self {
            client,
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
            deployment_config: None,
        }
    }

    /// The session as configured (limits, raw response).
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The deployment's inbound limits.
    pub fn limits(&self) -> &InboundLimits {
        &self.info.limits
    }

    /// Gives the session the deployment's `config.json` (from a
    /// [`DeploymentConfigClient`](crate::deployment::DeploymentConfigClient)): it decides what
    /// may be a native attachment when the `SessionResponse` carries no `allowedMedia`.
    pub fn use_deployment_config(&mut self, config: Arc<DeploymentConfig>) {
        self.deployment_config = Some(config);
    }

    /// Whether `file` can be a native attachment here: by `SessionResponse.allowedMedia` when
    /// the session states it, otherwise by the deployment's `config.json` if given (blocked
    /// extensions still apply), otherwise never.
    pub fn decide(&self, file: &FileMeta) -> AttachmentDecision {
        let stated = self.info.response.allowed_media.as_ref().is_some_and(|m| m.inbound.is_some());
        match &self.deployment_config {
            Some(config) if !stated => {
                let by_name =
                    InboundLimits::new(u64::MAX / 1000, vec!["*/*".into()], self.blocked_extensions())
                        .decide(&file.file_name, &file.mime_type, file.size);
                match by_name {
                    AttachmentDecision::Link(LinkReason::BlockedExtension { .. }) => by_name,
                    _ => config.decide(&file.mime_type, file.size),
                }
            }
            _ => self.info.limits.decide(&file.file_name, &file.mime_type, file.size),
        }
    }

    fn blocked_extensions(&self) -> Vec<String> {
        self.info.limits.blocked_extensions.clone()
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
            if let Err(e) = self.put(&presigned, &essence(&file.mime_type), &mut body).await {
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
    /// written, or if no echo comes in time ([`Error::DeliveryUnconfirmed`] in both cases).
    pub async fn send_message(&mut self, message: OutgoingMessage) -> Result<DeliveredMessage, Error> {
        let token = self.token.clone();
        let make = move |tracing_id| Request::OnMessage {
            token: token.clone(),
            message: message.clone(),
            tracing_id: Some(tracing_id),
        };
        let frame = match self.call("onMessage", &make, None, false).await {
            // Written, never echoed: it may have arrived.
            Err(Error::Timeout { .. }) => return Err(Error::DeliveryUnconfirmed),
            other => other?,
        };
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
        // As the official clients: the MIME type without parameters, and no `fileMd5` (its
        // expected encoding is unknown, so sending it could only get a good file refused).
        let (id, name, mime, size) =
            (attachment_id.to_owned(), file.file_name.clone(), essence(&file.mime_type), file.size);
        let make = move |tracing_id| Request::OnAttachment {
            token: token.clone(),
            attachment_id: id.clone(),
            file_name: name.clone(),
            file_type: mime.clone(),
            file_size: size,
            file_md5: None,
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
}

/// A MIME type without its parameters (`text/plain; charset=utf-8` → `text/plain`).
fn essence(mime: &str) -> String {
    mime.split(';').next().unwrap_or_default().trim().to_owned()
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
