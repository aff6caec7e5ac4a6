//! Integration tests of ferry-auth: exact HTTP edge cases against wiremock, flows against the
//! ferry-sandbox login emulator.

mod edge_cases;
mod flows;
