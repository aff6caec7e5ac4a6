//! Operations: the admin listener (metrics and probes off the public port), readiness while
//! draining, HTTP metrics by route and status, and the access log line.

use crate::support::Ferry;
use axum::body::Body;
use std::sync::{Arc, Mutex};
use tower::ServiceExt as _;

async fn get(url: String) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_serves_metrics_and_probes_and_the_public_port_no_metrics() {
    let ferry = Ferry::start_with(|c| c.ops.admin_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let (admin, _task) =
        ferry_server::admin::start(&ferry.state).await.unwrap().expect("admin_listen is set");
    let admin = format!("http://{admin}");

    assert_eq!(get(format!("{}/metrics", ferry.url)).await.0, 404, "no metrics on the public port");
    assert_eq!(get(format!("{admin}/healthz")).await, (200, "ok".into()));
    assert_eq!(get(format!("{admin}/readyz")).await, (200, "ready".into()));
    assert_eq!(get(format!("{}/readyz", ferry.url)).await.0, 200, "the public port keeps its probes");

    let reply = ferry.raw("ops.txt", "text/plain", b"twelve bytes".to_vec()).send().await.unwrap();
    assert_eq!(reply.status(), 201);
    let (status, text) = get(format!("{admin}/metrics")).await;
    assert_eq!(status, 200);
    for line in [
        "ferry_uploads_total{outcome=\"created\"} 1\n",
        "ferry_stored_bytes_total 12\n",
        "ferry_uploads_in_flight 0\n",
        "ferry_http_requests_total{route=\"/v1/uploads\",method=\"POST\",status=\"201\"} 1\n",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    // The public /metrics above was not a route: counted under `unmatched`, not by its path.
    assert!(
        text.contains("ferry_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1\n")
    );
    assert!(text.contains("ferry_http_received_bytes_total{route=\"/v1/uploads\"} 12\n"), "{text}");
    assert!(text.contains("ferry_build_info{version=\""), "{text}");
    assert!(text.contains("process_resident_memory_bytes "), "{text}");

    // SIGTERM: both ports' readiness turns 503 at once, health stays 200.
    ferry_server::admin::drain_on(ferry.state.clone(), async {}).await;
    assert_eq!(get(format!("{admin}/readyz")).await, (503, "shutting down".into()));
    assert_eq!(get(format!("{}/readyz", ferry.url)).await.0, 503);
    assert_eq!(get(format!("{admin}/healthz")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_listener_the_public_port_serves_metrics() {
    let ferry = Ferry::start().await;
    assert!(ferry_server::admin::start(&ferry.state).await.unwrap().is_none());
    let (status, text) = get(format!("{}/metrics", ferry.url)).await;
    assert_eq!(status, 200);
    assert!(text.contains("ferry_uploads_in_flight 0\n"), "{text}");
}

/// A `MakeWriter` collecting log output in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn one_access_line_per_request_with_the_route_not_the_url() {
    let ferry = Ferry::start().await;
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter("ferry::access=info")
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let request = http::Request::get("/v1/files/abc?expires=1&signature=SECRET-SIG")
        .header("x-request-id", "trace-77")
        .body(Body::empty())
        .unwrap();
    let response = ferry_server::app::app(ferry.state.clone(), None).oneshot(request).await.unwrap();
    assert_eq!(response.status(), 403);
    let request = http::Request::post("/v1/uploads").body(Body::from("0123456789")).unwrap();
    let response = ferry_server::app::app(ferry.state.clone(), None).oneshot(request).await.unwrap();
    let upload_status = response.status().as_u16();
    let sent = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap().len() as u64;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("SECRET-SIG"), "{text}");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    let download = &lines[0]["fields"];
    assert_eq!(download["method"], "GET");
    assert_eq!(download["route"], "/v1/files/{id}");
    assert_eq!(download["status"], 403);
    assert_eq!(download["request_id"], "trace-77");
    assert!(download["duration_ms"].is_u64(), "{download}");
    assert!(download["bytes_out"].as_u64().is_some_and(|n| n > 0), "{download}");
    let upload = &lines[1]["fields"];
    assert_eq!((upload["method"].as_str(), upload["route"].as_str()), (Some("POST"), Some("/v1/uploads")));
    assert_eq!(upload["status"].as_u64(), Some(u64::from(upload_status)));
    assert_eq!(upload["bytes_out"].as_u64(), Some(sent));
    assert!(upload["request_id"].as_str().is_some_and(|id| id.len() == 36), "a fresh UUID: {upload}");
}
