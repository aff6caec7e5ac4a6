//! `POST /oauth/token`: the client-credentials grant with HTTP Basic client authentication (the
//! authorization-code grant is handed to `agents`),
//! scripted [`TokenFault`]s served first, and the OAuth error bodies.

use super::{IssuedToken, PlatformState, TokenFault};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use tokio::time::Instant;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "description": description, "error_description": description})))
        .into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

pub(super) async fn token(State(state): State<PlatformState>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = {
        let mut inner = state.lock();
        inner.token_requests += 1;
        inner.token_faults.pop_front()
    };
    match fault {
        Some(TokenFault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return oauth_error(status, "server_error", "scripted failure");
        }
        Some(TokenFault::RateLimited { retry_after_secs }) => {
            let mut response =
                oauth_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "scripted rate limit");
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return response;
        }
        Some(TokenFault::MalformedJson) => {
            return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"access_token\": ")
                .into_response();
        }
        None => {}
    }
    let form = String::from_utf8_lossy(&body);
    let grant = form.split('&').filter_map(|pair| pair.split_once('=')).find(|(key, _)| *key == "grant_type");
    match grant {
        Some((_, "client_credentials")) => {}
        Some((_, "authorization_code")) => {
            return super::agents::exchange(&state, basic_credentials(&headers), &body);
        }
        Some(_) => {
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "unsupported grant");
        }
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    }
    let Some((client_id, secret)) = basic_credentials(&headers) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication is required");
    };
    let mut inner = state.lock();
    if !inner.config.clients.iter().any(|(id, s)| *id == client_id && *s == secret) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client", "client not found or secret mismatch");
    }
    let lifetime = inner.config.token_lifetime;
    let expires_in = lifetime.as_secs().max(1);
    let access_token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    inner.tokens_issued += 1;
    inner
        .tokens
        .insert(access_token.clone(), IssuedToken { client_id, expires_at: Instant::now() + lifetime });
    Json(json!({"access_token": access_token, "token_type": "bearer", "expires_in": expires_in}))
        .into_response()
}
