//! tus 1.0.0 at `/v1/tus/`, driven by hand-written requests (reqwest, and raw sockets where a test
//! must stop a body): creation, creation-with-upload, defer-length, HEAD/PATCH offsets, 409, 423,
//! racing PATCHes, expiry, termination, `Upload-Checksum` (460, offset unchanged), a PATCH past
//! `Upload-Length`, wrong credentials, ticket and guest mode, two processes on one bucket, and
//! completion delivered exactly once (the reference on `GET`). Real clients (tuspy,
//! tus-js-client, Uppy) are tested elsewhere.

use crate::harness::{DEPLOYMENT, Harness, MIB, Options, TICKET_SECRET, bytes, ferry_ticket};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ferry_testkit::process::Ferry;
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// A `ferry ticket` for the e2e deployment.
fn ticket(extra: &[&str]) -> String {
    ferry_ticket(TICKET_SECRET, extra)
}

fn b64(text: &str) -> String {
    B64.encode(text.as_bytes())
}

/// tus requests against one or more ferry processes.
struct Tus {
    http: reqwest::Client,
}

impl Tus {
    fn new() -> Self {
        Self { http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("client") }
    }

    async fn send(
        &self,
        method: Method,
        ferry: &Ferry,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Response {
        let mut request = self.http.request(method, ferry.url(path)).header("Tus-Resumable", "1.0.0");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.body(body).send().await.expect("request answered")
    }

    /// `POST /v1/tus/`; returns the answer and the upload URL's path.
    async fn create(&self, ferry: &Ferry, headers: &[(&str, String)], body: Vec<u8>) -> (Response, String) {
        let response = self.send(Method::POST, ferry, "/v1/tus/", headers, body).await;
        // `Location` is under the public URL; the tests reach the process itself.
        let path = header(&response, "location").map_or_else(String::new, |l| {
            let at = l.find("/v1/tus/").unwrap_or_else(|| panic!("an upload URL: {l}"));
            assert!(l.starts_with("http://"), "{l}");
            l[at..].to_owned()
        });
        (response, path)
    }

    async fn patch(
        &self,
        ferry: &Ferry,
        path: &str,
        offset: u64,
        data: &[u8],
        extra: &[(&str, String)],
    ) -> Response {
        let mut headers = vec![
            ("Content-Type", "application/offset+octet-stream".to_owned()),
            ("Upload-Offset", offset.to_string()),
        ];
        headers.extend(extra.iter().cloned());
        self.send(Method::PATCH, ferry, path, &headers, data.to_vec()).await
    }

    async fn offset(&self, ferry: &Ferry, path: &str, extra: &[(&str, String)]) -> u64 {
        let response = self.send(Method::HEAD, ferry, path, extra, Vec::new()).await;
        assert_eq!(response.status(), StatusCode::OK, "HEAD {path}");
        assert_eq!(header(&response, "cache-control").as_deref(), Some("no-store"));
        header(&response, "upload-offset").expect("Upload-Offset").parse().expect("a number")
    }
}

fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body["error"]["code"].as_str().unwrap_or("").to_owned()
}

fn metadata(name: &str, kind: &str) -> (&'static str, String) {
    ("Upload-Metadata", format!("filename {},filetype {}", b64(name), b64(kind)))
}

/// Keys but for used tickets and tus state and tails.
async fn files(h: &Harness) -> Vec<String> {
    h.keys().await.into_iter().filter(|k| !k.starts_with("ferry/.tus/")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_ticket_upload_in_patches_over_two_processes_is_stored_verified_and_delivered_once() {
    let h = Harness::start("tus-ticket", Options::default()).await;
    let replica = h.start_replica("b", &[]).await;
    let tus = Tus::new();
    let data = bytes(b"%PDF-1.4\n", 2 * 5 * MIB + 12_345, 41);
    let len = data.len() as u64;

    let options = tus.send(Method::OPTIONS, &h.ferry, "/v1/tus/", &[], Vec::new()).await;
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&options, "tus-version").as_deref(), Some("1.0.0"));
    let extensions = header(&options, "tus-extension").expect("Tus-Extension");
    for ext in
        ["creation", "creation-with-upload", "creation-defer-length", "expiration", "termination", "checksum"]
    {
        assert!(extensions.split(',').any(|e| e == ext), "{extensions}");
    }
    assert_eq!(header(&options, "tus-checksum-algorithm").as_deref(), Some("md5,sha1,sha256,crc32"));

    // Without Tus-Resumable: 412 with Tus-Version.
    let unversioned = tus.http.post(h.ferry.url("/v1/tus/")).send().await.expect("answered");
    assert_eq!(unversioned.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(header(&unversioned, "tus-version").as_deref(), Some("1.0.0"));

    let ticket_text = ticket(&["--reference", "case-7"]);
    let auth = ("Authorization", format!("Ferry-Ticket {ticket_text}"));
    let (created, path) = tus
        .create(
            &h.ferry,
            &[auth.clone(), ("Upload-Length", len.to_string()), metadata("claim.pdf", "application/pdf")],
            Vec::new(),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(header(&created, "upload-expires").is_some_and(|d| d.ends_with(" GMT")));
    // The creation spent the ticket.
    let (again, _) = tus.create(&h.ferry, &[auth.clone(), ("Upload-Length", "10".into())], Vec::new()).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(again).await, "invalid_ticket");
    // A URL whose signature does not hold is no upload.
    let forged = format!("{}x", &path[..path.len() - 1]);
    let forged = tus.send(Method::HEAD, &h.ferry, &forged, &[], Vec::new()).await;
    assert_eq!(forged.status(), StatusCode::NOT_FOUND);

    assert_eq!(tus.offset(&h.ferry, &path, &[]).await, 0);
    // Later requests need only the URL; PATCHes land on either process.
    let cut1 = 3 * MIB;
    let first = tus.patch(&h.ferry, &path, 0, &data[..cut1], &[]).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&first, "upload-offset"), Some(cut1.to_string()));
    let wrong = tus.patch(&replica, &path, 5, &data[cut1..], &[]).await;
    assert_eq!(wrong.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(wrong).await, "upload_offset_mismatch");
    let cut2 = 7 * MIB + 3;
    // The ticket that created the upload may be sent again; another credential may not.
    let other = ("Authorization", format!("Ferry-Ticket {}", ticket(&[])));
    let refused = tus.patch(&replica, &path, cut1 as u64, &data[cut1..cut2], &[other]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await, "upload_forbidden");
    let second =
        tus.patch(&replica, &path, cut1 as u64, &data[cut1..cut2], std::slice::from_ref(&auth)).await;
    assert_eq!(second.status(), StatusCode::NO_CONTENT);
    assert_eq!(tus.offset(&h.ferry, &path, &[]).await, cut2 as u64);
    let early = tus.send(Method::GET, &h.ferry, &path, &[], Vec::new()).await;
    assert_eq!(early.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(early).await, "upload_incomplete");
    // Past Upload-Length: refused, nothing kept.
    let mut long = data[cut2..].to_vec();
    long.push(b'!');
    let too_long = tus.patch(&h.ferry, &path, cut2 as u64, &long, &[]).await;
    assert_eq!(too_long.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(tus.offset(&replica, &path, &[]).await, cut2 as u64);

    let last = tus.patch(&h.ferry, &path, cut2 as u64, &data[cut2..], &[]).await;
    assert_eq!(last.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&last, "upload-offset"), Some(len.to_string()));
    assert_eq!(tus.offset(&replica, &path, &[]).await, len);

    let reference: Value =
        tus.send(Method::GET, &replica, &path, &[], Vec::new()).await.json().await.expect("json");
    assert_eq!(reference["delivery"]["mode"], "client", "{reference}");
    assert_eq!(reference["reference"], "case-7", "{reference}");
    assert_eq!(reference["size"], len);
    assert_eq!(reference["name"], "claim.pdf");
    assert_eq!(reference["checksums"]["md5"], ferry_core::checksum::Md5::of(&data).to_hex(), "{reference}");
    let again: Value =
        tus.send(Method::GET, &h.ferry, &path, &[], Vec::new()).await.json().await.expect("json");
    assert_eq!(again["id"], reference["id"], "one reference, whichever process answers");
    let key = ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX)
        .expect("the stored key");
    assert_eq!(files(&h).await, vec![key.clone()], "one object");
    assert!(h.object(&key).await == data, "stored bytes differ");
    assert_eq!(h.pending_uploads().await, 0);
    // A PATCH after completion takes nothing more.
    let after = tus.patch(&h.ferry, &path, len, b"x", &[]).await;
    assert_eq!(after.status(), StatusCode::CONFLICT);
    let conversation = h.conversation();
    assert_eq!(conversation["messages"], serde_json::json!([]), "tickets leave delivery to the page");
    drop(replica);
    h.finish().await;
}

fn checksum(algorithm: &str, data: &[u8]) -> (&'static str, String) {
    use sha2::Digest as _;
    let digest: Vec<u8> = match algorithm {
        "md5" => md5::Md5::digest(data).to_vec(),
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "crc32" => {
            (crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, data) as u32).to_be_bytes().to_vec()
        }
        other => panic!("no {other}"),
    };
    ("Upload-Checksum", format!("{algorithm} {}", B64.encode(digest)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn checksums_creation_with_upload_and_a_deferred_length() {
    let h = Harness::start("tus-checksum", Options::default()).await;
    let tus = Tus::new();
    let data = bytes(b"\x89PNG\r\n\x1a\n", 6 * MIB + 777, 9);
    let auth = ("Authorization", format!("Ferry-Ticket {}", ticket(&[])));
    // creation-with-upload and a deferred length.
    let (created, path) = tus
        .create(
            &h.ferry,
            &[
                auth.clone(),
                ("Upload-Defer-Length", "1".into()),
                metadata("photo.png", "image/png"),
                ("Content-Type", "application/offset+octet-stream".into()),
            ],
            data[..1000].to_vec(),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(header(&created, "upload-offset").as_deref(), Some("1000"));
    let head = tus.send(Method::HEAD, &h.ferry, &path, &[], Vec::new()).await;
    assert_eq!(header(&head, "upload-defer-length").as_deref(), Some("1"));
    assert!(header(&head, "upload-metadata").is_some_and(|m| m.contains(&b64("photo.png"))));

    // A checksum that does not match: 460, nothing kept.
    let chunk = &data[1000..1000 + 2 * MIB];
    let wrong = checksum("sha256", b"something else");
    let refused = tus.patch(&h.ferry, &path, 1000, chunk, &[wrong]).await;
    assert_eq!(refused.status().as_u16(), 460);
    assert_eq!(error_code(refused).await, "upload_checksum_mismatch");
    assert_eq!(tus.offset(&h.ferry, &path, &[]).await, 1000);
    let unknown = ("Upload-Checksum", format!("sha512 {}", B64.encode([0u8; 64])));
    let unknown = tus.patch(&h.ferry, &path, 1000, chunk, &[unknown]).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(unknown).await, "invalid_tus_header");

    // Each algorithm, right.
    let mut at = 1000;
    for (algorithm, len) in [("md5", 2 * MIB), ("sha1", MIB + 1), ("crc32", 2 * MIB)] {
        let chunk = &data[at..at + len];
        let ok = tus.patch(&h.ferry, &path, at as u64, chunk, &[checksum(algorithm, chunk)]).await;
        assert_eq!(ok.status(), StatusCode::NO_CONTENT, "{algorithm}");
        at += len;
    }
    assert_eq!(tus.offset(&h.ferry, &path, &[]).await, at as u64);
    // The length comes with the last PATCH.
    let rest = &data[at..];
    let length = ("Upload-Length", data.len().to_string());
    let last = tus.patch(&h.ferry, &path, at as u64, rest, &[length, checksum("sha256", rest)]).await;
    assert_eq!(last.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&last, "upload-offset"), Some(data.len().to_string()));
    let reference: Value =
        tus.send(Method::GET, &h.ferry, &path, &[], Vec::new()).await.json().await.unwrap();
    assert_eq!(reference["size"], data.len(), "{reference}");
    assert_eq!(reference["contentType"], "image/png");
    assert_eq!(reference["checksums"]["md5"], ferry_core::checksum::Md5::of(&data).to_hex());
    let key =
        ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX).unwrap();
    assert!(h.object(&key).await == data, "stored bytes differ");
    assert_eq!(h.pending_uploads().await, 0);

    // An empty file is complete as soon as it is created.
    let auth = ("Authorization", format!("Ferry-Ticket {}", ticket(&[])));
    let headers = [auth, ("Upload-Length", "0".into()), metadata("empty.txt", "text/plain")];
    let (created, empty) = tus.create(&h.ferry, &headers, Vec::new()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(tus.offset(&h.ferry, &empty, &[]).await, 0);
    let reference: Value =
        tus.send(Method::GET, &h.ferry, &empty, &[], Vec::new()).await.json().await.unwrap();
    assert_eq!(reference["size"], 0, "{reference}");
    let key =
        ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX).unwrap();
    assert!(h.object(&key).await.is_empty());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_guest_upload_needs_its_own_session_every_time_and_is_delivered_natively_once() {
    // A small hour of bytes, so a deferred length declared later can exceed it.
    let toml =
        vec![format!("[deployments.\"{DEPLOYMENT}\".guests]"), format!("bytes_per_hour = {}", 16 * MIB)];
    let h = Harness::start("tus-guest", Options { toml, ..Options::default() }).await;
    let tus = Tus::new();
    let guest = |token: &str| {
        vec![("Authorization", format!("Bearer {token}")), ("X-Genesys-Deployment-Id", DEPLOYMENT.to_owned())]
    };
    let data = bytes(b"\x89PNG\r\n\x1a\n", 5 * MIB + 4321, 3);
    let mut headers = guest(&h.token);
    headers.extend([("Upload-Length", data.len().to_string()), metadata("scan.png", "image/png")]);
    headers.push((
        "Upload-Metadata",
        format!("filename {},filetype {},caption {}", b64("scan.png"), b64("image/png"), b64("my scan")),
    ));
    headers.retain(|(name, value)| *name != "Upload-Metadata" || value.contains("caption"));
    let (created, path) = tus.create(&h.ferry, &headers, Vec::new()).await;
    assert_eq!(created.status(), StatusCode::CREATED);

    // No session, or another session: refused.
    let none = tus.patch(&h.ferry, &path, 0, &data[..MIB], &[]).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(none).await, "missing_session");
    let other_token = h.emulator.state().create_session(DEPLOYMENT);
    let other = tus.patch(&h.ferry, &path, 0, &data[..MIB], &guest(&other_token)).await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(other).await, "upload_forbidden");
    let head = tus.send(Method::HEAD, &h.ferry, &path, &guest(&other_token), Vec::new()).await;
    assert_eq!(head.status(), StatusCode::FORBIDDEN);

    let first = tus.patch(&h.ferry, &path, 0, &data[..3 * MIB], &guest(&h.token)).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    // The bucket holds the token's hash, never the token.
    let id = path.rsplit('/').next().unwrap().split('.').next().unwrap();
    let state = String::from_utf8(h.object(&format!("ferry/.tus/{id}/state")).await).unwrap();
    assert!(!state.contains(&h.token), "the token is in the bucket: {state}");
    assert!(state.contains(&hex::encode(<sha2::Sha256 as sha2::Digest>::digest(h.token.as_bytes()))));
    let last = tus.patch(&h.ferry, &path, 3 * MIB as u64, &data[3 * MIB..], &guest(&h.token)).await;
    assert_eq!(last.status(), StatusCode::NO_CONTENT);

    let reference: Value =
        tus.send(Method::GET, &h.ferry, &path, &guest(&h.token), Vec::new()).await.json().await.unwrap();
    assert_eq!(reference["delivery"]["mode"], "native", "{reference}");
    assert_eq!(reference["text"], "my scan", "{reference}");
    assert!(reference.get("storage").is_none(), "guests are not told the bucket");
    let unauthorised = tus.send(Method::GET, &h.ferry, &path, &[], Vec::new()).await;
    assert_eq!(unauthorised.status(), StatusCode::UNAUTHORIZED);
    // Asked again: the same reference, no second delivery.
    let again: Value =
        tus.send(Method::GET, &h.ferry, &path, &guest(&h.token), Vec::new()).await.json().await.unwrap();
    assert_eq!(again["delivery"], reference["delivery"]);
    let conversation = h.conversation();
    let attachments = conversation["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1, "{conversation}");
    assert_eq!(attachments[0]["sha256"], crate::harness::sha256_hex(&data), "{conversation}");
    assert_eq!(conversation["messages"].as_array().map(Vec::len), Some(1), "{conversation}");

    // A program under an image's name: refused at its first bytes, nothing kept.
    let mut headers = guest(&h.token);
    headers.extend([("Upload-Length", "70000".into()), metadata("cat.png", "image/png")]);
    let (_, path) = tus.create(&h.ferry, &headers, Vec::new()).await;
    let exe = bytes(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00", 70_000, 5);
    let refused = tus.patch(&h.ferry, &path, 0, &exe, &guest(&h.token)).await;
    assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(tus.offset(&h.ferry, &path, &guest(&h.token)).await, 0);

    // A deferred length is charged to the session's hour when it is declared: about 5 MiB are
    // spent, so 12 MiB more is refused (nothing changes) and 10 MiB is taken.
    let mut headers = guest(&h.token);
    headers.extend([("Upload-Defer-Length", "1".into()), metadata("later.png", "image/png")]);
    let (created, path) = tus.create(&h.ferry, &headers, Vec::new()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let declare = |len: usize| {
        let mut headers = guest(&h.token);
        headers.push(("Upload-Length", len.to_string()));
        headers
    };
    let over = tus.patch(&h.ferry, &path, 0, &[], &declare(12 * MIB)).await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(over).await, "guest_quota_exceeded");
    let head = tus.send(Method::HEAD, &h.ferry, &path, &guest(&h.token), Vec::new()).await;
    assert_eq!(header(&head, "upload-defer-length").as_deref(), Some("1"), "the length is still deferred");
    let within = tus.patch(&h.ferry, &path, 0, &[], &declare(10 * MIB)).await;
    assert_eq!(within.status(), StatusCode::NO_CONTENT);
    h.finish().await;
}

/// A ticket upload of `len` bytes: its path.
async fn created(tus: &Tus, ferry: &Ferry, len: usize) -> String {
    let auth = ("Authorization", format!("Ferry-Ticket {}", ticket(&[])));
    let headers =
        [auth, ("Upload-Length", len.to_string()), metadata("data.bin", "application/octet-stream")];
    let (created, path) = tus.create(ferry, &headers, Vec::new()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    path
}

/// Sends the head of a PATCH of `len` bytes at `offset` on a socket of its own, and `first`.
async fn raw_patch(
    ferry: &Ferry,
    path: &str,
    offset: u64,
    len: usize,
    first: &[u8],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let mut stream = tokio::net::TcpStream::connect(ferry.addr()).await.expect("connect");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n\
         Upload-Offset: {offset}\r\nContent-Length: {len}\r\n\r\n",
        ferry.addr()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(first).await.expect("body");
    stream.flush().await.expect("flush");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn leases_races_termination_and_expiry() {
    let options = Options {
        limits: vec!["reap_interval_secs = 1".into()],
        toml: vec!["[tus]".into(), "lease_secs = 2".into(), "expiry_secs = 25".into()],
        ..Options::default()
    };
    let h = Harness::start("tus-lease", options).await;
    let mut replica = h.start_replica("b", &[]).await;
    let tus = Tus::new();
    // Expires while the rest runs: 6 MiB in (a multipart upload and a tail), then left.
    let abandoned_data = bytes(b"", 8 * MIB, 1);
    let abandoned = created(&tus, &h.ferry, abandoned_data.len()).await;
    let started = std::time::Instant::now();
    let partial = tus.patch(&h.ferry, &abandoned, 0, &abandoned_data[..6 * MIB], &[]).await;
    assert_eq!(partial.status(), StatusCode::NO_CONTENT);

    // A PATCH on the replica holds the lease; the replica is killed mid-body.
    let data = bytes(b"", 12 * MIB, 2);
    let path = created(&tus, &h.ferry, data.len()).await;
    let mut held = raw_patch(&replica, &path, 0, data.len(), &data[..6 * MIB]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let locked = tus.patch(&h.ferry, &path, 0, &data, &[]).await;
    assert_eq!(locked.status().as_u16(), 423);
    assert!(header(&locked, "retry-after").is_some());
    assert_eq!(error_code(locked).await, "upload_locked");
    replica.kill();
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut held).await;
    // The lease stops being renewed and expires (2 s); then the upload goes on here.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let offset = tus.offset(&h.ferry, &path, &[]).await;
    assert_eq!(offset, 0, "the killed PATCH committed nothing");
    let resumed = tus.patch(&h.ferry, &path, 0, &data, &[]).await;
    assert_eq!(resumed.status(), StatusCode::NO_CONTENT);
    let reference: Value =
        tus.send(Method::GET, &h.ferry, &path, &[], Vec::new()).await.json().await.unwrap();
    let key =
        ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX).unwrap();
    assert!(h.object(&key).await == data, "stored bytes differ");

    // A client that hangs up mid-PATCH: what arrived is kept, and the upload resumes from it.
    let cut_data = bytes(b"", 9 * MIB, 5);
    let cut = created(&tus, &h.ferry, cut_data.len()).await;
    let mut hung_up = raw_patch(&h.ferry, &cut, 0, cut_data.len(), &cut_data[..6 * MIB + 100]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut hung_up).await;
    drop(hung_up);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut offset = 0;
    while offset == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let head = tus.send(Method::HEAD, &h.ferry, &cut, &[], Vec::new()).await;
        offset = header(&head, "upload-offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    }
    assert_eq!(offset, 6 * MIB as u64 + 100, "the bytes before the hang-up are kept");
    let rest = tus.patch(&h.ferry, &cut, offset, &cut_data[offset as usize..], &[]).await;
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    let reference: Value = tus.send(Method::GET, &h.ferry, &cut, &[], Vec::new()).await.json().await.unwrap();
    let cut_key =
        ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX).unwrap();
    assert!(h.object(&cut_key).await == cut_data, "stored bytes differ");

    // Two PATCHes racing at one offset: exactly one is kept.
    let race_data = bytes(b"", 6 * MIB + 5, 3);
    let race = created(&tus, &h.ferry, race_data.len()).await;
    let (a, b) = tokio::join!(
        tus.patch(&h.ferry, &race, 0, &race_data, &[]),
        tus.patch(&h.ferry, &race, 0, &race_data, &[])
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert_eq!(statuses.iter().filter(|s| **s == 204).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| [204, 409, 423].contains(s)), "{statuses:?}");
    assert_eq!(tus.offset(&h.ferry, &race, &[]).await, race_data.len() as u64);
    let reference: Value =
        tus.send(Method::GET, &h.ferry, &race, &[], Vec::new()).await.json().await.unwrap();
    let race_key =
        ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX).unwrap();
    assert!(h.object(&race_key).await == race_data, "stored bytes differ");

    // Termination mid-upload: parts, tail and state go.
    let gone_data = bytes(b"", 7 * MIB, 4);
    let gone = created(&tus, &h.ferry, gone_data.len()).await;
    let partial = tus.patch(&h.ferry, &gone, 0, &gone_data[..6 * MIB], &[]).await;
    assert_eq!(partial.status(), StatusCode::NO_CONTENT);
    let deleted = tus.send(Method::DELETE, &h.ferry, &gone, &[], Vec::new()).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let head = tus.send(Method::HEAD, &h.ferry, &gone, &[], Vec::new()).await;
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    let gone_id = gone.rsplit('/').next().unwrap().split('.').next().unwrap().to_owned();
    assert!(!h.keys().await.iter().any(|k| k.contains(&gone_id)), "the terminated upload left objects");

    // The abandoned upload expires: 410, then the reaper removes its parts, tail and state.
    let expires_in = Duration::from_secs(26).saturating_sub(started.elapsed());
    tokio::time::sleep(expires_in).await;
    let expired = tus.patch(&h.ferry, &abandoned, 6 * MIB as u64, &abandoned_data[6 * MIB..], &[]).await;
    // 410 until the reaper has removed it, 404 after (both are tus's answers for an expired upload).
    let status = expired.status();
    assert!([StatusCode::GONE, StatusCode::NOT_FOUND].contains(&status), "{status}");
    assert!(["upload_expired", "upload_not_found"].contains(&error_code(expired).await.as_str()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while h.keys().await.iter().any(|k| k.starts_with("ferry/.tus/")) && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut kept = h.keys().await;
    kept.sort();
    let mut expected = vec![key, race_key, cut_key];
    expected.sort();
    assert_eq!(kept, expected, "only the stored files remain (states expired too)");
    assert_eq!(h.pending_uploads().await, 0, "no multipart upload left");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_process_killed_while_delivering_is_never_followed_by_a_second_delivery() {
    let options = Options {
        toml: vec!["[tus]".into(), "lease_secs = 2".into(), "delivery_lease_secs = 2".into()],
        ..Options::default()
    };
    let h = Harness::start("tus-crash", options).await;
    let mut replica = h.start_replica("b", &[]).await;
    let tus = Tus::new();
    let guest = vec![
        ("Authorization", format!("Bearer {}", h.token)),
        ("X-Genesys-Deployment-Id", DEPLOYMENT.to_owned()),
    ];
    let data = bytes(b"%PDF-1.7\n", 200 * 1024, 21);
    let mut headers = guest.clone();
    headers.extend([("Upload-Length", data.len().to_string()), metadata("doc.pdf", "application/pdf")]);
    let (created, path) = tus.create(&h.ferry, &headers, Vec::new()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = path.rsplit('/').next().unwrap().split('.').next().unwrap().to_owned();

    // Genesys never confirms the attachment: the replica's delivery waits; it is killed then.
    h.emulator
        .state()
        .set_faults(ferry_sandbox::genesys::Faults { swallow_upload_events: 5, ..Default::default() });
    let patching = {
        let (url, headers, body) = (replica.url(&path), guest.clone(), data.clone());
        tokio::spawn(async move {
            let mut request = reqwest::Client::new()
                .patch(url)
                .header("Tus-Resumable", "1.0.0")
                .header("Content-Type", "application/offset+octet-stream")
                .header("Upload-Offset", "0");
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request.body(body).send().await
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let state = h.s3.get_object().bucket(&h.bucket).key(format!("ferry/.tus/{id}/state")).send().await;
        let text = match state {
            Ok(out) => String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap(),
            Err(_) => String::new(),
        };
        if text.contains(r#""state":"started""#) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the delivery never started: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replica.kill();
    let _ = patching.await;
    h.emulator.state().set_faults(ferry_sandbox::genesys::Faults::default());
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // The next request finishes the upload without delivering again: it cannot know whether the
    // first delivery arrived, so it says so.
    let reference: Value =
        tus.send(Method::GET, &h.ferry, &path, &guest, Vec::new()).await.json().await.unwrap();
    assert_eq!(reference["delivery"]["mode"], "none", "{reference}");
    assert_eq!(reference["delivery"]["error"], "delivery_unconfirmed", "{reference}");
    assert!(reference.get("storage").is_none(), "guests are not told the bucket");
    let key =
        ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX).unwrap();
    let conversation = h.conversation();
    assert_eq!(conversation["messages"], serde_json::json!([]), "no message was sent: {conversation}");
    let stored: Vec<String> = files(&h).await;
    assert_eq!(stored, vec![key], "one stored file");
    assert!(h.object(&stored[0]).await == data, "stored bytes differ");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn an_open_messaging_ticket_upload_is_sent_once_with_its_digest() {
    use ferry_sandbox::platform::{PlatformConfig, PlatformEmulator};
    let platform = PlatformEmulator::start(PlatformConfig::with_client("om", "om-secret"))
        .await
        .expect("platform emulator");
    let h = crate::harness::start_open_messaging("tus-om", &platform, "").await;
    let tus = Tus::new();
    let data = bytes(b"", 300_000, 23);
    let ticket = crate::harness::open_messaging_ticket("om", "customer-1");
    let headers = [
        ("Authorization", format!("Ferry-Ticket {ticket}")),
        ("Upload-Length", data.len().to_string()),
        metadata("om.bin", "application/octet-stream"),
    ];
    let (created, path) = tus.create(&h.ferry, &headers, Vec::new()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(tus.patch(&h.ferry, &path, 0, &data[..100_000], &[]).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        tus.patch(&h.ferry, &path, 100_000, &data[100_000..], &[]).await.status(),
        StatusCode::NO_CONTENT
    );
    let reference: Value =
        tus.send(Method::GET, &h.ferry, &path, &[], Vec::new()).await.json().await.unwrap();
    assert_eq!(reference["delivery"]["mode"], "open-messaging", "{reference}");
    assert_eq!(reference["delivery"]["asLink"], false, "{reference}");
    assert_eq!(reference["checksums"]["sha256"], crate::harness::sha256_hex(&data), "{reference}");
    let received = platform.state().open_messages();
    assert_eq!(received.len(), 1, "one message");
    let fetched: Vec<_> =
        received.iter().flat_map(|m| m.attachments.iter().map(|a| a.sha256_matches)).collect();
    assert_eq!(fetched, [Some(true)], "Genesys fetched the attachment intact");
    h.finish().await;
}
