//! The memory budget after a hang-up: an upload's share stays reserved until its part buffers are
//! gone, even when the client hangs up the moment its body is out and ferry drops the request.
//! S3 is made slow (the fault proxy delays the last part), so the part buffers outlive the request.

use crate::support::{DEPLOYMENT, random_bytes};
use ferry_sandbox::s3_faults::{Action, FaultProxy, Rule, Target};
use ferry_server::state::AppState;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

/// One look at ferry while the upload is under way.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Requests being answered (`ferry_uploads_in_flight`).
    requests: u64,
    /// Part bytes held by ferry-s3.
    part_bytes: u64,
    /// Memory budget reserved (`ferry_memory_budget_used_bytes`).
    budget: u64,
}

fn sample(state: &AppState) -> Sample {
    let text = state.metrics.render(0, 0, 0, 0, 0);
    let requests = text
        .lines()
        .find_map(|l| l.strip_prefix("ferry_uploads_in_flight "))
        .and_then(|n| n.parse().ok())
        .expect("the in-flight gauge");
    Sample { requests, part_bytes: state.uploader.memory().held(), budget: state.budget_used_bytes() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_stays_reserved_after_a_hang_up_until_s3_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stack = ferry_server::dev::start_stack(addr, dir.path()).await.unwrap();
    // ferry talks to s3s-fs through the fault proxy, which holds the last part back for 2 s.
    let proxy = FaultProxy::start(stack.s3.addr()).await.unwrap();
    proxy.add_rule(Rule::new(Target::UploadPart(Some(3)), Action::Delay(Duration::from_secs(2))));
    let client = ferry_s3::build_client(&ferry_s3::S3Config::compatible(
        proxy.endpoint(),
        ferry_sandbox::s3::ACCESS_KEY,
        ferry_sandbox::s3::SECRET_KEY,
    ))
    .await;
    let state = AppState::with_s3_client(stack.config.clone(), client).unwrap();
    let router = ferry_server::app::app(state.clone(), None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ferry_server::serve::serve(listener, router, state.clone(), async {
        let _ = stopped.await;
    }));
    assert_eq!(state.budget_used_bytes(), 0, "nothing reserved before the upload");

    // 12 MiB in 5 MiB parts: parts 1 and 2 go up while the body arrives, part 3 after its end.
    let data = random_bytes(12 << 20, 41);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Genesys-Deployment-Id: {DEPLOYMENT}\r\nContent-Type: application/octet-stream\r\nX-File-Name: hung-up.bin\r\nContent-Length: {}\r\n\r\n",
        stack.token,
        data.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&data).await.unwrap();
    // The tab closes once ferry has the whole body: parts 1 and 2 are in the store and part 3, cut
    // only at the body's end, is held back by the proxy.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stack.s3.pending_multipart().1 < 2 || state.uploader.memory().held() == 0 {
        assert!(Instant::now() < deadline, "the body never got in: {:?}", sample(&state));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(stream);

    let mut samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = sample(&state);
        samples.push(now);
        if now.requests == 0 && now.part_bytes == 0 && now.budget == 0 && state.completions.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "ferry never settled: {samples:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The request was dropped while S3 still held the last part back, and the budget stayed reserved.
    let orphaned: Vec<&Sample> = samples.iter().filter(|s| s.requests == 0 && s.part_bytes > 0).collect();
    assert!(!orphaned.is_empty(), "the request outlived the slow part, so this shows nothing: {samples:?}");
    for s in &samples {
        assert!(s.part_bytes == 0 || s.budget > 0, "part buffers held without their budget: {s:?}");
    }
    // And the upload finished: stored and delivered once, the budget all returned.
    assert_eq!(proxy.requests_of(Target::UploadPart(Some(3))).len(), 1, "{:?}", proxy.log());
    let keys =
        state.uploader.client().list_objects_v2().bucket(&state.config.s3.bucket).send().await.unwrap();
    assert_eq!(keys.contents().len(), 1, "the file was stored");
    let conversation =
        serde_json::to_value(stack.genesys.state().conversation(&stack.token).unwrap()).unwrap();
    let links = conversation["messages"].as_array().map_or(0, |m| {
        m.iter().filter(|x| x["text"].as_str().is_some_and(|t| t.contains("hung-up.bin"))).count()
    });
    assert_eq!(links, 1, "delivered once: {conversation}");
    assert_eq!(state.budget_used_bytes(), 0);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
