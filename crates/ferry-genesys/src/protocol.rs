//! The Web Messaging guest protocol as typed JSON: the request actions a guest sends and the frames
//! the server sends back.
//!
//! A request is one JSON text frame `{"action": …, "token": …, "tracingId"?: …, …}` ([`Request`]).
//! A server frame is `{"type": "response"|"message", "class": …, "code": …, "body": …}` ([`Frame`]);
//! its `class` picks the body type ([`FrameBody`]). Classes this crate does not know are kept as
//! raw JSON ([`FrameBody::Unknown`]) rather than failing, and every typed body keeps the fields it
//! does not name in an `extra` map, so a frame re-serialises to what arrived.
//!
//! Requests that would harm a customer's own session (`closeSession` with
//! `closeAllConnections: true`, `configureSession` with `startNew: true`, `clearConversation`)
//! cannot be expressed: those flags are the type [`False`], which only serialises as `false`.

use crate::secret::{Secret, SessionToken};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Fields of a JSON object that a typed body does not name, kept for round trips.
pub type Extra = Map<String, Value>;

/// A boolean flag that can only be `false` (`startNew`, `closeAllConnections`): ferry acts on a
/// customer's session and must never reset it or close the customer's other connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct False;

impl Serialize for False {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(false)
    }
}

impl<'de> Deserialize<'de> for False {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match bool::deserialize(deserializer)? {
            false => Ok(False),
            true => Err(serde::de::Error::custom("this flag must be false")),
        }
    }
}

/// A request action sent by the guest, one JSON text frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum Request {
    /// Attach this connection to the session of `token` (created if the token is unknown).
    ConfigureSession {
        /// Session token.
        token: SessionToken,
        /// Web Messenger deployment id.
        deployment_id: String,
        /// Always `false`: never start a new conversation on a customer's token.
        start_new: False,
        /// Echoed back on the response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Ask for a presigned upload URL for a new attachment.
    OnAttachment {
        /// Session token.
        token: SessionToken,
        /// Client-generated attachment id (a UUID).
        attachment_id: String,
        /// File name shown in the conversation.
        file_name: String,
        /// MIME type; the upload's `Content-Type` must match.
        file_type: String,
        /// Size in bytes.
        file_size: u64,
        /// MD5 of the content, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_md5: Option<String>,
        /// Ask for errors as `GenerateUrlError` JSON rather than strings.
        errors_as_json: bool,
        /// Echoed back on the response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Send a message as the guest.
    OnMessage {
        /// Session token.
        token: SessionToken,
        /// The message.
        message: OutgoingMessage,
        /// Echoed back on the response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Ask for a fresh download URL of an uploaded attachment.
    GetAttachment {
        /// Session token.
        token: SessionToken,
        /// Attachment id.
        attachment_id: String,
        /// Echoed back on the response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Delete an attachment that was not sent yet.
    DeleteAttachment {
        /// Session token.
        token: SessionToken,
        /// Attachment id.
        attachment_id: String,
        /// Echoed back on the response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Keep-alive; the server echoes the message back.
    Echo {
        /// Session token.
        token: SessionToken,
        /// The message to echo (real clients send the text `ping`).
        message: OutgoingMessage,
        /// Echoed back on the response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Ask for a guest JWT (bearer for the guest REST API).
    GetJwt {
        /// Session token.
        token: SessionToken,
        /// Echoed back on the response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
    /// Close this connection only.
    CloseSession {
        /// Session token.
        token: SessionToken,
        /// Always `false`: never close the customer's other connections.
        close_all_connections: False,
        /// Echoed back on the response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracing_id: Option<String>,
    },
}

impl Request {
    /// The tracing id, if one was set.
    pub fn tracing_id(&self) -> Option<&str> {
        match self {
            Self::ConfigureSession { tracing_id, .. }
            | Self::OnAttachment { tracing_id, .. }
            | Self::OnMessage { tracing_id, .. }
            | Self::GetAttachment { tracing_id, .. }
            | Self::DeleteAttachment { tracing_id, .. }
            | Self::Echo { tracing_id, .. }
            | Self::GetJwt { tracing_id, .. }
            | Self::CloseSession { tracing_id, .. } => tracing_id.as_deref(),
        }
    }

    /// The action name as it appears on the wire (`onAttachment`, …).
    pub fn action(&self) -> &'static str {
        match self {
            Self::ConfigureSession { .. } => "configureSession",
            Self::OnAttachment { .. } => "onAttachment",
            Self::OnMessage { .. } => "onMessage",
            Self::GetAttachment { .. } => "getAttachment",
            Self::DeleteAttachment { .. } => "deleteAttachment",
            Self::Echo { .. } => "echo",
            Self::GetJwt { .. } => "getJwt",
            Self::CloseSession { .. } => "closeSession",
        }
    }
}

/// A message sent by the guest (`onMessage`, `echo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingMessage {
    /// Message type; `Text` for everything ferry sends.
    #[serde(rename = "type")]
    pub kind: String,
    /// Text (a caption when attachments are present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Attachments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<MessageContent>,
    /// Channel data: custom attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl OutgoingMessage {
    /// A `Text` message with this text and nothing else.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            kind: "Text".into(),
            text: Some(text.into()),
            content: Vec::new(),
            channel: None,
            extra: Extra::new(),
        }
    }

    /// Sets the custom attributes (none set leaves `channel` out).
    pub fn with_custom_attributes(mut self, attributes: BTreeMap<String, String>) -> Self {
        if !attributes.is_empty() {
            self.channel = Some(Channel {
                metadata: Some(ChannelMetadata { custom_attributes: attributes, extra: Extra::new() }),
                extra: Extra::new(),
            });
        }
        self
    }

    /// The ids of attachments this message carries.
    pub fn attachment_ids(&self) -> impl Iterator<Item = &str> {
        self.content.iter().filter_map(|c| c.attachment.as_ref().map(|a| a.id.as_str()))
    }
}

/// One content item of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageContent {
    /// `Attachment` for attachments.
    pub content_type: String,
    /// The attachment, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<AttachmentRef>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl MessageContent {
    /// An attachment content item referring to `id`.
    pub fn attachment(id: impl Into<String>) -> Self {
        Self {
            content_type: "Attachment".into(),
            attachment: Some(AttachmentRef { id: id.into(), extra: Extra::new() }),
            extra: Extra::new(),
        }
    }
}

/// An attachment named by id (in a sent message); the server adds URL, name and type when echoing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// Attachment id.
    pub id: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `message.channel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    /// `message.channel.metadata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ChannelMetadata>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `message.channel.metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelMetadata {
    /// Custom attributes (string to string).
    #[serde(default)]
    pub custom_attributes: BTreeMap<String, String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A Web Messaging error code (`errorCode` in bodies, `code` on error frames). Unknown codes are
/// preserved in [`ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 4000: feature unavailable.
    FeatureUnavailable,
    /// 4001: file type invalid.
    FileTypeInvalid,
    /// 4002: file size invalid.
    FileSizeInvalid,
    /// 4003: file content invalid.
    FileContentInvalid,
    /// 4004: file name invalid.
    FileNameInvalid,
    /// 4005: file name too long.
    FileNameTooLong,
    /// 4006: session expired.
    SessionExpired,
    /// 4007: session not found.
    SessionNotFound,
    /// 4008: attachment expired.
    AttachmentExpired,
    /// 4009: attachment not found.
    AttachmentNotFound,
    /// 4010: attachment not successfully uploaded.
    AttachmentNotUploaded,
    /// 4011: message too long.
    MessageTooLong,
    /// 4013: custom attributes too large.
    CustomAttributesTooLarge,
    /// 4020: missing parameter.
    MissingParameter,
    /// 4029: request rate too high.
    RequestRateTooHigh,
    /// Any other code, kept as sent.
    Other(u32),
}

impl ErrorCode {
    /// The numeric code.
    pub fn as_u32(self) -> u32 {
        match self {
            Self::FeatureUnavailable => 4000,
            Self::FileTypeInvalid => 4001,
            Self::FileSizeInvalid => 4002,
            Self::FileContentInvalid => 4003,
            Self::FileNameInvalid => 4004,
            Self::FileNameTooLong => 4005,
            Self::SessionExpired => 4006,
            Self::SessionNotFound => 4007,
            Self::AttachmentExpired => 4008,
            Self::AttachmentNotFound => 4009,
            Self::AttachmentNotUploaded => 4010,
            Self::MessageTooLong => 4011,
            Self::CustomAttributesTooLarge => 4013,
            Self::MissingParameter => 4020,
            Self::RequestRateTooHigh => 4029,
            Self::Other(code) => code,
        }
    }

    /// The code for a number.
    pub fn from_u32(code: u32) -> Self {
        match code {
            4000 => Self::FeatureUnavailable,
            4001 => Self::FileTypeInvalid,
            4002 => Self::FileSizeInvalid,
            4003 => Self::FileContentInvalid,
            4004 => Self::FileNameInvalid,
            4005 => Self::FileNameTooLong,
            4006 => Self::SessionExpired,
            4007 => Self::SessionNotFound,
            4008 => Self::AttachmentExpired,
            4009 => Self::AttachmentNotFound,
            4010 => Self::AttachmentNotUploaded,
            4011 => Self::MessageTooLong,
            4013 => Self::CustomAttributesTooLarge,
            4020 => Self::MissingParameter,
            4029 => Self::RequestRateTooHigh,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u32())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.as_u32())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u32::deserialize(deserializer).map(Self::from_u32)
    }
}

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

/// `SessionResponse`: the session this connection joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    /// Whether the connection is attached.
    #[serde(default)]
    pub connected: bool,
    /// `true` when the token had no session before this request.
    #[serde(default)]
    pub new_session: bool,
    /// `true` when the session's conversation has ended.
    #[serde(default)]
    pub read_only: bool,
    /// What guests may attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_media: Option<AllowedMedia>,
    /// File extensions guests may not attach (`.exe`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_extensions: Option<Vec<String>>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `allowedMedia`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllowedMedia {
    /// Limits on what guests send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<InboundMedia>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `allowedMedia.inbound`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundMedia {
    /// Allowed MIME types, with wildcards (`image/*`, `*/*`).
    #[serde(default)]
    pub file_types: Vec<FileType>,
    /// Largest file in KB (1024 bytes).
    #[serde(rename = "maxFileSizeKB", default, skip_serializing_if = "Option::is_none")]
    pub max_file_size_kb: Option<u64>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One allowed MIME type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileType {
    /// The MIME type or pattern.
    #[serde(rename = "type")]
    pub mime: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `PresignedUrlResponse`. The URL is a [`Secret`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedUrlResponse {
    /// The attachment id.
    pub attachment_id: String,
    /// Where to `PUT` the file (or `GET` it, after `getAttachment`).
    pub url: Secret,
    /// Headers the `PUT` must carry, besides `Content-Type`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `GenerateUrlError`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateUrlError {
    /// The attachment id.
    pub attachment_id: String,
    /// Why.
    pub error_code: ErrorCode,
    /// Text.
    #[serde(default)]
    pub error_message: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `UploadSuccessEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSuccessEvent {
    /// The attachment id.
    pub attachment_id: String,
    /// Where the uploaded file can be fetched (expires after about 10 minutes).
    pub download_url: Secret,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `UploadFailureEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadFailureEvent {
    /// The attachment id.
    pub attachment_id: String,
    /// Why.
    pub error_code: ErrorCode,
    /// Text.
    #[serde(default)]
    pub error_message: String,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `AttachmentDeletedResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentDeletedResponse {
    /// The attachment id.
    pub attachment_id: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `StructuredMessage`: a message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StructuredMessage {
    /// Message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `Text`, `Event`, `Structured`, …
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `Inbound` (from the guest) or `Outbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// Content items (attachments, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<MessageContent>>,
    /// Channel data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `TooManyRequestsErrorMessage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TooManyRequestsErrorMessage {
    /// Seconds to wait (kept as sent).
    pub retry_after: serde_json::Number,
    /// 4029.
    #[serde(default = "rate_code")]
    pub error_code: ErrorCode,
    /// Text.
    #[serde(default)]
    pub error_message: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

fn rate_code() -> ErrorCode {
    ErrorCode::RequestRateTooHigh
}

impl TooManyRequestsErrorMessage {
    /// `retryAfter` as a duration (0 if it is negative or not a number of seconds).
    pub fn retry_after(&self) -> Duration {
        self.retry_after
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 86_400.0)
            .map_or(Duration::ZERO, Duration::from_secs_f64)
    }
}

/// `JwtResponse`. The JWT is a [`Secret`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JwtResponse {
    /// The guest JWT.
    pub jwt: Secret,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ConnectionClosedEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionClosedEvent {
    /// Why (`SessionLimitReached`, `signedIn`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}
