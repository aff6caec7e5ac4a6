//! Delivery: the stored file into the conversation. A guest session gets a native attachment
//! (streamed back out of S3 and MD5-checked on the way) or a link message; an Open Messaging
//! deployment gets the signed link through the platform API (as an attachment up to its cap, as
//! text above it); a ticket's page posts the link itself (`client`).
//!
//! Delivery runs only once the file is stored and verified, and it never fails the upload: what
//! Genesys refuses or leaves unconfirmed natively falls back to a link message in the same
//! conversation ([`Delivered::Link`] with its [`NativeRefusal`]); when even that cannot be
//! confirmed, the answer says so ([`Delivered::Undelivered`], mode `none`, with a stable error)
//! and the caller posts the `downloadUrl` itself.

use crate::config::DeliveryPreference;
use crate::error::{AppError, ErrorCode};
use crate::state::{AppState, Destination};
use crate::tickets::Claims;
use crate::upload::auth::Caller;
use crate::upload::declared::Declared;
use crate::upload::reference::{download_link, file_id};
use ferry_core::checksum::{WholeDigests, WholeHasher};
use ferry_genesys::guest::{ByteStream, FileMeta, FoundMessage, GuestSession, NativeFailure, UploadBody};
use ferry_genesys::limits::AttachmentDecision;
use ferry_genesys::platform::{OpenAttachment, OpenFrom, OpenMessage, PlatformClient};
use ferry_genesys::{Error as GenesysError, Fault};
use ferry_s3::{Stored, UploadedObject};
use futures::StreamExt as _;
use serde::Serialize;

/// Open Messaging attachments above this many bytes go as a text message with the link, unless
/// the deployment sets `open_messaging.max_attachment_bytes` (Genesys documents 25 MB).
pub(crate) const OPEN_MESSAGING_ATTACHMENT_CAP: u64 = 25_000_000;

/// How the file reached the conversation (the reference's `delivery`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub(crate) enum Delivered {
    /// A native attachment.
    Native {
        /// Genesys's attachment id.
        #[serde(rename = "genesysAttachmentId")]
        attachment_id: String,
    },
    /// A link message.
    Link {
        /// Why not natively, when the deployment's limits said so before trying.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// What Genesys refused (or left unconfirmed) when the native attachment was tried.
        #[serde(skip_serializing_if = "Option::is_none")]
        fallback: Option<NativeRefusal>,
    },
    /// Left to the client (tickets).
    Client,
    /// An Open Messaging message.
    OpenMessaging {
        /// Genesys's message id.
        #[serde(rename = "genesysMessageId")]
        message_id: String,
        /// `true` when the file went as a text message with the link (over the attachment cap).
        #[serde(rename = "asLink")]
        as_link: bool,
    },
    /// Stored, but not delivered: the caller posts `downloadUrl` itself.
    #[serde(rename = "none")]
    Undelivered {
        /// A stable code: `conversation_closed`, `unknown_session`, `session_refused`,
        /// `session_ended`, `delivery_unconfirmed`, `genesys_rate_limited`, `genesys_misconfigured`,
        /// `genesys_origin_refused`, `genesys_unavailable`.
        error: &'static str,
        /// What happened, for people.
        message: String,
        /// What Genesys refused natively before the link message was tried, if it was.
        #[serde(skip_serializing_if = "Option::is_none")]
        fallback: Option<NativeRefusal>,
    },
}

impl Delivered {
    /// The `mode`, for logs.
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            Self::Native { .. } => "native",
            Self::Link { .. } => "link",
            Self::Client => "client",
            Self::OpenMessaging { .. } => "open-messaging",
            Self::Undelivered { .. } => "none",
        }
    }

    /// The stable error of an undelivered file.
    fn undelivered(error: GenesysError, fallback: Option<NativeRefusal>) -> Self {
        tracing::warn!(%error, "stored file not delivered; the caller has its link");
        let (code, message) = match error {
            GenesysError::DeliveryUnconfirmed | GenesysError::Timeout { waiting_for: "onMessage", .. } => (
                "delivery_unconfirmed",
                "Genesys did not confirm the message; it may or may not have arrived".to_owned(),
            ),
            GenesysError::ConversationClosed => {
                ("conversation_closed", "the conversation ended before the file could be posted".to_owned())
            }
            GenesysError::SessionEnded(end) => {
                ("session_ended", format!("the guest session ended ({end}) before the file could be posted"))
            }
            other => {
                let code = AppError::from(other).code();
                (code.as_str(), format!("the file could not be posted into the conversation ({code})"))
            }
        };
        Self::Undelivered { error: code, message, fallback }
    }
}

/// Why a native attachment was given up for a link: the `step` Genesys refused at
/// (`request_upload`, `put`, `upload_event`, `message`), the Web Messaging `code` (4001, 4003, …)
/// when it gave one, the HTTP status of a refused presigned `PUT`, and a reason for people.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NativeRefusal {
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'static str>,
    code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    reason: String,
}

/// What to do after a native attachment failed.
enum NextStep {
    /// Send the link, saying why.
    Link(NativeRefusal),
    /// The message may be there: look for it before sending anything else (never twice).
    Lookup,
    /// Send nothing more: the session or conversation is over.
    Stop,
}

/// How many of the conversation's newest messages are searched for one whose confirmation was lost.
const LOOKUP_MESSAGES: usize = 100;

/// After a message that was sent but not confirmed: `Some(found)` when it is in the conversation,
/// `None` when it is not (sending again is safe), `Err` when that cannot be told.
/// A session that states no `allowedMedia` decides by the deployment's public `config.json`, as
/// the official clients do; if it cannot be read, the session allows no native attachment (links).
async fn consult_deployment_config(destination: &Destination, deployment: &str, session: &mut GuestSession) {
    let stated = session.info().response.allowed_media.as_ref().is_some_and(|m| m.inbound.is_some());
    let Some(cdn) = destination.deployment_config.as_ref().filter(|_| !stated) else { return };
    match cdn.get(deployment).await {
        Ok(config) => session.use_deployment_config(config),
        Err(error) => {
            tracing::warn!(deployment, error = %error, "cannot read the deployment's config.json; sending a link")
        }
    }
}

async fn look_for(session: &mut GuestSession, file: &FileMeta) -> Result<Option<FoundMessage>, GenesysError> {
    let found = session.find_own_message(&file.file_id, LOOKUP_MESSAGES).await;
    if let Err(error) = &found {
        tracing::warn!(%error, "could not look for an unconfirmed message");
    }
    found
}

fn is_unconfirmed(error: &GenesysError) -> bool {
    error.native_failure() == NativeFailure::Unconfirmed
}

fn after_native(error: &GenesysError) -> NextStep {
    if is_unconfirmed(error) {
        return NextStep::Lookup;
    }
    match error.native_failure() {
        NativeFailure::Refused { step, code, status, reason } => NextStep::Link(NativeRefusal {
            step: Some(step.as_str()),
            code: code.map(|c| c.as_u32()),
            http_status: status,
            reason,
        }),
        NativeFailure::ConversationClosed | NativeFailure::SessionEnded(_) => NextStep::Stop,
        _ if error.fault() == Fault::Session => NextStep::Stop,
        _ => NextStep::Link(NativeRefusal {
            step: None,
            code: error.genesys_code().map(|c| c.as_u32()),
            http_status: error.status(),
            reason: error.to_string(),
        }),
    }
}

/// Refuses, before the body is read, an upload this destination could never deliver.
pub(crate) fn precheck(destination: &Destination, caller: &Caller) -> Result<(), AppError> {
    let open =
        destination.settings.delivery == DeliveryPreference::OpenMessaging && destination.platform.is_some();
    if open && !matches!(caller, Caller::Ticket(Claims { from: Some(_), .. })) {
        return Err(AppError::new(
            ErrorCode::MissingRecipient,
            "this deployment delivers through Open Messaging: the ticket must name the customer (`from`)",
        ));
    }
    Ok(())
}

/// Delivers `stored` for `caller` to `destination`. Never fails: see the module docs.
pub(crate) async fn deliver(
    state: &AppState,
    destination: &Destination,
    caller: &Caller,
    declared: &Declared,
    stored: &Stored,
) -> Delivered {
    if destination.settings.delivery == DeliveryPreference::OpenMessaging
        && let Some(platform) = &destination.platform
    {
        return open_messaging(state, destination, platform, caller, declared, stored).await;
    }
    let Caller::Guest { deployment, token } = caller else { return Delivered::Client };
    let Stored { object, summary } = stored;
    let file = FileMeta {
        file_id: file_id(state, object),
        file_name: declared.name.clone(),
        mime_type: declared.content_type.clone(),
        size: object.size,
        sha256: summary.sha256,
        md5: summary.md5,
        attributes: Default::default(),
    };
    let link = Link { url: download_link(state, object), caption: declared.caption.as_deref() };
    let mut session = match destination.guest.connect(deployment, token).await {
        Ok(session) => session,
        Err(error) => return Delivered::undelivered(error, None),
    };
    consult_deployment_config(destination, deployment, &mut session).await;
    let delivered = match (&destination.settings.delivery, session.decide(&file)) {
        (DeliveryPreference::Link, _) => link.send(&mut session, &file, None, None).await,
        (_, AttachmentDecision::Link(reason)) => {
            link.send(&mut session, &file, Some(reason.to_string()), None).await
        }
        (_, AttachmentDecision::Native) => {
            let body = object_body(state, object, WholeDigests { md5: summary.md5, sha256: summary.sha256 });
            match session.send_attachment(&file, body, link.caption).await {
                Ok(attachment) => Delivered::Native { attachment_id: attachment.attachment_id },
                Err(error) => match after_native(&error) {
                    NextStep::Link(refusal) => {
                        tracing::warn!(%error, "native attachment refused; sending the link");
                        link.send(&mut session, &file, None, Some(refusal)).await
                    }
                    NextStep::Stop => Delivered::undelivered(error, None),
                    // Never twice: the message is looked for before the link may go.
                    NextStep::Lookup => match look_for(&mut session, &file).await {
                        Ok(Some(found)) => match found.attachment_ids.into_iter().next() {
                            Some(attachment_id) => Delivered::Native { attachment_id },
                            None => Delivered::Link { reason: None, fallback: None },
                        },
                        Ok(None) => {
                            let refusal = NativeRefusal {
                                step: Some("message"),
                                code: None,
                                http_status: None,
                                reason:
                                    "onMessage was not confirmed, and the message is not in the conversation"
                                        .to_owned(),
                            };
                            link.send(&mut session, &file, None, Some(refusal)).await
                        }
                        Err(_) => Delivered::undelivered(error, None),
                    },
                },
            }
        }
    };
    session.close();
    delivered
}

/// A link message about to be sent.
struct Link<'a> {
    url: String,
    caption: Option<&'a str>,
}

impl Link<'_> {
    async fn send(
        &self,
        session: &mut GuestSession,
        file: &FileMeta,
        reason: Option<String>,
        fallback: Option<NativeRefusal>,
    ) -> Delivered {
        match session.send_link(file, &self.url, self.caption).await {
            Ok(_) => Delivered::Link { reason, fallback },
            // The link may have arrived: if it is there, it is delivered; it is never sent twice.
            Err(error) if is_unconfirmed(&error) => match look_for(session, file).await {
                Ok(Some(_)) => Delivered::Link { reason, fallback },
                _ => Delivered::undelivered(error, fallback),
            },
            Err(error) => Delivered::undelivered(error, fallback),
        }
    }
}

async fn open_messaging(
    state: &AppState,
    destination: &Destination,
    platform: &PlatformClient,
    caller: &Caller,
    declared: &Declared,
    stored: &Stored,
) -> Delivered {
    let settings = destination.settings.open_messaging.as_ref();
    let integration = settings.map(|om| om.integration_id.clone()).unwrap_or_default();
    let cap = settings.and_then(|om| om.max_attachment_bytes).unwrap_or(OPEN_MESSAGING_ATTACHMENT_CAP);
    // `precheck` refused tickets without a customer before the body was read.
    let Caller::Ticket(Claims { from: Some(from), .. }) = caller else { return Delivered::Client };
    let Stored { object, summary } = stored;
    let link = download_link(state, object);
    let as_link = object.size > cap;
    let text = as_link.then(|| link_text(&declared.name, object.size, &link, declared.caption.as_deref()));
    let id = file_id(state, object);
    let attachment = OpenAttachment::file(
        ferry_genesys::Secret::new(crate::download::fetch_link(state, &id, link.clone())),
        declared.name.clone(),
        declared.content_type.clone(),
        summary.sha256,
    );
    let mut message = OpenMessage::file(
        OpenFrom::opaque(from.clone()),
        id,
        std::time::SystemTime::now(),
        attachment,
        declared.caption.clone(),
    );
    if let Some(text) = text {
        message.content.clear();
        message.text = Some(text);
    }
    match platform.send_open_message(&integration, &message).await {
        Ok(receipt) => Delivered::OpenMessaging { message_id: receipt.body.id, as_link },
        Err(error) => Delivered::undelivered(error, None),
    }
}

/// The text of a link message: the caption on a line of its own, then name, size and link.
fn link_text(name: &str, size: u64, link: &str, caption: Option<&str>) -> String {
    let line = format!("{name} ({}): {link}", ferry_genesys::guest::human_size(size));
    match caption {
        Some(caption) if !caption.is_empty() => format!("{caption}\n{line}"),
        _ => line,
    }
}

/// The stored object as a re-openable stream, checked against the stored MD5 on the way (its
/// SHA-256 when no MD5 was computed, `data_path.whole_file_md5` off; a guest's upload always has
/// it): a stream whose bytes do not hash to it ends in an error, so the presigned PUT fails.
fn object_body(state: &AppState, object: &UploadedObject, stored: WholeDigests) -> UploadBody {
    let by_md5 = stored.md5.is_some();
    let expected = WholeDigests { md5: stored.md5, sha256: stored.sha256.filter(|_| !by_md5) };
    let uploader = state.uploader.clone();
    let key = object.key.clone();
    UploadBody::from_factory(object.size, move || {
        let (uploader, key) = (uploader.clone(), key.clone());
        async move {
            let (_, stream) =
                uploader.open(&key).await.map_err(|e| Box::new(e) as ferry_genesys::BoxError)?;
            let mut hasher = Some(WholeHasher::new(by_md5, !by_md5));
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
                        let digest = hasher.take().map(WholeHasher::finish);
                        let what = if by_md5 { "MD5" } else { "SHA-256" };
                        (digest != Some(expected))
                            .then(|| Err(format!("stored object does not match its {what}").into()))
                    }
                };
                futures::future::ready(out)
            });
            Ok(Box::pin(checked) as ByteStream)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_genesys::guest::SessionEnd;
    use ferry_genesys::protocol::ErrorCode as Code;
    use serde_json::json;

    fn refusal(error: &GenesysError) -> NativeRefusal {
        match after_native(error) {
            NextStep::Link(refusal) => refusal,
            NextStep::Stop | NextStep::Lookup => panic!("{error} should fall back to a link"),
        }
    }

    #[test]
    fn refused_native_attachments_fall_back_to_a_link_saying_where() {
        let put = refusal(&GenesysError::UploadRejected { status: 403 });
        assert_eq!((put.step, put.code, put.http_status), (Some("put"), None, Some(403)));
        let failed = GenesysError::UploadFailed { code: Code::from_u32(4003), message: "bad".into() };
        let event = refusal(&failed);
        assert_eq!((event.step, event.code, event.http_status), (Some("upload_event"), Some(4003), None));
        let url =
            GenesysError::Genesys { action: "onAttachment", code: Code::from_u32(4001), message: "x".into() };
        assert_eq!(refusal(&url).step, Some("request_upload"));
        assert_eq!(refusal(&url).code, Some(4001));
        // Anything else that is not the session's end is worth a link too.
        let lost = GenesysError::SessionLimitReached;
        assert_eq!(refusal(&lost).step, None);
    }

    #[test]
    fn an_unconfirmed_message_is_looked_for_and_an_ended_session_stops() {
        let timeout =
            GenesysError::Timeout { waiting_for: "onMessage", after: std::time::Duration::from_secs(30) };
        for error in [GenesysError::DeliveryUnconfirmed, timeout] {
            assert!(matches!(after_native(&error), NextStep::Lookup), "{error}");
        }
        for error in [
            GenesysError::ConversationClosed,
            GenesysError::SessionEnded(SessionEnd::LoggedOut),
            GenesysError::SessionNotFound,
        ] {
            assert!(matches!(after_native(&error), NextStep::Stop), "{error}");
        }
    }

    #[test]
    fn outcomes_serialize_as_documented() {
        let link = Delivered::Link {
            reason: None,
            fallback: Some(refusal(&GenesysError::UploadFailed {
                code: Code::from_u32(4003),
                message: "no".into(),
            })),
        };
        let value = serde_json::to_value(&link).unwrap();
        assert_eq!(value["mode"], "link");
        assert_eq!(value["fallback"]["step"], "upload_event");
        assert_eq!(value["fallback"]["code"], 4003);
        assert!(value["fallback"].get("httpStatus").is_none() && value.get("reason").is_none(), "{value}");
        let closed =
            serde_json::to_value(Delivered::undelivered(GenesysError::ConversationClosed, None)).unwrap();
        assert_eq!(
            (closed["mode"].clone(), closed["error"].clone()),
            (json!("none"), json!("conversation_closed"))
        );
        let cases = [
            (GenesysError::DeliveryUnconfirmed, "delivery_unconfirmed"),
            (GenesysError::SessionEnded(SessionEnd::Expired), "session_ended"),
            (GenesysError::SessionNotFound, "unknown_session"),
            (
                GenesysError::RateLimited { retry_after: std::time::Duration::from_secs(1) },
                "genesys_rate_limited",
            ),
            (GenesysError::HandshakeRejected { status: 403 }, "genesys_origin_refused"),
            (GenesysError::HandshakeRejected { status: 503 }, "genesys_unavailable"),
        ];
        for (error, code) in cases {
            let Delivered::Undelivered { error, .. } = Delivered::undelivered(error, None) else {
                unreachable!()
            };
            assert_eq!(error, code);
        }
        let om =
            serde_json::to_value(Delivered::OpenMessaging { message_id: "m".into(), as_link: true }).unwrap();
        assert_eq!(om, json!({"mode": "open-messaging", "genesysMessageId": "m", "asLink": true}));
    }

    #[test]
    fn link_text_puts_the_caption_first() {
        assert_eq!(link_text("a.pdf", 2048, "https://l", None), "a.pdf (2 KB): https://l");
        assert_eq!(link_text("a.pdf", 2048, "https://l", Some("hi")), "hi\na.pdf (2 KB): https://l");
    }
}
