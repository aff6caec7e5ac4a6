//! Reading ferry's attachment references in tests.
//!
//! Guests are not sent `storage` (the bucket and key); site backends with tickets are. A test that
//! checks what S3 holds finds the key either way: a file id is the key below ferry's prefix,
//! base64url-encoded without padding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// ferry's default key prefix (`s3.prefix`).
pub const DEFAULT_PREFIX: &str = "ferry/";

/// The S3 key of the file `reference` describes, under `prefix`: `storage.key` when the reference
/// carries it (and then it must agree with the id), otherwise decoded from `id`. `None` when the
/// reference has no usable id (not a 201 reference).
pub fn stored_key(reference: &Value, prefix: &str) -> Option<String> {
    let id = reference.get("id")?.as_str()?;
    let tail = String::from_utf8(URL_SAFE_NO_PAD.decode(id).ok()?).ok()?;
    let key = format!("{prefix}{tail}");
    if let Some(stated) = reference.pointer("/storage/key").and_then(Value::as_str) {
        assert_eq!(stated, key, "storage.key and the file id name different objects");
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_come_from_the_id_with_or_without_storage() {
        let id = URL_SAFE_NO_PAD.encode("dep/2026/11/30/abc");
        let guest = json!({"id": id});
        assert_eq!(stored_key(&guest, "ferry/").as_deref(), Some("ferry/dep/2026/11/30/abc"));
        let site = json!({"id": id, "storage": {"bucket": "b", "key": "x/dep/2026/11/30/abc"}});
        assert_eq!(stored_key(&site, "x/").as_deref(), Some("x/dep/2026/11/30/abc"));
        assert_eq!(stored_key(&json!({"error": {}}), "ferry/"), None);
        assert_eq!(stored_key(&json!({"id": "%%%"}), "ferry/"), None);
    }

    #[test]
    #[should_panic(expected = "different objects")]
    fn a_key_that_disagrees_with_the_id_fails_the_test() {
        let id = URL_SAFE_NO_PAD.encode("dep/a");
        stored_key(&json!({"id": id, "storage": {"key": "ferry/dep/b"}}), "ferry/");
    }
}
