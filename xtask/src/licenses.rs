//! `cargo xtask licenses`: every dependency's license must be one ferry may ship with.
//!
//! This is the license half of what `cargo deny` does, from `cargo metadata` alone, so it needs no
//! download. The advisory half needs the RustSec advisory database, which this workplace cannot
//! fetch (only package registries are reachable); see `docs/architecture.md`.

use crate::{cargo, output_of};
use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// Licenses (SPDX ids) ferry accepts in its dependency tree.
const ALLOWED: &[&str] = &[
    "MIT",
    "MIT-0",
    "Apache-2.0",
    "Apache-2.0 WITH LLVM-exception",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "0BSD",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "CC0-1.0",
    "BSL-1.0",
    "MPL-2.0",
    "Unlicense",
    "OpenSSL",
    "CDLA-Permissive-2.0",
];

/// Whether an SPDX expression is satisfied by [`ALLOWED`] (`OR` takes any side, `AND` needs both).
fn satisfied(expression: &str) -> Option<bool> {
    let spaced = expression.replace('(', " ( ").replace(')', " ) ").replace('/', " OR ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut at = 0;
    let result = or_expr(&tokens, &mut at)?;
    (at == tokens.len()).then_some(result)
}

fn or_expr(t: &[&str], at: &mut usize) -> Option<bool> {
    let mut value = and_expr(t, at)?;
    while t.get(*at) == Some(&"OR") {
        *at += 1;
        value |= and_expr(t, at)?;
    }
    Some(value)
}

fn and_expr(t: &[&str], at: &mut usize) -> Option<bool> {
    let mut value = atom(t, at)?;
    while t.get(*at) == Some(&"AND") {
        *at += 1;
        value &= atom(t, at)?;
    }
    Some(value)
}

fn atom(t: &[&str], at: &mut usize) -> Option<bool> {
    let token = *t.get(*at)?;
    *at += 1;
    if token == "(" {
        let value = or_expr(t, at)?;
        (t.get(*at) == Some(&")")).then(|| *at += 1)?;
        return Some(value);
    }
    let mut id = token.to_owned();
    if t.get(*at) == Some(&"WITH") {
        id = format!("{id} WITH {}", t.get(*at + 1)?);
        *at += 2;
    }
    Some(ALLOWED.contains(&id.as_str()) || ALLOWED.contains(&token))
}

/// Every package whose license is missing or not allowed, as `name version: license`.
pub(crate) fn problems() -> Result<Vec<String>> {
    let text = output_of(cargo().args(["metadata", "--format-version", "1", "--locked"]))?;
    let metadata: Value = serde_json::from_str(&text).context("parsing cargo metadata")?;
    let mut found = Vec::new();
    for package in metadata["packages"].as_array().context("no packages in cargo metadata")? {
        let name = package["name"].as_str().unwrap_or("?");
        let version = package["version"].as_str().unwrap_or("?");
        if package["source"].is_null() {
            continue; // the workspace's own crates
        }
        match package["license"].as_str() {
            Some(license) if satisfied(license) == Some(true) => {}
            Some(license) => found.push(format!("{name} {version}: `{license}` is not on the allowed list")),
            None => found.push(format!("{name} {version}: no SPDX license expression")),
        }
    }
    Ok(found)
}

pub(crate) fn run() -> Result<()> {
    let found = problems()?;
    if found.is_empty() {
        eprintln!("licenses: every dependency is under an allowed license");
        return Ok(());
    }
    for line in &found {
        eprintln!("licenses: {line}");
    }
    bail!("{} dependency license problem(s)", found.len())
}

#[cfg(test)]
mod tests {
    use super::satisfied;

    #[test]
    fn spdx_expressions() {
        assert_eq!(satisfied("MIT"), Some(true));
        assert_eq!(satisfied("MIT OR Apache-2.0"), Some(true));
        assert_eq!(satisfied("MIT/Apache-2.0"), Some(true));
        assert_eq!(satisfied("GPL-3.0"), Some(false));
        assert_eq!(satisfied("GPL-3.0 OR MIT"), Some(true));
        assert_eq!(satisfied("GPL-3.0 AND MIT"), Some(false));
        assert_eq!(satisfied("(MIT OR Apache-2.0) AND Unicode-3.0"), Some(true));
        assert_eq!(satisfied("Apache-2.0 WITH LLVM-exception OR MIT"), Some(true));
        assert_eq!(satisfied("(MIT"), None);
    }

    #[test]
    fn dependency_licenses_are_allowed() {
        let found = super::problems().expect("cargo metadata runs");
        assert!(found.is_empty(), "license problems:\n{}", found.join("\n"));
    }
}
