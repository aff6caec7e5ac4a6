//! The real tus clients the end-to-end tests drive: tuspy (PyPI) and tus-js-client under Node
//! (npm), both pinned and installed into git-ignored folders of the repository the way
//! [`crate::localstack`] installs LocalStack.
//!
//! - tuspy goes into `.tus/venv` (a Python venv; the versions of tuspy and of everything it pulls
//!   in are pinned in [`PYTHON_PACKAGES`]); the tests find that venv's python in
//!   [`TUSPY_ENV`].
//! - tus-js-client comes from `xtask/tus/package-lock.json` (`npm ci` into `xtask/tus/node_modules`);
//!   the tests find that folder in [`TUS_JS_ENV`]. The demo page serves the same package's browser
//!   build (vendored as `crates/ferry-server/assets/tus.min.js`, checked against this install by
//!   [`check_vendored`]).
//!
//! `cargo xtask ci` and `cargo xtask e2e` call [`install`] and pass [`TusClients::env`] to the tests.

use crate::{project_root, run_checked};
use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The python (with tuspy) the tests run their tuspy driver with.
pub(crate) const TUSPY_ENV: &str = "FERRY_TEST_TUSPY";
/// The folder whose `node_modules` holds tus-js-client (and the Node driver beside it).
pub(crate) const TUS_JS_ENV: &str = "FERRY_TEST_TUS_JS";

/// tuspy and everything it installs, pinned.
const PYTHON_PACKAGES: &[&str] = &[
    "tuspy==1.1.0",
    "requests==2.34.2",
    "tinydb==4.9.0",
    "aiohttp==3.14.5",
    "aiohappyeyeballs==2.7.1",
    "aiosignal==1.4.0",
    "attrs==26.1.0",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "frozenlist==1.8.0",
    "idna==3.20",
    "multidict==7.2.1",
    "propcache==0.5.4",
    "typing_extensions==4.16.0",
    "urllib3==2.8.0",
    "yarl==1.25.1",
];

/// Where the installed clients are.
pub(crate) struct TusClients {
    /// `.tus/venv/bin/python`.
    pub(crate) python: PathBuf,
    /// `xtask/tus` (its `node_modules` holds tus-js-client).
    pub(crate) js: PathBuf,
}

impl TusClients {
    /// The variables the tests read.
    pub(crate) fn env(&self) -> [(&'static str, &Path); 2] {
        [(TUSPY_ENV, self.python.as_path()), (TUS_JS_ENV, self.js.as_path())]
    }
}

/// Installs both clients unless they are there already.
pub(crate) fn install() -> Result<TusClients> {
    let clients = TusClients { python: install_tuspy()?, js: install_tus_js()? };
    check_vendored(&clients.js)?;
    Ok(clients)
}

fn install_tuspy() -> Result<PathBuf> {
    let venv = project_root().join(".tus/venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".ferry-installed");
    let wanted = PYTHON_PACKAGES.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == wanted) {
        return Ok(python);
    }
    let host_python = ["python3.11", "python3"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
        .context("tuspy needs python3")?;
    run_checked(Command::new(host_python).args(["-m", "venv"]).arg(&venv))?;
    run_checked(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(PYTHON_PACKAGES),
    )?;
    std::fs::write(&marker, wanted)?;
    Ok(python)
}

fn install_tus_js() -> Result<PathBuf> {
    let dir = project_root().join("xtask/tus");
    if Command::new("npm").arg("--version").output().is_err() {
        bail!("`npm` is needed to install tus-js-client and was not found");
    }
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(dir.join("node_modules/.package-lock.json"));
    let locked = modified(dir.join("package-lock.json"));
    let present = dir.join("node_modules/tus-js-client/package.json").is_file();
    let fresh = matches!((installed, locked), (Some(i), Some(l)) if i >= l);
    if !(present && fresh) {
        run_checked(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir))?;
    }
    Ok(dir)
}

/// The demo page's vendored `tus.min.js` must be the installed package's own build.
fn check_vendored(js: &Path) -> Result<()> {
    let installed = js.join("node_modules/tus-js-client/dist/tus.min.js");
    let vendored = project_root().join("crates/ferry-server/assets/tus.min.js");
    let same = std::fs::read(&installed)? == std::fs::read(&vendored)?;
    if !same {
        bail!(
            "{} differs from {}: copy the pinned tus-js-client's build over it",
            vendored.display(),
            installed.display()
        );
    }
    Ok(())
}
