//! The chunker: a stream of [`Bytes`] frames in, equal-sized [`Part`]s out, with their digests.
//!
//! Frames are never copied: a part is a rope of `Bytes` slices of the frames it was cut from
//! (`Bytes::split_to` shares the allocation). Each digest is computed once per byte, and only the
//! digests asked for ([`ChunkerOptions`]): a part's MD5 (for `Content-MD5` and its ETag) and CRC,
//! the whole object's MD5 and SHA-256. The whole object's CRC is *combined* from the part CRCs,
//! never hashed again.
//!
//! By default the chunker hashes as the bytes pass through it. With [`ChunkerOptions::defer`] it
//! only cuts: the caller hashes each part where it is sent ([`PartData::digests`], on the part's
//! task) and the whole object with a [`WholeHasher`] (on a thread of its own), then hands both
//! back ([`Chunker::finish_with`], [`ObjectSummary::set_part_digests`]): the same summary.
//!
//! The chunker enforces the plan: more bytes than the declared length, or than the maximum when the
//! length was not declared, is a [`ChunkError`]; that is how a streaming server enforces its size
//! limit without buffering.

pub use crate::checksum::{WholeDigests, WholeHasher};

use crate::checksum::{Crc, CrcAlgorithm, CrcHasher, Md5, Sha256};
use crate::plan::PartPlan;
use bytes::{Bytes, BytesMut};
use md5::Digest as _;

/// Which digests to compute, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkerOptions {
    /// Per-part CRC (and the whole object's, combined). `None` computes no CRC.
    pub crc: Option<CrcAlgorithm>,
    /// Per-part MD5 (`Content-MD5`, the part's ETag, the multipart ETag). Not needed when S3
    /// verifies each part by its CRC.
    pub part_md5: bool,
    /// Whole-object MD5 (the reference's `md5`). One MD5 pass over every byte.
    pub whole_md5: bool,
    /// Whole-object SHA-256. Costs about as much as an MD5 pass (see `cargo xtask bench core`).
    pub sha256: bool,
    /// Cut only, hash nothing: the caller computes the part digests ([`PartData::digests`]) and the
    /// whole-object ones (a [`WholeHasher`] from [`Chunker::whole_hasher`]) where it likes.
    pub defer: bool,
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

    /// The part's MD5 (if `md5`) and CRC (if `crc`), in one pass over the slices.
    pub fn digests(&self, md5: bool, crc: Option<CrcAlgorithm>) -> (Option<Md5>, Option<Crc>) {
        let mut md5 = md5.then(md5::Md5::new);
        let mut crc = crc.map(CrcHasher::new);
        for slice in &self.slices {
            if let Some(h) = &mut md5 {
                h.update(slice);
            }
            if let Some(h) = &mut crc {
                h.update(slice);
            }
        }
        (md5.map(|h| Md5(h.finalize().into())), crc.map(|h| h.finish()))
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

/// One completed part with the digests the chunker computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// S3 part number, from 1.
    pub number: u32,
    /// The bytes.
    pub data: PartData,
    /// MD5 of the bytes, when the chunker computed it (`part_md5` and not `defer`).
    pub md5: Option<Md5>,
    /// CRC of the bytes, when the chunker computed it (`crc` and not `defer`).
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
    /// Number of parts the object was cut into (at least 1).
    pub parts: u32,
    /// MD5 of the whole object, when asked for.
    pub md5: Option<Md5>,
    /// SHA-256 of the whole object, when asked for.
    pub sha256: Option<Sha256>,
    /// CRC of the whole object (S3's FULL_OBJECT checksum), when a CRC is computed.
    pub crc: Option<Crc>,
    /// Each part's MD5, in part order (empty when part MD5s are not computed).
    pub part_md5s: Vec<Md5>,
    /// Each part's CRC, in part order (empty when no CRC is computed).
    pub part_crcs: Vec<Crc>,
}

impl ObjectSummary {
    /// Number of parts the object was cut into (at least 1).
    pub fn part_count(&self) -> u32 {
        self.parts
    }

    /// The ETag S3 reports for this object uploaded as a multipart upload of these parts, when
    /// every part's MD5 is known.
    pub fn multipart_etag(&self) -> Option<String> {
        (self.part_md5s.len() == self.parts as usize).then(|| crate::s3::multipart_etag(&self.part_md5s))
    }

    /// Records the digests of parts hashed outside the chunker: every part in order with its
    /// length, MD5 and CRC. The whole CRC is combined; a missing MD5 (CRC) records no MD5s (CRCs).
    pub fn set_part_digests(&mut self, parts: &[(u64, Option<Md5>, Option<Crc>)]) {
        let md5s: Option<Vec<Md5>> = parts.iter().map(|(_, md5, _)| *md5).collect();
        self.part_md5s = md5s.unwrap_or_default();
        let crcs: Option<Vec<Crc>> = parts.iter().map(|(_, _, crc)| *crc).collect();
        self.part_crcs = crcs.unwrap_or_default();
        self.crc = match self.part_crcs.first() {
            Some(first) if !parts.is_empty() => Some(
                parts
                    .iter()
                    .zip(&self.part_crcs)
                    .fold(first.algorithm.empty(), |whole, ((len, _, _), crc)| whole.combine(*crc, *len)),
            ),
            _ => None,
        };
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
    /// [`Chunker::finish`] on a chunker that deferred its hashing (use [`Chunker::finish_with`]).
    #[error("the whole-object digests were deferred to the caller")]
    DigestsDeferred,
}

/// Cuts frames into parts. See the [module docs](self).
#[derive(Debug)]
pub struct Chunker {
    plan: PartPlan,
    options: ChunkerOptions,
    current: PartData,
    part_md5: Option<md5::Md5>,
    part_crc: Option<CrcHasher>,
    whole: Option<WholeHasher>,
    whole_crc: Option<Crc>,
    part_md5s: Vec<Md5>,
    part_crcs: Vec<Crc>,
    parts: u32,
    received: u64,
}

impl Chunker {
    /// A chunker following `plan`.
    pub fn new(plan: PartPlan, options: ChunkerOptions) -> Self {
        let inline = !options.defer;
        Self {
            plan,
            options,
            current: PartData::default(),
            part_md5: (inline && options.part_md5).then(md5::Md5::new),
            part_crc: options.crc.filter(|_| inline).map(CrcHasher::new),
            whole: inline.then(|| WholeHasher::new(options.whole_md5, options.sha256)),
            whole_crc: options.crc.filter(|_| inline).map(CrcAlgorithm::empty),
            part_md5s: Vec::new(),
            part_crcs: Vec::new(),
            parts: 0,
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

    /// A fresh hasher for the whole-object digests the options ask for, for a caller that defers
    /// them (feed it every frame given to [`push`](Self::push), in order).
    pub fn whole_hasher(&self) -> WholeHasher {
        WholeHasher::new(self.options.whole_md5, self.options.sha256)
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
        self.parts
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
    /// already emitted) and the whole-object summary. A chunker that defers its hashing ends with
    /// [`finish_with`](Self::finish_with) instead.
    ///
    /// # Errors
    /// [`ChunkError::TooShort`] when fewer bytes arrived than declared;
    /// [`ChunkError::DigestsDeferred`] when the chunker hashed nothing.
    pub fn finish(mut self) -> Result<(Option<Part>, ObjectSummary), ChunkError> {
        let whole = self.whole.take().ok_or(ChunkError::DigestsDeferred)?.finish();
        self.finish_with(whole)
    }

    /// Ends the input of a chunker whose caller computed the whole-object digests (`whole`).
    ///
    /// # Errors
    /// [`ChunkError::TooShort`] when fewer bytes arrived than declared.
    pub fn finish_with(mut self, whole: WholeDigests) -> Result<(Option<Part>, ObjectSummary), ChunkError> {
        if let Some(declared) = self.plan.declared_len
            && self.received < declared
        {
            return Err(ChunkError::TooShort { received: self.received, declared });
        }
        let last = if !self.current.is_empty() || self.parts == 0 { Some(self.seal()?) } else { None };
        let summary = ObjectSummary {
            len: self.received,
            part_size: self.plan.part_size,
            parts: self.parts,
            md5: whole.md5,
            sha256: whole.sha256,
            crc: self.whole_crc,
            part_md5s: self.part_md5s,
            part_crcs: self.part_crcs,
        };
        Ok((last, summary))
    }

    fn absorb(&mut self, slice: Bytes) {
        if let Some(md5) = &mut self.part_md5 {
            md5.update(&slice);
        }
        if let Some(crc) = &mut self.part_crc {
            crc.update(&slice);
        }
        if let Some(whole) = &mut self.whole {
            whole.update(&slice);
        }
        self.current.push(slice);
    }

    /// Closes the current part: its digests, its number, and the running whole-object CRC. Called by
    /// `push` when a full part is followed by more data, and by `finish` for the last part.
    fn seal(&mut self) -> Result<Part, ChunkError> {
        let number = self.parts + 1;
        if number > self.plan.max_parts() {
            return Err(ChunkError::TooManyParts { max: self.plan.max_parts() });
        }
        self.parts = number;
        let data = std::mem::take(&mut self.current);
        let md5 = self.part_md5.as_mut().map(|h| Md5(std::mem::take(h).finalize().into()));
        let crc = self.part_crc.as_mut().map(|hasher| {
            let crc = hasher.finish();
            *hasher = CrcHasher::new(crc.algorithm);
            crc
        });
        if let Some(crc) = crc {
            self.part_crcs.push(crc);
            self.whole_crc = self.whole_crc.map(|whole| whole.combine(crc, data.len()));
        }
        if let Some(md5) = md5 {
            self.part_md5s.push(md5);
        }
        Ok(Part { number, data, md5, crc })
    }
}

#[cfg(test)]
mod tests;
