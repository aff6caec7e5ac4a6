//! The emulator's state: deployments, sessions, attachments, connections and faults, behind one
//! lock, with the Rust API tests use to set faults and inspect conversations. The handling of guest
//! requests is in `actions`, the presigned uploads in `uploads`, the frame shapes in `wire`.

use super::wire::token_hint;
use super::{
    AttachmentSnapshot, ConversationSnapshot, Deployment, Faults, GenesysEmulatorConfig, MessageSnapshot,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How many connections one token may hold.
pub(super) const MAX_CONNECTIONS_PER_TOKEN: usize = 3;

pub(crate) type ConnId = u64;

/// What the state asks a connection task to do.
#[derive(Debug)]
pub(crate) enum Out {
    /// Send this text frame.
    Frame(String),
    /// Send a close frame and end.
    Close,
    /// End without a close frame (a dropped socket).
    Drop,
}

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) tx: mpsc::UnboundedSender<Out>,
    pub(super) deployment_id: String,
    pub(super) token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AttachmentState {
    Pending,
    Uploaded { size: u64, sha256: String, md5: String },
    Failed { code: u32 },
    Deleted,
}

#[derive(Debug, Clone)]
pub(super) struct Attachment {
    pub(super) id: String,
    pub(super) file_name: String,
    pub(super) file_type: String,
    pub(super) declared_size: u64,
    pub(super) declared_md5: Option<String>,
    pub(super) headers: BTreeMap<String, String>,
    pub(super) state: AttachmentState,
    pub(super) sent: bool,
}

#[derive(Debug)]
pub(super) struct Session {
    pub(super) deployment_id: String,
    pub(super) read_only: bool,
    pub(super) conns: Vec<ConnId>,
    pub(super) attachments: Vec<Attachment>,
    pub(super) messages: Vec<MessageSnapshot>,
    pub(super) window: Option<(Instant, u32)>,
}

impl Session {
    pub(super) fn new(deployment_id: &str) -> Self {
        Self {
            deployment_id: deployment_id.to_owned(),
            read_only: false,
            conns: Vec::new(),
            attachments: Vec::new(),
            messages: Vec::new(),
            window: None,
        }
    }

    pub(super) fn attachment_mut(&mut self, id: &str) -> Option<&mut Attachment> {
        self.attachments.iter_mut().find(|a| a.id == id)
    }
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) base_url: String,
    pub(super) deployments: HashMap<String, Deployment>,
    pub(super) jwt_lifetime: Duration,
    pub(super) faults: Faults,
    pub(super) sessions: HashMap<String, Session>,
    pub(super) conns: HashMap<ConnId, Conn>,
    pub(super) next_conn: ConnId,
    pub(super) uploads: HashMap<String, (String, String)>,
    /// Guest JWTs handed out by `getJwt`, to their token.
    pub(super) jwts: HashMap<String, String>,
    pub(super) downloads: HashMap<String, (String, String)>,
    pub(super) violations: Vec<String>,
}

/// The emulator's shared state. Cheap to clone; all clones see the same sessions.
#[derive(Debug, Clone)]
pub struct EmulatorState {
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    pub(super) fn send(&self, conn: ConnId, text: String) {
        let text = super::events::apply_tracing_mode(self.faults.tracing_ids, text);
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.tx.send(Out::Frame(text));
        }
    }

    pub(super) fn fan_out(&self, token: &str, text: &str, except: Option<ConnId>) {
        if let Some(session) = self.sessions.get(token) {
            for &id in &session.conns {
                if Some(id) != except {
                    self.send(id, text.to_owned());
                }
            }
        }
    }

    fn snapshot(&self, token: &str, session: &Session) -> ConversationSnapshot {
        ConversationSnapshot {
            token_hint: token_hint(token),
            deployment_id: session.deployment_id.clone(),
            read_only: session.read_only,
            connections: session.conns.len(),
            attachments: session
                .attachments
                .iter()
                .map(|a| {
                    let (state, size, sha256, md5, error_code) = match &a.state {
                        AttachmentState::Pending => ("pending", None, None, None, None),
                        AttachmentState::Uploaded { size, sha256, md5 } => {
                            ("uploaded", Some(*size), Some(sha256.clone()), Some(md5.clone()), None)
                        }
                        AttachmentState::Failed { code } => ("failed", None, None, None, Some(*code)),
                        AttachmentState::Deleted => ("deleted", None, None, None, None),
                    };
                    AttachmentSnapshot {
                        id: a.id.clone(),
                        file_name: a.file_name.clone(),
                        file_type: a.file_type.clone(),
                        declared_size: a.declared_size,
                        declared_md5: a.declared_md5.clone(),
                        state: state.into(),
                        size,
                        sha256,
                        md5,
                        error_code,
                    }
                })
                .collect(),
            messages: session.messages.clone(),
        }
    }

    pub(super) fn download_url(&mut self, token: &str, attachment_id: &str) -> String {
        let key = uuid::Uuid::new_v4().simple().to_string();
        self.downloads.insert(key.clone(), (token.to_owned(), attachment_id.to_owned()));
        format!("{}/__downloads/{key}", self.base_url)
    }
}

impl EmulatorState {
    /// State for `config`, making presigned and download URLs under `base_url`
    /// (`http://127.0.0.1:port`).
    pub fn new(config: GenesysEmulatorConfig, base_url: impl Into<String>) -> Self {
        let inner = Inner {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            deployments: config.deployments.into_iter().map(|d| (d.id.clone(), d)).collect(),
            jwt_lifetime: config.jwt_lifetime,
            faults: config.faults,
            sessions: HashMap::new(),
            conns: HashMap::new(),
            next_conn: 1,
            uploads: HashMap::new(),
            jwts: HashMap::new(),
            downloads: HashMap::new(),
            violations: Vec::new(),
        };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Adds or replaces a deployment.
    pub fn add_deployment(&self, deployment: Deployment) {
        self.lock().deployments.insert(deployment.id.clone(), deployment);
    }

    /// Creates a session with a fresh token (as a customer's Messenger would have) and returns the
    /// token. Panics if the deployment is unknown.
    pub fn create_session(&self, deployment_id: &str) -> String {
        let token = uuid::Uuid::new_v4().to_string();
        self.create_session_with_token(deployment_id, &token);
        token
    }

    /// Creates (or keeps) the session of `token`.
    pub fn create_session_with_token(&self, deployment_id: &str, token: &str) {
        let mut inner = self.lock();
        assert!(inner.deployments.contains_key(deployment_id), "unknown deployment {deployment_id}");
        inner.sessions.entry(token.to_owned()).or_insert_with(|| Session::new(deployment_id));
    }

    /// Ends (or reopens) the conversation of `token`: a read-only conversation accepts no
    /// attachments or messages, and `configureSession` reports `readOnly: true`.
    pub fn set_read_only(&self, token: &str, read_only: bool) {
        if let Some(session) = self.lock().sessions.get_mut(token) {
            session.read_only = read_only;
        }
    }

    /// The current faults.
    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Changes the faults in place.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.lock().faults);
    }

    /// The conversation of `token`.
    pub fn conversation(&self, token: &str) -> Option<ConversationSnapshot> {
        let inner = self.lock();
        inner.sessions.get(token).map(|s| inner.snapshot(token, s))
    }

    /// Every conversation.
    pub fn conversations(&self) -> Vec<ConversationSnapshot> {
        let inner = self.lock();
        let mut all: Vec<_> = inner.sessions.iter().map(|(t, s)| inner.snapshot(t, s)).collect();
        all.sort_by(|a, b| a.token_hint.cmp(&b.token_hint));
        all
    }

    /// Requests a guest client must never make, and messages that named attachments which had not
    /// uploaded. Empty when the client behaved.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Open connections of `token`.
    pub fn connection_count(&self, token: &str) -> usize {
        self.lock().sessions.get(token).map_or(0, |s| s.conns.len())
    }

    /// Drops every connection of `token` abruptly, without a close frame (a network fault).
    pub fn drop_connections(&self, token: &str) {
        let inner = self.lock();
        for id in inner.sessions.get(token).map(|s| s.conns.clone()).unwrap_or_default() {
            if let Some(c) = inner.conns.get(&id) {
                let _ = c.tx.send(Out::Drop);
            }
        }
    }

    /// Closes every WebSocket (used at shutdown).
    pub fn close_all_connections(&self) {
        for conn in self.lock().conns.values() {
            let _ = conn.tx.send(Out::Close);
        }
    }

    /// Whether a WebSocket upgrade for this deployment and origin is allowed.
    pub(crate) fn admit(&self, deployment_id: &str, origin: Option<&str>) -> bool {
        let inner = self.lock();
        match inner.deployments.get(deployment_id) {
            None => false,
            Some(d) => match &d.allowed_origins {
                None => true,
                Some(allowed) => origin.is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o))),
            },
        }
    }

    /// Registers a connection; returns its id and how many frames it may send before its socket
    /// is dropped (a fault).
    pub(crate) fn register(
        &self,
        deployment_id: &str,
        tx: mpsc::UnboundedSender<Out>,
    ) -> (ConnId, Option<u32>) {
        let mut inner = self.lock();
        let id = inner.next_conn;
        inner.next_conn += 1;
        inner.conns.insert(id, Conn { tx, deployment_id: deployment_id.to_owned(), token: None });
        let drop_after = match (inner.faults.drop_after_frames, inner.faults.drop_connections) {
            (Some(n), None) => Some(n),
            (Some(n), Some(left)) if left > 0 => {
                inner.faults.drop_connections = Some(left - 1);
                Some(n)
            }
            _ => None,
        };
        (id, drop_after)
    }

    /// Forgets a connection that ended.
    pub(crate) fn unregister(&self, id: ConnId) {
        let mut inner = self.lock();
        if let Some(conn) = inner.conns.remove(&id)
            && let Some(token) = conn.token
            && let Some(session) = inner.sessions.get_mut(&token)
        {
            session.conns.retain(|&c| c != id);
        }
    }

    /// Pushes `frame` to every connection of `token`.
    pub(crate) fn push(&self, token: &str, frame: &str) {
        self.lock().fan_out(token, frame, None);
    }

    /// The inspection document.
    pub(crate) fn inspection(&self) -> Value {
        json!({"conversations": self.conversations(), "violations": self.violations()})
    }
}
