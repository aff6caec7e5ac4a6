//! Fuzz regressions for the chunker and part planning: every input in `fuzz/regressions/chunker/` (crashes the fuzzer
//! found, kept after the fix) and `fuzz/corpus/chunker/` (the seed corpus) is run through the fuzz
//! target's own check, `fuzz/checks/chunker.rs` (replayed by `ferry_testkit::fuzz`).

#[path = "../../../../fuzz/checks/chunker.rs"]
mod check;

#[test]
fn fuzz_chunker_regressions_and_seeds_hold() {
    ferry_testkit::fuzz::replay("chunker", check::check);
}
