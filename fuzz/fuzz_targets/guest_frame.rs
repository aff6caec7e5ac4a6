//! Fuzz target: the guest protocol's JSON frames (the check is `fuzz/checks/guest_frame.rs`, shared with the regression test).
#![no_main]

#[path = "../checks/guest_frame.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
