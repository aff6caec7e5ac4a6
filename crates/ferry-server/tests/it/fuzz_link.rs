//! Fuzz regressions for download-link signatures and file ids: every input in `fuzz/regressions/link/` (crashes the fuzzer
//! found, kept after the fix) and `fuzz/corpus/link/` (the seed corpus) is run through the fuzz
//! target's own check, `fuzz/checks/link.rs` (replayed by `ferry_testkit::fuzz`).

#[path = "../../../../fuzz/checks/link.rs"]
mod check;

#[test]
fn fuzz_link_regressions_and_seeds_hold() {
    ferry_testkit::fuzz::replay("link", check::check);
}
