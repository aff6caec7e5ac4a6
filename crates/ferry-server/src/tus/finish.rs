//! The end of a tus upload and the requests that only look at it: completion settled under the
//! lease ([`settle`]: a completion cut short is finished, the file delivered exactly once), the
//! hook a malware scan fills in ([`before_delivery`]), `HEAD`, `GET` (the attachment reference)
//! and `DELETE` (termination).

use super::{
    Binding, Delivery, TusApp, check_version, error_response, from_resumable, http_date, tus_headers,
};
use crate::error::{AppError, ErrorCode};
use crate::request_id::ReqId;
use crate::state::AppState;
use crate::upload::auth::{self, Caller};
use crate::upload::declared::Declared;
use crate::upload::deliver::{self, Delivered};
use crate::upload::reference::AttachmentReference;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ferry_core::checksum::{Crc, CrcAlgorithm, Md5, Sha256};
use ferry_core::chunk::ObjectSummary;
use ferry_s3::resumable::{Held, Phase, ResumableError, ResumableState, ResumableStore, StoredObject};
use ferry_s3::{Stored, UploadedObject};
use http::{HeaderMap, HeaderValue, StatusCode};

/// Called once a tus upload is stored and verified, before it is delivered: the malware scan of
/// the stored object ([`crate::scan::scan_object`]; `None` when the deployment is not scanned).
/// A refusal deletes the object; `settle` then marks the upload failed with the refusal's code,
/// which every later request on its URL answers.
pub(crate) async fn before_delivery(
    state: &AppState,
    caller: &Caller,
    stored: &Stored,
) -> Result<Option<crate::scan::ScanReport>, AppError> {
    let destination = auth::destination(state, caller)?;
    crate::scan::scan_object(state, &destination.id, &stored.object.key).await
}

/// The scan's refusal a failed upload recorded (`<code>: <message>`), if that is why it failed.
fn scan_refusal(reason: &str) -> Option<AppError> {
    let (code, message) = reason.split_once(": ")?;
    let code = [ErrorCode::MalwareDetected, ErrorCode::TooLargeToScan, ErrorCode::ScannerUnavailable]
        .into_iter()
        .find(|c| c.as_str() == code)?;
    Some(AppError::new(code, message))
}

/// Finishes what a held upload still owes: an interrupted completion, then the delivery (once;
/// a delivery begun by a request that died is not begun again but reported unconfirmed). A
/// guest upload is delivered only with the guest's session (`caller`).
pub(crate) async fn settle(
    state: &AppState,
    store: &ResumableStore,
    held: &mut Held,
    caller: Option<&Caller>,
) -> Result<(), AppError> {
    if held.state.phase == Phase::Completing {
        store.complete(held).await.map_err(from_resumable)?;
    }
    let object = match &held.state.phase {
        Phase::Stored(object) => object.clone(),
        Phase::Failed { reason } => {
            return Err(scan_refusal(reason).unwrap_or_else(|| {
                AppError::new(ErrorCode::ChecksumMismatch, "the stored file did not verify; nothing was kept")
            }));
        }
        Phase::Open | Phase::Completing => return Ok(()),
    };
    let mut app = TusApp::of(&held.state)?;
    let caller = match (caller, &app.binding) {
        (Some(caller), _) => caller,
        (None, _) => return Ok(()),
    };
    let stored = stored_of(state, &held.state, &object)?;
    let declared = Declared {
        name: app.name.clone(),
        content_type: app.content_type.clone(),
        caption: app.caption.clone(),
    };
    let mut scan = None;
    let delivered = match app.delivery {
        Delivery::Done { .. } => return Ok(()),
        Delivery::Started => Delivered::Undelivered {
            error: "delivery_unconfirmed",
            message: "a delivery of this upload was interrupted; it may or may not have arrived".into(),
            fallback: None,
        },
        Delivery::Pending => {
            scan = match before_delivery(state, caller, &stored).await {
                Ok(scan) => scan,
                Err(refused) => {
                    // The scan deleted the object: the upload has failed for good, and says why.
                    let reason = format!("{}: {}", refused.code(), refused.message());
                    held.state.phase = Phase::Failed { reason };
                    store.save(held).await.map_err(from_resumable)?;
                    return Err(refused);
                }
            };
            app.delivery = Delivery::Started;
            held.state.app = app.to_value();
            let tus = &state.config.tus;
            held.set_lease(std::time::Duration::from_secs(tus.delivery_lease_secs.max(tus.lease_secs)));
            store.save(held).await.map_err(from_resumable)?;
            let destination = auth::destination(state, caller)?;
            deliver::deliver(state, &destination, caller, &declared, &stored).await
        }
    };
    let mut reference = AttachmentReference::new(state, caller, &declared, &stored, delivered);
    reference.set_conversation_id(app.conversation_id.clone());
    reference.set_scan(scan);
    tracing::info!(key = %stored.object.key, delivery = reference.delivery_mode(), "tus upload delivered");
    app.delivery = Delivery::Done { reference: serde_json::to_value(&reference).unwrap_or_default() };
    held.state.app = app.to_value();
    store.save(held).await.map_err(from_resumable)
}

/// The stored object as the delivery needs it, from the state object.
fn stored_of(
    state: &AppState,
    resumable: &ResumableState,
    object: &StoredObject,
) -> Result<Stored, AppError> {
    let damaged = || AppError::new(ErrorCode::StorageUnavailable, "the upload's state is damaged");
    let md5 = object.md5.as_deref().map(|m| Md5::from_hex(m).ok_or_else(damaged)).transpose()?;
    let sha256 = object.sha256.as_deref().map(|s| Sha256::from_hex(s).ok_or_else(damaged)).transpose()?;
    let crc = object.crc.as_deref().map(|text| parse_crc(text).ok_or_else(damaged)).transpose()?;
    let summary = ObjectSummary {
        len: object.size,
        part_size: resumable.part_size,
        parts: object.part_count,
        md5,
        sha256,
        crc,
        part_md5s: Vec::new(),
        part_crcs: Vec::new(),
    };
    let object = UploadedObject {
        bucket: state.uploader.bucket().to_owned(),
        key: resumable.key.clone(),
        version_id: object.version_id.clone(),
        size: object.size,
        etag: object.etag.clone(),
        md5,
        checksum: crc,
        part_count: object.part_count,
    };
    Ok(Stored { object, summary })
}

/// `CRC64NVME:<base64>` back to a [`Crc`].
fn parse_crc(text: &str) -> Option<Crc> {
    let (name, b64) = text.split_once(':')?;
    let algorithm =
        [CrcAlgorithm::Crc32c, CrcAlgorithm::Crc64Nvme].into_iter().find(|a| a.s3_name() == name)?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let value = raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Some(Crc { algorithm, value })
}

/// 410 once an unfinished upload's expiry has passed (the reaper removes it).
pub(crate) fn check_live(state: &AppState, resumable: &ResumableState) -> Result<(), AppError> {
    if resumable.expires <= state.now_unix() && !matches!(resumable.phase, Phase::Stored(_)) {
        return Err(AppError::new(ErrorCode::UploadExpired, "this upload has expired"));
    }
    Ok(())
}

/// The caller of a request on an existing upload. Ticket mode: the URL suffices; a resent
/// ticket must be the one that created the upload. Guest mode: the guest session is required and
/// must be the creator's (compared by SHA-256).
pub(crate) fn authorise_existing(
    state: &AppState,
    app: &TusApp,
    headers: &HeaderMap,
) -> Result<Caller, AppError> {
    let forbidden = || AppError::new(ErrorCode::UploadForbidden, "this upload belongs to another credential");
    let credential = super::create::credential(headers);
    let scheme = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split(' ').next())
        .map(str::to_ascii_lowercase);
    match &app.binding {
        Binding::Ticket { claims, ticket_sha256 } => match scheme.as_deref() {
            None => Ok(Caller::Ticket(claims.clone())),
            Some("ferry-ticket") if super::sha256_hex(credential) == *ticket_sha256 => {
                Ok(Caller::Ticket(claims.clone()))
            }
            Some(_) => Err(forbidden()),
        },
        Binding::Guest { token_sha256 } => {
            let caller = auth::authorise(state, headers)?;
            match &caller {
                Caller::Guest { deployment, token }
                    if *deployment == app.deployment
                        && super::sha256_hex(token.expose()) == *token_sha256 =>
                {
                    Ok(caller)
                }
                _ => Err(forbidden()),
            }
        }
    }
}

/// Loads the upload a URL names and authorises the request; settles a pending completion or
/// delivery when the lease is free.
async fn open(
    state: &AppState,
    segment: &str,
    headers: &HeaderMap,
) -> Result<(ResumableState, TusApp), AppError> {
    check_version(headers)?;
    let id = super::verify_capability(state, segment)?;
    let store = super::store(state);
    let loaded = store.load(&id).await.map_err(from_resumable)?;
    check_live(state, &loaded.state)?;
    let app = TusApp::of(&loaded.state)?;
    let caller = authorise_existing(state, &app, headers)?;
    // Refused by the malware scan (the object is gone): every request hears why.
    if let Phase::Failed { reason } = &loaded.state.phase
        && let Some(refused) = scan_refusal(reason)
    {
        return Err(refused);
    }
    let owes = match &loaded.state.phase {
        Phase::Completing => true,
        Phase::Stored(_) => !matches!(app.delivery, Delivery::Done { .. }),
        _ => false,
    };
    if !owes {
        return Ok((loaded.state, app));
    }
    let holder = uuid::Uuid::new_v4().to_string();
    match store.acquire(&id, &holder, super::lease(state)).await {
        Ok(mut held) => {
            let settled = settle(state, &store, &mut held, Some(&caller)).await;
            let resumable = store.release(held).await.map_err(from_resumable)?;
            settled?;
            let app = TusApp::of(&resumable)?;
            Ok((resumable, app))
        }
        // Another request is finishing it: report what the bucket says.
        Err(ResumableError::Locked { .. }) => Ok((loaded.state, app)),
        Err(error) => Err(from_resumable(error)),
    }
}

/// `HEAD /v1/tus/<id>`: the offset, length (or deferred), metadata and expiry.
pub(crate) async fn head(
    State(state): State<AppState>,
    ReqId(request_id): ReqId,
    Path(segment): Path<String>,
    request: Request,
) -> Response {
    match Box::pin(open(&state, &segment, request.headers())).await {
        Ok((resumable, app)) => {
            let mut response = StatusCode::OK.into_response();
            let out = response.headers_mut();
            tus_headers(out);
            out.insert("upload-offset", HeaderValue::from(resumable.offset()));
            match resumable.length {
                Some(length) => out.insert("upload-length", HeaderValue::from(length)),
                None => out.insert("upload-defer-length", HeaderValue::from_static("1")),
            };
            if let Some(meta) = app.metadata.as_deref().and_then(|m| HeaderValue::from_str(m).ok()) {
                out.insert("upload-metadata", meta);
            }
            if let Ok(date) = HeaderValue::from_str(&http_date(resumable.expires)) {
                out.insert("upload-expires", date);
            }
            response
        }
        Err(error) => {
            // A HEAD answer has no body; the status and headers say it.
            let mut response = error_response(error, &request_id);
            *response.body_mut() = axum::body::Body::empty();
            response
        }
    }
}

/// `GET /v1/tus/<id>`: the attachment reference once the upload is delivered (409
/// `upload_incomplete` before).
pub(crate) async fn get_reference(
    State(state): State<AppState>,
    ReqId(request_id): ReqId,
    Path(segment): Path<String>,
    request: Request,
) -> Response {
    let result =
        Box::pin(open(&state, &segment, request.headers())).await.and_then(|(_, app)| match app.delivery {
            Delivery::Done { reference } => Ok(reference),
            _ => Err(AppError::new(ErrorCode::UploadIncomplete, "the upload is not complete yet")),
        });
    match result {
        Ok(reference) => {
            let mut response = (StatusCode::OK, axum::Json(reference)).into_response();
            tus_headers(response.headers_mut());
            response
        }
        Err(error) => error_response(error, &request_id),
    }
}

/// `DELETE /v1/tus/<id>` (termination): the upload's parts, tail and state go (a stored file
/// stays); 423 while another request holds it.
pub(crate) async fn delete(
    State(state): State<AppState>,
    ReqId(request_id): ReqId,
    Path(segment): Path<String>,
    request: Request,
) -> Response {
    let headers = request.headers();
    let result = async {
        check_version(headers)?;
        let id = super::verify_capability(&state, &segment)?;
        let store = super::store(&state);
        let loaded = store.load(&id).await.map_err(from_resumable)?;
        let app = TusApp::of(&loaded.state)?;
        authorise_existing(&state, &app, headers)?;
        let holder = uuid::Uuid::new_v4().to_string();
        let held = store.acquire(&id, &holder, super::lease(&state)).await.map_err(from_resumable)?;
        store.remove(&id, &held.state).await.map_err(from_resumable)?;
        tracing::info!(upload = %id, "tus upload terminated");
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            tus_headers(response.headers_mut());
            response
        }
        Err(error) => error_response(error, &request_id),
    }
}
