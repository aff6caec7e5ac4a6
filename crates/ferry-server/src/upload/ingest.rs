//! Ingest: the file's bytes → ferry-s3, in the upload's own task.
//!
//! The request reads the body (raw or a form's `file` part) and hands the bytes over a short
//! channel, the [`Feed`]; the task reads them as a stream that ends only when the request has said
//! the body is all in ([`Feed::end`], which never waits). A request that goes away first (a hang-up, a cancelled
//! connection) drops its feed, and the stream ends in an error, so a cut-off body is never stored
//! as if whole; a request that goes away after the end cancels nothing. On the way to S3 the bytes
//! pass the timeouts and the minimum rate, and the first bytes are sniffed; the declared digests
//! are compared with the stored bytes' before the upload is completed.

use crate::config::Limits;
use crate::error::{AppError, ErrorCode};
use crate::names;
use crate::sniff;
use crate::state::AppState;
use crate::upload::declared::{Declared, Digests, TypePolicy};
use bytes::Bytes;
use ferry_core::chunk::{Chunker, ChunkerOptions, ObjectSummary};
use ferry_core::plan::{MIB, PlanLimits, plan_parts};
use ferry_s3::{BoxError, Gate, ObjectMeta, ObjectWrite, Stored};
use futures::Stream;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the request hands to the upload task.
enum Message {
    /// The file begins: what it is.
    Start(Box<Declared>),
    /// The file's next bytes.
    Bytes(Bytes),
}

/// Set once the body is all in, with the file's caption; a channel that closes without it was cut
/// off. Setting it never waits, so a request dropped right after its body's end cannot lose it.
type Ending = Arc<OnceLock<Option<String>>>;

/// The upload task stopped reading (it failed); its own result says why.
#[derive(Debug)]
pub(crate) struct Stopped;

/// The request's end of the channel.
#[derive(Debug)]
pub(crate) struct Feed {
    tx: mpsc::Sender<Message>,
    ending: Ending,
}

/// The task's end of the channel.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: mpsc::Receiver<Message>,
    ending: Ending,
}

/// A channel from the request to its upload task.
pub(crate) fn channel() -> (Feed, Inbox) {
    let (tx, rx) = mpsc::channel(2);
    let ending = Ending::default();
    (Feed { tx, ending: Arc::clone(&ending) }, Inbox { rx, ending })
}

impl Feed {
    /// The file begins.
    pub(crate) async fn start(&self, declared: Declared) -> Result<(), Stopped> {
        self.tx.send(Message::Start(Box::new(declared))).await.map_err(|_| Stopped)
    }

    /// The file's next bytes (waits while the task is busy: back-pressure).
    pub(crate) async fn bytes(&self, bytes: Bytes) -> Result<(), Stopped> {
        self.tx.send(Message::Bytes(bytes)).await.map_err(|_| Stopped)
    }

    /// The body is all in, with the file's caption: the task reads what is still queued, then
    /// the stream ends.
    pub(crate) fn end(self, caption: Option<String>) {
        let _ = self.ending.set(caption);
    }
}

/// The file's bytes as the task reads them, and the caption that comes with the end.
pub(crate) struct Incoming {
    /// The bytes, checked on the way (timeouts, rate, sniffing).
    pub(crate) body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, AppError>> + Send>>,
    /// The caption, known once the body has ended.
    pub(crate) caption: Caption,
}

/// The caption that comes with the body's end.
#[derive(Debug)]
pub(crate) struct Caption(Ending);

impl Caption {
    /// The caption (`None` before the body's end, or when there is none).
    pub(crate) fn get(&self) -> Option<String> {
        self.0.get().cloned().flatten()
    }
}

impl Inbox {
    /// Waits for the file to begin; `None` when the request ended first.
    pub(crate) async fn open(mut self, limits: &Limits, policy: TypePolicy) -> Option<(Declared, Incoming)> {
        let Some(Message::Start(declared)) = self.rx.recv().await else { return None };
        let ending = Arc::clone(&self.ending);
        let reader = Reader::new(self.rx, ending, limits, policy, declared.content_type.clone());
        let body = futures::stream::unfold(reader, |mut reader| async move {
            let item = reader.next().await?;
            if item.is_err() {
                // Nothing more after an error; the request's next hand-over fails at once.
                reader.ended = true;
                reader.rx.close();
            }
            Some((item, reader))
        });
        Some((*declared, Incoming { body: Box::pin(body), caption: Caption(self.ending) }))
    }
}

/// The answer when the request went away before its body's end.
pub(crate) fn cut_off() -> AppError {
    AppError::new(ErrorCode::ClientDisconnected, "the request body ended abnormally")
}

/// Reads the channel with the body's time limits, sniffing the first bytes.
struct Reader {
    rx: mpsc::Receiver<Message>,
    ending: Ending,
    idle: Duration,
    deadline: Instant,
    started: Instant,
    min_bytes_per_sec: u64,
    received: u64,
    /// Watches the whole stream: its head for the declared type, and a Windows Installer by its
    /// directory wherever that lies.
    sniffer: sniff::Sniffer,
    /// Whether the head was checked against the declared type.
    head_checked: bool,
    policy: TypePolicy,
    content_type: String,
    ended: bool,
}

impl Reader {
    fn new(
        rx: mpsc::Receiver<Message>,
        ending: Ending,
        limits: &Limits,
        policy: TypePolicy,
        content_type: String,
    ) -> Self {
        let started = Instant::now();
        Self {
            rx,
            ending,
            idle: limits.idle_body_timeout(),
            deadline: started + Duration::from_secs(limits.max_upload_secs),
            started,
            min_bytes_per_sec: limits.min_bytes_per_sec,
            received: 0,
            sniffer: sniff::Sniffer::new(),
            head_checked: false,
            policy,
            content_type,
            ended: false,
        }
    }

    /// The next bytes, an error, or `None` at the body's end.
    async fn next(&mut self) -> Option<Result<Bytes, AppError>> {
        if self.ended {
            return None;
        }
        let wait = self.idle.min(self.deadline.saturating_duration_since(Instant::now()));
        let message = match tokio::time::timeout(wait, self.rx.recv()).await {
            Err(_) if Instant::now() >= self.deadline => {
                return Some(Err(AppError::new(
                    ErrorCode::UploadTimeout,
                    "the upload took longer than allowed",
                )));
            }
            Err(_) => return Some(Err(AppError::new(ErrorCode::BodyTimeout, "the request body stalled"))),
            Ok(message) => message,
        };
        match message {
            None if self.ending.get().is_none() => Some(Err(cut_off())),
            Some(Message::Start(_)) => {
                Some(Err(AppError::new(ErrorCode::InvalidMultipart, "more than one `file` part")))
            }
            None => {
                self.ended = true;
                // The whole stream's verdict, before the upload may complete.
                if let Err(refused) = self.policy.check_verdict(&self.content_type, self.sniffer.verdict()) {
                    return Some(Err(refused));
                }
                // A file shorter than the sniffing window is judged on what there is.
                if self.head_checked {
                    return None;
                }
                self.policy.check_content(&self.content_type, self.sniffer.head()).err().map(Err)
            }
            Some(Message::Bytes(bytes)) => Some(self.check(bytes)),
        }
    }

    fn check(&mut self, bytes: Bytes) -> Result<Bytes, AppError> {
        self.sniffer.feed(&bytes);
        if !self.head_checked && self.sniffer.head_known() {
            self.head_checked = true;
            self.policy.check_content(&self.content_type, self.sniffer.head())?;
        }
        self.received += bytes.len() as u64;
        let elapsed = self.started.elapsed();
        if elapsed > self.idle
            && self.min_bytes_per_sec > 0
            && self.received / elapsed.as_secs().max(1) < self.min_bytes_per_sec
        {
            return Err(AppError::new(
                ErrorCode::TooSlow,
                "the upload is slower than the minimum transfer rate",
            ));
        }
        Ok(bytes)
    }
}

/// What to store: where, and the limits the body is held to.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    /// The deployment (the key's first segment).
    pub(crate) deployment: &'a str,
    /// The file.
    pub(crate) declared: &'a Declared,
    /// The digests the client declared.
    pub(crate) digests: Digests,
    /// Largest file accepted.
    pub(crate) max_size: u64,
    /// The declared length, for a raw upload that sent one.
    pub(crate) len: Option<u64>,
    /// The first part's share of the memory budget, taken at admission; the uploader hands it to
    /// that part and takes each next part's share as it starts filling.
    pub(crate) reservation: Option<tokio::sync::OwnedSemaphorePermit>,
    /// A guest upload: its delivery carries the `ferrySha256` attribute.
    pub(crate) guest: bool,
}

/// Streams `body` into a new object with ferry-s3's [`Uploader::upload`](ferry_s3::Uploader::upload),
/// which owns the parts, the checks and the clean-up: it returns a verified object, or an error
/// having left nothing behind. The declared digests are its gate, checked before completing; a
/// scanned deployment's malware scan is its tap ([`crate::scan`]), whose report comes back with it.
pub(crate) async fn store<S>(
    state: &AppState,
    target: Target<'_>,
    body: S,
) -> Result<(Stored, Option<crate::scan::ScanReport>), AppError>
where
    S: Stream<Item = Result<Bytes, AppError>> + Send,
{
    let limits = PlanLimits {
        preferred_part_size: state.config.s3.part_size_mib * MIB,
        max_file_size: target.max_size,
    };
    // Every planning error is a size the service does not take.
    let plan = plan_parts(target.len, &limits).map_err(|_| AppError::too_large(target.max_size))?;
    let mode = state.uploader.config().checksum_mode;
    let sha256 = wants_sha256(state, &target);
    // The whole-file MD5: unless `data_path.whole_file_md5` is off, and always for a `Content-MD5`.
    let whole_md5 = state.config.data_path.whole_file_md5 || target.digests.md5.is_some();
    let write = ObjectWrite {
        key: object_key(state, target.deployment),
        meta: ObjectMeta {
            content_type: Some(target.declared.content_type.clone()),
            content_disposition: Some(names::content_disposition(&target.declared.name)),
            metadata: [("ferry-request".to_owned(), "upload".to_owned())].into(),
        },
        chunker: Chunker::new(plan, ChunkerOptions { whole_md5, ..mode.chunker_options(sha256) }),
        reservation: target.reservation,
    };
    let digests = target.digests;
    let gate: Gate = Box::new(move |summary: &ObjectSummary| {
        match digests.mismatch(summary.md5.as_ref(), summary.sha256.as_ref()) {
            None => Ok(()),
            Some(header) => Err(Box::new(AppError::new(
                ErrorCode::ChecksumMismatch,
                format!("the file does not match its {header}; nothing was kept"),
            )) as BoxError),
        }
    });
    let mut scan = crate::scan::start(state, target.deployment, target.len)?;
    let tap = scan.as_mut().and_then(|scan| scan.tap.take());
    let stored = state.uploader.upload_tapped(write, body, Some(gate), tap).await?;
    let report = match scan {
        Some(scan) => scan.finish(state, &stored).await?,
        None => None,
    };
    Ok((stored, report))
}

/// Whether this upload pays for the whole file's SHA-256: the client declared one
/// (`Repr-Digest`), its delivery sends it (a guest's message carries `ferrySha256`; Open Messaging
/// sends `sha256`), or `data_path.always_sha256` says so. A guest's upload always has it: a native
/// delivery checks the object read back by it when no MD5 was computed.
fn wants_sha256(state: &AppState, target: &Target<'_>) -> bool {
    let open_messaging = state.destination(target.deployment).is_some_and(|d| {
        d.platform.is_some() && d.settings.delivery == crate::config::DeliveryPreference::OpenMessaging
    });
    target.digests.sha256.is_some() || target.guest || open_messaging || state.config.data_path.always_sha256
}

/// `<prefix><deployment>/<yyyy>/<mm>/<dd>/<uuid>`, dated today (UTC).
fn object_key(state: &AppState, deployment: &str) -> String {
    let date = date_path(state.now_unix());
    format!("{}{deployment}/{date}/{}", state.config.s3.prefix, uuid::Uuid::new_v4())
}

/// `yyyy/mm/dd` of `unix` seconds, in UTC.
pub(crate) fn date_path(unix: u64) -> String {
    let secs = i64::try_from(unix).unwrap_or(i64::MAX);
    let date = time::OffsetDateTime::from_unix_timestamp(secs).map_or(time::Date::MAX, |t| t.date());
    format!("{:04}/{:02}/{:02}", date.year(), u8::from(date.month()), date.day())
}

#[cfg(test)]
mod tests {
    use super::date_path;

    #[test]
    fn keys_are_dated_in_utc() {
        assert_eq!(date_path(0), "1970/01/01");
        assert_eq!(date_path(20_785 * 86_400 + 86_399), "2026/11/28");
        assert_eq!(date_path(11_016 * 86_400), "2000/02/29");
    }
}
