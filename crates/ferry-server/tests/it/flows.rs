//! Whole flows over real sockets: upload → S3 → conversation.

use crate::support::{DEPLOYMENT, Ferry, random_bytes, sha256_hex};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_file_is_stored_and_delivered_natively() {
    let ferry = Ferry::start().await;
    let data = b"%PDF-1.7\nhello ferry\n".repeat(100);
    let response = ferry.raw("r%C3%A9sum%C3%A9.pdf", "application/pdf", data.clone()).send().await.unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let reference: Value = response.json().await.unwrap();
    assert_eq!(reference["name"], "résumé.pdf");
    assert_eq!(reference["size"], data.len());
    assert_eq!(reference["delivery"]["mode"], "native");
    assert_eq!(reference["checksums"]["sha256"], sha256_hex(&data));
    let key =
        ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX).unwrap();
    let key = key.as_str();
    assert!(key.starts_with(&format!("ferry/{DEPLOYMENT}/")));
    assert_eq!(ferry.object(key).await, data);

    let conversation = ferry.stack.genesys.state().conversation(ferry.token()).unwrap();
    let json = serde_json::to_value(&conversation).unwrap();
    let attachments = json["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "{json}");
    assert_eq!(attachments[0]["sha256"], sha256_hex(&data));
    assert!(ferry.stack.genesys.state().violations().is_empty());
    ferry.stop().await;
}

fn multipart_body(
    boundary: &str,
    name: &str,
    content_type: &str,
    data: &[u8],
    caption: Option<&str>,
) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(caption) = caption {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n{caption}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_bodies_and_delivery_modes() {
    let ferry = Ferry::start().await;
    // 0 bytes: stored, and (Genesys refuses empty attachments) delivered as a link.
    let r: Value =
        ferry.raw("empty.txt", "text/plain", Vec::new()).send().await.unwrap().json().await.unwrap();
    assert_eq!((r["size"].as_u64(), r["delivery"]["mode"].as_str()), (Some(0), Some("link")), "{r}");
    assert_eq!(
        ferry
            .object(
                ferry_testkit::reference::stored_key(&r, ferry_testkit::reference::DEFAULT_PREFIX)
                    .as_deref()
                    .unwrap()
            )
            .await,
        b""
    );
    // 1 byte, raw.
    let r: Value =
        ferry.raw("one.txt", "text/plain", b"x".to_vec()).send().await.unwrap().json().await.unwrap();
    assert_eq!((r["size"].as_u64(), r["delivery"]["mode"].as_str()), (Some(1), Some("native")), "{r}");

    // 3 MiB, one part, multipart/form-data with a caption.
    let data = random_bytes(3 << 20, 1);
    let body = multipart_body("XyZ", "photo.bin", "application/octet-stream", &data, Some("from the form"));
    let response = ferry
        .http
        .post(format!("{}/v1/uploads", ferry.url))
        .bearer_auth(ferry.token())
        .header("X-Genesys-Deployment-Id", DEPLOYMENT)
        .header("Content-Type", "multipart/form-data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let r: Value = response.json().await.unwrap();
    assert_eq!(r["name"], "photo.bin");
    assert_eq!(r["text"], "from the form");
    assert_eq!(r["checksums"]["sha256"], sha256_hex(&data));
    assert_eq!(
        ferry
            .object(
                ferry_testkit::reference::stored_key(&r, ferry_testkit::reference::DEFAULT_PREFIX)
                    .as_deref()
                    .unwrap()
            )
            .await,
        data
    );

    // 12 MiB: three 5 MiB parts, over the deployment's 10,240 KB: a link message.
    let big = random_bytes(12 << 20, 2);
    let response = ferry.raw("big.bin", "application/octet-stream", big.clone()).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let r: Value = response.json().await.unwrap();
    assert_eq!(r["delivery"]["mode"], "link", "{r}");
    assert!(r["checksums"]["s3ETag"].as_str().unwrap().ends_with("-3"));
    assert_eq!(
        ferry
            .object(
                ferry_testkit::reference::stored_key(&r, ferry_testkit::reference::DEFAULT_PREFIX)
                    .as_deref()
                    .unwrap()
            )
            .await,
        big
    );
    let link = r["downloadUrl"].as_str().unwrap();
    let conversation =
        serde_json::to_value(ferry.stack.genesys.state().conversation(ferry.token()).unwrap()).unwrap();
    let texts: Vec<&str> =
        conversation["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.iter().any(|t| t.contains(link) && t.contains("big.bin")), "{texts:?}");
    // The link works, through the 302 to the store.
    let fetched = ferry.http.get(link).send().await.unwrap().bytes().await.unwrap();
    assert!(fetched.as_ref() == big.as_slice());
    let attachments = conversation["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 2, "1 B and 3 MiB natively, 0 B and 12 MiB as links: {conversation}");
    assert!(ferry.stack.genesys.state().violations().is_empty());
    assert_eq!(ferry.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_while_streaming_keeps_nothing() {
    let ferry = Ferry::start_with(|c| c.limits.max_file_size = 7 << 20).await;
    // A chunked body (no Content-Length) that grows past the limit after a full part went up.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|i| Ok(random_bytes(1 << 20, i))).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = ferry
        .http
        .post(format!("{}/v1/uploads", ferry.url))
        .bearer_auth(ferry.token())
        .header("X-Genesys-Deployment-Id", DEPLOYMENT)
        .header("Content-Type", "application/octet-stream")
        .header("X-File-Name", "huge.bin")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"]["code"], "payload_too_large");
    assert!(ferry.stored_keys().await.is_empty());
    assert_eq!(ferry.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_leaves_nothing() {
    use tokio::io::AsyncWriteExt as _;
    let ferry = Ferry::start().await;
    let mut stream = tokio::net::TcpStream::connect(ferry.url.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Genesys-Deployment-Id: {DEPLOYMENT}\r\nContent-Type: application/octet-stream\r\nX-File-Name: gone.bin\r\nContent-Length: {}\r\n\r\n",
        ferry.token(),
        20 << 20
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&random_bytes(12 << 20, 3)).await.unwrap();
    // Two parts went up (or are going); now the client vanishes.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(stream);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        ferry.state.uploader.cleanups_settled().await;
        if ferry.open_multipart_uploads().await == 0
            && ferry.state.metrics.outcome_count("client_disconnected") == 1
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "debris left after the client went away");
    }
    assert!(ferry.stored_keys().await.is_empty());
    assert!(ferry.state.uploader.stats().aborted() >= 1, "the multipart upload was created, then aborted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_and_the_memory_budget() {
    // Room for exactly two parts being filled (5 MiB each; the budget is charged per buffered
    // part, and must hold one upload's 5 MiB × (1 in flight + 1)).
    let ferry = Ferry::start_with(|c| {
        c.limits.memory_budget = 10 << 20;
        c.s3.max_in_flight = 1;
    })
    .await;
    let mut handles = Vec::new();
    for i in 0..4u64 {
        let request =
            ferry.raw(&format!("c{i}.bin"), "application/octet-stream", random_bytes(2 << 20, 10 + i));
        handles.push(tokio::spawn(async move { request.send().await.unwrap().status().as_u16() }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    assert!(statuses.iter().all(|s| *s == 201 || *s == 503), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == 201).count() >= 2, "{statuses:?}");

    // Hold the whole budget with two slow uploads; a third is refused with Retry-After.
    let slow = |seed| {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        let body = reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let request =
            ferry.raw(&format!("slow{seed}.bin"), "application/octet-stream", Vec::new()).body(body);
        (tx, tokio::spawn(async move { request.send().await.unwrap().status().as_u16() }))
    };
    let (tx1, h1) = slow(1);
    let (tx2, h2) = slow(2);
    tx1.send(Ok(b"first bytes".to_vec())).await.unwrap();
    tx2.send(Ok(b"first bytes".to_vec())).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ferry.state.budget_used_bytes() < 10 << 20 {
        assert!(std::time::Instant::now() < deadline, "the slow uploads never reserved their budget");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let response = ferry.raw("third.txt", "text/plain", b"hi".to_vec()).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"]["code"], "server_busy");
    drop((tx1, tx2));
    assert_eq!(h1.await.unwrap(), 201);
    assert_eq!(h2.await.unwrap(), 201);
    assert_eq!(ferry.state.budget_used_bytes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_upload_aborts_cleanly() {
    let ferry = Ferry::start_with(|c| c.limits.shutdown_grace_secs = 1).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let request = ferry.raw("cut.bin", "application/octet-stream", Vec::new()).body(body);
    let client = tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
    tx.send(Ok(random_bytes(11 << 20, 5))).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ferry.open_multipart_uploads().await == 0 {
        assert!(std::time::Instant::now() < deadline, "the multipart upload never started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let state = ferry.state.clone();
    let (uploads, parts) = (ferry.stack.s3.pending_multipart(), ());
    assert!(uploads.0 == 1, "one multipart upload in progress: {uploads:?} {parts:?}");
    // Keep the servers alive while ferry stops: take the stack out of the harness.
    let (stack, _dir) = ferry.stop_keep_stack().await; // 1 s grace, then cancelled and aborted
    let _ = client.await;
    assert_eq!(stack.s3.pending_multipart(), (0, 0), "the cancelled upload was aborted");
    assert!(state.uploader.stats().aborted() >= 1);
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_messaging_deployments_deliver_the_signed_link() {
    use ferry_sandbox::platform::{PlatformConfig, PlatformEmulator};
    let platform =
        PlatformEmulator::start(PlatformConfig::with_client("om-client", "om-secret")).await.unwrap();
    let (login, api) = (platform.login_url(), platform.api_url());
    let ferry = Ferry::start_with(|c| {
        // The same integration twice: with the default attachment cap, and with a 1 MiB one.
        for (id, cap) in [("om-channel", None), ("om-capped", Some(1 << 20))] {
            c.deployments.insert(
                id.into(),
                ferry_server::config::Deployment {
                    delivery: ferry_server::config::DeliveryPreference::OpenMessaging,
                    open_messaging: Some(ferry_server::config::OpenMessagingSettings {
                        integration_id: "integration-1".into(),
                        client_id: "om-client".into(),
                        client_secret: "om-secret".into(),
                        api_url: Some(api.clone()),
                        login_url: Some(login.clone()),
                        max_attachment_bytes: cap,
                    }),
                    ..Default::default()
                },
            );
        }
    })
    .await;
    let data = random_bytes(3 << 20, 21);
    let ticket = ferry.ticket(|c| {
        c.dep = "om-channel".into();
        c.from = Some("customer-7".into());
    });
    let response = ferry
        .ticketed(&ticket, "scan.bin", "application/octet-stream", data.clone())
        .header("X-Caption", "my scan")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let r: Value = response.json().await.unwrap();
    assert_eq!(r["delivery"]["mode"], "open-messaging", "{r}");
    assert_eq!(r["delivery"]["asLink"], false, "{r}");
    let messages = platform.state().open_messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.integration_id, "integration-1");
    assert_eq!(message.body["channel"]["from"]["id"], "customer-7");
    assert_eq!(message.body["text"], "my scan");
    // Genesys (the emulator) fetched the file through ferry's signed link and got the same bytes.
    let fetched = &message.attachments[0];
    assert_eq!(fetched.size, data.len() as u64);
    assert_eq!(fetched.sha256.as_deref(), Some(sha256_hex(&data).as_str()));
    assert_eq!(fetched.sha256_matches, Some(true));
    assert_eq!(platform.state().token_requests(), 1);

    // A ticket without the customer: refused, and nothing kept.
    let ticket = ferry.ticket(|c| c.dep = "om-channel".into());
    let response = ferry.ticketed(&ticket, "a.txt", "text/plain", "x").send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(ferry.stored_keys().await.len(), 1);

    // Over the deployment's attachment cap: a text message carrying the signed link, nothing for
    // Genesys to fetch (it would refuse it later, as a receipt).
    let ticket = ferry.ticket(|c| {
        c.dep = "om-capped".into();
        c.from = Some("customer-7".into());
    });
    let response = ferry
        .ticketed(&ticket, "big-scan.bin", "application/octet-stream", data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let r: Value = response.json().await.unwrap();
    assert_eq!(r["delivery"]["mode"], "open-messaging", "{r}");
    assert_eq!(r["delivery"]["asLink"], true, "{r}");
    let messages = platform.state().open_messages();
    assert_eq!(messages.len(), 2, "one more message");
    let text = messages[1].body["text"].as_str().unwrap_or_default();
    let link = r["downloadUrl"].as_str().unwrap();
    assert!(text.starts_with("big-scan.bin (3 MB): ") && text.ends_with(link), "{text}");
    assert!(messages[1].body.get("content").is_none() && messages[1].attachments.is_empty());
    assert_eq!(ferry.stored_keys().await.len(), 2, "the file is stored all the same");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_after_its_body_leaves_no_half_done_upload() {
    use tokio::io::AsyncWriteExt as _;
    let ferry = Ferry::start().await;
    let mut outcomes = Vec::new();
    for (i, len) in [7usize << 20, 300 << 10, 12 << 20].into_iter().enumerate() {
        let data = random_bytes(len, 31 + i as u64);
        let mut stream =
            tokio::net::TcpStream::connect(ferry.url.trim_start_matches("http://")).await.unwrap();
        let head = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nX-Genesys-Deployment-Id: {DEPLOYMENT}\r\nContent-Type: application/octet-stream\r\nX-File-Name: closed-tab-{i}.bin\r\nContent-Length: {}\r\n\r\n",
            ferry.token(),
            data.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&data).await.unwrap();
        // The tab closes the moment the last byte is out, before any answer.
        drop(stream);
        // Wait until ferry is idle again: no upload holding budget, no completion, no abort running.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            ferry.state.uploader.cleanups_settled().await;
            if ferry.state.budget_used_bytes() == 0 && ferry.state.completions.is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "ferry never settled after the client left");
        }
        // Either ferry had the whole body (then the file is stored and delivered exactly once), or it
        // was cut off first (then nothing is kept): never stored but undelivered.
        let keys = ferry.stored_keys().await;
        let conversation =
            serde_json::to_value(ferry.stack.genesys.state().conversation(ferry.token()).unwrap()).unwrap();
        let sha = sha256_hex(&data);
        let attachments = conversation["attachments"].as_array().map_or(0, |a| {
            a.iter().filter(|x| x["state"] == "uploaded" && x["sha256"] == sha.as_str()).count()
        });
        let links = conversation["messages"].as_array().map_or(0, |m| {
            m.iter()
                .filter(|x| x["text"].as_str().is_some_and(|t| t.contains(&format!("closed-tab-{i}.bin"))))
                .count()
        });
        let kept = keys
            .iter()
            .filter(|k| !outcomes.iter().any(|(key, _): &(String, bool)| key == *k))
            .cloned()
            .collect::<Vec<_>>();
        match kept.as_slice() {
            [] => assert_eq!((attachments, links), (0, 0), "nothing stored, so nothing may be claimed"),
            [key] => {
                assert_eq!(ferry.object(key).await, data);
                assert_eq!(attachments + links, 1, "stored, so delivered exactly once: {conversation}");
                outcomes.push((key.clone(), true));
            }
            more => panic!("more than one object for one upload: {more:?}"),
        }
        assert_eq!(ferry.open_multipart_uploads().await, 0);
    }
    assert!(ferry.stack.genesys.state().violations().is_empty());
}
