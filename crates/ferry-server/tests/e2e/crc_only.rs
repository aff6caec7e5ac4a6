//! The CRC-only data path (`[data_path] whole_file_md5 = false`, issue 13): no whole-file MD5 unless
//! the client sends `Content-MD5` (still checked); S3 verifies every part and the whole object by
//! its CRC; the reference lists only the digests computed; a guest's native delivery is checked by
//! the SHA-256; a tus upload carries no MD5 either.

use crate::args;
use crate::harness::{Harness, MIB, Options, bytes, sha256_hex, ticket};
use ferry_core::checksum::{CrcAlgorithm, Md5};
use serde_json::Value;
use std::path::Path;

fn crc_only() -> Options {
    Options { toml: vec!["[data_path]".into(), "whole_file_md5 = false".into()], ..Options::default() }
}

fn ticket_upload(path: &Path, content_md5: Option<Md5>) -> Vec<String> {
    let mut list = args(&[
        "-H",
        &format!("Authorization: Ferry-Ticket {}", ticket(|_| {})),
        "-H",
        "Content-Type: application/pdf",
        "-H",
        "X-File-Name: claim.pdf",
        "--data-binary",
        &format!("@{}", path.display()),
    ]);
    if let Some(md5) = content_md5 {
        list.extend(args(&["-H", &format!("Content-MD5: {}", md5.to_base64())]));
    }
    list
}

fn key_of(reference: &Value) -> String {
    ferry_testkit::reference::stored_key(reference, ferry_testkit::reference::DEFAULT_PREFIX).expect("a key")
}

/// Asserts that S3 holds `data` at `key` with the FULL_OBJECT CRC-64/NVME ferry reported.
async fn assert_verified_by_crc(h: &Harness, key: &str, data: &[u8], reference: &Value) {
    let crc = CrcAlgorithm::Crc64Nvme.checksum(data).to_base64();
    assert_eq!(reference["checksums"]["crc64nvme"], crc, "{reference}");
    let head =
        h.s3.head_object()
            .bucket(&h.bucket)
            .key(key)
            .checksum_mode("ENABLED".into())
            .send()
            .await
            .expect("HeadObject");
    assert_eq!(head.checksum_type().map(|t| t.as_str()), Some("FULL_OBJECT"), "{head:?}");
    assert_eq!(head.checksum_crc64_nvme(), Some(crc.as_str()), "S3 verified the FULL_OBJECT CRC");
    assert!(h.object(key).await == data, "stored bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn without_the_whole_file_md5_s3_verifies_the_crc_and_a_content_md5_is_still_checked() {
    let h = Harness::start("crc-only", crc_only()).await;
    let data = bytes(b"%PDF-1.4\n", 2 * 5 * MIB + 777, 51);
    let path = h.file("claim.pdf", &data);

    let reply = h.post(&ticket_upload(&path, None), None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    let checksums = reference["checksums"].as_object().expect("checksums");
    assert!(!checksums.contains_key("md5"), "no whole-file MD5 computed: {reference}");
    assert!(!checksums.contains_key("sha256"), "nor a SHA-256 nobody asked for: {reference}");
    assert!(checksums["s3ETag"].as_str().is_some_and(|e| e.ends_with("-3")), "three parts: {reference}");
    let key = key_of(&reference);
    assert_verified_by_crc(&h, &key, &data, &reference).await;

    // A client that sends Content-MD5 still has it checked: a wrong one keeps nothing…
    let reply = h.post(&ticket_upload(&path, Some(Md5::of(b"something else"))), None).await;
    reply.assert_error(422, "checksum_mismatch");
    assert_eq!(h.keys().await, vec![key.clone()], "nothing kept");
    // …and the right one is in the reference.
    let reply = h.post(&ticket_upload(&path, Some(Md5::of(&data))), None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    assert_eq!(reference["checksums"]["md5"], Md5::of(&data).to_hex(), "{reference}");
    assert_verified_by_crc(&h, &key_of(&reference), &data, &reference).await;
    assert_eq!(h.keys().await.len(), 2);
    assert_eq!(h.pending_uploads().await, 0);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_guest_upload_without_the_md5_is_delivered_natively_checked_by_its_sha256() {
    let h = Harness::start("crc-only-guest", crc_only()).await;
    let data = bytes(b"%PDF-1.7\n", 300 * 1024, 52);
    let path = h.file("upload.pdf", &data);
    let request = h.guest_file_upload(&path, "application/pdf", "upload.pdf");
    let reply = h.post(&request, None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    assert_eq!(reference["delivery"]["mode"], "native", "{reference}");
    assert!(reference["checksums"].get("md5").is_none(), "{reference}");
    assert_eq!(reference["checksums"]["sha256"], sha256_hex(&data), "the message's ferrySha256");
    assert_verified_by_crc(&h, &key_of(&reference), &data, &reference).await;
    let conversation = h.conversation();
    let attachments = conversation["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1, "{conversation}");
    assert_eq!(attachments[0]["state"], "uploaded");
    assert_eq!(attachments[0]["sha256"], sha256_hex(&data), "the bytes read back from S3 arrived intact");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_tus_upload_follows_the_setting() {
    let h = Harness::start("crc-only-tus", crc_only()).await;
    let data = bytes(b"%PDF-1.4\n", 5 * MIB + 4321, 53);
    let http = reqwest::Client::new();
    let tus = |method, url: String| http.request(method, url).header("Tus-Resumable", "1.0.0");
    let b64 = |text: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(text)
    };
    let created = tus(reqwest::Method::POST, h.ferry.url("/v1/tus/"))
        .header("Authorization", format!("Ferry-Ticket {}", ticket(|_| {})))
        .header("Upload-Length", data.len().to_string())
        .header(
            "Upload-Metadata",
            format!("filename {},filetype {}", b64("claim.pdf"), b64("application/pdf")),
        )
        .send()
        .await
        .expect("created");
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().expect("Location").to_owned();
    let path = &location[location.find("/v1/tus/").expect("an upload URL")..];
    // Two PATCHes: the first ends mid-part, so the hash state is carried to the second.
    for (offset, chunk) in [(0, &data[..3 * MIB]), (3 * MIB, &data[3 * MIB..])] {
        let patched = tus(reqwest::Method::PATCH, h.ferry.url(path))
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .body(chunk.to_vec())
            .send()
            .await
            .expect("patched");
        assert_eq!(patched.status(), 204, "PATCH at {offset}");
    }
    let reference: Value =
        tus(reqwest::Method::GET, h.ferry.url(path)).send().await.expect("GET").json().await.expect("json");
    assert_eq!(reference["size"], data.len(), "{reference}");
    assert!(reference["checksums"].get("md5").is_none(), "{reference}");
    assert_verified_by_crc(&h, &key_of(&reference), &data, &reference).await;
    h.finish().await;
}
