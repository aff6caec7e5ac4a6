//! Counting the part bytes an uploader holds, so the bound `part size × (in flight + 1)` is
//! observable (tests assert it; the server exports it as a metric), and sharing a memory budget
//! between uploads part by part ([`PartBudget`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A memory budget shared by every upload, charged per buffered part rather than per upload: a
/// part's share (its size, in `unit`-byte permits) is taken when it starts filling and given back
/// when S3 has it, so a slow upload holds one part's share, not `part size × (in flight + 1)`.
///
/// The caller takes the first part's share itself when it admits an upload
/// ([`ObjectWrite::reservation`](crate::ObjectWrite::reservation), refusing when the pool is
/// empty); [`Uploader::upload`](crate::Uploader::upload) hands each full part's share over to
/// the part in flight and waits for the next part's share before reading on (back-pressure). An
/// upload waiting for a share holds nothing but parts in flight, which always end, so uploads
/// cannot starve one another into a standstill.
#[derive(Debug, Clone)]
pub struct PartBudget {
    pool: Arc<Semaphore>,
    unit: u64,
}

impl PartBudget {
    /// A budget drawing from `pool`, whose permits stand for `unit` bytes each.
    pub fn new(pool: Arc<Semaphore>, unit: u64) -> Self {
        Self { pool, unit: unit.max(1) }
    }

    /// Permits that cover `bytes`.
    pub fn permits_for(&self, bytes: u64) -> u32 {
        u32::try_from(bytes.div_ceil(self.unit)).unwrap_or(u32::MAX)
    }

    /// Waits for the share of a part of `bytes`.
    pub(crate) async fn acquire(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.pool).acquire_many_owned(self.permits_for(bytes)).await.ok()
    }
}

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
        HeldBytes { gauge: Arc::clone(self), bytes, _share: None }
    }
}

/// Bytes counted in a [`MemoryGauge`] (and their [`PartBudget`] share, if any) while this lives.
#[derive(Debug)]
pub(crate) struct HeldBytes {
    gauge: Arc<MemoryGauge>,
    bytes: u64,
    _share: Option<OwnedSemaphorePermit>,
}

impl HeldBytes {
    /// Keeps `share` (the part's share of a budget) until these bytes are released.
    pub(crate) fn with_share(mut self, share: Option<OwnedSemaphorePermit>) -> Self {
        self._share = share;
        self
    }
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
