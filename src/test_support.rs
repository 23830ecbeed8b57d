//! Helpers shared by unit tests: deterministic mutations of valid inputs,
//! to show that parsers refuse garbage with an error and never panic.

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Mutator {
    state: u64,
}

impl Mutator {
    /// A generator for `seed` (any value but zero works).
    pub fn new(seed: u64) -> Self {
        Self { state: seed.max(1) }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A copy of `input` with a few random edits: bytes deleted, replaced or
    /// inserted (favouring the characters that matter to CSV and JSON), or
    /// the tail cut off.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        const INTERESTING: &[u8] = b",\"\n\r{}[]:\\ 0aZ\xff\x00";
        let mut out = input.to_vec();
        for _ in 0..=self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(4) {
                0 if at < out.len() => {
                    out.remove(at);
                }
                1 if at < out.len() => out[at] = INTERESTING[self.below(INTERESTING.len())],
                2 => out.insert(at, INTERESTING[self.below(INTERESTING.len())]),
                _ => out.truncate(at),
            }
        }
        out
    }
}
