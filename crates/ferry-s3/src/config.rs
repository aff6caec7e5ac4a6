//! Typed configuration: where S3 is, how to sign, and how uploads behave. Nothing here reads the
//! environment; the binary does that and fills these in.

use crate::error::Redacted;
use ferry_core::checksum::CrcAlgorithm;
use ferry_core::chunk::ChunkerOptions;
use ferry_core::retry::RetryPolicy;
use std::time::Duration;

/// How to reach S3 (or an S3-compatible store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Endpoint override, e.g. `http://127.0.0.1:9000`; `None` for AWS's own endpoints.
    pub endpoint: Option<String>,
    /// Region to sign for (`us-east-1` for most S3-compatible stores).
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores need.
    pub force_path_style: bool,
    /// Explicit credentials; `None` uses the standard AWS chain (environment, profile, IMDS, …).
    pub credentials: Option<StaticCredentials>,
    /// Timeout of one HTTP attempt (a 5 GiB part needs a generous one).
    pub attempt_timeout: Duration,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
}

impl Default for S3Config {
    /// AWS endpoints in `us-east-1` with the standard credential chain, 5-minute attempts.
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            force_path_style: false,
            credentials: None,
            attempt_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl S3Config {
    /// An S3-compatible store at `endpoint` with path-style addressing and fixed credentials
    /// (LocalStack, s3s-fs, MinIO…).
    pub fn compatible(endpoint: impl Into<String>, access_key_id: &str, secret_access_key: &str) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            force_path_style: true,
            credentials: Some(StaticCredentials {
                access_key_id: access_key_id.into(),
                secret_access_key: Redacted(secret_access_key.into()),
                session_token: None,
            }),
            ..Self::default()
        }
    }
}

/// Fixed credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (redacted in `Debug`).
    pub secret_access_key: Redacted,
    /// Session token for temporary credentials (redacted in `Debug`).
    pub session_token: Option<Redacted>,
}

/// Which checksums protect the data on its way to S3: the part MD5 (`Content-MD5`, checked
/// against each ETag) or a CRC per part that S3 verifies itself, and with a CRC the whole object's
/// FULL_OBJECT CRC, verified at Complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumMode {
    /// `Content-MD5` only, for stores that reject flexible checksums (Cloudflare R2, older MinIO).
    Md5,
    /// CRC-32C per part and a FULL_OBJECT CRC-32C that S3 verifies at Complete.
    Crc32c,
    /// CRC-64/NVME per part and a FULL_OBJECT CRC-64/NVME (S3's default
    /// algorithm since 2025).
    #[default]
    Crc64Nvme,
}

impl ChecksumMode {
    /// The CRC this mode sends, if any.
    pub fn crc(self) -> Option<CrcAlgorithm> {
        match self {
            Self::Md5 => None,
            Self::Crc32c => Some(CrcAlgorithm::Crc32c),
            Self::Crc64Nvme => Some(CrcAlgorithm::Crc64Nvme),
        }
    }

    /// Chunker options for [`Uploader::upload`](crate::Uploader::upload): what this mode sends
    /// (the part CRC; the part MD5 only in the `md5` mode, since S3 verifies each part by its CRC
    /// otherwise), the whole object's MD5, plus its SHA-256 when asked, all deferred: the part
    /// digests are computed on the part tasks and the whole-object ones on a thread of their own.
    /// (A caller that needs no whole-object MD5 sets `whole_md5: false` on the result.)
    pub fn chunker_options(self, sha256: bool) -> ChunkerOptions {
        ChunkerOptions { crc: self.crc(), part_md5: self == Self::Md5, whole_md5: true, sha256, defer: true }
    }

    /// The same digests computed by the chunker itself, for callers that feed
    /// [`ObjectUpload`](crate::ObjectUpload) part by part and end with `Chunker::finish`.
    pub fn inline_chunker_options(self, sha256: bool) -> ChunkerOptions {
        ChunkerOptions { defer: false, ..self.chunker_options(sha256) }
    }
}

/// How uploads behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadConfig {
    /// Checksums sent and verified.
    pub checksum_mode: ChecksumMode,
    /// Parts uploading at once per object; the producer waits when this many are in flight, so
    /// one upload holds at most `part size × (max_in_flight + 1)` bytes.
    pub max_in_flight: usize,
    /// Retries of each S3 request (and re-uploads of a part whose ETag does not match).
    pub retry: RetryPolicy,
    /// The bucket encrypts with SSE-KMS or SSE-C, so ETags are not MD5s and are not compared
    /// (Content-MD5 and the CRC still protect the data).
    pub opaque_etags: bool,
}

impl Default for UploadConfig {
    /// CRC-64/NVME, 4 parts in flight, ferry-core's default retry policy, MD5 ETags.
    fn default() -> Self {
        Self {
            checksum_mode: ChecksumMode::default(),
            max_in_flight: 4,
            retry: RetryPolicy::default(),
            opaque_etags: false,
        }
    }
}
