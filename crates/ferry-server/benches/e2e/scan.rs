//! The malware-scanning row (issue 16): the default ferry row with `[scan]` pointing at Debian's
//! clamd (`ferry_testkit::clamd`, the test database, limits at 2000 MiB), started fresh for each
//! run. The row's CPU is ferry's and clamd's together, so its CPU-s per GiB against the default
//! row's is what scanning costs. Files above clamd's 2000 MiB are not run (clamd scans at most
//! 2 GiB of a file); without clamd installed the row says so.

use crate::cases::{Bench, Measured, blank};
use crate::ferry::{self, FerrySetup};
use crate::procfs;
use ferry_testkit::clamd::{Clamd, MAX_BYTES};
use std::path::Path;

/// Runs the default ferry configuration (`checksum`) with scanning on.
pub(crate) async fn run(bench: &Bench<'_>, checksum: &'static str, file: &Path, mib: u64) -> Measured {
    let skipped = |why: &str| {
        let mut row = blank(mib * crate::cases::MIB, mib);
        row.failures = 1;
        row.failure = Some(why.to_owned());
        row
    };
    if mib * crate::cases::MIB > MAX_BYTES {
        return skipped("not run: clamd scans at most 2 GiB of a file");
    }
    if !Clamd::installed() {
        return skipped("not run: Debian's clamav-daemon is not installed");
    }
    let dir = bench.dir.join(format!("clamd-{mib}"));
    std::fs::create_dir_all(&dir).expect("clamd folder");
    let clamd = Clamd::start(&dir).await;
    // The `[scan]` table rides after the `[data_path]` lines of the default configuration.
    let scan: &'static str = Box::leak(
        format!("\n[scan]\naddress = \"{}\"\nmax_bytes = {MAX_BYTES}\n", clamd.tcp_address())
            .into_boxed_str(),
    );
    let clamd_cpu = || clamd.pid().map_or(std::time::Duration::ZERO, procfs::cpu_time);
    let before = clamd_cpu();
    let mut measured = ferry::run(bench, &FerrySetup::new(checksum, scan), file, mib, 1).await;
    measured.uploader_cpu += clamd_cpu().saturating_sub(before);
    let _ = std::fs::remove_dir_all(&dir);
    measured
}
