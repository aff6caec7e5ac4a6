//! `GET /v1/files/{id}`: a signed link → `302` to a short-lived presigned S3 GET, once the
//! deployment's link access allows it.
//!
//! The link is checked first (signature, key id, expiry: `403 invalid_link` otherwise). Then the
//! deployment the file belongs to (from its id) decides, as configured *now*: `bearer` serves
//! whoever holds the link; `agents` serves only a request carrying an agent session for that
//! deployment and otherwise starts a Genesys sign-in ([`crate::agents`]). A fetch link
//! (`…&access=fetch`, signed over `fetch:{id}`) is the bearer URL handed to Genesys for an Open
//! Messaging attachment, which Genesys fetches without signing in; it lives
//! `links.fetch_link_secs`. Every request is audited ([`crate::agents::Audit`]).

use crate::agents::{self, Audit, LinkAccess};
use crate::error::{AppError, ErrorCode};
use crate::links::{self, LinkError};
use crate::request_id::ReqId;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use std::collections::HashMap;
use std::time::Duration;

/// How long the presigned S3 GET a download redirects to is valid.
const PRESIGNED_SECS: u64 = 300;

/// The prefix of the id a fetch link's signature covers.
const FETCH: &str = "fetch:";

/// `GET /v1/files/{id}`.
pub async fn download(
    State(state): State<AppState>,
    ReqId(request_id): ReqId,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut audit = Audit { file_id: id.clone(), access: "bearer", outcome: "served", ..Audit::default() };
    let answer = answer(&state, &id, &query, &headers, &mut audit).await;
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            audit.outcome = error.code().as_str();
            error.with_request_id(&request_id).into_response()
        }
    };
    audit.record(&state);
    response
}

async fn answer(
    state: &AppState,
    id: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    audit: &mut Audit,
) -> Result<Response, AppError> {
    let forbidden = |message: &str| AppError::new(ErrorCode::InvalidLink, message);
    let get = |name: &str| query.get(name).map(String::as_str);
    let fetch = match get("access") {
        None => false,
        Some("fetch") => true,
        Some(_) => return Err(forbidden("this link is not valid")),
    };
    let signed_id = if fetch { format!("{FETCH}{id}") } else { id.to_owned() };
    match state.links.verify_with_kid(
        &signed_id,
        get("expires"),
        get("kid"),
        get("signature"),
        state.now_unix(),
    ) {
        Ok(()) => {}
        Err(LinkError::Expired) => return Err(forbidden("this link has expired")),
        Err(LinkError::Malformed | LinkError::BadSignature) => {
            return Err(forbidden("this link is not valid"));
        }
    }
    let tail = links::key_tail(id).ok_or_else(|| forbidden("this link is not valid"))?;
    let deployment_id = tail.split('/').next().unwrap_or_default();
    let deployment = deployment_of(state, &tail);
    if deployment.is_some() {
        deployment_id.clone_into(&mut audit.deployment);
    }
    let access = deployment.map_or(LinkAccess::Bearer, |d| d.links.access);
    if fetch {
        audit.access = "fetch";
    } else if access == LinkAccess::Agents {
        audit.access = "agents";
        let deployment = deployment.expect("agents access comes from a configured deployment");
        match agents::session(state, deployment_id, &deployment.links, headers) {
            Some((user, organization)) => {
                audit.user_id = Some(user);
                audit.organization = Some(organization);
            }
            None => {
                audit.outcome = "sign_in_required";
                // Back to this very link after sign-in, rebuilt from the values just verified.
                let query = links::link_query(
                    get("expires").unwrap_or_default(),
                    get("kid"),
                    get("signature").unwrap_or_default(),
                );
                let target = format!("/v1/files/{id}?{query}");
                return agents::start_sign_in(state, deployment_id, deployment, target);
            }
        }
    }
    let key = format!("{}{tail}", state.config.s3.prefix);
    let url = state.uploader.presign_get(&key, Duration::from_secs(PRESIGNED_SECS), None).await?;
    Ok((StatusCode::FOUND, [(header::LOCATION, url), (header::CACHE_CONTROL, "no-store".into())], ())
        .into_response())
}

/// The lifetime of a new link to `key` (an object key): the deployment's `agents_link_ttl_secs`
/// when its links are for agents, else `link_ttl_secs`.
pub fn link_ttl_secs(state: &AppState, key: &str) -> u64 {
    let tail = key.strip_prefix(&state.config.s3.prefix).unwrap_or(key);
    match deployment_of(state, tail) {
        Some(d) if d.links.access == LinkAccess::Agents => d.links.agents_link_ttl_secs,
        _ => state.config.link_ttl_secs,
    }
}

/// The URL handed to Genesys for an Open Messaging attachment of `file_id` in `deployment`: for a
/// deployment whose links are for agents, a fetch link (no sign-in, `fetch_link_secs`); else the
/// ordinary link.
pub fn fetch_link(state: &AppState, file_id: &str, ordinary: String) -> String {
    let tail = links::key_tail(file_id);
    let deployment = tail.as_deref().and_then(|tail| deployment_of(state, tail));
    let Some(deployment) = deployment.filter(|d| d.links.access == LinkAccess::Agents) else {
        return ordinary;
    };
    let expires = state.now_unix() + deployment.links.fetch_link_secs;
    let query = state.links.query(&format!("{FETCH}{file_id}"), expires);
    let base = state.config.public_url.trim_end_matches('/');
    format!("{base}/v1/files/{file_id}?{query}&access=fetch")
}

/// The configured deployment a key tail (`<deployment>/…`) belongs to.
fn deployment_of<'a>(state: &'a AppState, tail: &str) -> Option<&'a crate::config::Deployment> {
    tail.split('/').next().and_then(|d| state.config.deployments.get(d))
}
