//! Test data: deterministic pseudo-random bytes (xorshift64*), the same for a given seed everywhere,
//! so a failing case can be replayed and incompressible enough for hashing and storage tests.

/// `len` pseudo-random bytes after `head` (a magic number, say; `head` counts towards `len`).
pub fn pseudo_random(head: &[u8], len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    out.extend_from_slice(head);
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn deterministic_with_a_head() {
        let a = super::pseudo_random(b"%PDF", 100, 7);
        assert_eq!(a.len(), 100);
        assert!(a.starts_with(b"%PDF"));
        assert_eq!(a, super::pseudo_random(b"%PDF", 100, 7));
        assert_ne!(a, super::pseudo_random(b"%PDF", 100, 8));
    }
}
