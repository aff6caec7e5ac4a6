//! The `ferry` command line: `serve`, `dev` and `ticket`. The only place that reads flags,
//! environment variables (`FERRY_…`) and the configuration file. `dev` exists only with the `dev`
//! cargo feature (on by default, off in the production build). Every secret can also be read from a
//! file (`--…-file`, `FERRY_…_FILE`) and is held as a [`Secret`], which never prints.

use crate::config::{Config, Deployment, Secret};
use crate::state::AppState;
use crate::tickets::{self, Claims};
use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// ferry: large files from Genesys Web Messaging customers into S3 and into the conversation.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (production). Settings: TOML file, then FERRY_* variables, then flags.
    Serve(Box<ServeArgs>),
    /// Run ferry locally with an embedded S3 store and the Genesys emulator: no accounts, no setup.
    #[cfg(feature = "dev")]
    Dev(DevArgs),
    /// Mint an upload ticket (what a site's backend does), for testing.
    Ticket(TicketArgs),
}

/// `ferry serve` settings; each overrides the TOML file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (every setting; deployments as [deployments.<id>] tables).
    #[arg(long, env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default 127.0.0.1:8080].
    #[arg(long, env = "FERRY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Public base URL used in download links.
    #[arg(long, env = "FERRY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// S3 bucket (required).
    #[arg(long, env = "FERRY_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 key prefix [default ferry/].
    #[arg(long, env = "FERRY_S3_PREFIX")]
    pub s3_prefix: Option<String>,
    /// S3 region [default us-east-1].
    #[arg(long, env = "FERRY_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3 endpoint for S3-compatible stores (implies path-style addressing).
    #[arg(long, env = "FERRY_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 access key id (else the standard AWS chain: AWS_* variables, profiles, instance roles).
    #[arg(long, env = "FERRY_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key.
    #[arg(long, env = "FERRY_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<Secret>,
    /// File holding the S3 secret access key.
    #[arg(long, env = "FERRY_S3_SECRET_ACCESS_KEY_FILE")]
    pub s3_secret_access_key_file: Option<PathBuf>,
    /// Checksums sent to S3: md5, crc32c or crc64nvme [default crc64nvme].
    #[arg(long, env = "FERRY_S3_CHECKSUM")]
    pub s3_checksum: Option<String>,
    /// Part size in MiB [default 8].
    #[arg(long, env = "FERRY_S3_PART_SIZE_MIB")]
    pub s3_part_size_mib: Option<u64>,
    /// Parts in flight per upload [default 4].
    #[arg(long, env = "FERRY_S3_MAX_IN_FLIGHT")]
    pub s3_max_in_flight: Option<usize>,
    /// Largest file accepted, bytes [default 5 GiB].
    #[arg(long, env = "FERRY_MAX_FILE_SIZE")]
    pub max_file_size: Option<u64>,
    /// Abort multipart uploads older than this many seconds left by a crashed ferry [default 86400].
    #[arg(long, env = "FERRY_REAP_AFTER_SECS")]
    pub reap_after_secs: Option<u64>,
    /// Seconds between reaper runs [default 3600].
    #[arg(long, env = "FERRY_REAP_INTERVAL_SECS")]
    pub reap_interval_secs: Option<u64>,
    /// Part-buffer memory for all uploads together, bytes [default 512 MiB].
    #[arg(long, env = "FERRY_MEMORY_BUDGET")]
    pub memory_budget: Option<u64>,
    /// Secret (>= 32 bytes) signing download links (required unless link_keys is in the file).
    #[arg(long, env = "FERRY_LINK_SECRET", hide_env_values = true)]
    pub link_secret: Option<Secret>,
    /// File holding the link secret.
    #[arg(long, env = "FERRY_LINK_SECRET_FILE")]
    pub link_secret_file: Option<PathBuf>,
    /// Secret (>= 32 bytes) shared with site backends that mint upload tickets.
    #[arg(long, env = "FERRY_TICKET_SECRET", hide_env_values = true)]
    pub ticket_secret: Option<Secret>,
    /// File holding the ticket secret.
    #[arg(long, env = "FERRY_TICKET_SECRET_FILE")]
    pub ticket_secret_file: Option<PathBuf>,
    /// Longest ticket lifetime accepted, seconds [default 3600].
    #[arg(long, env = "FERRY_TICKETS_MAX_LIFETIME_SECS")]
    pub tickets_max_lifetime_secs: Option<u64>,
    /// Remember used tickets in this process only (one replica; they work again after a restart).
    #[arg(long, env = "FERRY_TICKETS_SINGLE_PROCESS")]
    pub tickets_single_process: bool,
    /// Accept http:// public URLs and ws:// Genesys URLs on hosts other than loopback.
    #[arg(long, env = "FERRY_ALLOW_INSECURE")]
    pub allow_insecure: bool,
    /// Longest upload, seconds [default 10800].
    #[arg(long, env = "FERRY_MAX_UPLOAD_SECS")]
    pub max_upload_secs: Option<u64>,
    /// Added to max_upload_secs for the youngest upload the reaper may abort, seconds [default 600].
    #[arg(long, env = "FERRY_REAP_MARGIN_SECS")]
    pub reap_margin_secs: Option<u64>,
    /// Comma-separated deployment ids accepted with default settings (add per-deployment settings in the file).
    #[arg(long, env = "FERRY_DEPLOYMENTS", value_delimiter = ',')]
    pub deployments: Vec<String>,
    /// Genesys environment for deployments given on the command line [default mypurecloud.com].
    #[arg(long, env = "FERRY_GENESYS_ENVIRONMENT")]
    pub genesys_environment: Option<String>,
    /// Origins allowed by CORS, comma-separated.
    #[arg(long, env = "FERRY_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Log JSON lines.
    #[arg(long, env = "FERRY_LOG_JSON")]
    pub log_json: bool,
    /// Admin listener for /metrics, /healthz and /readyz (then /metrics leaves the public port).
    #[arg(long, env = "FERRY_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
}

/// `ferry dev` settings.
#[cfg(feature = "dev")]
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Address for ferry [default 127.0.0.1:8080].
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Folder for the embedded S3 store's data.
    #[arg(long, default_value = ".ferry-dev")]
    pub data: PathBuf,
    /// Listen on a non-loopback address (the demo session and ticket secret become reachable).
    #[arg(long)]
    pub allow_remote: bool,
}

/// `ferry ticket` settings.
#[derive(Debug, Args)]
pub struct TicketArgs {
    /// Deployment id the ticket is for.
    #[arg(long)]
    pub deployment: String,
    /// The shared ticket secret (or the key named by --kid).
    #[arg(long, env = "FERRY_TICKET_SECRET", hide_env_values = true)]
    pub secret: Option<Secret>,
    /// File holding the secret.
    #[arg(long, env = "FERRY_TICKET_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// The id of the key, when ferry knows it by one (ticket_keys).
    #[arg(long)]
    pub kid: Option<String>,
    /// Validity in seconds.
    #[arg(long, default_value_t = 600)]
    pub ttl: u64,
    /// Largest file the ticket allows, bytes.
    #[arg(long)]
    pub max_size: Option<u64>,
    /// Content types allowed, comma-separated (wildcards like image/*).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Correlation reference echoed in the attachment reference.
    #[arg(long)]
    pub reference: Option<String>,
    /// The customer's id on an Open Messaging channel.
    #[arg(long)]
    pub from: Option<String>,
}

impl ServeArgs {
    /// The configuration: file, then these settings on top.
    ///
    /// # Errors
    /// When the file cannot be read or parsed.
    pub fn to_config(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                Config::from_toml(&text)?
            }
            None => Config::default(),
        };
        let set = |target: &mut String, value: &Option<String>| {
            if let Some(v) = value {
                target.clone_from(v);
            }
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        set(&mut config.public_url, &self.public_url);
        set(&mut config.s3.bucket, &self.s3_bucket);
        set(&mut config.s3.prefix, &self.s3_prefix);
        set(&mut config.s3.region, &self.s3_region);
        set(&mut config.s3.checksum, &self.s3_checksum);
        if let Some(secret) = secret(&self.link_secret, &self.link_secret_file, "link_secret")? {
            config.link_secret = secret;
        }
        if self.s3_endpoint.is_some() {
            config.s3.endpoint.clone_from(&self.s3_endpoint);
            config.s3.path_style = true;
        }
        if self.s3_access_key_id.is_some() {
            config.s3.access_key_id.clone_from(&self.s3_access_key_id);
            config.s3.secret_access_key =
                secret(&self.s3_secret_access_key, &self.s3_secret_access_key_file, "s3.secret_access_key")?;
        }
        if let Some(v) = self.s3_part_size_mib {
            config.s3.part_size_mib = v;
        }
        if let Some(v) = self.s3_max_in_flight {
            config.s3.max_in_flight = v;
        }
        if let Some(v) = self.max_file_size {
            config.limits.max_file_size = v;
        }
        if let Some(v) = self.reap_after_secs {
            config.limits.reap_after_secs = v;
        }
        if let Some(v) = self.reap_interval_secs {
            config.limits.reap_interval_secs = v;
        }
        if let Some(v) = self.memory_budget {
            config.limits.memory_budget = v;
        }
        if let Some(secret) = secret(&self.ticket_secret, &self.ticket_secret_file, "ticket_secret")? {
            config.ticket_secret = Some(secret);
        }
        if let Some(v) = self.tickets_max_lifetime_secs {
            config.tickets.max_lifetime_secs = v;
        }
        config.tickets.single_process |= self.tickets_single_process;
        config.allow_insecure |= self.allow_insecure;
        if let Some(v) = self.max_upload_secs {
            config.limits.max_upload_secs = v;
        }
        if let Some(v) = self.reap_margin_secs {
            config.limits.reap_margin_secs = v;
        }
        for id in self.deployments.iter().map(|d| d.trim()).filter(|d| !d.is_empty()) {
            config.deployments.entry(id.to_owned()).or_insert_with(|| Deployment {
                environment: self.genesys_environment.clone(),
                ..Deployment::default()
            });
        }
        if !self.cors_origins.is_empty() {
            config.cors_origins.clone_from(&self.cors_origins);
        }
        config.log_json |= self.log_json;
        config.ops.admin_listen = self.admin_listen.or(config.ops.admin_listen);
        Ok(config)
    }
}

/// A secret given inline or as a file (not both).
fn secret(inline: &Option<Secret>, file: &Option<PathBuf>, setting: &str) -> Result<Option<Secret>> {
    match (inline, file) {
        (Some(_), Some(_)) => anyhow::bail!("`{setting}` is given both inline and as a file: give one"),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(path)) => {
            Secret::from_file(path).map(Some).map_err(|e| anyhow::anyhow!("`{setting}`: {e}"))
        }
        (None, None) => Ok(None),
    }
}

/// Installs the tracing subscriber (`RUST_LOG` filters; default `info`).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,aws=warn,hyper=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Runs the command line.
///
/// # Errors
/// Configuration problems and start-up failures, with a message saying what to fix.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = args.to_config()?;
            init_tracing(config.log_json);
            config.validate()?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let state = AppState::new(config).await?;
            if let Some(tickets) = &state.tickets {
                tickets.probe().await?;
                if !tickets.is_shared() {
                    tracing::warn!(
                        "tickets.single_process: used tickets are remembered by this process only; \
                         run ONE replica, and know that a restart forgets them"
                    );
                }
            }
            tracing::info!(addr = %listener.local_addr()?, bucket = %state.config.s3.bucket, "ferry serving");
            let router = crate::app::app(state.clone(), None);
            let reaper = tokio::spawn(crate::reaper::run(state.clone()));
            let scan_watch = tokio::spawn(crate::scan::watch(state.clone()));
            let _admin = crate::admin::start(&state).await.context("binding the admin listener")?;
            let shutdown = crate::admin::drain_on(state.clone(), crate::serve::shutdown_signal());
            let served = crate::serve::serve(listener, router, state, shutdown).await;
            reaper.abort();
            scan_watch.abort();
            served?;
            Ok(())
        }
        #[cfg(feature = "dev")]
        Command::Dev(args) => {
            init_tracing(false);
            crate::dev::run(args).await
        }
        Command::Ticket(args) => {
            let now =
                std::time::SystemTime::now().duration_since(std::time::SystemTime::UNIX_EPOCH)?.as_secs();
            let key = secret(&args.secret, &args.secret_file, "--secret")?.context(
                "give the ticket secret: --secret, FERRY_TICKET_SECRET or FERRY_TICKET_SECRET_FILE",
            )?;
            let claims = Claims {
                dep: args.deployment,
                exp: now + args.ttl,
                jti: uuid::Uuid::new_v4().to_string(),
                iat: Some(now),
                kid: args.kid,
                max: args.max_size,
                types: (!args.types.is_empty()).then_some(args.types),
                from: args.from,
                reference: args.reference,
            };
            println!("{}", tickets::mint(key.as_bytes(), &claims));
            Ok(())
        }
    }
}
