//! Layering assertions: dependencies point down only.
//!
//! `ferry-server → ferry-genesys / ferry-s3 → ferry-auth → ferry-core`, with `ferry-sandbox` beside
//! them as an independent emulator. Proven with `cargo tree` on each crate's normal dependencies.

use crate::{cargo, output_of, project_root};
use anyhow::{Result, bail};
use std::collections::BTreeSet;

/// One rule: `krate`'s normal dependency tree contains none of `forbidden` (a trailing `*` matches
/// a prefix).
pub(crate) struct Rule {
    pub(crate) krate: &'static str,
    pub(crate) forbidden: &'static [&'static str],
    pub(crate) why: &'static str,
}

/// The AWS SDK's crates (not `aws-lc-rs`, rustls's crypto provider, which any TLS client may use).
const AWS_SDK: [&str; 4] = ["aws-sdk-*", "aws-config", "aws-smithy-*", "aws-sigv4"];

pub(crate) const RULES: &[Rule] = &[
    Rule {
        krate: "ferry-core",
        forbidden: &[
            "tokio",
            "tokio-*",
            "futures*",
            "async-*",
            "mio",
            "hyper",
            "hyper-*",
            "h2",
            "reqwest",
            "aws-*",
            "axum",
            "axum-*",
            "tower",
            "rustls",
            "tungstenite",
            "tokio-tungstenite",
            "socket2",
            "ferry-*",
        ],
        why: "ferry-core is sans-IO: no async runtime, no network, no other ferry crate",
    },
    Rule {
        krate: "ferry-auth",
        forbidden: &[
            "ferry-genesys",
            "ferry-s3",
            "ferry-server",
            "ferry-sandbox",
            AWS_SDK[0],
            AWS_SDK[1],
            AWS_SDK[2],
            AWS_SDK[3],
            "axum",
        ],
        why: "ferry-auth sits just above ferry-core",
    },
    Rule {
        krate: "ferry-s3",
        forbidden: &[
            "ferry-auth",
            "ferry-genesys",
            "ferry-server",
            "ferry-sandbox",
            "axum",
            "tokio-tungstenite",
        ],
        why: "ferry-s3 knows S3 only",
    },
    Rule {
        krate: "ferry-genesys",
        forbidden: &[
            "ferry-s3",
            "ferry-server",
            "ferry-sandbox",
            AWS_SDK[0],
            AWS_SDK[1],
            AWS_SDK[2],
            AWS_SDK[3],
        ],
        why: "ferry-genesys knows Genesys only",
    },
    Rule {
        krate: "ferry-sandbox",
        forbidden: &["ferry-auth", "ferry-genesys", "ferry-s3", "ferry-server"],
        why: "the emulators are independent of the clients they test, so a client bug is not mirrored",
    },
];

/// The workspace's member package names.
pub(crate) fn members() -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(project_root().join("crates"))? {
        let path = entry?.path();
        if path.join("Cargo.toml").exists() {
            names.insert(path.file_name().unwrap_or_default().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

fn normal_deps(krate: &str) -> Result<BTreeSet<String>> {
    let text = output_of(cargo().args([
        "tree",
        "--quiet",
        "--package",
        krate,
        "--edges",
        "normal,build",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != krate)
        .map(str::to_owned)
        .collect())
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// Every broken rule, as a message.
pub(crate) fn violations() -> Result<Vec<String>> {
    let members = members()?;
    let mut found = Vec::new();
    for rule in RULES.iter().filter(|r| members.contains(r.krate)) {
        for dep in normal_deps(rule.krate)? {
            if let Some(pattern) = rule.forbidden.iter().find(|p| matches(p, &dep)) {
                found.push(format!(
                    "{} depends on {dep} (forbidden by `{pattern}`: {})",
                    rule.krate, rule.why
                ));
            }
        }
    }
    // Nothing depends on the server.
    for member in members.iter().filter(|m| *m != "ferry-server") {
        if normal_deps(member)?.contains("ferry-server") {
            found.push(format!("{member} depends on ferry-server: nothing may depend on the binary crate"));
        }
    }
    Ok(found)
}

pub(crate) fn run() -> Result<()> {
    let found = violations()?;
    if found.is_empty() {
        eprintln!("deps: layering holds for {} crates", members()?.len());
        return Ok(());
    }
    for line in &found {
        eprintln!("deps: {line}");
    }
    bail!("{} layering violation(s)", found.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("aws-*", "aws-sdk-s3"));
        assert!(matches("tokio", "tokio"));
        assert!(!matches("tokio", "tokio-util"));
        assert!(!matches("ferry-s3", "ferry-s3x"));
    }

    #[test]
    fn layering_holds() {
        let found = violations().expect("cargo tree runs");
        assert!(found.is_empty(), "layering violations:\n{}", found.join("\n"));
    }
}
