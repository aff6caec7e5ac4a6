//! The crash-debris reaper: a process killed mid-upload leaves its multipart upload behind. At
//! start-up and then periodically, abort the multipart uploads under ferry's key prefix that are
//! older than the configured age and that this process is not working on, and count them in
//! `/metrics`. Another replica may be writing one of them: the age is never less than
//! `max_upload_secs` plus `reap_margin_secs` ([`crate::config::Limits::reap_age`]), so only an
//! upload no live process can still be writing is aborted. A bucket lifecycle rule (`AbortIncompleteMultipartUpload`) is the recommended
//! backstop (see `docs/api.md`).

use crate::state::AppState;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// One pass: returns how many uploads were aborted.
pub async fn reap_once(state: &AppState) -> usize {
    let max_age = state.config.limits.reap_age();
    // tus: expired uploads are removed, and live ones' multipart uploads are left alone.
    match crate::tus::reap(state, max_age).await {
        Ok(reaped) => {
            state.metrics.reaped.fetch_add(reaped as u64, Ordering::Relaxed);
            reaped
        }
        Err(error) => {
            tracing::warn!(%error, "the reaper could not list multipart uploads");
            0
        }
    }
}

/// Runs [`reap_once`] now and then every `limits.reap_interval_secs`, until the task is dropped.
pub async fn run(state: AppState) {
    let interval = Duration::from_secs(state.config.limits.reap_interval_secs.max(1));
    loop {
        let reaped = reap_once(&state).await;
        if reaped > 0 {
            tracing::info!(reaped, "stale multipart uploads aborted");
        }
        tokio::time::sleep(interval).await;
    }
}
