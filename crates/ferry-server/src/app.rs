//! The HTTP surface: `fn app(state) -> Router`, so tests drive it with `oneshot` and over real
//! sockets alike.

use crate::request_id;
use crate::state::AppState;
use crate::{access, admin};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use http::{HeaderName, HeaderValue, Method, header};
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
        .route("/v1/files/{id}", get(crate::download::download))
        .route("/v1/agents/callback", get(crate::agents::callback))
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
