//! Counting the part bytes an uploader holds, so the bound `part size × (in flight + 1)` is
//! observable (tests assert it; the server exports it as a metric).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of part data held by uploads, now and at the peak. Shared by every upload of an
/// [`Uploader`](crate::Uploader), or across uploaders when the caller passes one in.
#[derive(Debug, Default)]
pub struct MemoryGauge {
    held: AtomicU64,
    peak: AtomicU64,
}

impl MemoryGauge {
    /// A gauge at zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }

    /// Most bytes held at once since creation or the last [`reset_peak`](Self::reset_peak).
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }

    /// Starts a new peak measurement from the current level.
    pub fn reset_peak(&self) {
        self.peak.store(self.held(), Ordering::Release);
    }

    /// Counts `bytes` as held until the returned guard drops.
    pub(crate) fn hold(self: &Arc<Self>, bytes: u64) -> HeldBytes {
        let now = self.held.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.peak.fetch_max(now, Ordering::AcqRel);
        HeldBytes { gauge: Arc::clone(self), bytes }
    }
}

/// Bytes counted in a [`MemoryGauge`] while this lives.
#[derive(Debug)]
pub(crate) struct HeldBytes {
    gauge: Arc<MemoryGauge>,
    bytes: u64,
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        self.gauge.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_and_peaks() {
        let gauge = MemoryGauge::new();
        let a = gauge.hold(10);
        let b = gauge.hold(5);
        assert_eq!((gauge.held(), gauge.peak()), (15, 15));
        drop(a);
        assert_eq!((gauge.held(), gauge.peak()), (5, 15));
        gauge.reset_peak();
        assert_eq!(gauge.peak(), 5);
        drop(b);
        assert_eq!(gauge.held(), 0);
    }
}
