//! Operations: the admin listener and the probes.
//!
//! With `ops.admin_listen` set, a second listener serves `/metrics`, `/healthz` and `/readyz` (for
//! Prometheus and the orchestrator's probes) and the public port stops serving `/metrics`; the
//! public port keeps `/healthz` and `/readyz`, answered by the same [`Health`].
//!
//! Readiness is about this replica taking new uploads: it turns 503 as soon as SIGTERM arrives
//! ([`Health::drain`]), so load balancers stop sending while uploads in flight finish within the
//! grace period, and it checks the bucket at most once per `ready_cache_secs` (probes from many
//! sources cost one S3 request per period). It never asks Genesys: a Genesys outage must not take
//! every replica out; it shows in the upload outcomes and the logs instead.

use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use serde::Deserialize;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How long one bucket check may take before readiness counts it as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// A failed check is reused for at most this long, so a replica comes back quickly.
const FAILURE_CACHE: Duration = Duration::from_secs(1);

/// Operations settings (`[ops]` in the TOML file).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsSettings {
    /// Address of the admin listener for `/metrics`, `/healthz` and `/readyz` (e.g.
    /// `0.0.0.0:9090`). When set, the public port no longer serves `/metrics`. Unset by default.
    pub admin_listen: Option<SocketAddr>,
    /// Seconds a bucket check's answer is reused by `/readyz` [default 5].
    pub ready_cache_secs: u64,
}

impl Default for OpsSettings {
    fn default() -> Self {
        Self { admin_listen: None, ready_cache_secs: 5 }
    }
}

/// Readiness: draining after SIGTERM, and the bucket check's cached answer.
#[derive(Debug)]
pub struct Health {
    draining: AtomicBool,
    cache_for: Duration,
    /// The last check's time and answer; held across a check so concurrent probes wait for one
    /// check instead of each making their own.
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl Health {
    /// Readiness that reuses a bucket check's answer for `cache_for`.
    pub fn new(cache_for: Duration) -> Self {
        Self { draining: AtomicBool::new(false), cache_for, last: tokio::sync::Mutex::new(None) }
    }

    /// From now on this replica is not ready (SIGTERM arrived).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether [`Health::drain`] was called.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether storage answers: the cached answer while it is younger than the cache period (a
    /// failure: at most one second), else the answer of `check` (one caller checks; the others
    /// wait for its answer).
    pub async fn storage_ok<F, Fut>(&self, check: F) -> bool
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = bool>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < if ok { self.cache_for } else { self.cache_for.min(FAILURE_CACHE) }
        {
            return ok;
        }
        let ok = check().await;
        *last = Some((Instant::now(), ok));
        ok
    }

    /// The readiness answer: 503 while draining, else by the (cached) bucket check.
    pub async fn ready(&self, state: &AppState) -> (StatusCode, &'static str) {
        if self.draining() {
            return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        }
        let storage = self
            .storage_ok(|| async {
                match tokio::time::timeout(CHECK_TIMEOUT, state.uploader.check_bucket()).await {
                    Ok(Ok(())) => true,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "not ready: the bucket does not answer");
                        false
                    }
                    Err(_) => {
                        tracing::warn!("not ready: the bucket check timed out");
                        false
                    }
                }
            })
            .await;
        if storage {
            (StatusCode::OK, "ready")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
        }
    }
}

/// `GET /readyz`.
pub async fn ready(State(state): State<AppState>) -> Response {
    state.health.ready(&state).await.into_response()
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /metrics`: the Prometheus exposition text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let stats = state.uploader.stats();
    let text = state.metrics.render(
        stats.part_retries(),
        stats.aborted(),
        state.budget_used_bytes(),
        state.config.limits.memory_budget,
        state.uploader.memory().held(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The admin listener's router: `/metrics`, `/healthz`, `/readyz`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .with_state(state)
}

/// Binds `ops.admin_listen`, when set, and serves the admin router there in a task of its own
/// (dropped with the process: it keeps answering, 503 on `/readyz`, while uploads drain).
///
/// # Errors
/// When the address cannot be bound.
pub async fn start(state: &AppState) -> std::io::Result<Option<(SocketAddr, tokio::task::JoinHandle<()>)>> {
    let Some(addr) = state.config.ops.admin_listen else { return Ok(None) };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let router = router(state.clone());
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the admin listener failed");
        }
    });
    tracing::info!(addr = %bound, "admin listener (metrics, probes)");
    Ok(Some((bound, task)))
}

/// Resolves when `signal` does, marking `state` as draining first (so `/readyz` says 503 from the
/// first moment of the shutdown).
pub async fn drain_on(state: AppState, signal: impl Future<Output = ()>) {
    signal.await;
    tracing::info!("shutdown signal: /readyz now answers 503");
    state.health.drain();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_is_checked_once_per_cache_period() {
        let health = Health::new(Duration::from_secs(5));
        let checks = AtomicU32::new(0);
        let check = |answer: bool| {
            let checks = &checks;
            move || async move {
                checks.fetch_add(1, Ordering::SeqCst);
                answer
            }
        };
        assert!(health.storage_ok(check(true)).await);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(health.storage_ok(check(false)).await, "the cached answer within the period");
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!health.storage_ok(check(false)).await, "a fresh check after the period");
        assert_eq!(checks.load(Ordering::SeqCst), 2);
        // A failure is cached as well (for a second): probes during an outage do not hammer S3.
        tokio::time::advance(Duration::from_millis(900)).await;
        assert!(!health.storage_ok(check(true)).await);
        assert_eq!(checks.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(health.storage_ok(check(true)).await, "back soon after an outage");
        assert_eq!(checks.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_probes_share_one_check() {
        let health = Health::new(Duration::from_secs(5));
        let checks = AtomicU32::new(0);
        let slow = || async {
            checks.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            true
        };
        let (a, b, c) =
            tokio::join!(health.storage_ok(slow), health.storage_ok(slow), health.storage_ok(slow));
        assert!(a && b && c);
        assert_eq!(checks.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn draining_is_set_by_the_signal() {
        let s3 = ferry_s3::S3Config {
            endpoint: Some("http://127.0.0.1:9".into()),
            force_path_style: true,
            ..ferry_s3::S3Config::default()
        };
        let client = ferry_s3::build_client(&s3).await;
        let state = crate::state::AppState::with_s3_client(test_config(), client).unwrap();
        assert!(!state.health.draining());
        drain_on(state.clone(), async {}).await;
        assert!(state.health.draining());
        assert_eq!(state.health.ready(&state).await, (StatusCode::SERVICE_UNAVAILABLE, "shutting down"));
    }

    fn test_config() -> crate::config::Config {
        let mut config = crate::config::Config::default();
        config.s3.bucket = "b".into();
        config.link_secret = "0123456789abcdef0123456789abcdef".into();
        config
    }
}
