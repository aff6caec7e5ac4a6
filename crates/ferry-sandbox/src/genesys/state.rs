//! The emulator's state: deployments, sessions, attachments, connections, faults; and the handling
//! of each guest request.

use super::{
    AttachmentSnapshot, ConversationSnapshot, Deployment, Faults, GenesysEmulatorConfig, MessageSnapshot,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How many connections one token may hold.
const MAX_CONNECTIONS_PER_TOKEN: usize = 3;

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
struct Conn {
    tx: mpsc::UnboundedSender<Out>,
    deployment_id: String,
    token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AttachmentState {
    Pending,
    Uploaded { size: u64, sha256: String, md5: String },
    Failed { code: u32 },
    Deleted,
}

#[derive(Debug, Clone)]
struct Attachment {
    id: String,
    file_name: String,
    file_type: String,
    declared_size: u64,
    declared_md5: Option<String>,
    headers: BTreeMap<String, String>,
    state: AttachmentState,
    sent: bool,
}

#[derive(Debug)]
struct Session {
    deployment_id: String,
    read_only: bool,
    conns: Vec<ConnId>,
    attachments: Vec<Attachment>,
    messages: Vec<MessageSnapshot>,
    window: Option<(Instant, u32)>,
}

impl Session {
    fn new(deployment_id: &str) -> Self {
        Self {
            deployment_id: deployment_id.to_owned(),
            read_only: false,
            conns: Vec::new(),
            attachments: Vec::new(),
            messages: Vec::new(),
            window: None,
        }
    }

    fn attachment_mut(&mut self, id: &str) -> Option<&mut Attachment> {
        self.attachments.iter_mut().find(|a| a.id == id)
    }
}

/// What an upload key opens.
#[derive(Debug, Clone)]
pub(crate) struct UploadTarget {
    pub(crate) token: String,
    pub(crate) attachment_id: String,
    pub(crate) file_type: String,
    pub(crate) declared_size: u64,
    pub(crate) headers: BTreeMap<String, String>,
}

/// Whether an upload is let through, and what to push afterwards.
pub(crate) enum UploadGate {
    Unknown,
    Refuse(u16),
    Accept(UploadTarget),
}

#[derive(Debug)]
struct Inner {
    base_url: String,
    deployments: HashMap<String, Deployment>,
    jwt_lifetime: Duration,
    faults: Faults,
    sessions: HashMap<String, Session>,
    conns: HashMap<ConnId, Conn>,
    next_conn: ConnId,
    uploads: HashMap<String, (String, String)>,
    downloads: HashMap<String, (String, String)>,
    violations: Vec<String>,
}

/// The emulator's shared state. Cheap to clone; all clones see the same sessions.
#[derive(Debug, Clone)]
pub struct EmulatorState {
    inner: Arc<Mutex<Inner>>,
}

/// The frame shape: `{"type","class","code","body","tracingId"?}`.
fn frame(kind: &str, class: &str, code: u32, body: Value, tracing_id: Option<&str>) -> String {
    let mut frame = json!({"type": kind, "class": class, "code": code, "body": body});
    if let Some(tid) = tracing_id {
        frame["tracingId"] = json!(tid);
    }
    frame.to_string()
}

fn string_error(code: u32, text: &str, tracing_id: Option<&str>) -> String {
    frame("response", "string", code, json!(text), tracing_id)
}

fn timestamp() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

fn token_hint(token: &str) -> String {
    token.chars().take(8).collect()
}

fn extension(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name).trim_end_matches(['.', ' ']);
    let dot = base.rfind('.').filter(|&d| d > 0)?;
    Some(base[dot..].to_ascii_lowercase())
}

fn type_allowed(patterns: &[String], mime: &str) -> bool {
    let mime = mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let Some((t, s)) = mime.split_once('/') else { return false };
    patterns.iter().any(|p| {
        let p = p.trim().to_ascii_lowercase();
        match p.split_once('/') {
            Some((pt, ps)) => (pt == "*" || pt == t) && (ps == "*" || ps == s),
            None => false,
        }
    })
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    fn send(&self, conn: ConnId, text: String) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.tx.send(Out::Frame(text));
        }
    }

    fn fan_out(&self, token: &str, text: &str, except: Option<ConnId>) {
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

    fn download_url(&mut self, token: &str, attachment_id: &str) -> String {
        let key = uuid::Uuid::new_v4().simple().to_string();
        self.downloads.insert(key.clone(), (token.to_owned(), attachment_id.to_owned()));
        format!("{}/__downloads/{key}", self.base_url)
    }

    /// Applies throttling faults and the standing rate limit; `Some(frame)` when rate limited.
    fn throttle(&mut self, token: &str, tracing_id: Option<&str>) -> Option<String> {
        let retry_after = self.faults.retry_after_secs;
        let limited = if self.faults.throttle_requests > 0 {
            self.faults.throttle_requests -= 1;
            true
        } else if let (Some(limit), Some(session)) = (self.faults.rate_limit, self.sessions.get_mut(token)) {
            let now = Instant::now();
            let (start, count) = session.window.get_or_insert((now, 0));
            if now.duration_since(*start) >= limit.window {
                *start = now;
                *count = 0;
            }
            *count += 1;
            *count > limit.max_requests
        } else {
            false
        };
        limited.then(|| {
            frame(
                "response",
                "TooManyRequestsErrorMessage",
                429,
                json!({"retryAfter": retry_after, "errorCode": 4029, "errorMessage": "Message rate too high for this session"}),
                tracing_id,
            )
        })
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
            downloads: HashMap::new(),
            violations: Vec::new(),
        };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
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

    /// Handles one text frame from connection `conn`.
    pub(crate) fn handle(&self, conn: ConnId, text: &str) {
        let mut inner = self.lock();
        let Ok(request) = serde_json::from_str::<Value>(text) else {
            inner.send(conn, string_error(4020, "Request is not valid JSON", None));
            return;
        };
        let tracing_id = request.get("tracingId").and_then(Value::as_str).map(str::to_owned);
        let tid = tracing_id.as_deref();
        let action = request.get("action").and_then(Value::as_str).unwrap_or_default().to_owned();
        let Some(token) = request.get("token").and_then(Value::as_str).map(str::to_owned) else {
            inner.send(conn, string_error(4020, "Missing parameter: token", tid));
            return;
        };
        if inner.faults.ignore_actions.contains(&action) {
            return;
        }
        if let Some(limited) = inner.throttle(&token, tid) {
            inner.send(conn, limited);
            return;
        }
        if action == "configureSession" {
            configure(&mut inner, conn, &token, &request, tid);
            return;
        }
        // Every other action needs this connection configured for this token.
        let configured = inner.conns.get(&conn).and_then(|c| c.token.as_deref()) == Some(token.as_str());
        if !configured {
            inner.send(conn, string_error(4007, "Session not found", tid));
            return;
        }
        match action.as_str() {
            "onAttachment" => on_attachment(&mut inner, conn, &token, &request, tid),
            "onMessage" => on_message(&mut inner, conn, &token, &request, tid),
            "getAttachment" => get_attachment(&mut inner, conn, &token, &request, tid),
            "deleteAttachment" => delete_attachment(&mut inner, conn, &token, &request, tid),
            "echo" => {
                let text = request.pointer("/message/text").cloned().unwrap_or(json!("ping"));
                let body = json!({"id": uuid::Uuid::new_v4().to_string(), "type": "Text", "text": text, "direction": "Inbound"});
                inner.send(conn, frame("response", "StructuredMessage", 200, body, tid));
            }
            "getJwt" => {
                let exp =
                    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + inner.jwt_lifetime;
                let jwt = format!("emulator.{}.signature", uuid::Uuid::new_v4().simple());
                let body = json!({"jwt": jwt, "exp": exp.as_secs()});
                inner.send(conn, frame("response", "JwtResponse", 200, body, tid));
            }
            "closeSession" => {
                let all = request.get("closeAllConnections").and_then(Value::as_bool).unwrap_or(false);
                let read_only = inner.sessions.get(&token).is_some_and(|s| s.read_only);
                let body = json!({"connected": false, "newSession": false, "readOnly": read_only});
                let targets: Vec<ConnId> = if all {
                    inner
                        .violations
                        .push(format!("closeSession with closeAllConnections on {}", token_hint(&token)));
                    inner.sessions.get(&token).map(|s| s.conns.clone()).unwrap_or_default()
                } else {
                    vec![conn]
                };
                inner.send(conn, frame("response", "SessionResponse", 200, body, tid));
                for id in targets {
                    if let Some(c) = inner.conns.get(&id) {
                        let _ = c.tx.send(Out::Close);
                    }
                }
            }
            "clearConversation" => {
                inner.violations.push(format!("clearConversation on {}", token_hint(&token)));
                if let Some(s) = inner.sessions.get_mut(&token) {
                    s.read_only = true;
                }
                inner.fan_out(&token, &frame("message", "SessionClearedEvent", 200, json!({}), None), None);
            }
            _ => inner.send(conn, string_error(4000, &format!("Unsupported action {action:?}"), tid)),
        }
    }

    /// Looks up an upload key and applies the refusal fault.
    pub(crate) fn upload_gate(&self, key: &str) -> UploadGate {
        let mut inner = self.lock();
        let Some((token, attachment_id)) = inner.uploads.get(key).cloned() else {
            return UploadGate::Unknown;
        };
        if inner.faults.refuse_uploads > 0 {
            inner.faults.refuse_uploads -= 1;
            return UploadGate::Refuse(inner.faults.refuse_status);
        }
        let Some(a) = inner.sessions.get_mut(&token).and_then(|s| s.attachment_mut(&attachment_id)) else {
            return UploadGate::Unknown;
        };
        if a.state != AttachmentState::Pending {
            return UploadGate::Unknown;
        }
        UploadGate::Accept(UploadTarget {
            token,
            attachment_id,
            file_type: a.file_type.clone(),
            declared_size: a.declared_size,
            headers: a.headers.clone(),
        })
    }

    /// Records the outcome of an upload and returns the event frame to push (after the delay
    /// fault) to every connection of the token.
    pub(crate) fn finish_upload(
        &self,
        key: &str,
        target: &UploadTarget,
        result: Result<(u64, String, String), u32>,
    ) -> (String, Duration) {
        let mut inner = self.lock();
        let delay = inner.faults.event_delay;
        let result = match result {
            Ok(received) if inner.faults.fail_uploads > 0 => {
                inner.faults.fail_uploads -= 1;
                let _ = received;
                Err(inner.faults.failure_code)
            }
            other => other,
        };
        let declared_md5 = inner
            .sessions
            .get_mut(&target.token)
            .and_then(|s| s.attachment_mut(&target.attachment_id))
            .and_then(|a| a.declared_md5.clone());
        let result = match result {
            Ok((size, sha256, md5)) => match declared_md5 {
                Some(declared) if !md5_matches(&declared, &md5) => Err(4003),
                _ => Ok((size, sha256, md5)),
            },
            Err(code) => Err(code),
        };
        inner.uploads.remove(key);
        let event = match result {
            Ok((size, sha256, md5)) => {
                if let Some(a) = inner
                    .sessions
                    .get_mut(&target.token)
                    .and_then(|s| s.attachment_mut(&target.attachment_id))
                {
                    a.state = AttachmentState::Uploaded { size, sha256, md5 };
                }
                let url = inner.download_url(&target.token, &target.attachment_id);
                frame(
                    "message",
                    "UploadSuccessEvent",
                    200,
                    json!({"attachmentId": target.attachment_id, "downloadUrl": url, "timestamp": timestamp()}),
                    None,
                )
            }
            Err(code) => {
                if let Some(a) = inner
                    .sessions
                    .get_mut(&target.token)
                    .and_then(|s| s.attachment_mut(&target.attachment_id))
                {
                    a.state = AttachmentState::Failed { code };
                }
                frame(
                    "message",
                    "UploadFailureEvent",
                    200,
                    json!({"attachmentId": target.attachment_id, "errorCode": code,
                           "errorMessage": "The uploaded file was rejected", "timestamp": timestamp()}),
                    None,
                )
            }
        };
        (event, delay)
    }

    /// Pushes `frame` to every connection of `token`.
    pub(crate) fn push(&self, token: &str, frame: &str) {
        self.lock().fan_out(token, frame, None);
    }

    /// The stored facts of a download key: (file name, type, size, sha256).
    pub(crate) fn download(&self, key: &str) -> Option<Value> {
        let inner = self.lock();
        let (token, id) = inner.downloads.get(key)?;
        let a = inner.sessions.get(token)?.attachments.iter().find(|a| &a.id == id)?;
        match &a.state {
            AttachmentState::Uploaded { size, sha256, .. } => Some(json!({
                "attachmentId": a.id, "fileName": a.file_name, "fileType": a.file_type,
                "size": size, "sha256": sha256, "note": "the emulator keeps digests, not content"
            })),
            _ => None,
        }
    }

    /// The inspection document.
    pub(crate) fn inspection(&self) -> Value {
        json!({"conversations": self.conversations(), "violations": self.violations()})
    }
}

fn md5_matches(declared: &str, actual_hex: &str) -> bool {
    use base64::Engine as _;
    if declared.eq_ignore_ascii_case(actual_hex) {
        return true;
    }
    base64::engine::general_purpose::STANDARD
        .decode(declared.trim())
        .is_ok_and(|raw| raw.iter().map(|b| format!("{b:02x}")).collect::<String>() == actual_hex)
}

fn configure(inner: &mut Inner, conn: ConnId, token: &str, request: &Value, tid: Option<&str>) {
    let conn_deployment = inner.conns.get(&conn).map(|c| c.deployment_id.clone()).unwrap_or_default();
    let deployment_id = request.get("deploymentId").and_then(Value::as_str).unwrap_or_default();
    if deployment_id.is_empty() {
        inner.send(conn, string_error(4020, "Missing parameter: deploymentId", tid));
        return;
    }
    if deployment_id != conn_deployment {
        inner.send(conn, string_error(4000, "deploymentId does not match the connection", tid));
        return;
    }
    let Some(deployment) = inner.deployments.get(deployment_id).cloned() else {
        inner.send(conn, string_error(4000, "Unknown deployment", tid));
        return;
    };
    let start_new = request.get("startNew").and_then(Value::as_bool).unwrap_or(false);
    if start_new {
        inner.violations.push(format!("configureSession with startNew on {}", token_hint(token)));
    }
    let new_session = !inner.sessions.contains_key(token);
    let session = inner.sessions.entry(token.to_owned()).or_insert_with(|| Session::new(deployment_id));
    if start_new && session.read_only {
        session.read_only = false;
        session.messages.clear();
    }
    let read_only = session.read_only;
    let previous = inner.conns.get(&conn).and_then(|c| c.token.clone());
    if previous.as_deref() != Some(token) {
        if let Some(prev) = previous
            && let Some(s) = inner.sessions.get_mut(&prev)
        {
            s.conns.retain(|&c| c != conn);
        }
        if let Some(c) = inner.conns.get_mut(&conn) {
            c.token = Some(token.to_owned());
        }
        let session = inner.sessions.get_mut(token).expect("just inserted");
        session.conns.push(conn);
        let evicted: Vec<ConnId> = if session.conns.len() > MAX_CONNECTIONS_PER_TOKEN {
            let n = session.conns.len() - MAX_CONNECTIONS_PER_TOKEN;
            session.conns.drain(..n).collect()
        } else {
            Vec::new()
        };
        for old in evicted {
            let closed = frame(
                "message",
                "ConnectionClosedEvent",
                200,
                json!({"reason": "SessionLimitReached"}),
                None,
            );
            if let Some(c) = inner.conns.get_mut(&old) {
                c.token = None;
                let _ = c.tx.send(Out::Frame(closed));
                let _ = c.tx.send(Out::Close);
            }
        }
    }
    let file_types: Vec<Value> = deployment.allowed_file_types.iter().map(|t| json!({"type": t})).collect();
    let mut body = json!({
        "connected": true,
        "newSession": new_session,
        "readOnly": read_only,
        "maxCustomDataBytes": deployment.max_custom_attributes_bytes,
        "blockedExtensions": deployment.blocked_extensions,
        "clearedExistingSession": false,
    });
    if !file_types.is_empty() {
        body["allowedMedia"] =
            json!({"inbound": {"fileTypes": file_types, "maxFileSizeKB": deployment.max_file_size_kb}});
    }
    inner.send(conn, frame("response", "SessionResponse", 200, body, tid));
}

fn on_attachment(inner: &mut Inner, conn: ConnId, token: &str, request: &Value, tid: Option<&str>) {
    let as_json = request.get("errorsAsJson").and_then(Value::as_bool).unwrap_or(false);
    let attachment_id = request.get("attachmentId").and_then(Value::as_str).unwrap_or_default().to_owned();
    let reply_error = |inner: &Inner, code: u32, message: &str| {
        let text = if as_json {
            frame(
                "response",
                "GenerateUrlError",
                200,
                json!({"attachmentId": attachment_id, "errorCode": code, "errorMessage": message}),
                tid,
            )
        } else {
            string_error(code, message, tid)
        };
        inner.send(conn, text);
    };
    let session = inner.sessions.get(token).expect("configured connections have sessions");
    if session.read_only {
        inner.send(conn, string_error(4000, "The conversation is read-only", tid));
        return;
    }
    let deployment =
        inner.deployments.get(&session.deployment_id).cloned().expect("sessions have deployments");
    let file_name = request.get("fileName").and_then(Value::as_str).unwrap_or_default().to_owned();
    let file_type = request.get("fileType").and_then(Value::as_str).unwrap_or_default().to_owned();
    let file_size = request.get("fileSize").and_then(Value::as_u64);
    let (Some(file_size), false, false, false) =
        (file_size, attachment_id.is_empty(), file_name.is_empty(), file_type.is_empty())
    else {
        return reply_error(inner, 4020, "Missing parameter");
    };
    if deployment.allowed_file_types.is_empty() {
        return reply_error(inner, 4000, "Attachments are not enabled for this deployment");
    }
    if file_name.chars().count() > 255 {
        return reply_error(inner, 4005, "File name too long");
    }
    if file_name.contains(['/', '\\']) {
        return reply_error(inner, 4004, "File name invalid");
    }
    if extension(&file_name)
        .is_some_and(|e| deployment.blocked_extensions.iter().any(|b| b.eq_ignore_ascii_case(&e)))
        || !type_allowed(&deployment.allowed_file_types, &file_type)
    {
        return reply_error(inner, 4001, "File type invalid");
    }
    if file_size < 1 || file_size > deployment.max_file_size_kb.saturating_mul(1024) {
        return reply_error(inner, 4002, "File size invalid");
    }
    let session = inner.sessions.get_mut(token).expect("checked");
    if let Some(existing) = session.attachment_mut(&attachment_id)
        && !matches!(existing.state, AttachmentState::Pending | AttachmentState::Failed { .. })
    {
        return reply_error(inner, 4000, "Attachment id already used");
    }
    let headers =
        BTreeMap::from([("x-amz-tagging".to_owned(), format!("sandbox-attachment={attachment_id}"))]);
    let attachment = Attachment {
        id: attachment_id.clone(),
        file_name,
        file_type,
        declared_size: file_size,
        declared_md5: request.get("fileMd5").and_then(Value::as_str).map(str::to_owned),
        headers: headers.clone(),
        state: AttachmentState::Pending,
        sent: false,
    };
    session.attachments.retain(|a| a.id != attachment_id);
    session.attachments.push(attachment);
    let key = uuid::Uuid::new_v4().simple().to_string();
    inner.uploads.insert(key.clone(), (token.to_owned(), attachment_id.clone()));
    let url = format!("{}/__uploads/{key}?X-Amz-Expires=600&X-Amz-Signature={}", inner.base_url, &key[..16]);
    let body = json!({"attachmentId": attachment_id, "url": url, "headers": headers});
    inner.send(conn, frame("response", "PresignedUrlResponse", 200, body, tid));
}

fn on_message(inner: &mut Inner, conn: ConnId, token: &str, request: &Value, tid: Option<&str>) {
    let session = inner.sessions.get(token).expect("configured connections have sessions");
    if session.read_only {
        inner.send(conn, string_error(4000, "The conversation is read-only", tid));
        return;
    }
    let deployment =
        inner.deployments.get(&session.deployment_id).cloned().expect("sessions have deployments");
    let Some(message) = request.get("message").filter(|m| m.is_object()) else {
        inner.send(conn, string_error(4020, "Missing parameter: message", tid));
        return;
    };
    let text = message.get("text").and_then(Value::as_str).map(str::to_owned);
    if text.as_ref().is_some_and(|t| t.chars().count() > deployment.max_message_chars) {
        inner.send(conn, string_error(4011, "Message too long", tid));
        return;
    }
    let attributes: BTreeMap<String, String> = message
        .pointer("/channel/metadata/customAttributes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect()
        })
        .unwrap_or_default();
    if serde_json::to_string(&attributes).map_or(0, |s| s.len()) > deployment.max_custom_attributes_bytes {
        inner.send(conn, string_error(4013, "Custom attributes too large", tid));
        return;
    }
    let ids: Vec<String> = message
        .get("content")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c.pointer("/attachment/id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let session = inner.sessions.get(token).expect("checked");
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| {
            !session
                .attachments
                .iter()
                .any(|a| &a.id == *id && matches!(a.state, AttachmentState::Uploaded { .. }))
        })
        .collect();
    if !missing.is_empty() {
        let violation = format!("onMessage named attachments that did not upload: {missing:?}");
        inner.violations.push(violation);
        inner.send(conn, string_error(4010, "Attachment has not been successfully uploaded", tid));
        return;
    }
    let mut content = Vec::new();
    for id in &ids {
        let url = inner.download_url(token, id);
        let session = inner.sessions.get_mut(token).expect("checked");
        let a = session.attachment_mut(id).expect("checked");
        a.sent = true;
        content.push(json!({"contentType": "Attachment", "attachment": {
            "id": id, "mediaType": "File", "url": url, "mime": a.file_type, "filename": a.file_name}}));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let session = inner.sessions.get_mut(token).expect("checked");
    session.messages.push(MessageSnapshot {
        id: id.clone(),
        text: text.clone(),
        attachment_ids: ids,
        custom_attributes: attributes.clone(),
    });
    let mut body = json!({"id": id, "type": "Text", "direction": "Inbound", "originatingEntity": "Human"});
    if let Some(text) = text {
        body["text"] = json!(text);
    }
    if !content.is_empty() {
        body["content"] = json!(content);
    }
    if !attributes.is_empty() {
        body["channel"] = json!({"metadata": {"customAttributes": attributes}});
    }
    inner.send(conn, frame("message", "StructuredMessage", 200, body.clone(), tid));
    inner.fan_out(token, &frame("message", "StructuredMessage", 200, body, None), Some(conn));
}

fn get_attachment(inner: &mut Inner, conn: ConnId, token: &str, request: &Value, tid: Option<&str>) {
    let id = request.get("attachmentId").and_then(Value::as_str).unwrap_or_default().to_owned();
    let state = inner
        .sessions
        .get(token)
        .and_then(|s| s.attachments.iter().find(|a| a.id == id))
        .map(|a| a.state.clone());
    match state {
        Some(AttachmentState::Uploaded { .. }) => {
            let url = inner.download_url(token, &id);
            let body = json!({"attachmentId": id, "url": url, "headers": {}});
            inner.send(conn, frame("response", "PresignedUrlResponse", 200, body, tid));
        }
        Some(AttachmentState::Pending | AttachmentState::Failed { .. }) => {
            inner.send(conn, string_error(4010, "Attachment has not been successfully uploaded", tid));
        }
        Some(AttachmentState::Deleted) | None => {
            inner.send(conn, string_error(4009, "Attachment not found", tid));
        }
    }
}

fn delete_attachment(inner: &mut Inner, conn: ConnId, token: &str, request: &Value, tid: Option<&str>) {
    let id = request.get("attachmentId").and_then(Value::as_str).unwrap_or_default().to_owned();
    let session = inner.sessions.get_mut(token).expect("configured connections have sessions");
    match session.attachment_mut(&id) {
        Some(a) if a.state != AttachmentState::Deleted && !a.sent => {
            a.state = AttachmentState::Deleted;
            inner.uploads.retain(|_, (t, a)| !(t == token && *a == id));
            inner.send(
                conn,
                frame("response", "AttachmentDeletedResponse", 200, json!({"attachmentId": id}), tid),
            );
        }
        _ => inner.send(conn, string_error(4009, "Attachment not found", tid)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert!(type_allowed(&["image/*".into()], "image/png"));
        assert!(!type_allowed(&["image/*".into()], "video/mp4"));
        assert!(type_allowed(&["*/*".into()], "application/pdf"));
        assert_eq!(extension("x.TAR.EXE").as_deref(), Some(".exe"));
        assert_eq!(extension(".bashrc"), None);
        assert!(md5_matches("kAFQmDzST7DWlj99KOF/cg==", "900150983cd24fb0d6963f7d28e17f72"));
        assert!(md5_matches("900150983cd24fb0d6963f7d28e17f72", "900150983cd24fb0d6963f7d28e17f72"));
        assert!(!md5_matches("AAAA", "900150983cd24fb0d6963f7d28e17f72"));
        let ts = timestamp();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z'));
    }
}
