//! One guest WebSocket connection, driven by a background task.
//!
//! The task owns the socket. It writes requests handed to it (one in flight at a time), sends an
//! `echo` keep-alive on a timer while nothing is in flight, and routes every incoming frame to
//! whoever waits for it (`routing`: by `tracingId` when echoed, otherwise by class, attachment id
//! and ferry's markers). Upload events that arrive before anyone waits are kept, so a fast server
//! cannot outrun the waiter. When the socket ends, or Genesys says the session or conversation
//! ended, every waiter is woken at once with the reason.

use super::routing::{self, End, KEEPALIVE_TRACING_ID, Route, Waiter, Wants};
use crate::error::Error;
use crate::protocol::{Frame, OutgoingMessage, Request};
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
    /// Genesys said the session or conversation ended.
    Ended(End),
}

impl Closed {
    /// Whether reconnecting cannot help (the customer took the connection, or the session or
    /// conversation is over).
    pub(crate) fn is_final(&self) -> bool {
        matches!(self, Self::SessionLimit | Self::Ended(_))
    }

    pub(crate) fn to_error(&self) -> Error {
        match self {
            Self::SessionLimit => Error::SessionLimitReached,
            Self::Ended(End::Conversation) => Error::ConversationClosed,
            Self::Ended(End::Session(end)) => Error::SessionEnded(*end),
            Self::ByUs => Error::ConnectionLost { reason: Some("closed by the client".into()) },
            Self::Lost(reason) => Error::ConnectionLost { reason: reason.clone() },
        }
    }
}

#[derive(Default)]
struct Routes {
    current: Option<Waiter>,
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

    /// Sends `request` and waits for the frame answering it (see `routing`: its tracing id when
    /// echoed, otherwise its class, `attachment_id` and the message's marker). One request at a
    /// time: the caller holds the session mutably.
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
            debug_assert!(routes.current.is_none(), "one request at a time per connection");
            routes.current = Some(Waiter {
                tracing_id: tracing_id.clone(),
                attachment_id: attachment_id.map(str::to_owned),
                wants: Wants::of(request),
                tx,
            });
        }
        let forget = || {
            let mut routes = lock(&self.routes);
            if routes.current.as_ref().is_some_and(|w| w.tracing_id == tracing_id) {
                routes.current = None;
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

async fn drive(
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    routes: Arc<Mutex<Routes>>,
    keepalive: Duration,
    token: SessionToken,
) {
    let (mut sink, mut stream) = ws.split();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
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
                Some(Ok(Message::Text(text))) => {
                    if let Some(end) = route(&routes, text.as_str()) {
                        let _ = sink.send(Message::Close(None)).await;
                        break Closed::Ended(end);
                    }
                }
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
                if lock(&routes).current.is_some() {
                    continue; // a request in flight keeps the socket busy enough
                }
                let echo = Request::Echo {
                    token: token.clone(),
                    message: OutgoingMessage::text("ping"),
                    tracing_id: Some(KEEPALIVE_TRACING_ID.to_owned()),
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
    routes.current = None;
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

/// Hands one incoming frame to whoever waits for it; `Some` when it ends the session or
/// conversation.
fn route(routes: &Mutex<Routes>, text: &str) -> Option<End> {
    let frame: Frame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a malformed Web Messaging frame");
            return None;
        }
    };
    tracing::debug!(class = frame.class(), code = frame.code, "web messaging frame");
    let mut routes = lock(routes);
    match routing::route(&frame, routes.current.as_ref()) {
        Route::Waiter => {
            if let Some(waiter) = routes.current.take() {
                let _ = waiter.tx.send(frame);
            }
        }
        Route::Upload(id) => match routes.uploads.remove(&id) {
            Some(tx) => {
                let _ = tx.send(frame);
            }
            None => {
                routes.early_uploads.insert(id, frame);
            }
        },
        Route::End(end) => {
            tracing::info!(?end, "Genesys ended the guest session or conversation");
            return Some(end);
        }
        Route::Closing(reason) => {
            routes.server_reason = Some(match reason.as_deref() {
                None | Some("SessionLimitReached") => Closed::SessionLimit,
                Some(other) => Closed::Lost(Some(other.to_owned())),
            });
        }
        Route::Nobody => tracing::debug!(class = frame.class(), "unsolicited Web Messaging frame"),
    }
    None
}
