//! A deterministic random source for the crate's tests (xorshift64*): the
//! same inputs on every run, no dependency.

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Up to `max_parts` pieces strung together.
    pub(crate) fn text(&mut self, pieces: &[&str], max_parts: usize) -> String {
        (0..self.below(max_parts + 1))
            .map(|_| *self.pick(pieces))
            .collect()
    }
}
