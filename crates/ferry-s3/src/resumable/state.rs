//! The state object of a resumable upload: a small JSON document beside the data, the one place
//! its progress is recorded. It moves only by conditional writes on its ETag (see
//! [`ResumableStore`](super::ResumableStore)), so whichever process holds the latest ETag may move
//! it, and two cannot both advance it.

use crate::UploadedPart;
use crate::upload::ObjectMeta;
use ferry_core::checksum::{Crc, CrcAlgorithm, Md5, Sha256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a resumable upload is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Bytes are still coming.
    Open,
    /// Every byte is in; CompleteMultipartUpload (or the single PutObject) is under way or was
    /// interrupted. A later request finishes it.
    Completing,
    /// The object is stored and verified.
    Stored(StoredObject),
    /// The object did not verify and was deleted: the upload cannot go on.
    Failed {
        /// Why, for the logs and the client.
        reason: String,
    },
}

/// The verified object of a finished resumable upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// The ETag S3 reported.
    pub etag: String,
    /// Version id, when the bucket is versioned.
    pub version_id: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// MD5 of the whole object, hex, when it was computed (`data_path.whole_file_md5` in the
    /// server; an older state always has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// SHA-256 of the whole object, hex, when it was asked for.
    pub sha256: Option<String>,
    /// The FULL_OBJECT CRC as `ALGORITHM:base64`, in a CRC checksum mode.
    pub crc: Option<String>,
    /// Parts it was stored in.
    pub part_count: u32,
}

/// A part committed to the multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatePart {
    /// Part number.
    pub number: u32,
    /// ETag S3 returned.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// The part's MD5 (hex), in the `md5` checksum mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// The part's CRC value, in a CRC checksum mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc: Option<u64>,
}

/// Bytes past the last full part, kept in an object of their own until a later request fills
/// the part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tail {
    /// The tail object's key (a fresh key for every commit, so a request that fails never touches
    /// the committed one).
    pub key: String,
    /// Its length.
    pub len: u64,
}

/// Who may move the upload now, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// A random id of the request holding it.
    pub holder: String,
    /// Unix milliseconds after which the lease no longer holds.
    pub until_ms: u64,
}

/// The state object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumableState {
    /// The final object's key.
    pub key: String,
    /// `Content-Type` of the final object.
    pub content_type: Option<String>,
    /// `Content-Disposition` of the final object.
    pub content_disposition: Option<String>,
    /// User metadata of the final object.
    pub metadata: BTreeMap<String, String>,
    /// The upload's length, once known (`None`: deferred).
    pub length: Option<u64>,
    /// The most bytes the upload may carry when its length is deferred.
    pub max_len: u64,
    /// Size of every non-last part.
    pub part_size: u64,
    /// Whether the whole file's SHA-256 is carried (the MD5 is carried unless turned off; `hash`
    /// says which).
    pub sha256: bool,
    /// Unix seconds after which the upload is abandoned (and reaped).
    pub expires: u64,
    /// The multipart upload, once the first full part went up.
    pub upload_id: Option<String>,
    /// Committed parts, in order.
    pub parts: Vec<StatePart>,
    /// The whole-file hash state over the committed parts (see [`super::digest::HashCarry`]).
    pub hash: String,
    /// Bytes past the last full part.
    pub tail: Option<Tail>,
    /// The current lease, if any.
    pub lease: Option<Lease>,
    /// Where the upload is.
    pub phase: Phase,
    /// The caller's own fields (the server's credential binding, declared name, delivery…).
    pub app: serde_json::Value,
}

impl ResumableState {
    /// Bytes committed: the full parts and the tail.
    pub fn offset(&self) -> u64 {
        match self.phase {
            Phase::Open => self.parts_len() + self.tail.as_ref().map_or(0, |t| t.len),
            _ => self.length.unwrap_or_else(|| self.parts_len()),
        }
    }

    /// Bytes in committed parts.
    pub fn parts_len(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// The object's metadata.
    pub fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            content_type: self.content_type.clone(),
            content_disposition: self.content_disposition.clone(),
            metadata: self.metadata.clone(),
        }
    }

    /// Whether a lease other than `holder`'s holds at `now_ms`.
    pub fn locked_for(&self, holder: &str, now_ms: u64) -> bool {
        self.lease.as_ref().is_some_and(|l| l.holder != holder && l.until_ms > now_ms)
    }

    /// The most bytes the upload may carry.
    pub fn limit(&self) -> u64 {
        self.length.unwrap_or(self.max_len)
    }
}

impl StatePart {
    pub(crate) fn from_uploaded(part: &UploadedPart) -> Self {
        Self {
            number: part.number,
            etag: part.etag.clone(),
            size: part.size,
            md5: part.md5.map(|m| m.to_hex()),
            crc: part.crc.map(|c| c.value),
        }
    }

    pub(crate) fn to_uploaded(&self, crc: Option<CrcAlgorithm>) -> UploadedPart {
        UploadedPart {
            number: self.number,
            etag: self.etag.clone(),
            size: self.size,
            crc: crc.zip(self.crc).map(|(algorithm, value)| Crc { algorithm, value }),
            md5: self.md5.as_deref().and_then(Md5::from_hex),
        }
    }
}

impl StoredObject {
    pub(crate) fn new(object: &crate::UploadedObject, sha256: Option<Sha256>) -> Self {
        Self {
            etag: object.etag.clone(),
            version_id: object.version_id.clone(),
            size: object.size,
            md5: object.md5.map(|m| m.to_hex()),
            sha256: sha256.map(|s| s.to_hex()),
            crc: object.checksum.map(|c| c.to_string()),
            part_count: object.part_count,
        }
    }
}
