//! A running ferry wired to s3s-fs and the Genesys emulator, as `ferry dev` wires it, on loopback.

use ferry_sandbox::genesys::DEMO_DEPLOYMENT_ID;
use ferry_server::config::Config;
use ferry_server::dev::{DevStack, start_stack};
use ferry_server::state::AppState;
use std::net::SocketAddr;

pub(crate) struct Ferry {
    pub(crate) stack: DevStack,
    pub(crate) state: AppState,
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

pub(crate) const DEPLOYMENT: &str = DEMO_DEPLOYMENT_ID;

impl Ferry {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let mut stack = start_stack(addr, dir.path()).await.unwrap();
        adjust(&mut stack.config);
        stack.config.validate().unwrap();
        let client = ferry_s3::build_client(&ferry_s3::S3Config::compatible(
            stack.s3.endpoint(),
            ferry_sandbox::s3::ACCESS_KEY,
            ferry_sandbox::s3::SECRET_KEY,
        ))
        .await;
        let state = AppState::with_s3_client(stack.config.clone(), client).unwrap();
        let router = ferry_server::app::app(state.clone(), None);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        let task = tokio::spawn(async move {
            ferry_server::serve::serve(listener, router, serve_state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            stack,
            state,
            url: format!("http://{addr}"),
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    pub(crate) fn token(&self) -> &str {
        &self.stack.token
    }

    /// A raw-body upload request with the demo session.
    pub(crate) fn raw(&self, name: &str, content_type: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/v1/uploads", self.url))
            .bearer_auth(self.token())
            .header("X-Genesys-Deployment-Id", DEPLOYMENT)
            .header("Content-Type", content_type)
            .header("X-File-Name", name)
            .body(body)
    }

    /// A raw-body upload request authorised by a ticket.
    pub(crate) fn ticketed(
        &self,
        ticket: &str,
        name: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/v1/uploads", self.url))
            .header("Authorization", format!("Ferry-Ticket {ticket}"))
            .header("Content-Type", content_type)
            .header("X-File-Name", name)
            .body(body)
    }

    /// Keys stored in the bucket.
    pub(crate) async fn stored_keys(&self) -> Vec<String> {
        let client = self.state.uploader.client();
        let out = client.list_objects_v2().bucket(&self.state.config.s3.bucket).send().await.unwrap();
        out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    }

    pub(crate) async fn object(&self, key: &str) -> Vec<u8> {
        let client = self.state.uploader.client();
        let out = client.get_object().bucket(&self.state.config.s3.bucket).key(key).send().await.unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }

    /// Stops serving (graceful shutdown) and waits.
    pub(crate) async fn stop(self) {
        drop(self.stop_keep_stack().await);
    }

    /// Stops serving and waits, handing back the stores so they can still be inspected.
    pub(crate) async fn stop_keep_stack(mut self) -> (DevStack, tempfile::TempDir) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        (self.stack, self._dir)
    }
}

pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    ferry_testkit::data::pseudo_random(b"", len, seed)
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    ferry_core::checksum::Sha256::of(data).to_hex()
}

impl Ferry {
    /// Sends `request` through the router in process (no socket).
    pub(crate) async fn oneshot(
        &self,
        request: http::Request<axum::body::Body>,
    ) -> (http::StatusCode, http::HeaderMap, Value) {
        use tower::ServiceExt as _;
        let response = ferry_server::app::app(self.state.clone(), None).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, json)
    }

    /// A request builder for `POST /v1/uploads` with the demo session.
    pub(crate) fn upload_request(&self) -> http::request::Builder {
        http::Request::post("/v1/uploads")
            .header("authorization", format!("Bearer {}", self.token()))
            .header("x-genesys-deployment-id", DEPLOYMENT)
    }

    /// A ticket for the demo deployment.
    pub(crate) fn ticket(&self, adjust: impl FnOnce(&mut ferry_server::tickets::Claims)) -> String {
        let mut claims = ferry_server::tickets::Claims {
            reference: Some("case-42".into()),
            ..ferry_server::tickets::Claims::new(DEPLOYMENT, self.state.now_unix() + 600)
        };
        adjust(&mut claims);
        ferry_server::tickets::mint(ferry_server::dev::DEV_TICKET_SECRET.as_bytes(), &claims)
    }

    /// Multipart uploads still open, and their part files (s3s-fs has no ListMultipartUploads, so
    /// this looks at its folder).
    pub(crate) async fn open_multipart_uploads(&self) -> usize {
        let (uploads, parts) = self.stack.s3.pending_multipart();
        uploads + parts
    }
}

pub(crate) fn error_code(json: &Value) -> &str {
    json["error"]["code"].as_str().unwrap_or("(none)")
}

use serde_json::Value;
