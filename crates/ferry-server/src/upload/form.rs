//! Reading the body in the request: a raw body is handed to the upload task as it arrives
//! ([`pump`]); in a `multipart/form-data` body ([`read`]) the `file` part is, a `text` part is the
//! caption, a `conversationId` part is the caller's conversation id, other parts are read and dropped. Everything but the file's content is held to a few
//! KiB (part headers by [`PartHeaderGuard`], fields by the parser's limits).

use crate::body::{BodyError, PartHeaderGuard};
use crate::error::{AppError, ErrorCode};
use crate::upload::declared::{self, Declared, TypePolicy};
use crate::upload::ingest::Feed;
use crate::upload::reference;
use bytes::Bytes;
use futures::Stream;

/// Extra (non-file, non-caption) fields are read and dropped up to this size.
const MAX_EXTRA_FIELD: u64 = 64 * 1024;

/// Reads the form in `body`, feeding its file to `feed`; returns the caption. A `conversationId`
/// field goes into `conversation_id` (refused when that already holds one, from the query). `Err`
/// when the form is refused; when the upload task stops reading, this waits (the task's result
/// answers).
pub(crate) async fn read<S>(
    body: S,
    boundary: &str,
    max_size: u64,
    policy: &TypePolicy,
    feed: &Feed,
    conversation_id: &mut Option<String>,
) -> Result<Option<String>, AppError>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Send + Unpin + 'static,
{
    let limits = multer::SizeLimit::new()
        .whole_stream(max_size.saturating_add(256 * 1024))
        .per_field(MAX_EXTRA_FIELD)
        .for_field("file", max_size)
        .for_field("text", declared::MAX_CAPTION as u64)
        .for_field("conversationId", 1024);
    let constraints = multer::Constraints::new().size_limit(limits);
    let mut form =
        multer::Multipart::with_constraints(PartHeaderGuard::new(body, boundary), boundary, constraints);
    let form_error = |error: multer::Error| body_error(BodyError::from_form(error), max_size);
    let mut caption = None;
    let mut has_file = false;
    while let Some(mut field) = form.next_field().await.map_err(form_error)? {
        match field.name() {
            Some("file") if has_file => {
                return Err(AppError::new(ErrorCode::InvalidMultipart, "more than one `file` part"));
            }
            Some("file") => {
                let content_type = field.content_type().map(ToString::to_string);
                let file = Declared::from_part(field.file_name(), content_type.as_deref())?;
                policy.check_declared(&file)?;
                has_file = true;
                if feed.start(file).await.is_err() {
                    return upload_stopped().await;
                }
                while let Some(bytes) = field.chunk().await.map_err(form_error)? {
                    if feed.bytes(bytes).await.is_err() {
                        return upload_stopped().await;
                    }
                }
            }
            Some("text") => {
                let text = field.text().await.map_err(|e| match e {
                    multer::Error::FieldSizeExceeded { .. } => declared::caption_too_long(),
                    other => form_error(other),
                })?;
                caption = Some(declared::check_caption(text)?);
            }
            Some("conversationId") => {
                let text = field.text().await.map_err(|e| match e {
                    multer::Error::FieldSizeExceeded { .. } => {
                        reference::invalid_conversation_id("`conversationId` is too long")
                    }
                    other => form_error(other),
                })?;
                if conversation_id.is_some() {
                    return Err(reference::conversation_id_twice());
                }
                *conversation_id = Some(reference::check_conversation_id(text)?);
            }
            _ => {
                while field
                    .chunk()
                    .await
                    .map_err(|e| match e {
                        multer::Error::FieldSizeExceeded { .. } => {
                            AppError::new(ErrorCode::InvalidMultipart, "an extra form field is too large")
                        }
                        other => form_error(other),
                    })?
                    .is_some()
                {}
            }
        }
    }
    if !has_file {
        return Err(AppError::new(ErrorCode::InvalidMultipart, "no `file` part in the form"));
    }
    Ok(caption)
}

/// Reads a raw body, feeding it to `feed`. `Err` when the body breaks off; when the upload task
/// stops reading, this waits (the task's result answers).
pub(crate) async fn pump<S>(mut body: S, max_size: u64, feed: &Feed) -> Result<(), AppError>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Unpin,
{
    use futures::StreamExt as _;
    while let Some(bytes) = body.next().await {
        let bytes = bytes.map_err(|e| body_error(e, max_size))?;
        if feed.bytes(bytes).await.is_err() {
            return upload_stopped().await;
        }
    }
    Ok(())
}

/// The upload task has stopped reading: wait, so that its result answers the request.
async fn upload_stopped<T>() -> Result<T, AppError> {
    std::future::pending().await
}

/// The answer for a body that could not be read.
pub(crate) fn body_error(error: BodyError, max_size: u64) -> AppError {
    match error {
        BodyError::Disconnected(why) => {
            tracing::info!(error = %why, "request body ended abnormally");
            AppError::new(ErrorCode::ClientDisconnected, "the request body ended abnormally")
        }
        BodyError::Malformed(why) => {
            AppError::new(ErrorCode::InvalidMultipart, format!("malformed multipart/form-data: {why}"))
        }
        BodyError::TooLarge => AppError::too_large(max_size),
    }
}
