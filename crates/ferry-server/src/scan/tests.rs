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
