//! The crate's retry schedules. Every retry loop here (the guest client's rate-limit waits,
//! presigned-`PUT` retries and reconnects, the platform client's retries) is driven by a
//! [`ferry_core::retry::Schedule`] made by [`JitterSource::schedule`]; the source is
//! `rand::random` unless a client was given another (a seeded one in tests).

use ferry_core::retry::{Jitter, RetryPolicy, Schedule};
use std::fmt;
use std::sync::Arc;

/// A retry schedule of this crate.
pub(crate) type Backoff = Schedule<JitterSource>;

/// Where retry jitter comes from: a shared `Fn() -> u64`, cheap to clone.
#[derive(Clone)]
pub(crate) struct JitterSource(Arc<dyn Fn() -> u64 + Send + Sync>);

impl JitterSource {
    /// Uniformly random numbers from `rand`.
    pub(crate) fn random() -> Self {
        Self(Arc::new(rand::random::<u64>))
    }

    /// Numbers from `next` (tests pass a seeded generator).
    pub(crate) fn from_fn(next: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(next))
    }

    /// A schedule following `policy` whose first attempt starts now (tokio's clock, so paused
    /// test time applies).
    pub(crate) fn schedule(&self, policy: RetryPolicy) -> Backoff {
        Schedule::new(policy, now(), self.clone())
    }
}

impl Jitter for JitterSource {
    fn next_u64(&mut self) -> u64 {
        (self.0)()
    }
}

impl fmt::Debug for JitterSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JitterSource")
    }
}

/// The current time on tokio's clock, as the `Instant` a [`Schedule`] takes.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::retry::{RetryClass, RetryDecision};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// A seeded xorshift64* generator behind an atomic, so it is `Fn`.
    fn seeded(seed: u64) -> JitterSource {
        let state = AtomicU64::new(seed);
        JitterSource::from_fn(move || {
            let mut x = state.load(Ordering::Relaxed);
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            state.store(x, Ordering::Relaxed);
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        })
    }

    fn delays(source: &JitterSource, policy: RetryPolicy) -> Vec<Duration> {
        let mut schedule = source.schedule(policy);
        let mut out = Vec::new();
        while let RetryDecision::RetryAfter(d) = schedule.on_failure(RetryClass::Transient, now(), None) {
            out.push(d);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn schedules_draw_from_the_injected_source() {
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        };
        // No jitter: half of each ceiling, exactly.
        let zero = JitterSource::from_fn(|| 0);
        assert_eq!(delays(&zero, policy), [100, 200, 400].map(Duration::from_millis).to_vec());
        // A seeded source gives the same delays every time, within the equal-jitter bounds.
        let first = delays(&seeded(42), policy);
        assert_eq!(first, delays(&seeded(42), policy));
        assert_ne!(first, delays(&seeded(7), policy));
        for (i, d) in first.iter().enumerate() {
            let ceiling = Duration::from_millis(200 << i);
            assert!(*d >= ceiling / 2 && *d <= ceiling, "{i}: {d:?}");
        }
    }
}
