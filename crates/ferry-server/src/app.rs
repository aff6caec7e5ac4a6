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
    if state.config.tus.enabled {
        router = router.merge(crate::tus::routes());
    }
    let mut router = router.layer(DefaultBodyLimit::disable()).with_state(state);
    if let Some(dev) = dev {
        router = router.merge(dev);
    }
    let tus_options = axum::middleware::from_fn_with_state(observed.clone(), crate::tus::options_first);
    // tus's OPTIONS (no Access-Control-Request-Method) is answered before CORS takes it for a preflight.
    request_id::layer(access::layer(router, &observed)).layer(cors).layer(tus_options)
}

fn cors(state: &AppState) -> CorsLayer {
    let origins: Vec<HeaderValue> = state.config.cors_origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::OPTIONS,
            Method::PATCH,
            Method::HEAD,
            Method::DELETE,
        ])
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
            // tus
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-defer-length"),
            HeaderName::from_static("upload-metadata"),
            HeaderName::from_static("upload-checksum"),
            HeaderName::from_static("upload-concat"),
            HeaderName::from_static("x-http-method-override"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            // tus
            header::LOCATION,
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-defer-length"),
            HeaderName::from_static("upload-metadata"),
            HeaderName::from_static("upload-expires"),
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("tus-version"),
            HeaderName::from_static("tus-extension"),
            HeaderName::from_static("tus-max-size"),
            HeaderName::from_static("tus-checksum-algorithm"),
        ])
        .max_age(Duration::from_secs(600))
}
