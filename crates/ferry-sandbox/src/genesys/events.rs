//! What the emulator says beyond answers: the pushed events that end a session or conversation,
//! the `tracingId` modes (echo it, or leave it out where the official fixtures have none, or
//! never), and a deployment's public `config.json`.

use super::state::EmulatorState;
use super::wire::frame;
use super::{Deployment, SessionEnd, TracingIds};
use serde_json::{Value, json};

/// The frame Genesys pushes for `end`, shaped like the official fixtures.
pub(super) fn end_frame(end: SessionEnd) -> String {
    match end {
        SessionEnd::Expired => frame("message", "SessionExpiredEvent", 4006, json!({}), None),
        SessionEnd::LoggedOut => frame("message", "LogoutEvent", 200, json!({}), None),
        SessionEnd::Cleared => frame("message", "SessionClearedEvent", 200, json!({}), None),
        SessionEnd::ConversationEnded => frame(
            "message",
            "StructuredMessage",
            200,
            json!({"id": uuid::Uuid::new_v4().to_string(), "direction": "Outbound", "type": "Event",
                   "channel": {"time": super::wire::timestamp(), "type": "Private"},
                   "events": [{"eventType": "Presence", "presence": {"type": "Disconnect"}}],
                   "metadata": {"readOnly": "true"}}),
            None,
        ),
    }
}

impl EmulatorState {
    /// Ends the session or conversation of `token` and pushes the event that says so to every
    /// connection of the token. The conversation is read-only afterwards.
    pub fn end_session(&self, token: &str, end: SessionEnd) {
        let mut inner = self.lock();
        if let Some(session) = inner.sessions.get_mut(token) {
            session.read_only = true;
        }
        inner.fan_out(token, &end_frame(end), None);
    }

    /// The guest REST `GET /api/v2/webmessaging/messages` for the bearer `jwt`: the session's
    /// messages, newest first, one page. `None` for an unknown JWT.
    pub(crate) fn guest_messages(&self, jwt: &str, page_size: usize, page_number: usize) -> Option<Value> {
        let inner = self.lock();
        let token = inner.jwts.get(jwt)?;
        let session = inner.sessions.get(token)?;
        let total = session.messages.len();
        let page_size = page_size.clamp(1, 100);
        let entities: Vec<Value> = session
            .messages
            .iter()
            .rev()
            .skip(page_size.saturating_mul(page_number.max(1) - 1))
            .take(page_size)
            .map(|m| {
                let content: Vec<Value> = m
                    .attachment_ids
                    .iter()
                    .map(|id| json!({"contentType": "Attachment", "attachment": {"id": id, "mediaType": "File"}}))
                    .collect();
                json!({"id": m.id, "type": "Text", "text": m.text, "direction": "Inbound",
                       "originatingEntity": "Human", "content": content,
                       "channel": {"platform": "Genesys", "type": "Private",
                                   "metadata": {"customAttributes": m.custom_attributes}}})
            })
            .collect();
        Some(json!({"entities": entities, "pageSize": page_size, "pageNumber": page_number.max(1),
                    "total": total, "pageCount": total.div_ceil(page_size)}))
    }

    /// The public `config.json` of a deployment, if it exists.
    pub(crate) fn deployment_config(&self, id: &str) -> Option<Value> {
        self.lock().deployments.get(id).map(deployment_config)
    }
}

/// Applies the `tracingId` mode to an outgoing frame.
pub(super) fn apply_tracing_mode(mode: TracingIds, text: String) -> String {
    if mode == TracingIds::Echo || !text.contains("\"tracingId\"") {
        return text;
    }
    let Ok(mut value) = serde_json::from_str::<Value>(&text) else { return text };
    let class = value.get("class").and_then(Value::as_str).unwrap_or_default();
    let strip = match mode {
        TracingIds::Never => true,
        // The official fixtures of these classes carry no tracingId.
        _ => matches!(
            class,
            "SessionResponse"
                | "PresignedUrlResponse"
                | "GenerateUrlError"
                | "string"
                | "TooManyRequestsErrorMessage"
        ),
    };
    if strip && let Some(object) = value.as_object_mut() {
        object.remove("tracingId");
        return value.to_string();
    }
    text
}

/// The deployment's public `config.json` (the parts about guest attachments, shaped like the
/// official one).
pub(super) fn deployment_config(deployment: &Deployment) -> Value {
    let enabled = !deployment.allowed_file_types.is_empty();
    let mut mode = json!({"fileTypes": deployment.allowed_file_types});
    if deployment.max_file_size_kb > 0 {
        mode["maxFileSizeKB"] = json!(deployment.max_file_size_kb);
    }
    json!({
        "id": deployment.id,
        "version": "1",
        "languages": ["en-us"],
        "defaultLanguage": "en-us",
        "messenger": {
            "enabled": true,
            "apps": {"conversations": {"enabled": true}},
            "fileUpload": {
                "enableAttachments": enabled,
                "modes": if enabled { vec![mode] } else { Vec::new() },
            },
        },
        "status": "Active",
        "auth": {"enabled": false},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_modes() {
        let text = frame("response", "SessionResponse", 200, json!({}), Some("t"));
        assert_eq!(apply_tracing_mode(TracingIds::Echo, text.clone()), text);
        assert!(!apply_tracing_mode(TracingIds::LikeFixtures, text.clone()).contains("tracingId"));
        let jwt = frame("response", "JwtResponse", 200, json!({"jwt": "j", "exp": 1}), Some("t"));
        assert!(apply_tracing_mode(TracingIds::LikeFixtures, jwt.clone()).contains("tracingId"));
        assert!(!apply_tracing_mode(TracingIds::Never, jwt).contains("tracingId"));
    }

    #[test]
    fn config_json_follows_the_deployment() {
        let mut d = Deployment::new("d");
        let c = deployment_config(&d);
        assert_eq!(c["messenger"]["fileUpload"]["enableAttachments"], true);
        assert_eq!(c["messenger"]["fileUpload"]["modes"][0]["maxFileSizeKB"], 10240);
        d.allowed_file_types.clear();
        let c = deployment_config(&d);
        assert_eq!(c["messenger"]["fileUpload"]["enableAttachments"], false);
        assert_eq!(c["messenger"]["fileUpload"]["modes"], json!([]));
    }
}
