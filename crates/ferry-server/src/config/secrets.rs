//! Secret settings: a [`Secret`] never prints its value (`Debug` says `[redacted]`, and it has no
//! `Display`), is wiped from memory when dropped (`secrecy`), and can be given inline or read from
//! a file (`secret = { file = "/run/secrets/link" }` in TOML, `FERRY_…_FILE` variables). A
//! [`KeySetting`] is a secret with a key id, for keys that rotate.

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::Path;

/// A secret value: never printed, wiped when dropped.
#[derive(Clone, Default)]
pub struct Secret(SecretString);

impl Secret {
    /// The secret's text, for the one place that uses it (an HMAC key, a credential).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.expose().as_bytes()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether it is empty (unset).
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// Reads a secret from a file (surrounding white space, such as a final newline, removed).
    ///
    /// # Errors
    /// When the file cannot be read; the message names the file, never its contents.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the secret file {}: {}", path.display(), e.kind()))?;
        Ok(Self::from(text.trim()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(SecretString::from(value))
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(SecretString::from(value))
    }
}

/// For command-line flags and variables.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(text))
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Inline, or `{ file = "…" }`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Inline(String),
            File { file: std::path::PathBuf },
        }
        match Given::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("a secret is a string or { file = \"<path>\" }"))?
        {
            Given::Inline(text) => Ok(Self::from(text)),
            Given::File { file } => Self::from_file(&file).map_err(serde::de::Error::custom),
        }
    }
}

/// Never the value: `[redacted]` (or nothing, when unset), so that no serialization of the
/// configuration (`ferry config show`) can print a secret.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.is_empty() { "" } else { "[redacted]" })
    }
}

/// A key with an id, so that links and tickets can say which key signed them and keys can rotate
/// without breaking what is live: the first key of a list signs, every key of it verifies.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeySetting {
    /// The key id (1 to 32 of `A-Z a-z 0-9 - _`), written into links (`kid=`) and tickets (`kid`).
    pub id: String,
    /// The key (at least 32 bytes), inline or `{ file = "…" }`.
    pub secret: Secret,
}

/// Whether `id` is a usable key id.
pub fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a key list: valid unique ids, secrets of at least 32 bytes.
pub(super) fn check_keys(setting: &str, keys: &[KeySetting]) -> Result<(), super::ConfigError> {
    for (i, key) in keys.iter().enumerate() {
        if !valid_key_id(&key.id) {
            return Err(super::invalid(setting, format!("key #{} has an invalid id", i + 1)));
        }
        if keys[..i].iter().any(|k| k.id == key.id) {
            return Err(super::invalid(setting, format!("key id `{}` appears twice", key.id)));
        }
        if key.secret.len() < 32 {
            return Err(super::invalid(setting, format!("key `{}` must be at least 32 bytes", key.id)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_and_come_inline_or_from_a_file() {
        let secret = Secret::from("hunter2-hunter2-hunter2-hunter2-!");
        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link");
        std::fs::write(&path, "from-a-file-0123456789abcdef0123456789\n").unwrap();
        #[derive(Deserialize)]
        struct S {
            a: Secret,
            b: Secret,
        }
        let text = format!("a = \"inline\"\nb = {{ file = {:?} }}\n", path.display().to_string());
        let s: S = toml::from_str(&text).unwrap();
        assert_eq!(s.a.expose(), "inline");
        assert_eq!(s.b.expose(), "from-a-file-0123456789abcdef0123456789");
        let missing = toml::from_str::<S>("a = \"x\"\nb = { file = \"/nonexistent/ferry\" }\n");
        assert!(missing.err().unwrap().to_string().contains("/nonexistent/ferry"));
    }

    #[test]
    fn key_ids_are_short_tokens() {
        assert!(valid_key_id("2026-11_a"));
        for bad in ["", "a b", "k/1", &"k".repeat(33)] {
            assert!(!valid_key_id(bad), "{bad:?}");
        }
    }
}
