//! Resumable uploads against LocalStack (which honours `If-Match` / `If-None-Match` on PutObject):
//! appends over several requests and two stores on one bucket end in one verified object with the
//! whole file's digests; racing writers cannot both advance the state; a refused check keeps
//! nothing; a removal leaves nothing.

use crate::support::{PART, config, localstack, localstack_bucket, random_bytes, read_back};
use bytes::Bytes;
use ferry_core::checksum::{CrcAlgorithm, Md5, Sha256};
use ferry_s3::resumable::{HashCarry, Phase, ResumableError, ResumableState, ResumableStore};
use ferry_s3::{ChecksumMode, Uploader};
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(30);

fn state(key: &str, length: Option<u64>) -> ResumableState {
    ResumableState {
        key: key.to_owned(),
        content_type: Some("application/octet-stream".into()),
        content_disposition: None,
        metadata: Default::default(),
        length,
        max_len: 64 * PART,
        part_size: PART,
        sha256: true,
        expires: u64::MAX / 2,
        upload_id: None,
        parts: Vec::new(),
        hash: HashCarry::new(true, true).save(),
        tail: None,
        lease: None,
        phase: Phase::Open,
        app: serde_json::json!({"mine": 1}),
    }
}

fn frames(data: &[u8]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + use<> {
    let chunks: Vec<_> = data.chunks(300 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks)
}

async fn objects(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = client.list_objects_v2().bucket(bucket).send().await.unwrap();
    out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

async fn multipart_uploads(client: &aws_sdk_s3::Client, bucket: &str) -> usize {
    client.list_multipart_uploads().bucket(bucket).send().await.unwrap().uploads().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn appends_across_two_stores_end_in_one_verified_object() {
    let endpoint = localstack();
    for mode in [ChecksumMode::Crc64Nvme, ChecksumMode::Md5] {
        let (client, bucket) =
            localstack_bucket(&endpoint, &format!("resumable-{mode:?}").to_lowercase()).await;
        // Two processes on one bucket: each request may land on either.
        let stores: Vec<ResumableStore> = (0..2)
            .map(|_| ResumableStore::new(Uploader::new(client.clone(), &bucket, config(mode)), ".tus/"))
            .collect();
        let data = random_bytes(3 * PART as usize + 12_345, 7);
        stores[0].create("u1", &state("files/u1", Some(data.len() as u64))).await.unwrap();
        assert!(matches!(
            stores[1].create("u1", &state("files/u1", None)).await,
            Err(ResumableError::Exists)
        ));
        // Cuts inside parts, at part boundaries and a tiny request.
        let cuts = [0, 1000, PART as usize + 17, PART as usize + 18, 2 * PART as usize, data.len()];
        for (i, pair) in cuts.windows(2).enumerate() {
            let store = &stores[i % 2];
            let mut held = store.acquire("u1", &format!("req{i}"), LEASE).await.unwrap();
            assert_eq!(held.state.offset(), pair[0] as u64);
            let appended =
                store.append(&mut held, pair[0] as u64, frames(&data[pair[0]..pair[1]]), None).await;
            let appended = appended.unwrap();
            assert_eq!(appended.offset, pair[1] as u64);
            if pair[1] == data.len() {
                let stored = appended.stored.expect("the last byte completes the upload");
                assert_eq!(stored.summary.md5, Some(Md5::of(&data)));
                assert_eq!(stored.summary.sha256, Some(Sha256::of(&data)));
                if mode == ChecksumMode::Crc64Nvme {
                    assert_eq!(stored.object.checksum, Some(CrcAlgorithm::Crc64Nvme.checksum(&data)));
                }
            } else {
                assert!(appended.stored.is_none());
                // A request ending on a part boundary of a known length leaves no tail: its last
                // full part is not the file's last, so it went up as a part.
                let boundary = pair[1] % PART as usize == 0;
                assert_eq!(held.state.tail.is_none(), boundary, "tail after byte {}", pair[1]);
                assert_eq!(held.state.parts.len(), pair[1] / PART as usize, "parts after byte {}", pair[1]);
            }
            store.release(held).await.unwrap();
        }
        let (stored, _) = read_back(&client, &bucket, "files/u1").await;
        assert!(stored == data, "stored bytes differ");
        let loaded = stores[1].load("u1").await.unwrap();
        assert!(matches!(loaded.state.phase, Phase::Stored(_)), "{:?}", loaded.state.phase);
        assert_eq!(loaded.state.app, serde_json::json!({"mine": 1}));
        assert_eq!(multipart_uploads(&client, &bucket).await, 0);
        // Removing a stored upload keeps the object and drops the rest.
        stores[0].remove("u1", &loaded.state).await.unwrap();
        assert_eq!(objects(&client, &bucket).await, vec!["files/u1".to_owned()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn leases_lock_out_others_and_a_refused_check_keeps_nothing() {
    let endpoint = localstack();
    let (client, bucket) = localstack_bucket(&endpoint, "resumable-lease").await;
    let store =
        ResumableStore::new(Uploader::new(client.clone(), &bucket, config(ChecksumMode::Crc64Nvme)), ".tus/");
    let data = random_bytes(2 * PART as usize + 99, 3);
    store.create("u2", &state("files/u2", None)).await.unwrap();

    let mut held = store.acquire("u2", "a", LEASE).await.unwrap();
    assert!(matches!(store.acquire("u2", "b", LEASE).await, Err(ResumableError::Locked { .. })));
    let appended = store.append(&mut held, 0, frames(&data[..PART as usize + 5]), None).await.unwrap();
    assert_eq!(appended.offset, PART + 5);
    // A request whose check fails: its parts and tail are not committed.
    let refuse: ferry_s3::resumable::Check = Box::new(|| Err("checksum mismatch".into()));
    let end = 2 * PART as usize + 50;
    let refused =
        store.append(&mut held, PART + 5, frames(&data[PART as usize + 5..end]), Some(refuse)).await;
    assert!(matches!(refused, Err(ResumableError::Rejected(_))), "{refused:?}");
    assert_eq!(held.state.offset(), PART + 5);
    store.release(held).await.unwrap();
    assert_eq!(store.load("u2").await.unwrap().state.offset(), PART + 5);
    // Wrong offset.
    let mut held = store.acquire("u2", "b", Duration::from_millis(300)).await.unwrap();
    let wrong = store.append(&mut held, 7, frames(b"x"), None).await;
    assert!(
        matches!(wrong, Err(ResumableError::OffsetMismatch { committed, requested: 7 }) if committed == PART + 5)
    );
    // Past the length (deferred: past the maximum; here the length is set now).
    held.state.length = Some(data.len() as u64);
    store.save(&mut held).await.unwrap();
    let mut long = data[PART as usize + 5..].to_vec();
    long.push(0);
    let too_long = store.append(&mut held, PART + 5, frames(&long), None).await;
    assert!(matches!(too_long, Err(ResumableError::TooLong { .. })), "{too_long:?}");
    // "b" stops renewing: its 300 ms lease expires and "c" takes over; "b" has lost the upload.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut taken = store.acquire("u2", "c", LEASE).await.unwrap();
    // "b" wakes up: its next frame finds the lease gone before any part goes up.
    let stale = store.append(&mut held, PART + 5, frames(&data[PART as usize + 5..]), None).await;
    assert!(matches!(stale, Err(ResumableError::Moved)), "{stale:?}");
    assert!(matches!(store.save(&mut held).await, Err(ResumableError::Moved)));
    let done = store.append(&mut taken, PART + 5, frames(&data[PART as usize + 5..]), None).await.unwrap();
    assert_eq!(done.stored.expect("stored").summary.md5, Some(Md5::of(&data)));
    let (stored, _) = read_back(&client, &bucket, "files/u2").await;
    assert!(stored == data, "stored bytes differ");
    let state = store.release(taken).await.unwrap();
    store.remove("u2", &state).await.unwrap();
    assert_eq!(objects(&client, &bucket).await, vec!["files/u2".to_owned()], "no tail or state left");
    assert_eq!(multipart_uploads(&client, &bucket).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn racing_acquires_have_one_winner_and_removal_leaves_nothing() {
    let endpoint = localstack();
    let (client, bucket) = localstack_bucket(&endpoint, "resumable-race").await;
    let store =
        ResumableStore::new(Uploader::new(client.clone(), &bucket, config(ChecksumMode::Crc32c)), ".tus/");
    store.create("u3", &state("files/u3", Some(10 * PART))).await.unwrap();
    let tries = (0..6).map(|i| {
        let store = store.clone();
        async move { store.acquire("u3", &format!("r{i}"), LEASE).await }
    });
    let results = futures::future::join_all(tries).await;
    let winners: Vec<_> = results.into_iter().filter_map(Result::ok).collect();
    assert_eq!(winners.len(), 1, "exactly one request holds the upload");
    let mut held = winners.into_iter().next().unwrap();
    let data = random_bytes(PART as usize + 10, 5);
    store.append(&mut held, 0, frames(&data), None).await.unwrap();
    assert_eq!(multipart_uploads(&client, &bucket).await, 1);
    let state = store.release(held).await.unwrap();
    assert!(state.tail.is_some());
    // Expired: the reaper removes the multipart upload, the tail and the state.
    let mut expired = store.acquire("u3", "x", LEASE).await.unwrap();
    expired.state.expires = 1;
    let state = store.release(expired).await.unwrap();
    assert_eq!(state.expires, 1);
    let reaped = store.reap_expired(std::time::SystemTime::now()).await.unwrap();
    assert_eq!(reaped, vec!["u3".to_owned()]);
    assert!(objects(&client, &bucket).await.is_empty());
    assert_eq!(multipart_uploads(&client, &bucket).await, 0);
    assert!(matches!(store.load("u3").await, Err(ResumableError::NotFound)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_completion_cut_short_is_finished_by_the_next_holder() {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    use ferry_sandbox::s3_faults::{Action, FaultProxy, Operation, Rule, Target};
    let endpoint = localstack();
    let (client, bucket) = localstack_bucket(&endpoint, "resumable-complete").await;
    let upstream = endpoint.trim_start_matches("http://").parse().expect("loopback endpoint");
    let proxy = FaultProxy::start(upstream).await.unwrap();
    proxy.add_rule(
        Rule::new(Target::Op(Operation::CompleteMultipartUpload), Action::internal_error()).always(),
    );
    let via_proxy =
        ferry_s3::build_client(&ferry_s3::S3Config::compatible(proxy.endpoint(), "test", "test")).await;
    let failing = ResumableStore::new(Uploader::new(via_proxy, &bucket, config(ChecksumMode::Md5)), ".tus/");
    let direct =
        ResumableStore::new(Uploader::new(client.clone(), &bucket, config(ChecksumMode::Md5)), ".tus/");
    let data = random_bytes(PART as usize + 4000, 11);

    // S3 never answers Complete: the state says Completing, every part committed.
    failing.create("c1", &state("files/c1", Some(data.len() as u64))).await.unwrap();
    let mut held = failing.acquire("c1", "a", LEASE).await.unwrap();
    let cut_short = failing.append(&mut held, 0, frames(&data), None).await;
    assert!(matches!(cut_short, Err(ResumableError::S3(_))), "{cut_short:?}");
    failing.release(held).await.unwrap();
    let loaded = direct.load("c1").await.unwrap();
    assert_eq!(loaded.state.phase, Phase::Completing);
    assert_eq!(loaded.state.offset(), data.len() as u64);
    // The next holder (another process) completes and verifies it.
    let mut held = direct.acquire("c1", "b", LEASE).await.unwrap();
    let stored = direct.complete(&mut held).await.unwrap();
    assert_eq!(stored.summary.md5, Some(Md5::of(&data)));
    assert_eq!(stored.summary.sha256, Some(Sha256::of(&data)));
    assert!(matches!(held.state.phase, Phase::Stored(_)));
    direct.release(held).await.unwrap();
    assert!(read_back(&client, &bucket, "files/c1").await.0 == data);

    // S3 completed it but the answer was lost: the next holder recognises the object as its own.
    direct.create("c2", &state("files/c2", Some(data.len() as u64))).await.unwrap();
    let mut held = failing.acquire("c2", "a", LEASE).await.unwrap();
    assert!(failing.append(&mut held, 0, frames(&data), None).await.is_err());
    failing.release(held).await.unwrap();
    let loaded = direct.load("c2").await.unwrap();
    let parts: Vec<CompletedPart> = loaded
        .state
        .parts
        .iter()
        .map(|p| CompletedPart::builder().part_number(p.number as i32).e_tag(&p.etag).build())
        .collect();
    client
        .complete_multipart_upload()
        .bucket(&bucket)
        .key("files/c2")
        .upload_id(loaded.state.upload_id.clone().unwrap())
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    let mut held = direct.acquire("c2", "b", LEASE).await.unwrap();
    let stored = direct.complete(&mut held).await.unwrap();
    assert_eq!(stored.object.size, data.len() as u64);
    assert!(matches!(held.state.phase, Phase::Stored(_)));
    assert_eq!(multipart_uploads(&client, &bucket).await, 0);
}

/// `ferry dev` keeps its files in s3s-fs: resumable uploads work there too (one process; s3s-fs
/// checks the conditions without a lock, so races are LocalStack's to prove).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_uploads_work_on_s3s_fs() {
    let fs = crate::support::Fs::start().await;
    let store = ResumableStore::new(
        Uploader::new(fs.client().await, crate::support::BUCKET, config(ChecksumMode::Crc64Nvme)),
        ".tus/",
    );
    let data = random_bytes(PART as usize + 777, 13);
    store.create("d1", &state("files/d1", Some(data.len() as u64))).await.unwrap();
    assert!(matches!(store.create("d1", &state("files/d1", None)).await, Err(ResumableError::Exists)));
    let mut held = store.acquire("d1", "a", LEASE).await.unwrap();
    assert!(matches!(store.acquire("d1", "b", LEASE).await, Err(ResumableError::Locked { .. })));
    store.append(&mut held, 0, frames(&data[..1000]), None).await.unwrap();
    let done = store.append(&mut held, 1000, frames(&data[1000..]), None).await.unwrap();
    assert_eq!(done.stored.expect("stored").summary.md5, Some(Md5::of(&data)));
    store.release(held).await.unwrap();
    let (stored, _) = read_back(&fs.client().await, crate::support::BUCKET, "files/d1").await;
    assert!(stored == data, "stored bytes differ");
}
