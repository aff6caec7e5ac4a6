//! One S3 request under ferry's retry policy: classify each failure with ferry-core, wait what
//! its [`Schedule`] decides (attempt count, time spent and jitter are the schedule's), and turn the
//! last failure into a typed [`Error`].

use crate::error::{BoxError, Error};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use ferry_core::retry::{
    Failure, Jitter, RetryClass, RetryDecision, RetryPolicy, Schedule, classify, parse_retry_after_seconds,
};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// What one failed attempt looked like.
#[derive(Debug)]
pub(crate) struct AttemptError {
    pub(crate) status: Option<u16>,
    pub(crate) code: Option<String>,
    pub(crate) message: String,
    pub(crate) kind: FailureKind,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) source: Option<BoxError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    Http,
    Reset,
    Connect,
    Timeout,
    /// A local decision: the call could not even be built.
    Fatal,
    /// What S3 stored differs from what was sent; another attempt re-sends it.
    Mismatch {
        part: Option<u32>,
        what: &'static str,
    },
}

impl AttemptError {
    fn failure(&self) -> Option<Failure<'_>> {
        Some(match self.kind {
            FailureKind::Http => {
                Failure::Http { status: self.status.unwrap_or(0), code: self.code.as_deref() }
            }
            FailureKind::Reset => Failure::ConnectionReset,
            FailureKind::Connect => Failure::ConnectFailed,
            FailureKind::Timeout => Failure::Timeout,
            FailureKind::Fatal | FailureKind::Mismatch { .. } => return None,
        })
    }

    fn class(&self) -> RetryClass {
        match (self.kind, self.failure()) {
            (FailureKind::Mismatch { .. }, _) => RetryClass::Transient,
            (_, Some(failure)) => classify(&failure),
            (_, None) => RetryClass::Fatal,
        }
    }

    /// A mismatch between what S3 reports and what was computed.
    pub(crate) fn mismatch(part: Option<u32>, what: &'static str, expected: String, actual: String) -> Self {
        Self {
            status: None,
            code: None,
            message: format!("expected {expected}, got {actual}"),
            kind: FailureKind::Mismatch { part, what },
            retry_after: None,
            source: Some(Box::new(MismatchDetail { expected, actual })),
        }
    }

    fn into_error(self, operation: &'static str, attempts: u32, bucket: &str) -> Error {
        if let FailureKind::Mismatch { part, what } = self.kind {
            let (expected, actual) = self
                .source
                .and_then(|s| s.downcast::<MismatchDetail>().ok())
                .map_or((String::new(), String::new()), |d| (d.expected, d.actual));
            return Error::ChecksumMismatch { part, what, expected, actual };
        }
        match self.code.as_deref() {
            Some("AccessDenied") => return Error::AccessDenied { operation, message: self.message },
            Some("NoSuchBucket") => return Error::NoSuchBucket { bucket: bucket.to_string() },
            Some("EntityTooSmall") => return Error::EntityTooSmall { message: self.message },
            Some("SlowDown" | "Throttling" | "ThrottlingException" | "TooManyRequestsException") => {
                return Error::Throttled { operation, attempts };
            }
            _ => {}
        }
        match self.kind {
            FailureKind::Http if self.status == Some(429) => Error::Throttled { operation, attempts },
            FailureKind::Reset | FailureKind::Connect | FailureKind::Timeout => Error::Transport {
                operation,
                attempts,
                source: self.source.unwrap_or_else(|| self.message.clone().into()),
            },
            _ => Error::Service {
                operation,
                status: self.status,
                code: self.code,
                message: self.message,
                attempts,
            },
        }
    }
}

#[derive(Debug)]
struct MismatchDetail {
    expected: String,
    actual: String,
}

impl std::fmt::Display for MismatchDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "expected {}, got {}", self.expected, self.actual)
    }
}

impl std::error::Error for MismatchDetail {}

impl<E> From<SdkError<E, HttpResponse>> for AttemptError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn from(err: SdkError<E, HttpResponse>) -> Self {
        let blank = |kind| AttemptError {
            status: None,
            code: None,
            message: String::new(),
            kind,
            retry_after: None,
            source: None,
        };
        match err {
            SdkError::ServiceError(ctx) => {
                let raw = ctx.raw();
                let status = raw.status().as_u16();
                let retry_after = raw.headers().get("retry-after").and_then(parse_retry_after_seconds);
                let service = ctx.err();
                AttemptError {
                    status: Some(status),
                    code: service.code().map(str::to_owned),
                    message: service.message().unwrap_or("no message").to_owned(),
                    kind: FailureKind::Http,
                    retry_after,
                    source: None,
                }
            }
            SdkError::TimeoutError(_) => {
                AttemptError { message: "attempt timed out".into(), ..blank(FailureKind::Timeout) }
            }
            SdkError::DispatchFailure(failure) => {
                let kind = if failure.is_timeout() {
                    FailureKind::Timeout
                } else if failure.is_io() {
                    FailureKind::Reset
                } else if failure.is_user() {
                    FailureKind::Fatal
                } else {
                    FailureKind::Connect
                };
                let source: BoxError = match failure.as_connector_error() {
                    Some(e) => format!("{e}").into(),
                    None => "dispatch failure".into(),
                };
                AttemptError { message: source.to_string(), source: Some(source), ..blank(kind) }
            }
            SdkError::ResponseError(ctx) => {
                // The response could not be read or parsed: typically a connection cut mid-response.
                let status = ctx.raw().status().as_u16();
                AttemptError {
                    status: Some(status),
                    message: format!("unreadable response (HTTP {status})"),
                    ..blank(FailureKind::Reset)
                }
            }
            other => AttemptError {
                message: format!("{other}"),
                source: Some(Box::new(other)),
                ..blank(FailureKind::Fatal)
            },
        }
    }
}

/// Runs `attempt` until it succeeds or `policy` gives up; returns the value and the attempts made.
/// `attempt` is given the number of the attempt (1 for the first).
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    operation: &'static str,
    bucket: &str,
    attempt: F,
) -> Result<(T, u32), Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let schedule = Schedule::new(*policy, Instant::now().into_std(), rand::random::<u64> as fn() -> u64);
    run(schedule, operation, bucket, attempt).await
}

/// The retry loop: `schedule` counts the attempts and the time and decides each wait. Time is
/// tokio's, so a paused test clock drives it.
async fn run<T, F, Fut, J>(
    mut schedule: Schedule<J>,
    operation: &'static str,
    bucket: &str,
    mut attempt: F,
) -> Result<(T, u32), Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
    J: Jitter,
{
    loop {
        let number = schedule.attempt();
        let err = match attempt(number).await {
            Ok(value) => return Ok((value, number)),
            Err(err) => err,
        };
        match schedule.on_failure(err.class(), Instant::now().into_std(), err.retry_after) {
            RetryDecision::RetryAfter(delay) => {
                tracing::debug!(operation, attempt = number, ?delay, status = ?err.status, code = ?err.code, kind = ?err.kind, "S3 attempt failed; retrying");
                tokio::time::sleep(delay).await;
            }
            RetryDecision::GiveUp(reason) => {
                tracing::debug!(operation, attempt = number, ?reason, status = ?err.status, code = ?err.code, "S3 attempt failed; giving up");
                return Err(err.into_error(operation, number, bucket));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn timeout() -> AttemptError {
        AttemptError {
            status: None,
            code: None,
            message: "attempt timed out".into(),
            kind: FailureKind::Timeout,
            retry_after: None,
            source: None,
        }
    }

    /// A seeded xorshift64*: the same jitter on every run.
    fn seeded(mut state: u64) -> impl FnMut() -> u64 + Clone {
        move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_what_the_schedule_decides_then_succeeds() {
        let start = Instant::now();
        let schedule = Schedule::new(policy(), start.into_std(), seeded(42));
        // The delays the same seed gives, worked out by the schedule itself.
        let mut twin = schedule.clone();
        let expected: Vec<Duration> = (0..2)
            .map(|_| match twin.on_failure(RetryClass::Transient, start.into_std(), None) {
                RetryDecision::RetryAfter(d) => d,
                other => panic!("{other:?}"),
            })
            .collect();
        let mut seen = Vec::new();
        let (value, attempts) = run(schedule, "UploadPart", "b", |n| {
            seen.push((n, Instant::now() - start));
            async move { if n < 3 { Err(timeout()) } else { Ok("etag") } }
        })
        .await
        .unwrap();
        assert_eq!((value, attempts), ("etag", 3));
        // tokio's timer wheel rounds each sleep up to the millisecond.
        let ms = |d: Duration| Duration::from_millis(d.as_nanos().div_ceil(1_000_000) as u64);
        let (first, second) = (ms(expected[0]), ms(expected[1]));
        assert_eq!(seen, [(1, Duration::ZERO), (2, first), (3, first + second)]);
        assert_ne!(expected[0], expected[1]);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_last_attempt_and_at_once_when_fatal() {
        let schedule = Schedule::new(policy(), Instant::now().into_std(), seeded(1));
        let mut calls = 0;
        let err = run(schedule, "UploadPart", "b", |_| {
            calls += 1;
            async { Err::<(), _>(timeout()) }
        })
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Transport { operation: "UploadPart", attempts: 4, .. }), "{err:?}");
        assert_eq!(calls, 4);

        let schedule = Schedule::new(policy(), Instant::now().into_std(), seeded(1));
        let denied = || AttemptError {
            status: Some(403),
            code: Some("AccessDenied".into()),
            message: "no".into(),
            kind: FailureKind::Http,
            retry_after: None,
            source: None,
        };
        let started = Instant::now();
        let err = run(schedule, "PutObject", "b", |_| async { Err::<(), _>(denied()) }).await.unwrap_err();
        assert!(matches!(err, Error::AccessDenied { operation: "PutObject", .. }), "{err:?}");
        assert_eq!(Instant::now(), started, "a fatal failure is not waited on");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let schedule = Schedule::new(policy(), Instant::now().into_std(), seeded(3));
        let start = Instant::now();
        let mut at = Vec::new();
        run(schedule, "PutObject", "b", |n| {
            at.push(Instant::now() - start);
            async move {
                if n == 1 {
                    Err(AttemptError {
                        status: Some(503),
                        code: Some("SlowDown".into()),
                        message: String::new(),
                        kind: FailureKind::Http,
                        retry_after: Some(Duration::from_secs(7)),
                        source: None,
                    })
                } else {
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(at, [Duration::ZERO, Duration::from_secs(7)]);
    }
}
