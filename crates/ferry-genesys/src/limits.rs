//! A deployment's inbound attachment limits, and the pure decision whether a file can be sent as a
//! native attachment or must go as a link.
//!
//! Read like the official clients, a little stricter: a KB is 1,000 bytes and a file goes natively
//! only when `size ≤ maxFileSizeKB × 1000` (the official client's integer division lets up to 999
//! bytes more through; ferry does not rely on that), and a deployment that states no positive
//! `maxFileSizeKB` or no file types accepts no native attachments.

use crate::protocol::SessionResponse;
use std::fmt;

/// What a deployment accepts as guest attachments, from its `SessionResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundLimits {
    /// Whether guests may attach files at all (`allowedMedia.inbound` present with file types
    /// and a positive `maxFileSizeKB`).
    pub attachments_enabled: bool,
    /// Largest file, in KB of 1,000 bytes (0 when the deployment states none).
    pub max_file_size_kb: u64,
    /// Allowed MIME types, lower-cased; may hold wildcards (`image/*`, `*/*`).
    pub allowed_types: Vec<String>,
    /// Blocked extensions, lower-cased, each with its leading dot (`.exe`).
    pub blocked_extensions: Vec<String>,
}

impl InboundLimits {
    /// Reads the limits out of a `SessionResponse`.
    pub fn from_session(response: &SessionResponse) -> Self {
        let inbound = response.allowed_media.as_ref().and_then(|m| m.inbound.as_ref());
        let allowed_types =
            inbound.map(|i| i.file_types.iter().map(|t| t.mime.clone()).collect()).unwrap_or_default();
        let blocked_extensions = response.blocked_extensions.clone().unwrap_or_default();
        Self::new(inbound.and_then(|i| i.max_file_size_kb).unwrap_or(0), allowed_types, blocked_extensions)
    }

    /// Limits from their parts (a `SessionResponse`, or a deployment's `config.json`): MIME types
    /// and extensions are lower-cased, extensions get their leading dot; attachments are enabled
    /// only with at least one type and a positive size.
    pub fn new(max_file_size_kb: u64, allowed_types: Vec<String>, blocked_extensions: Vec<String>) -> Self {
        let allowed_types: Vec<String> =
            allowed_types.iter().map(|t| t.trim().to_ascii_lowercase()).collect();
        let blocked_extensions = blocked_extensions
            .iter()
            .map(|e| {
                let e = e.trim().to_ascii_lowercase();
                if e.starts_with('.') { e } else { format!(".{e}") }
            })
            .collect();
        Self {
            attachments_enabled: !allowed_types.is_empty() && max_file_size_kb > 0,
            max_file_size_kb,
            allowed_types,
            blocked_extensions,
        }
    }

    /// The largest file in bytes: `maxFileSizeKB × 1000`.
    pub fn max_file_size_bytes(&self) -> u64 {
        self.max_file_size_kb.saturating_mul(1000)
    }

    /// Decides whether a file of this name, MIME type and size can be a native attachment.
    pub fn decide(&self, file_name: &str, mime_type: &str, size: u64) -> AttachmentDecision {
        use AttachmentDecision::{Link, Native};
        if !self.attachments_enabled {
            return Link(LinkReason::AttachmentsDisabled);
        }
        if size == 0 {
            return Link(LinkReason::Empty);
        }
        if size > self.max_file_size_bytes() {
            return Link(LinkReason::TooLarge { size, max: self.max_file_size_bytes() });
        }
        if let Some(ext) = extension(file_name)
            && self.blocked_extensions.contains(&ext)
        {
            return Link(LinkReason::BlockedExtension { extension: ext });
        }
        if !self.allowed_types.iter().any(|pattern| mime_matches(pattern, mime_type)) {
            return Link(LinkReason::TypeNotAllowed { mime_type: mime_type.to_owned() });
        }
        Native
    }
}

/// Whether a file goes natively or as a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentDecision {
    /// Within every limit: send as a native attachment.
    Native,
    /// Send a link instead, for this reason.
    Link(LinkReason),
}

impl AttachmentDecision {
    /// Whether the decision is [`AttachmentDecision::Native`].
    pub fn is_native(&self) -> bool {
        matches!(self, Self::Native)
    }
}

/// Why a file cannot be a native attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkReason {
    /// The deployment allows no guest attachments.
    AttachmentsDisabled,
    /// The file is empty (Genesys clients reject files under 1 byte).
    Empty,
    /// Larger than the deployment's limit.
    TooLarge {
        /// File size in bytes.
        size: u64,
        /// Limit in bytes.
        max: u64,
    },
    /// The extension is blocked.
    BlockedExtension {
        /// The extension, lower-cased with its dot.
        extension: String,
    },
    /// The MIME type matches no allowed type.
    TypeNotAllowed {
        /// The MIME type.
        mime_type: String,
    },
}

impl fmt::Display for LinkReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AttachmentsDisabled => f.write_str("the deployment accepts no attachments"),
            Self::Empty => f.write_str("the file is empty"),
            Self::TooLarge { size, max } => write!(f, "{size} bytes is over the limit of {max} bytes"),
            Self::BlockedExtension { extension } => write!(f, "extension {extension} is blocked"),
            Self::TypeNotAllowed { mime_type } => write!(f, "type {mime_type} is not allowed"),
        }
    }
}

/// The lower-cased extension of a file name, with its dot (`report.PDF` → `.pdf`); `None` when
/// the name has none (`README`, `.profile`).
pub fn extension(file_name: &str) -> Option<String> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name).trim_end_matches(['.', ' ']);
    let dot = base.rfind('.')?;
    if dot == 0 {
        return None;
    }
    Some(base[dot..].to_ascii_lowercase())
}

/// Whether `mime_type` matches `pattern` (`*/*`, `image/*`, `application/pdf`), ignoring case and
/// parameters (`; charset=…`).
pub fn mime_matches(pattern: &str, mime_type: &str) -> bool {
    let essence = |s: &str| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (pattern, mime) = (essence(pattern), essence(mime_type));
    let Some((p_type, p_sub)) = pattern.split_once('/') else { return pattern == "*" };
    let Some((m_type, m_sub)) = mime.split_once('/') else { return false };
    (p_type == "*" || p_type == m_type) && (p_sub == "*" || p_sub == m_sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(types: &[&str], kb: u64, blocked: &[&str]) -> InboundLimits {
        let json = serde_json::json!({
            "connected": true, "newSession": false, "readOnly": false,
            "allowedMedia": {"inbound": {
                "fileTypes": types.iter().map(|t| serde_json::json!({"type": t})).collect::<Vec<_>>(),
                "maxFileSizeKB": kb}},
            "blockedExtensions": blocked,
        });
        InboundLimits::from_session(&serde_json::from_value(json).unwrap())
    }

    #[test]
    fn mime_patterns() {
        assert!(mime_matches("*/*", "application/pdf"));
        assert!(mime_matches("image/*", "IMAGE/PNG"));
        assert!(!mime_matches("image/*", "video/mp4"));
        assert!(mime_matches("text/plain", "text/plain; charset=utf-8"));
        assert!(!mime_matches("text/plain", "text/html"));
        assert!(!mime_matches("image/*", "garbage"));
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("a.PDF").as_deref(), Some(".pdf"));
        assert_eq!(extension("archive.tar.exe").as_deref(), Some(".exe"));
        assert_eq!(extension("evil.exe.").as_deref(), Some(".exe"));
        assert_eq!(extension("README"), None);
        assert_eq!(extension(".profile"), None);
    }

    #[test]
    fn decisions() {
        let l = limits(&["image/*", "application/pdf"], 10240, &[".exe", "bat"]);
        assert_eq!(l.max_file_size_bytes(), 10_240_000);
        assert!(l.decide("a.pdf", "application/pdf", 1).is_native());
        assert!(l.decide("p.png", "image/png", 10_240 * 1000).is_native(), "KB × 1000 goes natively");
        assert_eq!(
            l.decide("p.png", "image/png", 10_240 * 1000 + 1),
            AttachmentDecision::Link(LinkReason::TooLarge { size: 10_240_001, max: 10_240_000 }),
            "one byte more is a link (and so is the KiB reading, 10 MiB)"
        );
        assert!(!l.decide("p.png", "image/png", 10 * 1024 * 1024).is_native());
        assert_eq!(l.decide("a.pdf", "application/pdf", 0), AttachmentDecision::Link(LinkReason::Empty));
        assert_eq!(
            l.decide("run.BAT", "image/png", 5),
            AttachmentDecision::Link(LinkReason::BlockedExtension { extension: ".bat".into() })
        );
        assert_eq!(
            l.decide("v.mp4", "video/mp4", 5),
            AttachmentDecision::Link(LinkReason::TypeNotAllowed { mime_type: "video/mp4".into() })
        );
        let any = limits(&["*/*"], 1, &[]);
        assert!(any.decide("x.bin", "application/octet-stream", 1000).is_native());
        assert!(!any.decide("x.bin", "application/octet-stream", 1001).is_native());
        let no_size = limits(&["*/*"], 0, &[]);
        assert_eq!(
            no_size.decide("a.pdf", "application/pdf", 1),
            AttachmentDecision::Link(LinkReason::AttachmentsDisabled)
        );
        let unstated: SessionResponse = serde_json::from_value(serde_json::json!({
            "connected": true, "allowedMedia": {"inbound": {"fileTypes": [{"type": "*/*"}]}}
        }))
        .unwrap();
        assert_eq!(
            InboundLimits::from_session(&unstated).decide("a.pdf", "application/pdf", 1),
            AttachmentDecision::Link(LinkReason::AttachmentsDisabled),
            "no maxFileSizeKB: no native attachments"
        );
        let none: SessionResponse = serde_json::from_value(serde_json::json!({"connected": true})).unwrap();
        assert_eq!(
            InboundLimits::from_session(&none).decide("a.pdf", "application/pdf", 1),
            AttachmentDecision::Link(LinkReason::AttachmentsDisabled)
        );
    }
}
