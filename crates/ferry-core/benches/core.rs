//! `cargo xtask bench core`: chunker throughput against plain MD5 hashing of the same bytes.
//!
//! The chunker's work per byte is two MD5 updates (the part's and the whole object's) and a CRC
//! update, so the baseline is "MD5 twice", measured in the same run on the same buffer. The goal is
//! a ratio of at least 0.9. `FERRY_BENCH_MIB` sets the data size (default 1024), `FERRY_BENCH_FRAME`
//! the frame size in bytes (default 65536).

use bytes::Bytes;
use ferry_core::checksum::{CrcAlgorithm, Md5};
use ferry_core::chunk::{Chunker, ChunkerOptions};
use ferry_core::plan::{MIB, PlanLimits, plan_parts};
use md5::Digest as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn best_of(runs: usize, f: &dyn Fn()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let mib = env_usize("FERRY_BENCH_MIB", 1024);
    let frame = env_usize("FERRY_BENCH_FRAME", 64 * 1024);
    let len = mib * MIB as usize;
    // Incompressible enough for hashing.
    let data = Bytes::from(ferry_testkit::data::pseudo_random(b"", len, 0x9e37_79b9_7f4a_7c15));
    let frames: Vec<Bytes> =
        (0..len).step_by(frame).map(|at| data.slice(at..(at + frame).min(len))).collect();
    let mbps = |d: Duration| len as f64 / 1e6 / d.as_secs_f64();
    let rounds = 3;

    let md5_once = || {
        let mut h = md5::Md5::new();
        for f in &frames {
            h.update(f);
        }
        black_box(h.finalize());
    };
    let md5_twice = || {
        let (mut a, mut b) = (md5::Md5::new(), md5::Md5::new());
        for f in &frames {
            a.update(f);
            b.update(f);
        }
        black_box((a.finalize(), b.finalize()));
    };
    let chunk = |options: ChunkerOptions| {
        let plan = plan_parts(Some(len as u64), &PlanLimits::default()).expect("plan");
        let mut chunker = Chunker::new(plan, options);
        let mut parts = 0usize;
        for f in &frames {
            parts += chunker.push(f.clone()).expect("push").len();
        }
        let (last, summary) = chunker.finish().expect("finish");
        black_box((parts, last, summary));
    };
    let crc_only = || {
        let mut h = ferry_core::checksum::CrcHasher::new(CrcAlgorithm::Crc64Nvme);
        for f in &frames {
            h.update(f);
        }
        black_box(h.finish());
    };
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, Duration);
    let mut cases: Vec<Case<'_>> = vec![
        ("baseline: md-5 twice (ratio 1.0)", Box::new(md5_twice), Duration::MAX),
        ("md-5 once", Box::new(md5_once), Duration::MAX),
        ("crc64nvme alone", Box::new(crc_only), Duration::MAX),
        (
            "chunker: 2x md5 + crc64nvme",
            Box::new(move || {
                chunk(ChunkerOptions {
                    crc: Some(CrcAlgorithm::Crc64Nvme),
                    part_md5: true,
                    whole_md5: true,
                    sha256: false,
                    defer: false,
                })
            }),
            Duration::MAX,
        ),
        (
            "chunker: 2x md5 + crc32c",
            Box::new(move || {
                chunk(ChunkerOptions {
                    crc: Some(CrcAlgorithm::Crc32c),
                    part_md5: true,
                    whole_md5: true,
                    sha256: false,
                    defer: false,
                })
            }),
            Duration::MAX,
        ),
        (
            "chunker: 2x md5 + crc64nvme + sha-256",
            Box::new(move || {
                chunk(ChunkerOptions {
                    crc: Some(CrcAlgorithm::Crc64Nvme),
                    part_md5: true,
                    whole_md5: true,
                    sha256: true,
                    defer: false,
                })
            }),
            Duration::MAX,
        ),
    ];
    // Rounds interleave the cases, so a noisy moment hurts every case alike; the best round counts.
    for _ in 0..rounds {
        for (_, run, best) in &mut cases {
            *best = (*best).min(best_of(1, run));
        }
    }
    black_box(Md5::of(&data[..16]));
    let md5_twice = cases[0].2;
    let chunk_crc = cases[3].2;

    println!(
        "bench core: {mib} MiB of random data in {frame}-byte frames, 8 MiB parts, best of {rounds} interleaved rounds"
    );
    println!("{:<44} {:>10} {:>8}", "case", "MB/s", "ratio");
    for (name, _, best) in &cases {
        println!("{:<44} {:>10.0} {:>8.3}", name, mbps(*best), md5_twice.as_secs_f64() / best.as_secs_f64());
    }
    let ratio = md5_twice.as_secs_f64() / chunk_crc.as_secs_f64();
    println!(
        "ratio chunker/md5-twice = {ratio:.3} (goal >= 0.9): {}",
        if ratio >= 0.9 { "met" } else { "NOT met" }
    );
}
