//! Request ids on every route, by tower-http's request-id layers: a client's `X-Request-Id` is kept
//! when it is a plain token (letters, digits, `-`, at most 64), otherwise ferry makes a UUID; the
//! id is echoed on every answer, and handlers read it with [`ReqId`] for logs and error bodies.

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use http::request::Parts;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};

const HEADER: &str = "x-request-id";

/// Wraps `router` so that every request has an id and every answer carries it.
pub fn layer(router: Router) -> Router {
    router
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unusable_id))
}

/// Whether a client's id is used as it is (else ferry makes its own).
pub fn usable(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Removes an `X-Request-Id` that is not a plain token, so the id layer makes a fresh one (a
/// client cannot put arbitrary text into ferry's logs).
async fn drop_unusable_id(mut request: Request) -> Request {
    let keep = request.headers().get(HEADER).and_then(|v| v.to_str().ok()).is_none_or(usable);
    if !keep {
        request.headers_mut().remove(HEADER);
    }
    request
}

/// The request's id, as the id layer set it.
#[derive(Debug, Clone)]
pub struct ReqId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ReqId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(&parts.extensions))
    }
}

impl ReqId {
    /// The id stored in `extensions` (a fresh UUID if the layer did not run, as in a router
    /// built without [`layer`]).
    pub fn of(extensions: &http::Extensions) -> Self {
        let id = extensions.get::<RequestId>().and_then(|id| id.header_value().to_str().ok());
        Self(id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use super::usable;

    #[test]
    fn only_plain_tokens_are_kept() {
        assert!(usable("abc-123"));
        assert!(usable(&"a".repeat(64)));
        assert!(!usable(&"a".repeat(65)));
        assert!(!usable(""));
        assert!(!usable("has space"));
        assert!(!usable("semi;colon"));
    }
}
