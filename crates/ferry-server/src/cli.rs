//! The `ferry` command line: `serve`, `dev`, `ticket` and `config check`/`config show`. The only
//! place that reads flags, environment variables (`FERRY_…`) and the configuration file, layered
//! by [`crate::config::Layer`]: defaults < file < variables < flags. `dev` exists only with the `dev`
//! cargo feature (on by default, off in the production build). Every secret can also be read from a
//! file (`--…-file`, `FERRY_…_FILE`) and is held as a [`Secret`], which never prints.

use crate::config::{Layer, Loaded, Secret};
use crate::state::AppState;
use crate::tickets::{self, Claims};
use anyhow::{Context as _, Result};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use figment::value::{Dict, Value};
use std::collections::{BTreeMap, BTreeSet};
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
    /// Check or print the configuration `ferry serve` would run with (same file, variables, flags).
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `ferry config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration; exit status 0 when `ferry serve` would accept it, else
    /// 1 with the setting, what is wrong and where its value came from.
    Check(Box<ServeArgs>),
    /// Print the effective configuration as TOML, secrets redacted (`--sources`: one line per
    /// setting with the variable, flag or file that set it, or `default`).
    Show(Box<ShowArgs>),
}

/// `ferry config show` settings.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// One line per setting with where its value came from.
    #[arg(long)]
    pub sources: bool,
    /// The settings, as for `ferry serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
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
    /// The clamd to scan with, `host:port` or `unix:<socket>` (else Debian's socket when a clamd
    /// is running there).
    #[arg(long, env = "FERRY_DEV_CLAMD")]
    pub clamd: Option<String>,
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
    /// The configuration `ferry serve` runs with: defaults < the file (`--config`) < `FERRY_…`
    /// variables (`vars`; the flags' own variables among them) < flags given on the command line
    /// (the argument ids in `command_line`). A flag's variable and the nested name of the same
    /// setting (`FERRY_S3_BUCKET`, `FERRY_S3__BUCKET`) may not both be set.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, a value has the wrong type or names no setting,
    /// or a setting is given twice; the error names the setting and where the value came from.
    pub fn load(
        &self,
        vars: impl IntoIterator<Item = (String, String)>,
        command_line: &BTreeSet<String>,
    ) -> Result<Loaded> {
        let flags = flag_names();
        let reserved: BTreeSet<String> = flags.values().filter_map(|(_, var)| var.clone()).collect();
        let file = self.config.as_deref().map(Layer::file).transpose()?;
        let env = Layer::env(vars, &reserved)?;
        let mut from_env = Layer::new("environment");
        let mut from_flags = Layer::new("command line");
        let mut set = |id: &str, path: &[&str], value: Value| -> Result<()> {
            let (long, var) = &flags[id];
            if command_line.contains(id) {
                return Ok(from_flags.set(path, value, format!("--{long}"))?);
            }
            let var = var.clone().unwrap_or_else(|| format!("--{long}"));
            if let Some(nested) = env.label(path) {
                anyhow::bail!("`{}` is set by both {var} and {nested}: keep one", path.join("."));
            }
            Ok(from_env.set(path, value, var)?)
        };
        let text = |v: &Option<String>| v.clone().map(Value::from);
        let num = |v: Option<u64>| v.map(Value::from);
        for (id, path, value) in [
            ("listen", &["listen"][..], self.listen.map(|a| Value::from(a.to_string()))),
            ("public_url", &["public_url"], text(&self.public_url)),
            ("s3_bucket", &["s3", "bucket"], text(&self.s3_bucket)),
            ("s3_prefix", &["s3", "prefix"], text(&self.s3_prefix)),
            ("s3_region", &["s3", "region"], text(&self.s3_region)),
            ("s3_endpoint", &["s3", "endpoint"], text(&self.s3_endpoint)),
            ("s3_endpoint", &["s3", "path_style"], self.s3_endpoint.as_ref().map(|_| Value::from(true))),
            ("s3_access_key_id", &["s3", "access_key_id"], text(&self.s3_access_key_id)),
            ("s3_checksum", &["s3", "checksum"], text(&self.s3_checksum)),
            ("s3_part_size_mib", &["s3", "part_size_mib"], num(self.s3_part_size_mib)),
            ("s3_max_in_flight", &["s3", "max_in_flight"], num(self.s3_max_in_flight.map(|n| n as u64))),
            ("max_file_size", &["limits", "max_file_size"], num(self.max_file_size)),
            ("reap_after_secs", &["limits", "reap_after_secs"], num(self.reap_after_secs)),
            ("reap_interval_secs", &["limits", "reap_interval_secs"], num(self.reap_interval_secs)),
            ("memory_budget", &["limits", "memory_budget"], num(self.memory_budget)),
            ("max_upload_secs", &["limits", "max_upload_secs"], num(self.max_upload_secs)),
            ("reap_margin_secs", &["limits", "reap_margin_secs"], num(self.reap_margin_secs)),
            (
                "tickets_max_lifetime_secs",
                &["tickets", "max_lifetime_secs"],
                num(self.tickets_max_lifetime_secs),
            ),
            (
                "tickets_single_process",
                &["tickets", "single_process"],
                self.tickets_single_process.then(|| true.into()),
            ),
            ("allow_insecure", &["allow_insecure"], self.allow_insecure.then(|| true.into())),
            ("log_json", &["log_json"], self.log_json.then(|| true.into())),
            ("admin_listen", &["ops", "admin_listen"], self.admin_listen.map(|a| Value::from(a.to_string()))),
            (
                "cors_origins",
                &["cors_origins"],
                (!self.cors_origins.is_empty()).then(|| self.cors_origins.clone().into()),
            ),
        ] {
            if let Some(value) = value {
                set(id, path, value)?;
            }
        }
        for (inline, file, path) in [
            (&self.link_secret, &self.link_secret_file, &["link_secret"][..]),
            (&self.ticket_secret, &self.ticket_secret_file, &["ticket_secret"]),
            (&self.s3_secret_access_key, &self.s3_secret_access_key_file, &["s3", "secret_access_key"]),
        ] {
            let id = path.join("_");
            match (inline, file) {
                (Some(_), Some(_)) => {
                    anyhow::bail!("`{}` is given both inline and as a file: give one", path.join("."))
                }
                (Some(secret), None) => set(&id, path, Value::from(secret.expose()))?,
                (None, Some(file)) => {
                    let mut table = Dict::new();
                    table.insert("file".into(), Value::from(file.display().to_string()));
                    set(&format!("{id}_file"), path, table.into())?;
                }
                (None, None) => {}
            }
        }
        // Deployments named by --deployments get the defaults (and --genesys-environment) unless
        // the file or the variables describe them.
        let described = |id: &str| {
            file.as_ref().is_some_and(|f| f.contains(&["deployments", id]))
                || env.contains(&["deployments", id])
        };
        for id in self.deployments.iter().map(|d| d.trim()).filter(|d| !d.is_empty()) {
            if !described(id) {
                let mut deployment = Dict::new();
                if let Some(environment) = &self.genesys_environment {
                    deployment.insert("environment".into(), Value::from(environment.as_str()));
                }
                set("deployments", &["deployments", id], deployment.into())?;
            }
        }
        let layers = file.into_iter().chain([env, from_env, from_flags]);
        Ok(Loaded::from_layers(layers)?)
    }

    /// [`load`](Self::load) with this process's variables and command line.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_from_process(&self) -> Result<Loaded> {
        let vars =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        self.load(vars, &command_line_ids())
    }
}

/// Each `ferry serve` argument's id, long flag and variable.
fn flag_names() -> BTreeMap<String, (String, Option<String>)> {
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("a serve command");
    serve
        .get_arguments()
        .map(|a| {
            let long = a.get_long().unwrap_or_default().to_owned();
            let var = a.get_env().map(|e| e.to_string_lossy().into_owned());
            (a.get_id().to_string(), (long, var))
        })
        .collect()
}

/// The ids of the arguments this process was given on its command line (not by a variable).
fn command_line_ids() -> BTreeSet<String> {
    let Ok(matches) = Cli::command().try_get_matches_from(std::env::args_os()) else {
        return BTreeSet::new();
    };
    let mut matches = &matches;
    while let Some((_, sub)) = matches.subcommand() {
        matches = sub;
    }
    matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(ToString::to_string)
        .collect()
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
            let loaded = args.load_from_process()?;
            init_tracing(loaded.config.log_json);
            loaded.config.validate().map_err(|e| loaded.explain(e))?;
            let config = loaded.config;
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
        Command::Config(ConfigCommand::Check(args)) => {
            let loaded = args.load_from_process()?;
            loaded.config.validate().map_err(|e| loaded.explain(e))?;
            let deployments = loaded.config.deployments.len();
            println!("ferry: the configuration is valid ({deployments} deployment(s))");
            Ok(())
        }
        Command::Config(ConfigCommand::Show(args)) => {
            let loaded = args.serve.load_from_process()?;
            let text = if args.sources {
                crate::config::show_sources(&loaded)?
            } else {
                crate::config::show_toml(&loaded.config)?
            };
            print!("{text}");
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
                iat: Some(now),
                kid: args.kid,
                max: args.max_size,
                types: (!args.types.is_empty()).then_some(args.types),
                from: args.from,
                reference: args.reference,
                ..Claims::new(args.deployment, now + args.ttl)
            };
            println!("{}", tickets::mint(key.as_bytes(), &claims));
            Ok(())
        }
    }
}
