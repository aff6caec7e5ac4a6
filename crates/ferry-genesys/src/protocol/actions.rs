//! The request actions a guest sends ([`Request`]) and the message they carry
//! ([`OutgoingMessage`]).

use super::{Extra, False};
use crate::secret::SessionToken;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
