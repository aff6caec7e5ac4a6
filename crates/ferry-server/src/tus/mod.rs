//! tus 1.0.0 resumable uploads at `/v1/tus/` (core protocol and the extensions creation,
//! creation-with-upload, creation-defer-length, expiration, termination and checksum), on
//! ferry-s3's [`ResumableStore`]: every bit of an upload's state is in the bucket, so any `ferry
//! serve` process can serve any of its requests.
//!
//! - [`create`]: `POST /v1/tus/` authorises as `POST /v1/uploads` does (a guest session or a
//!   ticket, which the creation spends), checks the declared name, type and size, creates the
//!   state object and answers the upload URL: `/v1/tus/<uuid>.<signature>`, an unguessable
//!   capability signed with the link key.
//! - [`patch`]: `PATCH` appends under the upload's lease (another request meanwhile: 423), the
//!   bytes sniffed at offset 0 and checked against `Upload-Checksum` before anything is committed
//!   (460); a cut connection commits what arrived.
//! - [`finish`]: completion, the hook before delivery ([`finish::before_delivery`]), delivery
//!   exactly once, `HEAD`, `GET` (the attachment reference once delivered), `DELETE`.
//!
//! In ticket mode later requests need only the URL (a resent ticket must be the one that created
//! the upload); in guest mode every request carries the guest session, checked against the
//! SHA-256 of the creator's token (the token itself is never written to the bucket).

mod create;
mod finish;
mod patch;

use crate::error::{AppError, ErrorCode};
use crate::state::AppState;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, head, options, patch, post};
use ferry_s3::resumable::{ResumableError, ResumableStore};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::time::{Duration, SystemTime};

/// The tus version ferry speaks.
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions ferry implements.
pub const TUS_EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,expiration,termination,checksum";
/// The `Upload-Checksum` algorithms ferry accepts.
pub const TUS_CHECKSUMS: &str = "md5,sha1,sha256,crc32";

/// tus settings (`[tus]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TusSettings {
    /// Serve `/v1/tus/` (on by default).
    pub enabled: bool,
    /// How long a request holds an upload without renewing its lease, in seconds: another request
    /// gets 423 meanwhile, and may take the upload over after it (a request renews it by a third
    /// of this while bytes flow). Give tus clients retry delays longer than this.
    pub lease_secs: u64,
    /// How long an unfinished upload is kept after its creation, in seconds (`Upload-Expires`);
    /// then the reaper aborts it and removes its parts, tail and state.
    pub expiry_secs: u64,
    /// How long a request that delivers a finished upload holds it, in seconds (a delivery is not
    /// renewed while it waits for Genesys). A process that dies while delivering leaves the upload
    /// to the next request after this; that request does not deliver again.
    pub delivery_lease_secs: u64,
}

impl Default for TusSettings {
    fn default() -> Self {
        Self { enabled: true, lease_secs: 15, expiry_secs: 24 * 3600, delivery_lease_secs: 300 }
    }
}

/// 460 Checksum Mismatch (tus checksum extension), for [`ErrorCode`]'s table.
pub trait TusStatus {
    /// 460.
    const TUS_CHECKSUM_MISMATCH: StatusCode;
}

impl TusStatus for StatusCode {
    const TUS_CHECKSUM_MISMATCH: StatusCode = match StatusCode::from_u16(460) {
        Ok(status) => status,
        Err(_) => StatusCode::BAD_REQUEST,
    };
}

/// The routes, for [`crate::app::app`].
pub fn routes() -> Router<AppState> {
    // One method per `.route` call: `tests/openapi.rs` reads them.
    Router::new()
        .route("/v1/tus/", post(create::create))
        .route("/v1/tus/", options(options_route))
        .route("/v1/tus/{id}", get(finish::get_reference))
        .route("/v1/tus/{id}", head(finish::head))
        .route("/v1/tus/{id}", patch(patch::patch))
        .route("/v1/tus/{id}", delete(finish::delete))
        .route("/v1/tus/{id}", options(options_route))
}

/// `OPTIONS` on a route (what [`options_first`] does not answer first: a CORS preflight).
async fn options_route(state: axum::extract::State<AppState>) -> Response {
    tus_options(state).await
}

/// `OPTIONS`: what the server supports.
async fn tus_options(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    tus_headers(headers);
    headers.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    headers.insert("tus-extension", HeaderValue::from_static(TUS_EXTENSIONS));
    headers.insert("tus-checksum-algorithm", HeaderValue::from_static(TUS_CHECKSUMS));
    headers.insert("tus-max-size", HeaderValue::from(state.config.limits.max_file_size));
    response
}

/// Answers tus's own `OPTIONS` (one without `Access-Control-Request-Method`, which CORS would take
/// for a preflight) on `/v1/tus…`; everything else goes on.
pub async fn options_first(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let is_tus_options = request.method() == http::Method::OPTIONS
        && request.uri().path().starts_with("/v1/tus")
        && !request.headers().contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        && state.config.tus.enabled;
    if is_tus_options { tus_options(axum::extract::State(state)).await } else { next.run(request).await }
}

/// `Tus-Resumable` and `Cache-Control: no-store`, on every answer.
pub(crate) fn tus_headers(headers: &mut HeaderMap) {
    headers.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An error answer with the tus headers (and `Tus-Version` for a version ferry does not speak).
pub(crate) fn error_response(error: AppError, request_id: &str) -> Response {
    let version = error.code() == ErrorCode::TusVersionUnsupported;
    let mut response = error.with_request_id(request_id).into_response();
    tus_headers(response.headers_mut());
    if version {
        response.headers_mut().insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    }
    response
}

/// Every request but `OPTIONS` names the version: `Tus-Resumable: 1.0.0` (412 otherwise).
pub(crate) fn check_version(headers: &HeaderMap) -> Result<(), AppError> {
    match headers.get("tus-resumable").map(HeaderValue::as_bytes) {
        Some(b"1.0.0") => Ok(()),
        _ => Err(AppError::new(ErrorCode::TusVersionUnsupported, "send Tus-Resumable: 1.0.0")),
    }
}

/// The store of tus uploads: state objects under `<prefix>.tus/` (a dot never starts a
/// deployment id, so no object key is under it).
pub(crate) fn store(state: &AppState) -> ResumableStore {
    ResumableStore::new(state.uploader.clone(), format!("{}.tus/", state.config.s3.prefix))
}

/// The lease time.
pub(crate) fn lease(state: &AppState) -> Duration {
    Duration::from_secs(state.config.tus.lease_secs.max(1))
}

/// Who created the upload, as the bucket remembers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub(crate) enum Binding {
    /// A ticket: its claims (for delivery and the reference) and the SHA-256 of the ticket text.
    Ticket { claims: crate::tickets::Claims, ticket_sha256: String },
    /// A guest session: the SHA-256 of its token, never the token.
    Guest { token_sha256: String },
}

/// Where delivery is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum Delivery {
    /// Not begun.
    Pending,
    /// Begun by a request that may have died: never begun again (never twice).
    Started,
    /// Done: the attachment reference.
    Done { reference: serde_json::Value },
}

/// The server's fields in the state object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct TusApp {
    pub(crate) deployment: String,
    pub(crate) binding: Binding,
    pub(crate) name: String,
    pub(crate) content_type: String,
    pub(crate) caption: Option<String>,
    /// `Upload-Metadata` as the client sent it, echoed by `HEAD`.
    pub(crate) metadata: Option<String>,
    /// The caller's `conversationId`, echoed in the reference.
    pub(crate) conversation_id: Option<String>,
    pub(crate) delivery: Delivery,
}

impl TusApp {
    pub(crate) fn of(state: &ferry_s3::resumable::ResumableState) -> Result<Self, AppError> {
        serde_json::from_value(state.app.clone()).map_err(|error| {
            tracing::error!(%error, "a tus state object does not parse");
            AppError::new(ErrorCode::StorageUnavailable, "the upload's state is damaged")
        })
    }

    pub(crate) fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Hex SHA-256 of `text`.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The upload URL's last segment for upload `uuid`: `<uuid>.<signature>`.
pub(crate) fn capability(state: &AppState, uuid: &str) -> String {
    format!("{uuid}.{}", signature(state, uuid))
}

/// The capability's signature: the first [`CAPABILITY_BYTES`] of the link key's HMAC.
fn signature(state: &AppState, uuid: &str) -> String {
    let full = state.links.signature(&format!("tus:{uuid}"), 0);
    full[..2 * CAPABILITY_BYTES].to_owned()
}

/// Bytes of HMAC in an upload URL (128 bits).
const CAPABILITY_BYTES: usize = 16;

/// The upload id a URL segment names, if its signature holds.
pub(crate) fn verify_capability(state: &AppState, segment: &str) -> Result<String, AppError> {
    let not_found = || AppError::new(ErrorCode::UploadNotFound, "no such upload");
    let (uuid, given) = segment.split_once('.').ok_or_else(not_found)?;
    let uuid = uuid::Uuid::parse_str(uuid).map_err(|_| not_found())?.to_string();
    if state.links.verify_truncated(&format!("tus:{uuid}"), 0, given, CAPABILITY_BYTES) {
        Ok(uuid)
    } else {
        Err(not_found())
    }
}

/// The upload URL.
pub(crate) fn upload_url(state: &AppState, uuid: &str) -> String {
    format!("{}/v1/tus/{}", state.config.public_url.trim_end_matches('/'), capability(state, uuid))
}

/// An RFC 9110 HTTP date (`Upload-Expires`).
pub(crate) fn http_date(unix: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
}

/// ferry-s3's resumable errors as answers.
pub(crate) fn from_resumable(error: ResumableError) -> AppError {
    match error {
        ResumableError::NotFound => AppError::new(ErrorCode::UploadNotFound, "no such upload"),
        ResumableError::Locked { until_ms } => {
            let wait = until_ms.saturating_sub(ferry_s3::resumable::unix_ms(SystemTime::now()));
            AppError::new(ErrorCode::UploadLocked, "another request is working on this upload")
                .retry_after(wait.div_ceil(1000).max(1))
        }
        ResumableError::Moved => AppError::new(
            ErrorCode::UploadLocked,
            "another request took this upload over; nothing of this request was kept",
        )
        .retry_after(1),
        ResumableError::OffsetMismatch { committed, .. } => AppError::new(
            ErrorCode::UploadOffsetMismatch,
            format!("Upload-Offset must be the upload's offset, {committed}"),
        ),
        ResumableError::TooLong { limit } => AppError::new(
            ErrorCode::PayloadTooLarge,
            format!("the upload may carry at most {limit} bytes; nothing of this request was kept"),
        ),
        ResumableError::Closed => {
            AppError::new(ErrorCode::UploadOffsetMismatch, "the upload is complete and takes no more bytes")
        }
        ResumableError::Rejected(source) | ResumableError::Body(source) => {
            match source.downcast::<AppError>() {
                Ok(own) => *own,
                Err(other) => {
                    tracing::info!(error = %other, "a tus request body failed");
                    AppError::new(ErrorCode::ClientDisconnected, "the request body ended abnormally")
                }
            }
        }
        ResumableError::S3(error) => error.into(),
        other => {
            tracing::error!(error = %other, "tus storage failed");
            AppError::new(ErrorCode::StorageUnavailable, "the upload could not be stored")
        }
    }
}

/// The uploads' share of the crash reaper: expired tus uploads are removed, and the crash reaper
/// leaves the multipart uploads of live tus uploads alone (their keys end in the tus id).
///
/// # Errors
/// When listing fails.
pub async fn reap(state: &AppState, max_age: Duration) -> Result<usize, ResumableError> {
    let store = store(state);
    let expired = store.reap_expired(SystemTime::now()).await?;
    if !expired.is_empty() {
        tracing::info!(count = expired.len(), "expired tus uploads removed");
    }
    let id_of = |key: &str| {
        let last = key.rsplit('/').next()?;
        uuid::Uuid::parse_str(last).ok().map(|u| u.to_string())
    };
    let reaped =
        store.reap_stale_except_resumable(&state.config.s3.prefix, max_age, SystemTime::now(), id_of).await?;
    Ok(expired.len() + reaped.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_403_712_000), "Wed, 25 Jun 2014 16:00:00 GMT");
    }

    #[test]
    fn the_checksum_status_is_460() {
        assert_eq!(<StatusCode as TusStatus>::TUS_CHECKSUM_MISMATCH.as_u16(), 460);
    }
}
