//! Fuzz target: the multipart/form-data upload path (the check is `fuzz/checks/multipart.rs`, shared with the regression test).
#![no_main]

#[path = "../checks/multipart.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    check::check(data);
});
