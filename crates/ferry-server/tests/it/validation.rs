//! Request validation through `oneshot`: each bad request gets its status and stable code, and
//! nothing reaches S3 or the conversation.

use crate::support::{DEPLOYMENT, Ferry, error_code};
use axum::body::Body;
use http::StatusCode;

async fn refused(ferry: &Ferry, request: http::Request<Body>, status: StatusCode, code: &str) {
    let (got, _, json) = ferry.oneshot(request).await;
    assert_eq!((got, error_code(&json)), (status, code), "{json}");
    assert!(json["error"]["requestId"].as_str().is_some_and(|id| !id.is_empty()));
}

fn raw(ferry: &Ferry) -> http::request::Builder {
    ferry.upload_request().header("content-type", "text/plain").header("x-file-name", "a.txt")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_stable_codes() {
    let ferry = Ferry::start_with(|c| c.limits.max_file_size = 1000).await;
    let body = || Body::from("hello");
    let u = || http::Request::post("/v1/uploads");

    refused(
        &ferry,
        u().header("x-file-name", "a").body(body()).unwrap(),
        StatusCode::UNAUTHORIZED,
        "missing_session",
    )
    .await;
    refused(
        &ferry,
        u().header("authorization", "Bearer ").body(body()).unwrap(),
        StatusCode::UNAUTHORIZED,
        "missing_session",
    )
    .await;
    refused(
        &ferry,
        u().header("authorization", "Basic abc").body(body()).unwrap(),
        StatusCode::UNAUTHORIZED,
        "missing_session",
    )
    .await;
    refused(
        &ferry,
        u().header("authorization", "Bearer has spaces/and;junk")
            .header("x-genesys-deployment-id", DEPLOYMENT)
            .body(body())
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unknown_session",
    )
    .await;
    refused(
        &ferry,
        u().header("authorization", "Bearer abc").body(body()).unwrap(),
        StatusCode::BAD_REQUEST,
        "missing_deployment",
    )
    .await;
    refused(
        &ferry,
        u().header("authorization", "Bearer abc")
            .header("x-genesys-deployment-id", "someone-else")
            .body(body())
            .unwrap(),
        StatusCode::FORBIDDEN,
        "deployment_not_allowed",
    )
    .await;
    // An unknown token: Genesys would open a new, empty session; ferry refuses it.
    refused(
        &ferry,
        u().header("authorization", "Bearer 3f2c6a1e-0000-4000-8000-000000000000")
            .header("x-genesys-deployment-id", DEPLOYMENT)
            .header("x-file-name", "a.txt")
            .body(body())
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unknown_session",
    )
    .await;
    refused(
        &ferry,
        raw(&ferry).header("content-length", "1001").body(Body::from(vec![0u8; 1001])).unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    refused(
        &ferry,
        ferry.upload_request().header("content-type", "text/plain").body(body()).unwrap(),
        StatusCode::BAD_REQUEST,
        "missing_file_name",
    )
    .await;
    for name in ["a%zz.txt", "%FF.txt", "a%00.txt", "a%0D%0Ab.txt"] {
        refused(
            &ferry,
            ferry
                .upload_request()
                .header("x-file-name", name)
                .header("content-type", "text/plain")
                .body(body())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_file_name",
        )
        .await;
    }
    let long = "a".repeat(10 * 1024);
    refused(
        &ferry,
        ferry
            .upload_request()
            .header("x-file-name", &long)
            .header("content-type", "text/plain")
            .body(body())
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_file_name",
    )
    .await;
    refused(
        &ferry,
        ferry
            .upload_request()
            .header("x-file-name", "setup.exe")
            .header("content-type", "application/octet-stream")
            .body(body())
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    refused(
        &ferry,
        ferry
            .upload_request()
            .header("x-file-name", "a.bin")
            .header("content-type", "not a type")
            .body(body())
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    refused(
        &ferry,
        raw(&ferry).header("content-md5", "not base64!").body(body()).unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_digest",
    )
    .await;
    refused(
        &ferry,
        raw(&ferry).header("repr-digest", "sha-256=abc").body(body()).unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_digest",
    )
    .await;
    refused(
        &ferry,
        ferry.upload_request().header("content-type", "multipart/form-data").body(body()).unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_multipart",
    )
    .await;

    assert!(ferry.stored_keys().await.is_empty());
    let conversation =
        serde_json::to_value(ferry.stack.genesys.state().conversation(ferry.token()).unwrap()).unwrap();
    assert!(conversation["attachments"].as_array().is_none_or(Vec::is_empty), "{conversation}");
    assert!(conversation["messages"].as_array().is_none_or(Vec::is_empty), "{conversation}");
    assert!(ferry.stack.genesys.state().violations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_is_sniffed_and_digests_are_checked() {
    let ferry = Ferry::start().await;
    let exe =
        [b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".as_slice(), &[0u8; 100]].concat();
    let request = ferry
        .upload_request()
        .header("x-file-name", "cat.png")
        .header("content-type", "image/png")
        .body(Body::from(exe))
        .unwrap();
    refused(&ferry, request, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;

    // Random bytes are not a PNG, whatever the request says.
    let request = ferry
        .upload_request()
        .header("x-file-name", "cat.png")
        .header("content-type", "image/png")
        .body(Body::from(vec![7u8; 1000]))
        .unwrap();
    refused(&ferry, request, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;

    let data = b"some text that is not what the digest says".to_vec();
    let wrong_md5 = ferry_core::checksum::Md5::of(b"other").to_base64();
    let request = ferry
        .upload_request()
        .header("x-file-name", "a.txt")
        .header("content-type", "text/plain")
        .header("content-md5", wrong_md5)
        .body(Body::from(data.clone()))
        .unwrap();
    refused(&ferry, request, StatusCode::UNPROCESSABLE_ENTITY, "checksum_mismatch").await;
    let wrong_sha = format!("sha-256=:{}:", ferry_core::checksum::Sha256::of(b"other").to_base64());
    let request = ferry
        .upload_request()
        .header("x-file-name", "a.txt")
        .header("content-type", "text/plain")
        .header("repr-digest", wrong_sha)
        .body(Body::from(data.clone()))
        .unwrap();
    refused(&ferry, request, StatusCode::UNPROCESSABLE_ENTITY, "checksum_mismatch").await;

    // The right digests pass.
    let right = ferry_core::checksum::Md5::of(&data).to_base64();
    let right_sha = format!("sha-256=:{}:", ferry_core::checksum::Sha256::of(&data).to_base64());
    let request = ferry
        .upload_request()
        .header("x-file-name", "a.txt")
        .header("content-type", "text/plain")
        .header("content-md5", right)
        .header("repr-digest", right_sha)
        .body(Body::from(data))
        .unwrap();
    let (status, _, json) = ferry.oneshot(request).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(ferry.stored_keys().await.len(), 1, "only the good upload is kept");
    assert_eq!(ferry.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_authorise_once_within_their_claims() {
    let ferry = Ferry::start().await;
    let request = |ticket: &str, name: &str, ty: &str, body: &'static [u8]| {
        http::Request::post("/v1/uploads")
            .header("authorization", format!("Ferry-Ticket {ticket}"))
            .header("x-file-name", name)
            .header("content-type", ty)
            .body(Body::from(body))
            .unwrap()
    };
    let ticket = ferry.ticket(|_| {});
    let (status, _, json) = ferry.oneshot(request(&ticket, "note.txt", "text/plain", b"hello")).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["delivery"]["mode"], "client");
    assert_eq!(json["reference"], "case-42");
    refused(
        &ferry,
        request(&ticket, "note.txt", "text/plain", b"hello"),
        StatusCode::UNAUTHORIZED,
        "invalid_ticket",
    )
    .await;

    let expired = ferry.ticket(|c| c.exp = 1);
    refused(
        &ferry,
        request(&expired, "a.txt", "text/plain", b"x"),
        StatusCode::UNAUTHORIZED,
        "invalid_ticket",
    )
    .await;
    let tampered = ferry.ticket(|_| {}).replace("v1.", "v1.e");
    refused(
        &ferry,
        request(&tampered, "a.txt", "text/plain", b"x"),
        StatusCode::UNAUTHORIZED,
        "invalid_ticket",
    )
    .await;
    let other = ferry.ticket(|c| c.dep = "not-configured".into());
    refused(
        &ferry,
        request(&other, "a.txt", "text/plain", b"x"),
        StatusCode::FORBIDDEN,
        "deployment_not_allowed",
    )
    .await;
    let small = ferry.ticket(|c| c.max = Some(3));
    refused(
        &ferry,
        request(&small, "a.txt", "text/plain", b"too long"),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    let images = ferry.ticket(|c| c.types = Some(vec!["image/*".into()]));
    refused(
        &ferry,
        request(&images, "a.txt", "text/plain", b"text"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(ferry.stored_keys().await.len(), 1);
    // No Genesys traffic for tickets: the page posts the link itself.
    let conversation =
        serde_json::to_value(ferry.stack.genesys.state().conversation(ferry.token()).unwrap()).unwrap();
    assert!(conversation["messages"].as_array().is_none_or(Vec::is_empty), "{conversation}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_links_are_signed_and_expire() {
    let ferry = Ferry::start().await;
    let request = ferry
        .upload_request()
        .header("x-file-name", "a.txt")
        .header("content-type", "text/plain")
        .body(Body::from("link me"))
        .unwrap();
    let (status, _, json) = ferry.oneshot(request).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let url = json["downloadUrl"].as_str().unwrap();
    let path = &url[url.find("/v1/files/").unwrap()..];
    let get = |p: &str| http::Request::get(p).body(Body::empty()).unwrap();
    let (status, headers, _) = ferry.oneshot(get(path)).await;
    assert_eq!(status, StatusCode::FOUND);
    let location = headers["location"].to_str().unwrap();
    assert!(location.contains("X-Amz-Signature"), "{location}");
    let fetched = reqwest::get(location).await.unwrap();
    assert_eq!(fetched.text().await.unwrap(), "link me");

    let id = json["id"].as_str().unwrap();
    let tampered = path.replace("signature=", "signature=0");
    for bad in [
        format!("/v1/files/{id}"),
        format!("/v1/files/{id}?expires=1&signature={}", "0".repeat(64)),
        tampered,
    ] {
        let (status, _, json) = ferry.oneshot(get(&bad)).await;
        assert_eq!((status, error_code(&json)), (StatusCode::FORBIDDEN, "invalid_link"), "{bad}");
    }
    let sig = ferry.state.links.signature(id, 5);
    let (status, _, json) = ferry.oneshot(get(&format!("/v1/files/{id}?expires=5&signature={sig}"))).await;
    assert_eq!(
        (status, json["error"]["message"].as_str()),
        (StatusCode::FORBIDDEN, Some("this link has expired"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_openapi() {
    let ferry = Ferry::start().await;
    let get = |p: &str| http::Request::get(p).body(Body::empty()).unwrap();
    assert_eq!(ferry.oneshot(get("/healthz")).await.0, StatusCode::OK);
    assert_eq!(ferry.oneshot(get("/readyz")).await.0, StatusCode::OK);
    let (status, _, json) = ferry.oneshot(get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(json["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let request = ferry
        .upload_request()
        .header("x-file-name", "m.txt")
        .header("content-type", "text/plain")
        .body(Body::from("metrics"))
        .unwrap();
    assert_eq!(ferry.oneshot(request).await.0, StatusCode::CREATED);
    use tower::ServiceExt as _;
    let response = ferry_server::app::app(ferry.state.clone(), None).oneshot(get("/metrics")).await.unwrap();
    let text = String::from_utf8(axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap().to_vec())
        .unwrap();
    assert!(text.contains("ferry_uploads_total{outcome=\"created\"} 1"), "{text}");
    assert!(text.contains("ferry_stored_bytes_total 7"), "{text}");
    assert!(text.contains("ferry_memory_budget_used_bytes 0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_storage_is_gone() {
    let ferry = Ferry::start_with(|c| c.s3.bucket = "no-such-bucket".into()).await;
    let (status, _, _) = ferry.oneshot(http::Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captions_schemes_and_ticket_retries() {
    let ferry = Ferry::start_with(|c| c.limits.max_file_size = 100).await;
    // A caption is text, not a file name: slashes and line breaks survive.
    let request = ferry
        .upload_request()
        .header("x-file-name", "a.txt")
        .header("content-type", "text/plain")
        .header("x-caption", "see%20a%2Fb%0Aand%20.more")
        .body(Body::from("caption"))
        .unwrap();
    let (status, headers, json) = ferry.oneshot(request).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["text"], "see a/b\nand .more");
    assert!(headers.contains_key("x-request-id"));
    for bad in ["a%zz", "%FF", "a%00b"] {
        let request = raw(&ferry).header("x-caption", bad).body(Body::from("x")).unwrap();
        refused(&ferry, request, StatusCode::BAD_REQUEST, "invalid_caption").await;
    }
    // Scheme names are case-insensitive.
    let request = http::Request::post("/v1/uploads")
        .header("authorization", format!("bearer {}", ferry.token()))
        .header("x-genesys-deployment-id", DEPLOYMENT)
        .header("x-file-name", "b.txt")
        .header("content-type", "text/plain")
        .body(Body::from("lower"))
        .unwrap();
    assert_eq!(ferry.oneshot(request).await.0, StatusCode::CREATED);
    // A refused upload does not use up its ticket; errors carry the request id header too.
    let ticket = ferry.ticket(|_| {});
    let upload = |body: Vec<u8>| {
        http::Request::post("/v1/uploads")
            .header("content-length", body.len())
            .header("authorization", format!("ferry-ticket {ticket}"))
            .header("x-file-name", "t.txt")
            .header("content-type", "text/plain")
            .body(Body::from(body))
            .unwrap()
    };
    let (status, headers, json) = ferry.oneshot(upload(vec![b'x'; 101])).await;
    assert_eq!((status, error_code(&json)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));
    assert_eq!(headers["x-request-id"].to_str().unwrap(), json["error"]["requestId"].as_str().unwrap());
    assert_eq!(ferry.oneshot(upload(b"fits".to_vec())).await.0, StatusCode::CREATED);
    refused(&ferry, upload(b"again".to_vec()), StatusCode::UNAUTHORIZED, "invalid_ticket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_that_fails_after_its_file_keeps_nothing() {
    let ferry = Ferry::start().await;
    let caption = "c".repeat(5000);
    let body = format!(
        "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nstored first\r\n--B\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n{caption}\r\n--B--\r\n"
    );
    let request = ferry
        .upload_request()
        .header("content-type", "multipart/form-data; boundary=B")
        .body(Body::from(body))
        .unwrap();
    refused(&ferry, request, StatusCode::BAD_REQUEST, "invalid_caption").await;
    let two = "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\none\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.txt\"\r\nContent-Type: text/plain\r\n\r\ntwo\r\n--B--\r\n";
    let request = ferry
        .upload_request()
        .header("content-type", "multipart/form-data; boundary=B")
        .body(Body::from(two))
        .unwrap();
    refused(&ferry, request, StatusCode::BAD_REQUEST, "invalid_multipart").await;
    let unterminated = "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nno end";
    let request = ferry
        .upload_request()
        .header("content-type", "multipart/form-data; boundary=B")
        .body(Body::from(unterminated))
        .unwrap();
    let (status, _, json) = ferry.oneshot(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(ferry.stored_keys().await.is_empty(), "{:?}", ferry.stored_keys().await);
    assert!(ferry.stack.genesys.state().violations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id() {
    let ferry = Ferry::start().await;
    let get = |path: &str, id: Option<&str>| {
        let mut request = http::Request::get(path);
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.body(Body::empty()).unwrap()
    };
    // A plain token is kept, on any route.
    let (_, headers, _) = ferry.oneshot(get("/healthz", Some("trace-42"))).await;
    assert_eq!(headers["x-request-id"], "trace-42");
    // Anything else is replaced by ferry's own id, which the error body names too.
    for bad in ["has space", &"a".repeat(65), "semi;colon"] {
        let (status, headers, json) = ferry.oneshot(get("/v1/files/nope", Some(bad))).await;
        assert_eq!((status, error_code(&json)), (StatusCode::FORBIDDEN, "invalid_link"));
        let id = headers["x-request-id"].to_str().unwrap();
        assert!(id != bad && uuid::Uuid::parse_str(id).is_ok(), "{id:?}");
        assert_eq!(json["error"]["requestId"], id);
    }
    let (_, headers, _) = ferry.oneshot(get("/readyz", None)).await;
    assert!(uuid::Uuid::parse_str(headers["x-request-id"].to_str().unwrap()).is_ok());
}
