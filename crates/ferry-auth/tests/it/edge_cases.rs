//! Exact HTTP edge cases against wiremock, on paused tokio time: request shape, expiry
//! arithmetic, `Retry-After`, 5xx sequences, malformed JSON, backoff between failed fetches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferry_auth::{AuthConfig, Error, TokenManager, TokenSource};
use tokio::time::{Instant, advance};
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const BASIC: &str = "Basic ZmVycnktaWQ6ZmVycnktc2VjcmV0"; // base64("ferry-id:ferry-secret")

/// A manager whose HTTP client has no background timers, so paused time only moves when the
/// test (or a backoff sleep) moves it.
fn manager(server: &MockServer, tweak: impl FnOnce(&mut AuthConfig)) -> TokenManager {
    let mut config = AuthConfig::with_login_url(server.uri(), "ferry-id", "ferry-secret");
    config.request_timeout = None;
    tweak(&mut config);
    let http = reqwest::Client::builder().pool_idle_timeout(None).build().unwrap();
    TokenManager::with_http_client(config, http).unwrap()
}

fn grant(token: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "access_token": token, "token_type": "bearer", "expires_in": expires_in,
    }))
}

/// Answers from a script, one entry per request, repeating the last entry.
struct Script(Vec<ResponseTemplate>, AtomicUsize);

impl Script {
    fn new(steps: Vec<ResponseTemplate>) -> Self {
        Self(steps, AtomicUsize::new(0))
    }
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.1.fetch_add(1, Ordering::SeqCst);
        self.0[n.min(self.0.len() - 1)].clone()
    }
}

/// Issues `token-1`, `token-2`, … each living `expires_in` seconds.
struct Counter(u64, AtomicUsize);

impl Respond for Counter {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.1.fetch_add(1, Ordering::SeqCst) + 1;
        grant(&format!("token-{n}"), self.0)
    }
}

async fn token_endpoint(server: &MockServer, responder: impl Respond + 'static) {
    Mock::given(method("POST")).and(path("/oauth/token")).respond_with(responder).mount(server).await;
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test(start_paused = true)]
async fn sends_basic_credentials_and_the_client_credentials_grant() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("authorization", BASIC))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("grant_type=client_credentials"))
        .respond_with(grant("abc", 86399))
        .expect(1)
        .mount(&server)
        .await;
    let tokens = manager(&server, |_| {});
    let token = tokens.token().await.unwrap();
    assert_eq!(token.secret(), "abc");
    assert_eq!(token.authorization(), "Bearer abc");
    assert_eq!(token.token_type(), "bearer");
    assert_eq!(token.generation(), 1);
    let lifetime = token.expires_at() - Instant::now();
    assert!(lifetime <= Duration::from_secs(86399) && lifetime > Duration::from_secs(86398), "{lifetime:?}");
    server.verify().await;
}

#[tokio::test(start_paused = true)]
async fn refreshes_exactly_skew_ahead_of_expiry() {
    let server = MockServer::start().await;
    token_endpoint(&server, Counter(3600, AtomicUsize::new(0))).await;
    let tokens = manager(&server, |_| {});
    assert_eq!(tokens.token().await.unwrap().secret(), "token-1");
    advance(Duration::from_secs(3539)).await;
    assert_eq!(tokens.token().await.unwrap().secret(), "token-1", "61 s before expiry is still fresh");
    assert_eq!(requests(&server).await, 1);
    advance(Duration::from_secs(1)).await;
    assert_eq!(tokens.token().await.unwrap().secret(), "token-2", "60 s before expiry is due");
    assert_eq!(requests(&server).await, 2);
    assert_eq!(tokens.token().await.unwrap().secret(), "token-2");
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_lifetime_shorter_than_the_skew_refreshes_at_half_life_not_on_every_call() {
    let server = MockServer::start().await;
    token_endpoint(&server, Counter(30, AtomicUsize::new(0))).await;
    let tokens = manager(&server, |_| {});
    assert_eq!(tokens.token().await.unwrap().secret(), "token-1");
    for _ in 0..14 {
        advance(Duration::from_secs(1)).await;
        assert_eq!(tokens.token().await.unwrap().secret(), "token-1");
    }
    assert_eq!(requests(&server).await, 1);
    advance(Duration::from_secs(1)).await;
    assert_eq!(tokens.token().await.unwrap().secret(), "token-2");
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_is_never_handed_out() {
    let server = MockServer::start().await;
    token_endpoint(&server, Counter(100, AtomicUsize::new(0))).await;
    let tokens = manager(&server, |config| config.refresh_skew = Duration::ZERO);
    let first = tokens.token().await.unwrap();
    advance(Duration::from_secs(99)).await;
    assert_eq!(tokens.token().await.unwrap().secret(), "token-1");
    advance(Duration::from_secs(1)).await;
    let second = tokens.token().await.unwrap();
    assert_eq!(second.secret(), "token-2");
    assert!(second.expires_at() > first.expires_at());
}

#[tokio::test(start_paused = true)]
async fn rate_limits_honour_retry_after() {
    let server = MockServer::start().await;
    token_endpoint(
        &server,
        Script::new(vec![
            ResponseTemplate::new(429).insert_header("Retry-After", "7"),
            grant("after-wait", 86399),
        ]),
    )
    .await;
    let tokens = manager(&server, |_| {});
    let started = Instant::now();
    assert_eq!(tokens.token().await.unwrap().secret(), "after-wait");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(7), "waited only {waited:?}");
    assert!(waited < Duration::from_secs(8), "waited {waited:?}");
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_budget_gives_up_as_rate_limited() {
    let server = MockServer::start().await;
    token_endpoint(
        &server,
        Script::new(vec![ResponseTemplate::new(429).insert_header("Retry-After", "120")]),
    )
    .await;
    let tokens = manager(&server, |_| {});
    let error = tokens.token().await.unwrap_err();
    assert!(
        matches!(error, Error::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(120)),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_with_growing_jittered_delays() {
    let server = MockServer::start().await;
    token_endpoint(
        &server,
        Script::new(vec![
            ResponseTemplate::new(503),
            ResponseTemplate::new(502),
            ResponseTemplate::new(500),
            grant("third-time-lucky", 86399),
        ]),
    )
    .await;
    let tokens = manager(&server, |_| {});
    let started = Instant::now();
    assert_eq!(tokens.token().await.unwrap().secret(), "third-time-lucky");
    // Delays of 100–200 ms, 200–400 ms and 400–800 ms (equal jitter on 200 ms doubling).
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(700) && waited <= Duration::from_millis(1400), "{waited:?}");
    assert_eq!(requests(&server).await, 4);
    assert_eq!(tokens.token_requests(), 4);
}

#[tokio::test(start_paused = true)]
async fn persistent_server_errors_give_up_then_back_off_between_fetches() {
    let server = MockServer::start().await;
    token_endpoint(&server, Script::new(vec![ResponseTemplate::new(503)])).await;
    let tokens = manager(&server, |config| {
        config.failure_backoff = Duration::from_secs(10);
        config.max_failure_backoff = Duration::from_secs(10);
    });
    let error = tokens.token().await.unwrap_err();
    assert!(matches!(error, Error::Server { status: 503 }), "{error:?}");
    assert_eq!(requests(&server).await, 4, "max_attempts bounds one fetch");

    // Within the backoff, callers get the error at once and nothing is sent.
    advance(Duration::from_secs(4)).await;
    for _ in 0..20 {
        assert!(matches!(tokens.token().await, Err(Error::Server { status: 503 })));
    }
    assert_eq!(requests(&server).await, 4);

    // After the backoff (5–10 s for a first failure), one new fetch runs.
    advance(Duration::from_secs(6)).await;
    assert!(tokens.token().await.is_err());
    assert_eq!(requests(&server).await, 8);
}

#[tokio::test(start_paused = true)]
async fn not_implemented_is_not_retried() {
    let server = MockServer::start().await;
    token_endpoint(&server, Script::new(vec![ResponseTemplate::new(501)])).await;
    let error = manager(&server, |_| {}).token().await.unwrap_err();
    assert!(matches!(error, Error::Server { status: 501 }), "{error:?}");
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test(start_paused = true)]
async fn malformed_json_is_reported_without_echoing_the_body_and_not_retried() {
    let server = MockServer::start().await;
    token_endpoint(
        &server,
        Script::new(vec![
            ResponseTemplate::new(200).set_body_raw(r#"{"access_token":"leaky-token""#, "application/json"),
        ]),
    )
    .await;
    let error = manager(&server, |_| {}).token().await.unwrap_err();
    assert!(matches!(error, Error::MalformedResponse { .. }), "{error:?}");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("leaky-token"), "{shown}");
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test(start_paused = true)]
async fn missing_expires_in_is_malformed() {
    let server = MockServer::start().await;
    token_endpoint(
        &server,
        Script::new(vec![ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": "t"}))]),
    )
    .await;
    let error = manager(&server, |_| {}).token().await.unwrap_err();
    assert!(error.to_string().contains("expires_in is missing"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn invalid_client_is_a_configuration_error_and_never_stormed() {
    let server = MockServer::start().await;
    token_endpoint(
        &server,
        Script::new(vec![ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_client", "description": "client not found", "error_description": "client not found",
        }))]),
    )
    .await;
    let tokens = manager(&server, |_| {});
    let error = tokens.token().await.unwrap_err();
    assert!(error.is_configuration_error(), "{error:?}");
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(message.contains("invalid_client") && message.contains("client id and secret"), "{message}");
    assert!(!message.contains("ferry-secret"));
    for _ in 0..50 {
        assert!(tokens.token().await.unwrap_err().is_configuration_error());
    }
    assert_eq!(requests(&server).await, 1);
    // The pause after a configuration error is the longest one (60 s by default).
    advance(Duration::from_secs(59)).await;
    assert!(tokens.token().await.is_err());
    assert_eq!(requests(&server).await, 1);
    advance(Duration::from_secs(1)).await;
    assert!(tokens.token().await.is_err());
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_valid_token_and_backs_off() {
    let server = MockServer::start().await;
    token_endpoint(&server, Script::new(vec![grant("old", 3600), ResponseTemplate::new(400)])).await;
    let tokens = manager(&server, |config| {
        config.failure_backoff = Duration::from_secs(20);
        config.max_failure_backoff = Duration::from_secs(20);
    });
    assert_eq!(tokens.token().await.unwrap().secret(), "old");
    advance(Duration::from_secs(3550)).await; // due for refresh, still valid for 50 s
    assert_eq!(tokens.token().await.unwrap().secret(), "old", "a failing refresh must not break callers");
    assert_eq!(requests(&server).await, 2);
    for _ in 0..10 {
        assert_eq!(tokens.token().await.unwrap().secret(), "old");
    }
    assert_eq!(requests(&server).await, 2, "no new attempt during the backoff");
    advance(Duration::from_secs(20)).await;
    assert_eq!(tokens.token().await.unwrap().secret(), "old");
    assert_eq!(requests(&server).await, 3);
    advance(Duration::from_secs(30)).await; // now expired, and the login service still refuses
    assert!(matches!(tokens.token().await, Err(Error::Rejected { status: 400, .. })));
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_failed_fetch() {
    let server = MockServer::start().await;
    token_endpoint(
        &server,
        Script::new(vec![
            ResponseTemplate::new(401).set_body_json(serde_json::json!({"error": "unauthorized_client"})),
        ]),
    )
    .await;
    let tokens = Arc::new(manager(&server, |_| {}));
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let tokens = Arc::clone(&tokens);
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    for call in calls {
        let error = call.await.unwrap().unwrap_err();
        assert!(
            matches!(&error, Error::InvalidClient { error, .. } if error == "unauthorized_client"),
            "{error:?}"
        );
    }
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test(start_paused = true)]
async fn invalidation_refetches_once_per_token() {
    let server = MockServer::start().await;
    token_endpoint(&server, Counter(86399, AtomicUsize::new(0))).await;
    let tokens = manager(&server, |_| {});
    let source: &dyn TokenSource = &tokens;
    let first = source.token().await.unwrap();
    for _ in 0..10 {
        source.invalidate(&first);
    }
    let second = source.token().await.unwrap();
    assert_eq!(second.secret(), "token-2");
    // Late reports about the first token do not drop the second.
    source.invalidate(&first);
    assert_eq!(source.token().await.unwrap().secret(), "token-2");
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test(start_paused = true)]
async fn transport_errors_are_retried_within_the_budget() {
    // A port that was just bound and released: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = AuthConfig::with_login_url(format!("http://127.0.0.1:{port}"), "id", "secret");
    config.request_timeout = None;
    let http = reqwest::Client::builder().pool_idle_timeout(None).build().unwrap();
    let tokens = TokenManager::with_http_client(config, http).unwrap();
    let error = tokens.token().await.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(tokens.token_requests(), 4);
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let config = AuthConfig::for_environment("mypurecloud.de", "visible-id", "hidden-secret");
    assert_eq!(config.token_endpoint(), "https://login.mypurecloud.de/oauth/token");
    let shown = format!("{config:?}");
    assert!(shown.contains("visible-id") && !shown.contains("hidden-secret"), "{shown}");
    let token = ferry_auth::AccessToken::new("hidden-token", Instant::now(), Duration::ZERO);
    let shown = format!("{token:?}");
    assert!(!shown.contains("hidden-token"), "{shown}");
    let manager = TokenManager::new(config).unwrap();
    assert!(!format!("{manager:?}").contains("hidden-secret"));
}

#[test]
fn empty_credentials_are_rejected_up_front() {
    let error = TokenManager::new(AuthConfig::with_login_url("http://127.0.0.1:1", "", "s")).unwrap_err();
    assert!(error.is_configuration_error());
    let error = TokenManager::new(AuthConfig::with_login_url("not a url", "id", "s")).unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
}

#[tokio::test]
async fn an_oversized_token_response_is_refused_not_buffered() {
    let server = MockServer::start().await;
    // A 200 whose body runs past the fetcher's 64 KiB limit: refused as malformed, and (a fatal
    // answer) not fetched again.
    let padding = "x".repeat(70 * 1024);
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!(
            r#"{{"access_token":"t","token_type":"bearer","expires_in":60,"pad":"{padding}"}}"#
        )))
        .mount(&server)
        .await;
    let manager = manager(&server, |_| {});
    match manager.token().await {
        Err(Error::MalformedResponse { reason }) => {
            assert!(reason.contains("larger than 65536 bytes"), "{reason}")
        }
        other => panic!("expected a malformed response, got {other:?}"),
    }
}

#[tokio::test]
async fn a_bounded_body_reads_in_full_below_the_limit() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![7u8; 1000]))
        .mount(&server)
        .await;
    let response = reqwest::get(server.uri()).await.unwrap();
    let body = ferry_auth::body::read_limited(response, 1000).await.unwrap();
    assert_eq!(body.len(), 1000);
    let response = reqwest::get(server.uri()).await.unwrap();
    assert!(matches!(
        ferry_auth::body::read_limited(response, 999).await,
        Err(ferry_auth::body::BodyError::TooLarge { limit: 999 })
    ));
}
