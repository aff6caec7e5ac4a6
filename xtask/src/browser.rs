//! `cargo xtask browser`: the `ferry dev` demo page in a real headless Chromium. Installs the
//! pinned browser-automation package (`playwright-core`, from `xtask/browser/package-lock.json`)
//! when needed, builds `ferry`, and runs `xtask/browser/demo.test.mjs`, which starts `ferry dev`,
//! uploads a file through the page and checks what the page shows, `resume.test.mjs`, which
//! reloads the page mid-upload and checks that the tus upload continues where it stopped, and
//! `agents.test.mjs`, which opens agents links through the emulated Genesys sign-in (issue 15).
//! Needs Node and Debian's
//! `chromium` (`apt-get install -y chromium`); `FERRY_CHROMIUM` names another Chromium binary.

use crate::{cargo, project_root, run_checked};
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

pub(crate) fn run() -> Result<()> {
    run_with(true)
}

/// The browser test; `build: false` uses the `ferry` binary already in `target/debug` (after
/// `cargo test --workspace`, which builds it for the e2e suite, a second build would only redo the
/// work with other feature choices).
pub(crate) fn run_with(build: bool) -> Result<()> {
    let started = Instant::now();
    let root = project_root();
    let dir = root.join("xtask").join("browser");
    let chromium =
        std::env::var_os("FERRY_CHROMIUM").map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from);
    if !chromium.is_file() {
        bail!(
            "no Chromium at {} (install Debian's with `apt-get install -y chromium`, or set FERRY_CHROMIUM)",
            chromium.display()
        );
    }
    for tool in ["node", "npm"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("`{tool}` is needed for the browser test and was not found");
        }
    }
    if needs_install(&dir) {
        run_checked(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir))?;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let ferry = target.join("debug").join(format!("ferry{}", std::env::consts::EXE_SUFFIX));
    if build || !ferry.is_file() {
        run_checked(cargo().args(["build", "-p", "ferry-server", "--bin", "ferry"]))?;
    }
    for test in ["demo.test.mjs", "resume.test.mjs", "agents.test.mjs"] {
        run_checked(
            Command::new("node")
                .arg(test)
                .current_dir(&dir)
                .env("FERRY_BIN", &ferry)
                .env("FERRY_CHROMIUM", &chromium),
        )?;
    }
    eprintln!("browser test passed in {:.1?}", started.elapsed());
    Ok(())
}

/// Whether `node_modules` is missing or older than the lock file.
fn needs_install(dir: &Path) -> bool {
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(dir.join("node_modules").join(".package-lock.json"));
    let locked = modified(dir.join("package-lock.json"));
    let has_package = dir.join("node_modules").join("playwright-core").join("package.json").is_file();
    match (installed, locked) {
        (Some(installed), Some(locked)) => !has_package || installed < locked,
        _ => true,
    }
}
