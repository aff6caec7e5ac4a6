//! Prometheus metrics, rendered by hand in the text exposition format (a handful of counters and
//! gauges does not need a metrics framework).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const DURATION_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    outcomes: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    bytes_stored: AtomicU64,
    in_flight: AtomicU64,
    durations: Mutex<([u64; DURATION_BUCKETS.len()], u64, f64)>,
    /// Multipart uploads aborted by the reaper.
    pub reaped: AtomicU64,
}

/// Counts an upload as in flight while alive.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Marks an upload in flight until the guard drops.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
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
        self.bytes_stored.fetch_add(bytes, Ordering::Relaxed);
        let mut d = self.durations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let secs = took.as_secs_f64();
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                d.0[i] += 1;
            }
        }
        d.1 += 1;
        d.2 += secs;
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
        let mut out = String::new();
        let _ = writeln!(out, "# HELP ferry_uploads_total Uploads by outcome (created, or the error code).");
        let _ = writeln!(out, "# TYPE ferry_uploads_total counter");
        for (outcome, n) in self.outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            let _ = writeln!(out, "ferry_uploads_total{{outcome=\"{outcome}\"}} {n}");
        }
        let gauge = |out: &mut String, name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        gauge(
            &mut out,
            "ferry_stored_bytes_total",
            "counter",
            "Bytes stored by completed uploads.",
            self.bytes_stored.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ferry_uploads_in_flight",
            "gauge",
            "Uploads being received.",
            self.in_flight.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ferry_part_retries_total",
            "counter",
            "Extra attempts made for S3 parts.",
            part_retries,
        );
        gauge(
            &mut out,
            "ferry_multipart_aborted_total",
            "counter",
            "Multipart uploads aborted after failures or cancellations.",
            aborted,
        );
        gauge(
            &mut out,
            "ferry_reaped_uploads_total",
            "counter",
            "Stale multipart uploads aborted by the reaper.",
            self.reaped.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "ferry_memory_budget_used_bytes",
            "gauge",
            "Part-buffer budget reserved by uploads.",
            budget_used,
        );
        gauge(&mut out, "ferry_memory_budget_bytes", "gauge", "Part-buffer budget in all.", budget_total);
        gauge(
            &mut out,
            "ferry_part_bytes_held",
            "gauge",
            "Part bytes held by uploads right now.",
            part_bytes,
        );
        let d = self.durations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(
            out,
            "# HELP ferry_upload_duration_seconds Time from request to answer.\n# TYPE ferry_upload_duration_seconds histogram"
        );
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "ferry_upload_duration_seconds_bucket{{le=\"{bound}\"}} {}", d.0[i]);
        }
        let _ = writeln!(out, "ferry_upload_duration_seconds_bucket{{le=\"+Inf\"}} {}", d.1);
        let _ = writeln!(out, "ferry_upload_duration_seconds_sum {}", d.2);
        let _ = writeln!(out, "ferry_upload_duration_seconds_count {}", d.1);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts() {
        let m = Metrics::default();
        {
            let _g = m.start();
            assert!(m.render(0, 0, 0, 1, 0).contains("ferry_uploads_in_flight 1"));
        }
        m.finish("created", 10, Duration::from_millis(300));
        m.finish("payload_too_large", 0, Duration::from_secs(2));
        let text = m.render(3, 1, 5, 10, 0);
        assert!(text.contains("ferry_uploads_total{outcome=\"created\"} 1"));
        assert!(text.contains("ferry_uploads_total{outcome=\"payload_too_large\"} 1"));
        assert!(text.contains("ferry_uploads_in_flight 0"));
        assert!(text.contains("ferry_part_retries_total 3"));
        assert!(text.contains("ferry_upload_duration_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("ferry_upload_duration_seconds_count 2"));
        assert_eq!(m.outcome_count("created"), 1);
    }
}
