//! The attachment reference: the `201 Created` body that describes the stored, delivered file
//! (see `docs/api.md`).

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
    storage: Storage,
    delivery: Delivered,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Checksums {
    md5: String,
    #[serde(rename = "s3ETag")]
    s3_etag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crc32c: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    crc64nvme: Option<String>,
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
        let Stored { object, summary } = stored;
        let crc = |algorithm| summary.crc.filter(|c| c.algorithm == algorithm).map(|c| c.to_base64());
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
            checksums: Checksums {
                md5: summary.md5.to_hex(),
                s3_etag: object.etag.clone(),
                sha256: summary.sha256.map(|s| s.to_hex()),
                crc32c: crc(CrcAlgorithm::Crc32c),
                crc64nvme: crc(CrcAlgorithm::Crc64Nvme),
            },
            storage: Storage { bucket: object.bucket.clone(), key: object.key.clone() },
            delivery,
            reference,
            text: declared.caption.clone(),
        }
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
    let expires = state.now_unix() + state.config.link_ttl_secs;
    state.links.link(&file_id(state, object), expires)
}
