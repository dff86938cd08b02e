//! Properties of direct proofs: every honest proof verifies, and any change to the proof, the
//! challenge or the committed root is rejected.

mod common;

use std::num::NonZeroU64;

use hoard_prover::{
    BLOCK_SIZE, CELL_SIZE, Challenge, DirectProof, Hash, ProveError, Seed, SlotId, VerifyError,
    leaf_hash, node_hash, verify,
};
use proptest::prelude::*;

/// The slot root by the textbook definition: every cell leaf, padded with zero-cell leaves.
fn reference_root(slot: &common::Slot) -> Hash {
    let mut level: Vec<Hash> = (0..slot.tree.blocks())
        .flat_map(|b| {
            let block = common::block(slot.seed, b % slot.distinct);
            block
                .as_chunks::<CELL_SIZE>()
                .0
                .iter()
                .map(leaf_hash)
                .collect::<Vec<_>>()
        })
        .collect();
    level.resize(level.len().next_power_of_two(), leaf_hash(&[0; CELL_SIZE]));
    while level.len() > 1 {
        level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    level[0]
}

fn challenge(slot: &common::Slot, seed: [u8; 32], samples: u32) -> Challenge {
    Challenge {
        seed: Seed(seed),
        slot_id: SlotId([7; 32]),
        samples,
        cell_count: NonZeroU64::new(slot.tree.cell_count()).expect("non-empty"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn honest_proofs_verify_and_match_the_textbook_root(
        blocks in 1u64..=9, data_seed in any::<u64>(), seed in any::<[u8; 32]>(), samples in 1u32..=20,
    ) {
        let slot = common::Slot::new(data_seed, blocks, blocks);
        prop_assert_eq!(slot.tree.root(), reference_root(&slot));
        let c = challenge(&slot, seed, samples);
        let proof = DirectProof::create(&slot.tree, &c, |b, buf| slot.read(b, buf)).expect("proof");
        prop_assert_eq!(proof.cells.len(), c.unique_indices().len());
        prop_assert_eq!(verify(&slot.tree.root(), &c, &proof.to_bytes()), Ok(()));
    }

    #[test]
    fn any_flipped_bit_is_rejected(
        blocks in 1u64..=5, seed in any::<[u8; 32]>(), samples in 1u32..=16, at in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let slot = common::Slot::new(1, blocks, blocks);
        let c = challenge(&slot, seed, samples);
        let mut bytes = DirectProof::create(&slot.tree, &c, |b, buf| slot.read(b, buf)).expect("proof").to_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(verify(&slot.tree.root(), &c, &bytes).is_err());
    }

    #[test]
    fn proofs_do_not_transfer_to_other_challenges_or_roots(
        blocks in 2u64..=5, seed in any::<[u8; 32]>(), other in any::<[u8; 32]>(), samples in 1u32..=16,
    ) {
        prop_assume!(seed != other);
        let slot = common::Slot::new(2, blocks, blocks);
        let c = challenge(&slot, seed, samples);
        let bytes = DirectProof::create(&slot.tree, &c, |b, buf| slot.read(b, buf)).expect("proof").to_bytes();
        let moved = Challenge { seed: Seed(other), ..c };
        // Another seed samples other cells, except when every sample happens to coincide.
        if moved.unique_indices() != c.unique_indices() {
            prop_assert!(verify(&slot.tree.root(), &moved, &bytes).is_err());
        }
        let other_slot = common::Slot::new(3, blocks, blocks);
        let is_root_mismatch = matches!(
            verify(&other_slot.tree.root(), &c, &bytes),
            Err(VerifyError::RootMismatch { .. })
        );
        prop_assert!(is_root_mismatch);
    }
}

#[test]
fn wrong_lengths_are_malformed() {
    let slot = common::Slot::new(4, 3, 3);
    let c = challenge(&slot, [5; 32], 8);
    let bytes = DirectProof::create(&slot.tree, &c, |b, buf| slot.read(b, buf))
        .expect("proof")
        .to_bytes();
    let root = slot.tree.root();
    for bad in [
        &bytes[..bytes.len() - 32],
        &bytes[..bytes.len() - 1],
        &bytes[..CELL_SIZE - 1],
        &[][..],
    ] {
        assert!(matches!(
            verify(&root, &c, bad),
            Err(VerifyError::Malformed(_))
        ));
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 32]);
    assert!(matches!(
        verify(&root, &c, &longer),
        Err(VerifyError::Malformed(_))
    ));
    let none = Challenge { samples: 0, ..c };
    assert_eq!(verify(&root, &none, &bytes), Err(VerifyError::NoSamples));
}

#[test]
fn a_damaged_block_is_caught_when_proving() {
    let slot = common::Slot::new(5, 4, 4);
    let c = challenge(&slot, [6; 32], 16);
    let target = c.indices()[0].block();
    let result = DirectProof::create(&slot.tree, &c, |b, buf| {
        slot.read(b, buf)?;
        if b == target {
            buf[BLOCK_SIZE / 2] ^= 0xff;
        }
        Ok::<_, String>(())
    });
    assert!(matches!(result, Err(ProveError::BlockMismatch { block }) if block == target));
    let wrong_size = Challenge {
        cell_count: NonZeroU64::new(256).expect("non-zero"),
        ..c
    };
    assert!(matches!(
        DirectProof::create(&slot.tree, &wrong_size, |b, buf| slot.read(b, buf)),
        Err(ProveError::CellCountMismatch { .. })
    ));
}
