//! Admission: the cheap local checks run before any Genesys session check, a good session check
//! is remembered for a while, and Genesys checks are limited per deployment.

use crate::support::{DEPLOYMENT, Ferry, error_code};
use axum::body::Body;
use http::StatusCode;

/// Sessions the Genesys emulator has seen (an unknown token's check creates one).
fn sessions_seen(ferry: &Ferry) -> usize {
    ferry.stack.genesys.state().conversations().len()
}

fn guest(token: &str) -> http::request::Builder {
    http::Request::post("/v1/uploads")
        .header("authorization", format!("Bearer {token}"))
        .header("x-genesys-deployment-id", DEPLOYMENT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_refusals_never_reach_genesys() {
    let ferry = Ferry::start_with(|c| c.limits.max_file_size = 1000).await;
    let before = sessions_seen(&ferry);
    let cases: Vec<(http::Request<Body>, StatusCode, &str)> = vec![
        (
            guest(&uuid::Uuid::new_v4().to_string())
                .header("x-file-name", "setup.exe")
                .header("content-type", "application/octet-stream")
                .body(Body::from("MZ"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            guest(&uuid::Uuid::new_v4().to_string())
                .header("x-file-name", "a\u{202e}txt.exe".replace('\u{202e}', "%E2%80%AE"))
                .header("content-type", "text/plain")
                .body(Body::from("hello"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_file_name",
        ),
        (
            guest(&uuid::Uuid::new_v4().to_string())
                .header("x-file-name", "a.txt")
                .header("content-type", "not a type")
                .body(Body::from("hello"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            guest(&uuid::Uuid::new_v4().to_string())
                .header("x-file-name", "a.txt")
                .header("content-type", "text/plain")
                .header("content-length", "5000")
                .body(Body::from(vec![b'a'; 5000]))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            http::Request::post("/v1/uploads")
                .header("authorization", format!("Bearer {}", uuid::Uuid::new_v4()))
                .header("x-genesys-deployment-id", "not-a-deployment-of-ours")
                .header("x-file-name", "a.txt")
                .body(Body::from("hello"))
                .unwrap(),
            StatusCode::FORBIDDEN,
            "deployment_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let (got, _, json) = ferry.oneshot(request).await;
        assert_eq!((got, error_code(&json)), (status, code), "{json}");
    }
    assert_eq!(sessions_seen(&ferry), before, "no local refusal may open a Genesys session");
    ferry.stop().await;
}

fn hello(token: &str) -> http::Request<Body> {
    guest(token)
        .header("x-file-name", "hello.txt")
        .header("content-type", "text/plain")
        .body(Body::from("hello"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_session_check_is_remembered_and_new_checks_are_limited() {
    let ferry = Ferry::start_with(|c| {
        c.admission.session_checks_per_minute = 1;
        c.admission.session_checks_burst = 1;
    })
    .await;
    let genesys = ferry.stack.genesys.state();
    let token = genesys.create_session(DEPLOYMENT);
    let (status, _, json) = ferry.oneshot(hello(&token)).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    // The same session again: remembered, so no check is needed and none is refused.
    let (status, _, json) = ferry.oneshot(hello(&token)).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    // A new session needs a check, and the deployment's one check a minute is spent.
    // A new session needs a check, and the deployment's one check a minute is spent: a real
    // session waits, and an unknown token (which Genesys would have refused) never reaches it.
    let real = genesys.create_session(DEPLOYMENT);
    let before = sessions_seen(&ferry);
    for token in [real, uuid::Uuid::new_v4().to_string()] {
        let (status, headers, json) = ferry.oneshot(hello(&token)).await;
        assert_eq!(
            (status, error_code(&json)),
            (StatusCode::TOO_MANY_REQUESTS, "session_checks_limited"),
            "{json}"
        );
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    assert_eq!(sessions_seen(&ferry), before, "the refused checks never reached Genesys");
    assert_eq!(ferry.stored_keys().await.len(), 2);
    ferry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_limited_per_address_from_the_trusted_header() {
    let ferry = Ferry::start_with(|c| {
        c.admission.trusted_client_header = Some("x-forwarded-for".into());
        c.admission.per_client_per_minute = 1;
        c.admission.per_client_burst = 2;
    })
    .await;
    let from = |ip: &str| {
        guest(ferry.token())
            .header("x-forwarded-for", ip)
            .header("x-file-name", "a.txt")
            .header("content-type", "text/plain")
            .body(Body::from("hello"))
            .unwrap()
    };
    for _ in 0..2 {
        let (status, _, json) = ferry.oneshot(from("10.0.0.1")).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
    }
    let (status, headers, json) = ferry.oneshot(from("10.0.0.1")).await;
    assert_eq!((status, error_code(&json)), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"), "{json}");
    assert!(headers.contains_key("retry-after"));
    let (status, _, json) = ferry.oneshot(from("192.0.2.1, 10.0.0.2")).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another address (the proxy's last entry) is not limited: {json}"
    );
    assert_eq!(ferry.stored_keys().await.len(), 3);
    ferry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_settings_switch_off_size_and_quota() {
    let ferry = Ferry::start_with(|c| {
        let deployment = c.deployments.get_mut(DEPLOYMENT).unwrap();
        deployment.guests.max_file_size = 10;
        deployment.guests.uploads_per_hour = 1;
    })
    .await;
    let sized = |len: usize| {
        guest(ferry.token())
            .header("x-file-name", "a.txt")
            .header("content-type", "text/plain")
            .header("content-length", len.to_string())
            .body(Body::from(vec![b'a'; len]))
            .unwrap()
    };
    let (status, _, json) = ferry.oneshot(sized(11)).await;
    assert_eq!((status, error_code(&json)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"), "{json}");
    let (status, _, json) = ferry.oneshot(sized(10)).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let (status, headers, json) = ferry.oneshot(sized(10)).await;
    assert_eq!(
        (status, error_code(&json)),
        (StatusCode::TOO_MANY_REQUESTS, "guest_quota_exceeded"),
        "{json}"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 3000, "the hour's quota comes back within the hour: {retry}");
    // Tickets are not guests: neither limit applies.
    let ticket = ferry.ticket(|_| {});
    let request = http::Request::post("/v1/uploads")
        .header("authorization", format!("Ferry-Ticket {ticket}"))
        .header("x-file-name", "big.txt")
        .header("content-type", "text/plain")
        .body(Body::from(vec![b'a'; 100]))
        .unwrap();
    let (status, _, json) = ferry.oneshot(request).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    ferry.stop().await;

    let off = Ferry::start_with(|c| c.deployments.get_mut(DEPLOYMENT).unwrap().guests.uploads = false).await;
    let (status, _, json) = off.oneshot(hello(off.token())).await;
    assert_eq!((status, error_code(&json)), (StatusCode::FORBIDDEN, "guest_uploads_disabled"), "{json}");
    assert!(off.stored_keys().await.is_empty());
    off.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_pass_only_where_allowed_and_only_as_themselves() {
    let pe = || {
        let mut pe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0\xb8\0\0\0".to_vec();
        pe.resize(4096, 0);
        pe
    };
    let upload = |ferry: &Ferry, name: &str, content_type: &str| {
        ferry
            .upload_request()
            .header("x-file-name", name)
            .header("content-type", content_type)
            .body(Body::from(pe()))
            .unwrap()
    };
    let strict = Ferry::start().await;
    for (name, content_type) in [
        ("tool", "application/x-msdownload"),
        ("report.pdf", "application/pdf"),
        ("a.bin", "application/octet-stream"),
    ] {
        let (status, _, json) = strict.oneshot(upload(&strict, name, content_type)).await;
        assert_eq!(
            (status, error_code(&json)),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            "{name} {content_type}: {json}"
        );
    }
    assert!(strict.stored_keys().await.is_empty());
    strict.stop().await;

    let allowing =
        Ferry::start_with(|c| c.deployments.get_mut(DEPLOYMENT).unwrap().allow_executables = true).await;
    let (status, _, json) = allowing.oneshot(upload(&allowing, "tool", "application/x-msdownload")).await;
    assert_eq!(status, StatusCode::CREATED, "declared as what it is, where allowed: {json}");
    let (status, _, json) = allowing.oneshot(upload(&allowing, "report.pdf", "application/pdf")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "never in disguise: {json}");
    assert_eq!(allowing.stored_keys().await.len(), 1);
    allowing.stop().await;
}
