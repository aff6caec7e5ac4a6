//! Layering assertions: dependencies point down only.
//!
//! `ferry-server → ferry-genesys / ferry-s3 → ferry-auth → ferry-core`, with `ferry-sandbox` beside
//! them as an independent emulator. Proven with `cargo tree` on each crate's normal dependencies.
//! Also: nothing depends on `ferry-server`; only dev-dependencies point at `ferry-testkit`; and the
//! production build of the binary (`--no-default-features`, without `ferry dev`) links no sandbox
//! crate.

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
    Rule {
        krate: "ferry-server",
        forbidden: &["ring", "p256"],
        why: "one TLS/crypto provider (aws-lc-rs) for reqwest, the WebSocket client and the AWS SDK, \
              and no SigV4a (docs/deploy.md, \"S3 credentials\"): each would only add to the build",
    },
];

/// Crates only tests may use: a normal or build dependency on one is a violation.
const DEV_ONLY: &[&str] = &["ferry-testkit"];

/// The stand-ins behind ferry-server's `dev` feature: none may reach the production binary.
const SANDBOX: &[&str] = &["ferry-sandbox", "s3s", "s3s-*"];

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
    tree(krate, "normal,build", &[])
}

/// What `ferry` links when built for production: `cargo tree -p ferry-server --no-default-features
/// -e normal`.
fn production_deps() -> Result<BTreeSet<String>> {
    tree("ferry-server", "normal", &["--no-default-features"])
}

/// The package names in `krate`'s dependency tree along `edges`, without `krate` itself.
fn tree(krate: &str, edges: &str, extra: &[&str]) -> Result<BTreeSet<String>> {
    let text = output_of(
        cargo()
            .args([
                "tree",
                "--quiet",
                "--package",
                krate,
                "--edges",
                edges,
                "--prefix",
                "none",
                "--format",
                "{p}",
            ])
            .args(extra),
    )?;
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

/// The entries of `deps` that match a pattern of `forbidden`, each with the pattern it matched.
fn forbidden_in<'a>(deps: &BTreeSet<String>, forbidden: &[&'a str]) -> Vec<(String, &'a str)> {
    deps.iter()
        .filter_map(|dep| forbidden.iter().find(|p| matches(p, dep)).map(|p| (dep.clone(), *p)))
        .collect()
}

/// Every broken rule, as a message.
pub(crate) fn violations() -> Result<Vec<String>> {
    let members = members()?;
    let mut found = Vec::new();
    for rule in RULES.iter().filter(|r| members.contains(r.krate)) {
        for (dep, pattern) in forbidden_in(&normal_deps(rule.krate)?, rule.forbidden) {
            found.push(format!("{} depends on {dep} (forbidden by `{pattern}`: {})", rule.krate, rule.why));
        }
    }
    // Nothing depends on the server; only dev-dependencies point at the test tooling.
    for member in &members {
        let deps = normal_deps(member)?;
        if member != "ferry-server" && deps.contains("ferry-server") {
            found.push(format!("{member} depends on ferry-server: nothing may depend on the binary crate"));
        }
        for (dep, _) in forbidden_in(&deps, DEV_ONLY) {
            found.push(format!("{member} depends on {dep}: test tooling may only be a dev-dependency"));
        }
    }
    // The production binary carries no stand-in.
    if members.contains("ferry-server") {
        for (dep, pattern) in forbidden_in(&production_deps()?, SANDBOX) {
            found.push(format!(
                "the production build (ferry-server --no-default-features) links {dep} (forbidden by \
                 `{pattern}`: the sandbox belongs behind the `dev` feature)"
            ));
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
    fn forbidden_names_are_found() {
        let deps: BTreeSet<String> = ["tokio", "s3s-fs", "ferry-core", "s3s"].map(String::from).into();
        assert_eq!(
            forbidden_in(&deps, SANDBOX),
            vec![("s3s".to_owned(), "s3s"), ("s3s-fs".to_owned(), "s3s-*")]
        );
        assert!(forbidden_in(&deps, DEV_ONLY).is_empty());
        let deps: BTreeSet<String> = ["ferry-testkit".to_owned()].into();
        assert_eq!(forbidden_in(&deps, DEV_ONLY), vec![("ferry-testkit".to_owned(), "ferry-testkit")]);
    }

    #[test]
    fn layering_holds() {
        let found = violations().expect("cargo tree runs");
        assert!(found.is_empty(), "layering violations:\n{}", found.join("\n"));
    }
}
