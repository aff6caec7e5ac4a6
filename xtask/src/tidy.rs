//! Source hygiene: every `.rs` file opens with a `//!` line saying what it is, and no placeholder
//! (the todo and unimplemented macros, ignored tests) ships.

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
    let placeholders = [concat!("todo", "!("), concat!("unimplemented", "!("), concat!("#[", "ignore")];
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let shown = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
        if !text.starts_with("//!") {
            found.push(format!("{shown}: does not start with a `//!` line describing the file"));
        }
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim_start().starts_with("//")) {
            if let Some(p) = placeholders.iter().find(|p| line.contains(*p)) {
                found.push(format!("{shown}:{}: placeholder `{p}` must not ship", n + 1));
            }
        }
    }
    Ok(found)
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
    #[test]
    fn tree_is_tidy() {
        let found = super::problems().expect("source tree readable");
        assert!(found.is_empty(), "tidy problems:\n{}", found.join("\n"));
    }
}
