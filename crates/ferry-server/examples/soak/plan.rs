//! The soak's plan, drawn from one seed: every upload's size, body shape, abort and caption, and
//! the S3 and Genesys faults injected as it starts. The same seed gives the same plan.

use ferry_sandbox::s3_faults::{Action, Operation, Rule, Target};
use std::time::Duration;

pub(crate) const KIB: u64 = 1 << 10;
pub(crate) const MIB: u64 = 1 << 20;
/// Failures in a row of a persistent S3 fault: ferry makes 6 attempts per request, and other
/// uploads' requests take some of these while it retries.
pub(crate) const PERSISTENT_TIMES: u32 = 24;
/// The emulator's default deployment takes native attachments up to 10240 KB.
pub(crate) const NATIVE_LIMIT: u64 = 10240 * KIB;

/// SplitMix64: small, fast, and good enough to draw a test plan.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64 - 1) as usize]
    }
}

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The raw file with `Content-Length`.
    RawLength,
    /// The raw file, `Transfer-Encoding: chunked`.
    RawChunked,
    /// `multipart/form-data` with `Content-Length`.
    FormLength,
    /// `multipart/form-data`, chunked.
    FormChunked,
}

impl Shape {
    pub(crate) fn is_form(self) -> bool {
        matches!(self, Self::FormLength | Self::FormChunked)
    }

    pub(crate) fn is_chunked(self) -> bool {
        matches!(self, Self::RawChunked | Self::FormChunked)
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::RawLength => "raw+length",
            Self::RawChunked => "raw+chunked",
            Self::FormLength => "form+length",
            Self::FormChunked => "form+chunked",
        }
    }
}

/// How a client gives up partway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AbortKind {
    /// Stop sending and half-close (FIN): the server sees the body end early and can still answer.
    HalfClose,
    /// Stop sending and reset the connection (RST): no answer is read.
    Reset,
    /// Send the whole body, then reset the connection after `after_body` unless the answer came
    /// first (a customer closing the tab while ferry stores and delivers).
    AfterBody,
}

/// A client abort after `at` bytes of the file (`AfterBody`: after all of it, plus a pause).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Abort {
    pub(crate) at: u64,
    pub(crate) kind: AbortKind,
    pub(crate) after_body: Duration,
}

/// An S3 fault: a rule for the proxy and the label it is counted under.
#[derive(Debug, Clone)]
pub(crate) struct S3Fault {
    pub(crate) rule: Rule,
    pub(crate) persistent: bool,
}

/// A Genesys fault, set on the emulator's knobs (they count down as they fire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GenesysFault {
    /// The next `n` guest requests get a `TooManyRequestsErrorMessage` (429) frame.
    Throttle(u32),
    /// The next accepted presigned upload ends with an `UploadFailureEvent`.
    UploadFailure,
    /// The next presigned `PUT` is answered 503 and stores nothing.
    RefusePut,
    /// The next guest WebSocket opened drops (no close frame) after sending this many frames.
    DropSocket(u32),
}

impl GenesysFault {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Throttle(_) => "genesys 429 frame",
            Self::UploadFailure => "genesys UploadFailureEvent",
            Self::RefusePut => "genesys presigned PUT 503",
            Self::DropSocket(_) => "genesys socket dropped",
        }
    }
}

/// One upload.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) index: usize,
    pub(crate) seed: u64,
    pub(crate) size: u64,
    pub(crate) shape: Shape,
    pub(crate) expect_continue: bool,
    pub(crate) abort: Option<Abort>,
    pub(crate) caption: Option<String>,
    pub(crate) s3_fault: Option<S3Fault>,
    pub(crate) genesys_fault: Option<GenesysFault>,
}

impl Job {
    pub(crate) fn name(&self) -> String {
        format!("soak-{:04}.bin", self.index)
    }
}

/// What the plan is drawn from.
#[derive(Debug, Clone)]
pub(crate) struct PlanSettings {
    pub(crate) uploads: usize,
    pub(crate) max_size: u64,
    pub(crate) big: usize,
    pub(crate) big_size: u64,
    pub(crate) abort_rate: f64,
    pub(crate) s3_fault_rate: f64,
    pub(crate) genesys_fault_rate: f64,
    pub(crate) persistent_share: f64,
    /// Whether clients may hang up after the whole body (before the answer).
    pub(crate) hang_ups: bool,
}

/// Sizes worth hitting on purpose: empty, one byte, around the 8 MiB part size and the 10240 KB
/// native limit, whole parts.
const EDGE_SIZES: [u64; 9] =
    [0, 1, 8 * MIB - 1, 8 * MIB, 8 * MIB + 1, NATIVE_LIMIT, NATIVE_LIMIT + 1, 16 * MIB, 64 * MIB];

fn draw_size(rng: &mut Rng, max: u64) -> u64 {
    let roll = rng.range(0, 99);
    let size = match roll {
        0..=1 => 0,
        2..=7 => *rng.pick(&EDGE_SIZES),
        8..=39 => rng.range(1, MIB),
        40..=64 => rng.range(MIB, NATIVE_LIMIT),
        _ => rng.range(NATIVE_LIMIT, 64 * MIB),
    };
    size.min(max)
}

fn draw_s3_fault(rng: &mut Rng, persistent_share: f64) -> S3Fault {
    let part = rng.range(1, 8) as u32;
    if rng.chance(persistent_share) {
        // More failures in a row than ferry's six attempts: whichever upload meets it fails.
        let (target, action) = match rng.range(0, 2) {
            0 => (Target::UploadPart(Some(part)), Action::internal_error()),
            1 => (Target::Op(Operation::CompleteMultipartUpload), Action::internal_error()),
            _ => (Target::Op(Operation::PutObject), Action::slow_down()),
        };
        return S3Fault { rule: Rule::new(target, action).times(PERSISTENT_TIMES), persistent: true };
    }
    let (target, action, times) = match rng.range(0, 10) {
        0 | 1 => (Target::UploadPart(Some(part)), Action::slow_down(), rng.range(1, 2) as u32),
        2 => (Target::UploadPart(Some(part)), Action::internal_error(), 1),
        3 | 4 => (Target::UploadPart(Some(part)), Action::ResetMidBody, 1),
        5 | 6 => (Target::UploadPart(Some(part)), Action::FlipByte(rng.range(0, 5 * MIB)), 1),
        7 => (Target::Op(Operation::PutObject), Action::slow_down(), 1),
        8 => (Target::Op(Operation::PutObject), Action::FlipByte(rng.range(0, 64 * KIB)), 1),
        9 => (Target::Op(Operation::CreateMultipartUpload), Action::internal_error(), 1),
        _ => (Target::Op(Operation::CompleteMultipartUpload), Action::slow_down(), 1),
    };
    S3Fault { rule: Rule::new(target, action).times(times), persistent: false }
}

fn draw_genesys_fault(rng: &mut Rng) -> GenesysFault {
    match rng.range(0, 5) {
        0 | 1 => GenesysFault::Throttle(rng.range(1, 2) as u32),
        2 | 3 => GenesysFault::UploadFailure,
        4 => GenesysFault::RefusePut,
        _ => GenesysFault::DropSocket(rng.range(1, 4) as u32),
    }
}

/// The uploads, in the order the clients take them.
pub(crate) fn plan(settings: &PlanSettings, seed: u64) -> Vec<Job> {
    let mut rng = Rng::new(seed);
    let mut big = std::collections::BTreeSet::new();
    while big.len() < settings.big.min(settings.uploads) {
        // Not among the very last, so the big ones overlap with others.
        big.insert(rng.range(0, (settings.uploads * 3 / 4).max(1) as u64 - 1) as usize);
    }
    (0..settings.uploads)
        .map(|index| {
            let size =
                if big.contains(&index) { settings.big_size } else { draw_size(&mut rng, settings.max_size) };
            let shape = match rng.range(0, 19) {
                0..=12 => Shape::RawLength,
                13..=15 => Shape::RawChunked,
                16..=17 => Shape::FormLength,
                _ => Shape::FormChunked,
            };
            let kinds = if settings.hang_ups { 2 } else { 1 };
            let abort = (size > 0 && rng.chance(settings.abort_rate)).then(|| match rng.range(0, kinds) {
                0 => Abort {
                    at: rng.range(0, size - 1),
                    kind: AbortKind::HalfClose,
                    after_body: Duration::ZERO,
                },
                1 => Abort { at: rng.range(0, size - 1), kind: AbortKind::Reset, after_body: Duration::ZERO },
                _ => Abort {
                    at: size,
                    kind: AbortKind::AfterBody,
                    // Mostly soon after the body, while ferry completes the upload and delivers.
                    after_body: Duration::from_millis(if rng.chance(0.7) {
                        rng.range(0, 150)
                    } else {
                        rng.range(0, 1500)
                    }),
                },
            });
            let caption =
                rng.chance(0.15).then(|| format!("soak upload #{index} — ünïcödé, \"quoted\"\nline 2"));
            let s3_fault = rng
                .chance(settings.s3_fault_rate)
                .then(|| draw_s3_fault(&mut rng, settings.persistent_share));
            let genesys_fault = rng.chance(settings.genesys_fault_rate).then(|| draw_genesys_fault(&mut rng));
            Job {
                index,
                seed: rng.next_u64(),
                size,
                shape,
                expect_continue: rng.chance(0.9),
                abort,
                caption,
                s3_fault,
                genesys_fault,
            }
        })
        .collect()
}

/// A label for an S3 fault: operation and action.
pub(crate) fn s3_label(op: &str, action: &Action) -> String {
    let what = match action {
        Action::Respond { status, code } => format!("{status} {code}"),
        Action::ResetMidBody => "reset mid-body".into(),
        Action::Close => "close".into(),
        Action::Delay(_) => "delay".into(),
        Action::FlipByte(_) => "flipped byte".into(),
    };
    format!("s3 {op}: {what}")
}

/// The operation a target names, for labels.
pub(crate) fn target_label(target: Target) -> &'static str {
    match target {
        Target::UploadPart(_) | Target::Op(Operation::UploadPart(_)) => "UploadPart",
        Target::Op(Operation::PutObject) => "PutObject",
        Target::Op(Operation::CreateMultipartUpload) => "CreateMultipartUpload",
        Target::Op(Operation::CompleteMultipartUpload) => "CompleteMultipartUpload",
        Target::Op(Operation::GetObject) => "GetObject",
        Target::Op(_) | Target::Any => "other",
    }
}

/// The operation a logged request performed, for labels.
pub(crate) fn op_label(op: Operation) -> &'static str {
    target_label(Target::Op(op))
}
