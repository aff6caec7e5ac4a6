//! Agent sign-in: the authorization-code grant with PKCE, as `login.E` and `api.E` offer it.
//!
//! - `GET /oauth/authorize?response_type=code&client_id=…&redirect_uri=…&code_challenge=…&code_challenge_method=S256&state=…`
//!   checks the client and its registered redirect URI, then shows a minimal sign-in page: one
//!   button per demo agent ([`DemoAgent`]; one of them in another organisation). Choosing one
//!   (`POST /oauth/authorize`) redirects to `redirect_uri?code=…&state=…`.
//! - `grant_type=authorization_code` at `POST /oauth/token` (see `oauth`) redeems a code once:
//!   bound to its client id and `redirect_uri`, valid 60 s, and only with the `code_verifier` whose
//!   S256 is the challenge. A confidential client authenticates with HTTP Basic. Any attempt uses
//!   the code up.
//! - `GET /api/v2/tokens/me` answers the token's `organization` and `homeOrganization`;
//!   `GET /api/v2/users/me` the user (`id`, `name`, `email`, `division`) and, with
//!   `expand=authorization`, its roles.

use super::PlatformState;
use super::api::error_body;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// The demo organisation's id (the one `ferry dev` configures).
pub const DEMO_ORGANIZATION_ID: &str = "6f1c2a3e-0d4b-4c55-9e61-00000000de01";
/// The other organisation's id (its agent must be refused).
pub const OTHER_ORGANIZATION_ID: &str = "9a8b7c6d-5e4f-4a3b-8c2d-0000000a0002";
/// The demo division.
pub const DEMO_DIVISION_ID: &str = "d1a15100-0000-4000-8000-000000000001";

/// How long an authorization code can be redeemed.
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// A demo agent who can sign in on the emulated page.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoAgent {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Organisation id.
    pub organization_id: String,
    /// Organisation name.
    pub organization_name: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Home division id.
    pub division_id: String,
}

impl DemoAgent {
    fn new(id: &str, name: &str, email: &str, org: (&str, &str), roles: &[&str]) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            email: email.into(),
            organization_id: org.0.into(),
            organization_name: org.1.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            division_id: DEMO_DIVISION_ID.into(),
        }
    }
}

/// The demo agents: two of the demo organisation (one a supervisor), one of another organisation.
pub fn demo_agents() -> Vec<DemoAgent> {
    let demo = (DEMO_ORGANIZATION_ID, "ferry demo contact centre");
    vec![
        DemoAgent::new("agent-ada", "Ada Agent", "ada@demo.example", demo, &["Agent"]),
        DemoAgent::new("agent-sam", "Sam Supervisor", "sam@demo.example", demo, &["Agent", "Supervisor"]),
        DemoAgent::new(
            "agent-olga",
            "Olga Outsider",
            "olga@other.example",
            (OTHER_ORGANIZATION_ID, "another organisation"),
            &["Agent"],
        ),
    ]
}

/// An OAuth client allowed the authorization-code grant.
#[derive(Debug, Clone)]
pub struct CodeClient {
    /// Client id.
    pub client_id: String,
    /// Secret of a confidential client (HTTP Basic at the token endpoint); `None`: public.
    pub client_secret: Option<String>,
    /// Registered redirect URIs (compared exactly).
    pub redirect_uris: Vec<String>,
}

/// Sign-in state: codes waiting to be redeemed and user tokens.
#[derive(Default)]
pub(super) struct SignIn {
    codes: HashMap<String, PendingCode>,
    tokens: HashMap<String, (String, Instant)>,
    codes_issued: u64,
    codes_redeemed: u64,
}

struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    agent_id: String,
    expires_at: Instant,
}

impl PlatformState {
    /// Codes issued by the sign-in page so far.
    pub fn codes_issued(&self) -> u64 {
        self.lock().sign_in.codes_issued
    }

    /// Codes exchanged for a token so far.
    pub fn codes_redeemed(&self) -> u64 {
        self.lock().sign_in.codes_redeemed
    }

    /// Issues a code for `agent_id` as the sign-in page would (tests that skip the page).
    pub fn issue_code(&self, client_id: &str, redirect_uri: &str, challenge: &str, agent_id: &str) -> String {
        let code = random_token();
        let mut inner = self.lock();
        inner.sign_in.codes_issued += 1;
        inner.sign_in.codes.insert(
            code.clone(),
            PendingCode {
                client_id: client_id.into(),
                redirect_uri: redirect_uri.into(),
                challenge: challenge.into(),
                agent_id: agent_id.into(),
                expires_at: Instant::now() + CODE_LIFETIME,
            },
        );
        code
    }
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The S256 challenge of `verifier`.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

fn page(status: StatusCode, body: &str) -> Response {
    (status, Html(format!("<!doctype html><meta charset=utf-8><title>Sign in</title><body>{body}</body>")))
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Checks an authorize request; the error page when the client or redirect URI is wrong (never a
/// redirect to an unregistered URI).
fn check_authorize(state: &PlatformState, q: &HashMap<String, String>) -> Result<(), &'static str> {
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let inner = state.lock();
    let client = inner.config.code_clients.iter().find(|c| c.client_id == get("client_id"));
    let Some(client) = client else {
        return Err("unknown client_id");
    };
    if !client.redirect_uris.iter().any(|uri| uri == get("redirect_uri")) {
        return Err("redirect_uri is not registered");
    }
    if get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").len() != 43
    {
        return Err("a code request with an S256 challenge is required");
    }
    Ok(())
}

const CARRIED: [&str; 6] =
    ["response_type", "client_id", "redirect_uri", "code_challenge", "code_challenge_method", "state"];

/// `GET /oauth/authorize`: the sign-in page with one button per demo agent.
pub(super) async fn authorize_page(
    State(state): State<PlatformState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(problem) = check_authorize(&state, &q) {
        return page(StatusCode::BAD_REQUEST, &format!("<p id=error>{problem}</p>"));
    }
    let hidden: String = CARRIED
        .iter()
        .map(|k| {
            let value = escape(q.get(*k).map(String::as_str).unwrap_or_default());
            format!("<input type=hidden name={k} value=\"{value}\">")
        })
        .collect();
    let buttons: String = state
        .lock()
        .config
        .agents
        .iter()
        .map(|a| {
            format!(
                "<button type=submit name=user value=\"{}\">{} ({})</button><br>",
                escape(&a.id),
                escape(&a.name),
                escape(&a.organization_name)
            )
        })
        .collect();
    page(
        StatusCode::OK,
        &format!(
            "<h1>Genesys Cloud sign-in (emulator)</h1><form method=post action=/oauth/authorize>{hidden}{buttons}</form>"
        ),
    )
}

/// `POST /oauth/authorize`: the chosen agent; redirects to `redirect_uri` with a code.
pub(super) async fn authorize_submit(State(state): State<PlatformState>, body: Bytes) -> Response {
    let q = form(&body);
    if let Err(problem) = check_authorize(&state, &q) {
        return page(StatusCode::BAD_REQUEST, &format!("<p id=error>{problem}</p>"));
    }
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let user = get("user");
    if !state.lock().config.agents.iter().any(|a| a.id == user) {
        return page(StatusCode::BAD_REQUEST, "<p id=error>unknown user</p>");
    }
    let redirect_uri = get("redirect_uri");
    let code = state.issue_code(&get("client_id"), &redirect_uri, &get("code_challenge"), &user);
    let mut target = url::Url::parse(&redirect_uri).expect("registered redirect URIs are URLs");
    target.query_pairs_mut().append_pair("code", &code).append_pair("state", &get("state"));
    Redirect::to(target.as_str()).into_response()
}

fn grant_error(description: &str) -> Response {
    let body =
        json!({"error": "invalid_grant", "description": description, "error_description": description});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// `grant_type=authorization_code` at `POST /oauth/token`.
pub(super) fn exchange(state: &PlatformState, basic: Option<(String, String)>, body: &[u8]) -> Response {
    let q = form(body);
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let mut inner = state.lock();
    // Any attempt uses the code up.
    let Some(pending) = inner.sign_in.codes.remove(&get("code")) else {
        return grant_error("unknown or used authorization code");
    };
    let client_id = basic.as_ref().map_or_else(|| get("client_id"), |(id, _)| id.clone());
    let Some(client) = inner.config.code_clients.iter().find(|c| c.client_id == client_id) else {
        let description = "client not found";
        let body =
            json!({"error": "invalid_client", "description": description, "error_description": description});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    };
    if let Some(secret) = &client.client_secret
        && basic.as_ref().is_none_or(|(_, given)| given != secret)
    {
        let description = "client authentication failed";
        let body =
            json!({"error": "invalid_client", "description": description, "error_description": description});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    if pending.client_id != client_id {
        return grant_error("the code was issued to another client");
    }
    if pending.redirect_uri != get("redirect_uri") {
        return grant_error("redirect_uri does not match the authorization request");
    }
    if Instant::now() >= pending.expires_at {
        return grant_error("authorization code expired");
    }
    let verifier = get("code_verifier");
    let verifier_ok = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !verifier_ok || s256(&verifier) != pending.challenge {
        return grant_error("PKCE verification failed");
    }
    let lifetime = inner.config.token_lifetime;
    let token = random_token();
    inner.sign_in.codes_redeemed += 1;
    inner.sign_in.tokens.insert(token.clone(), (pending.agent_id, Instant::now() + lifetime));
    Json(json!({"access_token": token, "token_type": "bearer", "expires_in": lifetime.as_secs().max(1)}))
        .into_response()
}

/// The demo agent a user token belongs to.
fn agent(state: &PlatformState, headers: &HeaderMap) -> Result<DemoAgent, Box<Response>> {
    let bearer = super::api::bearer_token(headers);
    let mut inner = state.lock();
    inner.api_requests += 1;
    let found = bearer
        .and_then(|b| inner.sign_in.tokens.get(&b).cloned())
        .filter(|(_, expires)| Instant::now() < *expires)
        .and_then(|(id, _)| inner.config.agents.iter().find(|a| a.id == id).cloned());
    found.ok_or_else(|| {
        Box::new(error_body(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
            Vec::new(),
        ))
    })
}

/// `GET /api/v2/tokens/me`.
pub(super) async fn tokens_me(State(state): State<PlatformState>, headers: HeaderMap) -> Response {
    match agent(&state, &headers) {
        Ok(agent) => {
            let org = json!({"id": agent.organization_id, "name": agent.organization_name});
            Json(json!({"organization": org, "homeOrganization": org, "authorizedScope": []})).into_response()
        }
        Err(response) => *response,
    }
}

/// `GET /api/v2/users/me` (`expand=authorization` adds the roles).
pub(super) async fn users_me(
    State(state): State<PlatformState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match agent(&state, &headers) {
        Ok(agent) => {
            let mut body = json!({
                "id": agent.id, "name": agent.name, "email": agent.email,
                "division": {"id": agent.division_id, "name": "Home"},
            });
            if q.get("expand").is_some_and(|e| e.split(',').any(|x| x == "authorization")) {
                let roles: Vec<_> = agent.roles.iter().map(|r| json!({"id": r, "name": r})).collect();
                body["authorization"] = json!({"roles": roles});
            }
            Json(body).into_response()
        }
        Err(response) => *response,
    }
}
