//! OAuth client-credentials tokens for the Genesys Cloud platform API.
//!
//! [`TokenManager`] obtains tokens from `POST {login}/oauth/token` (HTTP Basic client
//! credentials, `grant_type=client_credentials`), caches them, refreshes them ahead of expiry
//! (the decision comes from [`ferry_core::token`]), lets one caller fetch while the others wait
//! (single flight), retries 429 / 5xx / transport failures with the bounded jittered backoff of
//! [`ferry_core::retry`], backs off between failed fetches, and treats rejected credentials as a
//! configuration error that is never retried in a storm.
//!
//! Consumers hold it as `Arc<dyn TokenSource>`; after an HTTP 401 they call
//! [`TokenSource::invalidate`] with the refused token and ask again.
//!
//! The client secret and the tokens are redacted in every `Debug` output and never logged. Time is
//! read from [`tokio::time::Instant`], so tests can run on paused time.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use ferry_auth::{AuthConfig, TokenManager, TokenSource};
//!
//! # async fn demo() -> Result<(), ferry_auth::Error> {
//! let config = AuthConfig::for_environment("mypurecloud.ie", "client-id", "client-secret");
//! assert_eq!(config.token_endpoint(), "https://login.mypurecloud.ie/oauth/token");
//! let tokens: Arc<dyn TokenSource> = Arc::new(TokenManager::new(config)?);
//!
//! let token = tokens.token().await?;
//! // ... send a request with `Authorization: {token.authorization()}`; on a 401:
//! tokens.invalidate(&token);
//! let fresh = tokens.token().await?;
//! assert_ne!(fresh.generation(), token.generation());
//! # Ok(())
//! # }
//! ```

pub mod body;
mod config;
mod error;
mod fetch;
mod manager;
mod token;

pub use config::{AuthConfig, ClientSecret, login_url_for_environment};
pub use error::Error;
pub use manager::TokenManager;
pub use token::{AccessToken, TokenFuture, TokenSource};
