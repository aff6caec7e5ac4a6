//! Upload tickets: short-lived capabilities minted by a site's backend for pages that use the stock
//! Messenger widget (whose guest token the page cannot read).
//!
//! Format (see `docs/api.md`): `v1.<payload>.<signature>` where `payload` is base64url (no padding)
//! of a JSON object and `signature` is base64url (no padding) of HMAC-SHA256 over `v1.<payload>`
//! with the secret shared with ferry. Claims:
//! `{"dep": deployment id, "exp": Unix seconds, "jti": unique id, "max": max bytes?,
//!   "types": ["image/*", …]?, "ref": correlation reference?}`.
//! A ticket is good for one upload: its `jti` is remembered until it expires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;

type HmacSha256 = Hmac<Sha256>;

/// What a ticket allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Deployment id.
    pub dep: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Unique id (single use).
    pub jti: String,
    /// Largest file, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// Allowed content types (wildcards allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// The customer's id on an Open Messaging channel (deployments delivering through Open
    /// Messaging need it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Correlation reference, echoed in the attachment reference.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Why a ticket was refused (all answered as 401 `invalid_ticket`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketError {
    /// Not `v1.<payload>.<signature>`, or the payload is not the claims JSON.
    Malformed,
    /// The signature does not match.
    BadSignature,
    /// Expired.
    Expired,
    /// Already used.
    Used,
}

impl TicketError {
    /// A human message.
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => "the upload ticket is malformed",
            Self::BadSignature => "the upload ticket's signature does not match",
            Self::Expired => "the upload ticket has expired",
            Self::Used => "the upload ticket was already used",
        }
    }
}

fn mac(secret: &[u8], signed: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(signed.as_bytes());
    mac
}

/// Mints a ticket (what a site backend does; `ferry ticket` uses it for testing).
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signed = format!("v1.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, &signed).finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// Checks tickets and remembers the used ones.
#[derive(Default)]
pub struct TicketVerifier {
    secret: Vec<u8>,
    used: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for TicketVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketVerifier").finish_non_exhaustive()
    }
}

impl TicketVerifier {
    /// A verifier for tickets signed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self { secret: secret.to_vec(), used: Mutex::default() }
    }

    /// Checks `ticket` at `now` (Unix seconds) and marks it used.
    ///
    /// # Errors
    /// [`TicketError`] when malformed, tampered, expired or used before.
    pub fn redeem(&self, ticket: &str, now: u64) -> Result<Claims, TicketError> {
        let claims = self.check(ticket, now)?;
        self.consume(&claims, now)?;
        Ok(claims)
    }

    /// Marks checked `claims` used (ferry does this when the upload starts, so a refusal before
    /// that leaves the ticket good for a retry).
    ///
    /// # Errors
    /// [`TicketError::Used`] when it was used before, [`TicketError::Expired`] when it expired
    /// since it was checked.
    pub fn consume(&self, claims: &Claims, now: u64) -> Result<(), TicketError> {
        if now >= claims.exp {
            return Err(TicketError::Expired);
        }
        let mut used = self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        used.retain(|_, exp| *exp > now);
        if used.insert(claims.jti.clone(), claims.exp).is_some() {
            return Err(TicketError::Used);
        }
        Ok(())
    }

    /// Checks `ticket` without using it up.
    ///
    /// # Errors
    /// [`TicketError`] when malformed, tampered or expired.
    pub fn check(&self, ticket: &str, now: u64) -> Result<Claims, TicketError> {
        if ticket.len() > 4096 {
            return Err(TicketError::Malformed);
        }
        let (signed, signature) = ticket.rsplit_once('.').ok_or(TicketError::Malformed)?;
        let payload = signed.strip_prefix("v1.").ok_or(TicketError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TicketError::Malformed)?;
        mac(&self.secret, signed).verify_slice(&signature).map_err(|_| TicketError::BadSignature)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TicketError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TicketError::Malformed)?;
        if claims.jti.is_empty() || claims.dep.is_empty() {
            return Err(TicketError::Malformed);
        }
        if now >= claims.exp {
            return Err(TicketError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims() -> Claims {
        Claims {
            dep: "d1".into(),
            exp: 100,
            jti: "t1".into(),
            max: Some(10),
            types: None,
            from: None,
            reference: Some("case-7".into()),
        }
    }

    #[test]
    fn a_ticket_is_good_once_and_until_it_expires() {
        let verifier = TicketVerifier::new(SECRET);
        let ticket = mint(SECRET, &claims());
        assert_eq!(verifier.check(&ticket, 99), Ok(claims()));
        assert_eq!(verifier.redeem(&ticket, 99), Ok(claims()));
        assert_eq!(verifier.redeem(&ticket, 99), Err(TicketError::Used));
        assert_eq!(verifier.check(&ticket, 100), Err(TicketError::Expired));
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let verifier = TicketVerifier::new(SECRET);
        let ticket = mint(SECRET, &claims());
        let forged = mint(b"not the shared secret, but long enough", &claims());
        assert_eq!(verifier.check(&forged, 1), Err(TicketError::BadSignature));
        let (head, _) = ticket.rsplit_once('.').unwrap();
        let other_payload = mint(SECRET, &Claims { max: Some(1 << 40), ..claims() });
        let (_, other_sig) = other_payload.rsplit_once('.').unwrap();
        assert_eq!(verifier.check(&format!("{head}.{other_sig}"), 1), Err(TicketError::BadSignature));
        for garbage in ["", "v1", "v1..", "v2.abc.def", "v1.!!!.???", &"a".repeat(5000)] {
            assert!(verifier.check(garbage, 1).is_err(), "{garbage:?}");
        }
    }
}
