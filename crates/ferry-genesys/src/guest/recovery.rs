//! How a [`GuestSession`] survives a dropped socket: requests are resent after a reconnect only
//! when that is safe, reconnects follow one retry schedule for the whole session, a
//! connection taken over by the customer (session limit) is never fought for, and an upload
//! whose event was lost with the socket is confirmed by polling `getAttachment`.

use super::client::{Fail, check, unexpected};
use super::connection::{CallError, Connection};
use super::{GuestSession, SessionInfo};
use crate::backoff;
use crate::error::Error;
use crate::limits::InboundLimits;
use crate::protocol::{ErrorCode, Frame, FrameBody, Request};
use crate::secret::Secret;
use ferry_core::retry::{RetryClass, RetryDecision};
use tokio::time::Instant;

impl GuestSession {
    /// Waits for the upload event of `attachment_id`; after a dropped connection, reconnects and
    /// asks `getAttachment` until the upload is confirmed, refused or the time is up.
    pub(super) async fn await_upload(
        &mut self,
        attachment_id: &str,
        watch: Option<tokio::sync::oneshot::Receiver<Frame>>,
    ) -> Result<Secret, Error> {
        let wait = self.client.config.upload_event_timeout;
        let deadline = Instant::now() + wait;
        let timeout = || Error::Timeout { waiting_for: super::outcome::UPLOAD_EVENT, after: wait };
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
            if let Some(closed) = self.conn.as_ref().and_then(Connection::closed)
                && closed.is_final()
            {
                return Err(closed.to_error());
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
                    // Both mean "not yet" while an upload is being processed.
                    Err(Error::Genesys {
                        code: ErrorCode::AttachmentNotUploaded | ErrorCode::AttachmentNotFound,
                        ..
                    }) => {}
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
    pub(super) async fn call(
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
                    if closed.is_final() {
                        return Err(closed.to_error());
                    }
                }
                Err(Fail::Call(CallError::LostAfterWrite(closed))) => {
                    self.conn = None;
                    self.last_loss = Some(closed.to_error());
                    if closed.is_final() {
                        return Err(closed.to_error());
                    }
                    if !resend_safe {
                        return Err(Error::DeliveryUnconfirmed);
                    }
                }
            }
        }
    }

    /// Makes sure a configured connection is open, reconnecting (bounded) if needed.
    pub(super) async fn ensure_connected(&mut self) -> Result<(), Error> {
        if let Some(conn) = &self.conn {
            match conn.closed() {
                None => return Ok(()),
                Some(closed) if closed.is_final() => {
                    self.conn = None;
                    return Err(closed.to_error());
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
