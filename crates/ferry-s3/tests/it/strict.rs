//! Against LocalStack's S3, which verifies Content-MD5 and flexible checksums and implements the
//! listings: FULL_OBJECT checksums verified, corruption caught and repaired, resumption, paging, and
//! no multipart upload left behind by failures.

use crate::support::{PART, config, localstack, localstack_bucket, random_bytes, read_back, upload};
use aws_sdk_s3::types::ChecksumMode as SdkChecksumMode;
use bytes::Bytes;
use ferry_core::checksum::{CrcAlgorithm, Md5};
use ferry_core::chunk::Chunker;
use ferry_core::plan::{PlanLimits, plan_parts};
use ferry_s3::{ChecksumMode, Error, ObjectMeta, Uploader};
use ferry_sandbox::s3_faults::{Action, FaultProxy, Operation, Rule, Target};

fn upstream(endpoint: &str) -> std::net::SocketAddr {
    endpoint.trim_start_matches("http://").parse().expect("loopback endpoint")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn full_object_checksums_are_verified_by_s3() {
    let endpoint = localstack();
    for (mode, alg) in
        [(ChecksumMode::Crc64Nvme, CrcAlgorithm::Crc64Nvme), (ChecksumMode::Crc32c, CrcAlgorithm::Crc32c)]
    {
        let (client, bucket) = localstack_bucket(&endpoint, &format!("full-{alg:?}").to_lowercase()).await;
        let uploader = Uploader::new(client.clone(), &bucket, config(mode));
        for len in [3 * PART as usize + 11, 1000] {
            let data = random_bytes(len, len as u64);
            let object = upload(&uploader, "obj", &data, 256 * 1024).await.expect("upload");
            let crc = alg.checksum(&data);
            assert_eq!(object.checksum, Some(crc));
            let head = client
                .head_object()
                .bucket(&bucket)
                .key("obj")
                .checksum_mode(SdkChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
            let stored = match alg {
                CrcAlgorithm::Crc64Nvme => head.checksum_crc64_nvme(),
                CrcAlgorithm::Crc32c => head.checksum_crc32_c(),
            };
            assert_eq!(
                stored,
                Some(crc.to_base64().as_str()),
                "S3 stored the FULL_OBJECT checksum ferry computed"
            );
            let (bytes, etag) = read_back(&client, &bucket, "obj").await;
            assert!(bytes == data);
            assert_eq!(etag, object.etag);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_flipped_byte_is_rejected_by_s3_and_repaired_by_retry() {
    let endpoint = localstack();
    let (client, bucket) = localstack_bucket(&endpoint, "flip").await;
    let proxy = FaultProxy::start(upstream(&endpoint)).await.unwrap();
    proxy.add_rule(Rule::new(Target::UploadPart(Some(2)), Action::FlipByte(12345)));
    proxy.add_rule(Rule::new(Target::Op(Operation::PutObject), Action::FlipByte(7)));
    // Throttling and a reset on the way, as S3 does under load.
    proxy.add_rule(Rule::new(Target::UploadPart(Some(1)), Action::slow_down()).times(2));
    proxy.add_rule(Rule::new(Target::UploadPart(Some(3)), Action::ResetMidBody));
    let via_proxy =
        ferry_s3::build_client(&ferry_s3::S3Config::compatible(proxy.endpoint(), "test", "test")).await;
    let uploader = Uploader::new(via_proxy, &bucket, config(ChecksumMode::Md5));

    let data = random_bytes(2 * PART as usize + 5, 1);
    let object = upload(&uploader, "flipped", &data, 1 << 20).await.expect("repaired");
    let part2 = proxy.requests_of(Target::UploadPart(Some(2)));
    assert_eq!(part2.len(), 2, "part 2 sent twice: {part2:?}");
    assert_eq!(part2[0].status, Some(400), "S3 refused the damaged part (BadDigest)");
    assert_eq!(part2[1].status, Some(200));
    assert_eq!(proxy.requests_of(Target::UploadPart(Some(1))).len(), 3);
    assert_eq!(proxy.requests_of(Target::UploadPart(Some(3))).len(), 2);
    assert!(read_back(&client, &bucket, "flipped").await.0 == data);
    assert_eq!(object.md5, Some(Md5::of(&data)));

    let small = random_bytes(100, 2);
    upload(&uploader, "flipped-small", &small, 100).await.expect("repaired single PUT");
    assert_eq!(proxy.requests_of(Target::Op(Operation::PutObject)).len(), 2);
    assert!(read_back(&client, &bucket, "flipped-small").await.0 == small);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn failures_and_cancellations_leave_no_multipart_upload() {
    let endpoint = localstack();
    let (client, bucket) = localstack_bucket(&endpoint, "debris").await;
    let proxy = FaultProxy::start(upstream(&endpoint)).await.unwrap();
    let via_proxy =
        ferry_s3::build_client(&ferry_s3::S3Config::compatible(proxy.endpoint(), "test", "test")).await;
    let uploader = Uploader::new(via_proxy, &bucket, config(ChecksumMode::Crc64Nvme));
    let data = random_bytes(4 * PART as usize, 3);

    // Part 3 keeps failing: the upload fails and is aborted.
    proxy.add_rule(Rule::new(Target::UploadPart(Some(3)), Action::internal_error()).always());
    let err = upload(&uploader, "failing", &data, 1 << 20).await.unwrap_err();
    assert!(matches!(err, Error::Service { status: Some(500), attempts: 5, .. }), "{err:?}");
    assert!(!proxy.requests_of(Target::Op(Operation::AbortMultipartUpload)).is_empty());
    proxy.clear_rules();

    // Dropped mid-upload (the client went away) while part 2 is still in flight.
    proxy.add_rule(Rule::new(Target::UploadPart(Some(2)), Action::Delay(std::time::Duration::from_secs(2))));
    let plan = plan_parts(
        Some(data.len() as u64),
        &PlanLimits { preferred_part_size: PART, max_file_size: 1 << 40 },
    )
    .unwrap();
    let mut chunker = Chunker::new(plan, ChecksumMode::Crc64Nvme.inline_chunker_options(false));
    let mut upload = uploader.begin("dropped", ObjectMeta::default());
    let bytes = Bytes::from(data.clone());
    let mut pushed = 0;
    for part in chunker.push(bytes.slice(..2 * PART as usize + 1)).unwrap() {
        upload.push_part(part).await.unwrap();
        pushed += 1;
    }
    assert_eq!(pushed, 2);
    assert!(upload.upload_id().is_some());
    drop(upload);
    uploader.cleanups_settled().await;

    // A fatal error (no such bucket) is not retried.
    let fatal = Uploader::new(client.clone(), "no-such-bucket-ferry", config(ChecksumMode::Md5));
    let err = upload_small(&fatal).await;
    assert!(matches!(err, Error::NoSuchBucket { .. }), "{err:?}");

    let left = client.list_multipart_uploads().bucket(&bucket).send().await.unwrap();
    assert!(left.uploads().is_empty(), "uploads left behind: {:?}", left.uploads());
    for key in ["failing", "dropped"] {
        assert!(!crate::support::exists(&client, &bucket, key).await, "{key} must not exist");
    }
    assert!(uploader.stats().aborted() >= 2);
}

async fn upload_small(uploader: &Uploader) -> Error {
    upload(uploader, "k", b"tiny", 4).await.unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn an_interrupted_upload_resumes_without_resending_stored_parts() {
    let endpoint = localstack();
    let (client, bucket) = localstack_bucket(&endpoint, "resume").await;
    let proxy = FaultProxy::start(upstream(&endpoint)).await.unwrap();
    let via_proxy =
        ferry_s3::build_client(&ferry_s3::S3Config::compatible(proxy.endpoint(), "test", "test")).await;
    let uploader = Uploader::new(via_proxy, &bucket, config(ChecksumMode::Md5));
    let data = Bytes::from(random_bytes(3 * PART as usize + 9, 4));
    let limits = PlanLimits { preferred_part_size: PART, max_file_size: 1 << 40 };
    let plan = plan_parts(Some(data.len() as u64), &limits).unwrap();

    // First run: two parts land, then the process "crashes" (the upload is leaked, not aborted).
    let mut chunker = Chunker::new(plan, ChecksumMode::Md5.inline_chunker_options(false));
    let mut first = uploader.begin("resumed", ObjectMeta::default());
    for part in chunker.push(data.slice(..2 * PART as usize + 1)).unwrap() {
        first.push_part(part).await.unwrap();
    }
    // Wait for both parts to be stored, then leak the upload as a crash would.
    let upload_id = first.upload_id().unwrap().to_owned();
    for _ in 0..100 {
        if uploader.list_parts("resumed", &upload_id).await.unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::mem::forget(first);
    let pending = uploader.list_uploads("resumed").await.unwrap();
    assert_eq!(pending.iter().map(|p| p.upload_id.as_str()).collect::<Vec<_>>(), [upload_id.as_str()]);

    // Second run: resume, feed everything again; only parts 3 and 4 travel.
    let sent_before = proxy.requests_of(Target::UploadPart(None)).len();
    let mut resumed = uploader.resume("resumed", &upload_id, ObjectMeta::default()).await.unwrap();
    let mut chunker = Chunker::new(plan, ChecksumMode::Md5.inline_chunker_options(false));
    for part in chunker.push(data.clone()).unwrap() {
        resumed.push_part(part).await.unwrap();
    }
    let (last, summary) = chunker.finish().unwrap();
    let object = resumed.finish(last, &summary).await.unwrap();
    let mut sent: Vec<_> =
        proxy.requests_of(Target::UploadPart(None)).into_iter().skip(sent_before).map(|r| r.op).collect();
    sent.sort_by_key(|op| format!("{op:?}"));
    assert_eq!(sent, [Operation::UploadPart(3), Operation::UploadPart(4)]);
    assert_eq!(Some(object.etag), summary.multipart_etag());
    assert!(read_back(&client, &bucket, "resumed").await.0 == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn listing_parts_pages_past_one_thousand() {
    let endpoint = localstack();
    let (client, bucket) = localstack_bucket(&endpoint, "paging").await;
    let created = client.create_multipart_upload().bucket(&bucket).key("many").send().await.unwrap();
    let upload_id = created.upload_id().unwrap().to_owned();
    let numbers: Vec<i32> = (1..=1003).collect();
    for batch in numbers.chunks(32) {
        let sends = batch.iter().map(|n| {
            client
                .upload_part()
                .bucket(&bucket)
                .key("many")
                .upload_id(&upload_id)
                .part_number(*n)
                .body(Bytes::from_static(b"x").into())
                .send()
        });
        for result in futures::future::join_all(sends).await {
            result.unwrap();
        }
    }
    let uploader = Uploader::new(client.clone(), &bucket, config(ChecksumMode::Md5));
    let parts = uploader.list_parts("many", &upload_id).await.unwrap();
    assert_eq!(parts.len(), 1003);
    assert!(parts.iter().enumerate().all(|(i, p)| p.number as usize == i + 1 && p.size == 1));
    uploader.abort("many", &upload_id).await.unwrap();
    assert!(matches!(uploader.list_parts("many", &upload_id).await, Err(Error::NoSuchUpload { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn the_reaper_aborts_stale_uploads_it_does_not_own() {
    let endpoint = localstack();
    let (client, bucket) = localstack_bucket(&endpoint, "reaper").await;
    // A crashed process's debris: an upload begun by another uploader (another process).
    let crashed =
        client.create_multipart_upload().bucket(&bucket).key("ferry/dep/crashed").send().await.unwrap();
    client
        .upload_part()
        .bucket(&bucket)
        .key("ferry/dep/crashed")
        .upload_id(crashed.upload_id().unwrap())
        .part_number(1)
        .body(Bytes::from_static(b"debris").into())
        .send()
        .await
        .unwrap();
    // Outside the prefix: not ferry's to reap.
    let foreign = client.create_multipart_upload().bucket(&bucket).key("other/app").send().await.unwrap();

    let uploader = Uploader::new(client.clone(), &bucket, config(ChecksumMode::Md5));
    // This process's own upload in progress must survive.
    let plan = plan_parts(Some(2 * PART), &PlanLimits { preferred_part_size: PART, max_file_size: 1 << 40 })
        .unwrap();
    let mut chunker = Chunker::new(plan, ChecksumMode::Md5.inline_chunker_options(false));
    let mut mine = uploader.begin("ferry/dep/mine", ObjectMeta::default());
    for part in chunker.push(Bytes::from(random_bytes(PART as usize + 1, 8))).unwrap() {
        mine.push_part(part).await.unwrap();
    }
    let mine_id = mine.upload_id().unwrap().to_owned();

    // Too young for a 1-hour age: nothing happens.
    let now = std::time::SystemTime::now();
    assert!(
        uploader.reap_stale("ferry/", std::time::Duration::from_secs(3600), now).await.unwrap().is_empty()
    );
    // Seen from two hours later, the crashed one goes; mine and the foreign one stay.
    let later = now + std::time::Duration::from_secs(7200);
    let reaped = uploader.reap_stale("ferry/", std::time::Duration::from_secs(3600), later).await.unwrap();
    assert_eq!(reaped.iter().map(|u| u.key.as_str()).collect::<Vec<_>>(), ["ferry/dep/crashed"]);
    let left: Vec<String> = client
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .uploads()
        .iter()
        .filter_map(|u| u.upload_id().map(str::to_owned))
        .collect();
    assert!(left.contains(&mine_id));
    assert!(left.contains(&foreign.upload_id().unwrap().to_owned()));
    assert_eq!(left.len(), 2);
    mine.abort().await;
    // Once this process lets go of it, its upload is fair game too (it is gone already here).
    let reaped = uploader.reap_stale("ferry/", std::time::Duration::ZERO, later).await.unwrap();
    assert!(reaped.is_empty());
    client
        .abort_multipart_upload()
        .bucket(&bucket)
        .key("other/app")
        .upload_id(foreign.upload_id().unwrap())
        .send()
        .await
        .unwrap();
}
