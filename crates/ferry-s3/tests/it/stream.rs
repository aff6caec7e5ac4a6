//! `Uploader::upload` against s3s-fs in process: a body stream in, a verified object (or nothing at
//! all) out. Multi-part and single-part bodies land byte-identical; a failing body, a refusing gate
//! and a body that breaks its plan leave no multipart upload and no object; the part bytes held stay
//! within `part size × (max_in_flight + 1)`; a dropped upload is cleaned up in the background.

use crate::support::{
    BUCKET, Fs, PART, assert_no_upload_or_object, config, exists, frames, random_bytes, read_back,
};
use bytes::Bytes;
use ferry_core::checksum::Md5;
use ferry_core::chunk::{ChunkError, Chunker, ObjectSummary};
use ferry_core::plan::{PlanLimits, plan_parts};
use ferry_s3::{ChecksumMode, Error, Gate, ObjectMeta, ObjectWrite, UploadConfig, Uploader};
use ferry_sandbox::s3_faults::{Action, FaultProxy, Operation, Rule, Target};
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What to store at `key`: 5 MiB parts, `declared` length if any, the uploader's digests.
fn write(uploader: &Uploader, key: &str, declared: Option<u64>) -> ObjectWrite {
    // 16 GiB at most: 5 MiB parts even when no length is declared.
    let limits = PlanLimits { preferred_part_size: PART, max_file_size: 1 << 34 };
    let plan = plan_parts(declared, &limits).expect("plan");
    ObjectWrite {
        key: key.into(),
        meta: ObjectMeta { content_type: Some("application/octet-stream".into()), ..ObjectMeta::default() },
        chunker: Chunker::new(plan, uploader.config().checksum_mode.chunker_options(true)),
        reservation: None,
    }
}

/// Asserts that nothing of `key` is left: no multipart upload, no part, no object.
async fn assert_nothing_left(fs: &Fs, uploader: &Uploader, key: &str) {
    assert_no_upload_or_object(fs, uploader, key).await;
    assert_eq!(uploader.memory().held(), 0);
}

async fn proxied(fs: &Fs, config: UploadConfig) -> (FaultProxy, Uploader) {
    let proxy = FaultProxy::start(fs.server.addr()).await.unwrap();
    let uploader = Uploader::new(fs.client_via(&proxy.endpoint()).await, BUCKET, config);
    (proxy, uploader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_part_and_single_part_bodies_are_stored_and_verified() {
    let fs = Fs::start().await;
    for mode in [ChecksumMode::Md5, ChecksumMode::Crc64Nvme] {
        let (proxy, uploader) = proxied(&fs, config(mode)).await;
        for (len, parts) in [(3 * PART as usize + 3, 4), (PART as usize, 1), (1000, 1), (0, 1)] {
            let data = Bytes::from(random_bytes(len, len as u64));
            let key = format!("stream/{mode:?}-{len}");
            let asked = Arc::new(AtomicBool::new(false));
            let gate: Gate = Box::new({
                let (asked, md5) = (Arc::clone(&asked), Md5::of(&data));
                move |summary: &ObjectSummary| {
                    asked.store(true, Ordering::SeqCst);
                    if summary.md5 == Some(md5) { Ok(()) } else { Err("Content-MD5 does not match".into()) }
                }
            });
            let creates_before = proxy.requests_of(Target::Op(Operation::CreateMultipartUpload)).len();
            let stored = uploader
                .upload(write(&uploader, &key, Some(len as u64)), frames(&data, 300_000), Some(gate))
                .await
                .unwrap_or_else(|e| panic!("{mode:?} {len} bytes: {e}"));
            assert!(asked.load(Ordering::SeqCst), "the gate was asked");
            let creates =
                proxy.requests_of(Target::Op(Operation::CreateMultipartUpload)).len() - creates_before;
            assert_eq!(creates, usize::from(parts > 1), "{len} bytes: multipart only when needed");
            assert_eq!(stored.object.part_count, parts);
            assert_eq!((stored.object.size, stored.summary.len), (len as u64, len as u64));
            assert_eq!(stored.object.md5, Some(Md5::of(&data)));
            assert_eq!(stored.summary.sha256, Some(ferry_core::checksum::Sha256::of(&data)));
            // Part MD5s only in the md5 mode (S3 verifies each part by its CRC otherwise).
            let expected_etag =
                if parts == 1 { Some(Md5::of(&data).to_hex()) } else { stored.summary.multipart_etag() };
            assert_eq!(expected_etag.is_some(), parts == 1 || mode == ChecksumMode::Md5, "{mode:?}");
            assert_eq!(stored.summary.crc, mode.crc().map(|alg| alg.checksum(&data)), "{mode:?}");
            if let Some(expected) = &expected_etag {
                assert_eq!(&stored.object.etag, expected);
            }
            let (bytes, etag) = read_back(&fs.client().await, BUCKET, &key).await;
            assert!(bytes == data, "{len} bytes: stored object differs");
            assert_eq!(etag, stored.object.etag);
            assert_eq!(uploader.memory().held(), 0);
        }
        assert_eq!(uploader.stats().aborted(), 0);
    }
    assert_eq!(fs.server.pending_multipart(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_body_returns_its_own_error_and_leaves_nothing() {
    let fs = Fs::start().await;
    let uploader = Uploader::new(fs.client().await, BUCKET, config(ChecksumMode::Crc64Nvme));
    // After two and a half parts (a multipart upload exists, parts are up), and at once.
    for (sent, key) in [(2 * PART as usize + PART as usize / 2, "body/late"), (0, "body/early")] {
        let data = Bytes::from(random_bytes(sent, 5));
        let body = frames(&data, 1 << 20)
            .chain(futures::stream::iter([Err(std::io::Error::other("client went away"))]));
        let err = uploader.upload(write(&uploader, key, None), body, None).await.unwrap_err();
        let Error::Body(source) = err else { panic!("{key}: expected Error::Body, got {err:?}") };
        let source = source.downcast::<std::io::Error>().expect("the body's own error");
        assert_eq!(source.to_string(), "client went away");
        assert_nothing_left(&fs, &uploader, key).await;
    }
    assert_eq!(uploader.stats().aborted(), 1, "only the late failure had a multipart upload to abort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_gate_is_rejected_and_leaves_nothing() {
    let fs = Fs::start().await;
    let (proxy, uploader) = proxied(&fs, config(ChecksumMode::Md5)).await;
    for (len, key) in [(2 * PART as usize + 1, "gate/multi"), (10, "gate/single")] {
        let data = Bytes::from(random_bytes(len, 6));
        let gate: Gate = Box::new(|_: &ObjectSummary| Err("Content-MD5 does not match".into()));
        let err = uploader
            .upload(write(&uploader, key, None), frames(&data, 1 << 20), Some(gate))
            .await
            .unwrap_err();
        let Error::Rejected(why) = err else { panic!("{key}: expected Error::Rejected, got {err:?}") };
        assert_eq!(why.to_string(), "Content-MD5 does not match");
        assert_nothing_left(&fs, &uploader, key).await;
    }
    assert!(proxy.requests_of(Target::Op(Operation::CompleteMultipartUpload)).is_empty());
    assert!(
        proxy.requests_of(Target::Op(Operation::PutObject)).is_empty(),
        "a refused one-part file is never sent"
    );
    assert_eq!(proxy.requests_of(Target::UploadPart(None)).len(), 3, "the multi-part file's parts went up");
    assert_eq!(uploader.stats().aborted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_breaks_its_plan_is_a_chunk_error_and_leaves_nothing() {
    let fs = Fs::start().await;
    let uploader = Uploader::new(fs.client().await, BUCKET, config(ChecksumMode::Crc32c));
    let declared = 2 * PART + 10;

    let longer = Bytes::from(random_bytes(declared as usize + 1, 7));
    let err = uploader
        .upload(write(&uploader, "plan/long", Some(declared)), frames(&longer, 1 << 20), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Chunk(ChunkError::TooLong { limit, declared: true }) if limit == declared),
        "{err:?}"
    );
    assert_nothing_left(&fs, &uploader, "plan/long").await;

    let shorter = longer.slice(..declared as usize - 1);
    let err = uploader
        .upload(write(&uploader, "plan/short", Some(declared)), frames(&shorter, 1 << 20), None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Chunk(ChunkError::TooShort { .. })), "{err:?}");
    assert_nothing_left(&fs, &uploader, "plan/short").await;
    assert_eq!(uploader.stats().aborted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunker_without_the_modes_crc_is_refused_before_reading() {
    let fs = Fs::start().await;
    let uploader = Uploader::new(fs.client().await, BUCKET, config(ChecksumMode::Crc64Nvme));
    let plan = plan_parts(None, &PlanLimits { preferred_part_size: PART, max_file_size: 1 << 30 }).unwrap();
    let write = ObjectWrite {
        key: "mode".into(),
        meta: ObjectMeta::default(),
        chunker: Chunker::new(plan, ChecksumMode::Md5.inline_chunker_options(false)),
        reservation: None,
    };
    let body = futures::stream::poll_fn(|_| -> std::task::Poll<Option<Result<Bytes, std::io::Error>>> {
        panic!("the body must not be read")
    });
    let err = uploader.upload(write, body, None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

const IN_FLIGHT: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_memory_stays_within_the_bound_while_s3_is_slow() {
    let fs = Fs::start().await;
    let config = UploadConfig { max_in_flight: IN_FLIGHT, ..config(ChecksumMode::Md5) };
    let (proxy, uploader) = proxied(&fs, config).await;
    proxy.add_rule(Rule::new(Target::UploadPart(None), Action::Delay(Duration::from_millis(150))).always());
    let data = Bytes::from(random_bytes(8 * PART as usize + 1, 8));
    // Spawned: the upload future is Send and 'static once the uploader is moved in.
    let task = tokio::spawn({
        let (uploader, data) = (uploader.clone(), data.clone());
        async move {
            let write = write(&uploader, "bounded", Some(data.len() as u64));
            uploader.upload(write, frames(&data, 1 << 20), None).await
        }
    });
    let stored = task.await.unwrap().expect("stored");
    assert_eq!(stored.object.part_count, 9);
    let (peak, bound) = (uploader.memory().peak(), PART * (IN_FLIGHT as u64 + 1));
    assert!(peak <= bound, "peak {peak} over the bound {bound}");
    assert!(peak >= PART * IN_FLIGHT as u64, "S3 was slow, so parts must have queued up (peak {peak})");
    assert_eq!(uploader.memory().held(), 0);
    assert!(read_back(&fs.client().await, BUCKET, "bounded").await.0 == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_upload_is_aborted_in_the_background() {
    let fs = Fs::start().await;
    let uploader = Uploader::new(fs.client().await, BUCKET, config(ChecksumMode::Md5));
    let data = Bytes::from(random_bytes(2 * PART as usize + 1, 9));
    // The body stalls after two parts' worth, like a client that stopped sending.
    let body = frames(&data, 1 << 20).chain(futures::stream::pending());
    let upload = uploader.upload(write(&uploader, "dropped", None), body, None);
    let waited = tokio::time::timeout(Duration::from_secs(1), upload).await;
    assert!(waited.is_err(), "the stalled upload cannot finish");
    uploader.cleanups_settled().await;
    assert_eq!(uploader.stats().aborted(), 1, "the multipart upload existed and was aborted");
    assert_nothing_left(&fs, &uploader, "dropped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn against_strict_s3_the_object_verifies_and_failures_leave_no_upload() {
    let endpoint = crate::support::localstack();
    let (client, bucket) = crate::support::localstack_bucket(&endpoint, "stream").await;
    let uploader = Uploader::new(client.clone(), &bucket, config(ChecksumMode::Crc64Nvme));
    let data = Bytes::from(random_bytes(2 * PART as usize + 7, 10));

    let stored = uploader
        .upload(write(&uploader, "strict/ok", Some(data.len() as u64)), frames(&data, 1 << 20), None)
        .await
        .expect("stored");
    let head = client
        .head_object()
        .bucket(&bucket)
        .key("strict/ok")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    let crc = stored.summary.crc.expect("the mode computes a CRC");
    assert_eq!(head.checksum_crc64_nvme(), Some(crc.to_base64().as_str()), "S3 verified the FULL_OBJECT CRC");
    assert!(read_back(&client, &bucket, "strict/ok").await.0 == data);

    let gate: Gate = Box::new(|_: &ObjectSummary| Err("Repr-Digest does not match".into()));
    let err =
        uploader.upload(write(&uploader, "strict/gate", None), frames(&data, 1 << 20), Some(gate)).await;
    assert!(matches!(err, Err(Error::Rejected(_))), "{err:?}");
    let body = frames(&data, 1 << 20).chain(futures::stream::iter([Err(std::io::Error::other("reset"))]));
    let err = uploader.upload(write(&uploader, "strict/body", None), body, None).await;
    assert!(matches!(err, Err(Error::Body(_))), "{err:?}");

    uploader.cleanups_settled().await;
    let left = client.list_multipart_uploads().bucket(&bucket).prefix("strict/").send().await.unwrap();
    assert!(left.uploads().is_empty(), "uploads left behind: {:?}", left.uploads());
    for key in ["strict/gate", "strict/body"] {
        assert!(!exists(&client, &bucket, key).await, "{key} must not exist");
    }
    assert_eq!(uploader.stats().aborted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_crc_only_upload_computes_no_md5_and_s3_still_verifies_every_part_and_the_whole() {
    let endpoint = crate::support::localstack();
    let (client, bucket) = crate::support::localstack_bucket(&endpoint, "crc-only").await;
    let proxy = FaultProxy::start(endpoint.trim_start_matches("http://").parse().unwrap()).await.unwrap();
    // A byte flipped in part 2 on its way: only its CRC can catch it (no Content-MD5 is sent).
    proxy.add_rule(Rule::new(Target::UploadPart(Some(2)), Action::FlipByte(4321)));
    let via_proxy =
        ferry_s3::build_client(&ferry_s3::S3Config::compatible(proxy.endpoint(), "test", "test")).await;
    let uploader = Uploader::new(via_proxy, &bucket, config(ChecksumMode::Crc64Nvme));
    let data = Bytes::from(random_bytes(3 * PART as usize + 5, 13));
    let mut write = write(&uploader, "crc-only/ok", Some(data.len() as u64));
    let options = ferry_core::chunk::ChunkerOptions {
        whole_md5: false,
        ..uploader.config().checksum_mode.chunker_options(false)
    };
    write.chunker = Chunker::new(*write.chunker.plan(), options);

    let stored = uploader.upload(write, frames(&data, 1 << 20), None).await.expect("stored");
    assert_eq!((stored.summary.md5, stored.object.md5, stored.summary.sha256), (None, None, None));
    assert!(stored.summary.part_md5s.is_empty(), "no part MD5 either");
    let part2 = proxy.requests_of(Target::UploadPart(Some(2)));
    assert_eq!(part2.iter().map(|r| r.status).collect::<Vec<_>>(), [Some(400), Some(200)], "{part2:?}");
    let crc = ferry_core::checksum::CrcAlgorithm::Crc64Nvme.checksum(&data);
    assert_eq!(stored.object.checksum, Some(crc));
    let head = client
        .head_object()
        .bucket(&bucket)
        .key("crc-only/ok")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_type(), Some(&aws_sdk_s3::types::ChecksumType::FullObject));
    assert_eq!(head.checksum_crc64_nvme(), Some(crc.to_base64().as_str()), "S3 verified the FULL_OBJECT CRC");
    assert!(read_back(&client, &bucket, "crc-only/ok").await.0 == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_sharing_a_budget_part_by_part_all_finish() {
    // A pool of exactly two parts, both reserved at admission by two uploads of four parts each:
    // each hands its share to its first part in flight and waits for the next, so they take turns
    // rather than starve each other, and the pool is whole again at the end.
    let fs = Fs::start().await;
    let pool = Arc::new(tokio::sync::Semaphore::new(10));
    let budget = ferry_s3::PartBudget::new(Arc::clone(&pool), PART / 5);
    assert_eq!(budget.permits_for(PART), 5);
    let uploader =
        Uploader::with_budget(fs.client().await, BUCKET, config(ChecksumMode::Crc64Nvme), budget.clone());
    let run = |n: u64| {
        let uploader = uploader.clone();
        let pool = Arc::clone(&pool);
        async move {
            let data = Bytes::from(random_bytes(4 * PART as usize - 7, n));
            let mut write = write(&uploader, &format!("budget/{n}"), Some(data.len() as u64));
            write.reservation = Some(pool.try_acquire_many_owned(5).expect("admitted"));
            let stored = uploader.upload(write, frames(&data, 256 * 1024), None).await.expect("stored");
            assert_eq!(stored.object.size, data.len() as u64);
        }
    };
    let both = futures::future::join(run(1), run(2));
    Box::pin(tokio::time::timeout(Duration::from_secs(60), both)).await.expect("no standstill");
    assert_eq!(pool.available_permits(), 10, "every share given back");
    assert_eq!(uploader.memory().held(), 0);
}
