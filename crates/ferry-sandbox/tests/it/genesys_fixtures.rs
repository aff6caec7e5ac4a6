//! The Genesys emulator's issue-11 behaviour spoken to by hand: frames shaped like the official
//! fixtures, the refusal and session-end knobs, `config.json` and the guest messages API.

use ferry_sandbox::genesys::{Deployment, SessionEnd, TracingIds};

use serde_json::{Value, json};

use crate::get_json;
use crate::ws::{DEP, configure, open, recv, send, start};

#[tokio::test]
async fn frames_follow_the_official_fixtures() {
    let emu = start(Deployment::new(DEP)).await;
    emu.update_faults(|f| f.tracing_ids = TracingIds::LikeFixtures);
    let mut ws = open(&emu).await;
    let session = configure(&mut ws, "tok-1").await;
    assert_eq!(session["class"], "SessionResponse");
    assert!(session.get("tracingId").is_none(), "{session}");

    send(
        &mut ws,
        json!({"action": "onAttachment", "token": "tok-1", "attachmentId": "a-1", "fileName": "x.exe",
        "fileType": "application/octet-stream", "fileSize": 10, "errorsAsJson": true, "tracingId": "t-1"}),
    )
    .await;
    let refused = recv(&mut ws).await;
    assert_eq!(
        (refused["type"].as_str(), refused["class"].as_str()),
        (Some("message"), Some("GenerateUrlError"))
    );
    assert_eq!(refused["body"]["errorCode"], 4001);
    assert!(refused.get("tracingId").is_none());

    send(&mut ws, json!({"action": "getJwt", "token": "tok-1", "tracingId": "t-2"})).await;
    assert_eq!(recv(&mut ws).await["tracingId"], "t-2", "JwtResponse fixtures keep it");
    emu.update_faults(|f| {
        f.tracing_ids = TracingIds::Never;
        f.throttle_requests = 1;
    });
    send(&mut ws, json!({"action": "getJwt", "token": "tok-1", "tracingId": "t-3"})).await;
    let limited = recv(&mut ws).await;
    assert_eq!(limited["class"], "TooManyRequestsErrorMessage");
    assert!(limited.get("tracingId").is_none());
    send(&mut ws, json!({"action": "getJwt", "token": "tok-1", "tracingId": "t-4"})).await;
    let jwt = recv(&mut ws).await;
    assert_eq!(jwt["class"], "JwtResponse");
    assert!(jwt.get("tracingId").is_none());
}

#[tokio::test]
async fn refusal_knobs_and_session_ends() {
    let emu = start(Deployment::new(DEP)).await;
    emu.update_faults(|f| {
        f.refuse_attachments = 1;
        f.refuse_attachment_code = 4005;
        f.not_uploaded_code = 4009;
    });
    let mut ws = open(&emu).await;
    configure(&mut ws, "tok-1").await;
    let announce = |id: &str| {
        json!({"action": "onAttachment", "token": "tok-1", "attachmentId": id, "fileName": "a.pdf",
            "fileType": "application/pdf", "fileSize": 10, "errorsAsJson": true})
    };
    send(&mut ws, announce("a-1")).await;
    let refused = recv(&mut ws).await;
    assert_eq!(
        (refused["class"].as_str(), refused["body"]["errorCode"].as_u64()),
        (Some("GenerateUrlError"), Some(4005))
    );
    send(&mut ws, announce("a-2")).await;
    assert_eq!(recv(&mut ws).await["class"], "PresignedUrlResponse", "only the next one is refused");
    send(&mut ws, json!({"action": "getAttachment", "token": "tok-1", "attachmentId": "a-2"})).await;
    assert_eq!(recv(&mut ws).await["code"], 4009, "not uploaded yet, answered as 4009");

    for (end, class) in [
        (SessionEnd::Expired, "SessionExpiredEvent"),
        (SessionEnd::LoggedOut, "LogoutEvent"),
        (SessionEnd::Cleared, "SessionClearedEvent"),
        (SessionEnd::ConversationEnded, "StructuredMessage"),
    ] {
        emu.end_session("tok-1", end);
        let pushed = recv(&mut ws).await;
        assert_eq!((pushed["type"].as_str(), pushed["class"].as_str()), (Some("message"), Some(class)));
        if end == SessionEnd::ConversationEnded {
            assert_eq!(pushed["body"]["events"][0]["presence"]["type"], "Disconnect");
            assert_eq!(pushed["body"]["metadata"]["readOnly"], "true");
        }
    }
    assert!(emu.conversation("tok-1").unwrap().read_only);
}

#[tokio::test]
async fn config_json_and_the_guest_messages_api() {
    let mut dep = Deployment::new(DEP);
    dep.allowed_file_types = vec!["image/*".into()];
    dep.max_file_size_kb = 2048;
    let emu = start(dep).await;
    let http = reqwest::Client::new();
    let config =
        get_json(format!("{}/webdeployments/v1/deployments/{DEP}/config.json", emu.base_url())).await;
    let upload = &config["messenger"]["fileUpload"];
    assert_eq!(upload["enableAttachments"], true);
    assert_eq!(upload["modes"], json!([{"fileTypes": ["image/*"], "maxFileSizeKB": 2048}]));
    let missing = http.get(format!("{}/webdeployments/v1/deployments/nope/config.json", emu.base_url()));
    assert_eq!(missing.send().await.unwrap().status(), 404);

    let mut ws = open(&emu).await;
    configure(&mut ws, "tok-1").await;
    send(
        &mut ws,
        json!({"action": "onMessage", "token": "tok-1", "message": {"type": "Text", "text": "hello",
        "channel": {"metadata": {"customAttributes": {"ferryFileId": "f-1"}}}}}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["class"], "StructuredMessage");
    send(&mut ws, json!({"action": "getJwt", "token": "tok-1"})).await;
    let jwt = recv(&mut ws).await["body"]["jwt"].as_str().unwrap().to_owned();
    let messages = format!("{}/api/v2/webmessaging/messages", emu.base_url());
    let page: Value = http.get(&messages).bearer_auth(&jwt).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["total"], 1);
    assert_eq!(page["entities"][0]["text"], "hello");
    assert_eq!(page["entities"][0]["channel"]["metadata"]["customAttributes"]["ferryFileId"], "f-1");
    let refused = http.get(&messages).bearer_auth("forged").send().await.unwrap();
    assert_eq!(refused.status(), 401);
}
