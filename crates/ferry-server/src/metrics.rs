//! Prometheus metrics through the `metrics` facade and `metrics-exporter-prometheus`.
//!
//! Each [`Metrics`] owns its own recorder (not the process-global one), so several ferry states in
//! one test process count apart; values are recorded with the facade's macros inside
//! [`metrics::with_local_recorder`]. The upload counters keep their historical names
//! (`ferry_uploads_total`, `ferry_upload_duration_seconds`, …); HTTP requests are counted by
//! route, method and status by the access-log layer ([`crate::access`]); `ferry_build_info` and
//! the `process_*` metrics of `metrics-process` are added at each render.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const DURATION_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];
const HTTP_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0, 1800.0];

/// The service's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    /// Uploads by outcome, also kept here so tests and logs can read a count back.
    outcomes: Mutex<BTreeMap<&'static str, u64>>,
    /// Multipart uploads aborted by the reaper.
    pub reaped: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("reaped", &self.reaped).finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts an upload as in flight while alive.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.record(|| gauge!("ferry_uploads_in_flight").decrement(1.0));
    }
}

impl Metrics {
    /// A fresh set of metrics with its own recorder.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("ferry_upload_duration_seconds".into()), &DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("ferry_http_request_duration_seconds".into()),
                    &HTTP_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let process = metrics_process::Collector::default();
        let metrics =
            Self { recorder, handle, process, outcomes: Mutex::default(), reaped: AtomicU64::new(0) };
        metrics.record(|| {
            describe();
            metrics.process.describe();
            gauge!("ferry_uploads_in_flight").set(0.0);
            counter!("ferry_stored_bytes_total").absolute(0);
            gauge!("ferry_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        });
        metrics
    }

    /// Runs `f` with this state's recorder as the facade's recorder.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// Marks an upload in flight until the guard drops.
    pub fn start(&self) -> InFlight<'_> {
        self.record(|| gauge!("ferry_uploads_in_flight").increment(1.0));
        InFlight(self)
    }

    /// Records an upload's outcome (`created` or an error code), bytes stored and duration.
    pub fn finish(&self, outcome: &'static str, bytes: u64, took: Duration) {
        *self
            .outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(outcome)
            .or_default() += 1;
        self.record(|| {
            counter!("ferry_uploads_total", "outcome" => outcome).increment(1);
            counter!("ferry_stored_bytes_total").increment(bytes);
            histogram!("ferry_upload_duration_seconds").record(took.as_secs_f64());
        });
    }

    /// Records one HTTP request: by route (the matched path, never the raw URL), method and status.
    pub fn request(
        &self,
        route: &str,
        method: &str,
        status: u16,
        took: Duration,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let (route, method, status) = (route.to_owned(), method.to_owned(), status.to_string());
        self.record(|| {
            let labels = [("route", route.clone()), ("method", method), ("status", status)];
            counter!("ferry_http_requests_total", &labels).increment(1);
            histogram!("ferry_http_request_duration_seconds", &labels).record(took.as_secs_f64());
            counter!("ferry_http_received_bytes_total", "route" => route.clone()).increment(bytes_in);
            counter!("ferry_http_sent_bytes_total", "route" => route).increment(bytes_out);
        });
    }

    /// Uploads with `outcome` so far.
    pub fn outcome_count(&self, outcome: &str) -> u64 {
        self.outcomes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(outcome)
            .copied()
            .unwrap_or(0)
    }

    /// The exposition text, with the uploader's and the memory budget's figures.
    pub fn render(
        &self,
        part_retries: u64,
        aborted: u64,
        budget_used: u64,
        budget_total: u64,
        part_bytes: u64,
    ) -> String {
        #[allow(clippy::cast_precision_loss, reason = "gauges are f64 in the exposition format")]
        self.record(|| {
            counter!("ferry_part_retries_total").absolute(part_retries);
            counter!("ferry_multipart_aborted_total").absolute(aborted);
            counter!("ferry_reaped_uploads_total").absolute(self.reaped.load(Ordering::Relaxed));
            gauge!("ferry_memory_budget_used_bytes").set(budget_used as f64);
            gauge!("ferry_memory_budget_bytes").set(budget_total as f64);
            gauge!("ferry_part_bytes_held").set(part_bytes as f64);
            self.process.collect();
        });
        self.handle.render()
    }
}

fn describe() {
    describe_counter!("ferry_uploads_total", "Uploads by outcome (created, or the error code).");
    describe_counter!("ferry_stored_bytes_total", "Bytes stored by completed uploads.");
    describe_gauge!("ferry_uploads_in_flight", "Uploads being received.");
    describe_counter!("ferry_part_retries_total", "Extra attempts made for S3 parts.");
    describe_counter!(
        "ferry_multipart_aborted_total",
        "Multipart uploads aborted after failures or cancellations."
    );
    describe_counter!("ferry_reaped_uploads_total", "Stale multipart uploads aborted by the reaper.");
    describe_gauge!("ferry_memory_budget_used_bytes", "Part-buffer budget reserved by uploads.");
    describe_gauge!("ferry_memory_budget_bytes", "Part-buffer budget in all.");
    describe_gauge!("ferry_part_bytes_held", "Part bytes held by uploads right now.");
    describe_histogram!("ferry_upload_duration_seconds", "Time from request to answer.");
    describe_counter!("ferry_http_requests_total", "HTTP requests by route, method and status.");
    describe_histogram!(
        "ferry_http_request_duration_seconds",
        "Time from request to response headers, by route, method and status."
    );
    describe_counter!("ferry_http_received_bytes_total", "Request body bytes read, by route.");
    describe_counter!("ferry_http_sent_bytes_total", "Response body bytes (as declared), by route.");
    describe_gauge!("ferry_build_info", "Always 1; the version of this ferry binary as a label.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts() {
        let m = Metrics::default();
        {
            let _g = m.start();
            assert!(m.render(0, 0, 0, 1, 0).contains("ferry_uploads_in_flight 1\n"));
        }
        m.finish("created", 10, Duration::from_millis(300));
        m.finish("payload_too_large", 0, Duration::from_secs(2));
        let text = m.render(3, 1, 5, 10, 0);
        assert!(text.contains("ferry_uploads_total{outcome=\"created\"} 1\n"), "{text}");
        assert!(text.contains("ferry_uploads_total{outcome=\"payload_too_large\"} 1\n"), "{text}");
        assert!(text.contains("ferry_uploads_in_flight 0\n"), "{text}");
        assert!(text.contains("ferry_part_retries_total 3\n"), "{text}");
        assert!(text.contains("ferry_stored_bytes_total 10\n"), "{text}");
        assert!(text.contains("ferry_memory_budget_used_bytes 5\n"), "{text}");
        assert!(text.contains("ferry_upload_duration_seconds_bucket{le=\"0.5\"} 1\n"), "{text}");
        assert!(text.contains("ferry_upload_duration_seconds_count 2\n"), "{text}");
        assert!(text.contains("# TYPE ferry_upload_duration_seconds histogram"), "{text}");
        assert!(text.contains(&format!("ferry_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"))));
        assert_eq!(m.outcome_count("created"), 1);
    }

    #[test]
    fn counts_requests_by_route_and_status_and_process_figures() {
        let m = Metrics::default();
        m.request("/v1/uploads", "POST", 201, Duration::from_millis(20), 1000, 300);
        m.request("/v1/uploads", "POST", 201, Duration::from_millis(2), 24, 300);
        m.request("/v1/files/{id}", "GET", 403, Duration::from_millis(1), 0, 90);
        let text = m.render(0, 0, 0, 0, 0);
        let post = "route=\"/v1/uploads\",method=\"POST\",status=\"201\"";
        assert!(text.contains(&format!("ferry_http_requests_total{{{post}}} 2\n")), "{text}");
        assert!(text.contains(&format!("ferry_http_request_duration_seconds_count{{{post}}} 2\n")), "{text}");
        assert!(text.contains("ferry_http_received_bytes_total{route=\"/v1/uploads\"} 1024\n"), "{text}");
        assert!(text.contains("ferry_http_sent_bytes_total{route=\"/v1/files/{id}\"} 90\n"), "{text}");
        if cfg!(target_os = "linux") {
            assert!(text.contains("process_resident_memory_bytes "), "{text}");
        }
        // A second set of metrics counts apart (each state has its own recorder).
        assert!(!Metrics::default().render(0, 0, 0, 0, 0).contains("ferry_http_requests_total{"));
    }
}
