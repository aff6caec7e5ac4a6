//! [`GuestClient`]: opens connections, configures the session (`configureSession`) and sends one
//! request on a connection, waiting out rate limits on a retry schedule.

use super::connection::{CallError, Connection};
use super::{GuestConfig, GuestSession, SessionInfo};
use crate::backoff::{self, JitterSource};
use crate::error::Error;
use crate::protocol::{ErrorCode, False, Frame, FrameBody, Request, SessionResponse};
use crate::secret::SessionToken;
use ferry_core::retry::{RetryClass, RetryDecision};
use std::sync::Arc;

/// A guest client: configuration plus an HTTP client for the presigned uploads. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GuestClient {
    pub(super) config: Arc<GuestConfig>,
    pub(super) http: reqwest::Client,
    pub(super) jitter: JitterSource,
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
        let mut session = GuestSession::new(self.clone(), deployment_id, token);
        session.ensure_connected().await?;
        Ok(session)
    }

    pub(super) async fn open_configured(
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
    pub(super) async fn call_on(
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

/// Why [`GuestClient::call_on`] got no usable frame.
pub(super) enum Fail {
    /// The connection failed the call.
    Call(CallError),
    /// An error to report as it is (still rate limited).
    Error(Error),
}

/// Turns error frames into errors.
pub(super) fn check(action: &'static str, frame: Frame) -> Result<Frame, Error> {
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

/// A frame of the wrong class in answer to `action`.
pub(super) fn unexpected(action: &str, frame: &Frame) -> Error {
    Error::Protocol(format!("unexpected {} (code {}) in answer to {action}", frame.class(), frame.code))
}
