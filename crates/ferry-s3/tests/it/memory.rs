//! The memory bound: whether S3 or the producer is the slower side, the part bytes held stay within
//! `part size × (max_in_flight + 1)`. Bytes are counted (the uploader's gauge plus the chunker's
//! partial part), not RSS.

use crate::support::{BUCKET, Fs, PART, quick_retries, random_bytes};
use bytes::Bytes;
use ferry_core::chunk::Chunker;
use ferry_core::plan::{PlanLimits, plan_parts};
use ferry_s3::{ChecksumMode, ObjectMeta, UploadConfig, Uploader};
use ferry_sandbox::s3_faults::{Action, FaultProxy, Rule, Target};
use std::time::Duration;

const IN_FLIGHT: usize = 2;

async fn run(uploader: &Uploader, parts: usize, producer_pause: Duration) -> u64 {
    let len = parts * PART as usize + 1;
    let data = Bytes::from(random_bytes(len, 77));
    let plan =
        plan_parts(Some(len as u64), &PlanLimits { preferred_part_size: PART, max_file_size: 1 << 40 })
            .unwrap();
    let mut chunker = Chunker::new(plan, ChecksumMode::Md5.inline_chunker_options(false));
    let mut upload = uploader.begin("bounded", ObjectMeta::default());
    let mut peak = 0;
    for at in (0..len).step_by(1 << 20) {
        for part in chunker.push(data.slice(at..(at + (1 << 20)).min(len))).unwrap() {
            upload.push_part(part).await.unwrap();
        }
        peak = peak.max(uploader.memory().held() + chunker.buffered());
        if !producer_pause.is_zero() {
            tokio::time::sleep(producer_pause).await;
        }
    }
    let (last, summary) = chunker.finish().unwrap();
    upload.finish(last, &summary).await.unwrap();
    assert_eq!(uploader.memory().held(), 0);
    peak.max(uploader.memory().peak())
}

fn uploader_for(endpoint_client: aws_sdk_s3::Client) -> Uploader {
    let config = UploadConfig {
        checksum_mode: ChecksumMode::Md5,
        max_in_flight: IN_FLIGHT,
        retry: quick_retries(),
        opaque_etags: false,
    };
    Uploader::new(endpoint_client, BUCKET, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_s3_back_pressures_the_producer() {
    let fs = Fs::start().await;
    let proxy = FaultProxy::start(fs.server.addr()).await.unwrap();
    proxy.add_rule(Rule::new(Target::UploadPart(None), Action::Delay(Duration::from_millis(150))).always());
    let uploader = uploader_for(fs.client_via(&proxy.endpoint()).await);
    let peak = run(&uploader, 8, Duration::ZERO).await;
    let bound = PART * (IN_FLIGHT as u64 + 1) + (1 << 20);
    assert!(peak <= bound, "peak {peak} over the bound {bound}");
    assert!(peak >= PART * IN_FLIGHT as u64, "S3 was slow, so parts must have queued up (peak {peak})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_producer_holds_little() {
    let fs = Fs::start().await;
    let uploader = uploader_for(fs.client().await);
    let peak = run(&uploader, 4, Duration::from_millis(20)).await;
    let bound = PART * (IN_FLIGHT as u64 + 1) + (1 << 20);
    assert!(peak <= bound, "peak {peak} over the bound {bound}");
}
