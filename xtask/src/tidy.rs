//! Source hygiene: every `.rs` file opens with a `//!` line saying what it is, and no placeholder
//! (the todo and unimplemented macros, tests ignored for no stated need) ships. A test may be
//! ignored only as `#[ignore = "needs LocalStack"]` (or another "needs …"): it then runs in
//! `cargo xtask ci`, which provides what it needs and passes `--include-ignored`.

use crate::project_root;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every problem found, as `path: message`.
pub(crate) fn problems() -> Result<Vec<String>> {
    let root = project_root();
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        rust_files(&root.join(dir), &mut files)?;
    }
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let shown = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
        if !text.starts_with("//!") {
            found.push(format!("{shown}: does not start with a `//!` line describing the file"));
        }
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//")) {
            if let Some(problem) = line_problem(line) {
                found.push(format!("{shown}:{}: {problem}", n + 1));
            }
        }
    }
    Ok(found)
}

/// Macros that mark unfinished code.
const PLACEHOLDERS: [&str; 2] = [concat!("todo", "!("), concat!("unimplemented", "!(")];
/// An ignored test (written in two pieces so this file does not trip its own check).
const IGNORE: &str = concat!("#[", "ignore");
/// The one accepted form of it opens with this and names a need: `… = "needs LocalStack"]`.
const IGNORE_FOR_A_NEED: &str = concat!("#[", "ignore = \"needs ");

/// What is wrong with one line of code (comments excluded), if anything.
fn line_problem(line: &str) -> Option<String> {
    if let Some(p) = PLACEHOLDERS.iter().find(|p| line.contains(*p)) {
        return Some(format!("placeholder `{p}` must not ship"));
    }
    let need = line.trim().strip_prefix(IGNORE_FOR_A_NEED).and_then(|rest| rest.strip_suffix("\"]"));
    if line.contains(IGNORE) && !need.is_some_and(|need| !need.trim().is_empty() && !need.contains('"')) {
        return Some(format!(
            "`{IGNORE}]` must name what the test needs, on its own line: `{IGNORE} = \"needs LocalStack\"]`"
        ));
    }
    None
}

pub(crate) fn run() -> Result<()> {
    let found = problems()?;
    if found.is_empty() {
        eprintln!("tidy: clean");
        return Ok(());
    }
    for line in &found {
        eprintln!("tidy: {line}");
    }
    bail!("{} tidy problem(s)", found.len())
}

#[cfg(test)]
mod tests {
    use super::line_problem;

    #[test]
    fn an_ignore_must_name_a_need() {
        assert_eq!(line_problem(concat!("    #[", "ignore = \"needs LocalStack\"]")), None);
        assert_eq!(line_problem(concat!("#[", "ignore = \"needs chromium\"]")), None);
        for bad in [
            concat!("#[", "ignore]"),
            concat!("#[", "ignore = \"flaky\"]"),
            concat!("#[", "ignore = \"needs \"]"),
            concat!("#[", "ignore = \"needs LocalStack\"] fn f() {}"),
            concat!("#[", "ignore(reason)]"),
        ] {
            assert!(line_problem(bad).is_some_and(|p| p.contains("must name what the test needs")), "{bad}");
        }
    }

    #[test]
    fn placeholders_are_found() {
        assert!(line_problem(concat!("    tod", "o!()")).is_some());
        assert!(line_problem(concat!("unimplemented", "!(\"later\")")).is_some());
        assert_eq!(line_problem("let todo = 1;"), None);
    }

    #[test]
    fn tree_is_tidy() {
        let found = super::problems().expect("source tree readable");
        assert!(found.is_empty(), "tidy problems:\n{}", found.join("\n"));
    }
}
