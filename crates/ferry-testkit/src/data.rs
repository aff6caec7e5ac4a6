//! Deterministic pseudo-random test data (xorshift64*): the same bytes for a seed everywhere, so a
//! failing case can be replayed, and incompressible enough for hashing and storage tests and
//! benchmarks. One generator serves the small buffers of unit tests, the GiB files of the benches
//! (streamed, never held) and the numbers that pick sizes and frames.

use std::io::Write;

/// Spreads small seeds over the state space (the golden-ratio constant).
const SEED_SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;
/// xorshift64*'s output multiplier.
const OUTPUT_MULTIPLIER: u64 = 0x2545_f491_4f6c_dd1d;

/// A seeded xorshift64* generator of words and bytes. Not for anything secret.
#[derive(Debug, Clone)]
pub struct PseudoRandom {
    state: u64,
    /// The word the last [`fill`](Self::fill) cut short, and how much of it was used.
    spare: [u8; 8],
    spare_used: usize,
}

impl PseudoRandom {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        Self { state: seed.wrapping_mul(SEED_SPREAD) | 1, spare: [0; 8], spare_used: 8 }
    }

    /// The next 64-bit number.
    pub fn next_u64(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(OUTPUT_MULTIPLIER)
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn below(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.next_u64() % (hi - lo) }
    }

    /// Fills `buf` with the next bytes of the stream (words in little-endian order). Successive
    /// calls continue exactly where the last stopped, whatever the buffers' lengths, so a file
    /// written block by block holds the bytes [`pseudo_random`] gives in one piece.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let from_spare = (8 - self.spare_used).min(buf.len());
        let (head, rest) = buf.split_at_mut(from_spare);
        head.copy_from_slice(&self.spare[self.spare_used..self.spare_used + from_spare]);
        self.spare_used += from_spare;
        let mut words = rest.chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            self.spare = self.next_u64().to_le_bytes();
            tail.copy_from_slice(&self.spare[..tail.len()]);
            self.spare_used = tail.len();
        }
    }
}

/// `len` pseudo-random bytes for `seed`, opening with `head` (a magic number, say; `head` counts
/// towards `len` and is cut short when longer).
pub fn pseudo_random(head: &[u8], len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0; len];
    let head = &head[..head.len().min(len)];
    out[..head.len()].copy_from_slice(head);
    PseudoRandom::new(seed).fill(&mut out[head.len()..]);
    out
}

/// Writes `len` pseudo-random bytes for `seed` to `out` in 1 MiB blocks (the same bytes as
/// [`pseudo_random`] with no head), never holding more than one block.
pub fn write_pseudo_random(mut out: impl Write, len: u64, seed: u64) -> std::io::Result<()> {
    const BLOCK: usize = 1 << 20;
    let mut rng = PseudoRandom::new(seed);
    let mut block = vec![0; BLOCK];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left).map_or(BLOCK, |l| l.min(BLOCK));
        rng.fill(&mut block[..n]);
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::{PseudoRandom, pseudo_random, write_pseudo_random};

    #[test]
    fn deterministic_with_a_head() {
        let a = pseudo_random(b"%PDF", 100, 7);
        assert_eq!(a.len(), 100);
        assert!(a.starts_with(b"%PDF"));
        assert_eq!(a, pseudo_random(b"%PDF", 100, 7));
        assert_ne!(a, pseudo_random(b"%PDF", 100, 8));
        assert_eq!(pseudo_random(b"%PDF", 2, 7), b"%P");
    }

    #[test]
    fn the_stream_is_the_same_whatever_the_buffer_lengths() {
        let whole = pseudo_random(b"", 1000, 42);
        let mut rng = PseudoRandom::new(42);
        let mut pieces = Vec::new();
        for len in [0, 1, 3, 8, 13, 7, 64, 5, 900] {
            let mut buf = vec![0; len];
            rng.fill(&mut buf);
            pieces.extend_from_slice(&buf);
        }
        assert_eq!(pieces[..1000], whole[..]);
    }

    #[test]
    fn the_first_words_are_pinned() {
        // Data made by an earlier build (recorded digests, replayed seeds) stays the same.
        assert_eq!(PseudoRandom::new(0).next_u64(), 0x47e4_ce4b_896c_dd1d);
        let mut rng = PseudoRandom::new(1);
        assert_eq!(rng.next_u64(), 0x0d83_b3e2_9a21_487a);
        assert_eq!(pseudo_random(b"", 8, 1), 0x0d83_b3e2_9a21_487a_u64.to_le_bytes());
    }

    #[test]
    fn numbers_stay_in_their_range() {
        let mut rng = PseudoRandom::new(3);
        for _ in 0..1000 {
            let n = rng.below(10, 20);
            assert!((10..20).contains(&n), "{n}");
        }
        assert_eq!(rng.below(5, 5), 5);
    }

    #[test]
    fn a_written_file_holds_the_same_bytes() {
        let mut out = Vec::new();
        write_pseudo_random(&mut out, (1 << 20) + 11, 9).expect("writes to a Vec");
        assert_eq!(out, pseudo_random(b"", (1 << 20) + 11, 9));
    }
}
