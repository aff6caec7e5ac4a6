//! Who is uploading, as the request proves it: a guest session (custom clients; an anonymous
//! user, held to the deployment's guest settings and quotas, and checked with Genesys after every
//! local check and before the body is read) or an upload ticket (stock Messenger pages; checked at
//! once, used up only when the upload really starts).

use crate::admission::GuestPass;
use crate::error::{AppError, ErrorCode};
use crate::state::{AppState, Destination};
use crate::tickets::Claims;
use ferry_genesys::SessionToken;
use http::{HeaderMap, header};

/// Who may upload.
#[derive(Debug)]
pub(crate) enum Caller {
    /// A guest session: ferry delivers into the conversation.
    Guest {
        /// Deployment id.
        deployment: String,
        /// The customer's session token.
        token: SessionToken,
    },
    /// An upload ticket: the page posts the link itself.
    Ticket(Claims),
}

impl Caller {
    /// The deployment the upload is for.
    pub(crate) fn deployment(&self) -> &str {
        match self {
            Self::Guest { deployment, .. } => deployment,
            Self::Ticket(claims) => &claims.dep,
        }
    }

    /// The largest file this caller may send to `destination`.
    pub(crate) fn max_size(&self, destination: &Destination) -> u64 {
        match self {
            Self::Ticket(Claims { max: Some(max), .. }) => destination.max_file_size.min(*max),
            Self::Ticket(_) => destination.max_file_size,
            Self::Guest { .. } => destination.max_file_size.min(destination.settings.guests.max_file_size),
        }
    }

    /// A ticket's own allowed types.
    pub(crate) fn ticket_types(&self) -> Option<&[String]> {
        match self {
            Self::Ticket(Claims { types: Some(types), .. }) => Some(types),
            _ => None,
        }
    }
}

/// Reads `Authorization` (and `X-Genesys-Deployment-Id` for a guest session). A ticket is checked
/// here but not used up.
pub(crate) fn authorise(state: &AppState, headers: &HeaderMap) -> Result<Caller, AppError> {
    let missing = || {
        AppError::new(
            ErrorCode::MissingSession,
            "send `Authorization: Bearer <guest session token>` with X-Genesys-Deployment-Id, or `Authorization: Ferry-Ticket <ticket>`",
        )
    };
    let auth = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let auth = auth.to_str().map_err(|_| missing())?.trim();
    let (scheme, credentials) = auth.split_once(' ').unwrap_or((auth, ""));
    if scheme.eq_ignore_ascii_case("Ferry-Ticket") {
        let verifier = state.tickets.as_ref().ok_or_else(|| {
            AppError::new(ErrorCode::InvalidTicket, "upload tickets are not enabled on this server")
        })?;
        let claims = verifier
            .check(credentials.trim(), state.now_unix())
            .map_err(|e| AppError::new(ErrorCode::InvalidTicket, e.message()))?;
        return Ok(Caller::Ticket(claims));
    }
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(missing());
    }
    let token = Some(credentials.trim()).filter(|t| !t.is_empty()).ok_or_else(missing)?;
    if token.len() > 256 || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(AppError::new(ErrorCode::UnknownSession, "the session token is not one Genesys issues"));
    }
    let deployment = headers
        .get("x-genesys-deployment-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::MissingDeployment,
                "X-Genesys-Deployment-Id is required with a guest session",
            )
        })?;
    Ok(Caller::Guest { deployment: deployment.to_owned(), token: SessionToken::new(token) })
}

/// The deployment the caller names, if ferry serves it.
pub(crate) fn destination(
    state: &AppState,
    caller: &Caller,
) -> Result<std::sync::Arc<Destination>, AppError> {
    state.destination(caller.deployment()).ok_or_else(|| {
        AppError::new(ErrorCode::DeploymentNotAllowed, "ferry is not configured for this deployment")
    })
}

/// A guest session is checked with Genesys before a byte of the body is read, and only after
/// every local check; the connection is closed again at once (a token allows only three). A check
/// that succeeded recently is not repeated; checks are limited per deployment by a rate and by a
/// cap on checks in flight, so a flood of fresh tokens costs Genesys little.
pub(crate) async fn check_session(
    state: &AppState,
    caller: &Caller,
    destination: &Destination,
) -> Result<(), AppError> {
    let Caller::Guest { deployment, token } = caller else { return Ok(()) };
    let admission = &state.admission;
    if admission.session_known(deployment, token.expose()) {
        return Ok(());
    }
    let _slot = admission.session_check_slot(deployment)?;
    destination.guest.validate(deployment, token).await?;
    admission.remember_session(deployment, token.expose());
    Ok(())
}

/// A guest's standing before the session check: guest uploads are on for the deployment and the
/// session's quotas leave room for `charge` more bytes. Tickets pass.
pub(crate) fn check_guest(
    state: &AppState,
    caller: &Caller,
    destination: &Destination,
    charge: u64,
) -> Result<(), AppError> {
    let Caller::Guest { deployment, token } = caller else { return Ok(()) };
    state.admission.check_guest(deployment, token.expose(), &destination.settings.guests, charge)
}

/// Records a guest's upload against its session's quotas (checked again); `None` for a ticket.
pub(crate) fn reserve_guest(
    state: &AppState,
    caller: &Caller,
    destination: &Destination,
    charge: u64,
) -> Result<Option<GuestPass>, AppError> {
    let Caller::Guest { deployment, token } = caller else { return Ok(None) };
    let guests = &destination.settings.guests;
    state.admission.reserve_guest(deployment, token.expose(), guests, charge).map(Some)
}

/// Uses a ticket up: called only once the upload really starts, so that a refusal before (wrong
/// deployment, too large, busy) leaves it good for a retry.
pub(crate) async fn use_ticket(state: &AppState, caller: &Caller) -> Result<(), AppError> {
    if let Caller::Ticket(claims) = caller
        && let Some(verifier) = &state.tickets
    {
        verifier.consume(claims, state.now_unix()).await?;
    }
    Ok(())
}
