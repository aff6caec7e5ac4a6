//! The guest client against the Genesys emulator, over real loopback sockets.

use bytes::Bytes;
use ferry_core::checksum::{Md5, Sha256};
use ferry_genesys::guest::{
    ByteStream, Delivery, Fallback, FileMeta, GuestClient, GuestConfig, GuestSession, UploadBody, human_size,
};
use ferry_genesys::limits::LinkReason;
use ferry_genesys::protocol::ErrorCode;
use ferry_genesys::{Error, SessionToken};
use ferry_sandbox::genesys::{DEMO_DEPLOYMENT_ID, Deployment, GenesysEmulator, GenesysEmulatorConfig};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use url::Url;

const DEP: &str = DEMO_DEPLOYMENT_ID;

async fn emulator_with(deployments: Vec<Deployment>) -> GenesysEmulator {
    let config = GenesysEmulatorConfig { deployments, ..GenesysEmulatorConfig::default() };
    GenesysEmulator::start(config).await.expect("emulator starts")
}

async fn emulator() -> GenesysEmulator {
    emulator_with(vec![Deployment::new(DEP)]).await
}

/// Short real timeouts: sockets are involved, so time is not paused here.
fn fast_config(emu: &GenesysEmulator) -> GuestConfig {
    let mut c = GuestConfig::new(Url::parse(&emu.ws_url()).unwrap());
    c.connect_timeout = Duration::from_secs(5);
    c.response_timeout = Duration::from_secs(5);
    c.upload_event_timeout = Duration::from_secs(5);
    c.upload_poll_interval = Duration::from_millis(50);
    c.reconnect_retry.initial_delay = Duration::from_millis(10);
    c.upload_retry.initial_delay = Duration::from_millis(10);
    c.rate_limit_retry.initial_delay = Duration::from_millis(10);
    c
}

fn client(emu: &GenesysEmulator) -> GuestClient {
    GuestClient::new(fast_config(emu)).unwrap()
}

/// A session made on the emulator and a guest client connected to it.
async fn connect(emu: &GenesysEmulator) -> (String, GuestSession) {
    let token = emu.create_session(DEP);
    let session = client(emu).connect(DEP, &SessionToken::new(&token)).await.unwrap();
    (token, session)
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8).collect()
}

fn meta(name: &str, mime: &str, bytes: &[u8]) -> FileMeta {
    FileMeta {
        file_id: format!("file-{name}"),
        file_name: name.into(),
        mime_type: mime.into(),
        size: bytes.len() as u64,
        sha256: Some(Sha256::of(bytes)),
        md5: Some(Md5::of(bytes)),
        attributes: Default::default(),
    }
}

/// A one-shot body streaming `bytes` in chunks of `chunk` bytes.
fn chunked(bytes: &[u8], chunk: usize) -> UploadBody {
    let chunks: Vec<Result<Bytes, ferry_genesys::BoxError>> =
        bytes.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    UploadBody::from_stream(bytes.len() as u64, futures::stream::iter(chunks))
}

/// Drops the session's connections (after `then` adjusts the faults) as soon as its attachment is
/// uploaded, so the upload event is lost with the socket.
fn drop_once_uploaded(
    emu: &GenesysEmulator,
    token: &str,
    then: impl FnOnce(&mut ferry_sandbox::genesys::Faults) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let state = emu.state().clone();
    let token = token.to_owned();
    tokio::spawn(async move {
        loop {
            let uploaded = state
                .conversation(&token)
                .is_some_and(|c| c.attachments.iter().any(|a| a.state == "uploaded"));
            if uploaded {
                state.update_faults(then);
                state.drop_connections(&token);
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

#[tokio::test]
async fn native_delivery_end_to_end_stores_the_same_sha256() {
    let emu = emulator().await;
    let token = emu.create_session(DEP);
    let bytes = data(300 * 1024 + 17);
    let file = meta("report.pdf", "application/pdf", &bytes);

    let mut session = client(&emu).connect(DEP, &SessionToken::new(&token)).await.unwrap();
    assert_eq!(session.limits().max_file_size_kb, 10240);
    let delivered =
        session.send_attachment(&file, chunked(&bytes, 64 * 1024 + 3), Some("the report")).await.unwrap();
    session.close();

    assert!(delivered.download_url.expose().starts_with(&emu.base_url()));
    let conv = emu.conversation(&token).unwrap();
    assert_eq!(conv.attachments.len(), 1);
    let stored = &conv.attachments[0];
    assert_eq!(stored.id, delivered.attachment_id);
    assert_eq!(stored.state, "uploaded");
    assert_eq!(stored.file_name, "report.pdf");
    assert_eq!(stored.size, Some(bytes.len() as u64));
    assert_eq!(stored.sha256.as_deref(), Some(Sha256::of(&bytes).to_hex().as_str()));
    assert_eq!(conv.messages.len(), 1);
    let message = &conv.messages[0];
    assert_eq!(Some(&message.id), delivered.message_id.as_ref());
    assert_eq!(message.attachment_ids, vec![delivered.attachment_id.clone()]);
    assert_eq!(message.text.as_deref(), Some("the report"));
    assert_eq!(message.custom_attributes["ferryFileId"], "file-report.pdf");
    assert_eq!(message.custom_attributes["ferrySha256"], Sha256::of(&bytes).to_hex());
    assert_eq!(message.custom_attributes["ferrySize"], bytes.len().to_string());
    assert!(emu.violations().is_empty(), "{:?}", emu.violations());
}

#[tokio::test]
async fn files_outside_the_limits_are_delivered_as_links() {
    let mut dep = Deployment::new(DEP);
    dep.allowed_file_types = vec!["image/*".into(), "application/pdf".into()];
    dep.max_file_size_kb = 1;
    let emu = emulator_with(vec![dep]).await;
    let (token, mut session) = connect(&emu).await;

    let big = data(1001);
    let cases = [
        (meta("big.pdf", "application/pdf", &big), LinkReason::TooLarge { size: 1001, max: 1000 }),
        (meta("run.exe", "image/png", b"MZ"), LinkReason::BlockedExtension { extension: ".exe".into() }),
        (meta("clip.mp4", "video/mp4", b"mp4"), LinkReason::TypeNotAllowed { mime_type: "video/mp4".into() }),
    ];
    for (file, expected) in cases {
        let link = format!("https://ferry.example/f/{}", file.file_id);
        let body = UploadBody::from_bytes(vec![0u8; file.size as usize]);
        // Refused when asked not to fall back: nothing is sent.
        let refused = session.deliver(&file, body, Some(&link), None, Fallback::Refuse).await;
        assert!(matches!(&refused, Err(Error::NotAttachable(r)) if *r == expected), "{refused:?}");
        let body = UploadBody::from_bytes(vec![0u8; file.size as usize]);
        match session.deliver(&file, body, Some(&link), Some("see link"), Fallback::Link).await.unwrap() {
            Delivery::Link { reason, .. } => assert_eq!(reason, expected),
            other => panic!("expected a link, got {other:?}"),
        }
        let conv = emu.conversation(&token).unwrap();
        let text = conv.messages.last().unwrap().text.clone().unwrap();
        assert_eq!(text, format!("see link\n{} ({}): {link}", file.file_name, human_size(file.size)));
    }
    // And an allowed one still goes natively.
    let ok = meta("small.png", "image/png", b"png!");
    let delivery =
        session.deliver(&ok, UploadBody::from_bytes(&b"png!"[..]), None, None, Fallback::Link).await;
    assert!(matches!(delivery, Ok(Delivery::Native(_))), "{delivery:?}");

    let conv = emu.conversation(&token).unwrap();
    assert_eq!(conv.messages.len(), 4);
    assert_eq!(conv.attachments.len(), 1, "only the allowed file was uploaded");
    assert!(conv.messages[..3].iter().all(|m| m.attachment_ids.is_empty()));
    assert_eq!(conv.messages[0].custom_attributes["ferrySize"], "1001");
    assert!(emu.violations().is_empty());
}

#[tokio::test]
async fn an_unknown_session_is_refused() {
    let emu = emulator().await;
    let token = SessionToken::random();
    let err = client(&emu).validate(DEP, &token).await.unwrap_err();
    assert!(matches!(err, Error::SessionNotFound), "{err:?}");
    assert!(!err.is_retryable());
    // Like Genesys, that first attempt left an empty session behind; nothing was sent into it.
    let conv = emu.conversation(token.expose()).unwrap();
    assert!(conv.messages.is_empty() && conv.attachments.is_empty());
    let err = client(&emu).connect(DEP, &SessionToken::random()).await.unwrap_err();
    assert!(matches!(err, Error::SessionNotFound), "{err:?}");
}

#[tokio::test]
async fn a_read_only_conversation_is_refused() {
    let emu = emulator().await;
    let token = emu.create_session(DEP);
    emu.set_read_only(&token, true);
    let err = client(&emu).validate(DEP, &SessionToken::new(&token)).await.unwrap_err();
    assert!(matches!(err, Error::ConversationClosed), "{err:?}");
    emu.set_read_only(&token, false);
    client(&emu).validate(DEP, &SessionToken::new(&token)).await.unwrap();
}

#[tokio::test]
async fn validate_reads_limits_and_leaves_nothing_open() {
    let mut dep = Deployment::new(DEP);
    dep.allowed_file_types = vec!["image/*".into()];
    dep.max_file_size_kb = 2048;
    let emu = emulator_with(vec![dep]).await;
    let token = emu.create_session(DEP);
    let info = client(&emu).validate(DEP, &SessionToken::new(&token)).await.unwrap();
    assert_eq!(info.limits.max_file_size_kb, 2048);
    assert_eq!(info.limits.allowed_types, vec!["image/*"]);
    assert!(info.limits.blocked_extensions.contains(&".exe".to_owned()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while emu.connection_count(&token) > 0 {
        assert!(Instant::now() < deadline, "the validation connection stayed open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let conv = emu.conversation(&token).unwrap();
    assert!(conv.messages.is_empty() && conv.attachments.is_empty());
}

#[tokio::test]
async fn origins_are_sent_and_enforced() {
    let mut dep = Deployment::new(DEP);
    dep.allowed_origins = Some(vec!["https://shop.example".into()]);
    let emu = emulator_with(vec![dep]).await;
    let token = SessionToken::new(emu.create_session(DEP));
    let err = client(&emu).validate(DEP, &token).await.unwrap_err();
    assert!(matches!(err, Error::HandshakeRejected { status: 403 }), "{err:?}");
    let mut config = fast_config(&emu);
    config.origin = Some("https://shop.example".into());
    GuestClient::new(config).unwrap().validate(DEP, &token).await.unwrap();
}

#[tokio::test]
async fn rate_limit_frames_are_waited_out() {
    let emu = emulator().await;
    let (token, mut session) = connect(&emu).await;
    emu.update_faults(|f| {
        f.throttle_requests = 2;
        f.retry_after_secs = 1;
    });
    let bytes = data(4096);
    let started = Instant::now();
    session
        .send_attachment(&meta("a.txt", "text/plain", &bytes), UploadBody::from_bytes(bytes.clone()), None)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "retryAfter was not honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(emu.faults().throttle_requests, 0);
    assert_eq!(emu.conversation(&token).unwrap().messages.len(), 1);

    // A limit that does not lift is reported, bounded, and nothing is sent.
    let mut config = fast_config(&emu);
    config.rate_limit_retry.max_attempts = 2;
    let mut session =
        GuestClient::new(config).unwrap().connect(DEP, &SessionToken::new(&token)).await.unwrap();
    emu.update_faults(|f| f.throttle_requests = 100);
    let err = session.send_link(&meta("b.txt", "text/plain", b"b"), "https://x", None).await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { retry_after } if retry_after == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(emu.conversation(&token).unwrap().messages.len(), 1);
}

#[tokio::test]
async fn an_upload_failure_event_is_a_typed_error_and_nothing_is_sent() {
    let emu = emulator().await;
    let (token, mut session) = connect(&emu).await;
    emu.update_faults(|f| f.fail_uploads = 1);
    let bytes = data(1000);
    let err = session
        .send_attachment(
            &meta("a.bin", "application/octet-stream", &bytes),
            UploadBody::from_bytes(bytes),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UploadFailed { code: ErrorCode::FileContentInvalid, .. }), "{err:?}");
    let conv = emu.conversation(&token).unwrap();
    assert!(conv.messages.is_empty());
    assert_eq!(conv.attachments[0].state, "failed");
    assert!(emu.violations().is_empty());
}

#[tokio::test]
async fn on_attachment_carries_no_md5_and_a_bare_mime_type() {
    let emu = emulator().await;
    let (token, mut session) = connect(&emu).await;
    let bytes = data(1000);
    let file = meta("notes.txt", "text/plain; charset=utf-8", &bytes);
    session.send_attachment(&file, UploadBody::from_bytes(bytes), None).await.unwrap();
    let conv = emu.conversation(&token).unwrap();
    assert_eq!(conv.attachments[0].file_type, "text/plain");
    assert_eq!(conv.attachments[0].declared_md5, None, "no fileMd5, as the official clients");
    assert_eq!(conv.messages[0].custom_attributes["ferryMd5"], Md5::of(&data(1000)).to_hex());
}

#[tokio::test]
async fn a_refused_put_is_retried_with_a_reopened_body_or_reported() {
    let emu = emulator().await;
    let (token, mut session) = connect(&emu).await;
    let bytes = Bytes::from(data(50_000));
    let file = meta("a.bin", "application/octet-stream", &bytes);

    emu.update_faults(|f| {
        f.refuse_uploads = 1;
        f.refuse_status = 503;
    });
    let opened = Arc::new(AtomicUsize::new(0));
    let (count, source) = (opened.clone(), bytes.clone());
    let body = UploadBody::from_factory(bytes.len() as u64, move || {
        count.fetch_add(1, Ordering::SeqCst);
        let chunks: Vec<Result<Bytes, ferry_genesys::BoxError>> =
            source.chunks(4096).map(|c| Ok(source.slice_ref(c))).collect();
        async move { Ok(Box::pin(futures::stream::iter(chunks)) as ByteStream) }
    });
    let delivered = session.send_attachment(&file, body, None).await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 2, "the body was re-opened once");
    let conv = emu.conversation(&token).unwrap();
    assert_eq!(conv.messages.len(), 1);
    assert_eq!(conv.messages[0].attachment_ids, vec![delivered.attachment_id]);

    // A one-shot body cannot be sent twice: the refusal is reported and nothing is sent.
    emu.update_faults(|f| f.refuse_uploads = 1);
    let err = session.send_attachment(&file, chunked(&bytes, 1000), None).await.unwrap_err();
    assert!(matches!(err, Error::UploadRejected { status: 503 }), "{err:?}");
    assert_eq!(emu.conversation(&token).unwrap().messages.len(), 1);

    // A 403 is not retried even when it could be.
    emu.update_faults(|f| {
        f.refuse_uploads = 1;
        f.refuse_status = 403;
    });
    let err = session.send_attachment(&file, UploadBody::from_bytes(bytes.clone()), None).await.unwrap_err();
    assert!(matches!(err, Error::UploadRejected { status: 403 }), "{err:?}");
    assert_eq!(emu.conversation(&token).unwrap().messages.len(), 1);
    assert!(emu.violations().is_empty());
}

#[tokio::test]
async fn upload_retry_delays_come_from_the_injected_jitter() {
    let emu = emulator().await;
    let token = emu.create_session(DEP);
    let mut config = fast_config(&emu);
    config.upload_retry.initial_delay = Duration::from_millis(200);
    let draws = Arc::new(AtomicUsize::new(0));
    let counter = draws.clone();
    // Full jitter: each wait is (almost) its whole ceiling, 200 ms then 400 ms.
    let jitter = move || {
        counter.fetch_add(1, Ordering::SeqCst);
        u64::MAX
    };
    let client = GuestClient::new(config).unwrap().with_jitter(jitter);
    let mut session = client.connect(DEP, &SessionToken::new(&token)).await.unwrap();
    emu.update_faults(|f| {
        f.refuse_uploads = 2;
        f.refuse_status = 503;
    });
    let bytes = Bytes::from(data(10_000));
    let file = meta("a.bin", "application/octet-stream", &bytes);
    let started = Instant::now();
    session.send_attachment(&file, UploadBody::from_bytes(bytes.clone()), None).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(595), "{:?}", started.elapsed());
    assert_eq!(draws.load(Ordering::SeqCst), 2, "one draw per retry, from the injected source");
    assert_eq!(emu.conversation(&token).unwrap().messages.len(), 1);
}

#[tokio::test]
async fn a_socket_dropped_after_the_presigned_url_is_recovered() {
    let emu = emulator().await;
    let (token, mut session) = connect(&emu).await;
    // The next connection would be dropped; this one is already open, so drop it by hand once the
    // presigned URL is out: make the emulator drop new connections after 2 frames, and reconnect.
    emu.drop_connections(&token);
    emu.update_faults(|f| {
        f.drop_after_frames = Some(2); // SessionResponse, PresignedUrlResponse, then gone
        f.drop_connections = Some(1);
    });
    let bytes = data(200_000);
    let delivered = session
        .send_attachment(&meta("a.bin", "application/octet-stream", &bytes), chunked(&bytes, 10_000), None)
        .await
        .unwrap();
    let conv = emu.conversation(&token).unwrap();
    assert_eq!(conv.attachments.len(), 1);
    assert_eq!(conv.attachments[0].sha256.as_deref(), Some(Sha256::of(&bytes).to_hex().as_str()));
    assert_eq!(conv.messages.len(), 1);
    assert_eq!(conv.messages[0].attachment_ids, vec![delivered.attachment_id]);
    assert!(emu.violations().is_empty(), "{:?}", emu.violations());
}

#[tokio::test]
async fn an_upload_still_processing_is_waited_out_through_4009_and_4010() {
    for code in [4009, 4010] {
        let emu = emulator().await;
        let (token, mut session) = connect(&emu).await;
        // The upload event is lost with the socket; after reconnecting, getAttachment says "not
        // yet" (as 4009 or 4010) twice before the attachment is ready.
        emu.update_faults(|f| {
            f.swallow_upload_events = 1;
            f.pending_polls = 2;
            f.not_uploaded_code = code;
        });
        let watcher = drop_once_uploaded(&emu, &token, |_| {});
        let bytes = data(10_000);
        let delivered = session
            .send_attachment(
                &meta("a.bin", "application/octet-stream", &bytes),
                UploadBody::from_bytes(bytes),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{code}: {e:?}"));
        watcher.await.unwrap();
        assert_eq!(emu.faults().pending_polls, 0, "{code}: both 'not yet' answers were polled through");
        let conv = emu.conversation(&token).unwrap();
        assert_eq!(conv.messages.len(), 1, "{code}");
        assert_eq!(conv.messages[0].attachment_ids, vec![delivered.attachment_id]);
        assert!(emu.violations().is_empty(), "{:?}", emu.violations());
    }
}

#[tokio::test]
async fn a_socket_that_keeps_dropping_is_reported_and_no_message_is_sent() {
    let emu = emulator().await;
    let (token, mut session) = connect(&emu).await;
    emu.update_faults(|f| f.event_delay = Duration::from_millis(300));
    // The upload lands, but once it does every connection dies right after configuring.
    let watcher = drop_once_uploaded(&emu, &token, |f| f.drop_after_frames = Some(1));
    let bytes = data(10_000);
    let err = session
        .send_attachment(
            &meta("a.bin", "application/octet-stream", &bytes),
            UploadBody::from_bytes(bytes),
            None,
        )
        .await
        .unwrap_err();
    watcher.await.unwrap();
    assert!(matches!(err, Error::ConnectionLost { .. } | Error::DeliveryUnconfirmed), "{err:?}");
    assert!(err.is_retryable() || matches!(err, Error::DeliveryUnconfirmed));
    assert!(emu.conversation(&token).unwrap().messages.is_empty());
    assert!(emu.violations().is_empty());
}

#[tokio::test]
async fn a_fourth_connection_pushes_ferry_off_and_ferry_does_not_fight_back() {
    let emu = emulator().await;
    let (token, mut session) = connect(&emu).await;
    let mut tabs = Vec::new();
    for _ in 0..3 {
        let url = format!("{}?deploymentId={DEP}", emu.ws_url());
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let configure = serde_json::json!({"action": "configureSession", "token": token, "deploymentId": DEP, "startNew": false});
        ws.send(tokio_tungstenite::tungstenite::Message::text(configure.to_string())).await.unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        assert!(reply.to_text().unwrap().contains("SessionResponse"));
        tabs.push(ws);
    }
    // Wait for the eviction to reach the client.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = session.echo().await.unwrap_err();
    assert!(matches!(err, Error::SessionLimitReached), "{err:?}");
    assert_eq!(emu.connection_count(&token), 3, "ferry did not reconnect over the customer's tabs");
}

#[tokio::test]
async fn keepalive_echoes_interleave_without_confusing_responses() {
    let emu = emulator().await;
    let token = emu.create_session(DEP);
    let mut config = fast_config(&emu);
    config.keepalive_interval = Duration::from_millis(5);
    let mut session =
        GuestClient::new(config).unwrap().connect(DEP, &SessionToken::new(&token)).await.unwrap();
    emu.update_faults(|f| f.event_delay = Duration::from_millis(100));
    let bytes = data(20_000);
    let delivered = session
        .send_attachment(
            &meta("a.bin", "application/octet-stream", &bytes),
            UploadBody::from_bytes(bytes),
            None,
        )
        .await
        .unwrap();
    // Other actions, each matched to its own answer while echoes fly.
    let url = session.get_attachment(&delivered.attachment_id).await.unwrap();
    assert!(url.expose().starts_with(&emu.base_url()));
    let jwt = session.get_jwt().await.unwrap();
    assert!(jwt.exp > 0 && !jwt.jwt.expose().is_empty());
    session.echo().await.unwrap();
    let err = session.delete_attachment("no-such-attachment").await.unwrap_err();
    assert!(matches!(err, Error::Genesys { code: ErrorCode::AttachmentNotFound, .. }), "{err:?}");
    let err = session.delete_attachment(&delivered.attachment_id).await.unwrap_err();
    assert!(
        matches!(err, Error::Genesys { code: ErrorCode::AttachmentNotFound, .. }),
        "sent attachments stay: {err:?}"
    );
    assert_eq!(emu.conversation(&token).unwrap().messages.len(), 1);
}

#[tokio::test]
async fn a_response_that_never_comes_times_out_in_paused_time() {
    let emu = emulator().await;
    let token = emu.create_session(DEP);
    let mut config = fast_config(&emu);
    config.response_timeout = Duration::from_secs(30);
    let mut session =
        GuestClient::new(config).unwrap().connect(DEP, &SessionToken::new(&token)).await.unwrap();
    emu.update_faults(|f| f.ignore_actions = vec!["getJwt".into()]);
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let err = session.get_jwt().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { waiting_for: "getJwt", .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test]
async fn an_upload_event_that_never_comes_times_out_and_nothing_is_sent() {
    let emu = emulator().await;
    let token = emu.create_session(DEP);
    let mut config = fast_config(&emu);
    config.upload_event_timeout = Duration::from_millis(300);
    let mut session =
        GuestClient::new(config).unwrap().connect(DEP, &SessionToken::new(&token)).await.unwrap();
    emu.update_faults(|f| f.event_delay = Duration::from_secs(3600));
    let bytes = data(1000);
    let err = session
        .send_attachment(
            &meta("a.bin", "application/octet-stream", &bytes),
            UploadBody::from_bytes(bytes),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { waiting_for: "the upload event", .. }), "{err:?}");
    let conv = emu.conversation(&token).unwrap();
    assert!(conv.messages.is_empty(), "no message for an unconfirmed upload");
    assert!(emu.violations().is_empty());
}
