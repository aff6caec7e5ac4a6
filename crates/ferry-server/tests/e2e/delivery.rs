//! Uploads that succeed: raw and multipart/form-data bodies delivered natively, and a multi-part
//! file over the deployment's native limit delivered as a link that downloads the same bytes.

use crate::args;
use crate::harness::{DEPLOYMENT, Harness, MIB, Options, PUBLIC_HOST, bytes, curl, sha256_hex};
use ferry_core::checksum::{Md5, Sha256};
use serde_json::Value;

/// The reference's fields every success carries, checked against the bytes sent.
fn assert_reference(reference: &Value, data: &[u8]) -> String {
    assert_eq!(reference["type"], "file", "{reference}");
    assert_eq!(reference["status"], "uploaded", "{reference}");
    assert_eq!(reference["size"], data.len(), "{reference}");
    assert_eq!(reference["checksums"]["md5"], Md5::of(data).to_hex(), "{reference}");
    assert_eq!(reference["checksums"]["sha256"], sha256_hex(data), "{reference}");
    assert!(reference["uploadedAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{reference}");
    // Every upload here is a guest's: guests are not told the bucket or key.
    assert!(reference.get("storage").is_none(), "{reference}");
    let key = ferry_testkit::reference::stored_key(reference, ferry_testkit::reference::DEFAULT_PREFIX)
        .expect("a file id");
    assert!(key.starts_with(&format!("ferry/{DEPLOYMENT}/")), "{key}");
    let id = reference["id"].as_str().expect("id");
    let link = reference["downloadUrl"].as_str().expect("downloadUrl");
    assert!(link.starts_with(&format!("http://{PUBLIC_HOST}/v1/files/{id}?expires=")), "{link}");
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_small_raw_upload_is_stored_and_attached_natively() {
    let h = Harness::start("raw", Options::default()).await;
    let data = bytes(b"%PDF-1.7\n", 300 * 1024, 1);
    let path = h.file("upload.pdf", &data);
    let mut request = h.guest();
    request.extend(args(&[
        "-H",
        "Content-Type: application/pdf",
        "-H",
        "X-File-Name: r%C3%A9sum%C3%A9%202026.pdf",
        "-H",
        &format!("Content-MD5: {}", Md5::of(&data).to_base64()),
        "-H",
        &format!("Repr-Digest: sha-256=:{}:", Sha256::of(&data).to_base64()),
        "--data-binary",
        &format!("@{}", path.display()),
    ]));
    let reply = h.post(&request, None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    let key = assert_reference(&reference, &data);
    assert_eq!(reference["name"], "résumé 2026.pdf");
    assert_eq!(reference["contentType"], "application/pdf");
    assert_eq!(reference["delivery"]["mode"], "native", "{reference}");
    let attachment_id = reference["delivery"]["genesysAttachmentId"].as_str().expect("attachment id");

    // S3: exactly this object, byte for byte, with its type and a download disposition.
    assert_eq!(h.keys().await, vec![key.clone()]);
    assert!(h.object(&key).await == data, "stored bytes differ");
    let head = h.s3.head_object().bucket(&h.bucket).key(&key).send().await.expect("HeadObject");
    assert_eq!(head.content_type(), Some("application/pdf"));
    assert!(head.content_disposition().is_some_and(|d| d.starts_with("attachment;")), "{head:?}");
    assert_eq!(h.pending_uploads().await, 0);

    // Genesys: one uploaded attachment with the same SHA-256, carried by one message.
    let conversation = h.conversation();
    let attachments = conversation["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1, "{conversation}");
    assert_eq!(attachments[0]["id"], attachment_id);
    assert_eq!(attachments[0]["state"], "uploaded");
    assert_eq!(attachments[0]["size"], data.len());
    assert_eq!(attachments[0]["sha256"], sha256_hex(&data));
    assert_eq!(attachments[0]["fileName"], "résumé 2026.pdf");
    let messages = conversation["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{conversation}");
    assert_eq!(messages[0]["attachmentIds"], serde_json::json!([attachment_id]));
    h.assert_no_guest_connection(&h.token).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_multipart_form_upload_with_a_caption_is_attached_natively() {
    let h = Harness::start("form", Options::default()).await;
    let data = bytes(b"\x89PNG\r\n\x1a\n", 700 * 1024, 2);
    let path = h.file("e2e-photo.png", &data);
    let caption = "the scratch on the left door";
    let mut request = h.guest();
    request.extend(args(&[
        "-F",
        &format!("file=@{};type=image/png", path.display()),
        "-F",
        &format!("text={caption}"),
    ]));
    let reply = h.post(&request, None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    let key = assert_reference(&reference, &data);
    assert_eq!(reference["name"], "e2e-photo.png");
    assert_eq!(reference["contentType"], "image/png");
    assert_eq!(reference["text"], caption, "{reference}");
    assert_eq!(reference["delivery"]["mode"], "native", "{reference}");
    let attachment_id = reference["delivery"]["genesysAttachmentId"].as_str().expect("attachment id");

    assert_eq!(h.keys().await, vec![key.clone()]);
    assert!(h.object(&key).await == data, "stored bytes differ");
    assert_eq!(h.pending_uploads().await, 0);

    let conversation = h.conversation();
    let attachments = conversation["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1, "{conversation}");
    assert_eq!(attachments[0]["sha256"], sha256_hex(&data));
    assert_eq!(attachments[0]["fileType"], "image/png");
    let messages = conversation["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{conversation}");
    assert_eq!(messages[0]["text"], caption, "{conversation}");
    assert_eq!(messages[0]["attachmentIds"], serde_json::json!([attachment_id]));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_file_over_the_native_limit_is_sent_as_a_link_that_downloads_the_same_bytes() {
    let h = Harness::start("link", Options::default()).await;
    // 12 MiB: three 5 MiB parts, over the emulator deployment's 10240 KB attachment limit.
    let data = bytes(b"", 12 * MIB, 3);
    let path = h.file("site-survey.bin", &data);
    let request = h.guest_file_upload(&path, "application/octet-stream", "site-survey.bin");
    let reply = h.post(&request, None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    let key = assert_reference(&reference, &data);
    assert_eq!(reference["delivery"]["mode"], "link", "{reference}");
    assert!(reference["delivery"].get("genesysAttachmentId").is_none(), "{reference}");
    let etag = reference["checksums"]["s3ETag"].as_str().expect("s3ETag");
    assert!(etag.trim_matches('"').ends_with("-3"), "a three-part multipart ETag: {etag}");

    assert_eq!(h.keys().await, vec![key.clone()]);
    assert!(h.object(&key).await == data, "stored bytes differ");
    assert_eq!(h.pending_uploads().await, 0);

    // Genesys: no attachment, one message naming the file with the link.
    let link = reference["downloadUrl"].as_str().expect("downloadUrl").to_owned();
    let conversation = h.conversation();
    assert_eq!(conversation["attachments"], serde_json::json!([]), "{conversation}");
    let messages = conversation["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{conversation}");
    let text = messages[0]["text"].as_str().expect("message text");
    assert!(text.contains("site-survey.bin") && text.contains(&link), "the message carries the link");

    // The link: 302 to a presigned LocalStack GET, which serves the same bytes as an attachment.
    let headers = h.dir.path().join("download-headers.txt");
    let download = curl(
        &args(&["-L", "--connect-to", &h.connect_to(), "-D", &headers.display().to_string(), &link]),
        None,
    )
    .await;
    assert_eq!(download.status, 200, "{download:?}");
    assert!(download.body == data, "downloaded bytes differ ({} bytes)", download.body.len());
    let headers = std::fs::read_to_string(&headers).expect("headers").to_ascii_lowercase();
    assert!(headers.starts_with("http/1.1 302"), "first answer is the redirect");
    assert!(headers.contains("x-amz-signature="), "redirected to a presigned URL");
    assert!(headers.contains("content-disposition: attachment"), "served as an attachment");

    // A tampered link is refused.
    let flipped = if link.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &link[..link.len() - 1]);
    let refused = curl(&args(&["--connect-to", &h.connect_to(), &tampered]), None).await;
    refused.assert_error(403, "invalid_link");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_chunked_upload_of_unknown_length_is_stored_whole() {
    let h = Harness::start("chunked", Options::default()).await;
    // 6 MiB from stdin with no Content-Length: two parts, the last one short.
    let data = bytes(b"", 6 * MIB, 16);
    let mut request = h.guest();
    request.extend(args(&[
        "-v",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "X-File-Name: from-a-pipe.bin",
        "--data-binary",
        "@-",
    ]));
    let reply = h.post(&request, Some(data.clone())).await;
    assert!(reply.trace.contains("> Transfer-Encoding: chunked"), "curl sent the body chunked");
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    let key = assert_reference(&reference, &data);
    assert!(reference["checksums"]["s3ETag"].as_str().is_some_and(|e| e.trim_matches('"').ends_with("-2")));
    assert_eq!(reference["delivery"]["mode"], "native", "{reference}");
    assert!(h.object(&key).await == data, "stored bytes differ");
    assert_eq!(h.pending_uploads().await, 0);
    let conversation = h.conversation();
    assert_eq!(conversation["attachments"][0]["sha256"], sha256_hex(&data), "{conversation}");
    h.finish().await;
}
