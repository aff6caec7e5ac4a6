//! `POST /v1/tus/`: creation (and creation-with-upload, creation-defer-length). Authorised as
//! `POST /v1/uploads` is, every local check first, the guest session with Genesys last; a ticket
//! is spent here. The state object records who created the upload (a ticket's claims and the
//! SHA-256 of its text, or the SHA-256 of the guest token), the file's name, type and caption,
//! and the plan.

use super::{
    Binding, Delivery, TusApp, check_version, error_response, from_resumable, http_date, tus_headers,
};
use crate::error::{AppError, ErrorCode};
use crate::request_id::ReqId;
use crate::state::AppState;
use crate::upload::auth::{self, Caller};
use crate::upload::declared::{Declared, TypePolicy, check_caption};
use crate::upload::{Admitted, admit};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ferry_core::plan::{MIB, PlanLimits, plan_parts};
use ferry_s3::resumable::{HashCarry, Phase, ResumableState};
use http::{HeaderMap, HeaderValue, StatusCode, header};

/// The handler.
pub(crate) async fn create(
    State(state): State<AppState>,
    ReqId(request_id): ReqId,
    request: Request,
) -> Response {
    let request = request.map(|body| axum::body::Body::new(crate::linger::Lingering::new(body)));
    match handle(&state, request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::info!(request_id = %request_id, code = %error.code(), "tus creation refused");
            error_response(error, &request_id)
        }
    }
}

async fn handle(state: &AppState, request: Request) -> Result<Response, AppError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    check_version(headers)?;
    let Admitted { caller, destination, conversation_id, max_size, .. } = admit(state, &parts)?;
    let length = upload_length(headers)?;
    if length.is_some_and(|len| len > max_size) {
        return Err(AppError::too_large(max_size));
    }
    let (declared, raw_metadata) = metadata(headers)?;
    let policy = TypePolicy::new(&state.config.limits, caller.ticket_types())
        .with_executables(destination.settings.allow_executables);
    policy.check_declared(&declared)?;
    auth::check_guest(state, &caller, &destination, length.unwrap_or(0))?;
    auth::check_session(state, &caller, &destination).await?;
    let limits =
        PlanLimits { preferred_part_size: state.config.s3.part_size_mib * MIB, max_file_size: max_size };
    let plan = plan_parts(length, &limits).map_err(|_| AppError::too_large(max_size))?;
    // Every check passed: the ticket is spent, the guest's upload counted.
    auth::use_ticket(state, &caller).await?;
    if let Some(pass) = auth::reserve_guest(state, &caller, &destination, length.unwrap_or(0))? {
        drop(pass);
    }
    let binding = match &caller {
        Caller::Ticket(claims) => {
            Binding::Ticket { claims: claims.clone(), ticket_sha256: super::sha256_hex(credential(headers)) }
        }
        Caller::Guest { token, .. } => Binding::Guest { token_sha256: super::sha256_hex(token.expose()) },
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    let expires = state.now_unix() + state.config.tus.expiry_secs;
    let key = format!(
        "{}{}/{}/{uuid}",
        state.config.s3.prefix,
        destination.id,
        crate::upload::ingest::date_path(state.now_unix())
    );
    let app = TusApp {
        deployment: destination.id.clone(),
        binding,
        name: declared.name.clone(),
        content_type: declared.content_type.clone(),
        caption: declared.caption.clone(),
        metadata: raw_metadata,
        conversation_id,
        delivery: Delivery::Pending,
    };
    // As for `POST /v1/uploads`: a guest's message carries `ferrySha256`, Open Messaging sends `sha256`.
    let open_messaging = destination.platform.is_some()
        && destination.settings.delivery == crate::config::DeliveryPreference::OpenMessaging;
    let sha256 =
        matches!(caller, Caller::Guest { .. }) || open_messaging || state.config.data_path.always_sha256;
    let resumable = ResumableState {
        key,
        content_type: Some(declared.content_type.clone()),
        content_disposition: Some(crate::names::content_disposition(&declared.name)),
        metadata: [("ferry-request".to_owned(), "tus".to_owned())].into(),
        length,
        max_len: max_size,
        part_size: plan.part_size,
        sha256,
        expires,
        upload_id: None,
        parts: Vec::new(),
        hash: HashCarry::new(state.config.data_path.whole_file_md5, sha256).save(),
        tail: None,
        lease: None,
        phase: Phase::Open,
        app: app.to_value(),
    };
    super::store(state).create(&uuid, &resumable).await.map_err(from_resumable)?;
    tracing::info!(upload = %uuid, deployment = %destination.id, "tus upload created");

    let mut response = StatusCode::CREATED.into_response();
    // creation-with-upload: the body is the first bytes. An empty file is complete at once.
    let with_upload =
        is_offset_stream(headers) && headers.get(header::CONTENT_LENGTH).is_some_and(|v| v != "0");
    if with_upload || length == Some(0) {
        let body = if with_upload { body } else { axum::body::Body::empty() };
        let offset = match super::patch::append(state, &uuid, 0, headers, body, caller).await {
            Ok(offset) => offset,
            Err(error) => {
                tracing::info!(upload = %uuid, code = %error.code(), "creation-with-upload kept nothing");
                0
            }
        };
        response.headers_mut().insert("upload-offset", HeaderValue::from(offset));
    }
    let out = response.headers_mut();
    tus_headers(out);
    let location = super::upload_url(state, &uuid);
    out.insert(header::LOCATION, HeaderValue::from_str(&location).map_err(|_| storage())?);
    out.insert("upload-expires", HeaderValue::from_str(&http_date(expires)).map_err(|_| storage())?);
    Ok(response)
}

fn storage() -> AppError {
    AppError::new(ErrorCode::StorageUnavailable, "the upload URL could not be made")
}

/// The `Authorization` credentials (after the scheme).
pub(crate) fn credential(headers: &HeaderMap) -> &str {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    auth.split_once(' ').map_or("", |(_, c)| c.trim())
}

/// `Content-Type: application/offset+octet-stream`.
pub(crate) fn is_offset_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/offset+octet-stream"))
}

/// `Upload-Length`, or `None` with `Upload-Defer-Length: 1`; one of them is required.
fn upload_length(headers: &HeaderMap) -> Result<Option<u64>, AppError> {
    let bad = |m: &str| AppError::new(ErrorCode::InvalidTusHeader, m.to_owned());
    match (headers.get("upload-length"), headers.get("upload-defer-length")) {
        (Some(len), None) => len
            .to_str()
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| bad("Upload-Length must be a non-negative integer")),
        (None, Some(defer)) if defer.as_bytes() == b"1" => Ok(None),
        (None, Some(_)) => Err(bad("Upload-Defer-Length must be 1")),
        (Some(_), Some(_)) => Err(bad("send Upload-Length or Upload-Defer-Length, not both")),
        (None, None) => Err(bad("Upload-Length (or Upload-Defer-Length: 1) is required")),
    }
}

/// `Upload-Metadata`: `filename`, `filetype` and `caption` (base64 values); other keys are kept
/// for `HEAD` but not used.
fn metadata(headers: &HeaderMap) -> Result<(Declared, Option<String>), AppError> {
    let bad = || AppError::new(ErrorCode::InvalidTusHeader, "Upload-Metadata must be `key base64,…`");
    let raw = match headers.get("upload-metadata") {
        Some(v) => Some(v.to_str().map_err(|_| bad())?.to_owned()),
        None => None,
    };
    let (mut name, mut kind, mut caption) = (None, None, None);
    for pair in raw.as_deref().unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let value = B64.decode(value.trim()).map_err(|_| bad())?;
        let text = || String::from_utf8(value.clone()).map_err(|_| bad());
        match key {
            "filename" | "name" => name = Some(text()?),
            "filetype" | "type" => kind = Some(text()?),
            "caption" => caption = Some(check_caption(text()?)?),
            _ => {}
        }
    }
    let mut declared = Declared::from_part(name.as_deref(), kind.as_deref())?;
    declared.caption = caption;
    Ok((declared, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn lengths_are_declared_or_deferred_never_both() {
        assert_eq!(upload_length(&headers(&[("upload-length", "42")])).unwrap(), Some(42));
        assert_eq!(upload_length(&headers(&[("upload-defer-length", "1")])).unwrap(), None);
        for bad in [
            headers(&[]),
            headers(&[("upload-length", "-1")]),
            headers(&[("upload-defer-length", "0")]),
            headers(&[("upload-length", "1"), ("upload-defer-length", "1")]),
        ] {
            assert_eq!(upload_length(&bad).unwrap_err().code(), ErrorCode::InvalidTusHeader);
        }
    }

    #[test]
    fn metadata_names_the_file_its_type_and_caption() {
        let b64 = |t: &str| B64.encode(t);
        let raw = format!(
            "filename {},filetype {},caption {},other",
            b64("a/b.pdf"),
            b64("application/pdf"),
            b64("hi")
        );
        let (declared, echoed) = metadata(&headers(&[("upload-metadata", &raw)])).unwrap();
        assert_eq!(declared.name, "b.pdf", "path parts are dropped");
        assert_eq!(declared.content_type, "application/pdf");
        assert_eq!(declared.caption.as_deref(), Some("hi"));
        assert_eq!(echoed.as_deref(), Some(raw.as_str()));
        // Uppy's keys; nothing at all.
        let raw = format!("name {},type {}", b64("x.png"), b64("image/png"));
        let (declared, _) = metadata(&headers(&[("upload-metadata", &raw)])).unwrap();
        assert_eq!((declared.name.as_str(), declared.content_type.as_str()), ("x.png", "image/png"));
        let (declared, echoed) = metadata(&headers(&[])).unwrap();
        assert_eq!((declared.content_type.as_str(), echoed), ("application/octet-stream", None));
        let bad = metadata(&headers(&[("upload-metadata", "filename not-base64!")])).unwrap_err();
        assert_eq!(bad.code(), ErrorCode::InvalidTusHeader);
        let control = metadata(&headers(&[("upload-metadata", &format!("caption {}", b64("a\u{7}b")))]));
        assert_eq!(control.unwrap_err().code(), ErrorCode::InvalidCaption);
    }
}
