//! A stored file is never lost to a delivery failure (issue 11): for each refusal the emulator can
//! produce, `ferry serve` answers 201 with the file, S3 keeps it byte-identical, and the
//! conversation holds at most one message carrying it — a link message when Genesys refused the
//! native attachment (`delivery.fallback` says where and why), none when even that could not be
//! confirmed or the conversation ended (`delivery.mode: "none"` with its `error`). Also: Open
//! Messaging sends files over its attachment cap as a text with the link, and a caller's
//! `conversationId` is echoed. Listed by `cargo xtask faults`.

use crate::harness::{Harness, MIB, Options, RawUpload, bytes, sha256_hex, start_open_messaging};
use ferry_sandbox::genesys::{Faults, SessionEnd};
use ferry_sandbox::platform::{PlatformConfig, PlatformEmulator};
use serde_json::Value;
use std::time::Duration;

/// What the conversation holds for the file: (messages naming an attachment, link messages).
fn messages(h: &Harness) -> (usize, usize) {
    let conversation = h.conversation();
    let messages = conversation["messages"].as_array().cloned().unwrap_or_default();
    let naming =
        messages.iter().filter(|m| m["attachmentIds"].as_array().is_some_and(|a| !a.is_empty())).count();
    let links =
        messages.iter().filter(|m| m["text"].as_str().is_some_and(|t| t.contains("/v1/files/"))).count();
    (naming, links)
}

/// `curl` with `args`, no stdin.
async fn curl(args: Vec<String>) -> crate::harness::Reply {
    crate::harness::curl(&args, None).await
}

/// The stored files' keys (not the markers of used tickets).
async fn files(h: &Harness) -> Vec<String> {
    h.keys().await.into_iter().filter(|k| !k.contains("/.tickets/")).collect()
}

/// The stored object is the only one, complete and byte-identical to `data`.
async fn assert_kept(h: &Harness, reference: &Value, data: &[u8]) {
    assert_eq!(reference["size"], data.len(), "{reference}");
    assert_eq!(reference["checksums"]["sha256"], sha256_hex(data), "{reference}");
    let key = ferry_testkit::reference::stored_key(reference, ferry_testkit::reference::DEFAULT_PREFIX)
        .expect("storage.key");
    let key = key.as_str();
    assert_eq!(files(h).await, vec![key.to_owned()], "exactly the one object");
    assert!(h.object(key).await == data, "the stored bytes differ");
    assert_eq!(h.pending_uploads().await, 0);
    assert!(reference["downloadUrl"].as_str().is_some_and(|u| u.contains("/v1/files/")), "{reference}");
}

/// Uploads a 64 KiB PDF (native size) with `faults` set in the emulator; returns the reference.
async fn upload_with(h: &Harness, faults: Faults, data: &[u8]) -> Value {
    h.emulator.state().set_faults(faults);
    let mut args = h.guest();
    args.extend(crate::args(&["-H", "Content-Type: application/pdf", "-H", "X-File-Name: doc.pdf"]));
    args.extend(["--data-binary".into(), format!("@{}", h.file("doc.pdf", data).display())]);
    let reply = h.post(&args, None).await;
    h.emulator.state().set_faults(Faults::default());
    assert_eq!(reply.status, 201, "a stored file is answered 201 whatever delivery did: {reply:?}");
    reply.json()
}

/// A refused native attachment: one link message in the same conversation, no attachment
/// message, and `delivery.fallback` naming the step (and the code or status).
async fn refused_natively(case: &str, faults: Faults, step: &str, code: Option<u32>, status: Option<u16>) {
    let h = Harness::start(case, Options::default()).await;
    let data = bytes(b"%PDF-1.7\n", 64 * 1024, 11);
    let reference = upload_with(&h, faults, &data).await;
    assert_kept(&h, &reference, &data).await;
    let delivery = &reference["delivery"];
    assert_eq!(delivery["mode"], "link", "{reference}");
    assert_eq!(delivery["fallback"]["step"], step, "{reference}");
    assert_eq!(delivery["fallback"]["code"], code.map_or(Value::Null, Value::from), "{reference}");
    if let Some(status) = status {
        assert_eq!(delivery["fallback"]["httpStatus"], status, "{reference}");
    }
    assert!(delivery["fallback"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{reference}");
    assert_eq!(messages(&h), (0, 1), "exactly one message carries the file: the link");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_refused_presigned_put_falls_back_to_a_link() {
    let faults = Faults { refuse_uploads: 50, refuse_status: 403, ..Faults::default() };
    refused_natively("put403", faults, "put", None, Some(403)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn an_upload_failure_event_falls_back_to_a_link() {
    let faults = Faults { fail_uploads: 5, failure_code: 4003, ..Faults::default() };
    refused_natively("uploadfail", faults, "upload_event", Some(4003), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn an_unconfirmed_link_message_leaves_the_file_stored_and_says_so() {
    // Genesys refuses the PUT, then never answers `onMessage` (nor records it): the link message is
    // unconfirmed, and not found in the conversation.
    let h = Harness::start("linkunconfirmed", Options::default()).await;
    let data = bytes(b"%PDF-1.7\n", 64 * 1024, 12);
    let faults =
        Faults { refuse_uploads: 50, ignore_actions: vec!["onMessage".to_owned()], ..Faults::default() };
    let reference = upload_with(&h, faults, &data).await;
    assert_kept(&h, &reference, &data).await;
    let delivery = &reference["delivery"];
    assert_eq!(delivery["mode"], "none", "{reference}");
    assert_eq!(delivery["error"], "delivery_unconfirmed", "{reference}");
    assert_eq!(delivery["fallback"]["step"], "put", "the native refusal is still reported: {reference}");
    // The emulator dropped the message, so nothing claims the file; ferry sent nothing more.
    assert_eq!(messages(&h), (0, 0));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn an_unanswered_message_not_in_the_conversation_is_followed_by_the_link() {
    // The attachment uploads, but `onMessage` is neither answered nor recorded: once the wait for
    // its echo is over, ferry looks for it, finds nothing, and sends the link (answered by then).
    let h = Harness::start("nativeunconfirmed", Options::default()).await;
    let data = bytes(b"%PDF-1.7\n", 64 * 1024, 13);
    h.emulator
        .state()
        .set_faults(Faults { ignore_actions: vec!["onMessage".to_owned()], ..Faults::default() });
    let mut args = h.guest();
    args.extend(crate::args(&["-H", "Content-Type: application/pdf", "-H", "X-File-Name: doc.pdf"]));
    args.extend(["--data-binary".into(), format!("@{}", h.file("doc.pdf", &data).display())]);
    let (reply, ()) = tokio::join!(h.post(&args, None), async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        h.emulator.state().set_faults(Faults::default());
    });
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    assert_kept(&h, &reference, &data).await;
    assert_eq!(reference["delivery"]["mode"], "link", "{reference}");
    assert_eq!(reference["delivery"]["fallback"]["step"], "message", "{reference}");
    assert_eq!(messages(&h), (0, 1), "exactly one message carries the file: the link");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn an_unconfirmed_message_that_arrived_is_found_and_not_sent_again() {
    // The native message reaches the conversation, but the socket drops before its echo: ferry
    // finds it (guest JWT, then the conversation's messages, by `ferryFileId`) and sends nothing more.
    let h = Harness::start("foundagain", Options::default()).await;
    let data = bytes(b"%PDF-1.7\n", 64 * 1024, 18);
    let faults = Faults { drop_after_message: 1, ..Faults::default() };
    let reference = upload_with(&h, faults, &data).await;
    assert_kept(&h, &reference, &data).await;
    assert_eq!(reference["delivery"]["mode"], "native", "{reference}");
    assert_eq!(messages(&h), (1, 0), "exactly one message carries the file: the native one");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn no_upload_event_in_time_falls_back_to_a_link() {
    // The PUT succeeds, but Genesys never says how the upload went.
    let h = Harness::start(
        "noevent",
        Options { toml: vec!["upload_event_timeout_secs = 2".into()], ..Options::default() },
    )
    .await;
    let data = bytes(b"%PDF-1.7\n", 64 * 1024, 19);
    let reference = upload_with(&h, Faults { swallow_upload_events: 5, ..Faults::default() }, &data).await;
    assert_kept(&h, &reference, &data).await;
    assert_eq!(reference["delivery"]["mode"], "link", "{reference}");
    assert_eq!(reference["delivery"]["fallback"]["step"], "upload_event", "{reference}");
    assert_eq!(reference["delivery"]["fallback"]["code"], Value::Null, "{reference}");
    assert_eq!(messages(&h), (0, 1), "exactly one message carries the file: the link");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_generate_url_error_falls_back_to_a_link() {
    let faults = Faults { refuse_attachments: 1, refuse_attachment_code: 4002, ..Faults::default() };
    refused_natively("genurl", faults, "request_upload", Some(4002), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_conversation_closed_after_the_store_keeps_the_file() {
    let h = Harness::start("closedafter", Options::default()).await;
    let data = bytes(b"", 12 * MIB, 14);
    let mut upload = RawUpload::start(&h, "late.bin", data.len()).await;
    upload.send(&data[..6 * MIB]).await;
    // The session was checked and the body is streaming into S3: now the conversation ends.
    h.wait_pending_uploads(1).await;
    h.emulator.state().set_read_only(&h.token, true);
    upload.send(&data[6 * MIB..]).await;
    let (status, reference) = upload.response().await;
    assert_eq!(status, 201, "{reference}");
    assert_kept(&h, &reference, &data).await;
    assert_eq!(reference["delivery"]["mode"], "none", "{reference}");
    assert_eq!(reference["delivery"]["error"], "conversation_closed", "{reference}");
    assert_eq!(messages(&h), (0, 0));
    // The download link still serves the file.
    let link = reference["downloadUrl"].as_str().expect("downloadUrl");
    let got = crate::harness::curl(&crate::args(&["-L", "--connect-to", &h.connect_to(), link]), None).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert!(got.body == data, "the link serves the stored bytes");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_session_or_conversation_ending_during_the_upload_wait_keeps_the_file() {
    // Genesys ends the conversation (Presence Disconnect, readOnly) or the session while ferry
    // waits for the upload event: ferry stops waiting at once, and nothing can be posted.
    for (case, end, error) in [
        ("endconv", SessionEnd::ConversationEnded, "conversation_closed"),
        ("endlogout", SessionEnd::LoggedOut, "session_ended"),
    ] {
        let h = Harness::start(case, Options::default()).await;
        let data = bytes(b"%PDF-1.7\n", 64 * 1024, 20);
        let started = std::time::Instant::now();
        let reference =
            upload_with(&h, Faults { end_on_upload: Some(end), ..Faults::default() }, &data).await;
        assert!(started.elapsed() < Duration::from_secs(20), "no long wait: {:?}", started.elapsed());
        assert_kept(&h, &reference, &data).await;
        assert_eq!(reference["delivery"]["mode"], "none", "{reference}");
        assert_eq!(reference["delivery"]["error"], error, "{reference}");
        assert_eq!(messages(&h), (0, 0));
        h.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn max_file_size_kb_counts_1000_bytes() {
    // The emulator's deployment allows 10240 KB: 10,240,000 bytes go natively, one more as a link.
    for (case, len, mode, naming, links) in
        [("kbat", 10_240_000, "native", 1, 0), ("kbover", 10_240_001, "link", 0, 1)]
    {
        let h = Harness::start(case, Options::default()).await;
        let data = bytes(b"%PDF-1.7\n", len, 21);
        let reference = upload_with(&h, Faults::default(), &data).await;
        assert_kept(&h, &reference, &data).await;
        assert_eq!(reference["delivery"]["mode"], mode, "{len} bytes: {reference}");
        assert_eq!(messages(&h), (naming, links), "{len} bytes");
        h.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_conversation_closed_before_the_store_is_still_409() {
    let h = Harness::start("closedbefore", Options::default()).await;
    h.emulator.state().set_read_only(&h.token, true);
    let data = bytes(b"%PDF-1.7\n", 64 * 1024, 15);
    let mut args = h.guest();
    args.extend(crate::args(&["-H", "Content-Type: application/pdf", "-H", "X-File-Name: doc.pdf"]));
    args.extend(["--data-binary".into(), format!("@{}", h.file("doc.pdf", &data).display())]);
    let reply = h.post(&args, None).await;
    reply.assert_error(409, "conversation_closed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.assert_nothing_stored().await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_caller_conversation_id_is_echoed_and_none_is_invented() {
    let h = Harness::start("convid", Options::default()).await;
    let data = bytes(b"%PDF-1.7\n", 16 * 1024, 16);
    let path = h.file("doc.pdf", &data);
    let mut args = h.guest();
    args.extend(crate::args(&["-H", "Content-Type: application/pdf", "-H", "X-File-Name: doc.pdf"]));
    args.extend(["--data-binary".into(), format!("@{}", path.display())]);
    let post_to = |path: String| {
        let mut all = vec!["-X".to_owned(), "POST".to_owned(), h.ferry.url(&path)];
        all.extend_from_slice(&args);
        curl(all)
    };
    let plain = post_to("/v1/uploads".into()).await;
    assert_eq!(plain.status, 201, "{plain:?}");
    let plain = plain.json();
    assert!(plain.get("conversationId").is_none() && plain.get("conversationIdSource").is_none(), "{plain}");
    let id = "3f2b6a1e-9c1d-4e1a-8b1f-0a2b3c4d5e6f";
    let given = post_to(format!("/v1/uploads?conversationId={id}")).await;
    assert_eq!(given.status, 201, "{given:?}");
    let given = given.json();
    assert_eq!(given["conversationId"], id, "{given}");
    assert_eq!(given["conversationIdSource"], "caller", "{given}");
    post_to("/v1/uploads?conversationId=%3Cscript%3E".into())
        .await
        .assert_error(400, "invalid_conversation_id");

    // As a form field (after the file part), as upload middlewares for Genesys take it.
    let form = |path: &str, fields: &[String]| {
        let mut all = vec!["-X".to_owned(), "POST".to_owned(), h.ferry.url(path)];
        all.extend(h.guest());
        for field in fields {
            all.extend(["-F".to_owned(), field.clone()]);
        }
        curl(all)
    };
    let file = format!("file=@{};type=application/pdf", path.display());
    let field = format!("conversationId={id}");
    let from_form = form("/v1/uploads", &[file.clone(), field.clone()]).await;
    assert_eq!(from_form.status, 201, "{from_form:?}");
    let from_form = from_form.json();
    assert_eq!(from_form["conversationId"], id, "{from_form}");
    assert_eq!(from_form["conversationIdSource"], "caller", "{from_form}");
    // Given twice (query and form): refused.
    let twice = form(&format!("/v1/uploads?conversationId={id}"), &[field, file]).await;
    twice.assert_error(400, "invalid_conversation_id");
    h.finish().await;
}

/// Uploads `len` bytes through an Open Messaging deployment whose attachment cap is `cap`;
/// returns the reference and what the platform emulator received.
async fn open_messaging_upload(case: &str, cap: u64, len: usize) -> (Value, Vec<Value>, Vec<Option<bool>>) {
    let platform = PlatformEmulator::start(PlatformConfig::with_client("om", "om-secret"))
        .await
        .expect("platform emulator");
    let h = start_open_messaging(case, &platform, &format!("max_attachment_bytes = {cap}\n")).await;
    let data = bytes(b"", len, 17);
    let reply = h.open_messaging_upload(&data).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    assert_kept(&h, &reference, &data).await;
    let received = platform.state().open_messages();
    let bodies = received.iter().map(|m| m.body.clone()).collect();
    let fetched = received.iter().flat_map(|m| m.attachments.iter().map(|a| a.sha256_matches)).collect();
    h.finish().await;
    (reference, bodies, fetched)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn open_messaging_sends_files_over_the_cap_as_a_link_text() {
    // Over the cap: one text message with the link, no attachment for Genesys to fetch.
    let (reference, bodies, fetched) = open_messaging_upload("omcap", 100_000, 100_001).await;
    assert_eq!(reference["delivery"]["mode"], "open-messaging", "{reference}");
    assert_eq!(reference["delivery"]["asLink"], true, "{reference}");
    assert_eq!(bodies.len(), 1, "one message: {bodies:?}");
    assert!(bodies[0].get("content").is_none(), "no attachment over the cap: {}", bodies[0]);
    let link = reference["downloadUrl"].as_str().expect("downloadUrl");
    assert!(
        bodies[0]["text"].as_str().is_some_and(|t| t.contains(link) && t.contains("om.bin")),
        "{}",
        bodies[0]
    );
    assert!(fetched.is_empty(), "{fetched:?}");

    // At the cap: an attachment, fetched intact.
    let (reference, bodies, fetched) = open_messaging_upload("omcapat", 100_000, 100_000).await;
    assert_eq!(reference["delivery"]["asLink"], false, "{reference}");
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(fetched, [Some(true)], "Genesys fetched the attachment intact");
}
