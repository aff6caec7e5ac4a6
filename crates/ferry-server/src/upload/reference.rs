//! The attachment reference: the `201 Created` body that describes the stored file and how it
//! was delivered (see `docs/api.md`), with the caller's own `conversationId` echoed when it gave
//! one (ferry never learns the Genesys conversation id, so it never makes one up).

use crate::error::{AppError, ErrorCode};
use crate::state::AppState;
use crate::tickets::Claims;
use crate::upload::auth::Caller;
use crate::upload::declared::Declared;
use crate::upload::deliver::Delivered;
use ferry_core::checksum::CrcAlgorithm;
use ferry_s3::{Stored, UploadedObject};
use serde::Serialize;

/// The reference to a stored, delivered file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AttachmentReference {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    name: String,
    /// Bytes stored.
    pub(crate) size: u64,
    content_type: String,
    download_url: String,
    status: &'static str,
    uploaded_at: String,
    checksums: Checksums,
    /// Where the file is stored: for ticket callers (site backends) only; anonymous guests are
    /// not told the bucket or key.
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<Storage>,
    delivery: Delivered,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation_id: Option<String>,
    /// `"caller"` whenever `conversationId` is present: the value is the caller's, unchecked.
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation_id_source: Option<&'static str>,
    /// The malware scan (`{engine, result, database}`), for a scanned deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    scan: Option<crate::scan::ScanReport>,
}

/// The longest `conversationId` echoed.
const MAX_CONVERSATION_ID: usize = 128;

#[derive(Debug, Clone, Serialize)]
struct Checksums {
    /// Absent when `data_path.whole_file_md5` is off and the client sent no `Content-MD5`.
    #[serde(skip_serializing_if = "Option::is_none")]
    md5: Option<String>,
    #[serde(rename = "s3ETag")]
    s3_etag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crc32c: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crc64nvme: Option<String>,
}

impl Checksums {
    /// The digests computed for `stored`: only those (no `md5` when it was not computed, no
    /// `sha256` unless asked for, the CRC of the checksum mode).
    fn of(Stored { object, summary }: &Stored) -> Self {
        let crc = |algorithm| summary.crc.filter(|c| c.algorithm == algorithm).map(|c| c.to_base64());
        Self {
            md5: summary.md5.map(|m| m.to_hex()),
            s3_etag: object.etag.clone(),
            sha256: summary.sha256.map(|s| s.to_hex()),
            crc32c: crc(CrcAlgorithm::Crc32c),
            crc64nvme: crc(CrcAlgorithm::Crc64Nvme),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Storage {
    bucket: String,
    key: String,
}

impl AttachmentReference {
    /// The reference for `stored`, delivered as `delivery`.
    pub(crate) fn new(
        state: &AppState,
        caller: &Caller,
        declared: &Declared,
        stored: &Stored,
        delivery: Delivered,
    ) -> Self {
        let Stored { object, .. } = stored;
        let reference = match caller {
            Caller::Ticket(Claims { reference, .. }) => reference.clone(),
            Caller::Guest { .. } => None,
        };
        Self {
            kind: "file",
            id: file_id(state, object),
            name: declared.name.clone(),
            size: object.size,
            content_type: declared.content_type.clone(),
            download_url: download_link(state, object),
            status: "uploaded",
            uploaded_at: ferry_genesys::platform::rfc3339(std::time::SystemTime::now()),
            checksums: Checksums::of(stored),
            storage: matches!(caller, Caller::Ticket(_))
                .then(|| Storage { bucket: object.bucket.clone(), key: object.key.clone() }),
            delivery,
            reference,
            text: declared.caption.clone(),
            conversation_id: None,
            conversation_id_source: None,
            scan: None,
        }
    }

    /// Records the malware scan's report (`None`: the deployment is not scanned).
    pub(crate) fn set_scan(&mut self, scan: Option<crate::scan::ScanReport>) {
        self.scan = scan;
    }

    /// Echoes the caller's `conversationId`, if it gave one.
    pub(crate) fn set_conversation_id(&mut self, id: Option<String>) {
        self.conversation_id_source = id.is_some().then_some("caller");
        self.conversation_id = id;
    }

    /// How the file was delivered (`native`, `link`, …).
    pub(crate) fn delivery_mode(&self) -> &'static str {
        self.delivery.mode()
    }
}

/// The file id: the key's tail after ferry's prefix, encoded.
pub(crate) fn file_id(state: &AppState, object: &UploadedObject) -> String {
    let tail = object.key.strip_prefix(&state.config.s3.prefix).unwrap_or(&object.key);
    crate::links::file_id(tail)
}

/// A fresh signed download link for `object`.
pub(crate) fn download_link(state: &AppState, object: &UploadedObject) -> String {
    let expires = state.now_unix() + crate::download::link_ttl_secs(state, &object.key);
    state.links.link(&file_id(state, object), expires)
}

/// The caller's `conversationId` from the query string, checked by [`check_conversation_id`].
pub(crate) fn conversation_id_from_query(query: Option<&str>) -> Result<Option<String>, AppError> {
    let Some(query) = query else { return Ok(None) };
    let mut found = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if name == "conversationId" {
            if found.is_some() {
                return Err(conversation_id_twice());
            }
            found = Some(check_conversation_id(value.into_owned())?);
        }
    }
    Ok(found)
}

/// A `conversationId` as given (query parameter or form field): 1 to 128 letters, digits, `-`,
/// `_` or `.` (Genesys ids are UUIDs; anything else is refused rather than echoed).
pub(crate) fn check_conversation_id(id: String) -> Result<String, AppError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_CONVERSATION_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(id)
    } else {
        Err(invalid_conversation_id("`conversationId` must be 1 to 128 letters, digits, `-`, `_` or `.`"))
    }
}

/// The answer for a `conversationId` given twice (query and form, or either twice).
pub(crate) fn conversation_id_twice() -> AppError {
    invalid_conversation_id("`conversationId` is given twice")
}

/// `400 invalid_conversation_id` with `message`.
pub(crate) fn invalid_conversation_id(message: &str) -> AppError {
    AppError::new(ErrorCode::InvalidConversationId, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::checksum::Md5;
    use ferry_core::chunk::ObjectSummary;

    #[test]
    fn the_checksums_list_only_the_digests_computed() {
        let crc = CrcAlgorithm::Crc64Nvme.checksum(b"ferry");
        let stored = |md5: Option<Md5>| {
            let summary = ObjectSummary {
                len: 5,
                part_size: 5 << 20,
                parts: 1,
                md5,
                sha256: None,
                crc: Some(crc),
                part_md5s: Vec::new(),
                part_crcs: vec![crc],
            };
            let object = UploadedObject {
                bucket: "b".into(),
                key: "k".into(),
                version_id: None,
                size: 5,
                etag: "e".into(),
                md5,
                checksum: Some(crc),
                part_count: 1,
            };
            serde_json::to_value(Checksums::of(&Stored { object, summary })).unwrap()
        };
        assert_eq!(
            stored(None),
            serde_json::json!({ "s3ETag": "e", "crc64nvme": crc.to_base64() }),
            "a CRC-only upload: no md5, no sha256"
        );
        let md5 = Md5::of(b"ferry");
        assert_eq!(stored(Some(md5))["md5"], md5.to_hex());
    }

    #[test]
    fn conversation_ids_are_echoed_only_when_plain() {
        let id = "3f2b6a1e-9c1d-4e1a-8b1f-0a2b3c4d5e6f";
        assert_eq!(conversation_id_from_query(None).unwrap(), None);
        assert_eq!(conversation_id_from_query(Some("a=1&b=2")).unwrap(), None);
        let query = format!("x=1&conversationId={id}");
        assert_eq!(conversation_id_from_query(Some(&query)).unwrap().as_deref(), Some(id));
        for bad in [
            "conversationId=",
            "conversationId=a%20b",
            "conversationId=%3Cscript%3E",
            "conversationId=a&conversationId=b",
        ] {
            let error = conversation_id_from_query(Some(bad)).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidConversationId, "{bad}");
        }
        assert!(check_conversation_id("x".repeat(128)).is_ok());
        assert!(check_conversation_id("x".repeat(129)).is_err());
    }
}
