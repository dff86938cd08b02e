//! The batch circuit: one Groth16 statement for `S` slots of `s` samples each.
//!
//! Public inputs, in order: `x0` (the host-bound period seed) and the `S` slot commitments
//! `c_1 … c_S` (zero at a padding position). For every slot `i` the prover knows a tree root
//! `root_i`, a cell count `n_i` and, for every sample, a cell and its 22 siblings, such that:
//!
//! 1. `n_i − 1 < 2^22`, and `c_i = 0` or `c_i = Poseidon(2)(root_i, n_i)`;
//! 2. the sample hashes `u_t` come from `x0` and `c_i` ([`crate::statement`]), strictly
//!    decomposed into bits, so each 40-bit chunk is fixed by the statement;
//! 3. sample `j`'s index is `chunk_j mod n_i`: `chunk_j = q·n_i + idx`, `q < 2^40`,
//!    `idx < 2^22`, `n_i − 1 − idx < 2^22` (all far below `r`, so this is integer division);
//! 4. the cell's leaf, hashed up the 22 siblings with the index bits choosing left or right,
//!    gives `root_i`.
//!
//! A padding slot (`c_i = 0`) needs any consistent witness: the prover uses the all-zero tree.
//! A real commitment is never zero (the contract refuses it at fill time).

use ark_bn254::Fr;
use ark_ff::{PrimeField, Zero};
use ark_r1cs_std::{
    alloc::AllocVar,
    boolean::Boolean,
    convert::ToBitsGadget,
    eq::EqGadget,
    fields::{FieldVar, fp::FpVar},
    select::CondSelectGadget,
};
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use hoard_prover::CELL_SIZE;

use crate::{
    encoding::{CELL_ELEMENTS, cell_elements},
    gadget::{poseidon2, poseidon9, value_of},
    statement::{CHUNK_BITS, CHUNKS_PER_HASH},
    tree::{DEPTH, zero},
};

/// A circuit's fixed shape. Each shape has its own keys and its own verifier contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Slots per proof (`S`).
    pub slots: usize,
    /// Samples per slot (`s`).
    pub samples: usize,
}

impl Shape {
    /// Four slots: tests and short devnet periods.
    pub const SMALL: Self = Self {
        slots: 4,
        samples: SAMPLES,
    };
    /// Thirty-two slots: production batches.
    pub const LARGE: Self = Self {
        slots: 32,
        samples: SAMPLES,
    };

    /// Public inputs: `x0` and one commitment per slot.
    pub const fn public_inputs(&self) -> usize {
        self.slots + 1
    }

    /// A short name for files and contracts, e.g. `s4x5`.
    pub fn name(&self) -> String {
        format!("s{}x{}", self.slots, self.samples)
    }
}

/// Samples per slot per proof in both production shapes.
pub const SAMPLES: usize = 5;

/// One challenged cell and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleWitness {
    /// The cell's bytes.
    pub cell: [u8; CELL_SIZE],
    /// Its siblings from the leaf up.
    pub siblings: [Fr; DEPTH],
}

/// Everything the prover knows about one slot of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotWitness {
    /// The public commitment `c_i` (zero for padding).
    pub commitment: Fr,
    /// The tree root behind it.
    pub root: Fr,
    /// The slot's cell count.
    pub cell_count: u64,
    /// One entry per sample, in sample order.
    pub samples: Vec<SampleWitness>,
}

impl SlotWitness {
    /// A padding position: commitment zero, witnessed by the all-zero tree of one block.
    pub fn padding(samples: usize) -> Self {
        Self {
            commitment: Fr::zero(),
            root: zero(DEPTH),
            cell_count: hoard_prover::CELLS_PER_BLOCK as u64,
            samples: vec![
                SampleWitness {
                    cell: [0; CELL_SIZE],
                    siblings: std::array::from_fn(zero),
                };
                samples
            ],
        }
    }
}

/// The batch circuit with its witness.
#[derive(Debug, Clone)]
pub struct BatchCircuit {
    /// Its shape; `slots.len() == shape.slots` and every slot has `shape.samples` samples.
    pub shape: Shape,
    /// `x0`.
    pub host_seed: Fr,
    /// The slots, padding included.
    pub slots: Vec<SlotWitness>,
}

impl BatchCircuit {
    /// The circuit for key generation: all padding (the values do not matter there).
    pub fn blank(shape: Shape) -> Self {
        Self {
            shape,
            host_seed: Fr::zero(),
            slots: vec![SlotWitness::padding(shape.samples); shape.slots],
        }
    }

    /// The public inputs in the verifier's order.
    pub fn public_inputs(&self) -> Vec<Fr> {
        std::iter::once(self.host_seed)
            .chain(self.slots.iter().map(|s| s.commitment))
            .collect()
    }
}

/// Allocates a witness computed from other variables' values (none in setup mode).
fn derived(
    cs: &ConstraintSystemRef<Fr>,
    f: impl FnOnce() -> Result<Fr, SynthesisError>,
) -> Result<FpVar<Fr>, SynthesisError> {
    FpVar::new_witness(cs.clone(), f)
}

/// The integer value of a variable that is known to be small, or zero if it is not.
fn small(x: Fr) -> u64 {
    let big = x.into_bigint();
    if big.0[1..].iter().all(|l| *l == 0) {
        big.0[0]
    } else {
        0
    }
}

impl ConstraintSynthesizer<Fr> for BatchCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let shape = self.shape;
        if self.slots.len() != shape.slots
            || self.slots.iter().any(|s| s.samples.len() != shape.samples)
        {
            return Err(SynthesisError::Unsatisfiable);
        }
        let x0 = FpVar::new_input(cs.clone(), || Ok(self.host_seed))?;
        let commitments = self
            .slots
            .iter()
            .map(|s| FpVar::new_input(cs.clone(), || Ok(s.commitment)))
            .collect::<Result<Vec<_>, _>>()?;
        let hashes_per_slot = shape.samples.div_ceil(CHUNKS_PER_HASH).max(1);

        for (slot, c_pub) in self.slots.iter().zip(&commitments) {
            let root = FpVar::new_witness(cs.clone(), || Ok(slot.root))?;
            let n = FpVar::new_witness(cs.clone(), || Ok(Fr::from(slot.cell_count)))?;
            let n_minus_one = &n - Fr::from(1u8);
            let _ = n_minus_one.to_bits_le_with_top_bits_zero(DEPTH)?;

            // 1. c_pub = 0, or c_pub = H(root, n).
            let c = poseidon2(&root, &n)?;
            c_pub.mul_equals(&(&c - c_pub), &FpVar::zero())?;

            // 2. Sample hashes and their strict bits.
            let u0 = poseidon2(&x0, c_pub)?;
            let mut hashes = vec![u0.clone()];
            for t in 1..hashes_per_slot {
                hashes.push(poseidon2(&u0, &FpVar::constant(Fr::from(t as u64)))?);
            }
            let bits = hashes
                .iter()
                .map(|h| h.to_bits_le())
                .collect::<Result<Vec<_>, _>>()?;

            for (j, sample) in slot.samples.iter().enumerate() {
                // 3. idx = chunk mod n.
                let at = CHUNK_BITS * (j % CHUNKS_PER_HASH);
                let chunk =
                    Boolean::le_bits_to_fp(&bits[j / CHUNKS_PER_HASH][at..at + CHUNK_BITS])?;
                let (chunk_v, n_v) = (chunk.clone(), n.clone());
                let q = derived(&cs, || {
                    let (c, n) = (small(value_of(&chunk_v)?), small(value_of(&n_v)?));
                    Ok(Fr::from(c.checked_div(n).unwrap_or(0)))
                })?;
                let (chunk_v, n_v) = (chunk.clone(), n.clone());
                let idx = derived(&cs, || {
                    let (c, n) = (small(value_of(&chunk_v)?), small(value_of(&n_v)?));
                    Ok(Fr::from(c.checked_rem(n).unwrap_or(0)))
                })?;
                let _ = q.to_bits_le_with_top_bits_zero(CHUNK_BITS)?;
                let (idx_bits, _) = idx.to_bits_le_with_top_bits_zero(DEPTH)?;
                q.mul_equals(&n, &(&chunk - &idx))?;
                let _ = (&n_minus_one - &idx).to_bits_le_with_top_bits_zero(DEPTH)?;

                // 4. The cell's path to the root.
                let elements = cell_elements(&sample.cell);
                let cell_vars: [FpVar<Fr>; CELL_ELEMENTS] = elements
                    .iter()
                    .map(|e| FpVar::new_witness(cs.clone(), || Ok(*e)))
                    .collect::<Result<Vec<_>, _>>()?
                    .try_into()
                    .map_err(|_| SynthesisError::Unsatisfiable)?;
                let mut node = poseidon9(&cell_vars)?;
                for (bit, sibling) in idx_bits.iter().zip(&sample.siblings) {
                    let sibling = FpVar::new_witness(cs.clone(), || Ok(*sibling))?;
                    let left = FpVar::conditionally_select(bit, &sibling, &node)?;
                    let right = &node + &sibling - &left;
                    node = poseidon2(&left, &right)?;
                }
                node.enforce_equal(&root)?;
            }
        }
        Ok(())
    }
}
