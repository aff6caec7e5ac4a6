//! Where the real tus clients are for the tests that drive them: tuspy in a Python venv and
//! tus-js-client in a `node_modules` folder, both pinned and installed by `cargo xtask tus install`
//! (and by `cargo xtask ci` / `cargo xtask e2e`, which set [`TUSPY_ENV`] and [`TUS_JS_ENV`]). Such
//! tests are `#[ignore = "needs … tuspy, node"]`; run without the clients, they fail at once,
//! saying how to install them.

use std::path::PathBuf;

/// The python whose environment has tuspy (`.tus/venv/bin/python`).
pub const TUSPY_ENV: &str = "FERRY_TEST_TUSPY";
/// The folder whose `node_modules` holds tus-js-client (`xtask/tus`).
pub const TUS_JS_ENV: &str = "FERRY_TEST_TUS_JS";

const HOW: &str = "run `cargo xtask tus install`, or the tests through `cargo xtask e2e` / `cargo xtask ci`";

/// The python with tuspy; panics, saying how to install it, when it is missing.
pub fn tuspy_python() -> PathBuf {
    let python = std::env::var_os(TUSPY_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{TUSPY_ENV} is not set: {HOW}"));
    assert!(python.is_file(), "{TUSPY_ENV}={} is not a file: {HOW}", python.display());
    python
}

/// The folder with tus-js-client in its `node_modules`; panics, saying how to install it, when it
/// is missing.
pub fn tus_js_dir() -> PathBuf {
    let dir = std::env::var_os(TUS_JS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{TUS_JS_ENV} is not set: {HOW}"));
    let package = dir.join("node_modules/tus-js-client/package.json");
    assert!(package.is_file(), "no tus-js-client at {}: {HOW}", package.display());
    dir
}
