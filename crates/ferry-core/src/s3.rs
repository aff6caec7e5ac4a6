//! S3's multipart arithmetic, and checks of what a server returned against what ferry computed.

use crate::checksum::{Crc, CrcAlgorithm, Md5};
use md5::Digest as _;

/// The ETag of a multipart object: `hex(md5(concat(binary part MD5s)))-N`.
pub fn multipart_etag(part_md5s: &[Md5]) -> String {
    let mut hasher = md5::Md5::new();
    for md5 in part_md5s {
        hasher.update(md5.0);
    }
    let digest: [u8; 16] = hasher.finalize().into();
    format!("{}-{}", crate::checksum::hex(&digest), part_md5s.len())
}

/// The ETag S3 gives an object stored with one PutObject: the hex MD5 of its bytes.
pub fn single_etag(md5: &Md5) -> String {
    md5.to_hex()
}

/// S3's COMPOSITE checksum: the CRC of the concatenated big-endian part CRCs, base64, `-N`.
///
/// # Panics
/// If the part CRCs mix algorithms.
pub fn composite_checksum(algorithm: CrcAlgorithm, part_crcs: &[Crc]) -> String {
    let mut bytes = Vec::with_capacity(part_crcs.len() * 8);
    for crc in part_crcs {
        assert_eq!(crc.algorithm, algorithm, "part CRCs must all use {algorithm}");
        bytes.extend_from_slice(&crc.to_be_bytes());
    }
    format!("{}-{}", algorithm.checksum(&bytes).to_base64(), part_crcs.len())
}

/// S3's FULL_OBJECT checksum of an object cut into parts: the part CRCs combined, base64. Part
/// lengths are needed because combining shifts each CRC by the length of what follows.
///
/// # Panics
/// If `part_crcs` and `part_lens` differ in length or the CRCs mix algorithms.
pub fn full_object_checksum(algorithm: CrcAlgorithm, part_crcs: &[Crc], part_lens: &[u64]) -> Crc {
    assert_eq!(part_crcs.len(), part_lens.len(), "one length per part CRC");
    part_crcs.iter().zip(part_lens).fold(algorithm.empty(), |whole, (crc, len)| whole.combine(*crc, *len))
}

/// Strips the quotes S3 puts around ETags (`"abc"` → `abc`), and a weak `W/` prefix.
pub fn unquote_etag(etag: &str) -> &str {
    let etag = etag.trim();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(etag)
}

/// Whether an ETag a server returned equals the one computed (quotes and hex case ignored).
pub fn etag_matches(returned: &str, expected: &str) -> bool {
    unquote_etag(returned).eq_ignore_ascii_case(unquote_etag(expected))
}

/// Whether a base64 checksum a server returned equals the computed one. S3 sometimes appends the
/// part count (`…-3`) to a FULL_OBJECT value it reports; that suffix is ignored here.
pub fn checksum_matches(returned: &str, expected: &Crc) -> bool {
    let returned = returned.trim();
    let value = returned.rsplit_once('-').map_or(returned, |(value, _)| value);
    value == expected.to_base64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etag_known_answers() {
        // Computed by hand: `md5sum` of each part, the hex joined, `xxd -r -p | md5sum`.
        let a = Md5::of(&vec![b'a'; 5 * 1024 * 1024]);
        let b = Md5::of(&vec![b'b'; 5 * 1024 * 1024]);
        let c = Md5::of(b"c");
        assert_eq!(a.to_hex(), "79b281060d337b9b2b84ccf390adcf74");
        assert_eq!(b.to_hex(), "74843a3ab193a389bced899402d99d5f");
        assert_eq!(multipart_etag(&[a, b, c]), "0a97f1336a2298a6c3e9adaa562a9eec-3");
        assert_eq!(multipart_etag(&[Md5::of(b"a"), Md5::of(b"b")]), "96e024ba2074fe77e8e965ba43a704be-2");
    }

    #[test]
    fn etag_comparison_ignores_quotes_and_case() {
        assert!(etag_matches("\"ABCdef-2\"", "abcdef-2"));
        assert!(etag_matches("W/\"abc\"", "abc"));
        assert!(!etag_matches("\"abc-2\"", "abc-3"));
    }

    #[test]
    fn full_object_checksum_is_the_crc_of_everything() {
        let alg = CrcAlgorithm::Crc64Nvme;
        let parts: [&[u8]; 3] = [b"one ", b"two ", b"three"];
        let crcs: Vec<Crc> = parts.iter().map(|p| alg.checksum(p)).collect();
        let lens: Vec<u64> = parts.iter().map(|p| p.len() as u64).collect();
        let whole = full_object_checksum(alg, &crcs, &lens);
        assert_eq!(whole, alg.checksum(b"one two three"));
        assert!(checksum_matches(&whole.to_base64(), &whole));
        assert!(checksum_matches(&format!("{}-3", whole.to_base64()), &whole));
        assert!(!checksum_matches("AAAAAAAAAAA=", &whole));
    }

    #[test]
    fn composite_checksum_known_answer() {
        // CRC32C("a") = 0xc1d04330 and CRC32C("b") = 0xd280b0c4; the composite is the CRC32C of those
        // 8 big-endian bytes, 0xcd1d0fe0 (checked with a bitwise reference implementation).
        let alg = CrcAlgorithm::Crc32c;
        let crcs = [alg.checksum(b"a"), alg.checksum(b"b")];
        assert_eq!(crcs[0].value, 0xc1d0_4330);
        assert_eq!(crcs[1].value, 0xd280_b0c4);
        assert_eq!(composite_checksum(alg, &crcs), "zR0P4A==-2");
    }
}
