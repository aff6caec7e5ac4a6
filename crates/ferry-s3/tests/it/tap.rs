//! `Uploader::upload_tapped` against s3s-fs in process: the tap reads exactly the body's bytes and
//! its clean verdict lets the object be completed; a refusal before or after the body's end leaves
//! no multipart upload and no object; a tap slower than S3 holds the body back (the part bytes
//! held stay within the uploader's bound).

use crate::support::{BUCKET, Fs, PART, assert_no_upload_or_object, config, frames, random_bytes, read_back};
use bytes::Bytes;
use ferry_core::chunk::Chunker;
use ferry_core::plan::{PlanLimits, plan_parts};
use ferry_s3::{ChecksumMode, Error, ObjectMeta, ObjectWrite, Tap, Uploader};
use std::time::Duration;
use tokio::sync::mpsc;

fn write(uploader: &Uploader, key: &str) -> ObjectWrite {
    let limits = PlanLimits { preferred_part_size: PART, max_file_size: 1 << 34 };
    ObjectWrite {
        key: key.into(),
        meta: ObjectMeta::default(),
        chunker: Chunker::new(
            plan_parts(None, &limits).expect("plan"),
            uploader.config().checksum_mode.chunker_options(false),
        ),
        reservation: None,
    }
}

/// A tap that collects what it reads, and refuses when it sees `needle` (after the end, or at once).
fn scanner(needle: &'static [u8], at_once: bool, seen: mpsc::UnboundedSender<usize>) -> Tap {
    Tap::spawn(2, move |mut rx: mpsc::Receiver<Bytes>| async move {
        let mut all = Vec::new();
        while let Some(frame) = rx.recv().await {
            let _ = seen.send(frame.len());
            all.extend_from_slice(&frame);
            if at_once && all.windows(needle.len()).any(|w| w == needle) {
                return Err("found at once".into());
            }
        }
        if all.windows(needle.len()).any(|w| w == needle) { Err("found".into()) } else { Ok(()) }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_verdict_completes_and_the_tap_read_every_byte() {
    let fs = Fs::start().await;
    let uploader = Uploader::new(fs.client().await, BUCKET, config(ChecksumMode::Crc64Nvme));
    let data = Bytes::from(random_bytes(3 * PART as usize + 17, 7));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let tap = scanner(b"\xFFferry-needle\xFF", false, tx);
    let stored = uploader
        .upload_tapped(write(&uploader, "tap/clean"), frames(&data, 64 * 1024), None, Some(tap))
        .await
        .expect("stored");
    let mut read = 0;
    while let Ok(n) = rx.try_recv() {
        read += n;
    }
    assert_eq!(read, data.len(), "the tap read every byte once");
    assert_eq!(read_back(&fs.client().await, BUCKET, &stored.object.key).await.0, data.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_at_the_end_or_midway_leaves_nothing() {
    let fs = Fs::start().await;
    let uploader = Uploader::new(fs.client().await, BUCKET, config(ChecksumMode::Crc64Nvme));
    let mut data = random_bytes(4 * PART as usize, 9);
    data[(2 * PART) as usize..(2 * PART) as usize + 6].copy_from_slice(b"NEEDLE");
    let data = Bytes::from(data);
    for at_once in [false, true] {
        let key = format!("tap/infected-{at_once}");
        let (tx, _rx) = mpsc::unbounded_channel();
        let tap = scanner(b"NEEDLE", at_once, tx);
        let error = uploader
            .upload_tapped(write(&uploader, &key), frames(&data, 64 * 1024), None, Some(tap))
            .await
            .expect_err("refused");
        assert!(matches!(&error, Error::Rejected(e) if e.to_string().starts_with("found")), "{error:?}");
        assert_no_upload_or_object(&fs, &uploader, &key).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tap_holds_the_body_back() {
    let fs = Fs::start().await;
    let uploader = Uploader::new(fs.client().await, BUCKET, config(ChecksumMode::Crc64Nvme));
    let data = Bytes::from(random_bytes(3 * PART as usize, 11));
    let tap = Tap::spawn(1, |mut rx: mpsc::Receiver<Bytes>| async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    });
    let started = std::time::Instant::now();
    // 240 frames of 64 KiB at 2 ms each: the upload cannot finish before the tap has read them.
    uploader
        .upload_tapped(write(&uploader, "tap/slow"), frames(&data, 64 * 1024), None, Some(tap))
        .await
        .expect("stored");
    assert!(started.elapsed() >= Duration::from_millis(480), "took {:?}", started.elapsed());
    assert!(uploader.memory().peak() <= PART * 5, "peak {}", uploader.memory().peak());
}
