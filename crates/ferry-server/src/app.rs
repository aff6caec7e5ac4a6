//! The HTTP surface: `fn app(state) -> Router`, so tests drive it with `oneshot` and over real
//! sockets alike.

use crate::error::{AppError, ErrorCode};
use crate::links::{self, LinkError};
use crate::request_id::{self, ReqId};
use crate::state::AppState;
use crate::{access, admin};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The OpenAPI description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../assets/openapi.json");

/// The router for `state`. `dev` adds `ferry dev`'s own routes (the demo page at `/` and the
/// emulator's conversations at `/dev/conversations`); production passes `None`. `/metrics` is
/// here only while no admin listener is configured (`ops.admin_listen`, see [`crate::admin`]).
pub fn app(state: AppState, dev: Option<Router>) -> Router {
    let mut router = Router::new()
        .route("/v1/uploads", post(crate::upload::upload))
        .route("/v1/files/{id}", get(download))
        .route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::ready))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }));
    if state.config.ops.admin_listen.is_none() {
        router = router.route("/metrics", get(admin::metrics));
    }
    let cors = cors(&state);
    let observed = state.clone();
    let mut router = router.layer(DefaultBodyLimit::disable()).with_state(state);
    if let Some(dev) = dev {
        router = router.merge(dev);
    }
    request_id::layer(access::layer(router, &observed)).layer(cors)
}

fn cors(state: &AppState) -> CorsLayer {
    let origins: Vec<HeaderValue> = state.config.cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            HeaderName::from_static("x-genesys-deployment-id"),
            HeaderName::from_static("x-file-name"),
            HeaderName::from_static("x-caption"),
            HeaderName::from_static("content-md5"),
            HeaderName::from_static("repr-digest"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600))
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    expires: Option<String>,
    kid: Option<String>,
    signature: Option<String>,
}

/// `GET /v1/files/{id}`: a signed link → 302 to a short-lived presigned S3 GET.
async fn download(
    State(state): State<AppState>,
    ReqId(request_id): ReqId,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let query = LinkQuery {
        expires: query.get("expires").cloned(),
        kid: query.get("kid").cloned(),
        signature: query.get("signature").cloned(),
    };
    match presigned(&state, &id, &query).await {
        Ok(url) => (StatusCode::FOUND, [(header::LOCATION, url)], ()).into_response(),
        Err(error) => error.with_request_id(&request_id).into_response(),
    }
}

async fn presigned(state: &AppState, id: &str, query: &LinkQuery) -> Result<String, AppError> {
    let forbidden = |message: &str| AppError::new(ErrorCode::InvalidLink, message);
    match state.links.verify_with_kid(
        id,
        query.expires.as_deref(),
        query.kid.as_deref(),
        query.signature.as_deref(),
        state.now_unix(),
    ) {
        Ok(()) => {}
        Err(LinkError::Expired) => return Err(forbidden("this link has expired")),
        Err(LinkError::Malformed | LinkError::BadSignature) => {
            return Err(forbidden("this link is not valid"));
        }
    }
    let tail = links::key_tail(id).ok_or_else(|| forbidden("this link is not valid"))?;
    let key = format!("{}{tail}", state.config.s3.prefix);
    Ok(state.uploader.presign_get(&key, Duration::from_secs(300), None).await?)
}
