//! A server frame ([`Frame`]): its envelope, and its `class` turned into a typed body
//! ([`FrameBody`]) and back, unknown classes kept as raw JSON.

use super::Extra;
use super::bodies::{
    AttachmentDeletedResponse, ConnectionClosedEvent, GenerateUrlError, JwtResponse, PresignedUrlResponse,
    SessionResponse, StructuredMessage, TooManyRequestsErrorMessage, UploadFailureEvent, UploadSuccessEvent,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A frame's `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameType {
    /// A response to a request.
    Response,
    /// A pushed message or event.
    Message,
    /// Anything else, kept as sent.
    #[serde(untagged)]
    Other(String),
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawFrame", into = "RawFrame")]
pub struct Frame {
    /// `type`.
    pub kind: FrameType,
    /// `code`: 200 on success, 429 when rate limited, a 4000–4029 code on errors.
    pub code: u32,
    /// The request's `tracingId`, echoed back.
    pub tracing_id: Option<String>,
    /// `class` and `body`.
    pub body: FrameBody,
    /// Other top-level fields.
    pub extra: Extra,
}

impl Frame {
    /// The attachment id the body names, if any.
    pub fn attachment_id(&self) -> Option<&str> {
        match &self.body {
            FrameBody::PresignedUrlResponse(b) => Some(&b.attachment_id),
            FrameBody::GenerateUrlError(b) => Some(&b.attachment_id),
            FrameBody::UploadSuccessEvent(b) => Some(&b.attachment_id),
            FrameBody::UploadFailureEvent(b) => Some(&b.attachment_id),
            FrameBody::AttachmentDeletedResponse(b) => Some(&b.attachment_id),
            _ => None,
        }
    }

    /// The frame's `class`.
    pub fn class(&self) -> &str {
        self.body.class()
    }
}

/// A frame's `class` with its typed body.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FrameBody {
    /// `SessionResponse`.
    SessionResponse(SessionResponse),
    /// `PresignedUrlResponse`: an upload URL (after `onAttachment`) or a download URL (after
    /// `getAttachment`).
    PresignedUrlResponse(PresignedUrlResponse),
    /// `GenerateUrlError`.
    GenerateUrlError(GenerateUrlError),
    /// `UploadSuccessEvent`.
    UploadSuccessEvent(UploadSuccessEvent),
    /// `UploadFailureEvent`.
    UploadFailureEvent(UploadFailureEvent),
    /// `AttachmentDeletedResponse`.
    AttachmentDeletedResponse(AttachmentDeletedResponse),
    /// `StructuredMessage`: a message in the conversation (our own echoed, or someone else's).
    StructuredMessage(StructuredMessage),
    /// `TooManyRequestsErrorMessage`.
    TooManyRequests(TooManyRequestsErrorMessage),
    /// `JwtResponse`.
    JwtResponse(JwtResponse),
    /// `ConnectionClosedEvent`: the server closes this connection (e.g. a 4th connection opened).
    ConnectionClosedEvent(ConnectionClosedEvent),
    /// Class `string`: an error (or notice) as text; the frame's `code` says which.
    Text(String),
    /// A class this crate does not know.
    Unknown {
        /// The class.
        class: String,
        /// The body as sent.
        body: Value,
    },
}

impl FrameBody {
    /// The class name.
    pub fn class(&self) -> &str {
        match self {
            Self::SessionResponse(_) => "SessionResponse",
            Self::PresignedUrlResponse(_) => "PresignedUrlResponse",
            Self::GenerateUrlError(_) => "GenerateUrlError",
            Self::UploadSuccessEvent(_) => "UploadSuccessEvent",
            Self::UploadFailureEvent(_) => "UploadFailureEvent",
            Self::AttachmentDeletedResponse(_) => "AttachmentDeletedResponse",
            Self::StructuredMessage(_) => "StructuredMessage",
            Self::TooManyRequests(_) => "TooManyRequestsErrorMessage",
            Self::JwtResponse(_) => "JwtResponse",
            Self::ConnectionClosedEvent(_) => "ConnectionClosedEvent",
            Self::Text(_) => "string",
            Self::Unknown { class, .. } => class,
        }
    }
}

/// The frame as it is on the wire, before the body is typed.
#[derive(Serialize, Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    kind: FrameType,
    class: String,
    code: u32,
    #[serde(default)]
    body: Value,
    #[serde(rename = "tracingId", default, skip_serializing_if = "Option::is_none")]
    tracing_id: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

impl TryFrom<RawFrame> for Frame {
    type Error = serde_json::Error;

    fn try_from(raw: RawFrame) -> Result<Self, Self::Error> {
        use serde_json::from_value as v;
        let body = match raw.class.as_str() {
            "SessionResponse" => FrameBody::SessionResponse(v(raw.body)?),
            "PresignedUrlResponse" => FrameBody::PresignedUrlResponse(v(raw.body)?),
            "GenerateUrlError" => FrameBody::GenerateUrlError(v(raw.body)?),
            "UploadSuccessEvent" => FrameBody::UploadSuccessEvent(v(raw.body)?),
            "UploadFailureEvent" => FrameBody::UploadFailureEvent(v(raw.body)?),
            "AttachmentDeletedResponse" => FrameBody::AttachmentDeletedResponse(v(raw.body)?),
            "StructuredMessage" => FrameBody::StructuredMessage(v(raw.body)?),
            "TooManyRequestsErrorMessage" => FrameBody::TooManyRequests(v(raw.body)?),
            "JwtResponse" => FrameBody::JwtResponse(v(raw.body)?),
            "ConnectionClosedEvent" => FrameBody::ConnectionClosedEvent(v(raw.body)?),
            "string" => match raw.body {
                Value::String(text) => FrameBody::Text(text),
                other => FrameBody::Text(other.to_string()),
            },
            _ => FrameBody::Unknown { class: raw.class, body: raw.body },
        };
        Ok(Frame { kind: raw.kind, code: raw.code, tracing_id: raw.tracing_id, body, extra: raw.extra })
    }
}

impl From<Frame> for RawFrame {
    fn from(frame: Frame) -> Self {
        fn j<T: Serialize>(body: T) -> Value {
            serde_json::to_value(body).unwrap_or(Value::Null)
        }
        let class = frame.body.class().to_owned();
        let body = match frame.body {
            FrameBody::SessionResponse(b) => j(b),
            FrameBody::PresignedUrlResponse(b) => j(b),
            FrameBody::GenerateUrlError(b) => j(b),
            FrameBody::UploadSuccessEvent(b) => j(b),
            FrameBody::UploadFailureEvent(b) => j(b),
            FrameBody::AttachmentDeletedResponse(b) => j(b),
            FrameBody::StructuredMessage(b) => j(b),
            FrameBody::TooManyRequests(b) => j(b),
            FrameBody::JwtResponse(b) => j(b),
            FrameBody::ConnectionClosedEvent(b) => j(b),
            FrameBody::Text(text) => Value::String(text),
            FrameBody::Unknown { body, .. } => body,
        };
        RawFrame {
            kind: frame.kind,
            class,
            code: frame.code,
            body,
            tracing_id: frame.tracing_id,
            extra: frame.extra,
        }
    }
}
