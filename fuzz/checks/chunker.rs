//! Fuzz check of `ferry_core::chunk::Chunker` under `ferry_core::plan::plan_parts`: any input, any
//! frame splits, declared or not, declared right or wrong. Shared by the fuzz target and by
//! ferry-core's regression test (`tests/it/fuzz_chunker.rs`), so both assert the same things.
//!
//! Input layout: `[flags, delta, stretch_lo, stretch_hi, cut_count, cuts (2 bytes each)…, payload…]`
//! (a short input is padded with zeros). `flags`: bit 0 declares the length, bit 1 picks CRC-64/NVME
//! over CRC-32C, bit 2 asks for SHA-256, bits 3–4 make the declared length
//! (or, undeclared, the maximum) `len`, `len + delta` or `len - delta`, bits 5–7 all set stretch the
//! payload (repeated) to 5 MiB ± 32 KiB (by `stretch`), or 10 MiB ± 32 KiB when `delta` is 0xf0 or
//! more, so that inputs cross part boundaries. Cut points are scaled to the data's length.

use bytes::Bytes;
use ferry_core::checksum::{CrcAlgorithm, Md5, Sha256};
use ferry_core::chunk::{ChunkError, Chunker, ChunkerOptions, Part};
use ferry_core::plan::{MIB, MIN_PART_SIZE, PlanError, PlanLimits, plan_parts};

/// Runs one input; panics when an invariant breaks.
pub(crate) fn check(input: &[u8]) {
    let byte = |i: usize| input.get(i).copied().unwrap_or(0);
    let flags = byte(0);
    let delta = u64::from(byte(1));
    let stretch = u64::from(u16::from_le_bytes([byte(2), byte(3)]));
    let cut_count = usize::from(byte(4) % 32);
    let cuts_end = (5 + 2 * cut_count).min(input.len().max(5));
    let raw_cuts: Vec<u16> = input
        .get(5..cuts_end)
        .unwrap_or_default()
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    let payload = input.get(cuts_end..).unwrap_or_default();

    // The data: the payload itself, or (flags bits 5-7 all set) the payload repeated to straddle
    // the first part boundary, or the second one as well when `delta` is 0xf0 or more.
    let data: Bytes = if flags >> 5 == 7 {
        let boundaries = if delta >= 0xf0 { 2 } else { 1 };
        let len = (boundaries * MIN_PART_SIZE + stretch).saturating_sub(32_768) as usize;
        let mut data = if payload.is_empty() { vec![0x5a] } else { payload.to_vec() };
        while data.len() < len {
            data.extend_from_within(..data.len().min(len - data.len()));
        }
        data.truncate(len);
        data.into()
    } else {
        Bytes::copy_from_slice(payload)
    };
    let len = data.len() as u64;

    let declare = flags & 1 == 1;
    let crc_algorithm = if flags & 2 == 2 { CrcAlgorithm::Crc64Nvme } else { CrcAlgorithm::Crc32c };
    let sha256 = flags & 4 == 4;
    // The whole-file MD5 is left out (a CRC-only configuration) when SHA-256 is on and no length declared.
    let whole_md5 = flags & 5 != 4;
    let bound = match (flags >> 3) & 3 {
        1 => len + delta,
        2 => len.saturating_sub(delta),
        _ => len,
    };
    // Declared: `bound` is the declared length under a roomy maximum. Undeclared: `bound` is the maximum.
    let limits = PlanLimits {
        preferred_part_size: MIN_PART_SIZE,
        max_file_size: if declare { 64 * MIB } else { bound },
    };
    let declared_len = declare.then_some(bound);
    let plan = match plan_parts(declared_len, &limits) {
        Ok(plan) => plan,
        Err(PlanError::FileTooLarge { len: l, max }) => {
            assert!(declare && l == bound && max == limits.max_file_size && l > max);
            return;
        }
        Err(other) => panic!("unexpected plan error {other:?} for {declared_len:?} under {limits:?}"),
    };
    assert_eq!(plan.part_size, MIN_PART_SIZE, "small files get the preferred part size");
    assert_eq!(plan.max_len, bound);
    assert_eq!(plan.declared_len, declared_len);

    // Frames: the data cut at the chosen points (scaled to the data's length).
    let mut points: Vec<usize> =
        raw_cuts.iter().map(|&c| (u64::from(c) * (len + 1) / 65_536) as usize).collect();
    points.extend([0, data.len()]);
    points.sort_unstable();
    let frames: Vec<Bytes> = points.windows(2).map(|w| data.slice(w[0]..w[1])).collect();

    let options =
        ChunkerOptions { crc: Some(crc_algorithm), part_md5: true, whole_md5, sha256, defer: false };
    let mut chunker = Chunker::new(plan, options);
    let mut parts: Vec<Part> = Vec::new();
    let mut fed = 0u64;
    for frame in frames {
        let frame_len = frame.len() as u64;
        match chunker.push(frame) {
            Ok(done) => {
                assert!(
                    fed + frame_len <= plan.max_len,
                    "accepted {} bytes over {}",
                    fed + frame_len,
                    plan.max_len
                );
                fed += frame_len;
                parts.extend(done);
            }
            Err(error) => {
                assert!(fed + frame_len > plan.max_len, "refused a frame within the limit: {error:?}");
                assert_eq!(error, ChunkError::TooLong { limit: plan.max_len, declared: declare });
                assert!(len > bound, "only an input longer than its bound is refused");
                assert_eq!(chunker.received(), fed, "a refused frame is not counted");
                return;
            }
        }
        let emitted: u64 = parts.iter().map(Part::len).sum();
        assert_eq!(chunker.received(), fed);
        assert_eq!(chunker.buffered(), fed - emitted);
        assert_eq!(chunker.parts_emitted() as usize, parts.len());
        assert!(chunker.buffered() <= plan.part_size);
    }
    assert!(len <= bound, "an input longer than its bound was accepted");
    let result = chunker.finish();
    let (last, summary) = match result {
        Ok(done) => done,
        Err(error) => {
            assert!(declare && len < bound, "TooShort without cause: {error:?}");
            assert_eq!(error, ChunkError::TooShort { received: len, declared: bound });
            return;
        }
    };
    assert!(!(declare && len < bound), "a short input was accepted as complete");
    parts.extend(last);

    // The parts: numbered from 1, equal-sized but the last, together exactly the input.
    assert!(!parts.is_empty());
    let count = parts.len();
    let mut offset = 0usize;
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part.number as usize, i + 1);
        let bytes = part.data.to_contiguous();
        assert_eq!(bytes.len() as u64, part.len());
        if i + 1 < count {
            assert_eq!(part.len(), plan.part_size, "non-last part {} has {} bytes", part.number, part.len());
        } else {
            assert!(part.len() <= plan.part_size);
            assert!(!part.is_empty() || len == 0, "an empty last part after data");
        }
        assert_eq!(part.md5, Some(Md5::of(&bytes)), "part {} MD5", part.number);
        assert_eq!(part.crc, Some(crc_algorithm.checksum(&bytes)), "part {} CRC", part.number);
        assert!(
            bytes == data.slice(offset..offset + bytes.len()),
            "part {} is not its slice of the input",
            part.number
        );
        offset += bytes.len();
    }
    assert_eq!(offset, data.len(), "the parts do not add up to the input");
    assert_eq!(count as u64, len.div_ceil(plan.part_size).max(1));
    if declare {
        assert_eq!(plan.part_count(), Some(count as u32));
    }

    // The summary: one-shot digests of the whole input.
    assert_eq!(summary.len, len);
    assert_eq!(summary.part_size, plan.part_size);
    assert_eq!(summary.md5, whole_md5.then(|| Md5::of(&data)));
    assert_eq!(summary.sha256, sha256.then(|| Sha256::of(&data)));
    assert_eq!(summary.crc, Some(crc_algorithm.checksum(&data)));
    assert_eq!(summary.part_md5s, parts.iter().filter_map(|p| p.md5).collect::<Vec<_>>());
    assert_eq!(summary.part_crcs, parts.iter().filter_map(|p| p.crc).collect::<Vec<_>>());
    assert_eq!(summary.part_count() as usize, count);
}
