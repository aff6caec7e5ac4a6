//! Two `ferry serve` processes on one bucket (replicas behind a load balancer): a ticket used on
//! one is refused on the other, two replicas racing for one ticket store one file, a restart does
//! not revive a used ticket (used tickets are markers written with `If-None-Match: *` in the
//! bucket), and download links survive key rotation while a retired key's links fail.

use crate::args;
use crate::harness::{
    DEPLOYMENT, Ferry, Harness, LINK_SECRET, Options, PUBLIC_HOST, Reply, TICKET_SECRET, curl, ferry_ticket,
};
use ferry_server::links::{LinkSigner, file_id};

const K1: &str = "e2e-link-key-one-0123456789abcdef-retired";
const K2: &str = "e2e-link-key-two-0123456789abcdef-current";

/// `ferry ticket` (with `iat`), as a site backend mints one.
fn mint() -> String {
    ferry_ticket(TICKET_SECRET, &["--ttl", "300"])
}

/// A small upload with `ticket` to `ferry`.
async fn upload(ferry: &Ferry, ticket: &str, path: &std::path::Path) -> Reply {
    let mut all = vec!["-X".into(), "POST".into(), ferry.url("/v1/uploads")];
    all.extend(crate::harness::ticket_file_upload(ticket, path, "text/plain", "note.txt"));
    curl(&all, None).await
}

/// `GET` of a download link's path and query on `ferry`.
async fn follow(ferry: &Ferry, link: &str) -> Reply {
    let path = link.strip_prefix(&format!("http://{PUBLIC_HOST}")).expect("a link under the public URL");
    curl(&[ferry.url(path)], None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn tickets_are_single_use_across_replicas_and_restarts() {
    let mut h = Harness::start("replicas", Options::default()).await;
    let b = h.start_replica("b", &[]).await;
    let path = h.file("note.txt", b"a note for the agent\n");

    // Used on A, refused on B (and on A again).
    let ticket = mint();
    let reply = upload(&h.ferry, &ticket, &path).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    upload(&b, &ticket, &path).await.assert_error(401, "invalid_ticket");
    upload(&h.ferry, &ticket, &path).await.assert_error(401, "invalid_ticket");
    assert_eq!(h.keys().await.len(), 1, "one file stored");

    // A and B racing for one ticket: exactly one upload wins.
    let raced = mint();
    let (on_a, on_b) = tokio::join!(upload(&h.ferry, &raced, &path), upload(&b, &raced, &path));
    let mut statuses = [on_a.status, on_b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 401], "A: {on_a:?}\nB: {on_b:?}");
    assert_eq!(h.keys().await.len(), 2, "the race stored one file");

    // Used on B, then A restarts (SIGKILL, nothing in memory survives): still used.
    let before_restart = mint();
    assert_eq!(upload(&b, &before_restart, &path).await.status, 201);
    h.crash_and_restart(&[]).await;
    upload(&h.ferry, &before_restart, &path).await.assert_error(401, "invalid_ticket");
    upload(&h.ferry, &ticket, &path).await.assert_error(401, "invalid_ticket");
    // A fresh ticket still works on the restarted A.
    assert_eq!(upload(&h.ferry, &mint(), &path).await.status, 201);
    assert_eq!(h.keys().await.len(), 4);
    assert_eq!(h.pending_uploads().await, 0);
    let markers = h.all_keys().await.into_iter().filter(|k| k.starts_with("ferry/.tickets/")).count();
    assert_eq!(markers, 4, "one marker per used ticket, and no probe key left behind");
    drop(b);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn links_of_a_retired_key_fail_while_current_and_kidless_links_work() {
    let h = Harness::start("linkkeys", Options::default()).await;
    // Replica B rotated: the harness's settings plus link keys (k2 signs; k1 is retired; the old
    // unnamed link_secret still verifies).
    let config = h.dir.path().join("rotated.toml");
    let base = std::fs::read_to_string(h.dir.path().join("ferry.toml")).expect("the harness's config");
    let k2 = h.file("k2.secret", format!("{K2}\n").as_bytes());
    let keys =
        format!("\n[[link_keys]]\nid = \"k2\"\nsecret = {{ file = {:?} }}\n", k2.display().to_string());
    std::fs::write(&config, base + &keys).expect("config file");
    let b = h.start_replica("rotated", &[("FERRY_CONFIG", config.display().to_string())]).await;

    let public = format!("http://{PUBLIC_HOST}");
    let id = file_id(&format!("{DEPLOYMENT}/2026/11/30/0b6f1c52-5a8e-4d7f-9a39-2f0e8f3c1d2a"));
    let later = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let retired = LinkSigner::with_keys(None, &[("k1", K1.as_bytes())], &public).link(&id, later);
    let current = LinkSigner::with_keys(None, &[("k2", K2.as_bytes())], &public).link(&id, later);
    let kidless = LinkSigner::new(LINK_SECRET.as_bytes(), &public).link(&id, later);
    assert!(retired.contains("&kid=k1&") && current.contains("&kid=k2&") && !kidless.contains("kid="));

    follow(&b, &retired).await.assert_error(403, "invalid_link");
    assert_eq!(follow(&b, &current).await.status, 302, "a current key's link works");
    assert_eq!(follow(&b, &kidless).await.status, 302, "a link from before key ids still works");
    // A relabelled link (k1's signature under kid=k2) is refused.
    let relabelled = retired.replace("kid=k1", "kid=k2");
    follow(&b, &relabelled).await.assert_error(403, "invalid_link");
    // A, not rotated yet, knows no k2.
    follow(&h.ferry, &current).await.assert_error(403, "invalid_link");
    assert_eq!(follow(&h.ferry, &kidless).await.status, 302);

    // A real upload through B is answered with a k2 link that B follows.
    let path = h.file("note.txt", b"rotated\n");
    let mut all = vec!["-X".into(), "POST".into(), b.url("/v1/uploads")];
    all.extend(h.guest());
    all.extend(args(&["-H", "Content-Type: text/plain", "-H", "X-File-Name: note.txt"]));
    all.extend(args(&["--data-binary", &format!("@{}", path.display())]));
    let reply = curl(&all, None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let link = reply.json()["downloadUrl"].as_str().expect("downloadUrl").to_owned();
    assert!(link.contains("&kid=k2&"), "{link}");
    assert_eq!(follow(&b, &link).await.status, 302);

    let log = b.log();
    for secret in [K1, K2, LINK_SECRET, TICKET_SECRET] {
        assert!(!log.contains(secret), "replica B's log shows a secret:\n{log}");
    }
    drop(b);
    h.finish().await;
}
