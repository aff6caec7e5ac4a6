//! Integration tests of the sandbox servers.

mod agents;
mod genesys;
mod genesys_fixtures;
mod platform;
mod ws;
