//! File ids and signed download links.
//!
//! A file id is the base64url (no padding) of the object key's tail after the configured prefix,
//! `<deployment>/<yyyy>/<mm>/<dd>/<uuid>`: opaque to clients, and enough to find the object without a
//! database. A download link is `{public_url}/v1/files/{id}?expires={unix}&signature={hex}` where the
//! signature is HMAC-SHA256 over `"{id}\n{expires}"` with the link secret; it is checked in constant
//! time, and an expired, unsigned or tampered link is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
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

/// Signs and checks download links.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
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
    /// A signer with `secret`, building links under `public_url`.
    pub fn new(secret: &[u8], public_url: &str) -> Self {
        Self { key: secret.to_vec(), public_url: public_url.trim_end_matches('/').to_owned() }
    }

    fn mac(&self, file_id: &str, expires: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(file_id.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The signature of `file_id` expiring at `expires` (Unix seconds), hex.
    pub fn signature(&self, file_id: &str, expires: u64) -> String {
        hex::encode(self.mac(file_id, expires).finalize().into_bytes())
    }

    /// The full link.
    pub fn link(&self, file_id: &str, expires: u64) -> String {
        format!(
            "{}/v1/files/{file_id}?expires={expires}&signature={}",
            self.public_url,
            self.signature(file_id, expires)
        )
    }

    /// Checks a link's query values at `now` (Unix seconds).
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
        self.mac(file_id, expires).verify_slice(&raw).map_err(|_| LinkError::BadSignature)?;
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
}
