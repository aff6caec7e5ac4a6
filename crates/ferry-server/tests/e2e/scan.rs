//! Malware scanning with a real ClamAV (`[scan]`): Debian's clamd on loopback with a signature
//! database the test writes (`ferry_testkit::clamd`), ferry serve against LocalStack and the
//! Genesys emulator. A clean file is delivered with `scan.result = "clean"`; the EICAR string and a
//! byte pattern 600 MiB into a 1 GiB file are refused 422 `malware_detected` naming the signature,
//! with no object, no multipart upload and no message; a stopped or killed clamd is 503
//! `scanner_unavailable` (or, by policy, delivered `unscanned`); a file above the scanner's limit
//! (ferry's `max_bytes` or clamd's own) is 413 `too_large_to_scan` (or delivered `unscanned`).

use crate::args;
use crate::harness::{DEPLOYMENT, Harness, MIB, Options, Reply, bytes};
use ferry_core::checksum::Md5;
use ferry_testkit::clamd::{Clamd, EICAR, EICAR_SIGNATURE, PATTERN, PATTERN_SIGNATURE};
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;
use tokio::io::AsyncWriteExt as _;

/// A harness whose deployment is scanned by the clamd at `address`, with `extra` lines in
/// `[scan]` (and `deployment` lines in the deployment's own table).
async fn scanned(case: &str, address: &str, extra: &[&str], deployment: &[&str]) -> Harness {
    let mut toml: Vec<String> = deployment.iter().map(|l| (*l).to_owned()).collect();
    // Guests may send up to 2 GiB here (their default limit is lower).
    toml.push(format!("[deployments.\"{DEPLOYMENT}\".guests]"));
    toml.push(format!("max_file_size = {}", 2u64 << 30));
    toml.push("[scan]".into());
    toml.push(format!("address = \"{address}\""));
    toml.extend(extra.iter().map(|l| (*l).to_owned()));
    Harness::start(case, Options { toml, ..Options::default() }).await
}

/// A raw guest upload of the file at `path` (streamed by curl, its length declared).
async fn upload(h: &Harness, path: &Path) -> Reply {
    let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
    let mut request = h.guest();
    request.extend(args(&[
        "--max-time",
        "900",
        "-H",
        "Expect:",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        &format!("X-File-Name: {name}"),
        "-T",
        &path.display().to_string(),
    ]));
    h.post(&request, None).await
}

/// The same, chunked from memory (no length declared).
async fn upload_chunked(h: &Harness, name: &str, data: Vec<u8>) -> Reply {
    let mut request = h.guest();
    request.extend(args(&[
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        &format!("X-File-Name: {name}"),
        "--data-binary",
        "@-",
    ]));
    h.post(&request, Some(data)).await
}

/// `len` pseudo-random bytes in a file of the harness's folder, with `insert` written at `at`.
fn big_file(h: &Harness, name: &str, len: u64, insert: Option<(u64, &[u8])>) -> std::path::PathBuf {
    let path = h.dir.path().join(name);
    let file = std::fs::File::create(&path).expect("create test file");
    ferry_testkit::data::write_pseudo_random(std::io::BufWriter::new(file), len, len)
        .expect("write test file");
    if let Some((at, bytes)) = insert {
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).expect("open test file");
        file.seek(SeekFrom::Start(at)).expect("seek");
        file.write_all(bytes).expect("insert");
    }
    path
}

/// Nothing stored, nothing in progress, nothing in any conversation.
async fn assert_nothing_kept(h: &Harness) {
    h.assert_nothing_stored().await;
    for conversation in h.emulator.state().conversations() {
        assert!(
            conversation.attachments.is_empty() && conversation.messages.is_empty(),
            "the emulator saw an upload: {conversation:?}"
        );
    }
}

/// A 201 whose reference says `scan.result` is `result` (and `reason`, for `unscanned`); the object
/// is stored with `len` bytes and one message was sent.
async fn assert_delivered(h: &Harness, reply: &Reply, len: u64, result: &str, reason: Option<&str>) {
    assert_eq!(reply.status, 201, "{reply:?}");
    let reference = reply.json();
    assert_eq!(reference["scan"]["engine"], "clamav", "{reference}");
    assert_eq!(reference["scan"]["result"], result, "{reference}");
    // The test database is not an official one: clamd's VERSION names no database.
    assert!(reference["scan"]["database"].is_null(), "{reference}");
    assert_eq!(reference["scan"].get("reason").and_then(|r| r.as_str()), reason, "{reference}");
    let key = ferry_testkit::reference::stored_key(&reference, ferry_testkit::reference::DEFAULT_PREFIX)
        .expect("a file id");
    let head = h.s3.head_object().bucket(&h.bucket).key(&key).send().await.expect("the object is stored");
    assert_eq!(head.content_length(), Some(i64::try_from(len).expect("size")));
    assert_eq!(h.pending_uploads().await, 0);
    let messages = h.conversation()["messages"].as_array().expect("messages").len();
    assert_eq!(messages, 1, "one message for the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs clamd and LocalStack"]
async fn a_clean_200_mib_file_is_scanned_and_delivered() {
    let clamd_dir = tempfile::tempdir().expect("temp dir");
    let clamd = Clamd::start(clamd_dir.path()).await;
    let h = scanned("scan-clean", &clamd.tcp_address(), &["max_bytes = 1073741824"], &[]).await;
    let path = big_file(&h, "survey.bin", 200 * MIB as u64, None);
    let reply = upload(&h, &path).await;
    assert_delivered(&h, &reply, 200 * MIB as u64, "clean", None).await;
    let data = std::fs::read(&path).expect("read back");
    assert_eq!(reply.json()["checksums"]["md5"], Md5::of(&data).to_hex());
    assert_eq!(h.metric("ferry_scans_total{result=\"clean\"}").await, 1);
    assert_eq!(h.metric("ferry_scanner_up").await, 1, "VERSION was asked at start-up");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs clamd and LocalStack"]
async fn the_eicar_string_is_refused_422_and_nothing_is_kept() {
    let clamd_dir = tempfile::tempdir().expect("temp dir");
    let clamd = Clamd::start(clamd_dir.path()).await;
    // Over the Unix socket this time.
    let address = format!("unix:{}", clamd.socket_path().display());
    let h = scanned("scan-eicar", &address, &[], &[]).await;
    let path = h.file("invoice.txt", EICAR);
    let reply = upload(&h, &path).await;
    reply.assert_error(422, "malware_detected");
    let message = reply.json()["error"]["message"].as_str().expect("message").to_owned();
    assert!(message.contains(EICAR_SIGNATURE), "the signature is named: {message}");
    assert_nothing_kept(&h).await;
    assert_eq!(h.metric(&format!("ferry_malware_detected_total{{deployment=\"{DEPLOYMENT}\"}}")).await, 1);
    assert_eq!(h.metric("ferry_uploads_total{outcome=\"malware_detected\"}").await, 1);
    let log = h.ferry.log();
    assert!(
        log.lines().any(|l| l.contains("\"event\":\"malware_detected\"") && l.contains(EICAR_SIGNATURE)),
        "a structured detection event: {log}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs clamd and LocalStack"]
async fn a_pattern_600_mib_into_a_1_gib_file_is_refused_and_nothing_is_kept() {
    let clamd_dir = tempfile::tempdir().expect("temp dir");
    let clamd = Clamd::start(clamd_dir.path()).await;
    let h = scanned("scan-deep", &clamd.tcp_address(), &["max_bytes = 2000000000"], &[]).await;
    let path = big_file(&h, "archive.bin", 1 << 30, Some((600 * MIB as u64, PATTERN)));
    let reply = upload(&h, &path).await;
    reply.assert_error(422, "malware_detected");
    assert!(
        reply.json()["error"]["message"].as_str().is_some_and(|m| m.contains(PATTERN_SIGNATURE)),
        "{reply:?}"
    );
    assert_nothing_kept(&h).await;
    assert!(h.metric("ferry_multipart_aborted_total").await >= 1, "the multipart upload was aborted");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs clamd and LocalStack"]
async fn a_stopped_clamd_is_503_or_unscanned_by_policy() {
    let clamd_dir = tempfile::tempdir().expect("temp dir");
    let mut clamd = Clamd::start(clamd_dir.path()).await;
    let address = clamd.tcp_address();
    clamd.stop();
    let data = bytes(b"", 7 * MIB, 21);

    let h = scanned("scan-down", &address, &["timeout_secs = 5"], &[]).await;
    let reply = upload(&h, &h.file("notes.bin", &data)).await;
    reply.assert_error(503, "scanner_unavailable");
    assert_nothing_kept(&h).await;
    assert_eq!(h.metric("ferry_scanner_up").await, 0);
    h.finish().await;

    let h =
        scanned("scan-fallback", &address, &["timeout_secs = 5", "unavailable = \"unscanned\""], &[]).await;
    let reply = upload(&h, &h.file("notes.bin", &data)).await;
    assert_delivered(&h, &reply, data.len() as u64, "unscanned", Some("scanner_unavailable")).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs clamd and LocalStack"]
async fn clamd_killed_mid_scan_is_503_and_nothing_is_kept() {
    let clamd_dir = tempfile::tempdir().expect("temp dir");
    let mut clamd = Clamd::start(clamd_dir.path()).await;
    let h = scanned("scan-killed", &clamd.tcp_address(), &[], &[]).await;
    let len = 40 * MIB;
    let data = bytes(b"", len, 22);
    let mut stream = tokio::net::TcpStream::connect(h.ferry.addr()).await.expect("connect to ferry");
    let head = format!(
        "POST /v1/uploads HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nX-Genesys-Deployment-Id: {DEPLOYMENT}\r\n\
         Content-Type: application/octet-stream\r\nX-File-Name: killed.bin\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        h.ferry.addr(),
        h.token,
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream.write_all(&data[..12 * MIB]).await.expect("first 12 MiB");
    // ferry holds a multipart upload and a clamd connection now.
    h.wait_pending_uploads(1).await;
    clamd.kill();
    // The rest: ferry may stop reading once it has refused (it drains what follows).
    let _ = stream.write_all(&data[12 * MIB..]).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut raw),
    )
    .await
    .expect("an answer within 60 s");
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"scanner_unavailable\""), "{text}");
    assert_nothing_kept(&h).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs clamd and LocalStack"]
async fn a_file_above_the_scanners_limit_is_413_or_unscanned_by_policy() {
    let clamd_dir = tempfile::tempdir().expect("temp dir");
    let clamd = Clamd::start(clamd_dir.path()).await;
    let data = bytes(b"", 12 * MIB, 23);
    let max = format!("max_bytes = {}", 8 * MIB);

    // Refuse (the default): declared too large is refused before reading; chunked, midway.
    let h = scanned("scan-big", &clamd.tcp_address(), &[&max], &[]).await;
    upload(&h, &h.file("big.bin", &data)).await.assert_error(413, "too_large_to_scan");
    assert_nothing_kept(&h).await;
    upload_chunked(&h, "big.bin", data.clone()).await.assert_error(413, "too_large_to_scan");
    assert_nothing_kept(&h).await;
    assert!(h.metric("ferry_multipart_aborted_total").await >= 1, "the chunked upload was begun and aborted");
    h.finish().await;

    // Unscanned: delivered, and the reference says so.
    let h = scanned("scan-big-ok", &clamd.tcp_address(), &[&max, "too_large = \"unscanned\""], &[]).await;
    let reply = upload_chunked(&h, "big.bin", data.clone()).await;
    assert_delivered(&h, &reply, data.len() as u64, "unscanned", Some("too_large")).await;
    h.finish().await;

    // clamd's own limit (AlertExceedsMax): reported as a limit, not as clean.
    let small_dir = tempfile::tempdir().expect("temp dir");
    let small = Clamd::start_with_limit(small_dir.path(), 2 * MIB as u64).await;
    let h = scanned("scan-clamd-limit", &small.tcp_address(), &[], &[]).await;
    upload(&h, &h.file("big.bin", &data)).await.assert_error(413, "too_large_to_scan");
    assert_nothing_kept(&h).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs clamd and LocalStack"]
async fn a_deployment_with_scanning_off_is_not_scanned() {
    let clamd_dir = tempfile::tempdir().expect("temp dir");
    let clamd = Clamd::start(clamd_dir.path()).await;
    let h = scanned("scan-off", &clamd.tcp_address(), &[], &["scan = false"]).await;
    let reply = upload(&h, &h.file("eicar.txt", EICAR)).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert!(reply.json().get("scan").is_none(), "{reply:?}");
    h.finish().await;
}

/// A tus upload (`POST /v1/tus/` with the whole body, then `GET` of its URL) as the harness's guest.
async fn tus_upload(h: &Harness, name: &str, data: &[u8]) -> (Reply, Option<Reply>) {
    use base64::Engine as _;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let headers = h.dir.path().join(format!("{name}.headers"));
    let mut request = h.guest();
    request.extend(args(&[
        "-D",
        &headers.display().to_string(),
        "-H",
        "Tus-Resumable: 1.0.0",
        "-H",
        &format!("Upload-Length: {}", data.len()),
        "-H",
        &format!("Upload-Metadata: filename {},filetype {}", b64(name), b64("text/plain")),
        "-H",
        "Content-Type: application/offset+octet-stream",
        "--data-binary",
        "@-",
        &h.ferry.url("/v1/tus/"),
    ]));
    let mut all = args(&["-X", "POST"]);
    all.extend(request);
    let created = crate::harness::curl(&all, Some(data.to_vec())).await;
    let headers = std::fs::read_to_string(&headers).unwrap_or_default();
    let location = headers
        .lines()
        .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
        .map(|l| l.trim().trim_start_matches(&format!("http://{}", crate::harness::PUBLIC_HOST)).to_owned());
    let Some(path) = location else { return (created, None) };
    let mut get = h.guest();
    get.extend(args(&["-H", "Tus-Resumable: 1.0.0", &h.ferry.url(&path)]));
    (created, Some(crate::harness::curl(&get, None).await))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs clamd and LocalStack"]
async fn a_resumable_upload_is_scanned_once_at_completion() {
    let clamd_dir = tempfile::tempdir().expect("temp dir");
    let clamd = Clamd::start(clamd_dir.path()).await;
    let h = scanned("scan-tus", &clamd.tcp_address(), &[], &[]).await;
    let files =
        |keys: Vec<String>| keys.into_iter().filter(|k| !k.starts_with("ferry/.tus/")).collect::<Vec<_>>();

    let (created, reference) = tus_upload(&h, "clean.txt", b"nothing to see here\n").await;
    assert!(created.status == 201 || created.status == 204, "{created:?}");
    let reference = reference.expect("an upload URL");
    assert_eq!(reference.status, 200, "{reference:?}");
    assert_eq!(reference.json()["scan"]["result"], "clean", "{reference:?}");
    assert_eq!(files(h.keys().await).len(), 1, "the clean file is stored");
    assert_eq!(h.metric("ferry_scans_total{result=\"clean\"}").await, 1, "scanned once");

    // The creation took the whole file; the verdict is the answer of whoever settles it.
    let (created, settled) = tus_upload(&h, "eicar.txt", EICAR).await;
    assert!(created.status == 201 || created.status == 422, "{created:?}");
    let refused = if created.status == 422 { created } else { settled.expect("an upload URL") };
    refused.assert_error(422, "malware_detected");
    assert!(
        refused.json()["error"]["message"].as_str().is_some_and(|m| m.contains(EICAR_SIGNATURE)),
        "{refused:?}"
    );
    assert_eq!(files(h.keys().await).len(), 1, "the infected object is deleted");
    assert_eq!(h.metric("ferry_scans_total{result=\"infected\"}").await, 1, "scanned once");
    assert_eq!(h.conversation()["messages"].as_array().expect("messages").len(), 1, "no message for it");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs clamd and LocalStack"]
async fn with_a_quarantine_prefix_an_infected_file_is_kept_there_and_nowhere_else() {
    let clamd_dir = tempfile::tempdir().expect("temp dir");
    let clamd = Clamd::start(clamd_dir.path()).await;
    let h =
        scanned("scan-quarantine", &clamd.tcp_address(), &["quarantine_prefix = \"quarantine/\""], &[]).await;
    // 12 MiB with the pattern in its third part: a multipart upload, completed then moved away.
    let mut data = bytes(b"", 12 * MIB, 24);
    data[11 * MIB..11 * MIB + PATTERN.len()].copy_from_slice(PATTERN);
    let reply = upload(&h, &h.file("photos.bin", &data)).await;
    reply.assert_error(422, "malware_detected");
    let message = reply.json()["error"]["message"].as_str().expect("message").to_owned();
    assert!(message.contains(PATTERN_SIGNATURE) && message.contains("quarantine"), "{message}");
    let keys = h.keys().await;
    assert_eq!(keys.len(), 1, "only the quarantined copy: {keys:?}");
    assert!(keys[0].starts_with(&format!("quarantine/ferry/{DEPLOYMENT}/")), "{keys:?}");
    assert!(h.object(&keys[0]).await == data, "the quarantined bytes are the file's");
    assert_eq!(h.pending_uploads().await, 0);
    assert_eq!(h.conversation()["messages"], serde_json::json!([]), "nothing delivered");
    assert!(h.ferry.log().contains("malware_quarantined"), "the move is logged");
    h.finish().await;
}
