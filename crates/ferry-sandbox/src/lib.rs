//! Local stand-ins for the services ferry talks to, for tests and `ferry dev`: real servers on
//! loopback that behave like the real ones, with knobs to inject faults and an API to inspect what
//! arrived.
//!
//! - `genesys`: the Genesys Cloud Web Messaging emulator (guest WebSocket, presigned uploads).
//! - `platform`: the Genesys login (`/oauth/token`) and platform REST emulator (Open Messaging).
//! - `s3`: an in-process S3 server (s3s-fs over a local folder) for fast tests and `ferry dev`.
//! - `s3_faults`: an HTTP proxy in front of a real S3 server that injects faults by rule.

pub mod genesys;
pub mod platform;
pub mod s3;
pub mod s3_faults;
