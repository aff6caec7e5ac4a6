//! The sans-IO core of ferry: everything about an upload that can be decided from bytes, lengths,
//! a clock reading handed in, and randomness handed in.
//!
//! - [`plan`]: choose a fixed part size and count inside S3's multipart limits.
//! - [`chunk`]: cut a stream of [`bytes::Bytes`] frames into parts without copying them, hashing each
//!   part (MD5 and a CRC, as asked) and the whole object (MD5, optionally SHA-256, the combined CRC),
//!   or leaving the hashing to the caller so it can run next to the network.
//! - [`checksum`]: digest types and their encodings (base64 for headers, hex for ETags).
//! - [`s3`]: S3's multipart arithmetic: multipart ETags, COMPOSITE and FULL_OBJECT checksums, and
//!   comparisons of what a server returned with what was computed.
//! - [`retry`]: a pure retry classifier and a jittered, bounded backoff schedule.
//! - [`token`]: whether a bearer token is still fresh.
//!
//! Nothing here performs I/O, reads a clock or the environment, or spawns anything; the async crates
//! drive these types. That keeps every decision deterministic and testable.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use ferry_core::chunk::{Chunker, ChunkerOptions};
//! use ferry_core::checksum::CrcAlgorithm;
//! use ferry_core::plan::{plan_parts, PlanLimits, MIB};
//!
//! let data = vec![7u8; 12 * MIB as usize];
//! let plan = plan_parts(Some(data.len() as u64), &PlanLimits::default()).unwrap();
//! assert_eq!(plan.part_size, 8 * MIB);
//!
//! let options = ChunkerOptions {
//!     crc: Some(CrcAlgorithm::Crc64Nvme),
//!     part_md5: true,
//!     whole_md5: true,
//!     sha256: true,
//!     defer: false,
//! };
//! let mut chunker = Chunker::new(plan, options);
//! let mut parts = Vec::new();
//! for frame in data.chunks(64 * 1024) {
//!     parts.extend(chunker.push(Bytes::copy_from_slice(frame)).unwrap());
//! }
//! let (last, summary) = chunker.finish().unwrap();
//! parts.extend(last);
//!
//! assert_eq!(parts.len(), 2);
//! assert_eq!(summary.len, data.len() as u64);
//! // The ETag S3 gives the completed multipart object, computed before any byte was sent.
//! assert!(summary.multipart_etag().unwrap().ends_with("-2"));
//! ```

pub mod checksum;
pub mod chunk;
pub mod plan;
pub mod retry;
pub mod s3;
pub mod token;
