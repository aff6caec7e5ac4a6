//! "Never twice": after an unconfirmed `onMessage`, [`GuestSession::find_own_message`] looks for
//! ferry's own message in the conversation through the guest REST API (a guest JWT from `getJwt`,
//! then `GET /api/v2/webmessaging/messages`), matching the `ferryFileId` custom attribute every
//! message of ferry's carries, so a caller re-sends only when the message is truly absent.

use super::GuestSession;
use super::routing::FILE_ID_ATTRIBUTE;
use crate::error::Error;
use serde_json::Value;

/// A message of ferry's found in the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundMessage {
    /// Its id.
    pub message_id: Option<String>,
    /// The attachments it carries (empty for a link message).
    pub attachment_ids: Vec<String>,
}

impl GuestSession {
    /// Looks through the newest `max_messages` messages of the conversation (pages of 25) for one
    /// whose `ferryFileId` custom attribute is `file_id`. Needs
    /// [`GuestConfig::api_url`](super::GuestConfig::api_url).
    pub async fn find_own_message(
        &mut self,
        file_id: &str,
        max_messages: usize,
    ) -> Result<Option<FoundMessage>, Error> {
        const PAGE: usize = 25;
        let Some(api) = self.client.config.api_url.clone() else {
            return Err(Error::InvalidConfig("api_url is needed to look messages up".into()));
        };
        let jwt = self.get_jwt().await?;
        let url = format!("{}/api/v2/webmessaging/messages", api.as_str().trim_end_matches('/'));
        for page in 1..=max_messages.div_ceil(PAGE).max(1) {
            let mut page_url =
                url::Url::parse(&url).map_err(|e| Error::InvalidConfig(format!("bad api_url: {e}")))?;
            page_url
                .query_pairs_mut()
                .append_pair("pageSize", &PAGE.to_string())
                .append_pair("pageNumber", &page.to_string());
            let mut request = self
                .client
                .http
                .get(page_url)
                .bearer_auth(jwt.jwt.expose())
                .timeout(self.client.config.response_timeout);
            if let Some(origin) = &self.client.config.origin {
                request = request.header("Origin", origin);
            }
            let response =
                request.send().await.map_err(|e| Error::ApiTransport { source: e.without_url() })?;
            let page_body = crate::error::json_answer(response, "guest messages").await?;
            let entities = page_body.get("entities").and_then(Value::as_array).cloned().unwrap_or_default();
            if let Some(found) = entities.iter().find_map(|m| ours(m, file_id)) {
                return Ok(Some(found));
            }
            if entities.len() < PAGE {
                break;
            }
        }
        Ok(None)
    }
}

/// The message, if it is ferry's message for `file_id`.
fn ours(message: &Value, file_id: &str) -> Option<FoundMessage> {
    let marked = message.pointer("/channel/metadata/customAttributes").and_then(|a| a.get(FILE_ID_ATTRIBUTE));
    if marked.and_then(Value::as_str) != Some(file_id) {
        return None;
    }
    let attachment_ids = message
        .get("content")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|c| c.pointer("/attachment/id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Some(FoundMessage {
        message_id: message.get("id").and_then(Value::as_str).map(str::to_owned),
        attachment_ids,
    })
}
