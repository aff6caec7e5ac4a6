//! Why a native delivery did not put the file into the conversation, sorted for a caller that
//! already holds the file and must choose what to do next: fall back to a link message in the
//! same conversation, look for a message whose confirmation was lost, or give up because the
//! session or conversation ended. [`Error::native_failure`] reads it off any [`Error`].

use crate::error::Error;
use crate::protocol::ErrorCode;
use std::fmt;

/// The step of a native attachment delivery at which Genesys refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeStep {
    /// `onAttachment` answered with `GenerateUrlError` (or an error frame).
    RequestUpload,
    /// The presigned `PUT` got a non-2xx answer or failed in transport (after its retries).
    Put,
    /// Genesys pushed an `UploadFailureEvent` after the `PUT`, or no upload event came in time.
    UploadEvent,
    /// `onMessage` naming the uploaded attachment was refused with an error frame.
    Message,
}

impl NativeStep {
    /// A stable lower-case name (`request_upload`, `put`, `upload_event`, `message`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestUpload => "request_upload",
            Self::Put => "put",
            Self::UploadEvent => "upload_event",
            Self::Message => "message",
        }
    }
}

impl fmt::Display for NativeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a session or conversation ended while ferry was using it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// `SessionExpiredEvent` (or code 4006).
    Expired,
    /// `LogoutEvent`.
    LoggedOut,
    /// `SessionClearedEvent`.
    Cleared,
}

impl SessionEnd {
    /// A stable lower-case name (`expired`, `logged_out`, `cleared`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::LoggedOut => "logged_out",
            Self::Cleared => "cleared",
        }
    }
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a failed native delivery means for a caller that holds the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NativeFailure {
    /// Genesys refused or failed the attachment at `step`; no message naming it was sent. The
    /// session is still usable: a link message in the same conversation is the fallback.
    Refused {
        /// Where.
        step: NativeStep,
        /// The Web Messaging code (4000–4029), when Genesys gave one.
        code: Option<ErrorCode>,
        /// The HTTP status of the presigned `PUT`, for [`NativeStep::Put`].
        status: Option<u16>,
        /// What Genesys (or the transport) said; never a URL or a token.
        reason: String,
    },
    /// `onMessage` was written but not confirmed (the socket dropped, or no echo in time): the
    /// message may be in the conversation. Look for it (its `ferryFileId` custom attribute)
    /// before sending anything else for this file.
    Unconfirmed,
    /// The conversation ended (`readOnly`, a Presence `Disconnect`): nothing more can be sent.
    ConversationClosed,
    /// The session ended (expired, logged out, cleared): nothing more can be sent on this token.
    SessionEnded(SessionEnd),
    /// Anything else (Genesys unreachable, rate limiting, a protocol violation, the session's
    /// connections taken by the customer, ferry's own configuration): [`Error::fault`] says
    /// whose. A link message may fail the same way.
    Other,
}

impl Error {
    /// What this error means for a native delivery of a file the caller already holds.
    pub fn native_failure(&self) -> NativeFailure {
        let refused = |step, code: Option<ErrorCode>, status: Option<u16>| NativeFailure::Refused {
            step,
            code,
            status,
            reason: self.to_string(),
        };
        match self {
            Self::ConversationClosed => NativeFailure::ConversationClosed,
            Self::SessionEnded(end) => NativeFailure::SessionEnded(*end),
            Self::Genesys { code: ErrorCode::SessionExpired, .. } => {
                NativeFailure::SessionEnded(SessionEnd::Expired)
            }
            Self::DeliveryUnconfirmed | Self::Timeout { waiting_for: "onMessage", .. } => {
                NativeFailure::Unconfirmed
            }
            Self::Genesys { action: "onAttachment", code, .. } => {
                refused(NativeStep::RequestUpload, Some(*code), None)
            }
            Self::Genesys { action: "onMessage", code, .. } => {
                refused(NativeStep::Message, Some(*code), None)
            }
            Self::UploadRejected { status } => refused(NativeStep::Put, None, Some(*status)),
            Self::UploadTransport(_) => refused(NativeStep::Put, None, None),
            Self::UploadFailed { code, .. } => refused(NativeStep::UploadEvent, Some(*code), None),
            Self::Timeout { waiting_for: UPLOAD_EVENT, .. } => refused(NativeStep::UploadEvent, None, None),
            _ => NativeFailure::Other,
        }
    }
}

/// What [`Error::Timeout`] says while waiting for the upload event.
pub(crate) const UPLOAD_EVENT: &str = "the upload event";

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failures_are_sorted_by_step() {
        let g = |action, code| Error::Genesys { action, code, message: "no".into() };
        let NativeFailure::Refused { step, code, status, reason } =
            g("onAttachment", ErrorCode::FileSizeInvalid).native_failure()
        else {
            panic!("a GenerateUrlError is a refusal")
        };
        assert_eq!((step, code, status), (NativeStep::RequestUpload, Some(ErrorCode::FileSizeInvalid), None));
        assert!(reason.contains("4002"), "{reason}");
        assert!(matches!(
            Error::UploadRejected { status: 503 }.native_failure(),
            NativeFailure::Refused { step: NativeStep::Put, status: Some(503), .. }
        ));
        let failed = Error::UploadFailed { code: ErrorCode::FileContentInvalid, message: "bad".into() };
        assert!(matches!(
            failed.native_failure(),
            NativeFailure::Refused {
                step: NativeStep::UploadEvent,
                code: Some(ErrorCode::FileContentInvalid),
                ..
            }
        ));
        let silent = Error::Timeout { waiting_for: UPLOAD_EVENT, after: Duration::from_secs(1) };
        assert!(matches!(
            silent.native_failure(),
            NativeFailure::Refused { step: NativeStep::UploadEvent, code: None, .. }
        ));
        assert!(matches!(
            g("onMessage", ErrorCode::MessageTooLong).native_failure(),
            NativeFailure::Refused { step: NativeStep::Message, .. }
        ));
        assert_eq!(Error::DeliveryUnconfirmed.native_failure(), NativeFailure::Unconfirmed);
        let no_echo = Error::Timeout { waiting_for: "onMessage", after: Duration::from_secs(1) };
        assert_eq!(no_echo.native_failure(), NativeFailure::Unconfirmed);
        assert_eq!(Error::ConversationClosed.native_failure(), NativeFailure::ConversationClosed);
        assert_eq!(
            Error::SessionEnded(SessionEnd::LoggedOut).native_failure(),
            NativeFailure::SessionEnded(SessionEnd::LoggedOut)
        );
        assert_eq!(
            g("getAttachment", ErrorCode::SessionExpired).native_failure(),
            NativeFailure::SessionEnded(SessionEnd::Expired)
        );
        assert_eq!(Error::RateLimited { retry_after: Duration::ZERO }.native_failure(), NativeFailure::Other);
        assert_eq!(Error::ConnectionLost { reason: None }.native_failure(), NativeFailure::Other);
    }
}
