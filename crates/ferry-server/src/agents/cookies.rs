//! ferry's signed cookies and the PKCE verifier, both keyed like links.
//!
//! Cookie keys are derived from the link keys (HMAC-SHA256 of the label `ferry agent cookies v1`
//! under each link key), so they rotate with them: the first key signs, every key verifies, and
//! removing a link key ends the sessions it signed. A sealed value is
//! `base64url(json {"k": key id, "v": value}) "." base64url(HMAC(payload))`: readable, never
//! forgeable; expiry is inside the value and checked by the caller.
//!
//! The PKCE verifier never leaves ferry: it is `base64url(HMAC(key, "pkce\n" + state))` under the
//! key that sealed the sign-in cookie, so any replica can recompute it at the callback and the
//! browser (or anyone who reads the URL) only ever sees its S256 challenge.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use secrecy::{ExposeSecret as _, SecretSlice};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The label cookie keys are derived with.
const LABEL: &[u8] = b"ferry agent cookies v1";

/// Keys for cookies: `(key id, derived key)`, the first signs; the key without an id (the link
/// secret) has the id `""`.
#[derive(Clone)]
pub struct CookieKeys {
    keys: Vec<(String, SecretSlice<u8>)>,
}

impl std::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("CookieKeys").field("ids", &ids).finish_non_exhaustive()
    }
}

/// A value read back from a cookie, with the id of the key that sealed it.
#[derive(Debug)]
pub struct Opened<T> {
    /// The key id (`""`: the unnamed key).
    pub kid: String,
    /// The value.
    pub value: T,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    k: String,
    v: T,
}

fn mac(key: &[u8], label: &[u8], data: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label);
    mac.update(data);
    mac
}

impl CookieKeys {
    /// Keys derived from the link keys: named ones first (in order), then the unnamed one. The
    /// first signs, as for links.
    pub fn derive(unnamed: Option<&[u8]>, named: &[(&str, &[u8])]) -> Self {
        let derive = |key: &[u8]| SecretSlice::from(mac(key, LABEL, b"").finalize().into_bytes().to_vec());
        let mut keys: Vec<(String, SecretSlice<u8>)> =
            named.iter().map(|(id, key)| ((*id).to_owned(), derive(key))).collect();
        if let Some(key) = unnamed.filter(|k| !k.is_empty()) {
            keys.push((String::new(), derive(key)));
        }
        Self { keys }
    }

    /// The keys `config` gives links.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let named: Vec<(&str, &[u8])> =
            config.link_keys.iter().map(|k| (k.id.as_str(), k.secret.as_bytes())).collect();
        Self::derive(Some(config.link_secret.as_bytes()), &named)
    }

    fn key(&self, kid: &str) -> Option<&[u8]> {
        self.keys.iter().find(|(id, _)| id == kid).map(|(_, key)| key.expose_secret())
    }

    /// The signing key's id.
    pub fn signing_kid(&self) -> &str {
        self.keys.first().map_or("", |(id, _)| id.as_str())
    }

    /// Seals `value` with the signing key.
    pub fn seal<T: Serialize>(&self, value: &T) -> String {
        let kid = self.signing_kid().to_owned();
        let key = self.key(&kid).unwrap_or_default();
        let json = serde_json::to_vec(&Envelope { k: kid, v: value }).expect("cookie values serialise");
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = URL_SAFE_NO_PAD.encode(mac(key, b"cookie\n", payload.as_bytes()).finalize().into_bytes());
        format!("{payload}.{tag}")
    }

    /// Opens a sealed value: `None` when it is malformed, tampered with, or sealed with a key
    /// ferry no longer has.
    pub fn open<T: DeserializeOwned>(&self, text: &str) -> Option<Opened<T>> {
        if text.len() > 4096 {
            return None;
        }
        let (payload, tag) = text.split_once('.')?;
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let envelope: Envelope<serde_json::Value> = serde_json::from_slice(&json).ok()?;
        let key = self.key(&envelope.k)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        mac(key, b"cookie\n", payload.as_bytes()).verify_slice(&tag).ok()?;
        let value = serde_json::from_value(envelope.v).ok()?;
        Some(Opened { kid: envelope.k, value })
    }

    /// The PKCE verifier for `state` under key `kid` (43 characters of base64url), if ferry has
    /// that key.
    pub fn verifier(&self, kid: &str, state: &str) -> Option<String> {
        let key = self.key(kid)?;
        Some(URL_SAFE_NO_PAD.encode(mac(key, b"pkce\n", state.as_bytes()).finalize().into_bytes()))
    }
}

/// The S256 challenge of a verifier: `base64url(SHA-256(verifier))`.
pub(crate) fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A fresh OAuth `state`: 244 random bits, as hex.
pub(crate) fn new_state() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The value of the cookie `name` in the request, if it sent exactly one.
pub(crate) fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned());
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Secure` when `secure`; `max_age` 0 deletes.
pub(crate) fn set(name: &str, value: &str, path: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Value {
        user: String,
        exp: u64,
    }

    const K1: &[u8] = b"key one, at least thirty-two bytes long";
    const K2: &[u8] = b"key two, at least thirty-two bytes long";
    const OLD: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn sealed_values_open_and_tampering_fails() {
        let keys = CookieKeys::derive(Some(OLD), &[("k1", K1)]);
        let value = Value { user: "ada".into(), exp: 10 };
        let sealed = keys.seal(&value);
        let opened: Opened<Value> = keys.open(&sealed).unwrap();
        assert_eq!((opened.kid.as_str(), opened.value), ("k1", value));
        // Another payload under the same tag, a changed tag, or garbage: refused.
        let (payload, tag) = sealed.split_once('.').unwrap();
        let forged_json =
            serde_json::to_vec(&serde_json::json!({"k": "k1", "v": {"user": "eve", "exp": 10}}));
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(forged_json.unwrap()));
        assert!(keys.open::<Value>(&forged).is_none());
        let mut bad_tag = tag.to_owned();
        bad_tag.replace_range(0..1, if tag.starts_with('A') { "B" } else { "A" });
        assert!(keys.open::<Value>(&format!("{payload}.{bad_tag}")).is_none());
        assert!(keys.open::<Value>("not a cookie").is_none());
        // The relabelled key id is inside the MAC: claiming the unnamed key fails.
        let relabelled = serde_json::to_vec(&serde_json::json!({"k": "", "v": {"user": "ada", "exp": 10}}));
        let relabelled = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(relabelled.unwrap()));
        assert!(keys.open::<Value>(&relabelled).is_none());
    }

    #[test]
    fn keys_rotate_like_links() {
        let old = CookieKeys::derive(Some(OLD), &[]);
        let sealed_old = old.seal(&Value { user: "a".into(), exp: 1 });
        let rotated = CookieKeys::derive(Some(OLD), &[("k2", K2), ("k1", K1)]);
        assert_eq!(rotated.signing_kid(), "k2");
        assert!(rotated.open::<Value>(&sealed_old).is_some(), "an older key still verifies");
        let retired = CookieKeys::derive(None, &[("k2", K2)]);
        assert!(retired.open::<Value>(&sealed_old).is_none(), "a removed key's cookies are void");
        // Cookie keys are not the link keys themselves.
        let link_mac = mac(OLD, b"cookie\n", b"x").finalize().into_bytes();
        let cookie_mac = mac(old.key("").unwrap(), b"cookie\n", b"x").finalize().into_bytes();
        assert_ne!(link_mac, cookie_mac);
    }

    #[test]
    fn the_verifier_is_secret_per_state_and_its_challenge_is_s256() {
        let keys = CookieKeys::derive(None, &[("k1", K1)]);
        let verifier = keys.verifier("k1", "state-1").unwrap();
        assert_eq!(verifier.len(), 43);
        assert!(verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(verifier, keys.verifier("k1", "state-2").unwrap());
        assert_eq!(keys.verifier("gone", "state-1"), None);
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_ne!(new_state(), new_state());
        assert_eq!(new_state().len(), 64);
    }

    #[test]
    fn cookies_are_read_once_and_set_with_their_attributes() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, "a=1; ferry=xyz; b=2".parse().unwrap());
        assert_eq!(read(&headers, "ferry").as_deref(), Some("xyz"));
        assert_eq!(read(&headers, "missing"), None);
        headers.append(http::header::COOKIE, "ferry=other".parse().unwrap());
        assert_eq!(read(&headers, "ferry"), None, "two cookies of one name: neither is trusted");
        let line = set("s", "v", "/v1/files", 60, true);
        assert_eq!(line, "s=v; Path=/v1/files; Max-Age=60; HttpOnly; SameSite=Lax; Secure");
        assert!(!set("s", "v", "/", 0, false).contains("Secure"));
    }
}
