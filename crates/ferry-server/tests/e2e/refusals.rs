//! Uploads that are refused: over ferry's size limit (streamed chunked, and declared), a wrong
//! digest, an unknown session, an unconfigured deployment. Each leaves nothing in S3 (no object,
//! no multipart upload in progress) and nothing in the conversation. A native attachment Genesys
//! refuses after the file is stored is not a refusal: the file is kept and goes as a link.

use crate::args;
use crate::harness::{DEPLOYMENT, Harness, MIB, Options, bytes};
use ferry_core::checksum::{Md5, Sha256};

/// The emulator saw no file and no message on any session.
fn assert_conversations_untouched(h: &Harness) {
    for conversation in h.emulator.state().conversations() {
        assert!(
            conversation.attachments.is_empty() && conversation.messages.is_empty(),
            "the emulator saw an upload: {conversation:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn over_the_size_limit_is_413_and_leaves_nothing() {
    // 7 MiB: the first 5 MiB part is uploaded before the limit is crossed, so there is a
    // multipart upload to abort.
    let options = Options { env: vec![("FERRY_MAX_FILE_SIZE", (7 * MIB).to_string())], ..Options::default() };
    let h = Harness::start("limit", options).await;
    let data = bytes(b"", 12 * MIB, 4);

    // Chunked from stdin: no length declared, so the limit is enforced while streaming.
    let mut request = h.guest();
    request.extend(args(&[
        "-v",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "X-File-Name: too-big.bin",
        "--data-binary",
        "@-",
    ]));
    let reply = h.post(&request, Some(data.clone())).await;
    assert!(reply.trace.contains("> Transfer-Encoding: chunked"), "curl sent the body chunked");
    assert!(!reply.trace.to_ascii_lowercase().contains("> content-length"), "and declared no length");
    reply.assert_error(413, "payload_too_large");
    h.assert_nothing_stored().await;
    assert!(h.metric("ferry_multipart_aborted_total").await >= 1, "a multipart upload was begun and aborted");

    // Declared too large: refused before the body is read.
    let path = h.file("too-big.bin", &data);
    let request = h.guest_file_upload(&path, "application/octet-stream", "too-big.bin");
    let reply = h.post(&request, None).await;
    reply.assert_error(413, "payload_too_large");
    h.assert_nothing_stored().await;
    assert_eq!(h.metric("ferry_uploads_total{outcome=\"payload_too_large\"}").await, 2);
    assert_conversations_untouched(&h);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_wrong_digest_is_422_and_nothing_is_kept_or_delivered() {
    let h = Harness::start("digest", Options::default()).await;
    // 6 MiB: two parts, so the mismatch is found with a multipart upload open.
    let data = bytes(b"", 6 * MIB, 5);
    let path = h.file("statement.bin", &data);
    let mut wrong = data.clone();
    wrong[3 * MIB] ^= 1;
    let mut request = h.guest();
    request.extend(args(&[
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "X-File-Name: statement.bin",
        "-H",
        &format!("Content-MD5: {}", Md5::of(&wrong).to_base64()),
        "--data-binary",
        &format!("@{}", path.display()),
    ]));
    let reply = h.post(&request, None).await;
    reply.assert_error(422, "checksum_mismatch");
    h.assert_nothing_stored().await;
    assert!(h.metric("ferry_multipart_aborted_total").await >= 1, "the multipart upload was aborted");

    // The same with Repr-Digest (SHA-256) on a one-part file.
    let small = bytes(b"", 100 * 1024, 6);
    let path = h.file("small.bin", &small);
    let mut request = h.guest();
    request.extend(args(&[
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "X-File-Name: small.bin",
        "-H",
        &format!("Repr-Digest: sha-256=:{}:", Sha256::of(&data).to_base64()),
        "--data-binary",
        &format!("@{}", path.display()),
    ]));
    let reply = h.post(&request, None).await;
    reply.assert_error(422, "checksum_mismatch");
    h.assert_nothing_stored().await;
    assert_conversations_untouched(&h);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn an_unknown_session_or_deployment_is_refused_before_anything_is_stored() {
    let h = Harness::start("session", Options::default()).await;
    let data = bytes(b"", 2 * MIB, 7);
    let path = h.file("note.bin", &data);
    let body = args(&[
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "X-File-Name: note.bin",
        "--data-binary",
        &format!("@{}", path.display()),
    ]);

    // A token Genesys never issued.
    let unknown = uuid::Uuid::new_v4().to_string();
    let mut request = args(&[
        "-H",
        &format!("Authorization: Bearer {unknown}"),
        "-H",
        &format!("X-Genesys-Deployment-Id: {DEPLOYMENT}"),
    ]);
    request.extend(body.clone());
    let reply = h.post(&request, None).await;
    reply.assert_error(401, "unknown_session");
    h.assert_no_guest_connection(&unknown).await;

    // No credentials at all.
    let reply = h.post(&body, None).await;
    reply.assert_error(401, "missing_session");

    // A deployment ferry is not configured for.
    let mut request = args(&[
        "-H",
        &format!("Authorization: Bearer {}", h.token),
        "-H",
        "X-Genesys-Deployment-Id: someone-elses-deployment",
    ]);
    request.extend(body.clone());
    let reply = h.post(&request, None).await;
    reply.assert_error(403, "deployment_not_allowed");

    // A conversation that has ended.
    h.emulator.state().set_read_only(&h.token, true);
    let mut request = h.guest();
    request.extend(body);
    let reply = h.post(&request, None).await;
    reply.assert_error(409, "conversation_closed");

    h.assert_nothing_stored().await;
    assert_eq!(h.metric("ferry_multipart_aborted_total").await, 0, "no upload was even begun");
    assert_conversations_untouched(&h);
    h.assert_no_guest_connection(&h.token).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_form_refused_after_its_file_part_keeps_nothing() {
    let h = Harness::start("formcaption", Options::default()).await;
    let data = bytes(b"", 300 * 1024, 12);
    let path = h.file("scan.bin", &data);
    // The file part streams into S3 first; the caption after it is over 4096 bytes.
    let mut request = h.guest();
    request.extend(args(&[
        "-F",
        &format!("file=@{};type=application/octet-stream", path.display()),
        "-F",
        &format!("text={}", "x".repeat(5000)),
    ]));
    let reply = h.post(&request, None).await;
    reply.assert_error(400, "invalid_caption");
    h.assert_nothing_stored().await;
    // The same with an oversized unknown field after the file.
    let mut request = h.guest();
    request.extend(args(&[
        "-F",
        &format!("file=@{};type=application/octet-stream", path.display()),
        "-F",
        &format!("extra={}", "y".repeat(70 * 1024)),
    ]));
    let reply = h.post(&request, None).await;
    reply.assert_error(400, "invalid_multipart");
    h.assert_nothing_stored().await;
    assert_conversations_untouched(&h);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_refused_native_delivery_keeps_the_file_and_sends_the_link() {
    let options =
        Options { env: vec![("FERRY_CORS_ORIGINS", "https://shop.example".into())], ..Options::default() };
    let h = Harness::start("delivery", options).await;
    // Genesys refuses every presigned upload: the stored file is kept and goes as a link (issue 11).
    h.emulator.state().update_faults(|f| f.refuse_uploads = 100);
    let data = bytes(b"", 300 * 1024, 13);
    let path = h.file("refused.bin", &data);
    let mut request = h.guest();
    request.extend(args(&[
        "-v",
        "-H",
        "Origin: https://shop.example",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "X-File-Name: refused.bin",
        "--data-binary",
        &format!("@{}", path.display()),
    ]));
    let reply = h.post(&request, None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    assert_eq!(reference["delivery"]["mode"], "link", "{reference}");
    assert_eq!(reference["delivery"]["fallback"]["httpStatus"], 403, "{reference}");
    let key = ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX)
        .expect("storage.key");
    let key = key.as_str();
    assert!(h.object(key).await == data, "the stored bytes differ");
    let conversation = h.conversation();
    let messages = conversation["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages.len(), 1, "one message: {conversation}");
    assert!(messages[0]["attachmentIds"].as_array().is_none_or(|a| a.is_empty()), "{conversation}");
    assert!(messages[0]["text"].as_str().is_some_and(|t| t.contains("/v1/files/")), "{conversation}");
    // CORS headers are on error answers too.
    let mut unnamed = h.guest();
    unnamed.extend(args(&["-v", "-H", "Origin: https://shop.example", "--data-binary", "x"]));
    let refused = h.post(&unnamed, None).await;
    refused.assert_error(400, "missing_file_name");
    assert!(
        refused.trace.to_ascii_lowercase().contains("< access-control-allow-origin: https://shop.example"),
        "no CORS header on the error answer"
    );
    h.finish().await;
}
