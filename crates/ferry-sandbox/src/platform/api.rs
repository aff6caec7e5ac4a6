//! The platform API's common ground: the bearer-token check with the rate limit and scripted
//! [`ApiFault`]s, the Genesys `ErrorBody`, and `GET /api/v2/organizations/me`.

use super::{ApiFault, PlatformState};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

/// The Genesys platform `ErrorBody`.
pub(super) fn error_body(status: StatusCode, code: &str, message: &str, details: Vec<Value>) -> Response {
    let body = json!({
        "message": message,
        "code": code,
        "status": status.as_u16(),
        "contextId": uuid::Uuid::new_v4().to_string(),
        "details": details,
        "errors": [],
    });
    (status, Json(body)).into_response()
}

fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut response = error_body(
        StatusCode::TOO_MANY_REQUESTS,
        "too.many.requests.retry.after",
        &format!("Rate limit exceeded the maximum. Retry the request in [{retry_after_secs}] seconds"),
        Vec::new(),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// The token of an `Authorization: Bearer …` header (the scheme in any case), if there is one.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
}

/// Checks the bearer token and serves scripted API faults; `Ok(client id)` or the error response.
pub(super) fn authenticate(state: &PlatformState, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let (client_id, fault) = {
        let mut inner = state.lock();
        inner.api_requests += 1;
        let allowed = inner.config.rate_limit_allowed;
        if inner.window_count > allowed {
            let reset = inner
                .window_start
                .map(|start| inner.config.rate_limit_window.saturating_sub(start.elapsed()))
                .unwrap_or_default();
            return Err(Box::new(too_many_requests(reset.as_secs().max(1))));
        }
        let bearer = bearer_token(headers);
        let Some(bearer) = bearer else {
            return Err(Box::new(error_body(
                StatusCode::UNAUTHORIZED,
                "authentication.required",
                "No authentication bearer token specified in authorization header.",
                Vec::new(),
            )));
        };
        let now = Instant::now();
        let client_id = match inner.tokens.get(&bearer) {
            Some(issued) if now < issued.expires_at => issued.client_id.clone(),
            _ => {
                return Err(Box::new(error_body(
                    StatusCode::UNAUTHORIZED,
                    "bad.credentials",
                    "Invalid login credentials.",
                    Vec::new(),
                )));
            }
        };
        (client_id, inner.api_faults.pop_front())
    };
    match fault {
        None => Ok(client_id),
        Some(ApiFault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err(Box::new(error_body(
                status,
                "scripted.failure",
                "The sandbox was told to fail this request.",
                Vec::new(),
            )))
        }
        Some(ApiFault::RateLimited { retry_after_secs }) => {
            Err(Box::new(too_many_requests(retry_after_secs)))
        }
        Some(ApiFault::Unauthorized) => Err(Box::new(error_body(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
            Vec::new(),
        ))),
    }
}

pub(super) async fn organization(State(state): State<PlatformState>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers) {
        Ok(client_id) => {
            Json(json!({"id": "sandbox-org", "name": "ferry sandbox", "thirdPartyOrgName": client_id}))
                .into_response()
        }
        Err(response) => *response,
    }
}
