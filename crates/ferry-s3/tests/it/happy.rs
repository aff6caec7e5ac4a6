//! Happy paths against s3s-fs in process: every size class lands byte-identical with the ETag S3
//! arithmetic predicts.

use crate::support::{BUCKET, Fs, PART, config, random_bytes, read_back, upload};
use ferry_core::checksum::Md5;
use ferry_core::s3::multipart_etag;
use ferry_s3::{ChecksumMode, Uploader};

async fn round_trip(fs: &Fs, uploader: &Uploader, len: usize, seed: u64, frame: usize) {
    let data = random_bytes(len, seed);
    let key = format!("happy/{len}-{seed}");
    let object = upload(uploader, &key, &data, frame).await.unwrap_or_else(|e| panic!("{len} bytes: {e}"));
    assert_eq!(object.size, len as u64);
    assert_eq!(object.md5, Some(Md5::of(&data)));
    let parts = len.div_ceil(PART as usize).max(1);
    assert_eq!(object.part_count as usize, parts, "{len} bytes");
    let expected_etag = if parts == 1 {
        Md5::of(&data).to_hex()
    } else {
        multipart_etag(&data.chunks(PART as usize).map(Md5::of).collect::<Vec<_>>())
    };
    assert_eq!(object.etag, expected_etag);
    let (stored, etag) = read_back(&fs.client().await, BUCKET, &key).await;
    assert!(stored == data, "{len} bytes: stored object differs");
    assert_eq!(etag, expected_etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_size_class_round_trips() {
    let fs = Fs::start().await;
    let uploader = Uploader::new(fs.client().await, BUCKET, config(ChecksumMode::Md5));
    let part = PART as usize;
    for (i, len) in [0, 1, part - 1, part, part + 1, 2 * part, 3 * part + 3].into_iter().enumerate() {
        round_trip(&fs, &uploader, len, i as u64, 64 * 1024).await;
    }
    assert_eq!(uploader.memory().held(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sizes_and_frames_round_trip_with_crc_mode() {
    let fs = Fs::start().await;
    // s3s-fs ignores flexible checksums; the CRC mode must still work against it.
    let uploader = Uploader::new(fs.client().await, BUCKET, config(ChecksumMode::Crc64Nvme));
    let mut seeds = ferry_testkit::data::PseudoRandom::new(0x5eed);
    for _ in 0..4 {
        let seed = seeds.next_u64();
        let len = (seed >> 33) as usize % (17 * 1024 * 1024);
        let frame = 1 + (seed >> 7) as usize % (3 * 1024 * 1024);
        round_trip(&fs, &uploader, len, seed, frame).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_is_created_lazily() {
    let fs = Fs::start().await;
    let uploader = Uploader::new(fs.client().await, BUCKET, config(ChecksumMode::Md5));
    let upload = uploader.begin("lazy", ferry_s3::ObjectMeta::default());
    assert_eq!(upload.upload_id(), None);
    drop(upload);
    uploader.cleanups_settled().await;
    assert_eq!(uploader.stats().aborted(), 0, "nothing was created, so nothing is aborted");
}
