//! Talking to Genesys Cloud for a sign-in: the authorize URL the browser is sent to, then, at the
//! callback, the code exchange at `login.E/oauth/token` (with the PKCE verifier, and HTTP Basic
//! for a confidential client), `GET api.E/api/v2/tokens/me` (the organisation) and
//! `GET api.E/api/v2/users/me` (the user; `expand=authorization` for its roles when the
//! deployment requires roles). The access token is used for these calls only and then dropped.

use super::settings::LinkSettings;
use crate::config::Deployment;
use ferry_genesys::hosts::GenesysEndpoints;
use serde::Deserialize;
use std::time::Duration;

/// Where a deployment's agents sign in (`https://login.E`) and are looked up (`https://api.E`).
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    /// Login base URL, without a trailing slash.
    pub login: String,
    /// Platform REST base URL, without a trailing slash.
    pub api: String,
}

impl Endpoints {
    /// The deployment's endpoints: the overrides, else its environment's hosts.
    pub(crate) fn of(deployment: &Deployment) -> Option<Self> {
        let links = &deployment.links;
        let env = deployment.environment.as_deref().unwrap_or("mypurecloud.com");
        let hosts = GenesysEndpoints::for_host(env).ok();
        let pick = |given: &Option<String>, default: Option<String>| {
            given.clone().or(default).map(|url| url.trim_end_matches('/').to_owned())
        };
        Some(Self {
            login: pick(&links.login_url, hosts.as_ref().map(|h| h.login.to_string()))?,
            api: pick(&links.api_url, hosts.as_ref().map(|h| h.api.to_string()))?,
        })
    }

    /// The authorize URL for `state` and `challenge`.
    pub(crate) fn authorize(
        &self,
        settings: &LinkSettings,
        redirect_uri: &str,
        state: &str,
        challenge: &str,
    ) -> String {
        let mut url = url::Url::parse(&format!("{}/oauth/authorize", self.login)).expect("a login URL");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", state);
        url.into()
    }
}

/// The signed-in user, as Genesys describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Agent {
    /// User id.
    pub user_id: String,
    /// The token's organisation id.
    pub organization_id: String,
    /// Role names and ids (only when asked for).
    pub roles: Vec<String>,
    /// Division id, when Genesys said.
    pub division: Option<String>,
}

/// Why a sign-in could not be completed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SignInError {
    /// Genesys refused the code (used, expired, wrong verifier or redirect URI) or the client.
    #[error("Genesys refused the sign-in ({status} {error})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The OAuth `error`.
        error: String,
    },
    /// Genesys could not be reached or answered something unreadable.
    #[error("Genesys could not complete the sign-in: {0}")]
    Unavailable(String),
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[derive(Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct TokensMe {
    organization: Named,
}

#[derive(Deserialize)]
struct Named {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct UsersMe {
    id: String,
    #[serde(default)]
    division: Option<Named>,
    #[serde(default)]
    authorization: Option<Authorization>,
}

#[derive(Deserialize)]
struct Authorization {
    #[serde(default)]
    roles: Vec<Named>,
}

/// The HTTP client for sign-ins (short timeouts: a person is waiting).
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a reqwest client with timeouts builds")
}

fn unavailable(error: impl std::fmt::Display) -> SignInError {
    SignInError::Unavailable(error.to_string())
}

/// Exchanges `code` and looks the user up.
///
/// # Errors
/// [`SignInError`] when Genesys refuses the code or cannot be asked.
pub(crate) async fn sign_in(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    settings: &LinkSettings,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Agent, SignInError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
        ("client_id", settings.client_id.as_str()),
    ];
    let mut request = http.post(format!("{}/oauth/token", endpoints.login)).form(&form);
    if let Some(secret) = &settings.client_secret {
        request = request.basic_auth(&settings.client_id, Some(secret.expose()));
    }
    let answer = request.send().await.map_err(|e| unavailable(e.without_url()))?;
    let status = answer.status();
    if status.is_client_error() {
        let error = answer.json::<OAuthError>().await.map(|e| e.error).unwrap_or_default();
        return Err(SignInError::Refused { status: status.as_u16(), error });
    }
    if !status.is_success() {
        return Err(unavailable(format!("token endpoint answered {status}")));
    }
    let token = answer.json::<TokenAnswer>().await.map_err(|e| unavailable(e.without_url()))?.access_token;
    let me: TokensMe = get_json(http, &format!("{}/api/v2/tokens/me", endpoints.api), &token).await?;
    let expand = if settings.roles.is_empty() { "" } else { "?expand=authorization" };
    let user: UsersMe = get_json(http, &format!("{}/api/v2/users/me{expand}", endpoints.api), &token).await?;
    let roles = user
        .authorization
        .map(|a| a.roles.into_iter().flat_map(|r| [Some(r.id), r.name]).flatten().collect())
        .unwrap_or_default();
    Ok(Agent {
        user_id: user.id,
        organization_id: me.organization.id,
        roles,
        division: user.division.map(|d| d.id),
    })
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> Result<T, SignInError> {
    let answer = http.get(url).bearer_auth(token).send().await.map_err(|e| unavailable(e.without_url()))?;
    let status = answer.status();
    if !status.is_success() {
        return Err(unavailable(format!("{} answered {status}", url.rsplit("/api/").next().unwrap_or(url))));
    }
    answer.json().await.map_err(|e| unavailable(e.without_url()))
}
