//! Fuzz target: download-link signatures and file ids (the check is `fuzz/checks/link.rs`, shared with the regression test).
#![no_main]

#[path = "../checks/link.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
