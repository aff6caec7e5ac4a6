//! Fuzz regressions for download-link signatures and file ids: every input in `fuzz/regressions/link/` (crashes the
//! fuzzer found, kept after the fix) and `fuzz/corpus/link/` (the seed corpus) is run through
//! the fuzz target's own check, `fuzz/checks/link.rs`.

#[path = "../../../../fuzz/checks/link.rs"]
mod check;

#[test]
fn fuzz_link_regressions_and_seeds_hold() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for folder in ["regressions", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join("link")) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    assert!(!inputs.is_empty(), "the seed corpus of link is missing");
    for path in inputs {
        let input = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check::check(&input));
        assert!(outcome.is_ok(), "fuzz input {} fails its check", path.display());
    }
}
