//! Storage challenges: slot ids, whether a proof is due, and which cells to sample.
//!
//! Everything here is keccak-256 over 32-byte words (`abi.encode` of `bytes32`/`uint256`), so the
//! Marketplace contract computes the same values with a single `keccak256(abi.encode(…))`.

use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};
use tiny_keccak::{Hasher, Keccak};

use crate::{
    bytes32,
    layout::{CellIndex, SlotIndex},
};

bytes32! {
    /// A storage request's id, as the Marketplace assigns it.
    RequestId
}
bytes32! {
    /// `keccak256(abi.encode(requestId, uint256(slotIndex)))`.
    SlotId
}
bytes32! {
    /// A proof period's randomness: the hash of the block just before the period starts.
    Seed
}
bytes32! {
    /// A dataset's id: SHA-256 of its encoded manifest (docs/protocol.md section 4).
    DatasetId
}

/// keccak-256 of the concatenated 32-byte words.
fn keccak_words(words: &[&[u8; 32]]) -> [u8; 32] {
    let mut k = Keccak::v256();
    for w in words {
        k.update(*w);
    }
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// `uint256(word) % n`, reading the word as a big-endian 256-bit number.
fn mod_u256(word: &[u8; 32], n: NonZeroU64) -> u64 {
    let n = u128::from(n.get());
    // Horner's rule on 64-bit limbs; every intermediate stays below n · 2^64 < 2^128.
    let rem = word.as_chunks::<8>().0.iter().fold(0u128, |r, limb| {
        ((r << 64) | u128::from(u64::from_be_bytes(*limb))) % n
    });
    rem as u64 // < n ≤ u64::MAX
}

/// 32-byte big-endian encoding of an integer, as `abi.encode(uint256(x))`.
fn word(x: u64) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&x.to_be_bytes());
    w
}

/// The id of slot `index` of request `request`.
pub fn slot_id(request: &RequestId, index: SlotIndex) -> SlotId {
    SlotId(keccak_words(&[&request.0, &word(index.0.into())]))
}

/// Whether a slot must be proven in the period with `seed`: one period in `probability` on
/// average (`1` = every period).
pub fn proof_required(seed: &Seed, slot: &SlotId, probability: NonZeroU64) -> bool {
    mod_u256(&keccak_words(&[&seed.0, &slot.0]), probability) == 0
}

/// One storage challenge: which slot, which period's seed, how many cells of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// The period's seed.
    pub seed: Seed,
    /// The challenged slot.
    pub slot_id: SlotId,
    /// Cells sampled per proof.
    pub samples: u32,
    /// Cells in the slot (`256 · S`).
    pub cell_count: NonZeroU64,
}

impl Challenge {
    /// The challenge of an off-chain audit (`/hoard/audit/1`) of a slot of `dataset`: an audit
    /// has no period, so the auditor picks a fresh `seed`, and the dataset id stands in for the
    /// slot id as the samples' salt. The auditor and the audited host both build it here.
    pub fn audit(seed: Seed, dataset: &DatasetId, samples: u32, cell_count: NonZeroU64) -> Self {
        Self {
            seed,
            slot_id: SlotId(dataset.0),
            samples,
            cell_count,
        }
    }

    /// Sample `j` is `keccak256(abi.encode(seed, slotId, uint256(j))) % cellCount`, for
    /// `j = 0..samples`, in that order (duplicates possible).
    pub fn indices(&self) -> Vec<CellIndex> {
        (0..self.samples)
            .map(|j| {
                let h = keccak_words(&[&self.seed.0, &self.slot_id.0, &word(j.into())]);
                CellIndex(mod_u256(&h, self.cell_count))
            })
            .collect()
    }

    /// The sampled cells, ascending, each once: the order a proof carries them in.
    pub fn unique_indices(&self) -> Vec<CellIndex> {
        let mut u = self.indices();
        u.sort_unstable();
        u.dedup();
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: NonZeroU64 = NonZeroU64::MIN;

    #[test]
    fn keccak_of_empty_input_is_the_known_constant() {
        let mut out = [0u8; 32];
        Keccak::v256().finalize(&mut out);
        assert_eq!(
            hex::encode(out),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn mod_u256_matches_small_and_wide_cases() {
        let n = |x| NonZeroU64::new(x).expect("non-zero");
        assert_eq!(mod_u256(&word(1000), n(7)), 1000 % 7);
        // 2^64 mod (2^64 - 1) = 1.
        let mut w = [0u8; 32];
        w[23] = 1;
        assert_eq!(mod_u256(&w, n(u64::MAX)), 1);
        // (2^256 - 1) mod 2^32 = 2^32 - 1.
        assert_eq!(mod_u256(&[0xff; 32], n(1 << 32)), (1 << 32) - 1);
        assert_eq!(mod_u256(&[0xff; 32], ONE), 0);
    }

    #[test]
    fn probability_one_means_every_period() {
        let slot = slot_id(&RequestId([3; 32]), SlotIndex(1));
        assert!((0..50u8).all(|s| proof_required(&Seed([s; 32]), &slot, ONE)));
        let p = NonZeroU64::new(4).expect("non-zero");
        let hits = (0..=255u8)
            .filter(|s| proof_required(&Seed([*s; 32]), &slot, p))
            .count();
        assert!(
            (30..100).contains(&hits),
            "about a quarter of 256, got {hits}"
        );
    }

    #[test]
    fn indices_are_in_range_and_depend_on_every_input() {
        let c = Challenge {
            seed: Seed([1; 32]),
            slot_id: slot_id(&RequestId([2; 32]), SlotIndex(0)),
            samples: 16,
            cell_count: NonZeroU64::new(1000).expect("non-zero"),
        };
        let i = c.indices();
        assert_eq!(i.len(), 16);
        assert!(i.iter().all(|x| x.0 < 1000));
        assert_ne!(
            i,
            Challenge {
                seed: Seed([9; 32]),
                ..c
            }
            .indices()
        );
        assert_ne!(
            i,
            Challenge {
                slot_id: SlotId([9; 32]),
                ..c
            }
            .indices()
        );
        assert_ne!(slot_id(&RequestId([2; 32]), SlotIndex(1)), c.slot_id);
        let u = c.unique_indices();
        assert!(u.windows(2).all(|w| w[0] < w[1]));
    }
}
