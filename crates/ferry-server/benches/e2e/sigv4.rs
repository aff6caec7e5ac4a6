//! A presigned S3 `PUT` URL (SigV4 in the query string, payload `UNSIGNED-PAYLOAD`), for the
//! ceiling row: one plain `curl -T` of the whole file, no hashing on the client side. curl's own
//! `--aws-sigv4` cannot sign a streamed upload as unsigned for every server, so the bench signs.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `endpoint/bucket/key` (path style) presigned for a `PUT` valid one hour, in region us-east-1.
pub(crate) fn presigned_put(
    endpoint: &str,
    bucket: &str,
    key: &str,
    access_key: &str,
    secret_key: &str,
) -> String {
    let url = url::Url::parse(endpoint).expect("endpoint URL");
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let now = time::OffsetDateTime::now_utc();
    let day = format!("{:04}{:02}{:02}", now.year(), u8::from(now.month()), now.day());
    let stamp = format!("{day}T{:02}{:02}{:02}Z", now.hour(), now.minute(), now.second());
    let scope = format!("{day}/us-east-1/s3/aws4_request");
    let credential = format!("{access_key}/{scope}").replace('/', "%2F");
    // Query parameters in byte order, as the canonical request wants them.
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Date={stamp}\
         &X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    );
    let path = format!("/{bucket}/{key}");
    let canonical = format!("PUT\n{path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
    let to_sign =
        format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
    let mut signing = hmac(format!("AWS4{secret_key}").as_bytes(), &day);
    for part in ["us-east-1", "s3", "aws4_request"] {
        signing = hmac(&signing, part);
    }
    let signature = hex::encode(hmac(&signing, &to_sign));
    format!("{}{path}?{query}&X-Amz-Signature={signature}", endpoint.trim_end_matches('/'))
}
