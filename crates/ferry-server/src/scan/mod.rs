//! Malware scanning with ClamAV before delivery (`[scan]`).
//!
//! While an upload's body streams to S3, the same part `Bytes` stream to clamd's `INSTREAM` through
//! a [`ferry_s3::Tap`] (back-pressure from the slower of the two, no second copy); the upload is
//! completed only after clamd's verdict. Infected: the multipart upload is aborted, nothing is
//! delivered, and the answer is `422 malware_detected` naming the signature, with a `warn` log
//! event (`event = "malware_detected"`) and `ferry_malware_detected_total`. This is the one
//! deliberate exception to "a verified file is never thrown away". A file larger than the scanner
//! takes (`max_bytes`, or clamd's own limits, reported with `AlertExceedsMax`) and a scanner that
//! cannot be reached, breaks off or exceeds `timeout_secs` follow their policy: `refuse` (the
//! default; `413 too_large_to_scan`, `503 scanner_unavailable`, nothing kept) or `unscanned`
//! (delivered, the reference saying `scan.result = "unscanned"`).
//!
//! A resumable upload is scanned once, at completion, by [`scan_object`] (the stored object
//! streamed from S3 to clamd; an infected object is deleted). [`watch`] asks clamd's `VERSION`
//! every `version_interval_secs` for the database age metric and the reference's `database`.

mod clamd;

use crate::error::{AppError, ErrorCode};
use crate::state::AppState;
use bytes::Bytes;
use clamd::{Address, Answer};
use ferry_s3::{BoxError, Tap};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// What to do when a file cannot be scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fallback {
    /// Refuse the upload; nothing is kept (the default).
    #[default]
    Refuse,
    /// Deliver it, the reference saying `scan.result = "unscanned"`.
    Unscanned,
}

/// `[scan]`: the clamd to scan with, and what to do when it cannot scan a file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanSettings {
    /// clamd's address: `host:port` (or `tcp://host:port`), or a Unix socket (`unix:/path` or an
    /// absolute path). Empty (the default): no scanning. Every deployment is scanned unless its
    /// own `scan = false`.
    pub address: String,
    /// Seconds clamd may take to accept the connection, to take each chunk, and to answer once
    /// the body has ended (default 60; then the scanner counts as unavailable).
    pub timeout_secs: u64,
    /// Seconds per GiB added to `timeout_secs` for clamd's answer after the last byte: clamd scans
    /// the whole stream only then (default 120).
    pub verdict_secs_per_gib: u64,
    /// Largest file sent to clamd (default 100 MiB). Keep it within clamd's `StreamMaxLength`,
    /// `MaxFileSize` and `MaxScanSize` (raise those for large files; clamd scans at most 2 GiB).
    pub max_bytes: u64,
    /// A file above `max_bytes`, or one clamd reports as above its limits: `refuse` (413
    /// `too_large_to_scan`) or `unscanned`.
    pub too_large: Fallback,
    /// clamd unreachable, failing or too slow: `refuse` (503 `scanner_unavailable`) or
    /// `unscanned`.
    pub unavailable: Fallback,
    /// How often clamd's `VERSION` is asked (the signature database's age), seconds (default 300).
    pub version_interval_secs: u64,
    /// Where an infected file is kept for the security team: `<quarantine_prefix><its key>` in the
    /// bucket (never linked, never delivered). Empty (the default): it is not kept at all.
    pub quarantine_prefix: String,
}

impl Default for ScanSettings {
    fn default() -> Self {
        Self {
            address: String::new(),
            timeout_secs: 60,
            verdict_secs_per_gib: 120,
            max_bytes: 100 * 1024 * 1024,
            too_large: Fallback::Refuse,
            unavailable: Fallback::Refuse,
            version_interval_secs: 300,
            quarantine_prefix: String::new(),
        }
    }
}

/// The reference's `scan`: what scanned the file and what it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    /// Always `clamav`.
    pub engine: &'static str,
    /// `clean` or `unscanned`.
    pub result: &'static str,
    /// clamd's signature database (`27467/Sun Nov 29 08:31:12 2026`), when it said.
    pub database: Option<String>,
    /// Why a file went unscanned: `too_large` or `scanner_unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The scanner: clamd's address, the settings, and what its last `VERSION` said.
#[derive(Debug)]
pub struct Scanner {
    address: Address,
    settings: ScanSettings,
    /// The database part of the last `VERSION` answer.
    database: Mutex<Option<String>>,
}

impl Scanner {
    /// The scanner `[scan]` describes, or `None` when it has no address.
    ///
    /// # Errors
    /// An address that is neither `host:port` nor a socket path, or a zero limit.
    pub fn from_config(settings: &ScanSettings) -> anyhow::Result<Option<Arc<Self>>> {
        if settings.address.trim().is_empty() {
            return Ok(None);
        }
        let address = Address::parse(&settings.address)
            .map_err(|problem| anyhow::anyhow!("invalid setting `scan.address`: {problem}"))?;
        anyhow::ensure!(settings.timeout_secs > 0, "invalid setting `scan.timeout_secs`: must be at least 1");
        anyhow::ensure!(settings.max_bytes > 0, "invalid setting `scan.max_bytes`: must be at least 1");
        Ok(Some(Arc::new(Self { address, settings: settings.clone(), database: Mutex::new(None) })))
    }

    fn limit(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_secs)
    }

    fn limits(&self) -> clamd::Limits {
        clamd::Limits { step: self.limit(), per_gib: Duration::from_secs(self.settings.verdict_secs_per_gib) }
    }

    fn report(&self, result: &'static str, reason: Option<&'static str>) -> ScanReport {
        let database = self.database.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        ScanReport { engine: "clamav", result, database, reason }
    }

    /// Turns clamd's answer into the report, or the refusal the policy says.
    fn judge(
        &self,
        state: &AppState,
        deployment: &str,
        bytes: u64,
        answer: Result<Answer, String>,
    ) -> Result<ScanReport, AppError> {
        let outcome = match answer {
            Ok(Answer::Clean) => Ok(self.report("clean", None)),
            Ok(Answer::Found(signature)) => {
                tracing::warn!(
                    event = "malware_detected",
                    deployment,
                    signature = %signature,
                    bytes,
                    "malware detected; the upload is aborted and nothing is delivered"
                );
                let deployment = deployment.to_owned();
                state.metrics.record(|| {
                    metrics::counter!("ferry_malware_detected_total", "deployment" => deployment)
                        .increment(1);
                });
                let kept = if self.settings.quarantine_prefix.is_empty() {
                    "nothing was kept"
                } else {
                    "it is kept in quarantine and not delivered"
                };
                Err(AppError::new(
                    ErrorCode::MalwareDetected,
                    format!("malware detected: {signature}; {kept}"),
                ))
            }
            Ok(Answer::TooLarge(why)) => {
                tracing::warn!(deployment, bytes, why = %why, "the file is larger than the scanner takes");
                match self.settings.too_large {
                    Fallback::Refuse => Err(too_large_to_scan(self.settings.max_bytes)),
                    Fallback::Unscanned => Ok(self.report("unscanned", Some("too_large"))),
                }
            }
            Ok(Answer::Failed(why)) | Err(why) => {
                tracing::warn!(deployment, bytes, error = %why, "the scanner is unavailable");
                match self.settings.unavailable {
                    Fallback::Refuse => Err(AppError::new(
                        ErrorCode::ScannerUnavailable,
                        "the malware scanner is unavailable; nothing was kept",
                    )
                    .retry_after(30)),
                    Fallback::Unscanned => Ok(self.report("unscanned", Some("scanner_unavailable"))),
                }
            }
        };
        let result = match &outcome {
            Ok(report) => report.result,
            Err(error) if error.code() == ErrorCode::MalwareDetected => "infected",
            Err(_) => "refused",
        };
        state.metrics.record(|| metrics::counter!("ferry_scans_total", "result" => result).increment(1));
        outcome
    }

    /// Asks `VERSION` and remembers the database; sets the age and availability gauges.
    async fn refresh_version(&self, state: &AppState) {
        let version = clamd::version(&self.address, self.limit()).await;
        let now = i64::try_from(state.now_unix()).unwrap_or(i64::MAX);
        state.metrics.record(|| match &version {
            Ok(version) => {
                metrics::gauge!("ferry_scanner_up").set(1.0);
                if let Some(date) = version.database_unix {
                    #[allow(clippy::cast_precision_loss, reason = "gauges are f64")]
                    metrics::gauge!("ferry_scan_database_age_seconds").set((now - date).max(0) as f64);
                }
            }
            Err(_) => metrics::gauge!("ferry_scanner_up").set(0.0),
        });
        match version {
            Ok(version) => {
                let database = version.text.split_once('/').map(|(_, db)| db.to_owned());
                *self.database.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = database;
            }
            Err(error) => tracing::warn!(%error, "clamd's VERSION could not be read"),
        }
    }
}

/// `413 too_large_to_scan`.
fn too_large_to_scan(max: u64) -> AppError {
    AppError::new(
        ErrorCode::TooLargeToScan,
        format!("the file is larger than the malware scanner takes ({max} bytes); nothing was kept"),
    )
}

/// The scanner for `deployment`, unless scanning is off for it.
fn scanner_for(state: &AppState, deployment: &str) -> Option<Arc<Scanner>> {
    let on = state.destination(deployment).is_none_or(|d| d.settings.scan != Some(false));
    state.scanner.clone().filter(|_| on)
}

/// One upload's scan: the tap to hand the uploader (none when the file is not sent to clamd), and
/// the report once the tap's verdict was clean or the policy let the file through.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) tap: Option<Tap>,
    report: Arc<OnceLock<ScanReport>>,
    /// With a quarantine: the refusal of an infected file, which the tap let complete so that it
    /// can be kept apart.
    infected: Arc<Mutex<Option<AppError>>>,
    scanner: Arc<Scanner>,
}

impl Scan {
    /// After the upload stored `stored`: the report, or (an infected file kept for quarantine)
    /// the refusal, once the object is moved under the quarantine prefix.
    pub(crate) async fn finish(
        self,
        state: &AppState,
        stored: &ferry_s3::Stored,
    ) -> Result<Option<ScanReport>, AppError> {
        let infected = self.infected.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(refused) = infected {
            quarantine(state, &self.scanner, &stored.object.key).await;
            return Err(refused);
        }
        Ok(self.report.get().cloned())
    }
}

/// Moves an infected object out of reach: copied under the quarantine prefix (when one is set),
/// then deleted where it was. Failures are logged; the delete is tried whatever the copy did.
async fn quarantine(state: &AppState, scanner: &Scanner, key: &str) {
    let prefix = &scanner.settings.quarantine_prefix;
    if !prefix.is_empty() {
        let to = format!("{prefix}{key}");
        match state.uploader.copy(key, &to).await {
            Ok(()) => {
                tracing::warn!(event = "malware_quarantined", key = %to, "the infected file is kept in quarantine")
            }
            Err(error) => tracing::error!(%error, "the infected file could not be copied to the quarantine"),
        }
    }
    if let Err(error) = state.uploader.delete(key).await {
        tracing::error!(%error, "a refused object could not be deleted");
    }
}

/// Frames queued for clamd at most (each a slice of a part; the queue keeps it alive).
const QUEUE: usize = 8;

/// The scan of an upload for `deployment` of `declared` bytes (when known), or `None` when it is
/// not scanned. A declared length above the scanner's limit is refused here, before any byte is
/// read, when the policy says so.
pub(crate) fn start(
    state: &AppState,
    deployment: &str,
    declared: Option<u64>,
) -> Result<Option<Scan>, AppError> {
    let Some(scanner) = scanner_for(state, deployment) else { return Ok(None) };
    let report = Arc::new(OnceLock::new());
    if declared.is_some_and(|len| len > scanner.settings.max_bytes) {
        let answer = Ok(Answer::TooLarge(format!("declared {} bytes", declared.unwrap_or_default())));
        let _ = report.set(scanner.judge(state, deployment, declared.unwrap_or_default(), answer)?);
        return Ok(Some(Scan { tap: None, report, infected: Arc::default(), scanner }));
    }
    let infected = Arc::new(Mutex::new(None));
    let (slot, infected_slot) = (Arc::clone(&report), Arc::clone(&infected));
    let (state, deployment, reader) = (state.clone(), deployment.to_owned(), Arc::clone(&scanner));
    let tap = Tap::spawn(QUEUE, move |rx: mpsc::Receiver<Bytes>| async move {
        let (bytes, answer) = scan_frames(&reader, tokio_stream_of(rx)).await;
        match reader.judge(&state, &deployment, bytes, answer) {
            Ok(report) => {
                let _ = slot.set(report);
                Ok(())
            }
            // Kept for the quarantine: the upload completes, then `Scan::finish` moves it away.
            Err(refused)
                if refused.code() == ErrorCode::MalwareDetected
                    && !reader.settings.quarantine_prefix.is_empty() =>
            {
                *infected_slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(refused);
                Ok(())
            }
            Err(refused) => Err(Box::new(refused) as BoxError),
        }
    });
    Ok(Some(Scan { tap: Some(tap), report, infected, scanner }))
}

fn tokio_stream_of(
    mut rx: mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Result<Bytes, BoxError>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|frame| frame.map(Ok)))
}

/// Streams `body` to clamd, stopping at the scanner's limit: the bytes seen and clamd's answer
/// (`TooLarge` when the body went past the limit).
async fn scan_frames<S>(scanner: &Scanner, body: S) -> (u64, Result<Answer, String>)
where
    S: futures::Stream<Item = Result<Bytes, BoxError>> + Send,
{
    let max = scanner.settings.max_bytes;
    let over = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (over_in, seen_in) = (Arc::clone(&over), Arc::clone(&seen));
    let body = body.map(move |frame| {
        let frame = frame.map_err(std::io::Error::other)?;
        let total = seen_in.fetch_add(frame.len() as u64, Ordering::Relaxed) + frame.len() as u64;
        if total > max {
            over_in.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("above the scan limit"));
        }
        Ok(frame)
    });
    let answer = clamd::scan(&scanner.address, body, scanner.limits()).await;
    let answer = if over.load(Ordering::Relaxed) {
        Ok(Answer::TooLarge(format!("more than {max} bytes")))
    } else {
        answer
    };
    (seen.load(Ordering::Relaxed), answer)
}

/// Scans a stored object (a resumable upload at completion) before it is delivered: the object
/// streamed from S3 to clamd. `Ok(None)` when `deployment` is not scanned; an infected object
/// (or one the policy refuses) is deleted and the refusal returned.
///
/// # Errors
/// `malware_detected`, `too_large_to_scan` or `scanner_unavailable` as the policy says, or S3's
/// failure to read the object.
pub async fn scan_object(
    state: &AppState,
    deployment: &str,
    key: &str,
) -> Result<Option<ScanReport>, AppError> {
    let Some(scanner) = scanner_for(state, deployment) else { return Ok(None) };
    let (len, body) = state.uploader.open(key).await?;
    let verdict = if len > scanner.settings.max_bytes {
        scanner.judge(state, deployment, len, Ok(Answer::TooLarge(format!("{len} bytes"))))
    } else {
        let (bytes, answer) = scan_frames(&scanner, body).await;
        scanner.judge(state, deployment, bytes, answer)
    };
    match verdict {
        Ok(report) => Ok(Some(report)),
        Err(refused) => {
            if refused.code() == ErrorCode::MalwareDetected {
                quarantine(state, &scanner, key).await;
            } else if let Err(error) = state.uploader.delete(key).await {
                tracing::error!(%error, "a refused object could not be deleted");
            }
            Err(refused)
        }
    }
}

/// Asks clamd's `VERSION` now and every `version_interval_secs` (the database age metric and
/// the reference's `database`); returns at once without a scanner. Runs until dropped.
pub async fn watch(state: AppState) {
    let Some(scanner) = state.scanner.clone() else { return };
    state.metrics.record(|| {
        metrics::describe_gauge!("ferry_scan_database_age_seconds", "Age of clamd's signature database.");
        metrics::describe_gauge!("ferry_scanner_up", "1 when clamd answered its last VERSION, else 0.");
        metrics::describe_counter!(
            "ferry_scans_total",
            "Scans by result (clean, infected, unscanned, refused)."
        );
        metrics::describe_counter!(
            "ferry_malware_detected_total",
            "Uploads refused as infected, by deployment."
        );
    });
    let every = Duration::from_secs(scanner.settings.version_interval_secs.max(1));
    loop {
        scanner.refresh_version(&state).await;
        tokio::time::sleep(every).await;
    }
}

/// Debian's clamd socket, used by `ferry dev` when it exists.
pub const DEBIAN_CLAMD_SOCKET: &str = "/run/clamav/clamd.ctl";

/// For `ferry dev`: the clamd to scan with (`FERRY_DEV_CLAMD`, else Debian's socket when a clamd
/// is running there) and a line saying so, or how to turn scanning on.
pub fn dev_clamd(variable: Option<String>) -> (Option<String>, String) {
    let chosen = variable.filter(|v| !v.trim().is_empty()).or_else(|| {
        std::path::Path::new(DEBIAN_CLAMD_SOCKET).exists().then(|| format!("unix:{DEBIAN_CLAMD_SOCKET}"))
    });
    match chosen {
        Some(address) => (Some(address.clone()), format!("clamd at {address} (every upload is scanned)")),
        None => (
            None,
            format!(
                "off: install and start Debian's clamav-daemon (socket {DEBIAN_CLAMD_SOCKET}), \
                 or set FERRY_DEV_CLAMD=host:port"
            ),
        ),
    }
}

#[cfg(test)]
mod tests;
