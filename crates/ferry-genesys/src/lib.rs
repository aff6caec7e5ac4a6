//! Typed Genesys Cloud client for ferry.
//!
//! - [`hosts`]: the environment table (`mypurecloud.de` → `https://api.…`, `https://login.…`,
//!   `wss://webmessaging.…/v1`), every URL overridable through [`GenesysEndpoints`].
//! - [`protocol`]: the Web Messaging guest protocol as serde types: every request action
//!   ([`protocol::Request`]) and server frame class ([`protocol::Frame`]), unknown classes kept as
//!   raw JSON, the 4000–4029 error codes as [`protocol::ErrorCode`].
//! - [`limits`]: a deployment's inbound attachment limits and the pure decision whether a file
//!   (name, MIME type, size) can be a native attachment or must go as a link.
//! - [`guest`]: the guest session client over the WebSocket (rustls): validate a customer's
//!   session token, deliver a stored file as a native attachment (`onAttachment` → presigned `PUT`
//!   of a stream → `UploadSuccessEvent` → `onMessage`) or as a link, waiting out rate limits and
//!   recovering dropped sockets where that is safe.
//! - [`deployment`]: a deployment's public `config.json` (`messenger.fileUpload`), fetched from
//!   the CDN and cached, with the same native-or-link decision.
//! - [`platform`]: the platform REST client (bearer tokens from `ferry-auth`, one retry after a
//!   401, `Retry-After`, typed `ErrorBody` and `inin-ratelimit-*` headers) and Open Messaging
//!   delivery of a file by its signed download link.
//!
//! Every failure, guest or platform, is one [`Error`]: [`Error::is_retryable`],
//! [`Error::retry_after`] and [`Error::fault`] (the customer's session, the file, ferry's
//! configuration, or Genesys itself) give a caller what it needs to answer its own client. Every
//! retry loop follows a [`ferry_core::retry::Schedule`].
//!
//! Session tokens, presigned URLs and JWTs are [`SessionToken`] / [`Secret`] values whose `Debug`
//! prints `****`; nothing here logs them. A message naming an attachment is sent only after
//! Genesys confirmed that attachment's upload.
//!
//! # Example
//!
//! ```no_run
//! use ferry_genesys::guest::{Fallback, FileMeta, GuestClient, GuestConfig, UploadBody};
//! use ferry_genesys::{GenesysEndpoints, SessionToken};
//!
//! # async fn run() -> Result<(), ferry_genesys::Error> {
//! let endpoints = GenesysEndpoints::for_environment("mypurecloud.de")?;
//! let mut config = GuestConfig::for_endpoints(&endpoints);
//! config.origin = Some("https://shop.example".into());
//! let client = GuestClient::new(config)?;
//!
//! let token = SessionToken::new("the customer's session token");
//! let info = client.validate("deployment-id", &token).await?; // short connection
//! println!("limit: {} KB", info.limits.max_file_size_kb);
//!
//! let bytes = b"%PDF-1.7 ...".to_vec();
//! let file = FileMeta {
//!     file_id: "f-123".into(),
//!     file_name: "invoice.pdf".into(),
//!     mime_type: "application/pdf".into(),
//!     size: bytes.len() as u64,
//!     sha256: None,
//!     md5: None,
//!     attributes: Default::default(),
//! };
//! let mut session = client.connect("deployment-id", &token).await?;
//! let body = UploadBody::from_bytes(bytes);
//! let link = "https://files.example/f-123";
//! session.deliver(&file, body, Some(link), Some("Here is the invoice"), Fallback::Link).await?;
//! session.close();
//! # Ok(())
//! # }
//! ```

mod backoff;
pub mod deployment;
mod error;
pub mod guest;
pub mod hosts;
pub mod limits;
pub mod platform;
pub mod protocol;
mod secret;

pub use error::{BoxError, Error, Fault};
pub use hosts::GenesysEndpoints;
pub use secret::{Secret, SessionToken};
