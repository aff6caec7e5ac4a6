//! The data path's own settings (`[data_path]`): which whole-file digests every upload pays for,
//! and how many uploads one client address may have in progress at once ([`ClientUploads`]).

use crate::error::{AppError, ErrorCode};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Data path settings (`[data_path]`).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataPathSettings {
    /// Compute every file's SHA-256. Off (the default): only when the client declares
    /// `Repr-Digest: sha-256=…` or the delivery sends it (a guest's message carries `ferrySha256`,
    /// Open Messaging sends `sha256`), so a ticket upload left to its page skips it; the reference
    /// lists `sha256` only when it was computed.
    pub always_sha256: bool,
    /// Compute every file's MD5 (on, the default; the reference's `checksums.md5`). Off — allowed
    /// only with a CRC `s3.checksum` (`crc32c`, `crc64nvme`), whose FULL_OBJECT CRC S3 verifies —
    /// the MD5 is computed only for a client that sends `Content-MD5` (it is still checked), and
    /// the reference carries no `md5`: a CRC-only data path, one hash pass per byte fewer.
    pub whole_file_md5: bool,
    /// Uploads one client address may have in progress at once (counted from its first bytes);
    /// `0` for no cap. Over it: 429 `rate_limited` with `Retry-After`. The default, 16, leaves room
    /// for an office behind one NAT address and caps one address at 16 parts' shares of the budget.
    pub max_uploads_per_client: u32,
}

impl Default for DataPathSettings {
    fn default() -> Self {
        Self { always_sha256: false, whole_file_md5: true, max_uploads_per_client: 16 }
    }
}

/// Uploads in progress per client address.
#[derive(Debug, Default)]
pub struct ClientUploads {
    max: u32,
    active: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// A client's place among its uploads in progress, given back on drop.
#[derive(Debug)]
pub struct ClientSlot {
    ip: IpAddr,
    active: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl ClientUploads {
    /// At most `max` uploads per address (`0`: no cap).
    pub fn new(max: u32) -> Self {
        Self { max, active: Arc::default() }
    }

    /// Takes a place for an upload from `ip` (`None` when the address is unknown or there is no cap).
    ///
    /// # Errors
    /// 429 `rate_limited` when the address already has the maximum in progress.
    pub fn enter(&self, ip: Option<IpAddr>) -> Result<Option<ClientSlot>, AppError> {
        let Some(ip) = ip.filter(|_| self.max > 0) else { return Ok(None) };
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        let count = active.entry(ip).or_insert(0);
        if *count >= self.max {
            return Err(AppError::new(
                ErrorCode::RateLimited,
                "too many uploads in progress from this client address; try again when one has finished",
            )
            .retry_after(5));
        }
        *count += 1;
        Ok(Some(ClientSlot { ip, active: Arc::clone(&self.active) }))
    }

    /// Uploads in progress from `ip`.
    pub fn active(&self, ip: IpAddr) -> u32 {
        self.active.lock().unwrap_or_else(PoisonError::into_inner).get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = active.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                active.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_file_md5_is_on_by_default_and_off_only_with_a_crc_mode() {
        let valid = |toml: &str| {
            let mut c = crate::config::Config::from_toml(toml).unwrap();
            c.s3.bucket = "b".into();
            c.link_secret = "x".repeat(32).into();
            c.deployments.insert("d1".into(), crate::config::Deployment::default());
            c.validate().map(|()| c.data_path.whole_file_md5).map_err(|e| e.setting)
        };
        assert_eq!(valid(""), Ok(true), "on by default");
        assert!(DataPathSettings::default().whole_file_md5);
        assert_eq!(valid("[data_path]\nwhole_file_md5 = false"), Ok(false), "crc64nvme, the default mode");
        assert_eq!(valid("[s3]\nchecksum = \"crc32c\"\n[data_path]\nwhole_file_md5 = false"), Ok(false));
        assert_eq!(
            valid("[s3]\nchecksum = \"md5\"\n[data_path]\nwhole_file_md5 = false"),
            Err("data_path.whole_file_md5".into()),
            "the md5 mode has no CRC to verify the file by"
        );
        assert_eq!(valid("[s3]\nchecksum = \"md5\"\n[data_path]\nwhole_file_md5 = true"), Ok(true));
    }

    #[test]
    fn each_address_has_its_own_cap_and_places_come_back() {
        let uploads = ClientUploads::new(2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = uploads.enter(Some(a)).unwrap();
        let _second = uploads.enter(Some(a)).unwrap();
        let refused = uploads.enter(Some(a)).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::RateLimited);
        assert!(uploads.enter(Some(b)).unwrap().is_some(), "another address is not affected");
        drop(first);
        assert_eq!(uploads.active(a), 1);
        assert!(uploads.enter(Some(a)).unwrap().is_some());
        assert!(uploads.enter(None).unwrap().is_none(), "an unknown address is not capped");
        assert!(ClientUploads::new(0).enter(Some(a)).unwrap().is_none(), "0: no cap");
    }
}
