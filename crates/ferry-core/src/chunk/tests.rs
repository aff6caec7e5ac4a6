//! Unit tests of the chunker: part boundaries, digests inline and deferred, limits.

use super::*;
use crate::plan::{MIB, PlanLimits, plan_parts};

const ALL: ChunkerOptions = ChunkerOptions {
    crc: Some(CrcAlgorithm::Crc32c),
    part_md5: true,
    whole_md5: true,
    sha256: true,
    defer: false,
};

fn run(data: &[u8], frame: usize, declared: bool) -> (Vec<Part>, ObjectSummary) {
    run_with(ALL, data, frame, declared)
}

fn run_with(
    options: ChunkerOptions,
    data: &[u8],
    frame: usize,
    declared: bool,
) -> (Vec<Part>, ObjectSummary) {
    let limits = PlanLimits { preferred_part_size: 5 * MIB, max_file_size: 64 * MIB };
    let plan = plan_parts(declared.then_some(data.len() as u64), &limits).unwrap();
    let mut chunker = Chunker::new(plan, options);
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
    assert_eq!(parts[0].md5, Some(Md5::of(b"")));
    assert_eq!(summary.md5, Some(Md5::of(b"")));
    assert_eq!(summary.crc, Some(CrcAlgorithm::Crc32c.empty()));
}

#[test]
fn the_whole_md5_is_computed_only_when_asked_for() {
    let data = vec![7u8; 6 * MIB as usize];
    let (_, crc_only) =
        run_with(ChunkerOptions { part_md5: false, whole_md5: false, ..ALL }, &data, 1 << 20, true);
    assert_eq!((crc_only.md5, crc_only.sha256), (None, Some(crate::checksum::Sha256::of(&data))));
    assert_eq!(crc_only.crc, Some(CrcAlgorithm::Crc32c.checksum(&data)), "the whole CRC is still combined");
    assert_eq!(run(&data, 1 << 20, true).1.md5, Some(Md5::of(&data)));
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
fn deferred_hashing_ends_in_the_same_summary() {
    let data: Vec<u8> = (0..11 * MIB as u32).map(|i| (i % 251) as u8).collect();
    let (inline_parts, inline) = run(&data, 1 << 16, false);
    let plan =
        plan_parts(None, &PlanLimits { preferred_part_size: 5 * MIB, max_file_size: 64 * MIB }).unwrap();
    let options = ChunkerOptions { defer: true, ..ALL };
    let mut chunker = Chunker::new(plan, options);
    let mut whole = chunker.whole_hasher();
    let mut parts = Vec::new();
    for frame in data.chunks(1 << 16) {
        whole.update(frame);
        parts.extend(chunker.push(Bytes::copy_from_slice(frame)).unwrap());
    }
    assert_eq!(chunker.whole_hasher().finish(), WholeHasher::new(true, true).finish());
    let (last, mut summary) = chunker.finish_with(whole.finish()).unwrap();
    parts.extend(last);
    assert!(parts.iter().all(|p| p.md5.is_none() && p.crc.is_none()), "nothing hashed");
    assert_eq!(summary.multipart_etag(), None);
    let digests: Vec<_> = parts
        .iter()
        .map(|p| {
            let (md5, crc) = p.data.digests(true, Some(CrcAlgorithm::Crc32c));
            (p.len(), md5, crc)
        })
        .collect();
    summary.set_part_digests(&digests);
    assert_eq!(summary, inline);
    assert_eq!(inline_parts.len(), 3);
    let deferred = Chunker::new(plan, options);
    assert_eq!(deferred.finish().unwrap_err(), ChunkError::DigestsDeferred);
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
