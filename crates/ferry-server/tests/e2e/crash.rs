//! Crash debris: `ferry serve` killed with SIGKILL in the middle of a multipart upload leaves the
//! upload behind; the next ferry's reaper aborts it at start-up (with a short age) and counts it.

use crate::harness::{Harness, MIB, Options, RawUpload, bytes};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_killed_ferrys_multipart_upload_is_reaped_after_a_restart() {
    let mut h = Harness::start("crash", Options::default()).await;
    let data = bytes(b"", 12 * MIB, 9);
    let mut upload = RawUpload::start(&h, "crash.bin", data.len()).await;
    upload.send(&data[..7 * MIB]).await;
    h.wait_pending_uploads(1).await;

    // SIGKILL: no abort can run. The upload stays behind, and a young one is left alone by the
    // default 24-hour age.
    h.crash_and_restart(&[]).await;
    drop(upload);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.pending_uploads().await, 1, "the killed ferry's upload is still there");
    assert_eq!(h.metric("ferry_reaped_uploads_total").await, 0);

    // Restarted with a 1-second age, the reaper aborts it at start-up (the age is never under
    // max_upload_secs + reap_margin_secs, which another replica could still be writing for: both
    // short here).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let short = [
        ("FERRY_REAP_AFTER_SECS", "1".into()),
        ("FERRY_MAX_UPLOAD_SECS", "1".into()),
        ("FERRY_REAP_MARGIN_SECS", "0".into()),
    ];
    h.crash_and_restart(&short).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while h.pending_uploads().await > 0 {
        assert!(Instant::now() < deadline, "the reaper did not abort the stale upload\n{}", h.ferry.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(h.metric("ferry_reaped_uploads_total").await, 1);
    assert!(h.keys().await.is_empty());
    h.finish().await;
}
