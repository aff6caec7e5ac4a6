//! `ferry dev`: ferry on embedded defaults. Starts an S3-compatible store (s3s-fs on loopback,
//! data in a local folder), the Genesys Web Messaging emulator with a demo deployment and a demo
//! guest session already open, and ferry wired to both; prints where everything is and a `curl`
//! command that works as printed; serves the demo page at `/`.
//!
//! Compiled only with the `dev` cargo feature (on by default); the production build
//! (`--no-default-features`) has neither this module nor ferry-sandbox.

use crate::cli::DevArgs;
use crate::config::{Config, Deployment};
use crate::state::AppState;
use anyhow::{Context as _, Result};
use ferry_sandbox::genesys::{DEMO_DEPLOYMENT_ID, GenesysEmulator, GenesysEmulatorConfig};
use ferry_sandbox::s3::{ACCESS_KEY, LocalS3, SECRET_KEY};

/// The demo page served at `/` by `ferry dev`.
pub const DEMO_PAGE: &str = include_str!("../assets/demo.html");

/// tus-js-client's browser build (the pinned npm package's `dist/tus.min.js`, MIT, see
/// `assets/tus.min.js.LICENSE`), served at `/dev/tus.min.js` for the demo page's resumable uploads.
pub const TUS_JS: &str = include_str!("../assets/tus.min.js");

/// Bucket used by `ferry dev`.
pub const DEV_BUCKET: &str = "ferry-dev";

/// Ticket secret used by `ferry dev` (a demo value: never use it elsewhere).
pub const DEV_TICKET_SECRET: &str = "ferry-dev-ticket-secret-not-for-production";

/// Everything `ferry dev` runs, for tests that want the same wiring.
#[derive(Debug)]
pub struct DevStack {
    /// The embedded S3 store.
    pub s3: LocalS3,
    /// The Genesys emulator.
    pub genesys: GenesysEmulator,
    /// The login and platform emulator (agent sign-in for the agents demo deployment), boxed to
    /// keep `ferry dev`'s future small.
    pub platform: Box<ferry_sandbox::platform::PlatformEmulator>,
    /// The demo guest session token.
    pub token: String,
    /// ferry's configuration.
    pub config: Config,
}

/// Starts the embedded store and the emulator, and builds ferry's configuration for `listen`.
///
/// # Errors
/// When a server cannot start.
pub async fn start_stack(listen: std::net::SocketAddr, data: &std::path::Path) -> Result<DevStack> {
    let s3 = LocalS3::start(data.join("s3"), "127.0.0.1:0".parse()?)
        .await
        .context("starting the embedded S3 store")?;
    s3.create_bucket(DEV_BUCKET)?;
    let genesys = GenesysEmulator::start(GenesysEmulatorConfig::default())
        .await
        .context("starting the Genesys emulator")?;
    let token = genesys.state().create_session(DEMO_DEPLOYMENT_ID);
    let platform = Box::new(
        Box::pin(crate::agents::dev::start_platform(listen))
            .await
            .context("starting the Genesys platform emulator")?,
    );
    let mut config = Config { listen, public_url: format!("http://{listen}"), ..Config::default() };
    config.s3.bucket = DEV_BUCKET.into();
    config.s3.endpoint = Some(s3.endpoint());
    config.s3.path_style = true;
    config.s3.access_key_id = Some(ACCESS_KEY.into());
    config.s3.secret_access_key = Some(SECRET_KEY.into());
    // s3s-fs has no flexible checksums; MD5 (Content-MD5 and ETags) still protects every part.
    config.s3.checksum = "md5".into();
    config.s3.part_size_mib = 5;
    config.limits.memory_budget = 256 * ferry_core::plan::MIB;
    config.link_secret = (uuid::Uuid::new_v4().to_string() + &uuid::Uuid::new_v4().to_string()).into();
    config.ticket_secret = Some(DEV_TICKET_SECRET.into());
    // One process: used tickets are remembered in memory (s3s-fs checks conditional writes
    // without a lock). Plain HTTP: `ferry dev` is for one machine (see `run`).
    config.tickets.single_process = true;
    config.allow_insecure = true;
    config.cors_origins = vec![format!("http://{listen}")];
    config.deployments.insert(
        DEMO_DEPLOYMENT_ID.into(),
        Deployment { web_messaging_url: Some(genesys.ws_url()), ..Deployment::default() },
    );
    // Links only the demo organisation's agents can open (`/dev/links`).
    config.deployments.insert(
        crate::agents::dev::DEMO_AGENTS_DEPLOYMENT.into(),
        crate::agents::dev::deployment(genesys.ws_url(), &platform),
    );
    config.validate()?;
    Ok(DevStack { s3, genesys, platform, token, config })
}

/// Runs `ferry dev` until Ctrl-C.
///
/// # Errors
/// When a server cannot start or the address is taken.
pub async fn run(args: DevArgs) -> Result<()> {
    // Boxed: the embedded stack's future is large, and `ferry`'s `main` awaits this one.
    Box::pin(run_boxed(args)).await
}

async fn run_boxed(args: DevArgs) -> Result<()> {
    check_listen(args.listen, args.allow_remote)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {} (is another ferry running? use --listen)", args.listen))?;
    let listen = listener.local_addr()?;
    let stack = start_stack(listen, &args.data).await?;
    // Malware scanning with a local clamd, when there is one (`docs/deploy.md`).
    let (clamd, scan_line) = crate::scan::dev_clamd(args.clamd.clone());
    let mut config = stack.config.clone();
    config.scan.address = clamd.unwrap_or_default();
    let state = AppState::with_s3_client(config, build_client(&stack).await)?;
    let _scan_watch = tokio::spawn(crate::scan::watch(state.clone()));
    let page = DEMO_PAGE
        .replace("{{TOKEN}}", &stack.token)
        .replace("{{DEPLOYMENT}}", DEMO_DEPLOYMENT_ID)
        .replace("{{GENESYS}}", &stack.genesys.base_url());
    let emulator = stack.genesys.state().clone();
    let dev_routes = axum::Router::new()
        .route("/", axum::routing::get(move || async move { axum::response::Html(page) }))
        .route(
            "/dev/links",
            axum::routing::get(move || {
                crate::agents::dev::links_page(
                    format!("http://{listen}"),
                    DEV_TICKET_SECRET,
                    DEMO_DEPLOYMENT_ID,
                )
            }),
        )
        .route(
            "/dev/tus.min.js",
            axum::routing::get(|| async { ([("content-type", "text/javascript")], TUS_JS) }),
        )
        .route(
            "/dev/conversations",
            axum::routing::get(move || {
                let emulator = emulator.clone();
                async move { axum::Json(emulator.conversations()) }
            }),
        );
    let router = crate::app::app(state.clone(), Some(dev_routes));
    let url = format!("http://{listen}");
    println!(
        "\nferry dev is running.\n\n  \
         demo page         {url}/\n  \
         upload API        {url}/v1/uploads   (OpenAPI: {url}/openapi.json)\n  \
         embedded S3       {s3}  bucket `{DEV_BUCKET}`, files under {data}\n  \
         Genesys emulator  {genesys}  (conversations: {genesys}/__sandbox/conversations)\n  \
         demo session      deployment `{DEMO_DEPLOYMENT_ID}`, token `{token}`\n  \
         agents links      {url}/dev/links  (sign in as a demo agent of the emulated Genesys login)\n  \
         malware scan      {scan_line}\n\n\
         Try it:\n  \
         printf 'hello from ferry\\n' > hello.txt\n  \
         curl -sS -X POST {url}/v1/uploads -H 'Authorization: Bearer {token}' -H 'X-Genesys-Deployment-Id: {DEMO_DEPLOYMENT_ID}' \
         -H 'Content-Type: text/plain' -H 'X-File-Name: hello.txt' --data-binary @hello.txt\n\n\
         Then look at {url}/dev/conversations (or {genesys}/__sandbox/conversations) to see it arrive. Ctrl-C stops everything.\n",
        s3 = stack.s3.endpoint(),
        data = args.data.join("s3").join(DEV_BUCKET).display(),
        genesys = stack.genesys.base_url(),
        token = stack.token,
    );
    crate::serve::serve(listener, router, state, crate::serve::shutdown_signal()).await?;
    Ok(())
}

/// `ferry dev` hands out a demo session and a public ticket secret: it listens on loopback only,
/// unless told otherwise.
///
/// # Errors
/// A non-loopback address without `allow_remote`.
pub fn check_listen(listen: std::net::SocketAddr, allow_remote: bool) -> Result<()> {
    anyhow::ensure!(
        listen.ip().is_loopback() || allow_remote,
        "`ferry dev` listens on loopback only ({listen} was given): it hands out a demo session and \
         a public ticket secret. Pass --allow-remote to expose it anyway"
    );
    Ok(())
}

async fn build_client(stack: &DevStack) -> ferry_s3::SdkClient {
    ferry_s3::build_client(&ferry_s3::S3Config::compatible(stack.s3.endpoint(), ACCESS_KEY, SECRET_KEY)).await
}
