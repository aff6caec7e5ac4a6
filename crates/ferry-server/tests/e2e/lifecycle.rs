//! Uploads cut short: the client goes away mid-body, and ferry is told to stop (SIGTERM) with
//! uploads in flight. No multipart upload may be left behind either way.

use crate::harness::{Harness, MIB, Options, RawUpload, bytes, sha256_hex};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_client_that_disconnects_mid_upload_leaves_nothing() {
    let h = Harness::start("disconnect", Options::default()).await;
    let data = bytes(b"", 8 * MIB, 9);
    let mut upload = RawUpload::start(&h, "walkaway.bin", 20 * MIB).await;
    upload.send(&data).await;
    // The first part is in S3 under an open multipart upload…
    h.wait_pending_uploads(1).await;
    // …when the client closes its socket, 12 MiB short.
    drop(upload);
    h.assert_nothing_stored().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.metric("ferry_uploads_total{outcome=\"client_disconnected\"}").await != 1 {
        assert!(Instant::now() < deadline, "the upload was not counted as client_disconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(h.metric("ferry_multipart_aborted_total").await >= 1);
    assert_eq!(h.metric("ferry_uploads_in_flight").await, 0);
    assert_eq!(h.metric("ferry_memory_budget_used_bytes").await, 0, "the budget share was returned");
    let conversation = h.conversation();
    assert_eq!(conversation["attachments"], serde_json::json!([]), "{conversation}");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn sigterm_lets_uploads_finish_within_the_grace_period_and_aborts_the_rest() {
    const GRACE: Duration = Duration::from_secs(5);
    let options =
        Options { limits: vec![format!("shutdown_grace_secs = {}", GRACE.as_secs())], ..Options::default() };
    let mut h = Harness::start("sigterm", options).await;
    let finishing = bytes(b"", 8 * MIB, 10);
    let stalled = bytes(b"", 6 * MIB, 11);

    // Two uploads in flight, each with its first part in S3.
    let mut a = RawUpload::start(&h, "finishing.bin", finishing.len()).await;
    a.send(&finishing[..6 * MIB]).await;
    let mut b = RawUpload::start(&h, "stalled.bin", 20 * MIB).await;
    b.send(&stalled).await;
    h.wait_pending_uploads(2).await;

    let signalled = Instant::now();
    h.ferry.terminate();
    // No new connections once the signal is handled.
    let deadline = Instant::now() + Duration::from_secs(2);
    while tokio::net::TcpStream::connect(h.ferry.addr()).await.is_ok() {
        assert!(Instant::now() < deadline, "ferry still accepts connections 2 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The upload whose client keeps sending completes and is delivered.
    a.send(&finishing[6 * MIB..]).await;
    let (status, reference) = a.response().await;
    assert_eq!(status, 201, "{reference}");
    assert_eq!(reference["delivery"]["mode"], "native", "{reference}");
    assert!(signalled.elapsed() < GRACE, "the finishing upload completed within the grace period");

    // The stalled one is cut at the end of the grace period; ferry exits cleanly after aborting it.
    let status = h.ferry.wait_exit(GRACE + Duration::from_secs(15)).await.expect("ferry exits after SIGTERM");
    let took = signalled.elapsed();
    assert!(status.success(), "ferry exited with {status}");
    assert!(took >= GRACE - Duration::from_millis(500), "ferry waited for the grace period ({took:?})");
    let (status, _) = b.response().await;
    assert_ne!(status, 201, "the stalled upload was not completed");
    // ferry waits for the aborts before exiting: nothing is in progress the moment it is gone.
    assert_eq!(h.pending_uploads().await, 0, "a multipart upload was left behind");
    let key = ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX)
        .expect("key");
    let key = key.as_str();
    assert_eq!(h.keys().await, vec![key.to_owned()], "only the finished upload was kept");
    assert!(h.object(key).await == finishing, "stored bytes differ");
    let conversation = h.conversation();
    let attachments = conversation["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1, "{conversation}");
    assert_eq!(attachments[0]["sha256"], sha256_hex(&finishing));
    let log = h.ferry.log();
    assert!(log.contains("grace period over"), "the log says uploads were cancelled");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn stalled_headers_and_bodies_time_out_and_leave_nothing() {
    let options = Options {
        limits: vec!["header_timeout_secs = 1".into(), "idle_body_timeout_secs = 2".into()],
        ..Options::default()
    };
    let h = Harness::start("timeouts", options).await;
    // Headers that never end: the connection is closed.
    let mut slow = tokio::net::TcpStream::connect(h.ferry.addr()).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut slow, b"POST /v1/uploads HTTP/1.1\r\nHost: ferry\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut slow, &mut sink),
    )
    .await;
    assert!(closed.is_ok(), "a connection with unfinished headers was kept open for 5 s");

    // A body that stops: 408 after the idle timeout, the multipart upload aborted.
    let data = bytes(b"", 7 * MIB, 14);
    let mut upload = RawUpload::start(&h, "stuck.bin", 20 * MIB).await;
    upload.send(&data).await;
    h.wait_pending_uploads(1).await;
    let (status, body) = upload.response().await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"]["code"], "body_timeout", "{body}");
    h.assert_nothing_stored().await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn an_upload_beyond_the_memory_budget_is_told_to_retry() {
    // The budget is charged per buffered part: room for two parts being filled (5 MiB each), the
    // least one upload needs with one part in flight (5 MiB × (1 + 1)).
    let env = vec![("FERRY_MEMORY_BUDGET", (10 * MIB).to_string()), ("FERRY_S3_MAX_IN_FLIGHT", "1".into())];
    let h = Harness::start("budget", Options { env, ..Options::default() }).await;
    let data = bytes(b"", 6 * MIB, 15);
    let mut first = RawUpload::start(&h, "first.bin", data.len()).await;
    first.send(&data[..3 * MIB]).await;
    let mut other = RawUpload::start(&h, "other.bin", data.len()).await;
    other.send(&data[..3 * MIB]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.metric("ferry_memory_budget_used_bytes").await < 10 * MIB as u64 {
        assert!(Instant::now() < deadline, "the two uploads did not take their budget shares");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let path = h.file("second.bin", &data);
    let mut request = h.guest();
    request.extend(crate::args(&[
        "-v",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "X-File-Name: second.bin",
        "--data-binary",
        &format!("@{}", path.display()),
    ]));
    let reply = h.post(&request, None).await;
    reply.assert_error(503, "server_busy");
    assert!(reply.trace.to_ascii_lowercase().contains("< retry-after:"), "503 without Retry-After");
    // The two uploads are unaffected: each hands its share to its first part in flight and waits
    // for the next, so they take turns rather than starve each other.
    first.send(&data[3 * MIB..]).await;
    other.send(&data[3 * MIB..]).await;
    for upload in [first, other] {
        let (status, reference) = upload.response().await;
        assert_eq!(status, 201, "{reference}");
    }
    assert_eq!(h.keys().await.len(), 2);
    h.finish().await;
}
