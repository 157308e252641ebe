//! Randomness is an input: allocators ask a `RandomSource` for indices and never seed their own.

/// A source of uniformly distributed indices.
pub trait RandomSource {
    /// A value in `0..bound`; `bound` is never 0.
    fn below(&mut self, bound: usize) -> usize;
}

/// A small deterministic generator (SplitMix64) for tests and reproducible runs.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl RandomSource for SplitMix64 {
    fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}
