//! Part planning: one fixed part size for the whole upload, inside S3's multipart limits.
//!
//! Every non-last part has the same size (Cloudflare R2 requires it, and it keeps the arithmetic
//! simple); sizes are whole MiB, at least [`MIN_PART_SIZE`] and at most [`MAX_PART_SIZE`], and no
//! upload needs more than [`MAX_PARTS`] parts. When the length is unknown the plan is made for the
//! largest file accepted.

/// One mebibyte.
pub const MIB: u64 = 1024 * 1024;
/// S3's smallest non-last part.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// S3's largest part number.
pub const MAX_PARTS: u64 = 10_000;
/// The largest object a multipart upload can hold with equal parts: 10,000 × 5 GiB.
pub const MAX_OBJECT_SIZE: u64 = MAX_PARTS * MAX_PART_SIZE;

/// What the caller allows: the part size it would like and the largest file it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Preferred part size in bytes; raised when the file needs bigger parts, rounded up to a MiB,
    /// and clamped to S3's limits.
    pub preferred_part_size: u64,
    /// Largest file accepted, in bytes.
    pub max_file_size: u64,
}

impl Default for PlanLimits {
    /// 8 MiB parts (what `aws s3 cp` uses) and files up to 5 GiB.
    fn default() -> Self {
        Self { preferred_part_size: 8 * MIB, max_file_size: 5 * 1024 * MIB }
    }
}

/// The outcome of planning: a fixed part size and how many parts the file takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    /// Size of every part but the last, in bytes (a whole number of MiB).
    pub part_size: u64,
    /// The declared length, if the caller knew it.
    pub declared_len: Option<u64>,
    /// The most bytes the upload may carry: the declared length, or the file-size limit.
    pub max_len: u64,
}

impl PartPlan {
    /// The number of parts the declared length takes (an empty file is one empty part), or `None`
    /// when the length is not known in advance.
    pub fn part_count(&self) -> Option<u32> {
        self.declared_len.map(|len| parts_for(len, self.part_size))
    }

    /// The most parts this plan can produce: for the declared length, or for the largest file.
    pub fn max_parts(&self) -> u32 {
        parts_for(self.max_len, self.part_size)
    }

    /// Whether a file of `len` bytes fits in one part (and so goes to S3 as a single PUT).
    pub fn is_single_part(&self, len: u64) -> bool {
        len <= self.part_size
    }
}

fn parts_for(len: u64, part_size: u64) -> u32 {
    // `len <= MAX_OBJECT_SIZE` and `part_size >= MIN_PART_SIZE` keep this within u32.
    len.div_ceil(part_size).max(1) as u32
}

/// Why no plan fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The declared length is over the configured maximum.
    #[error("file of {len} bytes is larger than the {max} bytes accepted")]
    FileTooLarge {
        /// Declared length.
        len: u64,
        /// Configured maximum.
        max: u64,
    },
    /// The length (declared or maximum) cannot be stored in 10,000 parts of 5 GiB.
    #[error("{len} bytes cannot be stored as one multipart object (at most {MAX_OBJECT_SIZE} bytes)")]
    BeyondMultipartLimit {
        /// The length asked for.
        len: u64,
    },
}

/// Plans the parts for a file of `declared_len` bytes (or unknown length) under `limits`.
///
/// `part = max(preferred, ceil(len / 10,000))`, rounded up to a whole MiB and clamped to
/// 5 MiB ..= 5 GiB.
///
/// # Errors
/// [`PlanError::FileTooLarge`] when the declared length is over `limits.max_file_size`, and
/// [`PlanError::BeyondMultipartLimit`] when the length to plan for exceeds 10,000 × 5 GiB.
pub fn plan_parts(declared_len: Option<u64>, limits: &PlanLimits) -> Result<PartPlan, PlanError> {
    if let Some(len) = declared_len {
        if len > MAX_OBJECT_SIZE {
            return Err(PlanError::BeyondMultipartLimit { len });
        }
        if len > limits.max_file_size {
            return Err(PlanError::FileTooLarge { len, max: limits.max_file_size });
        }
    }
    let max_len = declared_len.unwrap_or(limits.max_file_size);
    if max_len > MAX_OBJECT_SIZE {
        return Err(PlanError::BeyondMultipartLimit { len: max_len });
    }
    let needed = max_len.div_ceil(MAX_PARTS);
    let part_size = limits
        .preferred_part_size
        .max(needed)
        .div_ceil(MIB)
        .saturating_mul(MIB)
        .clamp(MIN_PART_SIZE, MAX_PART_SIZE);
    debug_assert!(part_size * MAX_PARTS >= max_len);
    Ok(PartPlan { part_size, declared_len, max_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(preferred: u64, max: u64) -> PlanLimits {
        PlanLimits { preferred_part_size: preferred, max_file_size: max }
    }

    #[test]
    fn small_preferred_sizes_are_raised_to_five_mib() {
        let plan = plan_parts(Some(1), &limits(1, MIB * 100)).unwrap();
        assert_eq!(plan.part_size, MIN_PART_SIZE);
        assert_eq!(plan.part_count(), Some(1));
    }

    #[test]
    fn empty_file_is_one_empty_part() {
        let plan = plan_parts(Some(0), &PlanLimits::default()).unwrap();
        assert_eq!(plan.part_count(), Some(1));
        assert!(plan.is_single_part(0));
    }

    #[test]
    fn huge_files_get_bigger_whole_mib_parts() {
        let len = 200 * 1024 * MIB; // 200 GiB needs parts over 20 MiB.
        let plan = plan_parts(Some(len), &limits(8 * MIB, MAX_OBJECT_SIZE)).unwrap();
        assert_eq!(plan.part_size, 21 * MIB);
        assert!(plan.part_count().unwrap() <= 10_000);
    }

    #[test]
    fn the_largest_object_needs_five_gib_parts() {
        let plan = plan_parts(Some(MAX_OBJECT_SIZE), &limits(8 * MIB, MAX_OBJECT_SIZE)).unwrap();
        assert_eq!(plan.part_size, MAX_PART_SIZE);
        assert_eq!(plan.part_count(), Some(10_000));
    }

    #[test]
    fn unknown_length_plans_for_the_maximum() {
        let plan = plan_parts(None, &limits(5 * MIB, 100 * 1024 * MIB)).unwrap();
        assert_eq!(plan.part_size, 11 * MIB);
        assert_eq!(plan.part_count(), None);
        assert!(plan.max_parts() <= 10_000);
    }

    #[test]
    fn impossible_inputs_are_typed_errors() {
        assert_eq!(
            plan_parts(Some(11), &limits(5 * MIB, 10)),
            Err(PlanError::FileTooLarge { len: 11, max: 10 })
        );
        assert_eq!(
            plan_parts(Some(MAX_OBJECT_SIZE + 1), &limits(5 * MIB, u64::MAX)),
            Err(PlanError::BeyondMultipartLimit { len: MAX_OBJECT_SIZE + 1 })
        );
        assert_eq!(
            plan_parts(None, &limits(5 * MIB, u64::MAX)),
            Err(PlanError::BeyondMultipartLimit { len: u64::MAX })
        );
    }

    #[test]
    fn oversized_preference_is_clamped() {
        let plan = plan_parts(Some(MIB), &limits(u64::MAX, MIB)).unwrap();
        assert_eq!(plan.part_size, MAX_PART_SIZE);
    }
}
