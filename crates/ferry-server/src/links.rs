//! File ids and signed download links.
//!
//! A file id is the base64url (no padding) of the object key's tail after the configured prefix,
//! `<deployment>/<yyyy>/<mm>/<dd>/<uuid>`: opaque to clients, and enough to find the object without a
//! database. A download link is `{public_url}/v1/files/{id}?expires={unix}&signature={hex}` where the
//! signature is HMAC-SHA256 over `"{id}\n{expires}"` with the link secret; it is checked in constant
//! time, and an expired, unsigned or tampered link is refused.
//!
//! Keys rotate: a link signed with a key that has an id says so,
//! `…?expires={unix}&kid={key id}&signature={hex}`, and its signature covers
//! `"{id}\n{expires}\n{kid}"`. The first configured key signs new links; every configured key
//! verifies; a link without `kid` is checked with the unnamed key (`link_secret`, the key links
//! had before key ids). Removing a key retires every link it signed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret as _, SecretSlice};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Encodes a key tail as a file id.
pub fn file_id(key_tail: &str) -> String {
    URL_SAFE_NO_PAD.encode(key_tail.as_bytes())
}

/// Decodes a file id back to the key tail, refusing anything that is not one ferry made.
pub fn key_tail(file_id: &str) -> Option<String> {
    if file_id.len() > 256 {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(file_id).ok()?;
    let tail = String::from_utf8(raw).ok()?;
    let parts: Vec<&str> = tail.split('/').collect();
    let shape_ok = parts.len() == 5
        && !parts[0].is_empty()
        && parts[0].chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && parts[1..4].iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && uuid::Uuid::parse_str(parts[4]).is_ok();
    shape_ok.then_some(tail)
}

/// A link's query from its values: `expires={expires}[&kid={kid}]&signature={signature}`.
pub fn link_query(expires: &str, kid: Option<&str>, signature: &str) -> String {
    let kid = kid.map(|kid| format!("&kid={kid}")).unwrap_or_default();
    format!("expires={expires}{kid}&signature={signature}")
}

/// The signer `config` asks for: `link_keys` (the first signs) and the unnamed `link_secret`.
pub fn signer_from_config(config: &crate::config::Config) -> LinkSigner {
    let named: Vec<(&str, &[u8])> =
        config.link_keys.iter().map(|k| (k.id.as_str(), k.secret.as_bytes())).collect();
    LinkSigner::with_keys(Some(config.link_secret.as_bytes()), &named, &config.public_url)
}

/// Signs and checks download links.
#[derive(Clone)]
pub struct LinkSigner {
    /// The key for links without `kid`.
    unnamed: Option<SecretSlice<u8>>,
    /// Keys with ids; the first signs when there is one.
    named: Vec<(String, SecretSlice<u8>)>,
    public_url: String,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSigner").field("public_url", &self.public_url).finish_non_exhaustive()
    }
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// No or malformed `expires` / `signature`.
    Malformed,
    /// The signature does not match.
    BadSignature,
    /// Past its expiry.
    Expired,
}

impl LinkSigner {
    /// A signer with one key without an id, building links under `public_url`.
    pub fn new(secret: &[u8], public_url: &str) -> Self {
        Self::with_keys(Some(secret), &[], public_url)
    }

    /// A signer with an optional unnamed key (links without `kid`) and keys with ids, the first of
    /// which signs (else the unnamed key signs).
    pub fn with_keys(unnamed: Option<&[u8]>, named: &[(&str, &[u8])], public_url: &str) -> Self {
        Self {
            unnamed: unnamed.filter(|k| !k.is_empty()).map(|k| SecretSlice::from(k.to_vec())),
            named: named.iter().map(|(id, k)| ((*id).to_owned(), SecretSlice::from(k.to_vec()))).collect(),
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    fn mac(key: &[u8], file_id: &str, expires: u64, kid: Option<&str>) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(file_id.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        if let Some(kid) = kid {
            mac.update(b"\n");
            mac.update(kid.as_bytes());
        }
        mac
    }

    /// The signing key: the first named one, else the unnamed one.
    fn signing_key(&self) -> (Option<&str>, &[u8]) {
        match (self.named.first(), &self.unnamed) {
            (Some((id, key)), _) => (Some(id), key.expose_secret()),
            (None, Some(key)) => (None, key.expose_secret()),
            (None, None) => (None, &[]),
        }
    }

    /// The signature of `file_id` expiring at `expires` (Unix seconds), hex, with the signing key.
    pub fn signature(&self, file_id: &str, expires: u64) -> String {
        let (kid, key) = self.signing_key();
        hex::encode(Self::mac(key, file_id, expires, kid).finalize().into_bytes())
    }

    /// Whether `tag` is the first `bytes` bytes of [`signature`](Self::signature)`(signed_id,
    /// expires)`, written as the signer writes it (lower-case hex), compared in constant time.
    pub fn verify_truncated(&self, signed_id: &str, expires: u64, tag: &str, bytes: usize) -> bool {
        let (kid, key) = self.signing_key();
        let canonical = tag.len() == 2 * bytes && !tag.bytes().any(|b| b.is_ascii_uppercase());
        let Ok(raw) = hex::decode(tag) else { return false };
        canonical && Self::mac(key, signed_id, expires, kid).verify_truncated_left(&raw).is_ok()
    }

    /// The full link.
    pub fn link(&self, file_id: &str, expires: u64) -> String {
        format!("{}/v1/files/{file_id}?{}", self.public_url, self.query(file_id, expires))
    }

    /// A link's query, `expires={unix}[&kid={key id}]&signature={hex}`, signed over `signed_id`
    /// with the signing key.
    pub fn query(&self, signed_id: &str, expires: u64) -> String {
        link_query(&expires.to_string(), self.signing_key().0, &self.signature(signed_id, expires))
    }

    /// Checks a link without `kid` at `now` (Unix seconds).
    ///
    /// # Errors
    /// [`LinkError`] when malformed, tampered or expired.
    pub fn verify(
        &self,
        file_id: &str,
        expires: Option<&str>,
        signature: Option<&str>,
        now: u64,
    ) -> Result<(), LinkError> {
        self.verify_with_kid(file_id, expires, None, signature, now)
    }

    /// Checks a link's query values (`expires`, `kid`, `signature`) at `now` (Unix seconds). An
    /// unknown `kid` (a retired key) is a bad signature.
    ///
    /// # Errors
    /// [`LinkError`] when malformed, tampered, signed with a key ferry no longer has, or expired.
    pub fn verify_with_kid(
        &self,
        file_id: &str,
        expires: Option<&str>,
        kid: Option<&str>,
        signature: Option<&str>,
        now: u64,
    ) -> Result<(), LinkError> {
        // Only the exact text the signer writes: decimal without sign or leading zeros, and 64
        // lower-case hex digits (`u64::from_str` also takes `+` and `01000`, and `hex::decode`
        // upper case, which would let one link be written many ways).
        let expires: u64 = expires
            .and_then(|e| e.parse().ok().filter(|n: &u64| n.to_string() == e))
            .ok_or(LinkError::Malformed)?;
        let signature = signature
            .filter(|s| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .ok_or(LinkError::Malformed)?;
        let raw = hex::decode(signature).map_err(|_| LinkError::Malformed)?;
        let key = match kid {
            Some(kid) => self.named.iter().find(|(id, _)| id == kid).map(|(_, key)| key),
            None => self.unnamed.as_ref(),
        }
        .ok_or(LinkError::BadSignature)?;
        Self::mac(key.expose_secret(), file_id, expires, kid)
            .verify_slice(&raw)
            .map_err(|_| LinkError::BadSignature)?;
        if now >= expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAIL: &str = "dep-1/2026/11/28/0b6f1c52-5a8e-4d7f-9a39-2f0e8f3c1d2a";

    #[test]
    fn ids_round_trip_and_refuse_foreign_shapes() {
        let id = file_id(TAIL);
        assert_eq!(key_tail(&id).as_deref(), Some(TAIL));
        assert_eq!(key_tail(&file_id("../../etc/passwd")), None);
        assert_eq!(key_tail(&file_id("dep/2026/11/28/not-a-uuid")), None);
        assert_eq!(key_tail("!!!"), None);
    }

    #[test]
    fn links_verify_and_refuse_tampering_and_expiry() {
        let signer = LinkSigner::new(b"0123456789abcdef0123456789abcdef", "https://files.example/");
        let id = file_id(TAIL);
        let link = signer.link(&id, 1000);
        assert!(link.starts_with("https://files.example/v1/files/"));
        let sig = signer.signature(&id, 1000);
        assert_eq!(signer.verify(&id, Some("1000"), Some(&sig), 999), Ok(()));
        assert_eq!(signer.verify(&id, Some("1000"), Some(&sig), 1000), Err(LinkError::Expired));
        assert_eq!(signer.verify(&id, Some("1001"), Some(&sig), 999), Err(LinkError::BadSignature));
        assert_eq!(
            signer.verify(
                &file_id("x/1/1/1/0b6f1c52-5a8e-4d7f-9a39-2f0e8f3c1d2a"),
                Some("1000"),
                Some(&sig),
                1
            ),
            Err(LinkError::BadSignature)
        );
        assert_eq!(signer.verify(&id, None, Some(&sig), 1), Err(LinkError::Malformed));
        assert_eq!(signer.verify(&id, Some("1000"), None, 1), Err(LinkError::Malformed));
        assert_eq!(signer.verify(&id, Some("1000"), Some("zz"), 1), Err(LinkError::Malformed));
        // One link, one spelling: no sign, no leading zeros, no upper-case hex (found by fuzzing).
        for expires in ["01000", "+1000"] {
            assert_eq!(signer.verify(&id, Some(expires), Some(&sig), 999), Err(LinkError::Malformed));
        }
        let plus = format!("+{}", &sig[1..]);
        assert_eq!(signer.verify(&id, Some("1000"), Some(&plus), 999), Err(LinkError::Malformed));
        let upper = sig.to_ascii_uppercase();
        assert_eq!(signer.verify(&id, Some("1000"), Some(&upper), 999), Err(LinkError::Malformed));
        let other = LinkSigner::new(b"another secret of at least 32 bytes!", "https://files.example");
        assert_eq!(other.verify(&id, Some("1000"), Some(&sig), 1), Err(LinkError::BadSignature));
    }

    fn query(link: &str, name: &str) -> Option<String> {
        let url = url::Url::parse(link).unwrap();
        url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }

    #[test]
    fn keys_rotate_without_breaking_live_links_and_retired_keys_fail() {
        const OLD: &[u8] = b"0123456789abcdef0123456789abcdef";
        const K1: &[u8] = b"key one, at least thirty-two bytes long";
        const K2: &[u8] = b"key two, at least thirty-two bytes long";
        let id = file_id(TAIL);
        let check = |signer: &LinkSigner, link: &str| {
            let (e, k, s) = (query(link, "expires"), query(link, "kid"), query(link, "signature"));
            signer.verify_with_kid(&id, e.as_deref(), k.as_deref(), s.as_deref(), 10)
        };
        let today = LinkSigner::new(OLD, "https://f.example").link(&id, 1000);
        assert_eq!(query(&today, "kid"), None, "a signer without key ids writes no kid");
        let rotated = LinkSigner::with_keys(Some(OLD), &[("k1", K1)], "https://f.example");
        let k1_link = rotated.link(&id, 1000);
        assert_eq!(query(&k1_link, "kid").as_deref(), Some("k1"));
        assert_eq!(check(&rotated, &today), Ok(()), "links from before key ids stay valid");
        assert_eq!(check(&rotated, &k1_link), Ok(()));
        let next = LinkSigner::with_keys(None, &[("k2", K2), ("k1", K1)], "https://f.example");
        assert_eq!(check(&next, &k1_link), Ok(()), "k1 still verifies after k2 took over");
        assert_eq!(check(&next, &next.link(&id, 1000)), Ok(()));
        assert_eq!(check(&next, &today), Err(LinkError::BadSignature), "the unnamed key is retired");
        let retired = LinkSigner::with_keys(None, &[("k2", K2)], "https://f.example");
        assert_eq!(check(&retired, &k1_link), Err(LinkError::BadSignature));
        // The kid is signed: relabelling a k1 link as k2 does not verify.
        let relabelled = k1_link.replace("kid=k1", "kid=k2");
        assert_eq!(check(&next, &relabelled), Err(LinkError::BadSignature));
    }
}
