//! A file refused by its first bytes while the client is still sending: ferry drains the rest in
//! the background, so the client finishes writing and reads the refusal instead of a reset.

use crate::support::{DEPLOYMENT, Ferry};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_a_refused_file_reads_the_refusal() {
    let ferry = Ferry::start().await;
    let addr = ferry.url.trim_start_matches("http://").to_owned();
    let len = 24 * 1024 * 1024;
    for round in 0..3 {
        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             X-Genesys-Deployment-Id: {DEPLOYMENT}\r\nContent-Type: application/pdf\r\n\
             X-File-Name: report.pdf\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n",
            ferry.token()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        // A Windows program declared as a PDF: refused on its first bytes, 24 MiB still to come.
        let mut body = vec![0u8; len];
        body[..2].copy_from_slice(b"MZ");
        for chunk in body.chunks(256 * 1024) {
            socket
                .write_all(chunk)
                .await
                .unwrap_or_else(|e| panic!("round {round}: ferry cut the body off mid-stream: {e}"));
        }
        let mut answer = Vec::new();
        socket
            .read_to_end(&mut answer)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the refusal was lost: {e}"));
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 415"), "round {round}: {answer}");
        assert!(answer.contains("unsupported_media_type"), "{answer}");
    }
    ferry.stop().await;
}
