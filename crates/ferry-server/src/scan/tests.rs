//! Tests of the scanner against a real clamd (`#[ignore = "needs clamd"]`) and of what needs none:
//! the settings, the time limit against a clamd that stops reading, `ferry dev`'s choice.

use super::*;
use ferry_testkit::clamd::{Clamd, EICAR, EICAR_SIGNATURE, PATTERN, PATTERN_SIGNATURE};

fn scanner(address: &str, change: impl FnOnce(&mut ScanSettings)) -> Arc<Scanner> {
    let mut settings = ScanSettings { address: address.into(), ..ScanSettings::default() };
    change(&mut settings);
    Scanner::from_config(&settings).expect("valid").expect("a scanner")
}

/// `data` as a stream of `frame`-byte frames.
fn frames(data: Vec<u8>, frame: usize) -> impl futures::Stream<Item = Result<Bytes, BoxError>> + Send {
    let data = Bytes::from(data);
    let cuts: Vec<Bytes> =
        (0..data.len()).step_by(frame).map(|at| data.slice(at..(at + frame).min(data.len()))).collect();
    futures::stream::iter(cuts.into_iter().map(Ok))
}

#[test]
fn dev_uses_the_variable_first() {
    let (address, line) = dev_clamd(Some("127.0.0.1:3310".into()));
    assert_eq!(address.as_deref(), Some("127.0.0.1:3310"));
    assert!(line.contains("127.0.0.1:3310"), "{line}");
    let (address, line) = dev_clamd(None);
    assert_eq!(address.is_some(), std::path::Path::new(DEBIAN_CLAMD_SOCKET).exists(), "{line}");
}

#[test]
fn settings_are_checked() {
    assert!(Scanner::from_config(&ScanSettings::default()).expect("valid").is_none(), "no address: off");
    let bad = ScanSettings { address: "clamd".into(), ..ScanSettings::default() };
    assert!(Scanner::from_config(&bad).unwrap_err().to_string().contains("scan.address"));
    let zero = ScanSettings { address: "127.0.0.1:3310".into(), timeout_secs: 0, ..ScanSettings::default() };
    assert!(Scanner::from_config(&zero).unwrap_err().to_string().contains("scan.timeout_secs"));
    let policy: ScanSettings =
        toml::from_str("address = \"/run/clamav/clamd.ctl\"\ntoo_large = \"unscanned\"").expect("parses");
    assert_eq!((policy.too_large, policy.unavailable), (Fallback::Unscanned, Fallback::Refuse));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs clamd"]
async fn clamd_says_clean_found_or_too_large_and_a_stopped_one_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut clamd = Clamd::start(dir.path()).await;
    let tcp = scanner(&clamd.tcp_address(), |_| {});
    let (n, answer) = scan_frames(&tcp, frames(EICAR.to_vec(), 10)).await;
    assert_eq!((n, answer), (68, Ok(Answer::Found(EICAR_SIGNATURE.into()))));
    let mut body = ferry_testkit::data::pseudo_random(b"", 3 << 20, 1);
    body[(2 << 20) + 5..(2 << 20) + 5 + PATTERN.len()].copy_from_slice(PATTERN);
    let (_, answer) = scan_frames(&tcp, frames(body.clone(), 64 * 1024)).await;
    assert_eq!(answer, Ok(Answer::Found(PATTERN_SIGNATURE.into())));
    let unix = scanner(&format!("unix:{}", clamd.socket_path().display()), |_| {});
    let (_, answer) = scan_frames(&unix, frames(vec![7; 100_000], 4096)).await;
    assert_eq!(answer, Ok(Answer::Clean));
    // Past ferry's own limit: not sent on, reported as too large.
    let small = scanner(&clamd.tcp_address(), |s| s.max_bytes = 1 << 20);
    let (_, answer) = scan_frames(&small, frames(body, 64 * 1024)).await;
    assert!(matches!(answer, Ok(Answer::TooLarge(_))), "{answer:?}");
    clamd.stop();
    let (_, answer) = scan_frames(&tcp, frames(vec![1; 1000], 100)).await;
    assert!(answer.is_err(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clamd_that_stops_reading_times_out() {
    // Accepts, never reads: once the socket buffers are full, clamd "holds things up".
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let _held = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(socket);
    });
    let silent = scanner(&address, |s| s.timeout_secs = 1);
    let started = std::time::Instant::now();
    let (_, answer) = scan_frames(&silent, frames(vec![0; 64 << 20], 1 << 20)).await;
    assert!(answer.is_err_and(|e| e.contains("in time")), "timed out");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

/// A stand-in clamd that answers every connection with `answer`.
async fn answering(answer: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut command = [0u8; 64];
            let _ = socket.read(&mut command).await;
            let _ = socket.write_all(answer).await;
        }
    });
    address
}

async fn state_with(address: &str) -> AppState {
    let s3 = ferry_s3::S3Config {
        endpoint: Some("http://127.0.0.1:9".into()),
        force_path_style: true,
        ..ferry_s3::S3Config::default()
    };
    let mut config = crate::config::Config::default();
    config.s3.bucket = "b".into();
    config.link_secret = "0123456789abcdef0123456789abcdef".into();
    config.scan.address = address.into();
    AppState::with_s3_client(config, ferry_s3::build_client(&s3).await).expect("state")
}

#[tokio::test]
async fn versions_set_the_database_age_and_the_reports_database() {
    let address = answering(b"ClamAV 1.4.6/27467/Sun Nov 29 08:31:12 2026\0").await;
    let state = state_with(&address).await;
    let scanner = state.scanner.clone().expect("a scanner");
    scanner.refresh_version(&state).await;
    let text = state.metrics.render(0, 0, 0, 1, 0);
    let age = text
        .lines()
        .find_map(|l| l.strip_prefix("ferry_scan_database_age_seconds "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the age gauge");
    let dated = 20_786 * 86_400 + 8 * 3600 + 31 * 60 + 12;
    let expected = i64::try_from(state.now_unix()).expect("now") - dated;
    #[allow(clippy::cast_precision_loss, reason = "a test of a gauge")]
    let expected = expected.max(0) as f64;
    assert!((age - expected).abs() <= 5.0, "age {age}, expected about {expected}");
    assert!(text.contains("ferry_scanner_up 1"), "{text}");
    let report = scanner.report("clean", None);
    assert_eq!(report.database.as_deref(), Some("27467/Sun Nov 29 08:31:12 2026"));

    // A clamd that is gone: the scanner is down.
    let gone = state_with("127.0.0.1:9").await;
    let scanner = gone.scanner.clone().expect("a scanner");
    scanner.refresh_version(&gone).await;
    assert!(gone.metrics.render(0, 0, 0, 1, 0).contains("ferry_scanner_up 0"));
}
