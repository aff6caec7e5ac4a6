//! Upload tickets: short-lived capabilities minted by a site's backend for pages that use the stock
//! Messenger widget (whose guest token the page cannot read).
//!
//! Format (see `docs/api.md`): `v1.<payload>.<signature>` where `payload` is base64url (no padding)
//! of a JSON object and `signature` is base64url (no padding) of HMAC-SHA256 over `v1.<payload>`
//! with a ticket key shared with ferry. Claims:
//! `{"dep": deployment id, "exp": Unix seconds, "jti": unique id, "iat": Unix seconds?,
//!   "kid": key id?, "max": max bytes?, "types": ["image/*", …]?, "from": …?, "ref": reference?}`.
//!
//! - **Keys**: a ticket with `kid` is checked with that key: the deployment's own ticket keys when
//!   it has some (then only those), else the global ones; a ticket without `kid` with the unnamed
//!   `ticket_secret`. Several keys are accepted at once, so keys rotate without breaking live tickets.
//! - **Lifetime**: `exp` at most `tickets.max_lifetime_secs` (default 1 h) ahead of now, and of
//!   `iat` when given; `iat` not in the future. An `exp` in milliseconds is refused.
//! - **Single use**: the [`Ledger`] records a used ticket. In the bucket (the default) that is a
//!   conditional write of a marker `<prefix>.tickets/<sha256(dep, jti)>` that only one write can
//!   create, so a ticket works once across every replica and restart; in memory only with
//!   `tickets.single_process` (and in `ferry dev`).

use crate::config::Config;
use crate::error::{AppError, ErrorCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret as _, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

type HmacSha256 = Hmac<Sha256>;

/// How far in the future an `iat` may be (clocks of a site backend and ferry differ).
pub const CLOCK_SKEW_SECS: u64 = 60;

/// What a ticket allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Deployment id.
    pub dep: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Unique id (single use).
    pub jti: String,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The id of the key that signed it (none: the unnamed `ticket_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
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

impl Claims {
    /// A ticket for `dep` expiring at `exp` (Unix seconds), with a fresh `jti` and nothing else.
    pub fn new(dep: impl Into<String>, exp: u64) -> Self {
        Self { dep: dep.into(), exp, jti: uuid::Uuid::new_v4().to_string(), ..Self::default() }
    }
}

/// Why a ticket was refused (401 `invalid_ticket`, but 503 `storage_unavailable` when the bucket
/// could not record its use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketError {
    /// Not `v1.<payload>.<signature>`, or the payload is not the claims JSON.
    Malformed,
    /// The signature does not match, or no key ferry has is the one it names.
    BadSignature,
    /// Expired.
    Expired,
    /// Valid for longer than ferry accepts, or issued in the future.
    TooLong,
    /// Already used.
    Used,
    /// Its use could not be recorded (the bucket failed).
    Unavailable,
}

impl TicketError {
    /// A human message.
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => "the upload ticket is malformed",
            Self::BadSignature => "the upload ticket's signature does not match",
            Self::Expired => "the upload ticket has expired",
            Self::TooLong => "the upload ticket is valid for longer than this server accepts",
            Self::Used => "the upload ticket was already used",
            Self::Unavailable => "the upload ticket could not be checked; try again",
        }
    }
}

impl From<TicketError> for AppError {
    fn from(error: TicketError) -> Self {
        let code = match error {
            TicketError::Unavailable => ErrorCode::StorageUnavailable,
            _ => ErrorCode::InvalidTicket,
        };
        AppError::new(code, error.message())
    }
}

fn mac(secret: &[u8], signed: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(signed.as_bytes());
    mac
}

/// Mints a ticket (what a site backend does; `ferry ticket` uses it for testing). The claims'
/// `kid` must name `secret` when ferry knows it by an id.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signed = format!("v1.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(mac(secret, &signed).finalize().into_bytes());
    format!("{signed}.{signature}")
}

type Keys = Vec<(String, SecretSlice<u8>)>;

/// The keys tickets may be signed with.
#[derive(Default)]
pub struct TicketKeys {
    /// For tickets without `kid`.
    unnamed: Option<SecretSlice<u8>>,
    /// Global keys by id.
    named: Keys,
    /// Deployments with keys of their own.
    per_deployment: BTreeMap<String, Keys>,
}

impl TicketKeys {
    /// The keys `config` names (`ticket_secret`, `ticket_keys`, `deployments.<id>.ticket_keys`).
    pub fn from_config(config: &Config) -> Self {
        let keys = |list: &[crate::config::KeySetting]| -> Keys {
            list.iter().map(|k| (k.id.clone(), SecretSlice::from(k.secret.as_bytes().to_vec()))).collect()
        };
        Self {
            unnamed: config.ticket_secret.as_ref().map(|s| SecretSlice::from(s.as_bytes().to_vec())),
            named: keys(&config.ticket_keys),
            per_deployment: config
                .deployments
                .iter()
                .filter(|(_, d)| !d.ticket_keys.is_empty())
                .map(|(id, d)| (id.clone(), keys(&d.ticket_keys)))
                .collect(),
        }
    }

    fn key_for(&self, claims: &Claims) -> Option<&[u8]> {
        fn find<'k>(keys: &'k Keys, kid: &str) -> Option<&'k [u8]> {
            keys.iter().find(|(id, _)| id == kid).map(|(_, key)| key.expose_secret() as &[u8])
        }
        match (self.per_deployment.get(&claims.dep), claims.kid.as_deref()) {
            (Some(own), Some(kid)) => find(own, kid),
            (Some(_), None) => None,
            (None, Some(kid)) => find(&self.named, kid),
            (None, None) => self.unnamed.as_ref().map(|k| k.expose_secret() as &[u8]),
        }
    }
}

/// Where used tickets are remembered.
pub enum Ledger {
    /// In this process (used id → expiry): single-process deployments and `ferry dev`.
    Memory(Mutex<HashMap<String, u64>>),
    /// Markers in the bucket, created by conditional writes: every replica sees them.
    Bucket {
        /// The uploader writing markers.
        uploader: ferry_s3::Uploader,
        /// The key prefix (markers go under `<prefix>.tickets/`).
        prefix: String,
    },
}

impl Ledger {
    /// The marker key of a ticket: the id is hashed, so any `jti` makes a safe key.
    fn marker(prefix: &str, claims: &Claims) -> String {
        let digest = Sha256::new().chain_update(&claims.dep).chain_update(b"\n").chain_update(&claims.jti);
        format!("{prefix}.tickets/{}", hex::encode(digest.finalize()))
    }

    async fn record(&self, claims: &Claims, now: u64) -> Result<(), TicketError> {
        match self {
            Self::Memory(used) => {
                let mut used = used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                used.retain(|_, exp| *exp > now);
                let id = format!("{}\n{}", claims.dep, claims.jti);
                if used.insert(id, claims.exp).is_some() {
                    return Err(TicketError::Used);
                }
                Ok(())
            }
            Self::Bucket { uploader, prefix } => {
                let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(claims.exp);
                let body = bytes::Bytes::from(format!("{{\"exp\":{}}}", claims.exp));
                match uploader.put_if_absent(&Self::marker(prefix, claims), body, expires).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(TicketError::Used),
                    Err(error) => {
                        tracing::warn!(%error, "could not record a used ticket in the bucket");
                        Err(TicketError::Unavailable)
                    }
                }
            }
        }
    }
}

/// Checks tickets and records the used ones.
pub struct TicketVerifier {
    keys: TicketKeys,
    max_lifetime_secs: u64,
    ledger: Ledger,
}

impl std::fmt::Debug for TicketVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ledger = match self.ledger {
            Ledger::Memory(_) => "memory",
            Ledger::Bucket { .. } => "bucket",
        };
        f.debug_struct("TicketVerifier")
            .field("max_lifetime_secs", &self.max_lifetime_secs)
            .field("ledger", &ledger)
            .finish_non_exhaustive()
    }
}

impl TicketVerifier {
    /// A verifier for tickets without `kid` signed with `secret`, remembering used tickets in
    /// memory, with the default 1-hour lifetime.
    pub fn new(secret: &[u8]) -> Self {
        let keys = TicketKeys { unnamed: Some(SecretSlice::from(secret.to_vec())), ..TicketKeys::default() };
        Self::with_keys(keys, 3600, Ledger::Memory(Mutex::default()))
    }

    /// A verifier with `keys`, a lifetime limit and a ledger.
    pub fn with_keys(keys: TicketKeys, max_lifetime_secs: u64, ledger: Ledger) -> Self {
        Self { keys, max_lifetime_secs, ledger }
    }

    /// The verifier `config` asks for (`None` when no ticket key is set): used tickets recorded
    /// in the bucket through `uploader`, or in memory with `tickets.single_process`.
    pub fn from_config(config: &Config, uploader: &ferry_s3::Uploader) -> Option<Self> {
        if !config.tickets_enabled() {
            return None;
        }
        let ledger = if config.tickets.single_process {
            Ledger::Memory(Mutex::default())
        } else {
            Ledger::Bucket { uploader: uploader.clone(), prefix: config.s3.prefix.clone() }
        };
        Some(Self::with_keys(TicketKeys::from_config(config), config.tickets.max_lifetime_secs, ledger))
    }

    /// Whether used tickets are shared with other processes (recorded in the bucket).
    pub fn is_shared(&self) -> bool {
        matches!(self.ledger, Ledger::Bucket { .. })
    }

    /// At start-up: checks that the store refuses a second conditional write of one key, which
    /// the bucket ledger needs. Nothing to check for the memory ledger.
    ///
    /// # Errors
    /// When the store ignores `If-None-Match` (a ticket would then work more than once) or fails.
    pub async fn probe(&self) -> anyhow::Result<()> {
        let Ledger::Bucket { uploader, prefix } = &self.ledger else { return Ok(()) };
        let key = format!("{prefix}.tickets/probe-{}", uuid::Uuid::new_v4());
        let supported = uploader.supports_conditional_writes(&key).await?;
        anyhow::ensure!(
            supported,
            "the S3 store does not support conditional writes (If-None-Match: *), which single-use \
             tickets across replicas need: use S3, MinIO or another store that does, or set \
             tickets.single_process = true (FERRY_TICKETS_SINGLE_PROCESS) to run ONE ferry process \
             whose tickets are single-use only until it restarts"
        );
        Ok(())
    }

    /// Checks `ticket` at `now` (Unix seconds) and marks it used.
    ///
    /// # Errors
    /// [`TicketError`] when malformed, tampered, expired, too long-lived or used before.
    pub async fn redeem(&self, ticket: &str, now: u64) -> Result<Claims, TicketError> {
        let claims = self.check(ticket, now)?;
        self.consume(&claims, now).await?;
        Ok(claims)
    }

    /// Marks checked `claims` used (ferry does this when the upload starts, so a refusal before
    /// that leaves the ticket good for a retry).
    ///
    /// # Errors
    /// [`TicketError::Used`] when it was used before (by any replica, with the bucket ledger),
    /// [`TicketError::Expired`] when it expired since it was checked, [`TicketError::Unavailable`]
    /// when the bucket could not record it.
    pub async fn consume(&self, claims: &Claims, now: u64) -> Result<(), TicketError> {
        if now >= claims.exp {
            return Err(TicketError::Expired);
        }
        self.ledger.record(claims, now).await
    }

    /// Checks `ticket` without using it up.
    ///
    /// # Errors
    /// [`TicketError`] when malformed, tampered, expired or too long-lived.
    pub fn check(&self, ticket: &str, now: u64) -> Result<Claims, TicketError> {
        if ticket.len() > 4096 {
            return Err(TicketError::Malformed);
        }
        let (signed, signature) = ticket.rsplit_once('.').ok_or(TicketError::Malformed)?;
        let payload = signed.strip_prefix("v1.").ok_or(TicketError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TicketError::Malformed)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TicketError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TicketError::Malformed)?;
        let key = self.keys.key_for(&claims).ok_or(TicketError::BadSignature)?;
        mac(key, signed).verify_slice(&signature).map_err(|_| TicketError::BadSignature)?;
        if claims.jti.is_empty() || claims.dep.is_empty() {
            return Err(TicketError::Malformed);
        }
        if now >= claims.exp {
            return Err(TicketError::Expired);
        }
        let max = self.max_lifetime_secs;
        let issued_too_early = claims.iat.is_some_and(|iat| claims.exp.saturating_sub(iat) > max);
        let issued_in_future = claims.iat.is_some_and(|iat| iat > now.saturating_add(CLOCK_SKEW_SECS));
        if claims.exp - now > max || issued_too_early || issued_in_future {
            return Err(TicketError::TooLong);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Deployment, KeySetting};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_000_000;

    fn claims() -> Claims {
        Claims {
            dep: "d1".into(),
            exp: NOW + 100,
            jti: "t1".into(),
            max: Some(10),
            reference: Some("case-7".into()),
            ..Claims::default()
        }
    }

    #[tokio::test]
    async fn a_ticket_is_good_once_and_until_it_expires() {
        let verifier = TicketVerifier::new(SECRET);
        let ticket = mint(SECRET, &claims());
        assert_eq!(verifier.check(&ticket, NOW + 99), Ok(claims()));
        assert_eq!(verifier.redeem(&ticket, NOW + 99).await, Ok(claims()));
        assert_eq!(verifier.redeem(&ticket, NOW + 99).await, Err(TicketError::Used));
        assert_eq!(verifier.check(&ticket, NOW + 100), Err(TicketError::Expired));
        // The same jti for another deployment is another ticket.
        let other = Claims { dep: "d2".into(), ..claims() };
        assert_eq!(verifier.redeem(&mint(SECRET, &other), NOW).await, Ok(other));
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let verifier = TicketVerifier::new(SECRET);
        let ticket = mint(SECRET, &claims());
        let forged = mint(b"not the shared secret, but long enough", &claims());
        assert_eq!(verifier.check(&forged, NOW), Err(TicketError::BadSignature));
        let (head, _) = ticket.rsplit_once('.').unwrap();
        let other_payload = mint(SECRET, &Claims { max: Some(1 << 40), ..claims() });
        let (_, other_sig) = other_payload.rsplit_once('.').unwrap();
        assert_eq!(verifier.check(&format!("{head}.{other_sig}"), NOW), Err(TicketError::BadSignature));
        for garbage in ["", "v1", "v1..", "v2.abc.def", "v1.!!!.???", &"a".repeat(5000)] {
            assert!(verifier.check(garbage, NOW).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn lifetimes_are_capped_and_iat_is_checked() {
        let verifier = TicketVerifier::new(SECRET);
        let check = |c: Claims| verifier.check(&mint(SECRET, &c), NOW);
        assert!(check(Claims { exp: NOW + 3600, ..claims() }).is_ok());
        assert_eq!(check(Claims { exp: NOW + 3601, ..claims() }), Err(TicketError::TooLong));
        let millis = (NOW + 100) * 1000;
        assert_eq!(check(Claims { exp: millis, ..claims() }), Err(TicketError::TooLong));
        assert_eq!(check(Claims { exp: u64::MAX, ..claims() }), Err(TicketError::TooLong));
        assert!(check(Claims { iat: Some(NOW - 10), exp: NOW + 100, ..claims() }).is_ok());
        let long = Claims { iat: Some(NOW - 3600), exp: NOW + 100, ..claims() };
        assert_eq!(check(long), Err(TicketError::TooLong), "exp - iat is capped too");
        let future = Claims { iat: Some(NOW + CLOCK_SKEW_SECS + 1), exp: NOW + 100, ..claims() };
        assert_eq!(check(future), Err(TicketError::TooLong), "issued in the future");
    }

    #[test]
    fn key_ids_rotate_and_deployments_keep_their_own_keys() {
        const K1: &[u8] = b"global key one, thirty-two bytes+";
        const K2: &[u8] = b"global key two, thirty-two bytes+";
        const D2: &[u8] = b"deployment d2 key, 32 bytes long!";
        let key =
            |id: &str, k: &[u8]| KeySetting { id: id.into(), secret: std::str::from_utf8(k).unwrap().into() };
        let mut config = Config {
            ticket_secret: Some(std::str::from_utf8(SECRET).unwrap().into()),
            ticket_keys: vec![key("k2", K2), key("k1", K1)],
            ..Config::default()
        };
        config.deployments.insert("d1".into(), Deployment::default());
        config
            .deployments
            .insert("d2".into(), Deployment { ticket_keys: vec![key("d2-a", D2)], ..Deployment::default() });
        let verifier = TicketVerifier::with_keys(
            TicketKeys::from_config(&config),
            3600,
            Ledger::Memory(Mutex::default()),
        );
        let check = |secret: &[u8], c: Claims| verifier.check(&mint(secret, &c), NOW);
        let with_kid =
            |dep: &str, kid: Option<&str>| Claims { dep: dep.into(), kid: kid.map(Into::into), ..claims() };
        assert!(check(SECRET, with_kid("d1", None)).is_ok(), "tickets without kid keep working");
        assert!(check(K1, with_kid("d1", Some("k1"))).is_ok());
        assert!(check(K2, with_kid("d1", Some("k2"))).is_ok());
        assert_eq!(check(K1, with_kid("d1", Some("k2"))), Err(TicketError::BadSignature));
        assert_eq!(check(K1, with_kid("d1", Some("k9"))), Err(TicketError::BadSignature));
        assert!(check(D2, with_kid("d2", Some("d2-a"))).is_ok());
        for (secret, kid) in [(SECRET, None), (K1, Some("k1")), (D2, None)] {
            assert_eq!(check(secret, with_kid("d2", kid)), Err(TicketError::BadSignature), "{kid:?}");
        }
    }

    #[test]
    fn markers_hash_the_ticket_id_under_the_prefix() {
        let evil = Claims { jti: "../../x/y".into(), ..claims() };
        let marker = Ledger::marker("ferry/", &evil);
        assert!(marker.starts_with("ferry/.tickets/"));
        assert_eq!(marker.len(), "ferry/.tickets/".len() + 64);
        assert_ne!(marker, Ledger::marker("ferry/", &Claims { dep: "d2".into(), ..evil.clone() }));
    }
}
