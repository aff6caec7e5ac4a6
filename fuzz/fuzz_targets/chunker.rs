//! Fuzz target: the chunker and part planning (the check is `fuzz/checks/chunker.rs`, shared with the regression test).
#![no_main]

#[path = "../checks/chunker.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
