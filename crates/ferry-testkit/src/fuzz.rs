//! Fuzz-corpus replay: every input in `fuzz/regressions/<target>/` (crashes the fuzzer found, kept
//! after the fix) and `fuzz/corpus/<target>/` (the seed corpus) run through the target's own check
//! (`fuzz/checks/<target>.rs`, included by the replaying test with `#[path]`), so a plain
//! `cargo test` holds every finding fixed without cargo fuzz.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The workspace's `fuzz/` folder.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Every input of `target` under `fuzz` (regressions and seed corpus), sorted by path. A missing
/// folder counts as empty.
fn inputs_in(fuzz: &Path, target: &str) -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = ["regressions", "corpus"]
        .into_iter()
        .filter_map(|folder| std::fs::read_dir(fuzz.join(folder).join(target)).ok())
        .flatten()
        .map(|entry| entry.expect("a readable fuzz folder").path())
        .filter(|path| path.is_file())
        .collect();
    inputs.sort();
    inputs
}

/// Runs `check` on every input of `target` in [`root`]; see [`replay_in`].
pub fn replay<R>(target: &str, check: impl Fn(&[u8]) -> R) -> Vec<(PathBuf, R)> {
    replay_in(&root(), target, check)
}

/// Runs `check` on every input of `target` under `fuzz` and returns each input's path with what
/// `check` answered. Panics, naming the input, when `check` panics on one, and when `target` has
/// no input at all (a moved or misspelt corpus would otherwise pass silently).
pub fn replay_in<R>(fuzz: &Path, target: &str, check: impl Fn(&[u8]) -> R) -> Vec<(PathBuf, R)> {
    let inputs = inputs_in(fuzz, target);
    assert!(!inputs.is_empty(), "the seed corpus of {target} is missing under {}", fuzz.display());
    inputs
        .into_iter()
        .map(|path| {
            let input = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            match catch_unwind(AssertUnwindSafe(|| check(&input))) {
                Ok(answer) => (path, answer),
                Err(_) => panic!("fuzz input {} fails its check", path.display()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{replay, replay_in};

    fn corpus(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, data) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("a folder")).expect("folder");
            std::fs::write(path, data).expect("input");
        }
        dir
    }

    #[test]
    fn replays_regressions_and_seeds_with_their_answers() {
        let dir = corpus(&[("corpus/t/b", b"bb"), ("corpus/t/a", b"a"), ("regressions/t/c", b"ccc")]);
        let answers = replay_in(dir.path(), "t", <[u8]>::len);
        let seen: Vec<(String, usize)> = answers
            .iter()
            .map(|(path, n)| (path.file_name().unwrap().to_string_lossy().into_owned(), *n))
            .collect();
        assert_eq!(seen, [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
    }

    #[test]
    #[should_panic(expected = "regressions/t/boom fails its check")]
    fn a_failing_input_is_named() {
        let dir = corpus(&[("corpus/t/fine", b"ok"), ("regressions/t/boom", b"boom")]);
        replay_in(dir.path(), "t", |input| assert_ne!(input, b"boom"));
    }

    #[test]
    #[should_panic(expected = "the seed corpus of t is missing")]
    fn an_empty_corpus_fails() {
        let dir = corpus(&[("corpus/other/x", b"x")]);
        replay_in(dir.path(), "t", |_| ());
    }

    #[test]
    fn the_workspace_corpus_is_found() {
        let replayed = replay("link", <[u8]>::len);
        let under = |folder: &str| {
            replayed.iter().any(|(path, _)| path.parent().is_some_and(|p| p.ends_with(folder)))
        };
        assert!(under("corpus/link") && under("regressions/link"), "{replayed:?}");
    }
}
