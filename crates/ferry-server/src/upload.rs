//! `POST /v1/uploads`: one upload, streamed from the request body through the chunker into S3,
//! then into the conversation.
//!
//! Order matters, so that nothing is half-done: authorise (guest session checked with Genesys, or
//! a ticket) and check the declared size before reading a byte; reserve the memory budget; stream
//! and store (the type sniffed from the first bytes, the size enforced by the chunker); compare the
//! client's digest before completing the multipart upload; deliver; on any failure after storing,
//! delete the object. Whatever fails, the multipart upload is aborted.

use crate::body::{BodyError, PartHeaderGuard};
use crate::error::AppError;
use crate::names;
use crate::sniff;
use crate::state::AppState;
use crate::tickets::Claims;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_core::checksum::{Md5, Sha256};
use ferry_core::chunk::{ChunkError, Chunker, ObjectSummary};
use ferry_core::plan::{MIB, PlanLimits, plan_parts};
use ferry_genesys::SessionToken;
use ferry_genesys::guest::{Delivery, Fallback, FileMeta, UploadBody};
use ferry_s3::{ObjectMeta, ObjectUpload, UploadedObject};
use futures::{Stream, StreamExt, TryStreamExt};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Who may upload, as the request proves it.
#[derive(Debug)]
pub enum Caller {
    /// A guest session (custom clients): ferry delivers into the conversation.
    Guest {
        /// Deployment id.
        deployment: String,
        /// The customer's session token.
        token: SessionToken,
    },
    /// An upload ticket (stock Messenger pages): the page posts the link itself.
    Ticket(Claims),
}

impl Caller {
    fn deployment(&self) -> &str {
        match self {
            Self::Guest { deployment, .. } => deployment,
            Self::Ticket(claims) => &claims.dep,
        }
    }
}

/// What the client declared about the file.
#[derive(Debug, Default)]
struct Declared {
    name: String,
    content_type: String,
    len: Option<u64>,
    md5: Option<Md5>,
    sha256: Option<Sha256>,
    caption: Option<String>,
}

/// The handler.
pub async fn upload(State(state): State<AppState>, request: Request) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let span = tracing::info_span!("upload", request_id = %request_id);
    let _in_flight = state.metrics.start();
    let result = tracing::Instrument::instrument(handle(&state, request), span).await;
    match result {
        Ok((reference, size)) => {
            state.metrics.finish("created", size, started.elapsed());
            tracing::info!(
                request_id = %request_id,
                size,
                delivery = reference["delivery"]["mode"].as_str().unwrap_or(""),
                took_ms = started.elapsed().as_millis() as u64,
                "upload stored and delivered"
            );
            let mut response = (StatusCode::CREATED, axum::Json(reference)).into_response();
            if let Ok(value) = request_id.parse() {
                response.headers_mut().insert("x-request-id", value);
            }
            response
        }
        Err(error) => {
            state.metrics.finish(error.code, 0, started.elapsed());
            tracing::info!(request_id = %request_id, code = error.code, status = error.status.as_u16(), "upload refused");
            let mut response = error.with_request_id(&request_id).into_response();
            if let Ok(value) = request_id.parse() {
                response.headers_mut().insert("x-request-id", value);
            }
            response
        }
    }
}

async fn handle(state: &AppState, request: Request) -> Result<(Value, u64), AppError> {
    let headers = request.headers().clone();
    let caller = authorise(state, &headers)?;
    let deployment = state.config.deployments.get(caller.deployment()).ok_or_else(|| {
        AppError::new(
            StatusCode::FORBIDDEN,
            "deployment_not_allowed",
            "ferry is not configured for this deployment",
        )
    })?;
    let mut max_size = state.config.max_file_size_for(deployment);
    if let Caller::Ticket(claims) = &caller
        && let Some(max) = claims.max
    {
        max_size = max_size.min(max);
    }
    let content_length =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    // Multipart framing adds a little; the file itself is held to the limit while streaming.
    let overhead = if is_multipart { 64 * 1024 } else { 0 };
    if content_length.is_some_and(|len| len > max_size + overhead) {
        return Err(too_large(max_size));
    }
    let mut declared = Declared {
        md5: digest_header(&headers, "content-md5", Md5::from_base64)?,
        sha256: repr_digest(&headers)?,
        ..Declared::default()
    };

    // The session is checked with Genesys before a byte of the body is read; the connection is
    // closed again at once (a token allows only three).
    if let Caller::Guest { deployment, token } = &caller {
        let guest = &state.guests[deployment];
        guest.validate(deployment, token).await.map_err(session_error)?;
    }

    // A raw upload's name and type are in its headers: check them before anything else is spent.
    if !is_multipart {
        let raw_name = headers.get("x-file-name").ok_or_else(|| {
            AppError::bad_request("missing_file_name", "X-File-Name is required for a raw upload")
        })?;
        let raw_name = raw_name.to_str().map_err(|_| name_error(names::NameError::NotUtf8))?;
        declared.name = names::decode_header(raw_name).map_err(name_error)?;
        declared.content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        declared.len = content_length;
        declared.caption = match headers.get("x-caption") {
            Some(v) => Some(caption_header(v.as_bytes())?),
            None => None,
        };
        check_declared(state, &caller, &declared)?;
    }
    let boundary = if is_multipart {
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        Some(multer::parse_boundary(content_type).map_err(|_| {
            AppError::bad_request("invalid_multipart", "multipart/form-data needs a boundary parameter")
        })?)
    } else {
        None
    };

    // Nothing is reserved for a client that has not started sending: wait for its first bytes.
    let mut body = request.into_body().into_data_stream().map_err(BodyError::from_http).peekable();
    if tokio::time::timeout(state.config.limits.idle_body_timeout(), std::pin::Pin::new(&mut body).peek())
        .await
        .is_err()
    {
        return Err(AppError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", "the request body stalled"));
    }

    // Claim this upload's share of the part-buffer budget, or say "busy" rather than overcommit.
    let _permit = state.budget.clone().try_acquire_many_owned(state.upload_permits).map_err(|_| {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_busy",
            "too many uploads in progress; try again shortly",
        )
        .retry_after(5)
    })?;

    // A ticket is used up only now that the upload really starts: a refusal before this point
    // (wrong deployment, too large, busy) leaves it good for a retry.
    if let Caller::Ticket(claims) = &caller
        && let Some(verifier) = &state.tickets
    {
        verifier
            .consume(claims, state.now_unix())
            .map_err(|e| AppError::new(StatusCode::UNAUTHORIZED, "invalid_ticket", e.message()))?;
    }

    let (upload, last, summary) = if let Some(boundary) = boundary {
        let mut stored = None;
        match read_form(state, &caller, &mut declared, max_size, body, &boundary, &mut stored).await {
            Ok(()) => stored
                .ok_or_else(|| AppError::bad_request("invalid_multipart", "no `file` part in the form"))?,
            Err(error) => {
                // A form that goes wrong after its file arrived keeps nothing.
                if let Some((upload, _, _)) = stored {
                    upload.abort().await;
                }
                return Err(error);
            }
        }
    } else {
        store(state, &caller, &declared, max_size, declared.len, body).await?
    };

    // The whole body is in and checked. Completing and delivering run in a task of their own: a
    // client that hangs up now (a closed tab) cancels neither, so the file is never left stored
    // but undelivered, or completed but unverified.
    let state = state.clone();
    let completion = state.completions.spawn({
        let state = state.clone();
        async move {
            let object = upload.finish(last, &summary).await.map_err(|e| AppError::storage(&e))?;
            match deliver(&state, &caller, &declared, &object, &summary).await {
                Ok(delivered) => {
                    Ok((reference(&state, &caller, &declared, &object, &summary, delivered), object.size))
                }
                Err(error) => {
                    discard(&state, &object).await;
                    tracing::info!(code = error.code, "delivery failed; the stored file was deleted");
                    Err(error)
                }
            }
        }
    });
    completion.await.map_err(|e| {
        tracing::error!(error = %e, "an upload's completion task failed");
        // Only a panic in the task gets here (nothing aborts it).
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the upload could not be completed",
        )
    })?
}

/// An upload whose body is all in: the multipart upload (or pending single PUT), its last part and
/// the chunker's summary.
type Received = (ObjectUpload, Option<ferry_core::chunk::Part>, ObjectSummary);

/// Reads a multipart/form-data body: the `file` part is streamed into S3 (into `stored`), a `text`
/// part is the caption, other parts are read and dropped. Everything but the file's content is held
/// to a few KiB (part headers by [`PartHeaderGuard`], fields by the parser's limits). The caller
/// discards `stored` if this fails after the file was stored.
async fn read_form<S>(
    state: &AppState,
    caller: &Caller,
    declared: &mut Declared,
    max_size: u64,
    body: S,
    boundary: &str,
    stored: &mut Option<Received>,
) -> Result<(), AppError>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Send + Unpin + 'static,
{
    let limits = multer::SizeLimit::new()
        .whole_stream(max_size.saturating_add(256 * 1024))
        .per_field(64 * 1024)
        .for_field("file", max_size)
        .for_field("text", 4096);
    let constraints = multer::Constraints::new().size_limit(limits);
    let mut form =
        multer::Multipart::with_constraints(PartHeaderGuard::new(body, boundary), boundary, constraints);
    let form_error = |error: multer::Error| body_error(BodyError::from_form(error), max_size);
    while let Some(field) = form.next_field().await.map_err(form_error)? {
        match field.name() {
            Some("file") if stored.is_some() => {
                return Err(AppError::bad_request("invalid_multipart", "more than one `file` part"));
            }
            Some("file") => {
                declared.name = names::sanitize(field.file_name().unwrap_or("file")).map_err(name_error)?;
                declared.content_type = field
                    .content_type()
                    .map_or_else(|| "application/octet-stream".to_owned(), ToString::to_string);
                check_declared(state, caller, declared)?;
                let content = field.map_err(BodyError::from_form);
                *stored = Some(store(state, caller, declared, max_size, None, content).await?);
            }
            Some("text") => {
                let text = field.text().await.map_err(|e| match e {
                    multer::Error::FieldSizeExceeded { .. } => {
                        AppError::bad_request("invalid_caption", "the caption is longer than 4096 bytes")
                    }
                    other => form_error(other),
                })?;
                declared.caption = Some(check_caption(text)?);
            }
            _ => {
                let mut field = field;
                while field
                    .chunk()
                    .await
                    .map_err(|e| match e {
                        multer::Error::FieldSizeExceeded { .. } => {
                            AppError::bad_request("invalid_multipart", "an extra form field is too large")
                        }
                        other => form_error(other),
                    })?
                    .is_some()
                {}
            }
        }
    }
    Ok(())
}

/// The answer for a body that could not be read.
fn body_error(error: BodyError, max_size: u64) -> AppError {
    match error {
        BodyError::Disconnected(why) => {
            tracing::info!(error = %why, "request body ended abnormally");
            AppError::bad_request("client_disconnected", "the request body ended abnormally")
        }
        BodyError::Malformed(why) => {
            AppError::bad_request("invalid_multipart", format!("malformed multipart/form-data: {why}"))
        }
        BodyError::TooLarge => too_large(max_size),
    }
}

/// `X-Caption`: percent-encoded UTF-8 text.
fn caption_header(raw: &[u8]) -> Result<String, AppError> {
    let bad = || AppError::bad_request("invalid_caption", "X-Caption must be percent-encoded UTF-8 text");
    for (i, b) in raw.iter().enumerate() {
        if *b == b'%' && !raw.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            return Err(bad());
        }
    }
    let text = percent_encoding::percent_decode(raw).decode_utf8().map_err(|_| bad())?;
    check_caption(text.into_owned())
}

/// A caption: at most 4096 bytes, no control characters but line breaks and tabs.
fn check_caption(text: String) -> Result<String, AppError> {
    if text.len() > 4096 {
        return Err(AppError::bad_request("invalid_caption", "the caption is longer than 4096 bytes"));
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(AppError::bad_request("invalid_caption", "the caption contains control characters"));
    }
    Ok(text)
}

fn authorise(state: &AppState, headers: &HeaderMap) -> Result<Caller, AppError> {
    let missing = || {
        AppError::new(
            StatusCode::UNAUTHORIZED,
            "missing_session",
            "send `Authorization: Bearer <guest session token>` with X-Genesys-Deployment-Id, or `Authorization: Ferry-Ticket <ticket>`",
        )
    };
    let auth = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let auth = auth.to_str().map_err(|_| missing())?.trim();
    let (scheme, credentials) = auth.split_once(' ').unwrap_or((auth, ""));
    if scheme.eq_ignore_ascii_case("Ferry-Ticket") {
        let ticket = credentials;
        let verifier = state.tickets.as_ref().ok_or_else(|| {
            AppError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_ticket",
                "upload tickets are not enabled on this server",
            )
        })?;
        let claims = verifier
            .check(ticket.trim(), state.now_unix())
            .map_err(|e| AppError::new(StatusCode::UNAUTHORIZED, "invalid_ticket", e.message()))?;
        return Ok(Caller::Ticket(claims));
    }
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(missing());
    }
    let token = Some(credentials.trim()).filter(|t| !t.is_empty()).ok_or_else(missing)?;
    if token.len() > 256 || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            "unknown_session",
            "the session token is not one Genesys issues",
        ));
    }
    let deployment = headers
        .get("x-genesys-deployment-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            AppError::bad_request(
                "missing_deployment",
                "X-Genesys-Deployment-Id is required with a guest session",
            )
        })?;
    Ok(Caller::Guest { deployment: deployment.to_owned(), token: SessionToken::new(token) })
}

fn session_error(error: ferry_genesys::Error) -> AppError {
    match error {
        ferry_genesys::Error::SessionNotFound => AppError::new(
            StatusCode::UNAUTHORIZED,
            "unknown_session",
            "Genesys has no session for this token",
        ),
        ferry_genesys::Error::ConversationClosed => AppError::new(
            StatusCode::CONFLICT,
            "conversation_closed",
            "the conversation has ended; start a new one to send files",
        ),
        other => AppError::genesys(&other),
    }
}

fn digest_header<T>(
    headers: &HeaderMap,
    name: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, AppError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().ok().and_then(parse).map(Some).ok_or_else(|| {
            AppError::bad_request("invalid_digest", format!("{name} is not base64 of the digest"))
        }),
    }
}

/// `Repr-Digest: sha-256=:<base64>:` (RFC 9530); other algorithms are ignored, a malformed
/// sha-256 member is refused.
fn repr_digest(headers: &HeaderMap) -> Result<Option<Sha256>, AppError> {
    let Some(value) = headers.get("repr-digest") else { return Ok(None) };
    let bad = || AppError::bad_request("invalid_digest", "Repr-Digest must carry sha-256=:<base64>:");
    let value = value.to_str().map_err(|_| bad())?;
    for member in value.split(',') {
        let Some((alg, rest)) = member.trim().split_once('=') else { return Err(bad()) };
        if alg.trim().eq_ignore_ascii_case("sha-256") {
            let b64 = rest.trim().strip_prefix(':').and_then(|r| r.strip_suffix(':')).ok_or_else(bad)?;
            return Sha256::from_base64(b64).map(Some).ok_or_else(bad);
        }
    }
    Ok(None)
}

fn name_error(error: names::NameError) -> AppError {
    AppError::bad_request("invalid_file_name", error.message())
}

fn too_large(max: u64) -> AppError {
    AppError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("files may be at most {max} bytes"),
    )
}

fn unsupported(message: String) -> AppError {
    AppError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
}

/// Checks of what was declared, before the body is read.
fn check_declared(state: &AppState, caller: &Caller, declared: &Declared) -> Result<(), AppError> {
    if let Some(ext) = names::extension(&declared.name)
        && state.config.limits.blocked_extensions.iter().any(|b| b.eq_ignore_ascii_case(&ext))
    {
        return Err(unsupported(format!("files ending in {ext} are not accepted")));
    }
    let mime = declared.content_type.split(';').next().unwrap_or("").trim();
    if mime.is_empty() || !mime.contains('/') || mime.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(unsupported("the content type is not a MIME type".into()));
    }
    check_type(state, caller, mime)
}

fn check_type(state: &AppState, caller: &Caller, mime: &str) -> Result<(), AppError> {
    if !sniff::allowed(&state.config.limits.allowed_types, mime) {
        return Err(unsupported(format!("{mime} files are not accepted")));
    }
    if let Caller::Ticket(Claims { types: Some(types), .. }) = caller
        && !sniff::allowed(types, mime)
    {
        return Err(unsupported(format!("this ticket does not allow {mime} files")));
    }
    Ok(())
}

/// The body's first bytes against the declared type.
fn check_sniffed(
    state: &AppState,
    caller: &Caller,
    declared: &Declared,
    head: &[u8],
) -> Result<(), AppError> {
    let Some(sniffed) = sniff::sniff(head) else {
        if sniff::has_signature(&declared.content_type) {
            return Err(unsupported(format!("the content is not {}", declared.content_type)));
        }
        return Ok(());
    };
    if !sniff::consistent(&declared.content_type, sniffed) {
        return Err(unsupported(format!("the content is {sniffed}, not {}", declared.content_type)));
    }
    check_type(state, caller, sniffed)
}

fn object_key(state: &AppState, deployment: &str) -> (String, String) {
    let days = state.now_unix() / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let tail = format!("{deployment}/{y:04}/{m:02}/{d:02}/{}", uuid::Uuid::new_v4());
    (format!("{}{tail}", state.config.s3.prefix), tail)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Streams `body` into S3. On any error the multipart upload is aborted before returning.
async fn store<S>(
    state: &AppState,
    caller: &Caller,
    declared: &Declared,
    max_size: u64,
    declared_len: Option<u64>,
    body: S,
) -> Result<Received, AppError>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Unpin,
{
    let limits =
        PlanLimits { preferred_part_size: state.config.s3.part_size_mib * MIB, max_file_size: max_size };
    // Every planning error is a size the service does not take.
    let plan = plan_parts(declared_len, &limits).map_err(|_| too_large(max_size))?;
    let mode = state.uploader.config().checksum_mode;
    let chunker = Chunker::new(plan, mode.chunker_options(true));
    let (key, _) = object_key(state, caller.deployment());
    let meta = ObjectMeta {
        content_type: Some(declared.content_type.clone()),
        content_disposition: Some(names::content_disposition(&declared.name)),
        metadata: [("ferry-request".to_owned(), "upload".to_owned())].into(),
    };
    let mut upload = Some(state.uploader.begin(key, meta));
    let result = stream_parts(state, caller, declared, chunker, body, &mut upload).await;
    match result {
        Ok(done) => Ok(done),
        Err(error) => {
            if let Some(upload) = upload.take() {
                upload.abort().await;
            }
            Err(error)
        }
    }
}

async fn stream_parts<S>(
    state: &AppState,
    caller: &Caller,
    declared: &Declared,
    mut chunker: Chunker,
    mut body: S,
    upload: &mut Option<ObjectUpload>,
) -> Result<Received, AppError>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Unpin,
{
    let limits = &state.config.limits;
    let idle = limits.idle_body_timeout();
    let deadline = Instant::now() + Duration::from_secs(limits.max_upload_secs);
    let started = Instant::now();
    let mut head: Vec<u8> = Vec::with_capacity(sniff::SNIFF_LEN);
    let max_len = chunker.plan().max_len;
    let mut sniffed = false;
    loop {
        let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
        let frame = match tokio::time::timeout(wait, body.next()).await {
            Err(_) if Instant::now() >= deadline => {
                return Err(AppError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "upload_timeout",
                    "the upload took longer than allowed",
                ));
            }
            Err(_) => {
                return Err(AppError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body stalled",
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(body_error(e, max_len)),
            Ok(Some(Ok(frame))) => frame,
        };
        if !sniffed {
            let take = (sniff::SNIFF_LEN - head.len()).min(frame.len());
            head.extend_from_slice(&frame[..take]);
            if head.len() >= sniff::SNIFF_LEN {
                check_sniffed(state, caller, declared, &head)?;
                sniffed = true;
            }
        }
        let parts = chunker.push(frame).map_err(|e| chunk_error(&e, max_len))?;
        for part in parts {
            let upload = upload.as_mut().expect("upload present until finished");
            upload.push_part(part).await.map_err(|e| AppError::storage(&e))?;
        }
        let elapsed = started.elapsed();
        if elapsed > idle
            && limits.min_bytes_per_sec > 0
            && chunker.received() / elapsed.as_secs().max(1) < limits.min_bytes_per_sec
        {
            return Err(AppError::new(
                StatusCode::REQUEST_TIMEOUT,
                "too_slow",
                "the upload is slower than the minimum transfer rate",
            ));
        }
    }
    if !sniffed {
        check_sniffed(state, caller, declared, &head)?;
    }
    let (last, summary) = chunker.finish().map_err(|e| chunk_error(&e, max_len))?;
    if let Some(md5) = declared.md5
        && md5 != summary.md5
    {
        return Err(mismatch("Content-MD5"));
    }
    if let Some(sha) = declared.sha256
        && Some(sha) != summary.sha256
    {
        return Err(mismatch("Repr-Digest"));
    }
    let upload = upload.take().expect("upload present until finished");
    Ok((upload, last, summary))
}

fn mismatch(header: &str) -> AppError {
    AppError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "checksum_mismatch",
        format!("the file does not match its {header}; nothing was kept"),
    )
}

fn chunk_error(error: &ChunkError, max: u64) -> AppError {
    match error {
        ChunkError::TooLong { declared: true, .. } => {
            AppError::bad_request("length_mismatch", "the body is longer than its Content-Length")
        }
        ChunkError::TooLong { limit, .. } => too_large(*limit),
        ChunkError::TooShort { .. } => {
            AppError::bad_request("incomplete_body", "the body ended before its Content-Length")
        }
        _ => too_large(max),
    }
}

/// Deletes a stored object after a later failure, so nothing is left half-done.
async fn discard(state: &AppState, object: &UploadedObject) {
    if let Err(error) = state.uploader.delete(&object.key).await {
        tracing::error!(%error, "could not delete an object after a failed delivery");
    }
}

/// How the file reached the conversation.
#[derive(Debug)]
enum Delivered {
    Native { attachment_id: String },
    Link,
    Client,
    OpenMessaging { message_id: String },
}

async fn deliver(
    state: &AppState,
    caller: &Caller,
    declared: &Declared,
    object: &UploadedObject,
    summary: &ObjectSummary,
) -> Result<Delivered, AppError> {
    if let Some(platform) = state.platforms.get(caller.deployment())
        && state.config.deployments[caller.deployment()].delivery
            == crate::config::DeliveryPreference::OpenMessaging
    {
        return deliver_open_messaging(state, platform, caller, declared, object, summary).await;
    }
    let Caller::Guest { deployment, token } = caller else { return Ok(Delivered::Client) };
    let guest = &state.guests[deployment];
    let prefer_link =
        state.config.deployments[deployment].delivery == crate::config::DeliveryPreference::Link;
    let file = FileMeta {
        file_id: file_id(state, object),
        file_name: declared.name.clone(),
        mime_type: declared.content_type.clone(),
        size: object.size,
        sha256: summary.sha256,
        md5: Some(summary.md5),
        attributes: Default::default(),
    };
    let link = download_link(state, object);
    let mut session = guest.connect(deployment, token).await.map_err(session_error)?;
    let result = if prefer_link {
        session.send_link(&file, &link, declared.caption.as_deref()).await.map(|_| Delivered::Link)
    } else {
        let body = object_body(state, object, summary.md5);
        match session.deliver(&file, body, Some(&link), declared.caption.as_deref(), Fallback::Link).await {
            Ok(Delivery::Native(attachment)) => {
                Ok(Delivered::Native { attachment_id: attachment.attachment_id })
            }
            Ok(_) => Ok(Delivered::Link),
            Err(e) => Err(e),
        }
    };
    session.close();
    result.map_err(session_error)
}

async fn deliver_open_messaging(
    state: &AppState,
    platform: &ferry_genesys::platform::PlatformClient,
    caller: &Caller,
    declared: &Declared,
    object: &UploadedObject,
    summary: &ObjectSummary,
) -> Result<Delivered, AppError> {
    use ferry_genesys::platform::{OpenAttachment, OpenFrom, OpenMessage};
    let integration = state.config.deployments[caller.deployment()]
        .open_messaging
        .as_ref()
        .map(|om| om.integration_id.clone())
        .unwrap_or_default();
    let from = match caller {
        Caller::Ticket(Claims { from: Some(from), .. }) => from.clone(),
        _ => {
            return Err(AppError::bad_request(
                "missing_recipient",
                "this deployment delivers through Open Messaging: the ticket must name the customer (`from`)",
            ));
        }
    };
    let attachment = OpenAttachment::file(
        ferry_genesys::Secret::new(download_link(state, object)),
        declared.name.clone(),
        declared.content_type.clone(),
        summary.sha256,
    );
    let message = OpenMessage::file(
        OpenFrom::opaque(from),
        file_id(state, object),
        std::time::SystemTime::now(),
        attachment,
        declared.caption.clone(),
    );
    match platform.send_open_message(&integration, &message).await {
        Ok(receipt) => Ok(Delivered::OpenMessaging { message_id: receipt.body.id }),
        Err(error) => {
            tracing::error!(%error, "Open Messaging delivery failed");
            Err(AppError::new(
                StatusCode::BAD_GATEWAY,
                "genesys_unavailable",
                "Genesys could not be reached or refused the delivery; nothing was kept",
            ))
        }
    }
}

/// The stored object as a re-openable stream, checked against the stored MD5 on the way: a
/// stream whose bytes do not hash to it ends in an error, so the presigned PUT fails.
fn object_body(state: &AppState, object: &UploadedObject, md5: Md5) -> UploadBody {
    let uploader = state.uploader.clone();
    let key = object.key.clone();
    UploadBody::from_factory(object.size, move || {
        let (uploader, key) = (uploader.clone(), key.clone());
        async move {
            let (_, stream) =
                uploader.open(&key).await.map_err(|e| Box::new(e) as ferry_genesys::BoxError)?;
            let mut hasher = Some(ferry_core::checksum::Md5Hasher::new());
            let checked = stream.map(Some).chain(futures::stream::iter([None])).filter_map(move |item| {
                let out = match item {
                    Some(Ok(bytes)) => {
                        if let Some(h) = hasher.as_mut() {
                            h.update(&bytes);
                        }
                        Some(Ok(bytes))
                    }
                    Some(Err(e)) => Some(Err(e)),
                    None => {
                        let digest = hasher.take().map(ferry_core::checksum::Md5Hasher::finish);
                        (digest != Some(md5)).then(|| Err("stored object does not match its MD5".into()))
                    }
                };
                futures::future::ready(out)
            });
            Ok(Box::pin(checked) as ferry_genesys::guest::ByteStream)
        }
    })
}

fn file_id(state: &AppState, object: &UploadedObject) -> String {
    let tail = object.key.strip_prefix(&state.config.s3.prefix).unwrap_or(&object.key);
    crate::links::file_id(tail)
}

fn download_link(state: &AppState, object: &UploadedObject) -> String {
    let expires = state.now_unix() + state.config.link_ttl_secs;
    state.links.link(&file_id(state, object), expires)
}

fn reference(
    state: &AppState,
    caller: &Caller,
    declared: &Declared,
    object: &UploadedObject,
    summary: &ObjectSummary,
    delivered: Delivered,
) -> Value {
    let mut checksums = json!({"md5": summary.md5.to_hex(), "s3ETag": object.etag});
    if let Some(sha) = summary.sha256 {
        checksums["sha256"] = json!(sha.to_hex());
    }
    if let Some(crc) = summary.crc {
        checksums[crc.algorithm.s3_name().to_ascii_lowercase()] = json!(crc.to_base64());
    }
    let delivery = match delivered {
        Delivered::Native { attachment_id } => {
            json!({"mode": "native", "genesysAttachmentId": attachment_id})
        }
        Delivered::Link => json!({"mode": "link"}),
        Delivered::Client => json!({"mode": "client"}),
        Delivered::OpenMessaging { message_id } => {
            json!({"mode": "open-messaging", "genesysMessageId": message_id})
        }
    };
    let mut reference = json!({
        "type": "file",
        "id": file_id(state, object),
        "name": declared.name,
        "size": object.size,
        "contentType": declared.content_type,
        "downloadUrl": download_link(state, object),
        "status": "uploaded",
        "uploadedAt": ferry_genesys::platform::rfc3339(std::time::SystemTime::now()),
        "checksums": checksums,
        "storage": {"bucket": object.bucket, "key": object.key},
        "delivery": delivery,
    });
    if let Caller::Ticket(Claims { reference: Some(r), .. }) = caller {
        reference["reference"] = json!(r);
    }
    if let Some(caption) = &declared.caption {
        reference["text"] = json!(caption);
    }
    reference
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
