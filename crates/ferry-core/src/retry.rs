//! Retry decisions: a pure classifier of failures, and a bounded, jittered backoff schedule.
//!
//! The async crates describe what went wrong as a [`Failure`], ask [`classify`] whether trying
//! again can help, and ask [`RetryPolicy::decide`] how long to wait, handing in the attempt count,
//! the time spent so far and a random number. Nothing here sleeps or reads a clock.

use std::time::Duration;

/// What went wrong with one attempt, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure<'a> {
    /// An HTTP response with this status, and the service's error code if it sent one
    /// (S3's `<Code>`, Genesys's `code`).
    Http {
        /// HTTP status.
        status: u16,
        /// Service error code.
        code: Option<&'a str>,
    },
    /// The connection was reset or closed mid-exchange.
    ConnectionReset,
    /// The connection could not be made (refused, unreachable, DNS).
    ConnectFailed,
    /// The attempt timed out.
    Timeout,
    /// A Genesys guest-protocol error code (4000–4029).
    Genesys(u16),
}

/// Whether a failure is worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// Another attempt may succeed: throttling, server faults, transport faults, corruption in
    /// transit.
    Transient,
    /// Another attempt would fail the same way: bad credentials, missing bucket, invalid input.
    Fatal,
}

/// S3 error codes that name a passing condition even when the HTTP status would not say so.
const TRANSIENT_S3_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "BadDigest", // the body was damaged on the way: sending it again repairs it
    "IDPCommunicationError",
];

/// Classifies one failure.
pub fn classify(failure: &Failure<'_>) -> RetryClass {
    match *failure {
        Failure::Http { code: Some(code), .. } if TRANSIENT_S3_CODES.contains(&code) => RetryClass::Transient,
        Failure::Http { code: Some("too.many.requests.retry.after"), .. } => RetryClass::Transient,
        Failure::Http { status, .. } => match status {
            408 | 429 => RetryClass::Transient,
            501 | 505 => RetryClass::Fatal,
            500..=599 => RetryClass::Transient,
            _ => RetryClass::Fatal,
        },
        Failure::ConnectionReset | Failure::ConnectFailed | Failure::Timeout => RetryClass::Transient,
        Failure::Genesys(4029) => RetryClass::Transient,
        Failure::Genesys(_) => RetryClass::Fatal,
    }
}

/// A bounded exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means never retry).
    pub max_attempts: u32,
    /// Base of the exponential: the delay before the second attempt is drawn from up to this.
    pub initial_delay: Duration,
    /// Largest delay drawn from the schedule (a `Retry-After` may ask for more).
    pub max_delay: Duration,
    /// No attempt starts later than this after the first one.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, 100 ms doubling up to 5 s, within 60 s.
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Stop and report the failure.
    GiveUp(GiveUpReason),
}

/// Why retrying stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The failure is not transient.
    Fatal,
    /// `max_attempts` were made.
    AttemptsExhausted,
    /// Waiting would start the next attempt after `max_elapsed`.
    TimeExhausted,
}

impl RetryPolicy {
    /// The policy that never retries.
    pub fn never() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// Decides what follows failed attempt number `attempt` (1 for the first), which was
    /// classified `class`, `elapsed` after the first attempt started. `retry_after` is what the
    /// server asked for, if anything; `random` is any uniformly random `u64` (the jitter).
    ///
    /// The delay is "equal jitter": half of `min(max_delay, initial_delay × 2^(attempt-1))` plus a
    /// random share of the other half, so retries of many clients spread out but never bunch at
    /// zero. A `Retry-After` is a floor.
    pub fn decide(
        &self,
        class: RetryClass,
        attempt: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        random: u64,
    ) -> RetryDecision {
        if class == RetryClass::Fatal {
            return RetryDecision::GiveUp(GiveUpReason::Fatal);
        }
        if attempt >= self.max_attempts {
            return RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted);
        }
        let exponent = attempt.saturating_sub(1).min(32);
        let ceiling = self.initial_delay.saturating_mul(1u32 << exponent.min(31)).min(self.max_delay);
        let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
        let jittered = ceiling / 2 + ceiling.div_f64(2.0).mul_f64(fraction);
        let delay = retry_after.map_or(jittered, |floor| floor.max(jittered));
        if elapsed.saturating_add(delay) > self.max_elapsed {
            return RetryDecision::GiveUp(GiveUpReason::TimeExhausted);
        }
        RetryDecision::RetryAfter(delay)
    }
}

/// A source of uniformly random `u64`s for jitter. Any `FnMut() -> u64` is one, so the async
/// crates pass `rand::random::<u64>` and tests pass a seeded generator.
pub trait Jitter {
    /// The next random number.
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> Jitter for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// One operation's retries: the policy, the attempts made so far, when the first one started and
/// the random source. Every retry loop in the workspace is driven by one of these, so the attempt
/// count, the elapsed time and the jitter are kept in one place.
///
/// Sans-IO: `now` is an argument and nothing sleeps. The caller makes an attempt, and on a failure
/// asks [`Schedule::on_failure`] what to do: wait the delay it answers and try again, or give up.
///
/// ```
/// use ferry_core::retry::{RetryClass, RetryDecision, RetryPolicy, Schedule};
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let mut schedule = Schedule::new(RetryPolicy::default(), start, || 0u64);
/// assert_eq!(
///     schedule.on_failure(RetryClass::Transient, start, None),
///     RetryDecision::RetryAfter(Duration::from_millis(50))
/// );
/// assert_eq!(schedule.attempt(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Schedule<J = fn() -> u64> {
    policy: RetryPolicy,
    attempt: u32,
    started: std::time::Instant,
    jitter: J,
}

impl<J: Jitter> Schedule<J> {
    /// A schedule whose first attempt starts at `started`.
    pub fn new(policy: RetryPolicy, started: std::time::Instant, jitter: J) -> Self {
        Self { policy, attempt: 1, started, jitter }
    }

    /// The number of the attempt under way (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The policy this schedule follows.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Decides what follows the failure of the attempt under way, classified `class`, at `now`,
    /// with the server's `Retry-After` if it sent one. On `RetryAfter` the attempt count moves on,
    /// so [`Schedule::attempt`] names the next attempt.
    pub fn on_failure(
        &mut self,
        class: RetryClass,
        now: std::time::Instant,
        retry_after: Option<Duration>,
    ) -> RetryDecision {
        let elapsed = now.saturating_duration_since(self.started);
        let decision = self.policy.decide(class, self.attempt, elapsed, retry_after, self.jitter.next_u64());
        if let RetryDecision::RetryAfter(_) = decision {
            self.attempt = self.attempt.saturating_add(1);
        }
        decision
    }

    /// Starts counting again from a first attempt at `now` (after a success that resets a
    /// back-off, for instance).
    pub fn reset(&mut self, now: std::time::Instant) {
        self.attempt = 1;
        self.started = now;
    }
}

/// Parses an HTTP `Retry-After` given in seconds (the form S3, Genesys and most APIs send).
/// HTTP dates are not accepted: deciding them needs a clock, which the caller has.
pub fn parse_retry_after_seconds(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let secs = value.parse::<f64>().ok()?;
    (0.0..86_400.0).contains(&secs).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, code: Option<&str>) -> RetryClass {
        classify(&Failure::Http { status, code })
    }

    #[test]
    fn classification() {
        assert_eq!(http(503, Some("SlowDown")), RetryClass::Transient);
        assert_eq!(http(500, None), RetryClass::Transient);
        assert_eq!(http(502, None), RetryClass::Transient);
        assert_eq!(http(504, None), RetryClass::Transient);
        assert_eq!(http(429, None), RetryClass::Transient);
        assert_eq!(http(408, None), RetryClass::Transient);
        assert_eq!(http(400, Some("RequestTimeout")), RetryClass::Transient);
        assert_eq!(http(400, Some("BadDigest")), RetryClass::Transient);
        assert_eq!(http(400, Some("InvalidDigest")), RetryClass::Fatal);
        assert_eq!(http(403, Some("AccessDenied")), RetryClass::Fatal);
        assert_eq!(http(404, Some("NoSuchBucket")), RetryClass::Fatal);
        assert_eq!(http(400, Some("EntityTooSmall")), RetryClass::Fatal);
        assert_eq!(http(501, None), RetryClass::Fatal);
        assert_eq!(http(401, None), RetryClass::Fatal);
        assert_eq!(classify(&Failure::ConnectionReset), RetryClass::Transient);
        assert_eq!(classify(&Failure::Timeout), RetryClass::Transient);
        assert_eq!(classify(&Failure::ConnectFailed), RetryClass::Transient);
        assert_eq!(classify(&Failure::Genesys(4029)), RetryClass::Transient);
        assert_eq!(classify(&Failure::Genesys(4007)), RetryClass::Fatal);
        assert_eq!(classify(&Failure::Genesys(4002)), RetryClass::Fatal);
    }

    #[test]
    fn delays_grow_and_are_capped_and_jittered() {
        let policy = RetryPolicy {
            max_attempts: 20,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_elapsed: Duration::from_secs(3600),
        };
        let delay = |attempt, random| match policy.decide(
            RetryClass::Transient,
            attempt,
            Duration::ZERO,
            None,
            random,
        ) {
            RetryDecision::RetryAfter(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(delay(1, 0), Duration::from_millis(50));
        assert!(delay(1, u64::MAX) <= Duration::from_millis(100));
        assert!(delay(1, u64::MAX) > Duration::from_millis(99));
        assert_eq!(delay(2, 0), Duration::from_millis(100));
        assert_eq!(delay(3, 0), Duration::from_millis(200));
        assert_eq!(delay(10, 0), Duration::from_secs(1));
        assert!(delay(19, u64::MAX) <= Duration::from_secs(2));
        assert_ne!(delay(4, 1 << 62), delay(4, 3 << 62));
    }

    #[test]
    fn bounds_and_fatal() {
        let policy = RetryPolicy::default();
        let t = RetryClass::Transient;
        assert_eq!(
            policy.decide(RetryClass::Fatal, 1, Duration::ZERO, None, 0),
            RetryDecision::GiveUp(GiveUpReason::Fatal)
        );
        assert_eq!(
            policy.decide(t, 6, Duration::ZERO, None, 0),
            RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted)
        );
        assert_eq!(
            policy.decide(t, 1, Duration::from_secs(60), None, 0),
            RetryDecision::GiveUp(GiveUpReason::TimeExhausted)
        );
        assert_eq!(
            RetryPolicy::never().decide(t, 1, Duration::ZERO, None, 0),
            RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted)
        );
    }

    #[test]
    fn retry_after_is_a_floor_within_the_time_budget() {
        let policy = RetryPolicy::default();
        let t = RetryClass::Transient;
        assert_eq!(
            policy.decide(t, 1, Duration::ZERO, Some(Duration::from_secs(3)), 0),
            RetryDecision::RetryAfter(Duration::from_secs(3))
        );
        assert_eq!(
            policy.decide(t, 1, Duration::from_secs(50), Some(Duration::from_secs(11)), 0),
            RetryDecision::GiveUp(GiveUpReason::TimeExhausted)
        );
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after_seconds(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after_seconds("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after_seconds("-1"), None);
        assert_eq!(parse_retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    /// A seeded xorshift64* generator: deterministic jitter for the schedule's tests.
    fn seeded(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn schedule_counts_attempts_and_time() {
        let start = std::time::Instant::now();
        let policy = RetryPolicy {
            max_attempts: 4,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(10),
        };
        let mut schedule = Schedule::new(policy, start, seeded(7));
        let t = RetryClass::Transient;
        let mut delays = Vec::new();
        while let RetryDecision::RetryAfter(d) = schedule.on_failure(t, start, None) {
            delays.push(d);
        }
        assert_eq!(delays.len(), 3, "4 attempts in all: 3 waits");
        assert_eq!(schedule.attempt(), 4);
        // Equal jitter: each delay lies in [ceiling/2, ceiling].
        for (i, d) in delays.iter().enumerate() {
            let ceiling = Duration::from_millis(100 << i);
            assert!(*d >= ceiling / 2 && *d <= ceiling, "{i}: {d:?}");
        }
        // The same seed gives the same delays.
        let mut again = Schedule::new(policy, start, seeded(7));
        let replay: Vec<_> = (0..3)
            .map(|_| match again.on_failure(t, start, None) {
                RetryDecision::RetryAfter(d) => d,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays, replay);

        // Time runs out: the elapsed time comes from `now`, not from a clock.
        let mut late = Schedule::new(policy, start, seeded(1));
        assert_eq!(
            late.on_failure(t, start + Duration::from_secs(10), None),
            RetryDecision::GiveUp(GiveUpReason::TimeExhausted)
        );
        assert_eq!(late.attempt(), 1, "a give-up does not move the count");
        // Retry-After is a floor; fatal failures stop at once; reset starts over.
        let mut s = Schedule::new(policy, start, seeded(3));
        assert_eq!(
            s.on_failure(t, start, Some(Duration::from_secs(2))),
            RetryDecision::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(s.on_failure(RetryClass::Fatal, start, None), RetryDecision::GiveUp(GiveUpReason::Fatal));
        s.reset(start + Duration::from_secs(100));
        assert_eq!(s.attempt(), 1);
        assert!(matches!(
            s.on_failure(t, start + Duration::from_secs(100), None),
            RetryDecision::RetryAfter(_)
        ));
    }
}
