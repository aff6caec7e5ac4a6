//! Digest values and their wire encodings.
//!
//! S3 wants MD5s as base64 in `Content-MD5` and as hex in ETags, and flexible checksums as base64 of
//! the big-endian value (`x-amz-checksum-crc32c`, `x-amz-checksum-crc64nvme`). These types carry
//! the raw value and render each encoding, so no caller formats a digest by hand.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::fmt;

/// The CRC used next to MD5 for S3's flexible checksums. Both can be combined from part CRCs into
/// the whole object's CRC without reading the data again (S3's FULL_OBJECT checksum type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrcAlgorithm {
    /// CRC-32C (Castagnoli), S3's `CRC32C`.
    Crc32c,
    /// CRC-64/NVME, S3's `CRC64NVME`.
    Crc64Nvme,
}

impl CrcAlgorithm {
    /// The name S3 uses (`CRC32C`, `CRC64NVME`).
    pub fn s3_name(self) -> &'static str {
        match self {
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
        }
    }

    /// The header carrying this checksum (`x-amz-checksum-crc32c`, …).
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
        }
    }

    pub(crate) fn fast(self) -> crc_fast::CrcAlgorithm {
        match self {
            Self::Crc32c => crc_fast::CrcAlgorithm::Crc32Iscsi,
            Self::Crc64Nvme => crc_fast::CrcAlgorithm::Crc64Nvme,
        }
    }

    /// CRC of `data` in one go.
    pub fn checksum(self, data: &[u8]) -> Crc {
        Crc { algorithm: self, value: crc_fast::checksum(self.fast(), data) }
    }

    /// The CRC of the empty input.
    pub fn empty(self) -> Crc {
        self.checksum(&[])
    }
}

impl fmt::Display for CrcAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.s3_name())
    }
}

/// A finished CRC value with its algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Crc {
    /// Which CRC.
    pub algorithm: CrcAlgorithm,
    /// The value (CRC-32C in the low 32 bits).
    pub value: u64,
}

impl Crc {
    /// Big-endian bytes of the value, 4 or 8 of them, as S3 encodes it.
    pub fn to_be_bytes(self) -> Vec<u8> {
        match self.algorithm {
            CrcAlgorithm::Crc32c => (self.value as u32).to_be_bytes().to_vec(),
            CrcAlgorithm::Crc64Nvme => self.value.to_be_bytes().to_vec(),
        }
    }

    /// Base64 of the big-endian value: the `x-amz-checksum-*` header value.
    pub fn to_base64(self) -> String {
        B64.encode(self.to_be_bytes())
    }

    /// The CRC of `self`'s data followed by `next`'s data, where `next` covered `next_len` bytes.
    ///
    /// # Panics
    /// If the two CRCs use different algorithms (a programming error).
    pub fn combine(self, next: Crc, next_len: u64) -> Crc {
        assert_eq!(self.algorithm, next.algorithm, "cannot combine CRCs of different algorithms");
        let value = crc_fast::checksum_combine(self.algorithm.fast(), self.value, next.value, next_len);
        Crc { algorithm: self.algorithm, value }
    }
}

impl fmt::Display for Crc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.to_base64())
    }
}

/// A running CRC.
#[derive(Clone, Copy)]
pub struct CrcHasher {
    algorithm: CrcAlgorithm,
    inner: crc_fast::Digest,
}

impl fmt::Debug for CrcHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrcHasher").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl CrcHasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: CrcAlgorithm) -> Self {
        Self { algorithm, inner: crc_fast::Digest::new(algorithm.fast()) }
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// The CRC of everything fed so far.
    pub fn finish(&self) -> Crc {
        Crc { algorithm: self.algorithm, value: self.inner.finalize() }
    }
}

/// A 16-byte MD5 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Md5(pub [u8; 16]);

impl Md5 {
    /// MD5 of `data` in one go.
    pub fn of(data: &[u8]) -> Self {
        use md5::Digest as _;
        Self(md5::Md5::digest(data).into())
    }

    /// Base64, as in the `Content-MD5` header.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Lower-case hex, as in a part's ETag.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses a `Content-MD5` value (base64 of 16 bytes).
    pub fn from_base64(text: &str) -> Option<Self> {
        let raw = B64.decode(text.trim()).ok()?;
        Some(Self(raw.try_into().ok()?))
    }

    /// Parses 32 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        Some(Self(parse_hex::<16>(text)?))
    }
}

impl fmt::Debug for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Md5({})", self.to_hex())
    }
}

impl fmt::Display for Md5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A running MD5, for checking a stream against a stored digest.
#[derive(Debug, Clone, Default)]
pub struct Md5Hasher(md5::Md5);

impl Md5Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        md5::Digest::update(&mut self.0, data);
    }

    /// The MD5 of everything fed.
    pub fn finish(self) -> Md5 {
        Md5(md5::Digest::finalize(self.0).into())
    }
}

/// Hashes of a whole object that cannot be combined from its parts: MD5 and SHA-256, each when
/// asked for. Feed it every byte in order.
#[derive(Debug, Clone)]
pub struct WholeHasher {
    md5: Option<md5::Md5>,
    sha256: Option<sha2::Sha256>,
}

/// What a [`WholeHasher`] computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeDigests {
    /// MD5 of the whole object, when asked for.
    pub md5: Option<Md5>,
    /// SHA-256 of the whole object, when asked for.
    pub sha256: Option<Sha256>,
}

impl WholeHasher {
    /// A hasher computing MD5 if `md5` and SHA-256 if `sha256` (neither: a hasher of nothing).
    pub fn new(md5: bool, sha256: bool) -> Self {
        Self {
            md5: md5.then(<md5::Md5 as md5::Digest>::new),
            sha256: sha256.then(<sha2::Sha256 as sha2::Digest>::new),
        }
    }

    /// Whether it computes anything at all.
    pub fn is_empty(&self) -> bool {
        self.md5.is_none() && self.sha256.is_none()
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        if let Some(md5) = &mut self.md5 {
            md5::Digest::update(md5, data);
        }
        if let Some(sha) = &mut self.sha256 {
            sha2::Digest::update(sha, data);
        }
    }

    /// The digests of everything fed.
    pub fn finish(self) -> WholeDigests {
        WholeDigests {
            md5: self.md5.map(|h| Md5(md5::Digest::finalize(h).into())),
            sha256: self.sha256.map(|h| Sha256(sha2::Digest::finalize(h).into())),
        }
    }
}

/// A 32-byte SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// SHA-256 of `data` in one go.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(data).into())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Base64, as in `Repr-Digest: sha-256=:…:` and `x-amz-checksum-sha256`.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Parses base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Option<Self> {
        let raw = B64.decode(text.trim()).ok()?;
        Some(Self(raw.try_into().ok()?))
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        Some(Self(parse_hex::<32>(text)?))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// `N` bytes from exactly `2 × N` hex digits (either case).
fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    ::hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Base64 (standard alphabet, padded) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // RFC 1321 and the CRC catalogue's check values for "123456789".
        assert_eq!(Md5::of(b"").to_hex(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(Md5::of(b"").to_base64(), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(
            Sha256::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(CrcAlgorithm::Crc32c.checksum(b"123456789").value, 0xe306_9283);
        assert_eq!(CrcAlgorithm::Crc64Nvme.checksum(b"123456789").value, 0xae8b_1486_0a79_9888);
        // S3's encoding: base64 of the big-endian bytes.
        assert_eq!(CrcAlgorithm::Crc32c.checksum(b"123456789").to_base64(), "4waSgw==");
    }

    #[test]
    fn combining_equals_hashing_the_concatenation() {
        for alg in [CrcAlgorithm::Crc32c, CrcAlgorithm::Crc64Nvme] {
            let whole = alg.checksum(b"hello, world");
            let combined = alg.checksum(b"hello").combine(alg.checksum(b", world"), 7);
            assert_eq!(whole, combined);
            assert_eq!(alg.empty().combine(whole, 12), whole);
        }
    }

    #[test]
    fn a_whole_hasher_computes_only_the_digests_asked_for() {
        let digests = |md5, sha256| {
            let mut h = WholeHasher::new(md5, sha256);
            h.update(b"fer");
            h.update(b"ry");
            (h.is_empty(), h.finish())
        };
        let (md5, sha) = (Some(Md5::of(b"ferry")), Some(Sha256::of(b"ferry")));
        assert_eq!(digests(true, true), (false, WholeDigests { md5, sha256: sha }));
        assert_eq!(digests(true, false), (false, WholeDigests { md5, sha256: None }));
        assert_eq!(digests(false, true), (false, WholeDigests { md5: None, sha256: sha }));
        assert_eq!(digests(false, false), (true, WholeDigests { md5: None, sha256: None }));
    }

    #[test]
    fn running_md5_equals_one_shot() {
        let mut h = Md5Hasher::new();
        h.update(b"fer");
        h.update(b"ry");
        assert_eq!(h.finish(), Md5::of(b"ferry"));
    }

    #[test]
    fn encodings_round_trip() {
        let md5 = Md5::of(b"ferry");
        assert_eq!(Md5::from_hex(&md5.to_hex()), Some(md5));
        assert_eq!(Md5::from_hex(&md5.to_hex().to_uppercase()), Some(md5));
        assert_eq!(Md5::from_base64(&md5.to_base64()), Some(md5));
        assert_eq!(Md5::from_base64("AAAA"), None);
        assert_eq!(Md5::from_hex("zz"), None);
        let sha = Sha256::of(b"ferry");
        assert_eq!(Sha256::from_hex(&sha.to_hex()), Some(sha));
        assert_eq!(Sha256::from_base64(&sha.to_base64()), Some(sha));
    }
}
