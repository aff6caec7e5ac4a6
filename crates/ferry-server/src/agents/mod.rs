//! Links only a deployment's agents can open (`[deployments.<id>.links] access = "agents"`).
//!
//! A download link of such a deployment, opened without an agent session, answers `302` to
//! Genesys Cloud sign-in (authorization code with PKCE, `login.E/oauth/authorize`) and sets a
//! short-lived signed sign-in cookie holding the OAuth `state`, the deployment and the link that
//! started it. Genesys sends the browser back to `GET /v1/agents/callback?code&state`; ferry checks
//! the state against the cookie, exchanges the code with the PKCE verifier, asks
//! `GET /api/v2/tokens/me` for the organisation (and `users/me` for the user, its division and,
//! when the deployment requires roles, its roles), and only for the deployment's organisation sets
//! the agent-session cookie and redirects back to the link, which is then served.
//!
//! **Invariants.** The redirect after sign-in only ever goes to the link that started it (`/v1/files/…`
//! under `public_url`, from the signed cookie, never from the query). The PKCE verifier never leaves
//! ferry (`cookies`: derived from the state with a cookie key). Sign-in cookies live 10 minutes
//! and are used once; agent sessions (`ferry_agent_<deployment>`, `HttpOnly`, `SameSite=Lax`,
//! `Secure` under an `https` public URL) last `session_secs` and are bound to the deployment and
//! to its current organisation, client, roles and divisions: changing any of them signs everyone
//! out. Cookie keys are derived from the link keys and rotate with them. The Genesys access token
//! is used for the look-ups only, never stored or logged. Every download request is audited
//! (`audit`).

mod audit;
mod cookies;
#[cfg(feature = "dev")]
pub mod dev;
mod genesys;
mod pages;
mod settings;

pub use audit::Audit;
pub use cookies::CookieKeys;
pub use settings::{LinkAccess, LinkSettings};

use crate::config::{ConfigError, Deployment};
use crate::error::{AppError, ErrorCode};
use crate::request_id::ReqId;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;

/// Where Genesys sends the browser back after sign-in, under `public_url`.
pub const CALLBACK_PATH: &str = "/v1/agents/callback";
const SIGN_IN_COOKIE: &str = "ferry_signin";
const SIGN_IN_PATH: &str = "/v1/agents";
const SIGN_IN_SECS: u64 = 600;
const SESSION_PATH: &str = "/v1/files";

/// What sign-ins need at run time: the HTTP client, the cookie keys and the public URL.
#[derive(Debug)]
pub struct AgentGate {
    http: reqwest::Client,
    keys: CookieKeys,
    public_url: String,
    secure: bool,
}

impl AgentGate {
    /// The gate for `config`.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let public_url = config.public_url.trim_end_matches('/').to_owned();
        Self {
            http: genesys::http_client(),
            keys: CookieKeys::from_config(config),
            secure: public_url.starts_with("https://"),
            public_url,
        }
    }

    fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.public_url)
    }
}

/// Checks a deployment's link settings, and that its agents have somewhere to sign in.
///
/// # Errors
/// The first problem, naming the setting.
pub fn check_deployment(id: &str, deployment: &Deployment) -> Result<(), ConfigError> {
    deployment.links.check(id)?;
    if deployment.links.access == LinkAccess::Agents && genesys::Endpoints::of(deployment).is_none() {
        return Err(ConfigError {
            setting: format!("deployments.{id}.links.login_url"),
            problem: "no Genesys environment to sign in with: set environment, or login_url and api_url"
                .into(),
        });
    }
    Ok(())
}

/// An agent session, sealed in `ferry_agent_<deployment>`.
#[derive(Debug, Serialize, Deserialize)]
struct Session {
    /// Deployment.
    d: String,
    /// User id.
    u: String,
    /// Organisation id.
    o: String,
    /// The deployment's sign-in policy when it was checked ([`policy`]).
    p: String,
    /// Expiry, Unix seconds.
    exp: u64,
}

/// A sign-in in progress, sealed in `ferry_signin`.
#[derive(Debug, Serialize, Deserialize)]
struct SignIn {
    /// Deployment.
    d: String,
    /// OAuth state.
    s: String,
    /// The link to go back to: `/v1/files/…` with its query.
    t: String,
    /// Expiry, Unix seconds.
    exp: u64,
}

fn session_cookie(deployment: &str) -> String {
    format!("ferry_agent_{deployment}")
}

/// A digest of what a session was checked against: a change signs everyone out.
fn policy(settings: &LinkSettings) -> String {
    let mut hash = Sha256::new();
    for part in [&settings.client_id, &settings.organization_id] {
        hash.update(part.as_bytes());
        hash.update(b"\n");
    }
    for list in [&settings.roles, &settings.divisions] {
        hash.update(list.join("\u{1f}").as_bytes());
        hash.update(b"\n");
    }
    hex::encode(&hash.finalize()[..8])
}

/// The signed-in agent a request carries for `deployment`: `(user id, organisation id)`.
pub fn session(
    state: &AppState,
    deployment: &str,
    settings: &LinkSettings,
    headers: &HeaderMap,
) -> Option<(String, String)> {
    let sealed = cookies::read(headers, &session_cookie(deployment))?;
    let session = state.agents.keys.open::<Session>(&sealed)?.value;
    let valid = session.d == deployment
        && session.exp > state.now_unix()
        && session.o == settings.organization_id
        && session.p == policy(settings);
    valid.then_some((session.u, session.o))
}

/// `302` to Genesys sign-in for `deployment`, remembering `target` (a `/v1/files/…` path and query
/// ferry built from a verified link).
///
/// # Errors
/// `genesys_misconfigured` when the deployment has nowhere to sign in (refused at start-up).
pub fn start_sign_in(
    state: &AppState,
    deployment: &str,
    settings: &Deployment,
    target: String,
) -> Result<Response, AppError> {
    let endpoints = genesys::Endpoints::of(settings).ok_or_else(|| {
        AppError::new(ErrorCode::GenesysMisconfigured, "this deployment has no Genesys sign-in configured")
    })?;
    let gate = &state.agents;
    let oauth_state = cookies::new_state();
    let kid = gate.keys.signing_kid().to_owned();
    let verifier = gate.keys.verifier(&kid, &oauth_state).unwrap_or_default();
    let location = endpoints.authorize(
        &settings.links,
        &gate.redirect_uri(),
        &oauth_state,
        &cookies::challenge(&verifier),
    );
    let sign_in =
        SignIn { d: deployment.to_owned(), s: oauth_state, t: target, exp: state.now_unix() + SIGN_IN_SECS };
    let cookie =
        cookies::set(SIGN_IN_COOKIE, &gate.keys.seal(&sign_in), SIGN_IN_PATH, SIGN_IN_SECS, gate.secure);
    Ok(redirect(&location, &[cookie]))
}

fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::try_from(location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::try_from(cookie.as_str()) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The file id in a `/v1/files/{id}?…` target.
fn target_file_id(target: &str) -> &str {
    target.strip_prefix("/v1/files/").and_then(|rest| rest.split('?').next()).unwrap_or_default()
}

/// `GET /v1/agents/callback`: finishes a sign-in and goes back to the link that started it.
pub async fn callback(
    State(state): State<AppState>,
    ReqId(request_id): ReqId,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let gate = &state.agents;
    // The sign-in cookie is used once, whatever happens.
    let clear = cookies::set(SIGN_IN_COOKIE, "", SIGN_IN_PATH, 0, gate.secure);
    let fail = |code: ErrorCode, message: &str, audit: Option<Audit>| {
        if let Some(mut audit) = audit {
            audit.outcome = code.as_str();
            audit.record(&state);
        }
        let error = AppError::new(code, message);
        pages::error_page(&error, &request_id, std::slice::from_ref(&clear))
    };
    let opened = cookies::read(&headers, SIGN_IN_COOKIE).and_then(|sealed| gate.keys.open::<SignIn>(&sealed));
    let Some(cookies::Opened { kid, value: sign_in }) = opened.filter(|o| o.value.exp > state.now_unix())
    else {
        return fail(
            ErrorCode::SignInFailed,
            "This sign-in has expired or was not started in this browser.",
            None,
        );
    };
    let audit = Audit {
        file_id: target_file_id(&sign_in.t).to_owned(),
        deployment: sign_in.d.clone(),
        access: "agents",
        ..Audit::default()
    };
    // The state Genesys returns must be the one this browser's cookie holds.
    if query.get("state").map(String::as_bytes) != Some(sign_in.s.as_bytes()) {
        return fail(
            ErrorCode::SignInFailed,
            "The sign-in answer does not belong to this sign-in.",
            Some(audit),
        );
    }
    let (Some(code), None) = (query.get("code"), query.get("error")) else {
        return fail(ErrorCode::SignInFailed, "Genesys Cloud sign-in did not complete.", Some(audit));
    };
    let Some(deployment) =
        state.config.deployments.get(&sign_in.d).filter(|d| d.links.access == LinkAccess::Agents)
    else {
        return fail(
            ErrorCode::SignInFailed,
            "This deployment no longer asks agents to sign in.",
            Some(audit),
        );
    };
    let settings = &deployment.links;
    let (Some(endpoints), Some(verifier)) =
        (genesys::Endpoints::of(deployment), gate.keys.verifier(&kid, &sign_in.s))
    else {
        return fail(ErrorCode::SignInFailed, "This sign-in can no longer be completed.", Some(audit));
    };
    let agent =
        match genesys::sign_in(&gate.http, &endpoints, settings, code, &gate.redirect_uri(), &verifier).await
        {
            Ok(agent) => agent,
            Err(error @ genesys::SignInError::Refused { .. }) => {
                tracing::info!(%error, deployment = sign_in.d, "agent sign-in refused");
                return fail(
                    ErrorCode::SignInFailed,
                    "Genesys Cloud did not accept this sign-in.",
                    Some(audit),
                );
            }
            Err(error) => {
                tracing::warn!(%error, deployment = sign_in.d, "agent sign-in could not be completed");
                return fail(
                    ErrorCode::SignInUnavailable,
                    "Genesys Cloud could not be reached to sign you in.",
                    Some(audit),
                );
            }
        };
    let audit = Audit {
        user_id: Some(agent.user_id.clone()),
        organization: Some(agent.organization_id.clone()),
        ..audit
    };
    if agent.organization_id != settings.organization_id {
        return fail(
            ErrorCode::WrongOrganization,
            "You are signed in to a Genesys Cloud organisation other than the one this file was sent to.",
            Some(audit),
        );
    }
    let role_ok = settings.roles.is_empty() || agent.roles.iter().any(|r| settings.roles.contains(r));
    let division_ok = settings.divisions.is_empty()
        || agent.division.as_ref().is_some_and(|d| settings.divisions.contains(d));
    if !role_ok || !division_ok {
        return fail(
            ErrorCode::AgentNotAllowed,
            "Your account may not open files of this deployment.",
            Some(audit),
        );
    }
    let session = Session {
        d: sign_in.d.clone(),
        u: agent.user_id.clone(),
        o: agent.organization_id.clone(),
        p: policy(settings),
        exp: state.now_unix() + settings.session_secs,
    };
    let session = cookies::set(
        &session_cookie(&sign_in.d),
        &gate.keys.seal(&session),
        SESSION_PATH,
        settings.session_secs,
        gate.secure,
    );
    // Only ever back to the link that started the sign-in, under ferry's own public URL.
    if !sign_in.t.starts_with("/v1/files/") || sign_in.t.contains("//") {
        return fail(ErrorCode::SignInFailed, "This sign-in has no link to go back to.", Some(audit));
    }
    tracing::info!(target: "ferry::audit", event = "sign_in", deployment = sign_in.d, user_id = agent.user_id, organization = agent.organization_id, "agent signed in");
    redirect(&format!("{}{}", gate.public_url, sign_in.t), &[clear.clone(), session])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_changes_with_every_setting_that_gates_a_session() {
        let base = LinkSettings {
            access: LinkAccess::Agents,
            client_id: "c".into(),
            organization_id: "o".into(),
            ..LinkSettings::default()
        };
        let variants = [
            LinkSettings { organization_id: "o2".into(), ..base.clone() },
            LinkSettings { client_id: "c2".into(), ..base.clone() },
            LinkSettings { roles: vec!["Supervisor".into()], ..base.clone() },
            LinkSettings { divisions: vec!["d".into()], ..base.clone() },
        ];
        for variant in &variants {
            assert_ne!(policy(variant), policy(&base));
        }
        assert_eq!(policy(&base), policy(&LinkSettings { session_secs: 60, ..base.clone() }));
        assert_eq!(target_file_id("/v1/files/abc?expires=1"), "abc");
        assert_eq!(target_file_id("https://evil.example/"), "");
    }
}
