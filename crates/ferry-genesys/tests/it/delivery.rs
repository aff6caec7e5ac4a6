//! Issue 11 against the emulator: limits read as the official client reads them, replies matched
//! without `tracingId`, session and conversation ends, and Genesys refusing a native attachment at
//! each step (the caller learns which step and code, and the session still takes a link).

use bytes::Bytes;
use ferry_core::checksum::{Md5, Sha256};
use ferry_genesys::guest::{Delivery, Fallback, FileMeta, GuestClient, GuestConfig, UploadBody};
use ferry_genesys::limits::LinkReason;
use ferry_genesys::{Error, SessionToken};
use ferry_sandbox::genesys::{DEMO_DEPLOYMENT_ID, Deployment, GenesysEmulator, GenesysEmulatorConfig};
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
