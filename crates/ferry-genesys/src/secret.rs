//! Values that must never reach a log: the guest session token, presigned and download URLs, JWTs.
//!
//! Each wraps a `String`, serialises transparently, and prints `****` in `Debug`. There is no
//! `Display`: the only way to the text is an explicit `expose()`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A Web Messaging guest session token. Whoever holds it acts as that customer, so it is never
/// printed: `Debug` shows `SessionToken(****)`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionToken(String);

impl SessionToken {
    /// Wraps a token (Genesys tokens are client-generated UUIDs, but any text is accepted).
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// A fresh random token, as a guest client would create for a brand-new session.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The token's text. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(****)")
    }
}

/// A secret string: a presigned upload URL, an attachment download URL, a guest JWT.
/// `Debug` prints `Secret(****)`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_serde_is_transparent() {
        let token = SessionToken::new("0f1e2d3c-aaaa-bbbb-cccc-000000000001");
        assert_eq!(format!("{token:?}"), "SessionToken(****)");
        assert_eq!(serde_json::to_string(&token).unwrap(), "\"0f1e2d3c-aaaa-bbbb-cccc-000000000001\"");
        let secret = Secret::new("https://bucket.example/key?X-Amz-Signature=abc");
        assert!(!format!("{secret:?}").contains("Signature"));
        let back: Secret = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(back.expose(), "x");
        assert_ne!(SessionToken::random(), SessionToken::random());
    }
}
