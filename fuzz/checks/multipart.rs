//! Fuzz check of the multipart/form-data path of `POST /v1/uploads`: the fuzz bytes are the body
//! of a form upload authorised by a fresh upload ticket, sent through `ferry_server::app::app` with
//! `tower::ServiceExt::oneshot`, against s3s-fs in process (one runtime and one stack per process).
//! The answer is never a panic and never a 5xx: it is 201 with a reference to a stored object whose
//! bytes match its MD5, or a 4xx with a JSON error body and nothing stored and no multipart upload
//! left behind. Shared by the fuzz target and by ferry-server's regression test
//! (`tests/it/fuzz_multipart.rs`).

use ferry_sandbox::genesys::DEMO_DEPLOYMENT_ID;
use ferry_server::dev::{DEV_BUCKET, DEV_TICKET_SECRET, DevStack, start_stack};
use ferry_server::state::AppState;
use ferry_server::tickets::{Claims, mint};
use serde_json::Value;
use std::sync::OnceLock;
use tower::ServiceExt as _;

/// The form boundary the fuzzed bodies are sent with.
pub(crate) const BOUNDARY: &str = "ferry-fuzz-boundary";

struct Harness {
    runtime: tokio::runtime::Runtime,
    state: AppState,
    router: axum::Router,
    stack: DevStack,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (stack, state) = runtime.block_on(async {
            let listen = "127.0.0.1:9".parse().expect("an address");
            let stack = start_stack(listen, dir.path()).await.expect("s3s-fs and the Genesys emulator start");
            let client = ferry_s3::build_client(&ferry_s3::S3Config::compatible(
                stack.s3.endpoint(),
                ferry_sandbox::s3::ACCESS_KEY,
                ferry_sandbox::s3::SECRET_KEY,
            ))
            .await;
            let state = AppState::with_s3_client(stack.config.clone(), client).expect("the app state");
            (stack, state)
        });
        let router = ferry_server::app::app(state.clone(), None);
        Harness { runtime, state, router, stack, _dir: dir }
    })
}

async fn stored(state: &AppState) -> Vec<(String, i64)> {
    let out =
        state.uploader.client().list_objects_v2().bucket(DEV_BUCKET).send().await.expect("the bucket lists");
    out.contents().iter().filter_map(|o| Some((o.key()?.to_owned(), o.size()?))).collect()
}

/// Runs one input and returns the answer's status; panics when an invariant breaks.
pub(crate) fn check(input: &[u8]) -> http::StatusCode {
    let h = harness();
    h.runtime.block_on(async {
        assert!(stored(&h.state).await.is_empty(), "the bucket is empty before each input");
        let claims = Claims {
            dep: DEMO_DEPLOYMENT_ID.into(),
            exp: h.state.now_unix() + 600,
            jti: uuid::Uuid::new_v4().to_string(),
            iat: None,
            kid: None,
            max: None,
            types: None,
            from: None,
            reference: None,
        };
        let ticket = mint(DEV_TICKET_SECRET.as_bytes(), &claims);
        // Odd lengths arrive as one frame; even ones in frames of 1–64 bytes, so that boundaries
        // and headers straddle frames.
        let body = if input.len() % 2 == 1 {
            axum::body::Body::from(input.to_vec())
        } else {
            let step = 1 + usize::from(input.iter().fold(0u8, |a, b| a.wrapping_add(*b)) % 64);
            let frames: Vec<Result<bytes::Bytes, std::io::Error>> =
                input.chunks(step).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
            axum::body::Body::from_stream(futures::stream::iter(frames))
        };
        let request = http::Request::post("/v1/uploads")
            .header("authorization", format!("Ferry-Ticket {ticket}"))
            .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .header("content-length", input.len())
            .body(body)
            .expect("a request");
        let response = h.router.clone().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("a body");
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(!status.is_server_error(), "{status}: {json}");
        let objects = stored(&h.state).await;
        if status == http::StatusCode::CREATED {
            let key = json["storage"]["key"].as_str().expect("a reference names its key");
            let size = json["size"].as_i64().expect("a reference has a size");
            assert_eq!(objects, vec![(key.to_owned(), size)], "exactly the referenced object is stored");
            let object = h.state.uploader.client().get_object().bucket(DEV_BUCKET).key(key).send().await;
            let data = object.expect("the object reads back").body.collect().await.expect("its bytes");
            let md5 = ferry_core::checksum::Md5::of(&data.into_bytes()).to_hex();
            assert_eq!(json["checksums"]["md5"].as_str(), Some(md5.as_str()));
            h.state.uploader.delete(key).await.expect("the object deletes");
        } else {
            assert!(status.is_client_error(), "{status}: {json}");
            assert!(json["error"]["code"].is_string(), "a 4xx carries a JSON error: {status} {json}");
            assert!(objects.is_empty(), "a refused form left {objects:?}");
        }
        assert_eq!(h.stack.s3.pending_multipart(), (0, 0), "a multipart upload was left behind");
        status
    })
}
