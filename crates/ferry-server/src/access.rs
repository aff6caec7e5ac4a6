//! The access log and the HTTP metrics: tower-http's `TraceLayer` on every route writes one line
//! per request (target `ferry::access`: method, route, status, bytes in and out, duration, request
//! id) and counts it in [`crate::metrics::Metrics::request`].
//!
//! The route is the matched path (`/v1/files/{id}`), never the raw URL, so neither a link's
//! signature nor an unbounded set of label values reaches the logs or the metrics. Request body
//! bytes are counted as the handler reads them; response bytes are the declared length.

use crate::request_id::ReqId;
use crate::state::AppState;
use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower_http::trace::TraceLayer;
use tracing::Span;

/// What the access line says about a request, handed from the inner middleware to the trace
/// layer's response hook in the response's extensions.
#[derive(Debug, Clone)]
struct Observed {
    method: String,
    route: String,
    request_id: String,
    bytes_in: Arc<AtomicU64>,
}

/// Wraps every route of `router` with the access log and the HTTP metrics of `state`.
pub fn layer(router: Router, state: &AppState) -> Router {
    let state = state.clone();
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            tracing::info_span!("http", method = %request.method(), route = route_of(request))
        })
        .on_request(())
        .on_response(move |response: &Response, took: Duration, _span: &Span| {
            log_and_count(&state, response, took);
        })
        .on_failure(());
    router.layer(axum::middleware::from_fn(observe)).layer(trace)
}

/// The matched route of `request`, or `unmatched` (for the fallback's 404s).
fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned())
}

/// Counts the request body's bytes as they are read and tags the response with what the access
/// line needs.
async fn observe(request: Request, next: Next) -> Response {
    let bytes_in = Arc::new(AtomicU64::new(0));
    let observed = Observed {
        method: request.method().to_string(),
        route: route_of(&request),
        request_id: ReqId::of(request.extensions()).0,
        bytes_in: bytes_in.clone(),
    };
    let request = request.map(|body| {
        Body::new(body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        }))
    });
    let mut response = next.run(request).await;
    response.extensions_mut().insert(observed);
    response
}

fn log_and_count(state: &AppState, response: &Response, took: Duration) {
    let Some(observed) = response.extensions().get::<Observed>() else { return };
    let status = response.status().as_u16();
    let bytes_in = observed.bytes_in.load(Ordering::Relaxed);
    let bytes_out = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .or_else(|| response.body().size_hint().exact())
        .unwrap_or(0);
    tracing::info!(
        target: "ferry::access",
        method = %observed.method,
        route = %observed.route,
        status,
        bytes_in,
        bytes_out,
        duration_ms = took.as_millis() as u64,
        request_id = %observed.request_id,
        "request"
    );
    state.metrics.request(&observed.route, &observed.method, status, took, bytes_in, bytes_out);
}
