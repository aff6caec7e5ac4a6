//! `ferry config show`: the effective configuration as a TOML document, or one line per setting
//! with where its value came from. Both go through `Serialize`, where a [`super::Secret`] is
//! `[redacted]`, so neither can print a secret.

use super::{Config, ConfigError, Loaded, invalid};
use std::fmt::Write as _;

/// The configuration as TOML (what a file with every setting spelled out would say).
///
/// # Errors
/// When a value has no TOML form (an integer above `i64::MAX`).
pub fn show_toml(config: &Config) -> Result<String, ConfigError> {
    toml::to_string(config).map_err(|e| invalid("(configuration)", e.to_string()))
}

/// One line per setting, `path = value  # source`, where the source is a variable's name, a
/// flag, `file <path>` or `default`.
///
/// # Errors
/// As [`show_toml`].
pub fn show_sources(loaded: &Loaded) -> Result<String, ConfigError> {
    let value =
        toml::Value::try_from(&loaded.config).map_err(|e| invalid("(configuration)", e.to_string()))?;
    let mut out = String::new();
    let mut path = Vec::new();
    lines(&value, &mut path, loaded, &mut out);
    Ok(out)
}

fn lines<'a>(value: &'a toml::Value, path: &mut Vec<&'a str>, loaded: &Loaded, out: &mut String) {
    match value {
        toml::Value::Table(table) if !table.is_empty() => {
            for (key, child) in table {
                path.push(key);
                lines(child, path, loaded, out);
                path.pop();
            }
        }
        leaf => {
            let key: Vec<String> = path.iter().map(|k| bare_or_quoted(k)).collect();
            let _ = writeln!(out, "{} = {leaf}  # {}", key.join("."), loaded.source_of(path));
        }
    }
}

/// A TOML key: bare when it can be (`dep-1`), quoted otherwise (`"a.b"`).
fn bare_or_quoted(key: &str) -> String {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}
