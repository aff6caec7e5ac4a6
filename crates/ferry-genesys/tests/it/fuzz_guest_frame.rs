//! Fuzz regressions for the guest protocol's JSON parsing: every input in `fuzz/regressions/guest_frame/` (crashes the fuzzer
//! found, kept after the fix) and `fuzz/corpus/guest_frame/` (the seed corpus) is run through the fuzz
//! target's own check, `fuzz/checks/guest_frame.rs` (replayed by `ferry_testkit::fuzz`).

#[path = "../../../../fuzz/checks/guest_frame.rs"]
mod check;

#[test]
fn fuzz_guest_frame_regressions_and_seeds_hold() {
    ferry_testkit::fuzz::replay("guest_frame", check::check);
}
