//! Self-tests of the emulator's agent sign-in: the authorize page, the code exchange with PKCE
//! (single use, bound to client and redirect URI) and `tokens/me` / `users/me`.

use base64::Engine as _;
use ferry_sandbox::platform::{
    CodeClient, DEMO_ORGANIZATION_ID, OTHER_ORGANIZATION_ID, PlatformConfig, PlatformEmulator, s256,
};
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:9/v1/agents/callback";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn start(secret: Option<&str>) -> PlatformEmulator {
    let mut config = PlatformConfig::default();
    config.code_clients.push(CodeClient {
        client_id: "ferry".into(),
        client_secret: secret.map(str::to_owned),
        redirect_uris: vec![REDIRECT.into()],
    });
    PlatformEmulator::start(config).await.unwrap()
}

fn authorize_query(redirect: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", "ferry".into()),
        ("redirect_uri", redirect.into()),
        ("code_challenge", s256(VERIFIER)),
        ("code_challenge_method", "S256".into()),
        ("state", "st<ate>".into()),
    ]
}

fn with_query(url: &str, pairs: &[(&str, String)]) -> url::Url {
    url::Url::parse_with_params(url, pairs).unwrap()
}

/// Signs `user` in through the page's form and returns the code from the redirect.
async fn sign_in(emulator: &PlatformEmulator, user: &str) -> String {
    let url = format!("{}/oauth/authorize", emulator.login_url());
    let page = http().get(with_query(&url, &authorize_query(REDIRECT))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Olga Outsider") && html.contains("value=\"st&lt;ate&gt;\""), "{html}");
    let mut form = authorize_query(REDIRECT);
    form.push(("user", user.into()));
    let answer = http().post(&url).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), 303);
    let location = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "st<ate>");
    pairs["code"].clone()
}

async fn exchange(
    emulator: &PlatformEmulator,
    basic: Option<&str>,
    code: &str,
    redirect: &str,
    verifier: &str,
) -> reqwest::Response {
    let mut request = http().post(format!("{}/oauth/token", emulator.login_url())).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("code_verifier", verifier),
        ("client_id", "ferry"),
    ]);
    if let Some(secret) = basic {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("ferry:{secret}"));
        request = request.header("authorization", format!("Basic {pair}"));
    }
    request.send().await.unwrap()
}

async fn me(emulator: &PlatformEmulator, path: &str, token: &str) -> (u16, Value) {
    let response =
        http().get(format!("{}{path}", emulator.api_url())).bearer_auth(token).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_code_is_redeemed_once_with_its_verifier_and_tells_the_organisation() {
    let emulator = start(None).await;
    let code = sign_in(&emulator, "agent-sam").await;
    let answer = exchange(&emulator, None, &code, REDIRECT, VERIFIER).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(body["token_type"], "bearer");
    let (status, tokens_me) = me(&emulator, "/api/v2/tokens/me", &token).await;
    assert_eq!(status, 200);
    assert_eq!(tokens_me["organization"]["id"], DEMO_ORGANIZATION_ID);
    assert_eq!(tokens_me["homeOrganization"]["id"], DEMO_ORGANIZATION_ID);
    let (_, user) = me(&emulator, "/api/v2/users/me?expand=authorization", &token).await;
    assert_eq!(user["id"], "agent-sam");
    assert_eq!(user["authorization"]["roles"][1]["name"], "Supervisor");
    let (_, plain) = me(&emulator, "/api/v2/users/me", &token).await;
    assert!(plain.get("authorization").is_none());
    // Replayed: refused, and no second token.
    let replay = exchange(&emulator, None, &code, REDIRECT, VERIFIER).await;
    assert_eq!(replay.status(), 400);
    assert_eq!(replay.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(emulator.state().codes_redeemed(), 1);
    let (status, _) = me(&emulator, "/api/v2/tokens/me", "not-a-token").await;
    assert_eq!(status, 401);

    let code = sign_in(&emulator, "agent-olga").await;
    let body: Value = exchange(&emulator, None, &code, REDIRECT, VERIFIER).await.json().await.unwrap();
    let (_, tokens_me) = me(&emulator, "/api/v2/tokens/me", body["access_token"].as_str().unwrap()).await;
    assert_eq!(tokens_me["organization"]["id"], OTHER_ORGANIZATION_ID);
}

#[tokio::test]
async fn a_wrong_verifier_redirect_or_secret_fails_and_uses_the_code_up() {
    let emulator = start(Some("s3cret")).await;
    let code = sign_in(&emulator, "agent-ada").await;
    let wrong = exchange(&emulator, Some("s3cret"), &code, REDIRECT, &VERIFIER.replace('a', "b")).await;
    assert_eq!(wrong.status(), 400);
    // The right verifier after a wrong one: the code is gone.
    let after = exchange(&emulator, Some("s3cret"), &code, REDIRECT, VERIFIER).await;
    assert_eq!(after.status(), 400);

    let code = sign_in(&emulator, "agent-ada").await;
    let other = exchange(&emulator, Some("s3cret"), &code, "http://127.0.0.1:9/elsewhere", VERIFIER).await;
    assert_eq!(other.status(), 400);

    let code = sign_in(&emulator, "agent-ada").await;
    let no_secret = exchange(&emulator, None, &code, REDIRECT, VERIFIER).await;
    assert_eq!(no_secret.status(), 401, "a confidential client must authenticate");

    let code = sign_in(&emulator, "agent-ada").await;
    let good = exchange(&emulator, Some("s3cret"), &code, REDIRECT, VERIFIER).await;
    assert_eq!(good.status(), 200);
    assert_eq!(emulator.state().codes_redeemed(), 1);
}

#[tokio::test]
async fn the_authorize_page_never_redirects_to_an_unregistered_uri() {
    let emulator = start(None).await;
    let url = format!("{}/oauth/authorize", emulator.login_url());
    let evil = authorize_query("https://evil.example/steal");
    let page = http().get(with_query(&url, &evil)).send().await.unwrap();
    assert_eq!(page.status(), 400);
    let mut form = evil;
    form.push(("user", "agent-ada".into()));
    let answer = http().post(&url).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    assert!(answer.headers().get("location").is_none());
    let mut plain = authorize_query(REDIRECT);
    plain.retain(|(k, _)| *k != "code_challenge");
    assert_eq!(http().get(with_query(&url, &plain)).send().await.unwrap().status(), 400, "PKCE is required");
    assert_eq!(emulator.state().codes_issued(), 0);
}
