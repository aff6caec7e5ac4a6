//! What goes with an object and what comes back: [`ObjectMeta`] and [`UploadedObject`], and the small
//! builders that put metadata and checksums on the SDK's request builders.

use aws_sdk_s3::types::ChecksumAlgorithm;
use ferry_core::checksum::{Crc, CrcAlgorithm, Md5};
use std::collections::BTreeMap;

/// Metadata stored with the object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: BTreeMap<String, String>,
}

/// A stored object, verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedObject {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version id, when the bucket is versioned.
    pub version_id: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// The ETag S3 reported (unquoted); equal to the computed one unless ETags are opaque.
    pub etag: String,
    /// MD5 of the whole object, when the chunker computed it ([`ChunkerOptions::whole_md5`]).
    ///
    /// [`ChunkerOptions::whole_md5`]: ferry_core::chunk::ChunkerOptions::whole_md5
    pub md5: Option<Md5>,
    /// The whole object's CRC (S3's FULL_OBJECT checksum), when the mode sends one.
    pub checksum: Option<Crc>,
    /// Parts it was uploaded in (1 for a single PUT).
    pub part_count: u32,
}

/// Applies content type, disposition and user metadata to any request builder that takes them
/// (PutObject and CreateMultipartUpload).
pub(super) fn apply_meta<B>(
    mut req: B,
    meta: &ObjectMeta,
    content_type: impl Fn(B, &str) -> B,
    disposition: impl Fn(B, &str) -> B,
    user: impl Fn(B, &str, &str) -> B,
) -> B {
    if let Some(v) = &meta.content_type {
        req = content_type(req, v);
    }
    if let Some(v) = &meta.content_disposition {
        req = disposition(req, v);
    }
    for (k, v) in &meta.metadata {
        req = user(req, k, v);
    }
    req
}

/// Puts `crc` (if any) on a request builder as the header of its algorithm (PutObject, UploadPart,
/// CompleteMultipartUpload).
pub(super) fn apply_crc<B>(
    req: B,
    crc: Option<Crc>,
    crc32c: impl FnOnce(B, String) -> B,
    crc64: impl FnOnce(B, String) -> B,
) -> B {
    match crc {
        Some(c) if c.algorithm == CrcAlgorithm::Crc32c => crc32c(req, c.to_base64()),
        Some(c) => crc64(req, c.to_base64()),
        None => req,
    }
}

/// The SDK's name of a CRC algorithm.
pub(super) fn sdk_algorithm(alg: CrcAlgorithm) -> ChecksumAlgorithm {
    match alg {
        CrcAlgorithm::Crc32c => ChecksumAlgorithm::Crc32C,
        CrcAlgorithm::Crc64Nvme => ChecksumAlgorithm::Crc64Nvme,
    }
}

/// The checksum of algorithm `alg` among those S3 returned.
pub(super) fn returned_checksum<'a>(
    alg: CrcAlgorithm,
    crc32c: Option<&'a str>,
    crc64: Option<&'a str>,
) -> Option<&'a str> {
    match alg {
        CrcAlgorithm::Crc32c => crc32c,
        CrcAlgorithm::Crc64Nvme => crc64,
    }
}
