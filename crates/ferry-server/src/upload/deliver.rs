//! Delivery: the stored file into the conversation. A guest session gets a native attachment
//! (streamed back out of S3 and MD5-checked on the way) or a link message; an Open Messaging
//! deployment gets the signed link through the platform API; a ticket's page posts the link
//! itself (`client`).

use crate::config::DeliveryPreference;
use crate::error::{AppError, ErrorCode};
use crate::state::{AppState, Destination};
use crate::tickets::Claims;
use crate::upload::auth::Caller;
use crate::upload::declared::Declared;
use crate::upload::reference::{download_link, file_id};
use ferry_core::checksum::{Md5, Md5Hasher};
use ferry_genesys::guest::{ByteStream, Delivery, Fallback, FileMeta, UploadBody};
use ferry_genesys::platform::{OpenAttachment, OpenFrom, OpenMessage, PlatformClient};
use ferry_s3::{Stored, UploadedObject};
use futures::StreamExt as _;
use serde::Serialize;

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
    Link,
    /// Left to the client (tickets).
    Client,
    /// An Open Messaging message.
    OpenMessaging {
        /// Genesys's message id.
        #[serde(rename = "genesysMessageId")]
        message_id: String,
    },
}

impl Delivered {
    /// The `mode`, for logs.
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            Self::Native { .. } => "native",
            Self::Link => "link",
            Self::Client => "client",
            Self::OpenMessaging { .. } => "open-messaging",
        }
    }
}

/// Delivers `stored` for `caller` to `destination`.
pub(crate) async fn deliver(
    state: &AppState,
    destination: &Destination,
    caller: &Caller,
    declared: &Declared,
    stored: &Stored,
) -> Result<Delivered, AppError> {
    if destination.settings.delivery == DeliveryPreference::OpenMessaging
        && let Some(platform) = &destination.platform
    {
        return open_messaging(state, destination, platform, caller, declared, stored).await;
    }
    let Caller::Guest { deployment, token } = caller else { return Ok(Delivered::Client) };
    let Stored { object, summary } = stored;
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
    let caption = declared.caption.as_deref();
    let mut session = destination.guest.connect(deployment, token).await?;
    let result = if destination.settings.delivery == DeliveryPreference::Link {
        session.send_link(&file, &link, caption).await.map(|_| Delivered::Link)
    } else {
        let body = object_body(state, object, summary.md5);
        session.deliver(&file, body, Some(&link), caption, Fallback::Link).await.map(
            |delivery| match delivery {
                Delivery::Native(attachment) => Delivered::Native { attachment_id: attachment.attachment_id },
                _ => Delivered::Link,
            },
        )
    };
    session.close();
    Ok(result?)
}

async fn open_messaging(
    state: &AppState,
    destination: &Destination,
    platform: &PlatformClient,
    caller: &Caller,
    declared: &Declared,
    stored: &Stored,
) -> Result<Delivered, AppError> {
    let integration =
        destination.settings.open_messaging.as_ref().map(|om| om.integration_id.clone()).unwrap_or_default();
    let Caller::Ticket(Claims { from: Some(from), .. }) = caller else {
        return Err(AppError::new(
            ErrorCode::MissingRecipient,
            "this deployment delivers through Open Messaging: the ticket must name the customer (`from`)",
        ));
    };
    let Stored { object, summary } = stored;
    let attachment = OpenAttachment::file(
        ferry_genesys::Secret::new(download_link(state, object)),
        declared.name.clone(),
        declared.content_type.clone(),
        summary.sha256,
    );
    let message = OpenMessage::file(
        OpenFrom::opaque(from.clone()),
        file_id(state, object),
        std::time::SystemTime::now(),
        attachment,
        declared.caption.clone(),
    );
    let receipt = platform.send_open_message(&integration, &message).await?;
    Ok(Delivered::OpenMessaging { message_id: receipt.body.id })
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
            let mut hasher = Some(Md5Hasher::new());
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
                        let digest = hasher.take().map(Md5Hasher::finish);
                        (digest != Some(md5)).then(|| Err("stored object does not match its MD5".into()))
                    }
                };
                futures::future::ready(out)
            });
            Ok(Box::pin(checked) as ByteStream)
        }
    })
}
