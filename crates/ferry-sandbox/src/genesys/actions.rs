//! The guest requests on the WebSocket: the dispatch (throttling, the session check) and one
//! function per action (`configureSession`, `onAttachment`, `onMessage`, `getAttachment`,
//! `deleteAttachment`, and the small ones inline), each answering on the connection and recording
//! violations.

use super::MessageSnapshot;
use super::state::{
    Attachment, AttachmentState, ConnId, EmulatorState, Inner, MAX_CONNECTIONS_PER_TOKEN, Out, Session,
};
use super::wire::{frame, string_error, token_hint};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

impl EmulatorState {
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
                inner.jwts.insert(jwt.clone(), token.clone());
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
}

impl Inner {
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
    if !file_types.is_empty() && !deployment.omit_allowed_media {
        body["allowedMedia"] = json!({"inbound": {"fileTypes": file_types}});
        if deployment.max_file_size_kb > 0 {
            body["allowedMedia"]["inbound"]["maxFileSizeKB"] = json!(deployment.max_file_size_kb);
        }
    }
    inner.send(conn, frame("response", "SessionResponse", 200, body, tid));
}

fn on_attachment(inner: &mut Inner, conn: ConnId, token: &str, request: &Value, tid: Option<&str>) {
    let as_json = request.get("errorsAsJson").and_then(Value::as_bool).unwrap_or(false);
    let attachment_id = request.get("attachmentId").and_then(Value::as_str).unwrap_or_default().to_owned();
    let reply_error = |inner: &Inner, code: u32, message: &str| {
        let text = if as_json {
            frame(
                "message",
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
    if file_size < 1 || file_size > deployment.max_file_size_kb.saturating_mul(1000) {
        return reply_error(inner, 4002, "File size invalid");
    }
    if inner.faults.refuse_attachments > 0 {
        inner.faults.refuse_attachments -= 1;
        let code = inner.faults.refuse_attachment_code;
        return reply_error(inner, code, "The attachment was refused");
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
    if inner.faults.drop_after_message > 0 {
        inner.faults.drop_after_message -= 1;
        if let Some(c) = inner.conns.get(&conn) {
            let _ = c.tx.send(Out::Drop);
        }
    } else {
        inner.send(conn, frame("message", "StructuredMessage", 200, body.clone(), tid));
    }
    inner.fan_out(token, &frame("message", "StructuredMessage", 200, body, None), Some(conn));
}

fn get_attachment(inner: &mut Inner, conn: ConnId, token: &str, request: &Value, tid: Option<&str>) {
    let id = request.get("attachmentId").and_then(Value::as_str).unwrap_or_default().to_owned();
    let state = inner
        .sessions
        .get(token)
        .and_then(|s| s.attachments.iter().find(|a| a.id == id))
        .map(|a| a.state.clone());
    let still_processing =
        matches!(state, Some(AttachmentState::Uploaded { .. })) && inner.faults.pending_polls > 0;
    if still_processing {
        inner.faults.pending_polls -= 1;
    }
    match state {
        Some(AttachmentState::Uploaded { .. }) if !still_processing => {
            let url = inner.download_url(token, &id);
            let body = json!({"attachmentId": id, "url": url, "headers": {}});
            inner.send(conn, frame("response", "PresignedUrlResponse", 200, body, tid));
        }
        Some(
            AttachmentState::Uploaded { .. } | AttachmentState::Pending | AttachmentState::Failed { .. },
        ) => {
            let code = inner.faults.not_uploaded_code;
            inner.send(conn, string_error(code, "Attachment has not been successfully uploaded", tid));
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
    fn file_checks() {
        assert!(type_allowed(&["image/*".into()], "image/png"));
        assert!(!type_allowed(&["image/*".into()], "video/mp4"));
        assert!(type_allowed(&["*/*".into()], "application/pdf"));
        assert_eq!(extension("x.TAR.EXE").as_deref(), Some(".exe"));
        assert_eq!(extension(".bashrc"), None);
    }
}
