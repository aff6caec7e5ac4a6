//! Self-tests of the login + platform emulator, with a plain HTTP client: credentials, faults,
//! bearer checks, `ErrorBody` shape, rate-limit headers, Open Messaging validation and fetching.

use std::time::Duration;

use base64::Engine as _;
use ferry_sandbox::platform::{PlatformConfig, PlatformEmulator, TokenFault};
use serde_json::{Value, json};

use crate::get_json;

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().pool_idle_timeout(None).build().unwrap()
}

async fn start(config: PlatformConfig) -> PlatformEmulator {
    PlatformEmulator::start(config).await.unwrap()
}

async fn token_request(emulator: &PlatformEmulator, authorization: &str, form: &str) -> reqwest::Response {
    http()
        .post(format!("{}/oauth/token", emulator.login_url()))
        .header("authorization", authorization)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap()
}

async fn token(emulator: &PlatformEmulator) -> String {
    let response = token_request(emulator, &basic("id", "secret"), "grant_type=client_credentials").await;
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn api_get(emulator: &PlatformEmulator, bearer: Option<&str>) -> reqwest::Response {
    let mut request = http().get(format!("{}/api/v2/organizations/me", emulator.api_url()));
    if let Some(bearer) = bearer {
        request = request.header("authorization", format!("Bearer {bearer}"));
    }
    request.send().await.unwrap()
}

fn assert_error_body(body: &Value, status: u16, code: &str) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string() && body["contextId"].is_string(), "{body}");
    assert!(body["details"].is_array() && body["errors"].is_array(), "{body}");
}

#[tokio::test]
async fn issues_tokens_for_configured_clients_only() {
    let mut config = PlatformConfig::with_client("id", "secret");
    config.token_lifetime = Duration::from_secs(1234);
    let emulator = start(config).await;

    let response = token_request(&emulator, &basic("id", "secret"), "grant_type=client_credentials").await;
    assert_eq!(response.status(), 200);
    for header in
        ["inin-ratelimit-count", "inin-ratelimit-allowed", "inin-ratelimit-reset", "inin-correlation-id"]
    {
        assert!(response.headers().contains_key(header), "missing {header}");
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 1234);
    assert!(body["access_token"].as_str().unwrap().len() >= 32);

    let wrong = token_request(&emulator, &basic("id", "nope"), "grant_type=client_credentials").await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(wrong.json::<Value>().await.unwrap()["error"], "invalid_client");
    let anonymous =
        http().post(format!("{}/oauth/token", emulator.login_url())).body("grant_type=client_credentials");
    let anonymous = anonymous.send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.json::<Value>().await.unwrap()["error"], "invalid_client");
    let grant = token_request(&emulator, &basic("id", "secret"), "grant_type=password").await;
    assert_eq!(grant.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");

    assert_eq!(emulator.state().token_requests(), 4);
    assert_eq!(emulator.state().tokens_issued(), 1);
}

#[tokio::test]
async fn scripted_token_faults_come_first_and_in_order() {
    let emulator = start(PlatformConfig::with_client("id", "secret")).await;
    emulator.state().fail_next_token_requests(1, 503);
    emulator.state().push_token_fault(TokenFault::RateLimited { retry_after_secs: 9 });
    emulator.state().push_token_fault(TokenFault::MalformedJson);
    let ok = basic("id", "secret");
    let grant = "grant_type=client_credentials";
    assert_eq!(token_request(&emulator, &ok, grant).await.status(), 503);
    let limited = token_request(&emulator, &ok, grant).await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "9");
    let malformed = token_request(&emulator, &ok, grant).await;
    assert_eq!(malformed.status(), 200);
    assert!(serde_json::from_slice::<Value>(&malformed.bytes().await.unwrap()).is_err());
    assert_eq!(token_request(&emulator, &ok, grant).await.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn bearer_checks_answer_with_error_bodies() {
    let emulator = start(PlatformConfig::with_client("id", "secret")).await;
    emulator.state().set_token_lifetime(Duration::from_secs(60));
    let missing = api_get(&emulator, None).await;
    assert_eq!(missing.status(), 401);
    assert_error_body(&missing.json().await.unwrap(), 401, "authentication.required");
    let unknown = api_get(&emulator, Some("made-up")).await;
    assert_error_body(&unknown.json().await.unwrap(), 401, "bad.credentials");

    let bearer = token(&emulator).await;
    assert_eq!(api_get(&emulator, Some(&bearer)).await.status(), 200);
    tokio::time::advance(Duration::from_secs(60)).await;
    let expired = api_get(&emulator, Some(&bearer)).await;
    assert_eq!(expired.status(), 401, "tokens expire on tokio's clock");

    let bearer = token(&emulator).await;
    emulator.state().revoke_all_tokens();
    assert_eq!(api_get(&emulator, Some(&bearer)).await.status(), 401);
}

#[tokio::test]
async fn the_rate_limit_window_is_enforced_with_429_and_retry_after() {
    let mut config = PlatformConfig::with_client("id", "secret");
    config.rate_limit_allowed = 3;
    let emulator = start(config).await;
    let bearer = token(&emulator).await; // request 1 of the window
    let second = api_get(&emulator, Some(&bearer)).await;
    assert_eq!(second.headers()["inin-ratelimit-count"], "2");
    assert_eq!(second.headers()["inin-ratelimit-allowed"], "3");
    assert_eq!(api_get(&emulator, Some(&bearer)).await.status(), 200);
    let limited = api_get(&emulator, Some(&bearer)).await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_error_body(&limited.json().await.unwrap(), 429, "too.many.requests.retry.after");
}

#[tokio::test]
async fn open_messages_are_validated_fetched_and_listed() {
    let emulator = start(PlatformConfig::with_client("id", "secret")).await;
    let bearer = token(&emulator).await;
    let url = format!("{}/api/v2/conversations/messages/int-1/inbound/open/message", emulator.api_url());
    let send = |body: Value| {
        http().post(&url).header("authorization", format!("Bearer {bearer}")).json(&body).send()
    };

    let invalid =
        send(json!({"channel": {"from": {"idType": "Opaque"}, "time": "t"}, "text": "x"})).await.unwrap();
    assert_eq!(invalid.status(), 400);
    let body: Value = invalid.json().await.unwrap();
    assert_error_body(&body, 400, "bad.request");
    assert_eq!(body["details"][0]["fieldName"], "channel.from.id");

    // An attachment whose URL cannot be fetched: accepted, and the failed fetch is recorded.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let message = json!({
        "channel": {"from": {"id": "c", "idType": "Opaque"}, "time": "2024-01-01T00:00:00.000Z", "messageId": "m-1"},
        "content": [{"contentType": "Attachment", "attachment": {
            "mediaType": "File", "url": format!("http://{closed}/f?sig=1"), "mime": "text/plain", "filename": "f.txt"}}],
    });
    let accepted = send(message).await.unwrap();
    assert_eq!(accepted.status(), 202);
    let receipt: Value = accepted.json().await.unwrap();
    assert_eq!(receipt["channel"]["messageId"], "m-1");

    let listed = get_json(format!("{}/sandbox/platform/open-messages", emulator.api_url())).await;
    assert_eq!(listed[0]["id"], receipt["id"]);
    assert_eq!(listed[0]["integrationId"], "int-1");
    let fetched = &listed[0]["attachments"][0];
    assert!(fetched["error"].as_str().unwrap().starts_with("fetch failed"), "{fetched}");
    assert_eq!(fetched["size"], 0);
    assert!(!format!("{:?}", emulator.state().open_messages()).contains("sig=1"), "Debug redacts the query");
}
