//! The typed bodies of the frame classes ferry knows, each keeping the fields it does not name.

use super::Extra;
use super::actions::{Channel, MessageContent};
use super::codes::ErrorCode;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

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
    /// Largest file in KB (1,000 bytes, as the official clients read it).
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
