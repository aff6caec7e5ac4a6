//! The one place library errors become HTTP: [`AppError`] carries a stable code, a status and a
//! safe message, and renders `{"error":{"code","message","requestId"}}`. 4xx messages say what was
//! wrong with the request; 5xx messages say little, and the cause goes to the log.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct AppError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human message, safe to show.
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
    /// Filled in by the handler before rendering.
    pub request_id: String,
}

impl AppError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None, request_id: String::new() }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Adds a `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// Sets the request id shown in the body.
    pub fn with_request_id(mut self, id: &str) -> Self {
        self.request_id = id.to_owned();
        self
    }

    /// Storage failed (the cause is logged, not shown).
    pub fn storage(error: &ferry_s3::Error) -> Self {
        tracing::error!(%error, kind = error.kind(), "storage failed");
        let retry = error.is_retryable();
        let e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the file could not be stored; nothing was kept",
        );
        if retry { e.retry_after(5) } else { e }
    }

    /// Genesys failed (the cause is logged, not shown).
    pub fn genesys(error: &ferry_genesys::Error) -> Self {
        tracing::error!(%error, "Genesys failed");
        Self::new(
            StatusCode::BAD_GATEWAY,
            "genesys_unavailable",
            "Genesys could not be reached or refused the delivery; nothing was kept",
        )
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "requestId": self.request_id}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
