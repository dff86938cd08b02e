//! hoard's compact proof scheme: a Poseidon commitment per slot, and one Groth16 proof (BN254)
//! per host per period for a whole batch of slots.
//!
//! ```text
//!  renter:  slot blocks ─▶ block_root (Poseidon, 8 levels) ─▶ CommitmentBuilder (14 levels,
//!           zero-padded to 2^22 cells) ─▶ SlotCommitment { root, cellCount, value = H(root, n) }
//!           k+m values ─▶ SHA-256 dataset tree ─▶ compactRoot in the request
//!
//!  host:    CompactSlotTree (block roots kept) ─┐
//!           seed, own address ─▶ host_seed x0 ──┼▶ slot_witness (reads the sampled blocks)
//!                                               └▶ prove_batch(Keys, x0, witnesses) ─▶ Proof
//!           Proof::to_evm ─▶ Marketplace.submitCompactProof(period, slotIds, proof)
//!
//!  chain:   generated verifier (solidity::verifier_source, VK in code) checks
//!           [x0, c_1 … c_S] built from storage; zero inputs are padding
//! ```
//!
//! - [`poseidon`] / [`gadget`]: circom's Poseidon natively and in R1CS.
//! - [`encoding`]: cells as field elements, field elements as EVM words, the host-bound seed.
//! - [`tree`]: the Poseidon cell tree, the commitment and the streaming builder.
//! - [`statement`]: sample indices; [`circuit`]: the batch circuit.
//! - [`keys`]: deterministic devnet set-up and the key cache; [`proof`]: prove, verify, EVM form.
//! - [`solidity`]: the verifier contract generator.
//!
//! The statement, the encodings and the trust model are in `docs/protocol.md` ("Compact proofs").

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod circuit;
pub mod encoding;
pub mod gadget;
pub mod keys;
pub mod poseidon;
pub mod proof;
pub mod solidity;
pub mod statement;
pub mod tree;

pub use ark_bn254::Fr;
/// arkworks' `rand` (0.8), for the proving randomness: `rand::rngs::OsRng`.
pub use ark_std::rand;
pub use circuit::{BatchCircuit, SAMPLES, SampleWitness, Shape, SlotWitness};
pub use encoding::{fr_from_bytes, fr_to_bytes, host_seed};
pub use keys::{DEVNET_SEED, KeyError, Keys};
pub use proof::{
    Proof, ProveError, VerifyError, batch_circuit, cell_witness, input_words, prove, prove_batch,
    slot_witness, verify, verifying_key_hash,
};
pub use statement::sample_indices;
pub use tree::{
    CommitmentBuilder, CompactSlotTree, MAX_BLOCKS, MAX_CELLS, SlotCommitment, TreeError,
    block_root, block_roots, commit_blocks,
};
