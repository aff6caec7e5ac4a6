//! Issue 11 against the emulator: limits read as the official client reads them, replies matched
//! without `tracingId`, session and conversation ends, and Genesys refusing a native attachment at
//! each step (the caller learns which step and code, and the session still takes a link).

use bytes::Bytes;
use ferry_core::checksum::{Md5, Sha256};
use ferry_genesys::guest::{Delivery, Fallback, FileMeta, GuestClient, GuestConfig, UploadBody};
use ferry_genesys::guest::{NativeFailure, NativeStep, SessionEnd};
use ferry_genesys::limits::LinkReason;
use ferry_genesys::protocol::ErrorCode;
use ferry_genesys::{Error, SessionToken};
use ferry_sandbox::genesys::{
    DEMO_DEPLOYMENT_ID, Deployment, Faults, GenesysEmulator, GenesysEmulatorConfig, SessionEnd as End,
    TracingIds,
};
use std::time::Duration;
use url::Url;

const DEP: &str = DEMO_DEPLOYMENT_ID;

async fn emulator_with(deployment: Deployment) -> GenesysEmulator {
    let config = GenesysEmulatorConfig { deployments: vec![deployment], ..GenesysEmulatorConfig::default() };
    GenesysEmulator::start(config).await.expect("emulator starts")
}

fn client(emu: &GenesysEmulator) -> GuestClient {
    let mut c = GuestConfig::new(Url::parse(&emu.ws_url()).unwrap());
    c.response_timeout = Duration::from_secs(5);
    c.upload_event_timeout = Duration::from_secs(5);
    c.upload_poll_interval = Duration::from_millis(50);
    c.reconnect_retry.initial_delay = Duration::from_millis(10);
    c.upload_retry.initial_delay = Duration::from_millis(10);
    c.rate_limit_retry.initial_delay = Duration::from_millis(10);
    GuestClient::new(c).unwrap().with_jitter(|| 0)
}

fn meta(id: &str, bytes: &[u8]) -> FileMeta {
    FileMeta {
        file_id: id.into(),
        file_name: format!("{id}.pdf"),
        mime_type: "application/pdf".into(),
        size: bytes.len() as u64,
        sha256: Some(Sha256::of(bytes)),
        md5: Some(Md5::of(bytes)),
        attributes: Default::default(),
    }
}

fn body(bytes: &[u8]) -> UploadBody {
    UploadBody::from_bytes(Bytes::copy_from_slice(bytes))
}

#[tokio::test]
async fn max_file_size_kb_is_read_as_thousands_of_bytes() {
    let mut dep = Deployment::new(DEP);
    dep.max_file_size_kb = 2;
    let emu = emulator_with(dep).await;
    let token = emu.create_session(DEP);
    let mut session = client(&emu).connect(DEP, &SessionToken::new(&token)).await.unwrap();
    let link = "https://ferry.example/f";

    let exact = vec![7u8; 2000];
    let delivery =
        session.deliver(&meta("exact", &exact), body(&exact), Some(link), None, Fallback::Link).await;
    assert!(matches!(delivery, Ok(Delivery::Native(_))), "KB × 1000 bytes is native: {delivery:?}");
    let over = vec![7u8; 2001];
    match session.deliver(&meta("over", &over), body(&over), Some(link), None, Fallback::Link).await {
        Ok(Delivery::Link { reason, .. }) => {
            assert_eq!(reason, LinkReason::TooLarge { size: 2001, max: 2000 });
        }
        other => panic!("one byte more must be a link: {other:?}"),
    }
    let conv = emu.conversation(&token).unwrap();
    assert_eq!(conv.attachments.len(), 1);
    assert_eq!(conv.attachments[0].size, Some(2000));
    assert_eq!(conv.messages.len(), 2);
    assert!(conv.messages[1].attachment_ids.is_empty());
    assert!(emu.violations().is_empty(), "{:?}", emu.violations());
}

#[tokio::test]
async fn a_deployment_without_a_size_limit_gets_links_only() {
    let mut dep = Deployment::new(DEP);
    dep.max_file_size_kb = 0;
    let emu = emulator_with(dep).await;
    let token = emu.create_session(DEP);
    let mut session = client(&emu).connect(DEP, &SessionToken::new(&token)).await.unwrap();
    let tiny = b"%PDF".to_vec();
    let refused = session.deliver(&meta("tiny", &tiny), body(&tiny), None, None, Fallback::Refuse).await;
    assert!(matches!(refused, Err(Error::NotAttachable(LinkReason::AttachmentsDisabled))), "{refused:?}");
    assert!(emu.conversation(&token).unwrap().attachments.is_empty());
}

#[tokio::test]
async fn the_native_flow_the_session_check_and_the_429_back_off_work_without_tracing_ids() {
    for mode in [TracingIds::Never, TracingIds::LikeFixtures] {
        let emu = emulator_with(Deployment::new(DEP)).await;
        emu.update_faults(|f| {
            f.tracing_ids = mode;
            f.retry_after_secs = 0;
        });
        let client = client(&emu);
        let raw = emu.create_session(DEP);
        let token = SessionToken::new(&raw);
        let unknown = client.validate(DEP, &SessionToken::new("no-such-session")).await;
        assert!(matches!(unknown, Err(Error::SessionNotFound)), "{mode:?}: {unknown:?}");
        let info = client.validate(DEP, &token).await.unwrap();
        assert_eq!(info.limits.max_file_size_kb, 10240);

        let mut session = client.connect(DEP, &token).await.unwrap();
        emu.update_faults(|f| f.throttle_requests = 2);
        let started = std::time::Instant::now();
        let bytes = vec![3u8; 5000];
        let delivered =
            session.send_attachment(&meta("f-1", &bytes), body(&bytes), Some("hi")).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(3), "{mode:?}: no 5 s response timeout");
        assert_eq!(emu.faults().throttle_requests, 0, "both rate-limit frames were waited out");
        // Another message in the same session, and a liveness check.
        session.send_link(&meta("f-2", &bytes), "https://ferry.example/f-2", None).await.unwrap();
        session.echo().await.unwrap();
        let jwt = session.get_jwt().await.unwrap();
        assert!(jwt.exp > 0);
        let conv = emu.conversation(&raw).unwrap();
        assert_eq!(conv.messages.len(), 2, "{mode:?}");
        assert_eq!(conv.messages[0].attachment_ids, vec![delivered.attachment_id]);
        assert!(emu.violations().is_empty(), "{:?}", emu.violations());
    }
}

/// A session on a fresh emulator with `faults`, and its raw token.
async fn session_with(faults: Faults) -> (GenesysEmulator, String, ferry_genesys::guest::GuestSession) {
    let emu = emulator_with(Deployment::new(DEP)).await;
    emu.set_faults(faults);
    let raw = emu.create_session(DEP);
    let mut c = GuestConfig::new(Url::parse(&emu.ws_url()).unwrap());
    c.response_timeout = Duration::from_secs(2);
    c.upload_event_timeout = Duration::from_millis(700);
    c.upload_retry.max_attempts = 1;
    c.reconnect_retry.initial_delay = Duration::from_millis(10);
    c.api_url = Some(Url::parse(&emu.base_url()).unwrap());
    let session = GuestClient::new(c).unwrap().connect(DEP, &SessionToken::new(&raw)).await.unwrap();
    (emu, raw, session)
}

#[tokio::test]
async fn a_refusal_at_each_step_says_where_and_the_session_still_takes_a_link() {
    let cases: [(Faults, NativeStep, Option<ErrorCode>, Option<u16>); 4] = [
        (
            Faults { refuse_attachments: 1, refuse_attachment_code: 4002, ..Faults::default() },
            NativeStep::RequestUpload,
            Some(ErrorCode::FileSizeInvalid),
            None,
        ),
        (
            Faults { refuse_uploads: 1, refuse_status: 403, ..Faults::default() },
            NativeStep::Put,
            None,
            Some(403),
        ),
        (
            Faults { fail_uploads: 1, failure_code: 4003, ..Faults::default() },
            NativeStep::UploadEvent,
            Some(ErrorCode::FileContentInvalid),
            None,
        ),
        (Faults { swallow_upload_events: 1, ..Faults::default() }, NativeStep::UploadEvent, None, None),
    ];
    for (faults, want_step, want_code, want_status) in cases {
        let (emu, raw, mut session) = session_with(faults).await;
        let bytes = vec![9u8; 4000];
        let file = meta("f-1", &bytes);
        let err = session.send_attachment(&file, body(&bytes), None).await.unwrap_err();
        match err.native_failure() {
            NativeFailure::Refused { step, code, status, reason } => {
                assert_eq!((step, code, status), (want_step, want_code, want_status), "{reason}");
                assert!(!reason.contains("__uploads"), "no presigned URL in the reason: {reason}");
            }
            other => panic!("{want_step}: expected a refusal, got {other:?} from {err:?}"),
        }
        session.send_link(&file, "https://ferry.example/f-1", None).await.unwrap();
        let conv = emu.conversation(&raw).unwrap();
        assert_eq!(conv.messages.len(), 1, "{want_step}: exactly one message carries the file");
        assert!(conv.messages[0].attachment_ids.is_empty());
        assert_eq!(conv.messages[0].custom_attributes["ferryFileId"], "f-1");
        assert!(emu.violations().is_empty(), "{:?}", emu.violations());
    }
}

#[tokio::test]
async fn a_message_whose_echo_is_lost_is_unconfirmed_and_not_resent() {
    let (emu, raw, mut session) = session_with(Faults { drop_after_message: 1, ..Faults::default() }).await;
    let bytes = vec![1u8; 100];
    let err = session.send_attachment(&meta("f-1", &bytes), body(&bytes), None).await.unwrap_err();
    assert_eq!(err.native_failure(), NativeFailure::Unconfirmed, "{err:?}");
    let conv = emu.conversation(&raw).unwrap();
    assert_eq!(conv.messages.len(), 1, "it arrived, once");

    // Never twice: the guest REST API shows it (after a reconnect for the JWT), so nothing is re-sent.
    let found = session.find_own_message("f-1", 100).await.unwrap().expect("ferry's message is found");
    assert_eq!(found.message_id.as_deref(), Some(conv.messages[0].id.as_str()));
    assert_eq!(found.attachment_ids, conv.messages[0].attachment_ids);
    assert_eq!(session.find_own_message("f-2", 100).await.unwrap(), None);
    // Many messages later it is still found on a later page, and not beyond the look-back.
    for i in 0..30 {
        session
            .send_link(&meta(&format!("other-{i}"), &bytes), "https://ferry.example/o", None)
            .await
            .unwrap();
    }
    assert!(session.find_own_message("f-1", 50).await.unwrap().is_some());
    assert_eq!(session.find_own_message("f-1", 25).await.unwrap(), None);
}

#[tokio::test]
async fn session_and_conversation_ends_stop_the_wait_at_once() {
    let cases = [
        (End::Expired, NativeFailure::SessionEnded(SessionEnd::Expired)),
        (End::LoggedOut, NativeFailure::SessionEnded(SessionEnd::LoggedOut)),
        (End::Cleared, NativeFailure::SessionEnded(SessionEnd::Cleared)),
        (End::ConversationEnded, NativeFailure::ConversationClosed),
    ];
    for (end, expected) in cases {
        let (emu, raw, _) = session_with(Faults::default()).await;
        let mut c = GuestConfig::new(Url::parse(&emu.ws_url()).unwrap());
        c.upload_event_timeout = Duration::from_secs(30);
        let mut session = GuestClient::new(c).unwrap().connect(DEP, &SessionToken::new(&raw)).await.unwrap();
        emu.update_faults(|f| f.end_on_upload = Some(end));
        let started = std::time::Instant::now();
        let bytes = vec![1u8; 100];
        let err = session.send_attachment(&meta("f-1", &bytes), body(&bytes), None).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{end:?}: waited {:?}", started.elapsed());
        assert_eq!(err.native_failure(), expected, "{end:?}: {err:?}");
        assert!(!err.is_retryable());
        // Nothing more goes out on this session, and no reconnect is attempted.
        let again = session.send_link(&meta("f-1", &bytes), "https://ferry.example/f-1", None).await;
        assert_eq!(again.unwrap_err().native_failure(), expected);
        assert!(emu.conversation(&raw).unwrap().messages.is_empty());
    }
}

#[tokio::test]
async fn an_end_pushed_while_idle_ends_the_session_too() {
    let (emu, raw, mut session) = session_with(Faults::default()).await;
    emu.end_session(&raw, End::LoggedOut);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = session.echo().await.unwrap_err();
    assert!(matches!(err, Error::SessionEnded(SessionEnd::LoggedOut)), "{err:?}");
}

#[tokio::test]
async fn config_json_is_read_from_the_cdn_cached_and_refreshed() {
    use ferry_genesys::deployment::DeploymentConfigClient;
    let emu = emulator_with(Deployment::new(DEP)).await;
    let base = Url::parse(&emu.base_url()).unwrap();
    let cached = DeploymentConfigClient::new(base.clone(), Duration::from_secs(600)).unwrap();
    let config = cached.get(DEP).await.unwrap();
    assert!(config.enable_attachments);
    assert_eq!(config.modes[0].max_file_size_kb, Some(10240));
    assert!(config.decide("application/pdf", 10_240_000).is_native());
    assert!(!config.decide("application/pdf", 10_240_001).is_native());

    let mut off = Deployment::new(DEP);
    off.allowed_file_types.clear();
    emu.add_deployment(off);
    assert!(cached.get(DEP).await.unwrap().enable_attachments, "served from the cache");
    cached.invalidate(DEP);
    assert!(!cached.get(DEP).await.unwrap().enable_attachments, "fetched again");
    let fresh = DeploymentConfigClient::new(base, Duration::ZERO).unwrap();
    assert_eq!(
        fresh.get(DEP).await.unwrap().decide("application/pdf", 1),
        ferry_genesys::limits::AttachmentDecision::Link(LinkReason::AttachmentsDisabled)
    );
    let missing = fresh.get("no-such-deployment").await.unwrap_err();
    assert_eq!(missing.status(), Some(404));
    assert!(fresh.get("../etc").await.is_err(), "ids are checked before they go into a URL");
}

#[tokio::test]
async fn without_allowed_media_the_deployment_config_decides() {
    use ferry_genesys::deployment::DeploymentConfigClient;
    let mut dep = Deployment::new(DEP);
    dep.omit_allowed_media = true;
    dep.max_file_size_kb = 2;
    let emu = emulator_with(dep).await;
    let token = emu.create_session(DEP);
    let mut session = client(&emu).connect(DEP, &SessionToken::new(&token)).await.unwrap();
    assert!(session.info().response.allowed_media.is_none());
    let bytes = vec![5u8; 2000];
    let file = meta("f-1", &bytes);
    assert_eq!(
        session.decide(&file),
        ferry_genesys::limits::AttachmentDecision::Link(LinkReason::AttachmentsDisabled)
    );

    let configs =
        DeploymentConfigClient::new(Url::parse(&emu.base_url()).unwrap(), Duration::from_secs(60)).unwrap();
    session.use_deployment_config(configs.get(DEP).await.unwrap());
    assert!(session.decide(&file).is_native());
    assert!(!session.decide(&meta("f-2", &[5u8; 2001])).is_native(), "modes[].maxFileSizeKB × 1000");
    let mut exe = meta("f-3", b"MZ");
    exe.file_name = "run.exe".into();
    assert!(matches!(
        session.decide(&exe),
        ferry_genesys::limits::AttachmentDecision::Link(LinkReason::BlockedExtension { .. })
    ));
    let delivery = session.deliver(&file, body(&bytes), None, None, Fallback::Refuse).await;
    assert!(matches!(delivery, Ok(Delivery::Native(_))), "{delivery:?}");
}
