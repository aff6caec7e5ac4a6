//! Talking to clamd through the `clamav-client` crate: `INSTREAM` fed a stream of `Bytes` (the
//! crate writes each chunk before it asks for the next, so a slow clamd holds the stream back),
//! `VERSION` for the signature database's version and date, and the reading of clamd's answers.
//!
//! The crate has no time limit of its own, so [`scan`] keeps a watchdog: clamd may take at most
//! the step limit to connect and to take each chunk, and to answer once the stream has ended the
//! step limit plus a time per GiB sent (clamd scans only after the last byte); a client that is
//! slow to send does not count against clamd.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// `host:port`.
    Tcp(String),
    /// A Unix socket.
    Unix(PathBuf),
}

impl Address {
    /// `tcp://host:port` or `host:port`; `unix:/path` or an absolute path.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix:") {
            let path = path.trim_start_matches("//");
            return if path.starts_with('/') {
                Ok(Self::Unix(path.into()))
            } else {
                Err("a Unix socket needs an absolute path (`unix:/run/clamav/clamd.ctl`)".into())
            };
        }
        if text.starts_with('/') {
            return Ok(Self::Unix(text.into()));
        }
        let hostport = text.strip_prefix("tcp://").unwrap_or(text);
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(Self::Tcp(hostport.to_owned()))
            }
            _ => {
                Err("expected `host:port`, `tcp://host:port`, `unix:/path` or an absolute socket path".into())
            }
        }
    }
}

/// What clamd said about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `stream: OK`.
    Clean,
    /// `stream: <signature> FOUND`.
    Found(String),
    /// clamd did not scan it all: above its limits (`Heuristics.Limits.Exceeded…` with
    /// `AlertExceedsMax`, or its `INSTREAM size limit exceeded`).
    TooLarge(String),
    /// Any other answer (an `ERROR`), or none.
    Failed(String),
}

/// Reads one `INSTREAM` answer (`stream: OK\0`, `stream: Name FOUND\0`, `… ERROR\0`).
pub(crate) fn parse_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\0', '\n', '\r', ' ']);
    let body = text.strip_prefix("stream:").map_or(text, str::trim_start);
    if body == "OK" {
        return Answer::Clean;
    }
    if let Some(name) = body.strip_suffix(" FOUND") {
        let name = name.trim().to_owned();
        return if name.starts_with("Heuristics.Limits.Exceeded") {
            Answer::TooLarge(name)
        } else {
            Answer::Found(name)
        };
    }
    if body.contains("size limit exceeded") {
        return Answer::TooLarge(body.to_owned());
    }
    Answer::Failed(if body.is_empty() {
        "clamd closed the connection without an answer".into()
    } else {
        body.into()
    })
}

/// clamd's `VERSION`: `ClamAV 1.4.6/27467/Sun Nov 29 08:31:12 2026` (engine, database version,
/// database date); a clamd with no official database says only `ClamAV 1.4.6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    /// The whole answer (`ClamAV 1.4.6/27467/…`).
    pub(crate) text: String,
    /// The database's version (`27467`), when there is one.
    pub(crate) database: Option<String>,
    /// The database's date, seconds since the epoch, when it can be read.
    pub(crate) database_unix: Option<i64>,
}

pub(crate) fn parse_version(raw: &[u8]) -> Version {
    let text = String::from_utf8_lossy(raw).trim_end_matches(['\0', '\n', '\r', ' ']).to_owned();
    let mut fields = text.splitn(3, '/');
    let _engine = fields.next();
    let database = fields.next().map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned);
    let database_unix = fields.next().and_then(parse_date);
    Version { text, database, database_unix }
}

/// `Sun Nov 29 08:31:12 2026` (ctime's format, UTC) → seconds since the epoch.
fn parse_date(text: &str) -> Option<i64> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [_weekday, month, day, clock, year] = fields[..] else { return None };
    let month = match month {
        "Jan" => time::Month::January,
        "Feb" => time::Month::February,
        "Mar" => time::Month::March,
        "Apr" => time::Month::April,
        "May" => time::Month::May,
        "Jun" => time::Month::June,
        "Jul" => time::Month::July,
        "Aug" => time::Month::August,
        "Sep" => time::Month::September,
        "Oct" => time::Month::October,
        "Nov" => time::Month::November,
        "Dec" => time::Month::December,
        _ => return None,
    };
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    let mut hms = clock.split(':').map(str::parse::<u8>);
    let (Some(Ok(h)), Some(Ok(m)), Some(Ok(s)), None) = (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return None;
    };
    let time = time::Time::from_hms(h, m, s).ok()?;
    Some(time::PrimitiveDateTime::new(date, time).assume_utc().unix_timestamp())
}

/// Sends `VERSION`, waiting at most `limit`.
pub(crate) async fn version(address: &Address, limit: Duration) -> Result<Version, String> {
    use clamav_client::tokio::{Socket, Tcp, get_version};
    let asked = async {
        match address {
            Address::Tcp(host) => get_version(Tcp { host_address: host.as_str() }).await,
            Address::Unix(path) => get_version(Socket { socket_path: path }).await,
        }
    };
    match tokio::time::timeout(limit, asked).await {
        Ok(Ok(raw)) => Ok(parse_version(&raw)),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Chunks written to clamd at most this large (`INSTREAM` frames a chunk with its length).
const CHUNK: usize = 1 << 20;

/// clamd's time limits: `step` to connect and to take each chunk; to answer once the stream has
/// ended, `step` plus `per_gib` for each GiB sent (clamd scans only after the last byte).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) step: Duration,
    pub(crate) per_gib: Duration,
}

impl Limits {
    fn verdict(&self, bytes: u64) -> Duration {
        #[allow(clippy::cast_precision_loss, reason = "a time limit needs no exact byte count")]
        let gib = bytes as f64 / f64::from(1u32 << 30);
        self.step + self.per_gib.mul_f64(gib)
    }
}

/// Streams `body` to clamd's `INSTREAM` and reads its answer. `Err` when clamd could not be
/// reached, broke off, or exceeded its time limit (`limits`) at any step of its own.
pub(crate) async fn scan<S>(address: &Address, body: S, limits: Limits) -> Result<Answer, String>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send,
{
    use clamav_client::tokio::{Socket, Tcp, scan_stream};
    // When clamd, holding things up now (connecting, taking a chunk, answering), is out of time.
    let deadline = Arc::new(Mutex::new(Some(Instant::now() + limits.step)));
    let watched = Watched { deadline: Arc::clone(&deadline), sent: 0 };
    let body =
        futures::stream::unfold((Box::pin(body), watched), move |(mut body, mut watched)| async move {
            // Asked for the next chunk: clamd took the last one.
            watched.set(None);
            let item = body.next().await;
            // clamd's turn: to take this chunk, or (at the end) to scan it all and answer.
            let wait = match &item {
                Some(Ok(chunk)) => {
                    watched.sent += chunk.len() as u64;
                    limits.step
                }
                Some(Err(_)) => limits.step,
                None => limits.verdict(watched.sent),
            };
            watched.set(Some(Instant::now() + wait));
            item.map(|item| (item, (body, watched)))
        });
    let scanning = async {
        match address {
            Address::Tcp(host) => scan_stream(body, Tcp { host_address: host.as_str() }, Some(CHUNK)).await,
            Address::Unix(path) => scan_stream(body, Socket { socket_path: path }, Some(CHUNK)).await,
        }
    };
    tokio::select! {
        answer = scanning => answer.map(|raw| parse_answer(&raw)).map_err(|e| e.to_string()),
        () = watchdog(&deadline) => Err(format!("clamd did not answer in time (limits {limits:?})")),
    }
}

/// The shared deadline of clamd's current step (`None` while ferry waits for the client), and the
/// bytes sent so far.
struct Watched {
    deadline: Arc<Mutex<Option<Instant>>>,
    sent: u64,
}

impl Watched {
    fn set(&self, deadline: Option<Instant>) {
        *self.deadline.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = deadline;
    }
}

/// Returns once clamd's current step is past its deadline.
async fn watchdog(deadline: &Mutex<Option<Instant>>) {
    let tick = Duration::from_millis(250);
    loop {
        let current = *deadline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match current {
            Some(at) if Instant::now() >= at => return,
            Some(at) => tokio::time::sleep((at - Instant::now()).min(tick)).await,
            None => tokio::time::sleep(tick).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(Address::parse("127.0.0.1:3310"), Ok(Address::Tcp("127.0.0.1:3310".into())));
        assert_eq!(Address::parse("tcp://clamd:3310"), Ok(Address::Tcp("clamd:3310".into())));
        assert_eq!(
            Address::parse("unix:/run/clamav/clamd.ctl"),
            Ok(Address::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(
            Address::parse("/run/clamav/clamd.ctl"),
            Ok(Address::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert!(Address::parse("clamd").is_err());
        assert!(Address::parse("clamd:0").is_err());
        assert!(Address::parse("unix:relative.sock").is_err());
    }

    #[test]
    fn answers() {
        assert_eq!(parse_answer(b"stream: OK\0"), Answer::Clean);
        assert_eq!(
            parse_answer(b"stream: Eicar-Test-Signature FOUND\0"),
            Answer::Found("Eicar-Test-Signature".into())
        );
        assert_eq!(
            parse_answer(b"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0"),
            Answer::TooLarge("Heuristics.Limits.Exceeded.MaxFileSize".into())
        );
        assert!(matches!(parse_answer(b"INSTREAM size limit exceeded. ERROR\0"), Answer::TooLarge(_)));
        assert!(matches!(parse_answer(b"stream: Can't allocate memory ERROR\0"), Answer::Failed(_)));
        assert!(matches!(parse_answer(b""), Answer::Failed(_)));
    }

    #[test]
    fn versions() {
        let v = parse_version(b"ClamAV 1.4.6/27467/Sun Nov 29 08:31:12 2026\0");
        assert_eq!(v.text, "ClamAV 1.4.6/27467/Sun Nov 29 08:31:12 2026");
        assert_eq!(v.database.as_deref(), Some("27467"));
        // 2026-11-29 08:31:12 UTC.
        assert_eq!(v.database_unix, Some(20_786 * 86_400 + 8 * 3600 + 31 * 60 + 12));
        let bare = parse_version(b"ClamAV 1.4.6\0");
        assert_eq!((bare.text.as_str(), bare.database, bare.database_unix), ("ClamAV 1.4.6", None, None));
        assert_eq!(parse_date("Mon Feb  2 01:02:03 2026").map(|t| t % 86_400), Some(3723));
        assert_eq!(parse_date("Sun Foo 29 08:31:12 2026"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_counts_only_clamds_own_waits() {
        let deadline = Mutex::new(None);
        // Nothing pending: the watchdog does not fire.
        assert!(tokio::time::timeout(Duration::from_secs(10), watchdog(&deadline)).await.is_err());
        *deadline.lock().unwrap() = Some(Instant::now() + Duration::from_secs(1));
        let started = tokio::time::Instant::now();
        watchdog(&deadline).await;
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    #[test]
    fn the_verdict_may_take_longer_for_a_larger_file() {
        let limits = Limits { step: Duration::from_secs(60), per_gib: Duration::from_secs(120) };
        assert_eq!(limits.verdict(0), Duration::from_secs(60));
        assert_eq!(limits.verdict(1 << 30), Duration::from_secs(180));
        assert_eq!(limits.verdict(512 << 20), Duration::from_secs(120));
    }
}
