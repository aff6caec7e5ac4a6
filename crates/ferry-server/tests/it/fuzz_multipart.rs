//! Fuzz regressions for the multipart/form-data upload path: every input in
//! `fuzz/regressions/multipart/` (crashes the fuzzer found, kept after the fix) and
//! `fuzz/corpus/multipart/` (the seed corpus) is run through the fuzz target's own check,
//! `fuzz/checks/multipart.rs` (replayed by `ferry_testkit::fuzz`).

#[path = "../../../../fuzz/checks/multipart.rs"]
mod check;

#[test]
fn fuzz_multipart_regressions_and_seeds_hold() {
    for (path, status) in ferry_testkit::fuzz::replay("multipart", check::check) {
        // The seeds also pin their answers, so the harness is known to reach the upload path.
        let expected = match path.file_name().and_then(|n| n.to_str()) {
            Some("file" | "caption-then-file" | "extra-field" | "empty-file") => Some(201),
            Some("two-files" | "no-file" | "unterminated") => Some(400),
            Some("exe" | "png-spoof") => Some(415),
            _ => None,
        };
        if let Some(expected) = expected {
            assert_eq!(status.as_u16(), expected, "seed {}", path.display());
        }
    }
}
