//! The Genesys Cloud platform REST client: bearer tokens from a [`ferry_auth::TokenSource`], one
//! retry after a 401 (the refused token is invalidated first), `Retry-After` on 429, bounded
//! jittered retries on 502/503/504 (the decisions come from [`ferry_core::retry`]), the Genesys
//! [`ErrorBody`] and `inin-ratelimit-*` headers parsed into types, and the `ININ-Correlation-Id`
//! kept in every error. Failures are the crate's one [`Error`](crate::Error) (`Auth`, `Api`,
//! `ApiTransport`, `ApiDecode`, `InvalidConfig`).
//!
//! On top of it, [`PlatformClient::send_open_message`] delivers an Open Messaging inbound message
//! (`POST /api/v2/conversations/messages/{integrationId}/inbound/open/message`) whose attachment
//! Genesys then fetches from ferry's signed download link.
//!
//! Bearer tokens and attachment URLs are never logged, and `Debug` output redacts them.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::SystemTime;
//! use ferry_auth::{AuthConfig, TokenManager, TokenSource};
//! use ferry_genesys::platform::{OpenAttachment, OpenFrom, OpenMessage, PlatformClient, PlatformConfig};
//! use ferry_genesys::{GenesysEndpoints, Secret};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoints = GenesysEndpoints::for_environment("mypurecloud.ie")?;
//! let auth = AuthConfig::with_login_url(endpoints.login.as_str(), "client-id", "client-secret");
//! let tokens: Arc<dyn TokenSource> = Arc::new(TokenManager::new(auth)?);
//! let client = PlatformClient::new(PlatformConfig::for_endpoints(&endpoints), tokens)?;
//!
//! let link = Secret::new("https://ferry.example/d/f-123?sig=...");
//! let attachment = OpenAttachment::file(link, "invoice.pdf", "application/pdf", None);
//! let message = OpenMessage::file(
//!     OpenFrom::opaque("customer-1"),
//!     "f-123",
//!     SystemTime::now(),
//!     attachment,
//!     Some("Here is the invoice".into()),
//! );
//! let receipt = client.send_open_message("integration-id", &message).await?;
//! println!("delivered as {}; {:?} calls left", receipt.body.id, receipt.rate_limit.map(|l| l.remaining()));
//! # Ok(())
//! # }
//! ```
//!
//! Split by concern: the REST client and its types (`client`), and Open Messaging (`open_messaging`);
//! everything is re-exported here.

mod client;
mod open_messaging;

pub use client::{ErrorBody, PlatformClient, PlatformConfig, PlatformResponse, RateLimit};
pub use open_messaging::{
    OpenAttachment, OpenChannel, OpenContent, OpenFrom, OpenIdType, OpenMediaType, OpenMessage,
    OpenMessageReceipt, rfc3339,
};
