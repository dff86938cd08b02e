//! Fixtures shared by the integration tests: deterministic slot data, both trees of a slot, and
//! the small circuit's devnet keys (generated once per test binary).

#![allow(dead_code, unreachable_pub)]

use std::sync::OnceLock;

use hoard_compact::{CompactSlotTree, Keys, Shape, block_roots};
use hoard_prover::{BLOCK_SIZE, SlotTree, block_root};

/// The small circuit's keys from the devnet seed.
pub fn small_keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys::setup(Shape::SMALL, hoard_compact::DEVNET_SEED).expect("set-up"))
}

/// A slot whose bytes are a pure function of `(seed, block index mod distinct)`.
pub struct Slot {
    pub seed: u64,
    pub distinct: u64,
    pub compact: CompactSlotTree,
    pub sha: SlotTree,
}

impl Slot {
    pub fn new(seed: u64, blocks: u64, distinct: u64) -> Self {
        let distinct = distinct.min(blocks);
        let mut bytes = Vec::new();
        for b in 0..distinct {
            bytes.extend_from_slice(&block(seed, b));
        }
        let poseidon = block_roots(&bytes).expect("whole blocks");
        let sha: Vec<_> = (0..distinct).map(|b| block_root(&block(seed, b))).collect();
        let compact = CompactSlotTree::from_block_roots(
            (0..blocks)
                .map(|b| poseidon[(b % distinct) as usize])
                .collect(),
        )
        .expect("valid slot");
        let sha = SlotTree::from_block_roots(
            &(0..blocks)
                .map(|b| sha[(b % distinct) as usize])
                .collect::<Vec<_>>(),
        )
        .expect("valid slot");
        Self {
            seed,
            distinct,
            compact,
            sha,
        }
    }

    pub fn read(&self, index: u64, buf: &mut [u8; BLOCK_SIZE]) -> Result<(), String> {
        *buf = block(self.seed, index % self.distinct);
        Ok(())
    }
}

/// splitmix64 output for `(seed, index)`, filling one block.
pub fn block(seed: u64, index: u64) -> [u8; BLOCK_SIZE] {
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
