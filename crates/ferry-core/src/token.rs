//! Token freshness: whether a bearer token can be used as is, should be refreshed soon, or must be
//! fetched again before use.

use std::time::{Duration, Instant};

/// The default refresh skew: a token within a minute of expiry is refreshed.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);

/// How usable a token is at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// More than the skew from expiry: use it.
    Valid,
    /// Still valid, but within the skew of expiry: use it, and refresh it now.
    RefreshSoon,
    /// Expired (or expiring this instant): fetch a new one before use.
    Expired,
}

impl Freshness {
    /// Whether the token may still be sent.
    pub fn is_usable(self) -> bool {
        !matches!(self, Self::Expired)
    }
}

/// Decides the freshness of a token expiring at `expires_at`, at `now`, refreshing `skew` ahead.
/// The caller reads the clock; any monotonic clock's `Instant`s work.
pub fn freshness(expires_at: Instant, now: Instant, skew: Duration) -> Freshness {
    if now >= expires_at {
        Freshness::Expired
    } else if expires_at.duration_since(now) <= skew {
        Freshness::RefreshSoon
    } else {
        Freshness::Valid
    }
}

/// When a token received at `received_at` with `expires_in` seconds of life expires.
pub fn expiry(received_at: Instant, expires_in: Duration) -> Instant {
    received_at + expires_in
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_states() {
        let t0 = Instant::now();
        let exp = expiry(t0, Duration::from_secs(3600));
        assert_eq!(freshness(exp, t0, DEFAULT_SKEW), Freshness::Valid);
        assert_eq!(freshness(exp, t0 + Duration::from_secs(3539), DEFAULT_SKEW), Freshness::Valid);
        assert_eq!(freshness(exp, t0 + Duration::from_secs(3540), DEFAULT_SKEW), Freshness::RefreshSoon);
        assert!(freshness(exp, t0 + Duration::from_secs(3599), DEFAULT_SKEW).is_usable());
        assert_eq!(freshness(exp, exp, DEFAULT_SKEW), Freshness::Expired);
        assert!(!freshness(exp, exp + Duration::from_secs(1), DEFAULT_SKEW).is_usable());
    }

    #[test]
    fn a_lifetime_shorter_than_the_skew_is_refresh_soon_at_once() {
        let t0 = Instant::now();
        assert_eq!(freshness(expiry(t0, Duration::from_secs(30)), t0, DEFAULT_SKEW), Freshness::RefreshSoon);
    }
}
