//! A deployment's public configuration, as the official clients read it:
//! `GET https://api-cdn.E/webdeployments/v1/deployments/<id>/config.json` (no auth).
//! `messenger.fileUpload.enableAttachments` and `messenger.fileUpload.modes[]` (`fileTypes`,
//! `maxFileSizeKB`) say what guests may attach; [`DeploymentConfig::decide`] applies them the
//! way [`InboundLimits::decide`](crate::limits::InboundLimits::decide) applies a
//! `SessionResponse` (KB of 1,000 bytes; no types or no size means no native attachments).
//!
//! [`DeploymentConfigClient`] fetches and caches them per deployment id; an entry older than its
//! time to live is fetched again, and a failed refresh keeps serving the last good copy.

use crate::error::Error;
use crate::limits::{AttachmentDecision, LinkReason, mime_matches};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// What a deployment's `config.json` says about guest attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentConfig {
    /// `messenger.fileUpload.enableAttachments`.
    pub enable_attachments: bool,
    /// `messenger.fileUpload.modes[]`.
    pub modes: Vec<UploadMode>,
}

/// One upload mode: these MIME types (wildcards allowed) up to this size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadMode {
    /// `fileTypes`, lower-cased.
    pub file_types: Vec<String>,
    /// `maxFileSizeKB` (KB of 1,000 bytes), if stated.
    pub max_file_size_kb: Option<u64>,
}

impl DeploymentConfig {
    /// Reads the attachment settings out of a `config.json` document. A document without
    /// `messenger.fileUpload` allows no attachments. `fileTypes` entries may be strings or
    /// `{"type": …}` objects.
    pub fn from_json(document: &Value) -> Self {
        let upload = document.pointer("/messenger/fileUpload");
        let enable_attachments =
            upload.and_then(|u| u.get("enableAttachments")).and_then(Value::as_bool).unwrap_or(false);
        let modes = upload
            .and_then(|u| u.get("modes"))
            .and_then(Value::as_array)
            .map(|modes| {
                modes
                    .iter()
                    .map(|mode| UploadMode {
                        file_types: mode
                            .get("fileTypes")
                            .and_then(Value::as_array)
                            .map(|types| {
                                types
                                    .iter()
                                    .filter_map(|t| {
                                        t.as_str().or_else(|| t.get("type").and_then(Value::as_str))
                                    })
                                    .map(|t| t.trim().to_ascii_lowercase())
                                    .collect()
                            })
                            .unwrap_or_default(),
                        max_file_size_kb: mode.get("maxFileSizeKB").and_then(Value::as_u64),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { enable_attachments, modes }
    }

    /// Whether a file of this MIME type and size may be a native attachment: attachments
    /// enabled, and some mode with a positive size allows the type and `size ≤ maxFileSizeKB ×
    /// 1000`. The file's name is not checked here (`config.json` lists no blocked extensions).
    pub fn decide(&self, mime_type: &str, size: u64) -> AttachmentDecision {
        let usable: Vec<(&UploadMode, u64)> = self
            .modes
            .iter()
            .filter_map(|m| m.max_file_size_kb.filter(|kb| *kb > 0).map(|kb| (m, kb.saturating_mul(1000))))
            .filter(|(m, _)| !m.file_types.is_empty())
            .collect();
        if !self.enable_attachments || usable.is_empty() {
            return AttachmentDecision::Link(LinkReason::AttachmentsDisabled);
        }
        if size == 0 {
            return AttachmentDecision::Link(LinkReason::Empty);
        }
        let matching: Vec<u64> = usable
            .iter()
            .filter(|(m, _)| m.file_types.iter().any(|p| mime_matches(p, mime_type)))
            .map(|(_, max)| *max)
            .collect();
        match matching.iter().max() {
            None => AttachmentDecision::Link(LinkReason::TypeNotAllowed { mime_type: mime_type.to_owned() }),
            Some(&max) if size > max => AttachmentDecision::Link(LinkReason::TooLarge { size, max }),
            Some(_) => AttachmentDecision::Native,
        }
    }
}

/// Each deployment's document and when it was fetched.
type Cache = HashMap<String, (Instant, Arc<DeploymentConfig>)>;

/// Fetches deployments' `config.json` and caches them. Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub struct DeploymentConfigClient {
    base: Url,
    ttl: Duration,
    timeout: Duration,
    http: reqwest::Client,
    cache: Arc<Mutex<Cache>>,
}

impl DeploymentConfigClient {
    /// A client for the CDN at `base` (`https://api-cdn.E`, see
    /// [`GenesysEndpoints::api_cdn`](crate::GenesysEndpoints::api_cdn)) keeping each document
    /// for `ttl`.
    pub fn new(base: Url, ttl: Duration) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::InvalidConfig(format!("cannot build the HTTP client: {e}")))?;
        Self::with_http_client(base, ttl, http)
    }

    /// The same with a given HTTP client.
    pub fn with_http_client(base: Url, ttl: Duration, http: reqwest::Client) -> Result<Self, Error> {
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::InvalidConfig("the config.json base URL must be http(s)".into()));
        }
        let cache = Arc::default();
        Ok(Self { base, ttl, timeout: Duration::from_secs(10), http, cache })
    }

    /// The attachment settings of `deployment_id`: from the cache while fresh, otherwise fetched;
    /// when a refresh fails, the last good copy if there is one.
    pub async fn get(&self, deployment_id: &str) -> Result<Arc<DeploymentConfig>, Error> {
        let cached = self.lock().get(deployment_id).cloned();
        if let Some((at, config)) = &cached
            && at.elapsed() < self.ttl
        {
            return Ok(config.clone());
        }
        match self.fetch(deployment_id).await {
            Ok(config) => {
                let config = Arc::new(config);
                self.lock().insert(deployment_id.to_owned(), (Instant::now(), config.clone()));
                Ok(config)
            }
            Err(e) => match cached {
                Some((_, stale)) => {
                    tracing::warn!(error = %e, "cannot refresh a deployment's config.json; keeping the last copy");
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    /// Forgets the cached copy of `deployment_id`.
    pub fn invalidate(&self, deployment_id: &str) {
        self.lock().remove(deployment_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn fetch(&self, deployment_id: &str) -> Result<DeploymentConfig, Error> {
        if deployment_id.is_empty()
            || !deployment_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidConfig(format!("bad deployment id {deployment_id:?}")));
        }
        let url = format!(
            "{}/webdeployments/v1/deployments/{deployment_id}/config.json",
            self.base.as_str().trim_end_matches('/')
        );
        let response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| Error::ApiTransport { source: e.without_url() })?;
        let document = crate::error::json_answer(response, "config.json").await?;
        Ok(DeploymentConfig::from_json(&document))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modes_decide_like_the_official_client() {
        let config = DeploymentConfig::from_json(&json!({"messenger": {"fileUpload": {
            "enableAttachments": true,
            "modes": [{"fileTypes": ["image/jpeg", "image/png"], "maxFileSizeKB": 10240},
                      {"fileTypes": [{"type": "application/pdf"}], "maxFileSizeKB": 2}]}}}));
        assert!(config.decide("image/png", 10_240_000).is_native());
        assert_eq!(
            config.decide("image/png", 10_240_001),
            AttachmentDecision::Link(LinkReason::TooLarge { size: 10_240_001, max: 10_240_000 })
        );
        assert!(config.decide("application/pdf", 2000).is_native());
        assert!(!config.decide("application/pdf", 2001).is_native());
        assert!(matches!(
            config.decide("video/mp4", 1),
            AttachmentDecision::Link(LinkReason::TypeNotAllowed { .. })
        ));
        let off = DeploymentConfig::from_json(&json!({"messenger": {"fileUpload": {
            "enableAttachments": false, "modes": [{"fileTypes": ["*/*"], "maxFileSizeKB": 10}]}}}));
        assert_eq!(off.decide("image/png", 1), AttachmentDecision::Link(LinkReason::AttachmentsDisabled));
        let no_size = DeploymentConfig::from_json(&json!({"messenger": {"fileUpload": {
            "enableAttachments": true, "modes": [{"fileTypes": ["*/*"]}]}}}));
        assert_eq!(no_size.decide("image/png", 1), AttachmentDecision::Link(LinkReason::AttachmentsDisabled));
        let none = DeploymentConfig::from_json(&json!({"messenger": {"enabled": true}}));
        assert!(!none.enable_attachments && none.modes.is_empty());
    }
}
