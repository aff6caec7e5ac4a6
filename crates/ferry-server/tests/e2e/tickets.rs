//! Upload tickets minted with `ferry ticket` (what a site's backend does): the file is stored and
//! the page delivers it (`delivery.mode: "client"`); a ticket is good once, and only for what it
//! allows.

use crate::harness::{DEPLOYMENT, Harness, Options, TICKET_SECRET, bytes, ferry_ticket, ticket_file_upload};

/// Runs `ferry ticket` with `extra` arguments and returns the ticket.
fn mint(secret: &str, extra: &[&str]) -> String {
    let ticket = ferry_ticket(secret, extra);
    assert!(ticket.starts_with("v1."), "a v1 ticket");
    ticket
}

fn request(ticket: &str, path: &std::path::Path, content_type: &str) -> Vec<String> {
    ticket_file_upload(ticket, path, content_type, "claim.pdf")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_ticket_stores_the_file_for_the_page_to_deliver_once() {
    let h = Harness::start("ticket", Options::default()).await;
    let data = bytes(b"%PDF-1.4\n", 400 * 1024, 8);
    let path = h.file("claim.pdf", &data);

    let ticket = mint(TICKET_SECRET, &["--reference", "case-42", "--types", "application/pdf,image/*"]);
    let reply = h.post(&request(&ticket, &path, "application/pdf"), None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    assert_eq!(reference["delivery"]["mode"], "client", "{reference}");
    assert_eq!(reference["reference"], "case-42", "{reference}");
    assert_eq!(reference["size"], data.len());
    let key = ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX)
        .as_deref()
        .expect("key")
        .to_owned();
    assert!(key.starts_with(&format!("ferry/{DEPLOYMENT}/")), "{key}");
    assert_eq!(h.keys().await, vec![key.clone()]);
    assert!(h.object(&key).await == data, "stored bytes differ");
    assert_eq!(h.pending_uploads().await, 0);
    // ferry did not touch the conversation: the page posts the link.
    let conversation = h.conversation();
    assert_eq!(conversation["attachments"], serde_json::json!([]), "{conversation}");
    assert_eq!(conversation["messages"], serde_json::json!([]), "{conversation}");

    // Used up.
    let reply = h.post(&request(&ticket, &path, "application/pdf"), None).await;
    reply.assert_error(401, "invalid_ticket");
    // Signed with another secret.
    let forged = mint("a different secret that is long enough, but wrong", &[]);
    let reply = h.post(&request(&forged, &path, "application/pdf"), None).await;
    reply.assert_error(401, "invalid_ticket");
    // Expired.
    let expired = mint(TICKET_SECRET, &["--ttl", "0"]);
    let reply = h.post(&request(&expired, &path, "application/pdf"), None).await;
    reply.assert_error(401, "invalid_ticket");
    // Its size and type limits hold.
    let small = mint(TICKET_SECRET, &["--max-size", "1000"]);
    let reply = h.post(&request(&small, &path, "application/pdf"), None).await;
    reply.assert_error(413, "payload_too_large");
    let images = mint(TICKET_SECRET, &["--types", "image/*"]);
    let reply = h.post(&request(&images, &path, "application/pdf"), None).await;
    reply.assert_error(415, "unsupported_media_type");

    assert_eq!(h.keys().await, vec![key], "only the first upload was kept");
    assert_eq!(h.pending_uploads().await, 0);
    h.finish().await;
}
