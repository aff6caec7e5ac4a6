//! `POST /v1/uploads`: one upload, streamed from the request body through the chunker into S3,
//! then into the conversation.
//!
//! Order matters, so that nothing is half-done and nothing costly is spent on a request a local
//! check refuses. In the request: authorise ([`auth`]: a guest session or a ticket), read what the
//! headers declare ([`declared`]: deployment, size, name, type), and only then check a guest
//! session with Genesys, all before reading a byte; wait for the body's first bytes, then reserve the memory budget; read the
//! body ([`form`]) and hand the file's bytes to the upload's own task. In that task, tracked by
//! `AppState::completions`: store ([`ingest`]: sniffed, size-limited, digests compared before
//! completing), release the memory budget once the part buffers are gone, deliver ([`deliver`]),
//! and build the [`reference`]. A request that goes away before its body's end cancels the upload
//! (nothing is kept); one that goes away after it cancels nothing. Once the file is stored and
//! verified it is kept whatever delivery does: a refused native attachment becomes a link message,
//! and a file that cannot be posted at all is answered `201` with `delivery.mode: "none"`.

pub(crate) mod auth;
pub(crate) mod declared;
pub(crate) mod deliver;
mod form;
pub(crate) mod ingest;
pub(crate) mod reference;

use crate::admission::ClientAddr;
use crate::body::BodyError;
use crate::error::{AppError, ErrorCode};
use crate::request_id::ReqId;
use crate::state::{AppState, Destination};
use auth::Caller;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use declared::{Declared, Digests, Framing, TypePolicy};
use futures::{StreamExt, TryStreamExt};
use http::StatusCode;
use ingest::{Inbox, Target};
use reference::AttachmentReference;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

/// The handler.
pub async fn upload(State(state): State<AppState>, ReqId(request_id): ReqId, request: Request) -> Response {
    let started = Instant::now();
    let span = tracing::info_span!("upload", request_id = %request_id);
    let _in_flight = state.metrics.start();
    // A body ferry stops reading (a refusal mid-stream) is drained in the background, so the
    // client reads the answer instead of a reset connection.
    let request = request.map(|body| axum::body::Body::new(crate::linger::Lingering::new(body)));
    match handle(&state, request).instrument(span).await {
        Ok(reference) => {
            state.metrics.finish("created", reference.size, started.elapsed());
            tracing::info!(
                request_id = %request_id,
                size = reference.size,
                delivery = reference.delivery_mode(),
                took_ms = started.elapsed().as_millis() as u64,
                "upload stored"
            );
            (StatusCode::CREATED, axum::Json(reference)).into_response()
        }
        Err(error) => {
            let code = error.code();
            state.metrics.finish(code.as_str(), 0, started.elapsed());
            tracing::info!(request_id = %request_id, %code, status = error.status().as_u16(), "upload refused");
            error.with_request_id(&request_id).into_response()
        }
    }
}

/// Who asks, for which deployment, and what they may send: the checks `POST /v1/uploads` and tus
/// creation make, in this order, before reading their own headers.
pub(crate) struct Admitted {
    /// The connection's peer (the client address is derived from it and the headers).
    pub(crate) peer: Option<ClientAddr>,
    pub(crate) caller: Caller,
    pub(crate) destination: Arc<Destination>,
    /// The caller's `conversationId` (query), echoed in the reference.
    pub(crate) conversation_id: Option<String>,
    /// The largest file the caller may send.
    pub(crate) max_size: u64,
}

/// The client's admission, the caller's credentials, its deployment, a guest's standing, the
/// delivery's precheck and the `conversationId` of the query.
pub(crate) fn admit(state: &AppState, parts: &http::request::Parts) -> Result<Admitted, AppError> {
    let headers = &parts.headers;
    let peer = parts.extensions.get::<ClientAddr>().copied();
    state.admission.check_client(state.admission.client_ip(headers, peer))?;
    let caller = auth::authorise(state, headers)?;
    let destination = auth::destination(state, &caller)?;
    auth::check_guest(state, &caller, &destination, 0)?;
    deliver::precheck(&destination, &caller)?;
    let conversation_id = reference::conversation_id_from_query(parts.uri.query())?;
    let max_size = caller.max_size(&destination);
    Ok(Admitted { peer, caller, destination, conversation_id, max_size })
}

async fn handle(state: &AppState, request: Request) -> Result<AttachmentReference, AppError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let Admitted { peer, caller, destination, conversation_id, max_size } = admit(state, &parts)?;
    let framing = Framing::from_headers(headers, max_size)?;
    let digests = Digests::from_headers(headers)?;
    // A raw upload's name and type are in its headers: check them before anything else is spent.
    let policy = TypePolicy::new(&state.config.limits, caller.ticket_types())
        .with_executables(destination.settings.allow_executables);
    let raw = if framing.is_form() {
        None
    } else {
        let declared = Declared::from_headers(headers)?;
        policy.check_declared(&declared)?;
        Some(declared)
    };
    let boundary = framing.boundary()?;
    // A guest's quotas, then, every local check passed, its session with Genesys.
    let charge = framing.len.unwrap_or(0);
    auth::check_guest(state, &caller, &destination, charge)?;
    auth::check_session(state, &caller, &destination).await?;

    // Nothing is reserved for a client that has not started sending: wait for its first bytes.
    let mut body = body.into_data_stream().map_err(BodyError::from_http).peekable();
    let first = std::pin::Pin::new(&mut body).peek();
    if tokio::time::timeout(state.config.limits.idle_body_timeout(), first).await.is_err() {
        return Err(AppError::new(ErrorCode::BodyTimeout, "the request body stalled"));
    }
    // Claim this upload's share of the part-buffer budget, or say "busy" rather than overcommit.
    let permit = state.budget.clone().try_acquire_many_owned(state.upload_permits).map_err(|_| {
        AppError::new(ErrorCode::ServerBusy, "too many uploads in progress; try again shortly").retry_after(5)
    })?;
    // Counted among its address's uploads in progress once it sends (a silent connection holds nothing).
    let _client_slot = state.client_uploads.enter(state.admission.client_ip(headers, peer))?;
    auth::use_ticket(state, &caller).await?;
    // Held while this request waits for its upload; a body of unknown length is charged at the end.
    let guest_pass = auth::reserve_guest(state, &caller, &destination, charge)?;

    // From here the upload runs in a task of its own, fed by this request.
    let (feed, inbox) = ingest::channel();
    // A form may carry `conversationId` too (after the query's, which it must not repeat).
    let mut form_conversation_id = conversation_id.clone();
    let job = Job {
        state: state.clone(),
        destination,
        caller,
        digests,
        policy: policy.clone(),
        max_size,
        conversation_id,
    };
    // Only a raw body's length is the file's.
    let len = if raw.is_some() { framing.len } else { None };
    let mut task = state.completions.spawn(job.run(inbox, permit, len).in_current_span());
    let reading = async {
        match (raw, boundary) {
            (Some(declared), _) => {
                let caption = declared.caption.clone();
                if feed.start(declared).await.is_ok() {
                    form::pump(body, max_size, &feed).await?;
                }
                Ok(caption)
            }
            (None, Some(boundary)) => {
                form::read(body, &boundary, max_size, &policy, &feed, &mut form_conversation_id).await
            }
            (None, None) => Err(AppError::new(ErrorCode::InvalidMultipart, "no form boundary")),
        }
    };
    let first = tokio::select! {
        biased;
        done = &mut task => First::Task(done),
        read = reading => First::Body(read),
    };
    let done = match first {
        First::Task(done) => done,
        First::Body(Ok(caption)) => {
            // The body is all in: from now on a hang-up cancels nothing.
            feed.end(caption);
            task.await
        }
        First::Body(Err(error)) => {
            // The task sees the feed go, aborts, and is awaited so nothing is left when we answer.
            drop(feed);
            let _ = task.await;
            return Err(error);
        }
    };
    let mut reference = done.map_err(|e| {
        // Only a panic in the task gets here (nothing aborts it).
        tracing::error!(error = %e, "an upload's task failed");
        AppError::new(ErrorCode::StorageUnavailable, "the upload could not be completed")
    })??;
    if form_conversation_id.is_some() {
        reference.set_conversation_id(form_conversation_id);
    }
    if let Some(pass) = guest_pass
        && charge == 0
    {
        pass.charge(reference.size);
    }
    Ok(reference)
}

/// Which finished first: the upload task or the reading of the body.
enum First<T> {
    Task(T),
    Body(Result<Option<String>, AppError>),
}

/// What the upload task needs.
struct Job {
    state: AppState,
    destination: Arc<Destination>,
    caller: Caller,
    digests: Digests,
    policy: TypePolicy,
    max_size: u64,
    /// The caller's `conversationId`, echoed in the reference.
    conversation_id: Option<String>,
}

impl Job {
    /// Stores the file fed through `inbox` (holding the memory `permit` until the part buffers are
    /// gone), then delivers it. A stored file is kept whatever delivery does.
    async fn run(
        self,
        inbox: Inbox,
        permit: OwnedSemaphorePermit,
        len: Option<u64>,
    ) -> Result<AttachmentReference, AppError> {
        let Self { state, destination, caller, digests, policy, max_size, conversation_id } = self;
        let Some((mut declared, incoming)) = inbox.open(&state.config.limits, policy).await else {
            return Err(ingest::cut_off());
        };
        let (reservation, guest) = (Some(permit), matches!(caller, Caller::Guest { .. }));
        let target = Target {
            deployment: &destination.id,
            declared: &declared,
            digests,
            max_size,
            len,
            reservation,
            guest,
        };
        let stored = ingest::store(&state, target, incoming.body).await;
        let (stored, scan) = stored?;
        // The body ended, so its caption came with the end.
        declared.caption = incoming.caption.get();
        let delivered = deliver::deliver(&state, &destination, &caller, &declared, &stored).await;
        let mut reference = AttachmentReference::new(&state, &caller, &declared, &stored, delivered);
        reference.set_conversation_id(conversation_id);
        reference.set_scan(scan);
        Ok(reference)
    }
}
