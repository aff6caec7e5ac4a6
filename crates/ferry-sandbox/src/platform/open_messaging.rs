//! Open Messaging inbound messages: `POST …/inbound/open/message` checks the body, then fetches
//! each attachment URL as Genesys does (streamed through SHA-256, bounded in size) and records the
//! message; `GET /sandbox/platform/open-messages` lists what arrived.

use super::api::{authenticate, error_body};
use super::{FetchedAttachment, PlatformState, ReceivedOpenMessage};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

pub(super) async fn list_open_messages(State(state): State<PlatformState>) -> Response {
    Json(state.open_messages()).into_response()
}

fn bad_request(message: &str, field: &str) -> Box<Response> {
    Box::new(error_body(
        StatusCode::BAD_REQUEST,
        "bad.request",
        message,
        vec![json!({"errorCode": "invalid.property", "fieldName": field})],
    ))
}

/// The declared attachment fields, checked.
struct DeclaredAttachment {
    url: String,
    mime: Option<String>,
    filename: Option<String>,
    media_type: Option<String>,
    sha256: Option<String>,
}

fn validate_open_message(body: &Value) -> Result<Vec<DeclaredAttachment>, Box<Response>> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let channel = body.get("channel").ok_or_else(|| bad_request("channel is required", "channel"))?;
    let from = channel.get("from").ok_or_else(|| bad_request("channel.from is required", "channel.from"))?;
    if text(from.get("id")).is_none_or(|id| id.is_empty()) {
        return Err(bad_request("channel.from.id is required", "channel.from.id"));
    }
    match text(from.get("idType")).as_deref() {
        Some("Email" | "Phone" | "Opaque") => {}
        _ => {
            return Err(bad_request(
                "channel.from.idType must be Email, Phone or Opaque",
                "channel.from.idType",
            ));
        }
    }
    if text(channel.get("time")).is_none() {
        return Err(bad_request("channel.time is required", "channel.time"));
    }
    let content = match body.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(bad_request("content must be an array", "content")),
    };
    let has_text = text(body.get("text")).is_some_and(|t| !t.is_empty());
    if content.is_empty() && !has_text {
        return Err(bad_request("a message needs text or content", "text"));
    }
    let mut attachments = Vec::new();
    for (index, item) in content.iter().enumerate() {
        let field = |name: &str| format!("content[{index}].{name}");
        if text(item.get("contentType")).as_deref() != Some("Attachment") {
            return Err(bad_request("only Attachment content is emulated", &field("contentType")));
        }
        let attachment = item
            .get("attachment")
            .ok_or_else(|| bad_request("attachment is required", &field("attachment")))?;
        let media_type = text(attachment.get("mediaType"));
        if !matches!(media_type.as_deref(), Some("Image" | "Video" | "Audio" | "File" | "Link")) {
            return Err(bad_request("attachment.mediaType is invalid", &field("attachment.mediaType")));
        }
        let url = text(attachment.get("url"))
            .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
            .ok_or_else(|| bad_request("attachment.url must be an http(s) URL", &field("attachment.url")))?;
        attachments.push(DeclaredAttachment {
            url,
            mime: text(attachment.get("mime")),
            filename: text(attachment.get("filename")),
            media_type,
            sha256: text(attachment.get("sha256")),
        });
    }
    Ok(attachments)
}

pub(super) async fn inbound_open_message(
    State(state): State<PlatformState>,
    Path(integration_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client_id = match authenticate(&state, &headers) {
        Ok(client_id) => client_id,
        Err(response) => return *response,
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error_body(
            StatusCode::BAD_REQUEST,
            "bad.request",
            "The request body is not JSON.",
            Vec::new(),
        );
    };
    let declared = match validate_open_message(&body) {
        Ok(declared) => declared,
        Err(response) => return *response,
    };
    let max = state.lock().config.max_attachment_bytes;
    let mut attachments = Vec::new();
    for attachment in declared {
        attachments.push(fetch_attachment(&state.http, attachment, max).await);
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let response = json!({
        "id": id,
        "channel": {
            "id": integration_id,
            "platform": "Open",
            "type": "Private",
            "messageId": body.pointer("/channel/messageId"),
            "from": body.pointer("/channel/from"),
            "time": body.pointer("/channel/time"),
        },
        "type": "Text",
        "text": body.get("text"),
        "content": body.get("content"),
        "direction": "Inbound",
    });
    state.lock().open_messages.push(ReceivedOpenMessage { id, integration_id, client_id, body, attachments });
    (StatusCode::ACCEPTED, Json(response)).into_response()
}

/// Fetches an attachment as Genesys would, streaming it through SHA-256.
async fn fetch_attachment(
    http: &reqwest::Client,
    declared: DeclaredAttachment,
    max: u64,
) -> FetchedAttachment {
    let mut fetched = FetchedAttachment {
        url: declared.url,
        mime: declared.mime,
        filename: declared.filename,
        media_type: declared.media_type,
        declared_sha256: declared.sha256,
        status: None,
        size: 0,
        sha256: None,
        sha256_matches: None,
        error: None,
    };
    let mut response = match http.get(&fetched.url).send().await {
        Ok(response) => response,
        Err(error) => {
            fetched.error = Some(format!("fetch failed: {}", error.without_url()));
            return fetched;
        }
    };
    fetched.status = Some(response.status().as_u16());
    if !response.status().is_success() {
        fetched.error = Some(format!("fetch answered HTTP {}", response.status().as_u16()));
        return fetched;
    }
    let mut hasher = sha2::Sha256::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                fetched.size += chunk.len() as u64;
                if fetched.size > max {
                    fetched.error = Some(format!("attachment larger than {max} bytes"));
                    return fetched;
                }
                hasher.update(&chunk);
            }
            Ok(None) => break,
            Err(error) => {
                fetched.error = Some(format!("fetch broke off: {}", error.without_url()));
                return fetched;
            }
        }
    }
    let digest = hasher.finalize();
    let hex = hex::encode(digest);
    let base64 = base64::engine::general_purpose::STANDARD.encode(digest);
    fetched.sha256_matches = fetched
        .declared_sha256
        .as_deref()
        .map(|declared| declared.eq_ignore_ascii_case(&hex) || declared == base64);
    fetched.sha256 = Some(hex);
    fetched
}
