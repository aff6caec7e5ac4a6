//! `PATCH /v1/tus/<id>`: bytes at an offset, under the upload's lease.
//!
//! The request's work runs in a task of its own (tracked by `AppState::completions`), so a client
//! that hangs up mid-body does not cut the commit short: a cut connection or a stalled body ends
//! the request's stream, and what arrived is committed (tus clients resume from it), unless an
//! `Upload-Checksum` covered the request, which then cannot match (460, nothing kept). The first
//! bytes of the file (offset 0) are sniffed as for `POST /v1/uploads`.

use super::{TusApp, check_version, error_response, from_resumable, http_date, tus_headers};
use crate::error::{AppError, ErrorCode};
use crate::request_id::ReqId;
use crate::sniff::Sniffer;
use crate::state::AppState;
use crate::upload::auth::Caller;
use crate::upload::declared::TypePolicy;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use ferry_s3::resumable::{Check, Phase};
use futures::StreamExt as _;
use http::{HeaderMap, HeaderValue, StatusCode};
use sha2::Digest as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The handler.
pub(crate) async fn patch(
    State(state): State<AppState>,
    ReqId(request_id): ReqId,
    Path(segment): Path<String>,
    request: Request,
) -> Response {
    // A refused body is drained in the background, so the client reads the answer.
    let request = request.map(|body| Body::new(crate::linger::Lingering::new(body)));
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let result = async {
        check_version(&headers)?;
        let id = super::verify_capability(&state, &segment)?;
        if !super::create::is_offset_stream(&headers) {
            return Err(AppError::new(
                ErrorCode::UnsupportedMediaType,
                "PATCH needs Content-Type: application/offset+octet-stream",
            ));
        }
        let offset = header_u64(&headers, "upload-offset")?
            .ok_or_else(|| AppError::new(ErrorCode::InvalidTusHeader, "Upload-Offset is required"))?;
        let loaded = super::store(&state).load(&id).await.map_err(from_resumable)?;
        let app = TusApp::of(&loaded.state)?;
        super::finish::check_live(&state, &loaded.state)?;
        let caller = super::finish::authorise_existing(&state, &app, &headers)?;
        let expires = loaded.state.expires;
        let offset = append(&state, &id, offset, &headers, body, caller).await?;
        Ok((offset, expires))
    }
    .await;
    match result {
        Ok((offset, expires)) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let out = response.headers_mut();
            tus_headers(out);
            out.insert("upload-offset", HeaderValue::from(offset));
            if let Ok(date) = HeaderValue::from_str(&http_date(expires)) {
                out.insert("upload-expires", date);
            }
            response
        }
        Err(error) => {
            tracing::info!(request_id = %request_id, code = %error.code(), "tus PATCH refused");
            error_response(error, &request_id)
        }
    }
}

/// A header holding a non-negative integer.
pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, AppError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).map(Some).ok_or_else(|| {
            AppError::new(ErrorCode::InvalidTusHeader, format!("{name} must be a non-negative integer"))
        }),
    }
}

/// Appends `body` at `offset` to upload `id` for `caller` (already authorised): takes the memory
/// budget and the lease, commits, completes and delivers when the last byte came. Returns the
/// committed offset.
pub(crate) async fn append(
    state: &AppState,
    id: &str,
    offset: u64,
    headers: &HeaderMap,
    body: Body,
    caller: Caller,
) -> Result<u64, AppError> {
    let checksum = RequestChecksum::from_headers(headers)?;
    let new_length = header_u64(headers, "upload-length")?;
    let sends = header_u64(headers, "content-length")?.is_none_or(|len| len > 0);
    let permit = state.budget.clone().try_acquire_many_owned(state.upload_permits).map_err(|_| {
        AppError::new(ErrorCode::ServerBusy, "too many uploads in progress; try again shortly").retry_after(5)
    })?;
    let (state, id) = (state.clone(), id.to_owned());
    let task = state.completions.clone().spawn(async move {
        let request = Patch { offset, new_length, sends, checksum };
        Box::pin(locked_append(&state, &id, request, body, &caller, permit)).await
    });
    task.await.map_err(|error| {
        tracing::error!(%error, "a tus PATCH task failed");
        AppError::new(ErrorCode::StorageUnavailable, "the upload could not be stored")
    })?
}

/// What a PATCH asks.
struct Patch {
    offset: u64,
    /// `Upload-Length`, for an upload whose length was deferred.
    new_length: Option<u64>,
    /// Whether the body may hold bytes (`Content-Length` not 0).
    sends: bool,
    checksum: Option<RequestChecksum>,
}

async fn locked_append(
    state: &AppState,
    id: &str,
    request: Patch,
    body: Body,
    caller: &Caller,
    share: tokio::sync::OwnedSemaphorePermit,
) -> Result<u64, AppError> {
    let Patch { offset, new_length, sends, checksum } = request;
    let store = super::store(state);
    let holder = uuid::Uuid::new_v4().to_string();
    let mut held = store.acquire(id, &holder, super::lease(state)).await.map_err(from_resumable)?;
    // The first part fills under the share taken at admission (the budget is charged per part).
    held.reserve(share);
    let result = Box::pin(async {
        if held.state.phase != Phase::Open {
            // Finished already (or a completion was cut short): settle it, take no more bytes.
            super::finish::settle(state, &store, &mut held, Some(caller)).await?;
            let length = held.state.offset();
            return if offset == length && !sends {
                Ok(length)
            } else {
                Err(from_resumable(ferry_s3::resumable::ResumableError::Closed))
            };
        }
        if let Some(length) = new_length {
            set_length(&store, &mut held, length, |bytes| charge_deferred(state, caller, bytes)).await?;
        }
        let app = TusApp::of(&held.state)?;
        let policy = TypePolicy::new(&state.config.limits, caller.ticket_types());
        let destination = state.destination(&app.deployment);
        let policy =
            policy.with_executables(destination.as_ref().is_some_and(|d| d.settings.allow_executables));
        let interrupted = Arc::new(AtomicBool::new(false));
        let hasher = checksum.as_ref().map(|c| Arc::new(Mutex::new(c.hasher())));
        let stream = watched(
            state,
            body,
            offset == 0,
            app.content_type.clone(),
            policy,
            hasher.clone(),
            Arc::clone(&interrupted),
        );
        let check: Option<Check> = checksum.map(|expected| {
            let hasher = hasher.clone();
            Box::new(move || {
                let digest = hasher.and_then(|h| h.lock().ok().map(|h| h.clone().finish()));
                if digest.as_deref() == Some(expected.value.as_slice()) {
                    Ok(())
                } else {
                    Err(Box::new(AppError::new(
                        ErrorCode::UploadChecksumMismatch,
                        "the request's bytes do not match its Upload-Checksum; nothing of them was kept",
                    )) as ferry_s3::BoxError)
                }
            }) as Check
        });
        let appended =
            Box::pin(store.append(&mut held, offset, stream, check)).await.map_err(from_resumable)?;
        if interrupted.load(Ordering::Relaxed) {
            tracing::info!(upload = %id, offset = appended.offset, "tus PATCH cut off; what arrived is kept");
        }
        if appended.stored.is_some() {
            super::finish::settle(state, &store, &mut held, Some(caller)).await?;
        }
        Ok(appended.offset)
    })
    .await;
    if let Err(error) = store.release(held).await {
        tracing::debug!(%error, "tus lease not released (it expires)");
    }
    result
}

/// A guest's deferred length, declared now, counts against the session's bytes for the hour (its
/// creation was charged nothing); tickets carry no quota.
fn charge_deferred(state: &AppState, caller: &Caller, bytes: u64) -> Result<(), AppError> {
    let Caller::Guest { deployment, token } = caller else { return Ok(()) };
    let Some(destination) = state.destination(deployment) else { return Ok(()) };
    state.admission.charge_guest(deployment, token.expose(), &destination.settings.guests, bytes)
}

async fn set_length(
    store: &ferry_s3::resumable::ResumableStore,
    held: &mut ferry_s3::resumable::Held,
    length: u64,
    charge: impl FnOnce(u64) -> Result<(), AppError>,
) -> Result<(), AppError> {
    match held.state.length {
        Some(known) if known == length => Ok(()),
        Some(_) => Err(AppError::new(ErrorCode::InvalidTusHeader, "Upload-Length cannot change")),
        None if length < held.state.offset() => {
            Err(AppError::new(ErrorCode::InvalidTusHeader, "Upload-Length is below the upload's offset"))
        }
        None if length > held.state.max_len => Err(AppError::too_large(held.state.max_len)),
        None => {
            charge(length)?;
            held.state.length = Some(length);
            store.save(held).await.map_err(from_resumable)
        }
    }
}

/// The request body as the store reads it: a cut connection or a stall ends it (flagging
/// `interrupted`), the first bytes of the file are sniffed, and the request's checksum is fed.
fn watched(
    state: &AppState,
    body: Body,
    at_start: bool,
    content_type: String,
    policy: TypePolicy,
    hasher: Option<Arc<Mutex<Hasher>>>,
    interrupted: Arc<AtomicBool>,
) -> impl futures::Stream<Item = Result<Bytes, AppError>> + Send + use<> {
    let idle = state.config.limits.idle_body_timeout();
    struct Watch {
        body: axum::body::BodyDataStream,
        sniffer: Option<Sniffer>,
        done: bool,
    }
    let watch = Watch { body: body.into_data_stream(), sniffer: at_start.then(Sniffer::new), done: false };
    futures::stream::unfold(watch, move |mut w| {
        let (content_type, policy, hasher, interrupted) =
            (content_type.clone(), policy.clone(), hasher.clone(), Arc::clone(&interrupted));
        async move {
            if w.done {
                return None;
            }
            let next = match tokio::time::timeout(idle, w.body.next()).await {
                Ok(Some(Ok(bytes))) => Some(bytes),
                Ok(None) => None,
                Ok(Some(Err(_))) | Err(_) => {
                    interrupted.store(true, Ordering::Relaxed);
                    None
                }
            };
            let Some(bytes) = next else {
                w.done = true;
                // A file shorter than the sniffing window is judged on what there is. A request
                // that brought no bytes (a deferred length declared, say) leaves the offset at 0,
                // so the next request's first bytes are sniffed instead.
                if let Some(sniffer) = w.sniffer.take()
                    && !sniffer.head().is_empty()
                    && let Err(refused) = policy.check_content(&content_type, sniffer.head())
                {
                    return Some((Err(refused), w));
                }
                return None;
            };
            if let Some(sniffer) = &mut w.sniffer {
                sniffer.feed(&bytes);
                if sniffer.head_known() {
                    let checked = policy.check_content(&content_type, sniffer.head());
                    w.sniffer = None;
                    if let Err(refused) = checked {
                        w.done = true;
                        return Some((Err(refused), w));
                    }
                }
            }
            if let Some(h) = &hasher
                && let Ok(mut h) = h.lock()
            {
                h.update(&bytes);
            }
            Some((Ok(bytes), w))
        }
    })
}

/// `Upload-Checksum: <algorithm> <base64>` of one request's bytes.
#[derive(Debug, Clone)]
pub(crate) struct RequestChecksum {
    algorithm: Algorithm,
    value: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum Algorithm {
    Md5,
    Sha1,
    Sha256,
    Crc32,
}

/// A running hash of one request's bytes.
#[derive(Clone)]
pub(crate) enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Crc32(crc_fast::Digest),
}

impl RequestChecksum {
    fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, AppError> {
        let Some(value) = headers.get("upload-checksum") else { return Ok(None) };
        let bad = |m: &str| AppError::new(ErrorCode::InvalidTusHeader, m.to_owned());
        let value = value.to_str().map_err(|_| bad("Upload-Checksum must be `<algorithm> <base64>`"))?;
        let (name, digest) = value
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad("Upload-Checksum must be `<algorithm> <base64>`"))?;
        let algorithm = match name.to_ascii_lowercase().as_str() {
            "md5" => Algorithm::Md5,
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            "crc32" => Algorithm::Crc32,
            _ => return Err(bad("Upload-Checksum algorithms: md5, sha1, sha256, crc32")),
        };
        let value = B64.decode(digest.trim()).map_err(|_| bad("Upload-Checksum's digest is not base64"))?;
        Ok(Some(Self { algorithm, value }))
    }

    fn hasher(&self) -> Hasher {
        match self.algorithm {
            Algorithm::Md5 => Hasher::Md5(md5::Digest::new()),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Digest::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Crc32 => Hasher::Crc32(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc)),
        }
    }
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Md5(h) => md5::Digest::update(h, data),
            Self::Sha1(h) => sha1::Digest::update(h, data),
            Self::Sha256(h) => sha2::Digest::update(h, data),
            Self::Crc32(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Md5(h) => md5::Digest::finalize(h).to_vec(),
            Self::Sha1(h) => sha1::Digest::finalize(h).to_vec(),
            Self::Sha256(h) => sha2::Digest::finalize(h).to_vec(),
            Self::Crc32(h) => (h.finalize() as u32).to_be_bytes().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum_of(value: &str) -> Result<Option<RequestChecksum>, AppError> {
        let mut headers = HeaderMap::new();
        headers.insert("upload-checksum", HeaderValue::from_str(value).unwrap());
        RequestChecksum::from_headers(&headers)
    }

    #[test]
    fn each_algorithm_hashes_the_request_as_tus_clients_do() {
        let data = b"The quick brown fox jumps over the lazy dog";
        // Known digests of `data` (md5, sha1, sha256, and CRC-32 0x414FA339).
        for (name, hex_digest) in [
            ("md5", "9e107d9d372bb6826bd81d3542a419d6"),
            ("sha1", "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"),
            ("sha256", "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"),
            ("crc32", "414fa339"),
        ] {
            let header = format!("{name} {}", B64.encode(hex::decode(hex_digest).unwrap()));
            let checksum = checksum_of(&header).unwrap().expect("a checksum");
            let mut hasher = checksum.hasher();
            hasher.update(&data[..10]);
            hasher.update(&data[10..]);
            assert_eq!(hasher.finish(), checksum.value, "{name}");
        }
    }

    #[test]
    fn unknown_algorithms_and_malformed_values_are_refused() {
        for bad in ["sha512 AAAA", "md5", "md5 not base64!", "crc32c AAAAAA=="] {
            assert_eq!(checksum_of(bad).unwrap_err().code(), ErrorCode::InvalidTusHeader, "{bad}");
        }
        assert!(RequestChecksum::from_headers(&HeaderMap::new()).unwrap().is_none());
    }
}
