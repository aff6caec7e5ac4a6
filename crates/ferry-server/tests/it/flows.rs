//! Whole flows over real sockets: upload → S3 → conversation.

use crate::support::{DEPLOYMENT, Ferry, random_bytes, sha256_hex};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_file_is_stored_and_delivered_natively() {
    let ferry = Ferry::start().await;
    let data = b"%PDF-1.7\nhello ferry\n".repeat(100);
    let response = ferry.raw("r%C3%A9sum%C3%A9.pdf", "application/pdf", data.clone()).send().await.unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let reference: Value = response.json().await.unwrap();
    assert_eq!(reference["name"], "résumé.pdf");
    assert_eq!(reference["size"], data.len());
    assert_eq!(reference["delivery"]["mode"], "native");
    assert_eq!(reference["checksums"]["sha256"], sha256_hex(&data));
    let key = reference["storage"]["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("ferry/{DEPLOYMENT}/")));
    assert_eq!(ferry.object(key).await, data);

    let conversation = ferry.stack.genesys.state().conversation(ferry.token()).unwrap();
    let json = serde_json::to_value(&conversation).unwrap();
    let attachments = json["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "{json}");
    assert_eq!(attachments[0]["sha256"], sha256_hex(&data));
    assert!(ferry.stack.genesys.state().violations().is_empty());
    ferry.stop().await;
}
