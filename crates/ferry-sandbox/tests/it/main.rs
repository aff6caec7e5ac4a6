//! Integration tests of the sandbox servers.

mod platform;
