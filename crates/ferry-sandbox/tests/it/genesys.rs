//! The Genesys emulator spoken to by hand (raw WebSocket frames and HTTP), independent of the
//! ferry-genesys client.

use ferry_sandbox::genesys::Deployment;
use futures::StreamExt;
use serde_json::json;
use sha2::Digest as _;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::get_json;
use crate::ws::{DEP, configure, open, recv, send, start};

#[tokio::test]
async fn sessions_are_keyed_by_token_and_hold_three_connections() {
    let emu = start(Deployment::new(DEP)).await;
    let mut first = open(&emu).await;
    let reply = configure(&mut first, "tok-1").await;
    assert_eq!(reply["class"], "SessionResponse");
    assert_eq!(reply["tracingId"], "cfg");
    assert_eq!(reply["body"]["newSession"], true, "an unknown token makes a new session");
    assert_eq!(reply["body"]["allowedMedia"]["inbound"]["maxFileSizeKB"], 10240);
    assert_eq!(reply["body"]["allowedMedia"]["inbound"]["fileTypes"][0]["type"], "*/*");

    let mut others = Vec::new();
    for _ in 0..2 {
        let mut ws = open(&emu).await;
        assert_eq!(configure(&mut ws, "tok-1").await["body"]["newSession"], false);
        others.push(ws);
    }
    assert_eq!(emu.connection_count("tok-1"), 3);
    let mut fourth = open(&emu).await;
    configure(&mut fourth, "tok-1").await;
    let evicted = recv(&mut first).await;
    assert_eq!(evicted["class"], "ConnectionClosedEvent");
    assert_eq!(evicted["body"]["reason"], "SessionLimitReached");
    assert!(matches!(first.next().await, Some(Ok(Message::Close(_))) | None | Some(Err(_))));
    assert_eq!(emu.connection_count("tok-1"), 3);
}

#[tokio::test]
async fn the_attachment_flow_by_hand_with_fan_out_and_inspection() {
    let emu = start(Deployment::new(DEP)).await;
    let token = emu.create_session(DEP);
    let (mut a, mut b) = (open(&emu).await, open(&emu).await);
    assert_eq!(configure(&mut a, &token).await["body"]["newSession"], false);
    configure(&mut b, &token).await;

    let content = vec![7u8; 5000];
    send(
        &mut a,
        json!({"action": "onAttachment", "token": token, "attachmentId": "att-1", "fileName": "a.pdf",
        "fileType": "application/pdf", "fileSize": content.len(), "errorsAsJson": true, "tracingId": "t1"}),
    )
    .await;
    let presigned = recv(&mut a).await;
    assert_eq!(presigned["class"], "PresignedUrlResponse");
    assert_eq!(presigned["tracingId"], "t1");
    let url = presigned["body"]["url"].as_str().unwrap().to_owned();
    let headers = presigned["body"]["headers"].as_object().unwrap().clone();
    assert!(headers.contains_key("x-amz-tagging"));

    // A message naming the attachment before it uploaded is refused, and recorded.
    let early = json!({"action": "onMessage", "token": token, "tracingId": "early", "message": {"type": "Text",
        "content": [{"contentType": "Attachment", "attachment": {"id": "att-1"}}]}});
    send(&mut a, early).await;
    let refused = recv(&mut a).await;
    assert_eq!((refused["class"].as_str(), refused["code"].as_u64()), (Some("string"), Some(4010)));
    assert_eq!(emu.violations().len(), 1);

    let http = reqwest::Client::new();
    let put = |ct: &'static str, with_headers: bool, body: Vec<u8>| {
        let mut req = http.put(&url).header("Content-Type", ct).body(body);
        if with_headers {
            for (k, v) in &headers {
                req = req.header(k.as_str(), v.as_str().unwrap());
            }
        }
        req.send()
    };
    assert_eq!(
        put("application/pdf", false, content.clone()).await.unwrap().status(),
        403,
        "signed header missing"
    );
    assert_eq!(put("text/plain", true, content.clone()).await.unwrap().status(), 403, "wrong content type");
    assert_eq!(
        put("application/pdf", true, content[..10].to_vec()).await.unwrap().status(),
        400,
        "wrong size"
    );
    assert_eq!(put("application/pdf", true, content.clone()).await.unwrap().status(), 200);
    assert_eq!(
        put("application/pdf", true, content.clone()).await.unwrap().status(),
        403,
        "URLs are single use"
    );

    for ws in [&mut a, &mut b] {
        let event = recv(ws).await;
        assert_eq!(event["class"], "UploadSuccessEvent");
        assert_eq!(event["body"]["attachmentId"], "att-1");
    }
    send(&mut a, json!({"action": "onMessage", "token": token, "tracingId": "t2", "message": {"type": "Text", "text": "hi",
        "content": [{"contentType": "Attachment", "attachment": {"id": "att-1"}}],
        "channel": {"metadata": {"customAttributes": {"k": "v"}}}}})).await;
    let echo = recv(&mut a).await;
    assert_eq!(echo["class"], "StructuredMessage");
    assert_eq!(echo["tracingId"], "t2");
    assert_eq!(echo["body"]["content"][0]["attachment"]["filename"], "a.pdf");
    let fanned = recv(&mut b).await;
    assert_eq!(fanned["body"]["text"], "hi");
    assert!(fanned.get("tracingId").is_none());

    let doc = get_json(format!("{}/__sandbox/conversations", emu.base_url())).await;
    let conv = &doc["conversations"][0];
    assert_eq!(conv["tokenHint"], token[..8]);
    assert!(!doc.to_string().contains(&token), "inspection never shows a whole token");
    let attachment = &conv["attachments"][0];
    assert_eq!(attachment["size"], 5000);
    let sha: String = sha2::Sha256::digest(&content).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(attachment["sha256"], sha);
    assert_eq!(conv["messages"][0]["customAttributes"]["k"], "v");
    assert_eq!(doc["violations"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn limits_errors_and_other_actions() {
    let mut dep = Deployment::new(DEP);
    dep.allowed_file_types = vec!["image/*".into()];
    dep.max_file_size_kb = 1;
    let emu = start(dep).await;
    let token = emu.create_session(DEP);
    let mut ws = open(&emu).await;
    configure(&mut ws, &token).await;

    let attach = |name: &str, ty: &str, size: u64| {
        json!({"action": "onAttachment", "token": token, "attachmentId": format!("id-{name}"), "fileName": name,
               "fileType": ty, "fileSize": size, "errorsAsJson": true})
    };
    for (request, code) in [
        (attach("big.png", "image/png", 1025), 4002),
        (attach("empty.png", "image/png", 0), 4002),
        (attach("doc.pdf", "application/pdf", 10), 4001),
        (attach("x.exe", "image/png", 10), 4001),
    ] {
        send(&mut ws, request).await;
        let reply = recv(&mut ws).await;
        assert_eq!(reply["class"], "GenerateUrlError");
        assert_eq!(reply["body"]["errorCode"], code);
    }
    send(
        &mut ws,
        json!({"action": "getAttachment", "token": token, "attachmentId": "nope", "tracingId": "g"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], 4009);
    send(&mut ws, json!({"action": "getJwt", "token": token})).await;
    let jwt = recv(&mut ws).await;
    assert_eq!(jwt["class"], "JwtResponse");
    assert!(jwt["body"]["exp"].as_u64().unwrap() > 1_700_000_000);
    send(&mut ws, json!({"action": "echo", "token": token, "tracingId": "e", "message": {"type": "Text", "text": "ping"}})).await;
    let echo = recv(&mut ws).await;
    assert_eq!(
        (echo["class"].as_str(), echo["body"]["text"].as_str()),
        (Some("StructuredMessage"), Some("ping"))
    );
    send(&mut ws, json!({"action": "getJwt", "token": "someone-else"})).await;
    assert_eq!(recv(&mut ws).await["code"], 4007, "a connection acts only for its own token");

    emu.update_faults(|f| {
        f.throttle_requests = 1;
        f.retry_after_secs = 3;
    });
    send(&mut ws, json!({"action": "getJwt", "token": token, "tracingId": "r"})).await;
    let limited = recv(&mut ws).await;
    assert_eq!(limited["class"], "TooManyRequestsErrorMessage");
    assert_eq!((limited["code"].as_u64(), limited["body"]["retryAfter"].as_u64()), (Some(429), Some(3)));
    assert_eq!(limited["body"]["errorCode"], 4029);
    assert_eq!(limited["tracingId"], "r");

    emu.set_read_only(&token, true);
    send(
        &mut ws,
        json!({"action": "onMessage", "token": token, "message": {"type": "Text", "text": "late"}}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["code"], 4000);
    assert!(emu.conversation(&token).unwrap().messages.is_empty());
    assert!(emu.violations().is_empty());
}

#[tokio::test]
async fn forbidden_requests_are_recorded_as_violations() {
    let emu = start(Deployment::new(DEP)).await;
    let token = emu.create_session(DEP);
    let mut ws = open(&emu).await;
    send(
        &mut ws,
        json!({"action": "configureSession", "token": token, "deploymentId": DEP, "startNew": true}),
    )
    .await;
    recv(&mut ws).await;
    send(&mut ws, json!({"action": "closeSession", "token": token, "closeAllConnections": true})).await;
    recv(&mut ws).await;
    assert_eq!(emu.violations().len(), 2, "{:?}", emu.violations());
}

#[tokio::test]
async fn origins_and_deployments_are_checked_at_the_upgrade() {
    let mut dep = Deployment::new(DEP);
    dep.allowed_origins = Some(vec!["https://shop.example".into()]);
    let emu = start(dep).await;
    let url = format!("{}?deploymentId={DEP}", emu.ws_url());
    let err = tokio_tungstenite::connect_async(url.clone()).await.unwrap_err();
    assert!(matches!(err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 403));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("Origin", "https://shop.example".parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap();
    let unknown = format!("{}?deploymentId=nope", emu.ws_url());
    assert!(tokio_tungstenite::connect_async(unknown).await.is_err());
}

#[tokio::test]
async fn a_socket_is_dropped_after_n_frames_and_shutdown_closes_everything() {
    let emu = start(Deployment::new(DEP)).await;
    emu.update_faults(|f| {
        f.drop_after_frames = Some(1);
        f.drop_connections = Some(1);
    });
    let mut ws = open(&emu).await;
    configure(&mut ws, "tok").await;
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    assert!(!matches!(next, Some(Ok(Message::Text(_)))), "the socket was dropped: {next:?}");
    let mut ws = open(&emu).await;
    configure(&mut ws, "tok").await;
    send(&mut ws, json!({"action": "getJwt", "token": "tok"})).await;
    assert_eq!(recv(&mut ws).await["class"], "JwtResponse", "only one connection was faulty");
    emu.shutdown().await;
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    assert!(!matches!(end, Some(Ok(Message::Text(_)))));
}
