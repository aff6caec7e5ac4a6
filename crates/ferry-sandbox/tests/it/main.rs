//! Integration tests of the sandbox servers.

mod genesys;
mod platform;
