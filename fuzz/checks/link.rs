//! Fuzz check of download-link signatures and file ids (`ferry_server::links`): arbitrary ids,
//! `expires` and `signature` strings never panic, and a link verifies exactly when it is one the
//! signer made (same id, the canonical `expires`, the signer's own signature text) and has not
//! expired. Shared by the fuzz target and by ferry-server's regression test
//! (`tests/it/fuzz_link.rs`).
//!
//! Input layout: `[mode, now (8 bytes LE), expires (8 bytes LE), field 0xff field 0xff field…]`.
//! Mode bit 0 signs the id with the signer (else `signature` is field 2 as is); bit 1 also runs the
//! id through `file_id`; bits 2–3 pick how `expires` is written (canonical, field 1 as is, field 1
//! before the canonical text, the canonical text then field 1); bits 4–5 tamper with the signature
//! (none, replace the byte at field 3's first byte with its second, prepend field 3, append field 3).

use ferry_server::links::{LinkError, LinkSigner, file_id, key_tail};

/// The secret the fuzzed signer uses (any value; what matters is that it is fixed).
const SECRET: &[u8] = b"fuzz link secret, 32 bytes or more for HMAC";

/// Runs one input; panics when an invariant breaks.
pub(crate) fn check(input: &[u8]) {
    let mode = input.first().copied().unwrap_or(0);
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = input.get(at + i).copied().unwrap_or(0);
        }
        u64::from_le_bytes(bytes)
    };
    let now = word(1);
    let expires = word(9);
    let rest = input.get(17..).unwrap_or_default();
    let fields: Vec<String> =
        rest.split(|&b| b == 0xff).map(|f| String::from_utf8_lossy(f).into_owned()).collect();
    let field = |i: usize| fields.get(i).cloned().unwrap_or_default();

    let signer = LinkSigner::new(SECRET, "https://files.example/");
    let raw_id = field(0);
    let id = if mode & 2 == 2 { file_id(&raw_id) } else { raw_id.clone() };

    // File ids: whatever decodes re-encodes to the same id, and ids of decodable tails round-trip.
    if let Some(tail) = key_tail(&id) {
        assert_eq!(file_id(&tail), id, "key_tail accepted a non-canonical id");
        assert_eq!(tail.split('/').count(), 5);
        assert!(!tail.contains(".."));
    }
    if let Some(tail) = key_tail(&file_id(&raw_id)) {
        assert_eq!(tail, raw_id);
    }

    let canonical = expires.to_string();
    let expires_text = match (mode >> 2) & 3 {
        0 => canonical.clone(),
        1 => field(1),
        2 => format!("{}{canonical}", field(1)),
        _ => format!("{canonical}{}", field(1)),
    };
    let genuine_signature = signer.signature(&id, expires);
    assert_eq!(genuine_signature.len(), 64);
    let mut signature = if mode & 1 == 1 { genuine_signature.clone() } else { field(2) };
    let tamper = field(3);
    match (mode >> 4) & 3 {
        1 => {
            let t = tamper.as_bytes();
            if let (Some(&at), Some(&with)) = (t.first(), t.get(1)) {
                let mut bytes = signature.clone().into_bytes();
                if !bytes.is_empty() {
                    let at = usize::from(at) % bytes.len();
                    bytes[at] = with;
                    signature = String::from_utf8_lossy(&bytes).into_owned();
                }
            }
        }
        2 => signature = format!("{tamper}{signature}"),
        3 => signature.push_str(&tamper),
        _ => {}
    }
    let link = signer.link(&id, expires);
    assert!(link.starts_with("https://files.example/v1/files/"));
    assert!(link.ends_with(&format!("?expires={canonical}&signature={genuine_signature}")));

    // What the signer made: this id, this canonical expiry, this exact signature text.
    let made = expires_text
        .parse::<u64>()
        .ok()
        .filter(|e| e.to_string() == expires_text)
        .is_some_and(|e| signer.signature(&id, e) == signature);
    let expired = expires_text.parse::<u64>().is_ok_and(|e| now >= e);
    let verdict = signer.verify(&id, Some(&expires_text), Some(&signature), now);
    match verdict {
        Ok(()) => assert!(
            made && !expired,
            "verified a link the signer did not make: {expires_text:?} {signature:?}"
        ),
        Err(LinkError::Expired) => {
            assert!(made && expired, "a link the signer did not make came back Expired")
        }
        Err(LinkError::Malformed | LinkError::BadSignature) => {
            assert!(!made, "refused a link the signer made: {verdict:?}");
        }
    }
    // No query values at all is malformed, never a panic.
    assert_eq!(signer.verify(&id, None, Some(&signature), now), Err(LinkError::Malformed));
    assert_eq!(signer.verify(&id, Some(&expires_text), None, now), Err(LinkError::Malformed));
}
