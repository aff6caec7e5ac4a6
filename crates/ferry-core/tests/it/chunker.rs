//! The chunker against one-shot hashing: for any data and any frame splits, the parts and digests
//! are what hashing the whole input at once gives.

use bytes::Bytes;
use ferry_core::checksum::{CrcAlgorithm, Md5, Sha256};
use ferry_core::chunk::{ChunkError, Chunker, ChunkerOptions, Part};
use ferry_core::plan::{MAX_PARTS, MIB, MIN_PART_SIZE, PlanLimits, plan_parts};
use ferry_core::s3;
use proptest::prelude::*;

/// Deterministic pseudo-random bytes (proptest shrinks the seed and length, not megabytes).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Splits `data` at the given cut points (taken modulo the length) into frames.
fn frames(data: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| data.slice(w[0]..w[1])).collect()
}

fn chunk_all(
    input: &Bytes,
    cuts: &[usize],
    declared: bool,
    crc: CrcAlgorithm,
) -> (Vec<Part>, ferry_core::chunk::ObjectSummary) {
    let limits = PlanLimits { preferred_part_size: MIN_PART_SIZE, max_file_size: 64 * MIB };
    let plan = plan_parts(declared.then_some(input.len() as u64), &limits).unwrap();
    let options =
        ChunkerOptions { crc: Some(crc), part_md5: true, whole_md5: true, sha256: true, defer: false };
    let mut chunker = Chunker::new(plan, options);
    let mut parts = Vec::new();
    for frame in frames(input, cuts) {
        parts.extend(chunker.push(frame).unwrap());
    }
    let (last, summary) = chunker.finish().unwrap();
    parts.extend(last);
    (parts, summary)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn chunking_equals_hashing_at_once(
        len in prop_oneof![0usize..4096, (5 * MIB as usize - 3)..(5 * MIB as usize + 3), 0usize..(17 * MIB as usize)],
        seed in any::<u64>(),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
        declared in any::<bool>(),
        crc64 in any::<bool>(),
    ) {
        let crc = if crc64 { CrcAlgorithm::Crc64Nvme } else { CrcAlgorithm::Crc32c };
        let input = Bytes::from(data(len, seed));
        let (parts, summary) = chunk_all(&input, &cuts, declared, crc);

        // Concatenated parts are the input.
        let mut joined = Vec::with_capacity(len);
        for part in &parts {
            for slice in part.data.slices() {
                joined.extend_from_slice(slice);
            }
        }
        prop_assert_eq!(&joined[..], &input[..]);

        // Numbering, equal non-last parts, nothing empty but the single part of an empty file.
        prop_assert!(!parts.is_empty());
        for (i, part) in parts.iter().enumerate() {
            prop_assert_eq!(part.number as usize, i + 1);
            if i + 1 < parts.len() {
                prop_assert_eq!(part.len(), summary.part_size);
            } else {
                prop_assert!(part.len() <= summary.part_size);
                prop_assert!(!part.is_empty() || len == 0);
            }
            let contiguous = part.data.to_contiguous();
            prop_assert_eq!(part.md5, Some(Md5::of(&contiguous)));
            prop_assert_eq!(part.crc, Some(crc.checksum(&contiguous)));
        }
        prop_assert_eq!(parts.len(), len.div_ceil(summary.part_size as usize).max(1));

        // Whole-object digests, the CRC by combination.
        prop_assert_eq!(summary.len, len as u64);
        prop_assert_eq!(summary.md5, Some(Md5::of(&input)));
        prop_assert_eq!(summary.sha256, Some(Sha256::of(&input)));
        prop_assert_eq!(summary.crc, Some(crc.checksum(&input)));
        let lens: Vec<u64> = parts.iter().map(Part::len).collect();
        prop_assert_eq!(s3::full_object_checksum(crc, &summary.part_crcs, &lens), crc.checksum(&input));
        let md5s: Vec<Md5> = parts.iter().filter_map(|p| p.md5).collect();
        prop_assert_eq!(summary.multipart_etag(), Some(s3::multipart_etag(&md5s)));
    }

    #[test]
    fn plans_stay_within_s3_limits(len in any::<u64>(), preferred in 0u64..(8 * 1024 * MIB), unknown in any::<bool>()) {
        let max = ferry_core::plan::MAX_OBJECT_SIZE;
        let declared = (!unknown).then_some(len % (max + 1));
        let limits = PlanLimits { preferred_part_size: preferred, max_file_size: max };
        let plan = plan_parts(declared, &limits).unwrap();
        prop_assert!(plan.part_size >= MIN_PART_SIZE);
        prop_assert!(plan.part_size <= ferry_core::plan::MAX_PART_SIZE);
        prop_assert_eq!(plan.part_size % MIB, 0);
        prop_assert!(u64::from(plan.max_parts()) <= MAX_PARTS);
        if let Some(count) = plan.part_count() {
            prop_assert!(u64::from(count) <= MAX_PARTS);
            prop_assert!(u64::from(count) * plan.part_size >= declared.unwrap());
        }
    }

    #[test]
    fn the_limit_holds_whatever_the_frames(limit in 0u64..5000, extra in 1u64..100, cuts in prop::collection::vec(any::<usize>(), 0..10)) {
        let plan = plan_parts(None, &PlanLimits { preferred_part_size: MIN_PART_SIZE, max_file_size: limit }).unwrap();
        let mut chunker = Chunker::new(plan, ChunkerOptions::default());
        let input = Bytes::from(data((limit + extra) as usize, limit));
        let mut error = None;
        for frame in frames(&input, &cuts) {
            if let Err(e) = chunker.push(frame) {
                error = Some(e);
                break;
            }
        }
        prop_assert_eq!(error, Some(ChunkError::TooLong { limit, declared: false }));
        prop_assert!(chunker.received() <= limit);
    }
}

#[test]
fn one_byte_frames_make_the_same_parts_as_one_frame() {
    let input = Bytes::from(data(5 * MIB as usize + 17, 7));
    let cuts: Vec<usize> = (0..input.len()).collect();
    let (a, sa) = chunk_all(&input, &cuts, true, CrcAlgorithm::Crc32c);
    let (b, sb) = chunk_all(&input, &[], false, CrcAlgorithm::Crc32c);
    assert_eq!(sa, sb);
    assert_eq!(a.len(), 2);
    assert_eq!(
        a.iter().map(|p| (p.number, p.md5, p.crc)).collect::<Vec<_>>(),
        b.iter().map(|p| (p.number, p.md5, p.crc)).collect::<Vec<_>>()
    );
}
