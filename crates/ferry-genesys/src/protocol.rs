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
//!
//! Split by concern: the requests (`actions`), the frame envelope and its classes (`frames`), the
//! typed bodies (`bodies`) and the error codes (`codes`); everything is re-exported here.

mod actions;
mod bodies;
mod codes;
mod frames;

pub use actions::{AttachmentRef, Channel, ChannelMetadata, MessageContent, OutgoingMessage, Request};
pub use bodies::{
    AllowedMedia, AttachmentDeletedResponse, ConnectionClosedEvent, FileType, GenerateUrlError, InboundMedia,
    JwtResponse, PresignedUrlResponse, SessionResponse, StructuredMessage, TooManyRequestsErrorMessage,
    UploadFailureEvent, UploadSuccessEvent,
};
pub use codes::ErrorCode;
pub use frames::{Frame, FrameBody, FrameType};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

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
