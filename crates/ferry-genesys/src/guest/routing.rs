//! Which waiter an incoming frame belongs to, without relying on `tracingId` (the official
//! clients never do, and the official fixtures of most responses carry none).
//!
//! A connection has at most one request in flight ([`Waiter`]). A frame goes to it when it echoes
//! the request's `tracingId`; otherwise by class: a `PresignedUrlResponse`, `GenerateUrlError` or
//! `AttachmentDeletedResponse` naming the request's attachment id; a `StructuredMessage` carrying
//! the request's marker (ferry's `ferryFileId` custom attribute, or the text of a message without
//! one); any other `type:"response"` frame, or an error frame, without a `tracingId`. Pushed
//! messages (the customer's own from other tabs, the agent's) are never taken by arrival order.
//! Upload events go to the watcher of their attachment id. `SessionExpiredEvent`, `LogoutEvent`,
//! `SessionClearedEvent` and a Presence `Disconnect` with `readOnly` end the connection at once.

use super::SessionEnd;
use crate::protocol::{Frame, FrameBody, FrameType, Request, StructuredMessage};
use serde_json::Value;
use tokio::sync::oneshot;

/// The `tracingId` of the keep-alive `echo`, as the official clients send it.
pub(crate) const KEEPALIVE_TRACING_ID: &str = "SGVhbHRoQ2hlY2tNZXNzYWdlSWQ=";

/// The request in flight on a connection.
pub(crate) struct Waiter {
    pub(crate) tracing_id: String,
    pub(crate) attachment_id: Option<String>,
    pub(crate) wants: Wants,
    pub(crate) tx: oneshot::Sender<Frame>,
}

/// What kind of answer a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wants {
    /// A message: `onMessage` (its echo carries `marker`) or `echo` (`marker` is `None`).
    Message { marker: Option<String> },
    /// A response frame of some other class.
    Reply,
}

impl Wants {
    /// What `request` is answered with.
    pub(crate) fn of(request: &Request) -> Self {
        match request {
            Request::OnMessage { message, .. } => {
                let attributes = message.channel.as_ref().and_then(|c| c.metadata.as_ref());
                let marker = attributes
                    .and_then(|m| m.custom_attributes.get(FILE_ID_ATTRIBUTE).cloned())
                    .or_else(|| message.text.clone());
                Self::Message { marker }
            }
            Request::Echo { .. } => Self::Message { marker: None },
            _ => Self::Reply,
        }
    }
}

/// The custom attribute that names ferry's file in every message ferry sends.
pub(crate) const FILE_ID_ATTRIBUTE: &str = "ferryFileId";

/// Where a frame goes.
pub(crate) enum Route {
    /// To the request in flight.
    Waiter,
    /// To the watcher of this attachment's upload.
    Upload(String),
    /// The session or conversation ended.
    End(End),
    /// The server is closing this connection for this reason (`ConnectionClosedEvent`).
    Closing(Option<String>),
    /// Nobody's: a keep-alive answer, someone else's message, a late answer.
    Nobody,
}

/// How a session or conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The conversation (Presence `Disconnect` with `readOnly`).
    Conversation,
    /// The session.
    Session(SessionEnd),
}

/// Decides where `frame` goes, given the request in flight.
pub(crate) fn route(frame: &Frame, current: Option<&Waiter>) -> Route {
    if let Some(tid) = frame.tracing_id.as_deref() {
        if current.is_some_and(|w| w.tracing_id == tid) {
            return Route::Waiter;
        }
        if tid == KEEPALIVE_TRACING_ID {
            return Route::Nobody;
        }
    }
    match &frame.body {
        FrameBody::Unknown { class, .. } if class == "SessionExpiredEvent" => {
            return Route::End(End::Session(SessionEnd::Expired));
        }
        FrameBody::Unknown { class, .. } if class == "LogoutEvent" => {
            return Route::End(End::Session(SessionEnd::LoggedOut));
        }
        FrameBody::Unknown { class, .. } if class == "SessionClearedEvent" => {
            return Route::End(End::Session(SessionEnd::Cleared));
        }
        FrameBody::StructuredMessage(m) if is_disconnect(m) => return Route::End(End::Conversation),
        FrameBody::ConnectionClosedEvent(event) => return Route::Closing(event.reason.clone()),
        FrameBody::UploadSuccessEvent(_) | FrameBody::UploadFailureEvent(_) => {
            return Route::Upload(frame.attachment_id().unwrap_or_default().to_owned());
        }
        _ => {}
    }
    let Some(waiter) = current else { return Route::Nobody };
    let untraced = frame.tracing_id.is_none();
    let ours = match &frame.body {
        FrameBody::PresignedUrlResponse(_)
        | FrameBody::GenerateUrlError(_)
        | FrameBody::AttachmentDeletedResponse(_) => {
            waiter.attachment_id.is_some() && frame.attachment_id() == waiter.attachment_id.as_deref()
        }
        FrameBody::StructuredMessage(m) => match &waiter.wants {
            Wants::Message { marker: Some(marker) } => carries(m, marker),
            Wants::Message { marker: None } => untraced && frame.kind == FrameType::Response,
            Wants::Reply => false,
        },
        _ => untraced && (frame.kind == FrameType::Response || frame.code >= 400),
    };
    if ours { Route::Waiter } else { Route::Nobody }
}

/// Whether a message is the echo of ferry's message marked `marker`: its `ferryFileId` custom
/// attribute, or (a message without one) its text.
fn carries(message: &StructuredMessage, marker: &str) -> bool {
    let attributes = message.channel.as_ref().and_then(|c| c.metadata.as_ref());
    match attributes.and_then(|m| m.custom_attributes.get(FILE_ID_ATTRIBUTE)) {
        Some(id) => id == marker,
        None => message.text.as_deref() == Some(marker),
    }
}

/// A `StructuredMessage` of type `Event` with a Presence `Disconnect` and `metadata.readOnly`
/// (`true` or `"true"`): the conversation ended.
fn is_disconnect(message: &StructuredMessage) -> bool {
    let read_only = match message.extra.get("metadata").and_then(|m| m.get("readOnly")) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let disconnect = message.extra.get("events").and_then(Value::as_array).is_some_and(|events| {
        events.iter().any(|e| {
            e.get("eventType").and_then(Value::as_str) == Some("Presence")
                && e.pointer("/presence/type").and_then(Value::as_str) == Some("Disconnect")
        })
    });
    message.kind.as_deref() == Some("Event") && read_only && disconnect
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(value: Value) -> Frame {
        serde_json::from_value(value).unwrap()
    }

    fn waiter(wants: Wants, attachment_id: Option<&str>) -> (Waiter, oneshot::Receiver<Frame>) {
        let (tx, rx) = oneshot::channel();
        (Waiter { tracing_id: "t-1".into(), attachment_id: attachment_id.map(str::to_owned), wants, tx }, rx)
    }

    #[test]
    fn untraced_responses_go_to_the_request_in_flight() {
        let (reply, _rx) = waiter(Wants::Reply, None);
        let session = frame(json!({"type": "response", "class": "SessionResponse", "code": 200,
            "body": {"connected": true, "newSession": false}}));
        assert!(matches!(route(&session, Some(&reply)), Route::Waiter));
        assert!(matches!(route(&session, None), Route::Nobody));
        let limited = frame(json!({"type": "response", "class": "TooManyRequestsErrorMessage", "code": 429,
            "body": {"retryAfter": 3, "errorCode": 4029, "errorMessage": "slow down"}}));
        assert!(matches!(route(&limited, Some(&reply)), Route::Waiter));
        let error = frame(json!({"type": "message", "class": "string", "code": 4007, "body": "no"}));
        assert!(matches!(route(&error, Some(&reply)), Route::Waiter));
        let foreign = frame(json!({"type": "response", "class": "JwtResponse", "code": 200,
            "body": {"jwt": "j", "exp": 1}, "tracingId": "someone-else"}));
        assert!(matches!(route(&foreign, Some(&reply)), Route::Nobody));
        let keepalive = frame(json!({"type": "response", "class": "StructuredMessage", "code": 200,
            "body": {"text": "ping"}, "tracingId": KEEPALIVE_TRACING_ID}));
        assert!(matches!(route(&keepalive, Some(&reply)), Route::Nobody));
    }

    #[test]
    fn attachment_frames_go_by_attachment_id() {
        let (upload, _rx) = waiter(Wants::Reply, Some("a-1"));
        let refused = |id: &str| {
            frame(json!({"type": "message", "class": "GenerateUrlError", "code": 200,
                "body": {"attachmentId": id, "errorCode": 4001, "errorMessage": "type"}}))
        };
        assert!(matches!(route(&refused("a-1"), Some(&upload)), Route::Waiter));
        assert!(matches!(route(&refused("a-2"), Some(&upload)), Route::Nobody));
        let event = frame(json!({"type": "message", "class": "UploadSuccessEvent", "code": 200,
            "body": {"attachmentId": "a-9", "downloadUrl": "https://d"}}));
        assert!(matches!(route(&event, Some(&upload)), Route::Upload(id) if id == "a-9"));
    }

    #[test]
    fn messages_go_by_marker_never_by_arrival() {
        let (send, _rx) = waiter(Wants::Message { marker: Some("f-1".into()) }, None);
        let message = |attr: &str, kind: &str| {
            frame(json!({"type": kind, "class": "StructuredMessage", "code": 200,
                "body": {"id": "m", "type": "Text", "text": "hi", "direction": "Inbound",
                         "channel": {"metadata": {"customAttributes": {"ferryFileId": attr}}}}}))
        };
        assert!(matches!(route(&message("f-1", "message"), Some(&send)), Route::Waiter));
        assert!(matches!(route(&message("f-2", "message"), Some(&send)), Route::Nobody));
        assert!(matches!(route(&message("f-2", "response"), Some(&send)), Route::Nobody));
        let other_tab = frame(json!({"type": "message", "class": "StructuredMessage", "code": 200,
            "body": {"id": "m", "type": "Text", "text": "from another tab", "direction": "Inbound"}}));
        assert!(matches!(route(&other_tab, Some(&send)), Route::Nobody));
        let (echo, _rx) = waiter(Wants::Message { marker: None }, None);
        let pong = frame(json!({"type": "response", "class": "StructuredMessage", "code": 200,
            "body": {"type": "Text", "text": "ping"}}));
        assert!(matches!(route(&pong, Some(&echo)), Route::Waiter));
        assert!(matches!(route(&other_tab, Some(&echo)), Route::Nobody));
    }

    #[test]
    fn session_and_conversation_ends() {
        for (class, end) in [
            ("SessionExpiredEvent", SessionEnd::Expired),
            ("LogoutEvent", SessionEnd::LoggedOut),
            ("SessionClearedEvent", SessionEnd::Cleared),
        ] {
            let f = frame(json!({"type": "message", "class": class, "code": 200, "body": {}}));
            assert!(matches!(route(&f, None), Route::End(End::Session(e)) if e == end), "{class}");
        }
        let disconnect = |read_only: Value| {
            frame(json!({"type": "message", "class": "StructuredMessage", "code": 200,
                "body": {"direction": "Outbound", "id": "e", "type": "Event",
                         "events": [{"eventType": "Presence", "presence": {"type": "Disconnect"}}],
                         "metadata": {"readOnly": read_only}}}))
        };
        assert!(matches!(route(&disconnect(json!("true")), None), Route::End(End::Conversation)));
        assert!(matches!(route(&disconnect(json!(true)), None), Route::End(End::Conversation)));
        assert!(matches!(route(&disconnect(json!(false)), None), Route::Nobody));
    }
}
