//! Slow clients do not lock everyone out: the memory budget is charged per buffered part, so 20
//! connections trickling at the minimum rate hold one part's share each, and a normal upload is
//! still admitted and finishes. (Charged per upload, `part size × (in flight + 1)` = 40 MiB each,
//! the 20 would need 800 MiB of the default 512 MiB and the normal upload would be `server_busy`.)

use crate::support::{Ferry, random_bytes};
use ferry_core::plan::MIB;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt as _;

const TRICKLERS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_trickling_connections_do_not_stop_a_normal_upload() {
    let ferry = Ferry::start_with(|c| {
        // One loopback client plays many addresses.
        c.admission.trusted_client_header = Some("x-forwarded-for".into());
        // The production defaults (`ferry dev` uses less).
        let defaults = ferry_server::config::Config::default();
        (c.limits.memory_budget, c.limits.min_bytes_per_sec) =
            (defaults.limits.memory_budget, defaults.limits.min_bytes_per_sec);
        (c.s3.part_size_mib, c.s3.max_in_flight) = (defaults.s3.part_size_mib, defaults.s3.max_in_flight);
    })
    .await;
    let limits = &ferry.state.config.limits;
    assert_eq!(limits.memory_budget, 512 * MIB);
    assert!(
        20 * ferry.state.config.part_buffer_bytes() > limits.memory_budget,
        "per upload, 20 would not fit"
    );
    let part = ferry.state.config.s3.part_size_mib * MIB;
    let rate = limits.min_bytes_per_sec as usize;
    let addr = ferry.url.trim_start_matches("http://").to_owned();

    // 20 uploads of 64 MiB declared, each from its own address, sending at the minimum rate.
    let mut tricklers = Vec::new();
    for i in 0..TRICKLERS {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Ferry-Ticket {}\r\nX-Forwarded-For: 198.51.100.{i}\r\nContent-Type: application/octet-stream\r\nX-File-Name: slow-{i}.bin\r\nContent-Length: {}\r\n\r\n",
            ferry.ticket(|_| {}),
            64 * MIB
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        tricklers.push(tokio::spawn(async move {
            let chunk = vec![7u8; rate / 10];
            loop {
                if stream.write_all(&chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    // All 20 admitted: each holds one part's share, no more.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ferry.state.budget_used_bytes() < TRICKLERS as u64 * part {
        assert!(Instant::now() < deadline, "not all admitted: {} bytes", ferry.state.budget_used_bytes());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ferry.state.budget_used_bytes(), TRICKLERS as u64 * part);

    // A normal upload of three parts is admitted and finishes, byte for byte.
    let data = random_bytes(3 * part as usize - 1000, 13);
    let response = ferry
        .ticketed(&ferry.ticket(|_| {}), "normal.bin", "application/octet-stream", data.clone())
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{json}");
    let key = ferry_testkit::reference::stored_key(&json, ferry_testkit::reference::DEFAULT_PREFIX).unwrap();
    let key = key.as_str();
    // A ticket upload left to its page pays for no SHA-256; the reference lists only what was computed.
    assert!(json["checksums"]["md5"].is_string() && json["checksums"].get("sha256").is_none(), "{json}");
    assert!(ferry.object(key).await == data, "stored bytes differ");
    // The tricklers are still there, still holding one part each.
    assert!(tricklers.iter().all(|t| !t.is_finished()));
    assert_eq!(ferry.state.budget_used_bytes(), TRICKLERS as u64 * part);

    for t in &tricklers {
        t.abort();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while ferry.state.budget_used_bytes() > 0 {
        assert!(Instant::now() < deadline, "budget not returned: {}", ferry.state.budget_used_bytes());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ferry.stop().await;
}
