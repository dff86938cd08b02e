//! Fixtures shared by the prover's integration tests: deterministic slot data.

use hoard_prover::{BLOCK_SIZE, SlotTree, block_root};

/// A slot whose bytes are a pure function of `(seed, block index)`.
pub(crate) struct Slot {
    pub(crate) seed: u64,
    /// Blocks repeat with this period, so a 1 GiB slot needs only a few distinct blocks hashed.
    pub(crate) distinct: u64,
    pub(crate) tree: SlotTree,
}

impl Slot {
    pub(crate) fn new(seed: u64, blocks: u64, distinct: u64) -> Self {
        let roots: Vec<_> = (0..distinct.min(blocks))
            .map(|b| block_root(&block(seed, b)))
            .collect();
        let all: Vec<_> = (0..blocks)
            .map(|b| roots[(b % distinct) as usize])
            .collect();
        let tree = SlotTree::from_block_roots(&all).expect("valid slot");
        Self {
            seed,
            distinct,
            tree,
        }
    }

    pub(crate) fn read(&self, index: u64, buf: &mut [u8; BLOCK_SIZE]) -> Result<(), String> {
        *buf = block(self.seed, index % self.distinct);
        Ok(())
    }
}

/// splitmix64 output for `(seed, index)`, filling one block.
pub(crate) fn block(seed: u64, index: u64) -> [u8; BLOCK_SIZE] {
    let mut state = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = [0u8; BLOCK_SIZE];
    for chunk in out.as_chunks_mut::<8>().0 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        *chunk = (z ^ (z >> 31)).to_le_bytes();
    }
    out
}
