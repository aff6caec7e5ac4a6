//! Fuzz regressions for the guest protocol's JSON parsing: every input in `fuzz/regressions/guest_frame/` (crashes the
//! fuzzer found, kept after the fix) and `fuzz/corpus/guest_frame/` (the seed corpus) is run through
//! the fuzz target's own check, `fuzz/checks/guest_frame.rs`.

#[path = "../../../../fuzz/checks/guest_frame.rs"]
mod check;

#[test]
fn fuzz_guest_frame_regressions_and_seeds_hold() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for folder in ["regressions", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join("guest_frame")) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    assert!(!inputs.is_empty(), "the seed corpus of guest_frame is missing");
    for path in inputs {
        let input = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check::check(&input));
        assert!(outcome.is_ok(), "fuzz input {} fails its check", path.display());
    }
}
