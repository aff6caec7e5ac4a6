//! The shared state handlers work with, built once from the [`Config`].

use crate::config::{Config, Deployment};
use crate::links::LinkSigner;
use crate::metrics::Metrics;
use crate::tickets::TicketVerifier;
use anyhow::Context as _;
use ferry_auth::{AuthConfig, ClientSecret, TokenManager};
use ferry_core::plan::MIB;
use ferry_genesys::deployment::DeploymentConfigClient;
use ferry_genesys::guest::{GuestClient, GuestConfig};
use ferry_genesys::hosts::GenesysEndpoints;
use ferry_genesys::platform::{PlatformClient, PlatformConfig};
use ferry_s3::{PartBudget, S3Config, StaticCredentials, UploadConfig, Uploader};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::Semaphore;

/// What every handler shares. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(pub Arc<Inner>);

/// The state's contents.
#[derive(Debug)]
pub struct Inner {
    /// The configuration.
    pub config: Config,
    /// The S3 uploader.
    pub uploader: Uploader,
    /// The deployments ferry serves, by id.
    pub deployments: BTreeMap<String, Arc<Destination>>,
    /// The part-buffer budget, in MiB permits.
    pub budget: Arc<Semaphore>,
    /// Permits in the budget.
    pub budget_permits: u32,
    /// Permits an upload takes when it is admitted: one part's share (the budget is charged per
    /// buffered part; each further part's share is taken when it starts filling, see
    /// [`ferry_s3::PartBudget`]).
    pub upload_permits: u32,
    /// Uploads in progress per client address, capped by `data_path.max_uploads_per_client`.
    pub client_uploads: crate::datapath::ClientUploads,
    /// Counters.
    pub metrics: Metrics,
    /// Download-link signer.
    pub links: LinkSigner,
    /// Ticket verifier, when tickets are enabled.
    pub tickets: Option<TicketVerifier>,
    /// Uploads whose body is all in, completing and delivering in tasks of their own (a client
    /// that hangs up then does not cancel them); shutdown waits for them.
    pub completions: tokio_util::task::TaskTracker,
    /// Admission: per-client limits, guest quotas, the session-check cache and limits.
    pub admission: crate::admission::Admission,
    /// Readiness (draining, the cached bucket check).
    pub health: crate::admin::Health,
    /// The malware scanner (`[scan]`), when one is configured.
    pub scanner: Option<Arc<crate::scan::Scanner>>,
    /// Agent sign-in for deployments whose links are for agents.
    pub agents: crate::agents::AgentGate,
}

/// A deployment ferry serves, with what an upload for it needs: its settings, its size limit and
/// its Genesys clients. Looked up once per request.
#[derive(Debug)]
pub struct Destination {
    /// The deployment id.
    pub id: String,
    /// Its settings.
    pub settings: Deployment,
    /// Largest file it accepts (its own limit within ferry's).
    pub max_file_size: u64,
    /// The guest (Web Messaging) client.
    pub guest: GuestClient,
    /// The platform client, when it delivers through Open Messaging.
    pub platform: Option<PlatformClient>,
    /// Reads the deployment's public `config.json` (cached), for sessions that state no
    /// `allowedMedia`; none when no CDN is known (an emulator without `config_cdn_url`).
    pub deployment_config: Option<DeploymentConfigClient>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state: the S3 client from the config (or the standard AWS chain), one guest
    /// client per deployment.
    ///
    /// # Errors
    /// When a deployment's Genesys settings cannot make a client.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let s3 = &config.s3;
        let s3_config = S3Config {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            force_path_style: s3.path_style,
            credentials: s3.access_key_id.as_ref().map(|id| StaticCredentials {
                access_key_id: id.clone(),
                secret_access_key: ferry_s3::Redacted(
                    s3.secret_access_key.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default(),
                ),
                session_token: None,
            }),
            ..S3Config::default()
        };
        let client = ferry_s3::build_client(&s3_config).await;
        Self::with_s3_client(config, client)
    }

    /// Builds the state around an existing S3 client.
    ///
    /// # Errors
    /// When a deployment's Genesys settings cannot make a client.
    pub fn with_s3_client(config: Config, client: ferry_s3::SdkClient) -> anyhow::Result<Self> {
        let upload_config = UploadConfig {
            checksum_mode: config.s3.checksum_mode().unwrap_or_default(),
            max_in_flight: config.s3.max_in_flight,
            opaque_etags: config.s3.opaque_etags,
            ..UploadConfig::default()
        };
        let budget_permits = u32::try_from(config.limits.memory_budget / MIB).unwrap_or(u32::MAX);
        let budget = Arc::new(Semaphore::new(budget_permits as usize));
        let part_budget = PartBudget::new(Arc::clone(&budget), MIB);
        let upload_permits = part_budget.permits_for(config.s3.part_size_mib * MIB);
        let uploader = Uploader::with_budget(client, config.s3.bucket.clone(), upload_config, part_budget);
        let mut deployments = BTreeMap::new();
        for (id, settings) in &config.deployments {
            let destination = Destination {
                id: id.clone(),
                settings: settings.clone(),
                max_file_size: config.max_file_size_for(settings),
                guest: guest_client(id, settings)?,
                platform: platform_client(id, settings)?,
                deployment_config: deployment_config_client(id, settings)?,
            };
            deployments.insert(id.clone(), Arc::new(destination));
        }
        let links = crate::links::signer_from_config(&config);
        let tickets = TicketVerifier::from_config(&config, &uploader);
        Ok(Self(Arc::new(Inner {
            uploader,
            deployments,
            budget,
            budget_permits,
            upload_permits,
            client_uploads: crate::datapath::ClientUploads::new(config.data_path.max_uploads_per_client),
            metrics: Metrics::default(),
            links,
            tickets,
            completions: tokio_util::task::TaskTracker::new(),
            admission: crate::admission::Admission::new(&config.admission, config.deployments.keys()),
            health: crate::admin::Health::new(std::time::Duration::from_secs(config.ops.ready_cache_secs)),
            scanner: crate::scan::Scanner::from_config(&config.scan)?,
            agents: crate::agents::AgentGate::from_config(&config),
            config,
        })))
    }

    /// The deployment `id`, if ferry serves it.
    pub fn destination(&self, id: &str) -> Option<Arc<Destination>> {
        self.deployments.get(id).cloned()
    }

    /// Seconds since the Unix epoch.
    pub fn now_unix(&self) -> u64 {
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }

    /// Bytes of the memory budget reserved now.
    pub fn budget_used_bytes(&self) -> u64 {
        u64::from(self.budget_permits).saturating_sub(self.budget.available_permits() as u64) * MIB
    }
}

fn guest_client(id: &str, deployment: &Deployment) -> anyhow::Result<GuestClient> {
    let url = match &deployment.web_messaging_url {
        Some(url) => url::Url::parse(url).with_context(|| format!("deployments.{id}.web_messaging_url"))?,
        None => {
            let env = deployment.environment.as_deref().unwrap_or("mypurecloud.com");
            GenesysEndpoints::for_environment(env)
                .with_context(|| format!("deployments.{id}.environment"))?
                .web_messaging
        }
    };
    let mut guest = GuestConfig::new(url);
    guest.origin = deployment.origin.clone();
    if let Some(secs) = deployment.upload_event_timeout_secs {
        guest.upload_event_timeout = std::time::Duration::from_secs(secs.max(1));
    }
    // Where a message whose confirmation was lost is looked for (never twice).
    guest.api_url = match (&deployment.guest_api_url, &deployment.web_messaging_url) {
        (Some(url), _) => {
            Some(url::Url::parse(url).with_context(|| format!("deployments.{id}.guest_api_url"))?)
        }
        (None, None) => {
            let env = deployment.environment.as_deref().unwrap_or("mypurecloud.com");
            Some(GenesysEndpoints::for_environment(env).with_context(|| format!("deployments.{id}"))?.api)
        }
        (None, Some(_)) => None,
    };
    GuestClient::new(guest).with_context(|| format!("deployments.{id}"))
}

/// How long a deployment's `config.json` is kept before it is read again.
const DEPLOYMENT_CONFIG_TTL: std::time::Duration = std::time::Duration::from_secs(300);

fn deployment_config_client(
    id: &str,
    deployment: &Deployment,
) -> anyhow::Result<Option<DeploymentConfigClient>> {
    let base = match (&deployment.config_cdn_url, &deployment.web_messaging_url) {
        (Some(url), _) => url::Url::parse(url).with_context(|| format!("deployments.{id}.config_cdn_url"))?,
        (None, None) => {
            let env = deployment.environment.as_deref().unwrap_or("mypurecloud.com");
            GenesysEndpoints::for_environment(env).with_context(|| format!("deployments.{id}"))?.api_cdn
        }
        (None, Some(_)) => return Ok(None),
    };
    DeploymentConfigClient::new(base, DEPLOYMENT_CONFIG_TTL)
        .map(Some)
        .with_context(|| format!("deployments.{id}.config_cdn_url"))
}

fn platform_client(id: &str, deployment: &Deployment) -> anyhow::Result<Option<PlatformClient>> {
    let Some(om) = &deployment.open_messaging else { return Ok(None) };
    let env = deployment.environment.as_deref().unwrap_or("mypurecloud.com");
    let endpoints =
        GenesysEndpoints::for_host(env).with_context(|| format!("deployments.{id}.environment"))?;
    let login =
        om.login_url.clone().unwrap_or_else(|| endpoints.login.to_string().trim_end_matches('/').to_owned());
    let api = match &om.api_url {
        Some(url) => {
            url::Url::parse(url).with_context(|| format!("deployments.{id}.open_messaging.api_url"))?
        }
        None => endpoints.api.clone(),
    };
    let auth = AuthConfig::with_login_url(
        login,
        om.client_id.clone(),
        ClientSecret::new(om.client_secret.expose().to_owned()),
    );
    let tokens = TokenManager::new(auth).with_context(|| format!("deployments.{id}.open_messaging"))?;
    let platform = PlatformClient::new(PlatformConfig::new(api), Arc::new(tokens))
        .with_context(|| format!("deployments.{id}.open_messaging"))?;
    Ok(Some(platform))
}
