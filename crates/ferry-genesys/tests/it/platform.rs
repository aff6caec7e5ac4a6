//! The platform REST client: flows against the ferry-sandbox login + platform emulator (tokens,
//! 401 recovery, throttling, Open Messaging delivery with the emulator fetching the file from a
//! local file server), and exact HTTP edge cases against wiremock.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferry_auth::{AccessToken, AuthConfig, TokenManager, TokenSource};
use ferry_core::checksum::Sha256;
use ferry_genesys::platform::{
    OpenAttachment, OpenFrom, OpenMessage, PlatformClient, PlatformConfig, RateLimit,
};
use ferry_genesys::{Error, Fault, Secret};
use ferry_sandbox::platform::{ApiFault, PlatformConfig as EmulatorConfig, PlatformEmulator};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An HTTP client without background timers, safe on paused tokio time.
fn http() -> reqwest::Client {
    reqwest::Client::builder().pool_idle_timeout(None).build().unwrap()
}

struct Setup {
    emulator: PlatformEmulator,
    client: PlatformClient,
}

async fn setup() -> Setup {
    let emulator =
        PlatformEmulator::start(EmulatorConfig::with_client("ferry-id", "ferry-secret")).await.unwrap();
    let mut auth = AuthConfig::with_login_url(emulator.login_url(), "ferry-id", "ferry-secret");
    auth.request_timeout = None;
    let tokens: Arc<dyn TokenSource> = Arc::new(TokenManager::with_http_client(auth, http()).unwrap());
    let mut config = PlatformConfig::new(Url::parse(&emulator.api_url()).unwrap());
    config.request_timeout = None;
    let client = PlatformClient::with_http_client(config, tokens, http()).unwrap();
    Setup { emulator, client }
}

async fn organization(client: &PlatformClient) -> Result<Value, Error> {
    let response =
        client.request::<(), Value>(Method::GET, &["api", "v2", "organizations", "me"], None).await?;
    Ok(response.body)
}

/// Serves `body` at `/files/report.pdf` on a loopback port; returns its base URL.
async fn file_server(body: Vec<u8>) -> String {
    let app = axum::Router::new().route(
        "/files/report.pdf",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/pdf")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn open_messaging_delivery_end_to_end() {
    let Setup { emulator, client } = setup().await;
    let file: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Sha256::of(&file);
    let base = file_server(file.clone()).await;
    let link = format!("{base}/files/report.pdf?signature=very-secret");

    let attachment =
        OpenAttachment::file(Secret::new(link.clone()), "report.pdf", "application/pdf", Some(digest));
    let message = OpenMessage::file(
        OpenFrom::opaque("cust-1"),
        "ext-42",
        SystemTime::now(),
        attachment,
        Some("Here is the report".into()),
    );
    let response = client.send_open_message("integration-7", &message).await.unwrap();
    assert_eq!(response.status, 202);
    assert_eq!(response.body.message_id.as_deref(), Some("ext-42"));
    assert!(response.correlation_id.is_some());
    let limit = response.rate_limit.expect("rate-limit headers on every response");
    assert!(limit.allowed > 0 && limit.count >= 1);

    let received = emulator.state().open_messages();
    assert_eq!(received.len(), 1);
    let received = &received[0];
    assert_eq!(received.id, response.body.id);
    assert_eq!(received.integration_id, "integration-7");
    assert_eq!(received.client_id, "ferry-id");
    assert_eq!(received.body["text"], "Here is the report");
    assert_eq!(received.body["channel"]["from"], json!({"id": "cust-1", "idType": "Opaque"}));
    let fetched = &received.attachments[0];
    assert_eq!(fetched.error, None);
    assert_eq!(fetched.url, link);
    assert_eq!(fetched.status, Some(200));
    assert_eq!(fetched.size, file.len() as u64);
    assert_eq!(fetched.sha256.as_deref(), Some(digest.to_hex().as_str()));
    assert_eq!(fetched.sha256_matches, Some(true));
    assert_eq!(fetched.filename.as_deref(), Some("report.pdf"));
    assert_eq!(fetched.mime.as_deref(), Some("application/pdf"));
    assert_eq!(fetched.media_type.as_deref(), Some("File"));
    assert_eq!(emulator.state().token_requests(), 1);
}

#[tokio::test]
async fn a_wrong_declared_digest_is_visible_in_the_emulator() {
    let Setup { emulator, client } = setup().await;
    let base = file_server(b"actual bytes".to_vec()).await;
    let attachment = OpenAttachment::file(
        Secret::new(format!("{base}/files/report.pdf")),
        "report.pdf",
        "application/pdf",
        Some(Sha256::of(b"other bytes")),
    );
    let message = OpenMessage::file(OpenFrom::opaque("c"), "m", SystemTime::now(), attachment, None);
    client.send_open_message("i", &message).await.unwrap();
    let fetched = &emulator.state().open_messages()[0].attachments[0];
    assert_eq!(fetched.size, 12);
    assert_eq!(fetched.sha256_matches, Some(false));
}

#[tokio::test(start_paused = true)]
async fn a_401_causes_one_token_refresh_and_one_retry() {
    let Setup { emulator, client } = setup().await;
    organization(&client).await.unwrap();
    assert_eq!((emulator.state().token_requests(), emulator.state().api_requests()), (1, 1));

    emulator.state().revoke_all_tokens();
    let body = organization(&client).await.unwrap();
    assert_eq!(body["id"], "sandbox-org");
    assert_eq!(emulator.state().token_requests(), 2, "exactly one refresh");
    assert_eq!(emulator.state().api_requests(), 3, "exactly one retry");
}

#[tokio::test(start_paused = true)]
async fn a_second_401_is_reported_with_its_error_body() {
    let Setup { emulator, client } = setup().await;
    emulator.state().push_api_fault(ApiFault::Unauthorized);
    emulator.state().push_api_fault(ApiFault::Unauthorized);
    let error = organization(&client).await.unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert_eq!(error.error_body().and_then(|b| b.code.as_deref()), Some("bad.credentials"));
    assert!(error.correlation_id().is_some());
    assert!(error.to_string().contains("correlation id"), "{error}");
    assert_eq!(emulator.state().api_requests(), 2, "no retry beyond the one after a 401");
    assert_eq!(emulator.state().token_requests(), 2);
}

#[tokio::test(start_paused = true)]
async fn rate_limits_honour_retry_after() {
    let Setup { emulator, client } = setup().await;
    emulator.state().push_api_fault(ApiFault::RateLimited { retry_after_secs: 4 });
    let started = Instant::now();
    organization(&client).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(4), "{:?}", started.elapsed());
    assert_eq!(emulator.state().api_requests(), 2);
}

#[tokio::test(start_paused = true)]
async fn gateway_errors_are_retried_a_bounded_number_of_times() {
    let Setup { emulator, client } = setup().await;
    emulator.state().push_api_fault(ApiFault::Status(502));
    emulator.state().push_api_fault(ApiFault::Status(503));
    organization(&client).await.unwrap();
    assert_eq!(emulator.state().api_requests(), 3);

    for _ in 0..10 {
        emulator.state().push_api_fault(ApiFault::Status(504));
    }
    let error = organization(&client).await.unwrap_err();
    assert_eq!(error.status(), Some(504));
    assert!(error.is_retryable());
    assert_eq!(emulator.state().api_requests(), 3 + 4, "max_attempts is 4");
}

#[tokio::test(start_paused = true)]
async fn a_500_is_not_retried() {
    let Setup { emulator, client } = setup().await;
    emulator.state().push_api_fault(ApiFault::Status(500));
    let error = organization(&client).await.unwrap_err();
    let body = error.error_body().expect("an ErrorBody");
    assert_eq!(body.status, Some(500));
    assert!(body.context_id.is_some());
    assert_eq!(emulator.state().api_requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_invalid_open_message_is_a_typed_400() {
    let Setup { emulator, client } = setup().await;
    let attachment =
        OpenAttachment::file(Secret::new("ftp://nowhere/file"), "a.pdf", "application/pdf", None);
    let message = OpenMessage::file(OpenFrom::opaque("c"), "m", SystemTime::now(), attachment, None);
    let error = client.send_open_message("i", &message).await.unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert_eq!(error.fault(), Fault::Configuration);
    let body = error.error_body().unwrap();
    assert_eq!(body.code.as_deref(), Some("bad.request"));
    assert_eq!(body.details[0]["fieldName"], "content[0].attachment.url");
    assert!(!error.to_string().contains("nowhere"));
    assert!(emulator.state().open_messages().is_empty());
}

#[tokio::test(start_paused = true)]
async fn bad_credentials_surface_as_an_auth_configuration_error() {
    let emulator = PlatformEmulator::start(EmulatorConfig::with_client("ferry-id", "right")).await.unwrap();
    let mut auth = AuthConfig::with_login_url(emulator.login_url(), "ferry-id", "wrong");
    auth.request_timeout = None;
    let tokens: Arc<dyn TokenSource> = Arc::new(TokenManager::with_http_client(auth, http()).unwrap());
    let client = PlatformClient::with_http_client(
        PlatformConfig::new(Url::parse(&emulator.api_url()).unwrap()),
        tokens,
        http(),
    )
    .unwrap();
    for _ in 0..5 {
        match organization(&client).await {
            Err(error @ Error::Auth(_)) => {
                assert_eq!(error.fault(), Fault::Configuration, "{error}");
                assert!(!error.is_retryable());
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(emulator.state().token_requests(), 1);
    assert_eq!(emulator.state().api_requests(), 0);
}

/// A fixed token, for the wiremock cases.
#[derive(Debug)]
struct FixedToken;

impl TokenSource for FixedToken {
    fn token(&self) -> ferry_auth::TokenFuture<'_> {
        Box::pin(async {
            Ok(AccessToken::new("fixed", Instant::now() + Duration::from_secs(3600), Duration::ZERO))
        })
    }

    fn invalidate(&self, _: &AccessToken) {}
}

fn wiremock_client(server: &MockServer) -> PlatformClient {
    let mut config = PlatformConfig::new(Url::parse(&server.uri()).unwrap());
    config.request_timeout = None;
    PlatformClient::with_http_client(config, Arc::new(FixedToken), http()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn rate_limit_headers_are_exposed_and_the_bearer_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v2/organizations/me"))
        .and(wiremock::matchers::header("authorization", "Bearer fixed"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("inin-ratelimit-count", "299")
                .insert_header("inin-ratelimit-allowed", "300")
                .insert_header("inin-ratelimit-reset", "17")
                .insert_header("ININ-Correlation-Id", "corr-9")
                .set_body_json(json!({"id": "org"})),
        )
        .mount(&server)
        .await;
    let response = wiremock_client(&server)
        .request::<(), Value>(Method::GET, &["api", "v2", "organizations", "me"], None)
        .await
        .unwrap();
    assert_eq!(
        response.rate_limit,
        Some(RateLimit { count: 299, allowed: 300, reset: Duration::from_secs(17) })
    );
    assert_eq!(response.rate_limit.unwrap().remaining(), 1);
    assert_eq!(response.correlation_id.as_deref(), Some("corr-9"));
}

#[tokio::test(start_paused = true)]
async fn a_malformed_success_body_is_a_decode_error_with_the_correlation_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header("ININ-Correlation-Id", "corr-x")
                .set_body_raw("{\"id\": ", "application/json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let attachment = OpenAttachment::file(Secret::new("https://f/x"), "a", "text/plain", None);
    let message = OpenMessage::file(OpenFrom::opaque("c"), "m", SystemTime::now(), attachment, None);
    let error = wiremock_client(&server).send_open_message("int/with slash", &message).await.unwrap_err();
    assert!(matches!(&error, Error::ApiDecode { status: 202, .. }), "{error:?}");
    assert_eq!(error.correlation_id(), Some("corr-x"));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests[0].url.path(),
        "/api/v2/conversations/messages/int%2Fwith%20slash/inbound/open/message",
        "path segments are percent-encoded"
    );
}

#[tokio::test(start_paused = true)]
async fn a_non_json_error_body_still_gives_status_and_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429).insert_header("Retry-After", "90").set_body_string("slow down"),
        )
        .mount(&server)
        .await;
    let started = Instant::now();
    let error = wiremock_client(&server).request::<(), Value>(Method::GET, &["x"], None).await.unwrap_err();
    // A 90 s Retry-After does not fit the 60 s budget: reported at once, not slept on.
    assert!(started.elapsed() < Duration::from_secs(1));
    match error {
        ref error @ Error::Api { status: 429, body: None, retry_after, .. } => {
            assert!(error.is_rate_limited());
            assert_eq!(error.fault(), Fault::Unavailable);
            assert_eq!(error.retry_after(), retry_after);
            assert_eq!(retry_after, Some(Duration::from_secs(90)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_delays_follow_the_injected_jitter() {
    // Default policy: 250 ms doubling. Three 503s, then a success: three waits whose length is
    // set by the jitter source alone (paused time advances exactly by the sleeps).
    async fn elapsed_with(jitter: fn() -> u64) -> (Duration, usize) {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(3)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .with_priority(2)
            .mount(&server)
            .await;
        let client = wiremock_client(&server).with_jitter(jitter);
        let started = Instant::now();
        client.request::<(), Value>(Method::GET, &["x"], None).await.unwrap();
        (started.elapsed(), server.received_requests().await.unwrap().len())
    }
    // No jitter: half of each ceiling, 125 + 250 + 500 ms.
    let (low, requests) = elapsed_with(|| 0).await;
    assert_eq!(requests, 4);
    assert!(low >= Duration::from_millis(875) && low < Duration::from_millis(900), "{low:?}");
    // Full jitter: (almost) each whole ceiling, 250 + 500 + 1000 ms.
    let (high, requests) = elapsed_with(|| u64::MAX).await;
    assert_eq!(requests, 4);
    assert!(high >= Duration::from_millis(1749) && high < Duration::from_millis(1800), "{high:?}");
}
