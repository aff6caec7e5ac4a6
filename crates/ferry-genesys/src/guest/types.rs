//! The values the guest client takes and returns: a file's description ([`FileMeta`]), a
//! configured session ([`SessionInfo`]), what a delivery produced ([`Delivery`]) and how to fall
//! back ([`Fallback`]), a guest JWT, and the human-readable size used in link messages.

use crate::limits::{InboundLimits, LinkReason};
use crate::protocol::SessionResponse;
use crate::secret::Secret;
use ferry_core::checksum::{Md5, Sha256};
use std::collections::BTreeMap;

/// What a session looks like once configured.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The deployment's inbound attachment limits.
    pub limits: InboundLimits,
    /// The `SessionResponse` as received.
    pub response: SessionResponse,
}

/// A file to deliver, described for the conversation: name, type, size and the digests carried as
/// custom attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// ferry's id of the stored file.
    pub file_id: String,
    /// File name as shown to the agent.
    pub file_name: String,
    /// MIME type.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, if known.
    pub sha256: Option<Sha256>,
    /// MD5 of the content, if known (a custom attribute; never sent as `fileMd5`, which the
    /// official clients do not send either).
    pub md5: Option<Md5>,
    /// Further custom attributes (e.g. a correlation id).
    pub attributes: BTreeMap<String, String>,
}

impl FileMeta {
    /// The custom attributes sent with the message: `ferryFileId`, `ferrySize`, `ferrySha256` /
    /// `ferryMd5` (hex) when known, then [`FileMeta::attributes`].
    pub fn custom_attributes(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert("ferryFileId".to_owned(), self.file_id.clone());
        out.insert("ferrySize".to_owned(), self.size.to_string());
        if let Some(sha) = &self.sha256 {
            out.insert("ferrySha256".to_owned(), sha.to_hex());
        }
        if let Some(md5) = &self.md5 {
            out.insert("ferryMd5".to_owned(), md5.to_hex());
        }
        out.extend(self.attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

/// A native attachment that was uploaded and sent.
#[derive(Debug, Clone)]
pub struct DeliveredAttachment {
    /// The attachment id.
    pub attachment_id: String,
    /// Where Genesys serves it (expires after about 10 minutes; `getAttachment` renews it).
    pub download_url: Secret,
    /// The id of the message that carries it, if the echo had one.
    pub message_id: Option<String>,
}

/// A message that was sent.
#[derive(Debug, Clone)]
pub struct DeliveredMessage {
    /// The message id, if the echo had one.
    pub message_id: Option<String>,
}

/// How [`GuestSession::deliver`](super::GuestSession::deliver) delivered a file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Delivery {
    /// As a native attachment.
    Native(DeliveredAttachment),
    /// As a link, for this reason.
    Link {
        /// The message.
        message: DeliveredMessage,
        /// Why not natively.
        reason: LinkReason,
    },
}

/// What to do with a file that cannot be a native attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Send a link instead (the default).
    #[default]
    Link,
    /// Refuse with [`Error::NotAttachable`](crate::Error::NotAttachable).
    Refuse,
}

/// A guest JWT.
#[derive(Debug, Clone)]
pub struct GuestJwt {
    /// The JWT.
    pub jwt: Secret,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
}

/// A file size for people: `512 bytes`, `1.5 KB`, `10 MB`, `2.3 GB` (units of 1024).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if bytes < 1024 {
        return if bytes == 1 { "1 byte".to_owned() } else { format!("{bytes} bytes") };
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(1023), "1023 bytes");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(10 * 1024 * 1024), "10 MB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024 / 2), "2.5 GB");
    }

    #[test]
    fn custom_attributes() {
        let meta = FileMeta {
            file_id: "f-1".into(),
            file_name: "a.pdf".into(),
            mime_type: "application/pdf".into(),
            size: 3,
            sha256: Some(Sha256::of(b"abc")),
            md5: None,
            attributes: BTreeMap::from([("corr".into(), "x".into())]),
        };
        let attrs = meta.custom_attributes();
        assert_eq!(attrs["ferryFileId"], "f-1");
        assert_eq!(attrs["ferrySize"], "3");
        assert_eq!(attrs["ferrySha256"], Sha256::of(b"abc").to_hex());
        assert_eq!(attrs["corr"], "x");
        assert!(!attrs.contains_key("ferryMd5"));
    }
}
