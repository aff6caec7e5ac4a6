//! Admission: who may start an upload, and how often. A guest token is a UUID the client picks,
//! so a guest is an anonymous user: it is held to per-client-address rate limits, to the
//! deployment's guest settings (on/off, size, quotas per session per hour, concurrent uploads),
//! and its Genesys session check is remembered briefly and limited per deployment, by a rate and by
//! a cap on checks in flight, so that a flood of fresh tokens cannot make ferry flood Genesys.
//!
//! Everything here is local and cheap; the upload handler runs it before the one costly check
//! (the Genesys session) and before reading a byte of the body. Every refusal is 429 with a
//! `Retry-After` and a code of its own, but switched-off guest uploads (403).

use crate::error::{AppError, ErrorCode};
use ferry_core::plan::MIB;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil, Quota};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Server-wide admission settings (`[admission]`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionSettings {
    /// Request header that carries the client's address as set by a trusted reverse proxy
    /// (`x-forwarded-for`, `x-real-ip`; its last entry counts). None by default: the peer address.
    pub trusted_client_header: Option<String>,
    /// Upload requests one client address may start per minute (0: no limit).
    pub per_client_per_minute: u32,
    /// Upload requests one client address may start at once before the rate applies.
    pub per_client_burst: u32,
    /// Seconds a successful guest session check is remembered (0: never).
    pub session_cache_secs: u64,
    /// Guest sessions remembered at most.
    pub session_cache_size: usize,
    /// Genesys session checks per deployment per minute.
    pub session_checks_per_minute: u32,
    /// Genesys session checks per deployment allowed at once before the rate applies.
    pub session_checks_burst: u32,
    /// Genesys session checks per deployment in flight at once.
    pub session_checks_concurrent: usize,
    /// Largest total of a request's header fields, in bytes; more is answered 431.
    pub max_header_bytes: usize,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            trusted_client_header: None,
            per_client_per_minute: 240,
            per_client_burst: 120,
            session_cache_secs: 60,
            session_cache_size: 10_000,
            session_checks_per_minute: 300,
            session_checks_burst: 30,
            session_checks_concurrent: 16,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// A deployment's guest settings (`[deployments.<id>.guests]`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuestSettings {
    /// Whether guest sessions may upload at all (`guest_uploads`); tickets are not affected.
    pub uploads: bool,
    /// Largest guest file, in bytes (at most the deployment's limit).
    pub max_file_size: u64,
    /// Uploads one guest session may start per hour.
    pub uploads_per_hour: u32,
    /// Bytes one guest session may send per hour (declared lengths count when the upload starts).
    pub bytes_per_hour: u64,
    /// Uploads one guest session may have in progress at once.
    pub concurrent_uploads: u32,
}

impl Default for GuestSettings {
    fn default() -> Self {
        Self {
            uploads: true,
            max_file_size: 100 * MIB,
            uploads_per_hour: 100,
            bytes_per_hour: 2048 * MIB,
            concurrent_uploads: 4,
        }
    }
}

/// The connection's peer address, put into every request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// One guest session, as a key: a hash of the deployment and the token (tokens are not kept).
type SessionKey = [u8; 32];

/// The hour over which guest quotas count.
const QUOTA_WINDOW: Duration = Duration::from_secs(3600);
/// Guest sessions whose quotas are tracked at most.
const QUOTA_ENTRIES: usize = 100_000;
/// How many client checks between two sweeps of the per-client limiter's table.
const SWEEP_EVERY: u64 = 4096;

/// The admission state: limiters, the session-check cache and the guest quotas.
#[derive(Debug)]
pub struct Admission {
    settings: AdmissionSettings,
    per_client: Option<DefaultKeyedRateLimiter<IpAddr>>,
    client_checks: AtomicU64,
    checks: HashMap<String, SessionChecks>,
    cache: Mutex<HashMap<SessionKey, Instant>>,
    quotas: Arc<Mutex<HashMap<SessionKey, Usage>>>,
}

/// A deployment's limits on Genesys session checks.
#[derive(Debug)]
struct SessionChecks {
    rate: DefaultDirectRateLimiter,
    in_flight: Arc<Semaphore>,
}

/// A guest session's use in the current window.
#[derive(Debug, Clone, Copy)]
struct Usage {
    since: Instant,
    uploads: u32,
    bytes: u64,
    active: u32,
}

fn quota(per_minute: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_minute)?;
    Some(Quota::per_minute(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whole seconds to wait, at least one.
fn secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

fn wait_of(not_until: &NotUntil<governor::clock::QuantaInstant>) -> u64 {
    secs(not_until.wait_time_from(DefaultClock::default().now()))
}

impl Admission {
    /// The admission state for `settings` and the deployments `ids`.
    pub fn new<'a>(settings: &AdmissionSettings, ids: impl IntoIterator<Item = &'a String>) -> Self {
        let per_client = quota(settings.per_client_per_minute, settings.per_client_burst)
            .map(DefaultKeyedRateLimiter::keyed);
        let check_quota = quota(settings.session_checks_per_minute, settings.session_checks_burst);
        let checks = ids
            .into_iter()
            .map(|id| {
                let rate = check_quota.map_or_else(
                    || DefaultDirectRateLimiter::direct(Quota::per_second(NonZeroU32::MAX)),
                    DefaultDirectRateLimiter::direct,
                );
                let in_flight = Arc::new(Semaphore::new(settings.session_checks_concurrent.max(1)));
                (id.clone(), SessionChecks { rate, in_flight })
            })
            .collect();
        Self {
            settings: settings.clone(),
            per_client,
            client_checks: AtomicU64::new(0),
            checks,
            cache: Mutex::default(),
            quotas: Arc::default(),
        }
    }

    /// The client's address: the trusted header's last entry when one is configured and sent,
    /// else the connection's peer.
    pub fn client_ip(&self, headers: &http::HeaderMap, peer: Option<ClientAddr>) -> Option<IpAddr> {
        if let Some(name) = &self.settings.trusted_client_header
            && let Some(value) = headers.get(name.as_str()).and_then(|v| v.to_str().ok())
            && let Some(ip) = value.rsplit(',').next().and_then(|last| last.trim().parse().ok())
        {
            return Some(ip);
        }
        peer.map(|ClientAddr(addr)| addr.ip())
    }

    /// Counts one upload request from `ip` against the per-client rate.
    ///
    /// # Errors
    /// 429 `rate_limited` over the limit.
    pub fn check_client(&self, ip: Option<IpAddr>) -> Result<(), AppError> {
        let (Some(limiter), Some(ip)) = (&self.per_client, ip) else { return Ok(()) };
        if self.client_checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(&ip).map_err(|n| {
            AppError::new(ErrorCode::RateLimited, "too many uploads from this address; try again shortly")
                .retry_after(wait_of(&n))
        })
    }

    /// Whether guest `token` on `deployment` may start an upload of `charge` bytes under `guests`
    /// now (nothing is recorded: see [`Admission::reserve_guest`]).
    ///
    /// # Errors
    /// 403 `guest_uploads_disabled`, or 429 `guest_quota_exceeded`.
    pub fn check_guest(
        &self,
        deployment: &str,
        token: &str,
        guests: &GuestSettings,
        charge: u64,
    ) -> Result<(), AppError> {
        if !guests.uploads {
            return Err(AppError::new(
                ErrorCode::GuestUploadsDisabled,
                "this deployment does not take uploads from guest sessions",
            ));
        }
        let usage = lock(&self.quotas).get(&session_key(deployment, token)).copied();
        usage.map_or(Ok(()), |u| u.admits(guests, charge, Instant::now()))
    }

    /// Records an upload of guest `token` (checking the quotas again); the pass holds its place
    /// among the session's concurrent uploads until dropped.
    ///
    /// # Errors
    /// 429 `guest_quota_exceeded`.
    pub fn reserve_guest(
        &self,
        deployment: &str,
        token: &str,
        guests: &GuestSettings,
        charge: u64,
    ) -> Result<GuestPass, AppError> {
        let key = session_key(deployment, token);
        let now = Instant::now();
        let mut quotas = lock(&self.quotas);
        if quotas.len() >= QUOTA_ENTRIES && !quotas.contains_key(&key) {
            quotas.retain(|_, u| u.active > 0 || now.duration_since(u.since) < QUOTA_WINDOW);
            if quotas.len() >= QUOTA_ENTRIES {
                return Err(quota_error("too many guest sessions are uploading; try again later", 60));
            }
        }
        let usage = quotas.entry(key).or_insert(Usage { since: now, uploads: 0, bytes: 0, active: 0 });
        usage.admits(guests, charge, now)?;
        if now.duration_since(usage.since) >= QUOTA_WINDOW {
            *usage = Usage { since: now, uploads: 0, bytes: 0, active: usage.active };
        }
        usage.uploads += 1;
        usage.bytes = usage.bytes.saturating_add(charge);
        usage.active += 1;
        Ok(GuestPass { quotas: Arc::clone(&self.quotas), key })
    }

    /// Charges `bytes` to guest `token`'s hour on `deployment` for an upload admitted before its
    /// length was known (a tus upload whose deferred length is now declared), if the hour's bytes
    /// leave room; nothing is charged otherwise.
    ///
    /// # Errors
    /// 429 `guest_quota_exceeded`.
    pub fn charge_guest(
        &self,
        deployment: &str,
        token: &str,
        guests: &GuestSettings,
        bytes: u64,
    ) -> Result<(), AppError> {
        let now = Instant::now();
        let mut quotas = lock(&self.quotas);
        let usage = quotas.entry(session_key(deployment, token)).or_insert(Usage {
            since: now,
            uploads: 0,
            bytes: 0,
            active: 0,
        });
        if now.duration_since(usage.since) >= QUOTA_WINDOW {
            *usage = Usage { since: now, uploads: 0, bytes: 0, active: usage.active };
        }
        if usage.bytes.saturating_add(bytes) > guests.bytes_per_hour {
            let reset = secs(QUOTA_WINDOW - now.duration_since(usage.since));
            return Err(quota_error("this session has sent its bytes for the hour", reset));
        }
        usage.bytes = usage.bytes.saturating_add(bytes);
        Ok(())
    }

    /// Whether a check of guest `token` on `deployment` succeeded within the cache's lifetime.
    pub fn session_known(&self, deployment: &str, token: &str) -> bool {
        let ttl = Duration::from_secs(self.settings.session_cache_secs);
        let key = session_key(deployment, token);
        lock(&self.cache).get(&key).is_some_and(|at| at.elapsed() < ttl)
    }

    /// Remembers a successful check of guest `token` on `deployment`.
    pub fn remember_session(&self, deployment: &str, token: &str) {
        if self.settings.session_cache_secs == 0 || self.settings.session_cache_size == 0 {
            return;
        }
        let ttl = Duration::from_secs(self.settings.session_cache_secs);
        let mut cache = lock(&self.cache);
        if cache.len() >= self.settings.session_cache_size {
            cache.retain(|_, at| at.elapsed() < ttl);
            if cache.len() >= self.settings.session_cache_size {
                // Still full of live entries: forget the oldest.
                if let Some(oldest) = cache.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k) {
                    cache.remove(&oldest);
                }
            }
        }
        cache.insert(session_key(deployment, token), Instant::now());
    }

    /// A slot for one Genesys session check on `deployment`, within its rate and its cap on
    /// checks in flight (held until dropped).
    ///
    /// # Errors
    /// 429 `session_checks_limited`.
    pub fn session_check_slot(&self, deployment: &str) -> Result<Option<OwnedSemaphorePermit>, AppError> {
        let Some(checks) = self.checks.get(deployment) else { return Ok(None) };
        let limited = |secs: u64| {
            AppError::new(
                ErrorCode::SessionChecksLimited,
                "too many guest sessions are being checked with Genesys; try again shortly",
            )
            .retry_after(secs)
        };
        let permit = Arc::clone(&checks.in_flight).try_acquire_owned().map_err(|_| limited(1))?;
        checks.rate.check().map_err(|n| limited(wait_of(&n)))?;
        Ok(Some(permit))
    }
}

fn session_key(deployment: &str, token: &str) -> SessionKey {
    let mut hash = Sha256::new();
    hash.update(deployment.as_bytes());
    hash.update([0]);
    hash.update(token.as_bytes());
    hash.finalize().into()
}

fn quota_error(message: &str, retry_after: u64) -> AppError {
    AppError::new(ErrorCode::GuestQuotaExceeded, message).retry_after(retry_after)
}

impl Usage {
    fn admits(&self, guests: &GuestSettings, charge: u64, now: Instant) -> Result<(), AppError> {
        if self.active >= guests.concurrent_uploads {
            return Err(quota_error("this session has too many uploads in progress", 5));
        }
        let age = now.duration_since(self.since);
        if age >= QUOTA_WINDOW {
            return Ok(());
        }
        let reset = secs(QUOTA_WINDOW - age);
        if self.uploads >= guests.uploads_per_hour {
            return Err(quota_error("this session has sent its uploads for the hour", reset));
        }
        if self.bytes.saturating_add(charge) > guests.bytes_per_hour {
            return Err(quota_error("this session has sent its bytes for the hour", reset));
        }
        Ok(())
    }
}

/// A guest upload's place among its session's concurrent uploads; more bytes can be charged to
/// the session's hour as they turn out.
#[derive(Debug)]
pub struct GuestPass {
    quotas: Arc<Mutex<HashMap<SessionKey, Usage>>>,
    key: SessionKey,
}

impl GuestPass {
    /// Charges `bytes` more to the session's hour (a body whose length was not declared).
    pub fn charge(&self, bytes: u64) {
        if let Some(usage) = lock(&self.quotas).get_mut(&self.key) {
            usage.bytes = usage.bytes.saturating_add(bytes);
        }
    }
}

impl Drop for GuestPass {
    fn drop(&mut self) {
        if let Some(usage) = lock(&self.quotas).get_mut(&self.key) {
            usage.active = usage.active.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests;
