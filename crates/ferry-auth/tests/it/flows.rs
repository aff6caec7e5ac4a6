//! Flows against the ferry-sandbox login emulator over real loopback sockets: single flight,
//! refresh ahead of expiry, invalidation after a 401, rejected credentials, scripted faults.

use std::sync::Arc;
use std::time::Duration;

use ferry_auth::{AuthConfig, Error, TokenManager};
use ferry_sandbox::platform::{PlatformConfig, PlatformEmulator, TokenFault};
use tokio::time::{Instant, advance};

async fn emulator() -> PlatformEmulator {
    PlatformEmulator::start(PlatformConfig::with_client("ferry-id", "ferry-secret")).await.unwrap()
}

/// A manager whose HTTP client starts no background timers (safe on paused time).
fn manager(emulator: &PlatformEmulator, secret: &str) -> Arc<TokenManager> {
    let mut config = AuthConfig::with_login_url(emulator.login_url(), "ferry-id", secret);
    config.request_timeout = None;
    let http = reqwest::Client::builder().pool_idle_timeout(None).build().unwrap();
    Arc::new(TokenManager::with_http_client(config, http).unwrap())
}

async fn concurrently(tokens: &Arc<TokenManager>, n: usize) -> Vec<Result<ferry_auth::AccessToken, Error>> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let tokens = Arc::clone(tokens);
            tokio::spawn(async move { tokens.token().await })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for call in calls {
        results.push(call.await.unwrap());
    }
    results
}

/// Calls a bearer-protected emulator endpoint and returns the HTTP status.
async fn call_api(emulator: &PlatformEmulator, token: &ferry_auth::AccessToken) -> u16 {
    reqwest::Client::builder()
        .pool_idle_timeout(None)
        .build()
        .unwrap()
        .get(format!("{}/api/v2/organizations/me", emulator.api_url()))
        .header("authorization", token.authorization())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_callers_cause_exactly_one_token_request() {
    let emulator = emulator().await;
    let tokens = manager(&emulator, "ferry-secret");
    let results = concurrently(&tokens, 1000).await;
    let first = results[0].as_ref().unwrap().clone();
    for result in &results {
        let token = result.as_ref().unwrap();
        assert_eq!(token.secret(), first.secret());
        assert_eq!(token.generation(), 1);
    }
    assert_eq!(emulator.state().token_requests(), 1);
    assert_eq!(call_api(&emulator, &first).await, 200);
}

#[tokio::test(start_paused = true)]
async fn expiry_causes_one_refresh() {
    let emulator = emulator().await;
    emulator.state().set_token_lifetime(Duration::from_secs(300));
    let tokens = manager(&emulator, "ferry-secret");
    let first = tokens.token().await.unwrap();
    assert_eq!(emulator.state().token_requests(), 1);

    // Due for refresh (60 s ahead of expiry): one caller refreshes, the rest keep the old token.
    advance(Duration::from_secs(241)).await;
    let results = concurrently(&tokens, 100).await;
    assert_eq!(emulator.state().token_requests(), 2);
    let refreshed = results.iter().filter(|r| r.as_ref().unwrap().generation() == 2).count();
    assert!(refreshed >= 1, "the refreshing caller gets the new token");
    let second = tokens.token().await.unwrap();
    assert_eq!(second.generation(), 2);
    assert_ne!(second.secret(), first.secret());

    // Idle past expiry: the next burst of callers causes one fetch and all get its token.
    advance(Duration::from_secs(400)).await;
    assert_eq!(call_api(&emulator, &second).await, 401, "the emulator expired it too");
    let results = concurrently(&tokens, 100).await;
    assert_eq!(emulator.state().token_requests(), 3);
    assert!(results.iter().all(|r| r.as_ref().unwrap().generation() == 3));
    assert_eq!(call_api(&emulator, results[0].as_ref().unwrap()).await, 200);
}

#[tokio::test(start_paused = true)]
async fn a_401_reported_by_many_callers_causes_one_refresh() {
    let emulator = emulator().await;
    let tokens = manager(&emulator, "ferry-secret");
    let refused = tokens.token().await.unwrap();
    emulator.state().revoke_all_tokens();
    assert_eq!(call_api(&emulator, &refused).await, 401);

    let calls: Vec<_> = (0..50)
        .map(|_| {
            let tokens = Arc::clone(&tokens);
            let refused = refused.clone();
            tokio::spawn(async move {
                tokens.invalidate(&refused);
                tokens.token().await
            })
        })
        .collect();
    for call in calls {
        let token = call.await.unwrap().unwrap();
        assert_eq!(token.generation(), 2);
    }
    assert_eq!(emulator.state().token_requests(), 2);
    let fresh = tokens.token().await.unwrap();
    assert_eq!(call_api(&emulator, &fresh).await, 200);
}

#[tokio::test(start_paused = true)]
async fn bad_credentials_fail_clearly_without_a_retry_storm() {
    let emulator = emulator().await;
    let tokens = manager(&emulator, "wrong-secret");
    for result in concurrently(&tokens, 100).await {
        let error = result.unwrap_err();
        assert!(error.is_configuration_error(), "{error:?}");
        assert!(error.to_string().contains("invalid_client"), "{error}");
        assert!(!error.to_string().contains("wrong-secret"));
    }
    for _ in 0..100 {
        assert!(tokens.token().await.unwrap_err().is_configuration_error());
    }
    assert_eq!(emulator.state().token_requests(), 1);
    advance(Duration::from_secs(61)).await;
    assert!(tokens.token().await.is_err());
    assert_eq!(emulator.state().token_requests(), 2, "one attempt per backoff period");
}

#[tokio::test(start_paused = true)]
async fn scripted_outages_and_rate_limits_are_ridden_out() {
    let emulator = emulator().await;
    emulator.state().fail_next_token_requests(2, 503);
    emulator.state().push_token_fault(TokenFault::RateLimited { retry_after_secs: 3 });
    let tokens = manager(&emulator, "ferry-secret");
    let started = Instant::now();
    let token = tokens.token().await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(emulator.state().token_requests(), 4);
    assert_eq!(emulator.state().tokens_issued(), 1);
    assert_eq!(call_api(&emulator, &token).await, 200);
}

#[tokio::test(start_paused = true)]
async fn a_malformed_grant_from_the_emulator_is_an_error() {
    let emulator = emulator().await;
    emulator.state().push_token_fault(TokenFault::MalformedJson);
    let tokens = manager(&emulator, "ferry-secret");
    assert!(matches!(tokens.token().await, Err(Error::MalformedResponse { .. })));
    assert_eq!(emulator.state().token_requests(), 1);
}
