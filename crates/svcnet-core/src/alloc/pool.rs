//! A bitmap of `size` slots with upstream's two bands (KEP-3070 / KEP-3668): slots below
//! `offset` are the static band, preferred by users who pick a value themselves; dynamic
//! allocation takes a random free slot at or above `offset`, and falls back to the static band
//! only when the dynamic band is full.

use serde::{Deserialize, Serialize};

use super::random::RandomSource;

/// The set of taken slots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    words: Vec<u64>,
    size: usize,
    offset: usize,
    count: usize,
}

impl Pool {
    pub fn new(size: usize, offset: usize) -> Self {
        Pool {
            words: vec![0; size.div_ceil(64)],
            size,
            offset: offset.min(size),
            count: 0,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn is_set(&self, slot: usize) -> bool {
        slot < self.size && self.words[slot / 64] & (1 << (slot % 64)) != 0
    }

    /// Marks a slot; false when it was already taken.
    pub fn set(&mut self, slot: usize) -> bool {
        if self.is_set(slot) {
            return false;
        }
        self.words[slot / 64] |= 1 << (slot % 64);
        self.count += 1;
        true
    }

    /// Frees a slot; false when it was free.
    pub fn clear(&mut self, slot: usize) -> bool {
        if !self.is_set(slot) {
            return false;
        }
        self.words[slot / 64] &= !(1 << (slot % 64));
        self.count -= 1;
        true
    }

    /// The taken slots, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words
            .iter()
            .enumerate()
            .flat_map(|(w, &bits)| (0..64).filter(move |b| bits & (1 << b) != 0).map(move |b| w * 64 + b))
    }

    /// Picks a free slot, treating `extra` as taken too, without marking it.
    pub fn pick_free(
        &self,
        extra: &dyn Fn(usize) -> bool,
        extra_count: usize,
        rng: &mut dyn RandomSource,
    ) -> Option<usize> {
        if self.count + extra_count >= self.size {
            return None;
        }
        let taken = |slot: usize| self.is_set(slot) || extra(slot);
        let dynamic = self.size - self.offset;
        if dynamic > 0 {
            let start = rng.below(dynamic);
            for i in 0..dynamic {
                let slot = self.offset + (start + i) % dynamic;
                if !taken(slot) {
                    return Some(slot);
                }
            }
        }
        if self.offset > 0 {
            let start = rng.below(self.offset);
            for i in 0..self.offset {
                let slot = (start + i) % self.offset;
                if !taken(slot) {
                    return Some(slot);
                }
            }
        }
        None
    }
}

/// The static band size upstream uses: `min(max(min_band, size / step), max_band)`, and none
/// for ranges of at most `min_band`.
pub fn band_offset(size: u128, min_band: u128, step: u128, max_band: u128) -> usize {
    if size <= min_band {
        return 0;
    }
    (size / step).clamp(min_band, max_band) as usize
}
