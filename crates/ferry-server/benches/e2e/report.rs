//! The bench's output: one Markdown table per server (ready for `docs/performance.md`) and the
//! issue's goals as ratios measured in the same run, each marked met or not. Never a failure.

use crate::cases::{Goal, MIB, Measured};

/// Part size × (parts in flight + 1) with ferry's defaults (8 MiB, 4), plus the 8 MiB allowed on top.
const PART_BUFFERS: u64 = 8 * MIB * 5;
const SLACK: u64 = 8 * MIB;

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB as f64)
}

fn size(mib: u64) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) { format!("{} GiB", mib / 1024) } else { format!("{mib} MiB") }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// The table of every row measured on one server.
pub(crate) fn table(server: &str, rows: &[Measured]) {
    println!("\n### {server}\n");
    println!(
        "| case | size | MB/s | uploader CPU s/GiB | S3 server CPU s | ferry idle RSS MiB | ferry peak RSS MiB | sampled max MiB | failures |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let (idle, peak, sampled) = r
            .rss
            .map_or(("-".into(), "-".into(), "-".into()), |x| (mib(x.idle), mib(x.peak), mib(x.sampled)));
        let failures = match &r.failure {
            Some(why) => format!("{}: {why}", r.failures),
            None => "0".into(),
        };
        if r.elapsed.is_zero() {
            // Not run at all (the row says why).
            println!("| {} | {} | - | - | - | - | - | - | {failures} |", r.label, size(r.mib));
            continue;
        }
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.1} | {idle} | {peak} | {sampled} | {failures} |",
            r.label,
            size(r.mib),
            r.mbps(),
            r.cpu_per_gib(),
            r.s3_cpu.as_secs_f64(),
        );
    }
}

fn find(rows: &[Measured], goal: Goal, mib: u64) -> Option<&Measured> {
    rows.iter().find(|r| r.goal == goal && r.mib == mib && r.failure.is_none() && !r.label.contains('×'))
}

/// The goals, from the rows of one server; `concurrent` is the N × M MiB run and
/// `single` the one stream it is compared with.
pub(crate) fn goals(
    server: &str,
    rows: &[Measured],
    sizes: &[u64],
    concurrent: Option<(&Measured, &Measured)>,
    budget: u64,
) {
    println!("\nGoals on {server} (ratios from this one run; printed, never enforced):");
    let default =
        if rows.iter().any(|r| r.goal == Goal::Default) { Goal::Default } else { Goal::DefaultWithoutCrc };
    for &s in sizes {
        let (Some(ferry), Some(aws)) = (find(rows, default, s), find(rows, Goal::Baseline, s)) else {
            continue;
        };
        let speed = ferry.mbps() / aws.mbps();
        let cpu = ferry.cpu_per_gib() / aws.cpu_per_gib();
        println!(
            "- {} at {}: {speed:.2}× aws-cli's MB/s (goal ≥ 1.2: {}), {cpu:.2}× its CPU per GiB (goal ≤ 0.5: {}), \
             {:.2} CPU-s/GiB (goal ≤ 2: {})",
            ferry.label,
            size(s),
            verdict(speed >= 1.2),
            verdict(cpu <= 0.5),
            ferry.cpu_per_gib(),
            verdict(ferry.cpu_per_gib() <= 2.0)
        );
    }
    for row in sizes.iter().filter_map(|&s| find(rows, Goal::CrcOnly, s)) {
        let cpu = row.cpu_per_gib();
        println!(
            "- {} at {}: {cpu:.2} CPU-s/GiB (goal ≤ 1: {})",
            row.label,
            size(row.mib),
            verdict(cpu <= 1.0)
        );
    }
    if let Some(ceiling) = sizes.iter().rev().find_map(|&s| find(rows, Goal::Ceiling, s)) {
        println!("- ceiling (one unsigned PUT) at {}: {:.1} MB/s", size(ceiling.mib), ceiling.mbps());
    }
    let (small, large) = (sizes.iter().min(), sizes.iter().max());
    let mut labels: Vec<&str> = Vec::new();
    for row in rows.iter().filter(|r| r.rss.is_some()) {
        if !labels.contains(&row.label.as_str()) {
            labels.push(&row.label);
        }
    }
    for label in labels {
        let at = |s: Option<&u64>| {
            rows.iter().find(|r| r.label == label && Some(&r.mib) == s && r.failure.is_none())
        };
        let (Some(a), Some(b)) = (at(small), at(large)) else { continue };
        let (ra, rb) = (a.rss.expect("ferry row"), b.rss.expect("ferry row"));
        let growth = rb.peak as f64 / ra.peak as f64;
        let bound = rb.idle + PART_BUFFERS + SLACK;
        if a.mib != b.mib {
            print!(
                "- {label}: peak RSS {} MiB at {} vs {} MiB at {}: {growth:.3}× (goal ≤ 1.10: {}); ",
                mib(rb.peak),
                size(b.mib),
                mib(ra.peak),
                size(a.mib),
                verdict(growth <= 1.10)
            );
        } else {
            print!("- {label}: ");
        }
        println!(
            "at {} ≤ idle {} + 40 + 8 = {} MiB: {} ({:+.1} MiB)",
            size(b.mib),
            mib(rb.idle),
            mib(bound),
            verdict(rb.peak <= bound),
            (rb.peak as f64 - bound as f64) / MIB as f64
        );
    }
    if let Some((many, one)) = concurrent {
        let ratio = many.mbps() / one.mbps();
        let rss = many.rss.expect("ferry row");
        let held = rss.peak.saturating_sub(rss.idle);
        println!(
            "- {}: {:.1} MB/s aggregate vs {:.1} MB/s for one {} stream: {ratio:.2}× (goal ≥ 0.9: {}); failures {} (goal 0: {}); \
             peak RSS {} MiB, {} MiB above idle vs the {} MiB budget ({})",
            many.label,
            many.mbps(),
            one.mbps(),
            size(one.mib),
            verdict(ratio >= 0.9),
            many.failures,
            verdict(many.failures == 0),
            mib(rss.peak),
            mib(held),
            mib(budget),
            verdict(held <= budget),
        );
    }
}
