//! Fuzz regressions for the multipart/form-data upload path: every input in `fuzz/regressions/multipart/` (crashes the
//! fuzzer found, kept after the fix) and `fuzz/corpus/multipart/` (the seed corpus) is run through
//! the fuzz target's own check, `fuzz/checks/multipart.rs`.

#[path = "../../../../fuzz/checks/multipart.rs"]
mod check;

#[test]
fn fuzz_multipart_regressions_and_seeds_hold() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for folder in ["regressions", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join("multipart")) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    assert!(!inputs.is_empty(), "the seed corpus of multipart is missing");
    for path in inputs {
        let input = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check::check(&input));
        let Ok(status) = outcome else { panic!("fuzz input {} fails its check", path.display()) };
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
