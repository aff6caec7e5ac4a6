//! The whole-file digests carried across requests: the MD5 and the SHA-256, each when asked, of the
//! bytes in committed parts, saved as the hash's own serialised state (RustCrypto's
//! `SerializableState`) in the state object at every committed part boundary, and restored by
//! whichever process takes the next request. The FULL_OBJECT CRC needs no carry: it is combined
//! from the part CRCs recorded with the parts, as for a single-request upload.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ferry_core::checksum::{Md5, Sha256, WholeDigests};
use md5::digest::common::hazmat::SerializableState;

/// A running whole-file hash that can be saved and restored.
#[derive(Debug, Clone)]
pub struct HashCarry {
    md5: Option<md5::Md5>,
    sha256: Option<sha2::Sha256>,
}

/// A saved hash state that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the saved hash state is damaged")]
pub struct DamagedHashState;

impl HashCarry {
    /// A fresh hash of nothing: MD5 if `md5`, SHA-256 if `sha256`.
    pub fn new(md5: bool, sha256: bool) -> Self {
        Self {
            md5: md5.then(<md5::Md5 as md5::Digest>::new),
            sha256: sha256.then(<sha2::Sha256 as sha2::Digest>::new),
        }
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

    /// The state as text: base64 of the MD5 state (nothing when the MD5 is not carried), then `.`
    /// and the SHA-256 state when carried.
    pub fn save(&self) -> String {
        let mut text = self.md5.as_ref().map(|md5| B64.encode(md5.serialize())).unwrap_or_default();
        if let Some(sha) = &self.sha256 {
            text.push('.');
            text.push_str(&B64.encode(sha.serialize()));
        }
        text
    }

    /// The hash [`save`](Self::save) wrote.
    ///
    /// # Errors
    /// [`DamagedHashState`] when `text` is not a saved state.
    pub fn restore(text: &str) -> Result<Self, DamagedHashState> {
        let (md5_text, sha_text) = match text.split_once('.') {
            Some((m, s)) => (m, Some(s)),
            None => (text, None),
        };
        let md5 = Some(md5_text).filter(|t| !t.is_empty()).map(decode::<md5::Md5>).transpose()?;
        let sha256 = sha_text.map(decode::<sha2::Sha256>).transpose()?;
        Ok(Self { md5, sha256 })
    }

    /// The digests of everything fed.
    pub fn finish(self) -> WholeDigests {
        WholeDigests {
            md5: self.md5.map(|h| Md5(md5::Digest::finalize(h).into())),
            sha256: self.sha256.map(|h| Sha256(sha2::Digest::finalize(h).into())),
        }
    }
}

fn decode<H: SerializableState>(text: &str) -> Result<H, DamagedHashState> {
    let raw = B64.decode(text).map_err(|_| DamagedHashState)?;
    let array = md5::digest::common::hazmat::SerializedState::<H>::try_from(raw.as_slice())
        .map_err(|_| DamagedHashState)?;
    H::deserialize(&array).map_err(|_| DamagedHashState)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::checksum::WholeHasher;

    #[test]
    fn a_saved_hash_continues_where_it_stopped() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for (md5, sha256) in [(true, false), (true, true), (false, true), (false, false)] {
            let mut whole = WholeHasher::new(md5, sha256);
            whole.update(&data);
            let expected = whole.finish();
            // Saved and restored at several boundaries, block-aligned or not.
            let mut carry = HashCarry::new(md5, sha256);
            let mut at = 0;
            for cut in [0, 64, 1000, 65_536, 299_999, 300_000] {
                carry.update(&data[at..cut]);
                carry = HashCarry::restore(&carry.save()).unwrap();
                at = cut;
            }
            assert_eq!(carry.finish(), expected, "md5 carried: {md5}, sha256 carried: {sha256}");
        }
        // The default's format is unchanged: the MD5 state alone, or with `.` and the SHA-256's.
        assert!(!HashCarry::new(true, false).save().contains('.'));
        assert!(HashCarry::new(false, true).save().starts_with('.'));
        assert_eq!(HashCarry::new(false, false).save(), "");
    }

    #[test]
    fn a_damaged_state_is_refused() {
        assert_eq!(HashCarry::restore("not base64!").unwrap_err(), DamagedHashState);
        assert!(HashCarry::restore(&B64.encode([1u8; 5])).is_err());
        let saved = HashCarry::new(true, true).save();
        let md5_only = saved.split('.').next().unwrap();
        assert!(HashCarry::restore(&format!("{md5_only}.{md5_only}")).is_err());
    }
}
