//! Injected faults through the sandbox proxy in front of s3s-fs: throttling, server errors, resets
//! and corruption are survived; the attempts are visible in the proxy's log.

use crate::support::{BUCKET, Fs, PART, config, random_bytes, read_back, upload};
use ferry_s3::{ChecksumMode, Error, Uploader};
use ferry_sandbox::s3_faults::{Action, FaultProxy, Operation, Rule, Target};

async fn proxied(fs: &Fs) -> (FaultProxy, Uploader) {
    let proxy = FaultProxy::start(fs.server.addr()).await.unwrap();
    let uploader = Uploader::new(fs.client_via(&proxy.endpoint()).await, BUCKET, config(ChecksumMode::Md5));
    (proxy, uploader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_errors_and_resets_are_retried() {
    let fs = Fs::start().await;
    let (proxy, uploader) = proxied(&fs).await;
    proxy.add_rule(Rule::new(Target::Op(Operation::CreateMultipartUpload), Action::internal_error()));
    proxy.add_rule(Rule::new(Target::UploadPart(Some(1)), Action::slow_down()).times(2));
    proxy.add_rule(Rule::new(Target::UploadPart(Some(2)), Action::ResetMidBody));
    proxy.add_rule(Rule::new(Target::UploadPart(Some(3)), Action::Close));
    proxy.add_rule(Rule::new(
        Target::UploadPart(Some(4)),
        Action::Respond { status: 429, code: "TooManyRequests".into() },
    ));
    proxy.add_rule(Rule::new(Target::Op(Operation::CompleteMultipartUpload), Action::slow_down()));

    let data = random_bytes(3 * PART as usize + 100, 9);
    let object = upload(&uploader, "survivor", &data, 1 << 20).await.expect("survives the faults");
    assert_eq!(object.part_count, 4);
    assert!(read_back(&fs.client().await, BUCKET, "survivor").await.0 == data);
    let count = |t| proxy.requests_of(t).len();
    assert_eq!(count(Target::Op(Operation::CreateMultipartUpload)), 2);
    assert_eq!(count(Target::UploadPart(Some(1))), 3);
    assert_eq!(count(Target::UploadPart(Some(2))), 2);
    assert_eq!(count(Target::UploadPart(Some(3))), 2);
    assert_eq!(count(Target::UploadPart(Some(4))), 2);
    assert_eq!(count(Target::Op(Operation::CompleteMultipartUpload)), 2);
    assert_eq!(uploader.stats().part_retries(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_caught_by_the_etag_check() {
    // s3s-fs does not check Content-MD5, so only ferry's ETag comparison can notice.
    let fs = Fs::start().await;
    let (proxy, uploader) = proxied(&fs).await;
    proxy.add_rule(Rule::new(Target::UploadPart(Some(1)), Action::FlipByte(0)));
    let data = random_bytes(PART as usize + 1, 10);
    upload(&uploader, "flipped", &data, 1 << 16).await.expect("re-uploaded");
    let part1 = proxy.requests_of(Target::UploadPart(Some(1)));
    assert_eq!(part1.len(), 2);
    assert_eq!(part1[0].status, Some(200), "s3s-fs accepted the damaged part");
    assert!(read_back(&fs.client().await, BUCKET, "flipped").await.0 == data);

    // Always damaged: a typed mismatch, and nothing left.
    proxy.add_rule(Rule::new(Target::UploadPart(Some(2)), Action::FlipByte(5)).always());
    let data = random_bytes(2 * PART as usize + 1, 11);
    let err = upload(&uploader, "hopeless", &data, 1 << 16).await.unwrap_err();
    match err {
        Error::ChecksumMismatch { part: Some(2), what: "etag", expected, actual } => {
            assert_ne!(expected, actual)
        }
        other => panic!("expected a part 2 mismatch, got {other:?}"),
    }
    assert!(!crate::support::exists(&fs.client().await, BUCKET, "hopeless").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_for_the_whole_upload_is_a_transport_error() {
    let fs = Fs::start().await;
    let (proxy, uploader) = proxied(&fs).await;
    proxy.add_rule(Rule::new(Target::Any, Action::Close).always());
    let err =
        upload(&uploader, "unreachable", &random_bytes(PART as usize + 1, 12), 1 << 20).await.unwrap_err();
    assert!(
        matches!(err, Error::Transport { operation: "CreateMultipartUpload", attempts: 5, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_fatal_and_not_retried() {
    let fs = Fs::start().await;
    let client =
        ferry_s3::build_client(&ferry_s3::S3Config::compatible(fs.server.endpoint(), "wrong", "credentials"))
            .await;
    let proxy = FaultProxy::start(fs.server.addr()).await.unwrap();
    let _ = &proxy;
    let uploader = Uploader::new(client, BUCKET, config(ChecksumMode::Md5));
    let err = upload(&uploader, "denied", b"data", 4).await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert!(
        matches!(err, Error::AccessDenied { .. } | Error::Service { status: Some(403), attempts: 1, .. }),
        "{err:?}"
    );
}
