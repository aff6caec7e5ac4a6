//! Open Messaging: [`PlatformClient::send_open_message`] posts an inbound message whose
//! attachment Genesys then fetches from ferry's signed download link, and the message's types.

use std::num::NonZeroU8;
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_core::checksum::Sha256;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::{Iso8601, iso8601};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::{PlatformClient, PlatformResponse};
use crate::Secret;
use crate::error::Error;

impl PlatformClient {
    /// Delivers an Open Messaging inbound message through the integration `integration_id`.
    /// Genesys fetches each attachment from its `url` afterwards.
    pub async fn send_open_message(
        &self,
        integration_id: &str,
        message: &OpenMessage,
    ) -> Result<PlatformResponse<OpenMessageReceipt>, Error> {
        if integration_id.is_empty() {
            return Err(Error::InvalidConfig("the integration id is empty".into()));
        }
        let segments =
            ["api", "v2", "conversations", "messages", integration_id, "inbound", "open", "message"];
        let response: PlatformResponse<Value> = self.request(Method::POST, &segments, Some(message)).await?;
        let receipt = OpenMessageReceipt::from_json(&response.body).ok_or_else(|| Error::ApiDecode {
            status: response.status,
            reason: "the answer has no message id".into(),
            correlation_id: response.correlation_id.clone(),
        })?;
        tracing::info!(
            integration_id,
            message_id = %receipt.id,
            correlation_id = response.correlation_id.as_deref().unwrap_or("-"),
            "Open Messaging message delivered"
        );
        Ok(PlatformResponse {
            body: receipt,
            status: response.status,
            rate_limit: response.rate_limit,
            correlation_id: response.correlation_id,
        })
    }
}

/// An Open Messaging inbound message (`OpenInboundNormalizedMessage`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OpenMessage {
    /// Who sent it, when, and the sender's own message id.
    pub channel: OpenChannel,
    /// Text (with an attachment, its caption).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Attachments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<OpenContent>,
}

impl OpenMessage {
    /// A message carrying one file, with an optional caption, sent at `time`.
    pub fn file(
        from: OpenFrom,
        message_id: impl Into<String>,
        time: SystemTime,
        attachment: OpenAttachment,
        caption: Option<String>,
    ) -> Self {
        Self {
            channel: OpenChannel { from, time: rfc3339(time), message_id: message_id.into() },
            text: caption,
            content: vec![OpenContent::attachment(attachment)],
        }
    }
}

/// The `channel` of an inbound Open Messaging message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OpenChannel {
    /// The customer.
    pub from: OpenFrom,
    /// When the customer sent it, RFC 3339 (`2024-05-01T12:00:00.000Z`).
    pub time: String,
    /// The sender's id for this message (the integration's own, for de-duplication).
    pub message_id: String,
}

/// The customer of an Open Messaging message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OpenFrom {
    /// The customer's id in the integration.
    pub id: String,
    /// What kind of id it is.
    pub id_type: OpenIdType,
    /// First name, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Nickname, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
}

impl OpenFrom {
    /// A customer known by an opaque id.
    pub fn opaque(id: impl Into<String>) -> Self {
        Self { id: id.into(), id_type: OpenIdType::Opaque, first_name: None, last_name: None, nickname: None }
    }
}

/// The kinds of customer id Open Messaging accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum OpenIdType {
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// Any other id.
    Opaque,
}

/// One content item of an Open Messaging message.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OpenContent {
    /// Always `"Attachment"` here.
    pub content_type: &'static str,
    /// The attachment.
    pub attachment: OpenAttachment,
}

impl OpenContent {
    /// An attachment content item.
    pub fn attachment(attachment: OpenAttachment) -> Self {
        Self { content_type: "Attachment", attachment }
    }
}

/// An attachment Genesys fetches from `url`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OpenAttachment {
    /// `Image`, `Video`, `Audio` or `File`.
    pub media_type: OpenMediaType,
    /// Where Genesys downloads the file: ferry's signed download link (redacted in `Debug`).
    pub url: Secret,
    /// MIME type.
    pub mime: String,
    /// File name shown to the agent.
    pub filename: String,
    /// Lower-case hex SHA-256 of the file, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl OpenAttachment {
    /// A file attachment (`mediaType: "File"`).
    pub fn file(
        url: Secret,
        filename: impl Into<String>,
        mime: impl Into<String>,
        sha256: Option<Sha256>,
    ) -> Self {
        Self {
            media_type: OpenMediaType::File,
            url,
            mime: mime.into(),
            filename: filename.into(),
            sha256: sha256.map(|digest| digest.to_hex()),
        }
    }
}

/// Media types of Open Messaging attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum OpenMediaType {
    /// An image.
    Image,
    /// A video.
    Video,
    /// An audio clip.
    Audio,
    /// Any other file.
    File,
}

/// What Genesys answered to an inbound Open Messaging message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenMessageReceipt {
    /// Genesys's id of the message.
    pub id: String,
    /// The sender's message id, echoed.
    pub message_id: Option<String>,
}

impl OpenMessageReceipt {
    fn from_json(body: &Value) -> Option<Self> {
        let id = body.get("id")?.as_str()?.to_owned();
        let message_id = body.pointer("/channel/messageId").and_then(Value::as_str).map(str::to_owned);
        Some(Self { id, message_id })
    }
}

/// RFC 3339 in UTC with exactly three fractional digits: `1970-01-01T00:00:00.000Z`.
const RFC3339_MILLIS: Iso8601<
    {
        iso8601::Config::DEFAULT
            .set_time_precision(iso8601::TimePrecision::Second { decimal_digits: NonZeroU8::new(3) })
            .encode()
    },
> = Iso8601;

/// Formats `time` as RFC 3339 in UTC with milliseconds (`1970-01-01T00:00:00.000Z`), truncated to
/// the millisecond. Times before 1970 give the epoch; times after 9999 give the last millisecond
/// of 9999.
pub fn rfc3339(time: SystemTime) -> String {
    let millis = time.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let utc = i128::try_from(millis)
        .ok()
        .and_then(|ms| ms.checked_mul(1_000_000))
        .and_then(|nanos| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok())
        .unwrap_or_else(|| PrimitiveDateTime::MAX.assume_utc().truncate_to_millisecond());
    utc.format(&RFC3339_MILLIS).expect("a year within 1970..=9999 always formats")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(4_107_542_399)), "2100-02-28T23:59:59.000Z");
        // Truncated, not rounded; clamped at both ends.
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_nanos(1_999_999_999)), "1970-01-01T00:00:01.999Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(400_000_000_000)), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn open_message_json_shape() {
        let attachment = OpenAttachment::file(
            Secret::new("https://files.example/f?sig=s3cr3t"),
            "a.pdf",
            "application/pdf",
            Some(Sha256::of(b"abc")),
        );
        let message = OpenMessage::file(
            OpenFrom::opaque("cust-1"),
            "ext-1",
            UNIX_EPOCH,
            attachment,
            Some("caption".into()),
        );
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "channel": {"from": {"id": "cust-1", "idType": "Opaque"}, "time": "1970-01-01T00:00:00.000Z", "messageId": "ext-1"},
                "text": "caption",
                "content": [{"contentType": "Attachment", "attachment": {
                    "mediaType": "File", "url": "https://files.example/f?sig=s3cr3t", "mime": "application/pdf",
                    "filename": "a.pdf",
                    "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                }}],
            })
        );
        assert!(!format!("{message:?}").contains("s3cr3t"));
    }
}
