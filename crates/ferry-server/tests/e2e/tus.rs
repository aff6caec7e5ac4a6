//! tus 1.0.0 at `/v1/tus/`, driven by hand-written requests (reqwest, and raw sockets where a test
//! must stop a body): creation, creation-with-upload, defer-length, HEAD/PATCH offsets, 409, 423,
//! racing PATCHes, expiry, termination, `Upload-Checksum` (460, offset unchanged), a PATCH past
//! `Upload-Length`, wrong credentials, ticket and guest mode, two processes on one bucket, and
//! completion delivered exactly once (the reference on `GET`). Real clients (tuspy,
//! tus-js-client, Uppy) are tested elsewhere.

use crate::harness::{DEPLOYMENT, Harness, MIB, Options, TICKET_SECRET, bytes};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ferry_testkit::process::Ferry;
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// A `ferry ticket` for the e2e deployment.
fn ticket(extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["ticket", "--deployment", DEPLOYMENT, "--secret", TICKET_SECRET])
        .args(extra)
        .env_remove("FERRY_TICKET_SECRET")
        .output()
        .expect("ferry ticket runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
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
        let path = header(&response, "location").map_or_else(String::new, |l| {
            assert!(l.starts_with("http://ferry.e2e.test/v1/tus/"), "{l}");
            l.trim_start_matches("http://ferry.e2e.test").to_owned()
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
    let second = tus.patch(&replica, &path, cut1 as u64, &data[cut1..cut2], std::slice::from_ref(&auth)).await;
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
