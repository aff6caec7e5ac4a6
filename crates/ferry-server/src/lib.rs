//! ferry-server: the `ferry` binary's library. It composes the crates below it into the upload
//! service: `POST /v1/uploads` streams a body through the ferry-core chunker into ferry-s3, then
//! delivers the file into the Genesys conversation with ferry-genesys.
//!
//! The router is built by [`app::app`] from an [`state::AppState`], so tests call it with `oneshot`
//! and over real sockets alike; [`serve::serve`] adds header timeouts and graceful shutdown;
//! [`cli`] reads flags, `FERRY_…` variables and the TOML file into one [`config::Config`].
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ferry_server::{app, config::Config, state::AppState};
//! let mut config = Config::default();
//! config.s3.bucket = "uploads".into();
//! config.link_secret = "a secret of at least thirty-two bytes!".into();
//! config.deployments.insert("my-deployment".into(), Default::default());
//! config.validate()?;
//! let state = AppState::new(config).await?;
//! let router = app::app(state, None);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, router).await?;
//! # Ok(()) }
//! ```

pub mod access;
pub mod admin;
pub mod admission;
pub mod agents;
pub mod app;
pub mod body;
pub mod cli;
pub mod config;
pub mod datapath;
#[cfg(feature = "dev")]
pub mod dev;
pub mod download;
pub mod error;
pub mod linger;
pub mod links;
pub mod metrics;
pub mod names;
pub mod reaper;
pub mod request_id;
pub mod scan;
pub mod serve;
pub mod sniff;
pub mod state;
pub mod tickets;
pub mod tus;
pub mod upload;
