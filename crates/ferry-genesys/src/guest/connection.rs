//! One guest WebSocket connection, driven by a background task.
//!
//! The task owns the socket. It writes requests handed to it, sends an `echo` keep-alive on a
//! timer, and routes every incoming frame to whoever waits for it: responses by `tracingId`
//! (falling back to the attachment id), upload events by attachment id. Upload events that arrive
//! before anyone waits are kept, so a fast server cannot outrun the waiter. When the socket ends,
//! every waiter is woken with the reason.

use crate::error::Error;
use crate::protocol::{Frame, FrameBody, OutgoingMessage, Request};
use crate::secret::SessionToken;
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Closed {
    /// We closed it.
    ByUs,
    /// The server said `ConnectionClosedEvent` with `SessionLimitReached` (or no reason).
    SessionLimit,
    /// The transport ended, with what it said.
    Lost(Option<String>),
}

impl Closed {
    pub(crate) fn to_error(&self) -> Error {
        match self {
            Self::SessionLimit => Error::SessionLimitReached,
            Self::ByUs => Error::ConnectionLost { reason: Some("closed by the client".into()) },
            Self::Lost(reason) => Error::ConnectionLost { reason: reason.clone() },
        }
    }
}

#[derive(Default)]
struct Routes {
    by_tracing: HashMap<String, oneshot::Sender<Frame>>,
    by_attachment: HashMap<String, String>,
    uploads: HashMap<String, oneshot::Sender<Frame>>,
    early_uploads: HashMap<String, Frame>,
    server_reason: Option<Closed>,
    closed: Option<Closed>,
}

enum Outgoing {
    Text { text: String, written: oneshot::Sender<bool> },
    Close,
}

/// A live connection. Dropping it closes the socket.
pub(crate) struct Connection {
    out: mpsc::UnboundedSender<Outgoing>,
    routes: Arc<Mutex<Routes>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("closed", &self.closed()).finish()
    }
}

/// The outcome of a request that got no response.
pub(crate) enum CallError {
    /// The request never reached the socket: resending is safe.
    NotSent(Closed),
    /// The request was written, then the connection ended.
    LostAfterWrite(Closed),
    /// No response within the timeout.
    Timeout,
}

fn lock(routes: &Mutex<Routes>) -> MutexGuard<'_, Routes> {
    routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Connection {
    /// Opens the socket (with `Origin` if given) and starts the driver.
    pub(crate) async fn open(
        url: &url::Url,
        deployment_id: &str,
        origin: Option<&str>,
        connect_timeout: Duration,
        keepalive: Duration,
        token: SessionToken,
    ) -> Result<Self, Error> {
        let mut url = url.clone();
        url.query_pairs_mut().append_pair("deploymentId", deployment_id);
        let mut request =
            url.as_str().into_client_request().map_err(|e| Error::InvalidConfig(format!("bad URL: {e}")))?;
        if let Some(origin) = origin {
            let value = HeaderValue::from_str(origin)
                .map_err(|_| Error::InvalidConfig("bad Origin header".into()))?;
            request.headers_mut().insert("Origin", value);
        }
        let connect = tokio_tungstenite::connect_async(request);
        let (ws, _response) = match tokio::time::timeout(connect_timeout, connect).await {
            Err(_) => {
                return Err(Error::Timeout { waiting_for: "the WebSocket to open", after: connect_timeout });
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                return Err(Error::HandshakeRejected { status: response.status().as_u16() });
            }
            Ok(Err(e)) => return Err(Error::Connect(Box::new(e))),
            Ok(Ok(pair)) => pair,
        };
        let (out, rx) = mpsc::unbounded_channel();
        let routes = Arc::new(Mutex::new(Routes::default()));
        tokio::spawn(drive(ws, rx, routes.clone(), keepalive, token));
        Ok(Self { out, routes })
    }

    /// Why the connection ended, if it has.
    pub(crate) fn closed(&self) -> Option<Closed> {
        lock(&self.routes).closed.clone()
    }

    /// Sends `request` and waits for the frame answering it (matched by its tracing id, or by
    /// `attachment_id` when the server does not echo the tracing id).
    pub(crate) async fn call(
        &self,
        request: &Request,
        attachment_id: Option<&str>,
        timeout: Duration,
    ) -> Result<Frame, CallError> {
        let tracing_id = request.tracing_id().expect("requests carry a tracing id").to_owned();
        let text = serde_json::to_string(request).expect("requests serialise");
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = lock(&self.routes);
            if let Some(closed) = &routes.closed {
                return Err(CallError::NotSent(closed.clone()));
            }
            routes.by_tracing.insert(tracing_id.clone(), tx);
            if let Some(id) = attachment_id {
                routes.by_attachment.insert(id.to_owned(), tracing_id.clone());
            }
        }
        let forget = || {
            let mut routes = lock(&self.routes);
            routes.by_tracing.remove(&tracing_id);
            if let Some(id) = attachment_id {
                routes.by_attachment.remove(id);
            }
        };
        let (written_tx, written_rx) = oneshot::channel();
        let sent = self.out.send(Outgoing::Text { text, written: written_tx }).is_ok()
            && written_rx.await.unwrap_or(false);
        if !sent {
            forget();
            return Err(CallError::NotSent(self.closed().unwrap_or(Closed::Lost(None))));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(_)) => Err(CallError::LostAfterWrite(self.closed().unwrap_or(Closed::Lost(None)))),
            Err(_) => {
                forget();
                Err(CallError::Timeout)
            }
        }
    }

    /// Starts listening for the upload event of `attachment_id`. Call before the upload starts.
    pub(crate) fn watch_upload(&self, attachment_id: &str) -> oneshot::Receiver<Frame> {
        let (tx, rx) = oneshot::channel();
        let mut routes = lock(&self.routes);
        if let Some(frame) = routes.early_uploads.remove(attachment_id) {
            let _ = tx.send(frame);
        } else if routes.closed.is_none() {
            routes.uploads.insert(attachment_id.to_owned(), tx);
        }
        rx
    }

    /// Stops listening for `attachment_id`.
    pub(crate) fn unwatch_upload(&self, attachment_id: &str) {
        lock(&self.routes).uploads.remove(attachment_id);
    }

    /// Closes the socket politely.
    pub(crate) fn close(&self) {
        let _ = self.out.send(Outgoing::Close);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

const KEEPALIVE_PREFIX: &str = "ferry-keepalive-";

async fn drive(
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    routes: Arc<Mutex<Routes>>,
    keepalive: Duration,
    token: SessionToken,
) {
    let (mut sink, mut stream) = ws.split();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let mut pings = 0u64;
    let closed = loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outgoing::Text { text, written }) => {
                    let ok = sink.send(Message::text(text)).await.is_ok();
                    let _ = written.send(ok);
                    if !ok {
                        break Closed::Lost(Some("write failed".into()));
                    }
                }
                Some(Outgoing::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break Closed::ByUs;
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => route(&routes, text.as_str()),
                Some(Ok(Message::Close(frame))) => {
                    break lock(&routes).server_reason.clone().unwrap_or_else(|| {
                        Closed::Lost(Some(frame.map_or_else(|| "closed by the server".to_owned(), |f| {
                            format!("closed by the server ({}{}{})", f.code, if f.reason.is_empty() { "" } else { ": " }, f.reason)
                        })))
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    break lock(&routes).server_reason.clone().unwrap_or(Closed::Lost(Some(e.to_string())));
                }
                None => break lock(&routes).server_reason.clone().unwrap_or(Closed::Lost(None)),
            },
            _ = ticker.tick() => {
                pings += 1;
                let echo = Request::Echo {
                    token: token.clone(),
                    message: OutgoingMessage::text("ping"),
                    tracing_id: Some(format!("{KEEPALIVE_PREFIX}{pings}")),
                };
                let text = serde_json::to_string(&echo).expect("requests serialise");
                if sink.send(Message::text(text)).await.is_err() {
                    break Closed::Lost(Some("write failed".into()));
                }
            }
        }
    };
    tracing::debug!(?closed, "web messaging connection ended");
    let mut routes = lock(&routes);
    routes.closed = Some(closed);
    // Dropping the senders wakes every waiter; they read `closed`.
    routes.by_tracing.clear();
    routes.by_attachment.clear();
    routes.uploads.clear();
    drop(routes);
    // Drain queued writes so their callers learn they were not sent.
    rx.close();
    while let Ok(out) = rx.try_recv() {
        if let Outgoing::Text { written, .. } = out {
            let _ = written.send(false);
        }
    }
}

fn route(routes: &Mutex<Routes>, text: &str) {
    let frame: Frame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a malformed Web Messaging frame");
            return;
        }
    };
    tracing::debug!(class = frame.class(), code = frame.code, "web messaging frame");
    let mut routes = lock(routes);
    if let Some(tid) = frame.tracing_id.as_deref() {
        if let Some(tx) = routes.by_tracing.remove(tid) {
            if let Some(id) = frame.attachment_id() {
                routes.by_attachment.remove(id);
            }
            let _ = tx.send(frame);
            return;
        }
        if tid.starts_with(KEEPALIVE_PREFIX) {
            return;
        }
    }
    match &frame.body {
        FrameBody::UploadSuccessEvent(_) | FrameBody::UploadFailureEvent(_) => {
            let id = frame.attachment_id().unwrap_or_default().to_owned();
            match routes.uploads.remove(&id) {
                Some(tx) => {
                    let _ = tx.send(frame);
                }
                None => {
                    routes.early_uploads.insert(id, frame);
                }
            }
        }
        FrameBody::PresignedUrlResponse(_)
        | FrameBody::GenerateUrlError(_)
        | FrameBody::AttachmentDeletedResponse(_) => {
            let id = frame.attachment_id().unwrap_or_default().to_owned();
            if let Some(tid) = routes.by_attachment.remove(&id)
                && let Some(tx) = routes.by_tracing.remove(&tid)
            {
                let _ = tx.send(frame);
            }
        }
        FrameBody::ConnectionClosedEvent(event) => {
            let reason = match event.reason.as_deref() {
                None | Some("SessionLimitReached") => Closed::SessionLimit,
                Some(other) => Closed::Lost(Some(other.to_owned())),
            };
            routes.server_reason = Some(reason);
        }
        _ => tracing::debug!(class = frame.class(), "unsolicited Web Messaging frame"),
    }
}
