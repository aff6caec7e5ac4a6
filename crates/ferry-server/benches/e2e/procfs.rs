//! What the bench reads from `/proc`: a process's resident set (now and its high-water mark), its
//! CPU time, the process listening on a TCP port, and a finished child's CPU time (by `sh`'s
//! `times`, since a process that has exited has no `/proc` entry left to read).

use std::process::Command;
use std::time::Duration;

/// A field of `/proc/<pid>/status` in bytes (`VmHWM`, `VmRSS`); `None` once the process is gone.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    Some(kib * 1024)
}

/// The peak resident set of `pid` so far, bytes.
pub(crate) fn vm_hwm(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM")
}

/// The resident set of `pid` now, bytes.
pub(crate) fn vm_rss(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// CPU time `pid` has used (user + system, every thread), from `/proc/<pid>/stat`.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    // After the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// The process listening on TCP `port` on this machine (as `ss -ltnp` shows it), if any.
pub(crate) fn listener_pid(port: u16) -> Option<u32> {
    let out = Command::new("ss").args(["-Hltnp", &format!("sport = :{port}")]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("pid=")? + 4;
    text[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Runs `program args…` under `sh`, which prints its children's CPU time when it ends (`times`);
/// returns the exit status, the command's stdout, and the CPU time the command used.
pub(crate) fn run_timed(
    program: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    unset: &[&str],
) -> (bool, String, Duration) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("\"$@\"; rc=$?; echo; times; exit $rc").arg("sh").arg(program).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    for k in unset {
        cmd.env_remove(k);
    }
    let Ok(out) = cmd.output() else { return (false, String::new(), Duration::ZERO) };
    if !out.stderr.is_empty() {
        eprintln!("{program}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines: Vec<&str> = text.lines().collect();
    // `times` prints the shell's own times, then its children's: user and system.
    let children = lines.pop().unwrap_or("");
    lines.pop();
    let cpu = children.split_whitespace().map(parse_times).sum();
    (out.status.success(), lines.join("\n").trim().to_owned(), cpu)
}

/// `1m2.500000s` (the form `times` prints) as a duration.
fn parse_times(text: &str) -> Duration {
    let Some((min, sec)) = text.trim_end_matches('s').split_once('m') else { return Duration::ZERO };
    let secs = min.parse::<f64>().unwrap_or(0.0) * 60.0 + sec.parse::<f64>().unwrap_or(0.0);
    Duration::from_secs_f64(secs)
}
