//! The chunker: a stream of [`Bytes`] frames in, equal-sized hashed [`Part`]s out.
//!
//! Frames are never copied: a part is a rope of `Bytes` slices of the frames it was cut from
//! (`Bytes::split_to` shares the allocation). Each byte is hashed exactly once per digest while it
//! passes through: into its part's MD5 and CRC and into the whole object's MD5 (and SHA-256 when
//! asked for). The whole object's CRC is *combined* from the part CRCs, not hashed again.
//!
//! The chunker enforces the plan: more bytes than the declared length, or than the maximum when the
//! length was not declared, is a [`ChunkError`]; that is how a streaming server enforces its size
//! limit without buffering.

use crate::checksum::{Crc, CrcAlgorithm, CrcHasher, Md5, Sha256};
use crate::plan::PartPlan;
use bytes::{Bytes, BytesMut};
use md5::Digest as _;

/// Which optional digests to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkerOptions {
    /// Per-part CRC (and the whole object's, combined). `None` computes no CRC.
    pub crc: Option<CrcAlgorithm>,
    /// Whole-object SHA-256. Costs about as much as the MD5 pass (see `cargo xtask bench core`).
    pub sha256: bool,
}

/// A part's bytes: the slices of input frames it was cut from, in order, uncopied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartData {
    slices: Vec<Bytes>,
    len: u64,
}

impl PartData {
    fn push(&mut self, slice: Bytes) {
        self.len += slice.len() as u64;
        self.slices.push(slice);
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the part holds no bytes (only ever the single part of an empty file).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slices in order.
    pub fn slices(&self) -> &[Bytes] {
        &self.slices
    }

    /// The bytes as one contiguous buffer: free when the part is a single slice, otherwise one copy.
    pub fn to_contiguous(&self) -> Bytes {
        match self.slices.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = BytesMut::with_capacity(self.len as usize);
                for slice in many {
                    out.extend_from_slice(slice);
                }
                out.freeze()
            }
        }
    }
}

/// One completed part with its digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// S3 part number, from 1.
    pub number: u32,
    /// The bytes.
    pub data: PartData,
    /// MD5 of the bytes (`Content-MD5`, and the part's ETag without SSE-KMS/SSE-C).
    pub md5: Md5,
    /// CRC of the bytes, when the chunker computes one.
    pub crc: Option<Crc>,
}

impl Part {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.data.len()
    }

    /// Whether the part is empty (the one part of an empty file).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// What the chunker knows about the whole object once the input ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    /// Total length in bytes.
    pub len: u64,
    /// Part size of the plan.
    pub part_size: u64,
    /// MD5 of the whole object.
    pub md5: Md5,
    /// SHA-256 of the whole object, when asked for.
    pub sha256: Option<Sha256>,
    /// CRC of the whole object (S3's FULL_OBJECT checksum), when asked for.
    pub crc: Option<Crc>,
    /// Each part's MD5, in part order.
    pub part_md5s: Vec<Md5>,
    /// Each part's CRC, in part order (empty when no CRC is computed).
    pub part_crcs: Vec<Crc>,
}

impl ObjectSummary {
    /// Number of parts the object was cut into (at least 1).
    pub fn part_count(&self) -> u32 {
        self.part_md5s.len() as u32
    }

    /// The ETag S3 reports for this object uploaded as a multipart upload of these parts.
    pub fn multipart_etag(&self) -> String {
        crate::s3::multipart_etag(&self.part_md5s)
    }
}

/// Why the input broke the plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// More bytes arrived than the declared length (or than the maximum, when none was declared).
    #[error("received more than the {limit} bytes allowed")]
    TooLong {
        /// The declared length or the maximum.
        limit: u64,
        /// Whether `limit` was the declared length (false: the configured maximum).
        declared: bool,
    },
    /// The input ended before the declared length.
    #[error("input ended after {received} of the {declared} bytes declared")]
    TooShort {
        /// Bytes received.
        received: u64,
        /// Declared length.
        declared: u64,
    },
    /// The plan's part count would be exceeded (cannot happen with a plan from `plan_parts`).
    #[error("more than the {max} parts planned")]
    TooManyParts {
        /// Planned maximum.
        max: u32,
    },
}

/// Cuts frames into parts. See the [module docs](self).
#[derive(Debug)]
pub struct Chunker {
    plan: PartPlan,
    options: ChunkerOptions,
    current: PartData,
    part_md5: md5::Md5,
    part_crc: Option<CrcHasher>,
    whole_md5: md5::Md5,
    whole_sha256: Option<sha2::Sha256>,
    whole_crc: Option<Crc>,
    part_md5s: Vec<Md5>,
    part_crcs: Vec<Crc>,
    received: u64,
}

impl Chunker {
    /// A chunker following `plan`.
    pub fn new(plan: PartPlan, options: ChunkerOptions) -> Self {
        Self {
            plan,
            options,
            current: PartData::default(),
            part_md5: md5::Md5::new(),
            part_crc: options.crc.map(CrcHasher::new),
            whole_md5: md5::Md5::new(),
            whole_sha256: options.sha256.then(sha2::Sha256::new),
            whole_crc: options.crc.map(CrcAlgorithm::empty),
            part_md5s: Vec::new(),
            part_crcs: Vec::new(),
            received: 0,
        }
    }

    /// The plan followed.
    pub fn plan(&self) -> &PartPlan {
        &self.plan
    }

    /// The digests computed.
    pub fn options(&self) -> ChunkerOptions {
        self.options
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes held in the part being filled.
    pub fn buffered(&self) -> u64 {
        self.current.len()
    }

    /// Number of parts emitted so far.
    pub fn parts_emitted(&self) -> u32 {
        self.part_md5s.len() as u32
    }

    /// Feeds the next frame; returns the parts it completed (usually none, several when a frame is
    /// larger than a part).
    ///
    /// # Errors
    /// [`ChunkError::TooLong`] when the frame takes the input past the declared length or the
    /// maximum; the chunker keeps nothing of that frame and should be dropped.
    pub fn push(&mut self, mut frame: Bytes) -> Result<Vec<Part>, ChunkError> {
        let new_total = self.received + frame.len() as u64;
        if new_total > self.plan.max_len {
            return Err(ChunkError::TooLong {
                limit: self.plan.max_len,
                declared: self.plan.declared_len.is_some(),
            });
        }
        self.received = new_total;
        let mut done = Vec::new();
        while !frame.is_empty() {
            // A full part is emitted only once more data proves it is not the last one: an upload
            // whose length is an exact multiple of the part size then ends with a full last part
            // rather than an empty one, and a one-part file stays a single PUT.
            if self.current.len() == self.plan.part_size {
                done.push(self.seal()?);
            }
            let room = (self.plan.part_size - self.current.len()) as usize;
            let slice = if frame.len() > room { frame.split_to(room) } else { std::mem::take(&mut frame) };
            self.absorb(slice);
        }
        Ok(done)
    }

    /// Ends the input: returns the last part (`None` if the input ended exactly at a part boundary
    /// already emitted) and the whole-object summary.
    ///
    /// # Errors
    /// [`ChunkError::TooShort`] when fewer bytes arrived than declared.
    pub fn finish(mut self) -> Result<(Option<Part>, ObjectSummary), ChunkError> {
        if let Some(declared) = self.plan.declared_len
            && self.received < declared
        {
            return Err(ChunkError::TooShort { received: self.received, declared });
        }
        let last =
            if !self.current.is_empty() || self.part_md5s.is_empty() { Some(self.seal()?) } else { None };
        let summary = ObjectSummary {
            len: self.received,
            part_size: self.plan.part_size,
            md5: Md5(self.whole_md5.finalize().into()),
            sha256: self.whole_sha256.map(|h| Sha256(h.finalize().into())),
            crc: self.whole_crc,
            part_md5s: self.part_md5s,
            part_crcs: self.part_crcs,
        };
        Ok((last, summary))
    }

    fn absorb(&mut self, slice: Bytes) {
        self.part_md5.update(&slice);
        self.whole_md5.update(&slice);
        if let Some(crc) = &mut self.part_crc {
            crc.update(&slice);
        }
        if let Some(sha) = &mut self.whole_sha256 {
            sha.update(&slice);
        }
        self.current.push(slice);
    }

    /// Closes the current part: its digests, its number, and the running whole-object CRC. Called by
    /// `push` when a full part is followed by more data, and by `finish` for the last part.
    fn seal(&mut self) -> Result<Part, ChunkError> {
        let number = self.part_md5s.len() as u32 + 1;
        if number > self.plan.max_parts() {
            return Err(ChunkError::TooManyParts { max: self.plan.max_parts() });
        }
        let data = std::mem::take(&mut self.current);
        let md5 = Md5(std::mem::replace(&mut self.part_md5, md5::Md5::new()).finalize().into());
        let crc = self.part_crc.as_mut().map(|hasher| {
            let crc = hasher.finish();
            *hasher = CrcHasher::new(crc.algorithm);
            crc
        });
        if let Some(crc) = crc {
            self.part_crcs.push(crc);
            self.whole_crc = self.whole_crc.map(|whole| whole.combine(crc, data.len()));
        }
        self.part_md5s.push(md5);
        Ok(Part { number, data, md5, crc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{MIB, PlanLimits, plan_parts};

    fn run(data: &[u8], frame: usize, declared: bool) -> (Vec<Part>, ObjectSummary) {
        let limits = PlanLimits { preferred_part_size: 5 * MIB, max_file_size: 64 * MIB };
        let plan = plan_parts(declared.then_some(data.len() as u64), &limits).unwrap();
        let mut chunker =
            Chunker::new(plan, ChunkerOptions { crc: Some(CrcAlgorithm::Crc32c), sha256: true });
        let mut parts = Vec::new();
        for f in data.chunks(frame.max(1)) {
            parts.extend(chunker.push(Bytes::copy_from_slice(f)).unwrap());
        }
        let (last, summary) = chunker.finish().unwrap();
        parts.extend(last);
        (parts, summary)
    }

    #[test]
    fn exact_multiple_ends_with_a_full_part() {
        let data = vec![1u8; 10 * MIB as usize];
        let (parts, summary) = run(&data, 1 << 20, true);
        assert_eq!(parts.iter().map(Part::len).collect::<Vec<_>>(), [5 * MIB, 5 * MIB]);
        assert_eq!(summary.part_count(), 2);
    }

    #[test]
    fn empty_input_is_one_empty_part() {
        let (parts, summary) = run(&[], 1, true);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].is_empty());
        assert_eq!(parts[0].md5, Md5::of(b""));
        assert_eq!(summary.md5, Md5::of(b""));
        assert_eq!(summary.crc, Some(CrcAlgorithm::Crc32c.empty()));
    }

    #[test]
    fn a_big_frame_becomes_several_parts_without_copying() {
        let frame = Bytes::from(vec![9u8; 11 * MIB as usize]);
        let base = frame.as_ptr();
        let plan =
            plan_parts(None, &PlanLimits { preferred_part_size: 5 * MIB, max_file_size: 64 * MIB }).unwrap();
        let mut chunker = Chunker::new(plan, ChunkerOptions::default());
        let parts = chunker.push(frame).unwrap();
        assert_eq!(parts.len(), 2);
        // Both parts point into the original allocation.
        assert_eq!(parts[0].data.slices()[0].as_ptr(), base);
        assert_eq!(parts[1].data.slices()[0].as_ptr(), base.wrapping_add(5 * MIB as usize));
        let (last, _) = chunker.finish().unwrap();
        assert_eq!(last.unwrap().len(), MIB);
    }

    #[test]
    fn declared_length_is_enforced_both_ways() {
        let plan = plan_parts(Some(10), &PlanLimits::default()).unwrap();
        let mut chunker = Chunker::new(plan, ChunkerOptions::default());
        chunker.push(Bytes::from_static(b"12345")).unwrap();
        assert_eq!(
            chunker.push(Bytes::from_static(b"123456")),
            Err(ChunkError::TooLong { limit: 10, declared: true })
        );
        assert_eq!(chunker.finish().unwrap_err(), ChunkError::TooShort { received: 5, declared: 10 });
    }

    #[test]
    fn maximum_is_enforced_without_a_declared_length() {
        let plan = plan_parts(None, &PlanLimits { preferred_part_size: 5 * MIB, max_file_size: 4 }).unwrap();
        let mut chunker = Chunker::new(plan, ChunkerOptions::default());
        assert_eq!(
            chunker.push(Bytes::from_static(b"12345")),
            Err(ChunkError::TooLong { limit: 4, declared: false })
        );
    }

    #[test]
    fn contiguous_copy_only_when_needed() {
        let one = Bytes::from_static(b"abc");
        let mut data = PartData::default();
        data.push(one.clone());
        assert_eq!(data.to_contiguous().as_ptr(), one.as_ptr());
        data.push(Bytes::from_static(b"def"));
        assert_eq!(&data.to_contiguous()[..], b"abcdef");
    }
}
