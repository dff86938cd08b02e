//! Proving a batch, verifying it locally, and the proof's EVM encoding.
//!
//! A host builds one [`SlotWitness`] per slot with [`slot_witness`] (each block it reads is checked
//! against the block root it keeps, so damaged data is an error here, not a proof that fails on
//! chain), then calls [`prove_batch`], which pads the batch to the circuit's size, proves, and
//! checks the proof before returning it.

use ark_bn254::{Bn254, Fq, Fq2, Fr, G1Affine, G2Affine};
use ark_ec::AffineRepr;
use ark_ff::{PrimeField, Zero};
use ark_groth16::{Groth16, PreparedVerifyingKey, VerifyingKey};
use ark_relations::gr1cs::{
    ConstraintSynthesizer, ConstraintSystem, OptimizationGoal, SynthesisError, SynthesisMode,
};
use ark_snark::SNARK;
use hoard_prover::{BLOCK_SIZE, CELL_SIZE, CELLS_PER_BLOCK};
use rand_chacha::rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};

use crate::{
    circuit::{BatchCircuit, SampleWitness, Shape, SlotWitness},
    encoding::fr_to_bytes,
    keys::Keys,
    statement::sample_indices,
    tree::{BLOCK_DEPTH, BlockTree, CompactSlotTree, DEPTH},
};

/// Why a batch could not be proven.
#[derive(Debug, thiserror::Error)]
pub enum ProveError<E> {
    /// More slots than the circuit takes.
    #[error("{slots} slots do not fit the {circuit}-slot circuit; split the batch")]
    BatchTooLarge {
        /// Slots given.
        slots: usize,
        /// The circuit's size.
        circuit: usize,
    },
    /// No slots.
    #[error("a batch needs at least one slot")]
    EmptyBatch,
    /// A witness of another shape.
    #[error("slot {slot} has {got} samples but the circuit takes {expected}")]
    SampleCount {
        /// Position in the batch.
        slot: usize,
        /// Samples in the witness.
        got: usize,
        /// Samples the circuit takes.
        expected: usize,
    },
    /// A block read from storage does not hash to its kept root: the local copy is damaged.
    #[error("block {block} does not match its compact block root: the stored slot data is damaged")]
    BlockMismatch {
        /// The damaged block.
        block: u64,
    },
    /// A cell index past the slot's end.
    #[error("cell {index} is outside the slot")]
    CellOutOfRange {
        /// The index asked for.
        index: u64,
    },
    /// Reading a block failed.
    #[error("reading block {block}: {source}")]
    Read {
        /// The block being read.
        block: u64,
        /// The reader's error.
        source: E,
    },
    /// arkworks failed to prove.
    #[error("Groth16 proving failed: {0}")]
    Groth16(SynthesisError),
    /// The proof does not verify: the witness was inconsistent with the commitments.
    #[error("the proof does not verify against its own public inputs: {0}")]
    SelfCheck(VerifyError),
}

/// Why a proof was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The public inputs do not fit the key.
    #[error("{got} public inputs, the verifying key takes {expected}")]
    InputCount {
        /// Inputs given.
        got: usize,
        /// Inputs the key takes.
        expected: usize,
    },
    /// The proof's points are not points of the curve's groups.
    #[error("malformed proof: {0}")]
    Malformed(&'static str),
    /// The pairing check failed.
    #[error("the proof does not verify")]
    Invalid,
}

/// A Groth16 proof.
#[derive(Debug, Clone, PartialEq)]
pub struct Proof(pub ark_groth16::Proof<Bn254>);

impl Proof {
    /// The EVM encoding the verifier contract takes, as eight 32-byte big-endian words:
    /// `[A.x, A.y, B.x.c1, B.x.c0, B.y.c1, B.y.c0, C.x, C.y]` (the precompile's G2 order puts the
    /// imaginary part first).
    pub fn to_evm(&self) -> [[u8; 32]; 8] {
        let [ax, ay] = g1_words(&self.0.a);
        let [bx1, bx0, by1, by0] = g2_words(&self.0.b);
        let [cx, cy] = g1_words(&self.0.c);
        [ax, ay, bx1, bx0, by1, by0, cx, cy]
    }

    /// Decodes the EVM encoding, refusing coordinates outside the field and points off the curve
    /// or outside the prime-order subgroup.
    pub fn from_evm(words: &[[u8; 32]; 8]) -> Result<Self, VerifyError> {
        let fq = |w: &[u8; 32]| {
            let x = Fq::from_be_bytes_mod_order(w);
            (fq_bytes(&x) == *w)
                .then_some(x)
                .ok_or(VerifyError::Malformed(
                    "a coordinate is not below the field modulus",
                ))
        };
        let g1 = |x: &[u8; 32], y: &[u8; 32]| -> Result<G1Affine, VerifyError> {
            let p = G1Affine::new_unchecked(fq(x)?, fq(y)?);
            if p.is_on_curve() && p.is_in_correct_subgroup_assuming_on_curve() {
                Ok(p)
            } else {
                Err(VerifyError::Malformed("a G1 point is not on the curve"))
            }
        };
        let b = G2Affine::new_unchecked(
            Fq2::new(fq(&words[3])?, fq(&words[2])?),
            Fq2::new(fq(&words[5])?, fq(&words[4])?),
        );
        if !(b.is_on_curve() && b.is_in_correct_subgroup_assuming_on_curve()) {
            return Err(VerifyError::Malformed("the G2 point is not in the group"));
        }
        Ok(Self(ark_groth16::Proof {
            a: g1(&words[0], &words[1])?,
            b,
            c: g1(&words[6], &words[7])?,
        }))
    }
}

fn fq_bytes(x: &Fq) -> [u8; 32] {
    let mut out = [0u8; 32];
    let be = ark_ff::BigInteger::to_bytes_be(&x.into_bigint());
    out[32 - be.len()..].copy_from_slice(&be);
    out
}

/// `[x, y]` of a G1 point (the point at infinity is `[0, 0]`, as the precompiles take it).
pub(crate) fn g1_words(p: &G1Affine) -> [[u8; 32]; 2] {
    match p.xy() {
        Some((x, y)) => [fq_bytes(&x), fq_bytes(&y)],
        None => [[0; 32]; 2],
    }
}

/// `[x.c1, x.c0, y.c1, y.c0]` of a G2 point.
pub(crate) fn g2_words(p: &G2Affine) -> [[u8; 32]; 4] {
    match p.xy() {
        Some((x, y)) => [
            fq_bytes(&x.c1),
            fq_bytes(&x.c0),
            fq_bytes(&y.c1),
            fq_bytes(&y.c0),
        ],
        None => [[0; 32]; 4],
    }
}

/// The verifying key as the EVM words the generated verifier holds, in this order: `alpha` (G1),
/// `beta`, `gamma`, `delta` (G2), then `IC_0 … IC_ℓ` (G1).
pub fn verifying_key_words(vk: &VerifyingKey<Bn254>) -> Vec<[u8; 32]> {
    let mut words = g1_words(&vk.alpha_g1).to_vec();
    for g2 in [&vk.beta_g2, &vk.gamma_g2, &vk.delta_g2] {
        words.extend(g2_words(g2));
    }
    for ic in &vk.gamma_abc_g1 {
        words.extend(g1_words(ic));
    }
    words
}

/// SHA-256 of [`verifying_key_words`]: the hash to publish, and what the deployed verifier returns
/// from `verifyingKeyHash()`.
pub fn verifying_key_hash(vk: &VerifyingKey<Bn254>) -> [u8; 32] {
    let mut h = Sha256::new();
    verifying_key_words(vk).iter().for_each(|w| h.update(w));
    h.finalize().into()
}

/// The witness of one slot for the batch seeded by `host_seed`: reads the challenged blocks with
/// `read_block(index, buffer)` and checks each against the kept block root.
pub fn slot_witness<E>(
    tree: &CompactSlotTree,
    host_seed: Fr,
    samples: usize,
    mut read_block: impl FnMut(u64, &mut [u8; BLOCK_SIZE]) -> Result<(), E>,
) -> Result<SlotWitness, ProveError<E>> {
    let c = tree.commitment();
    let indices = sample_indices(host_seed, c.value, c.cell_count, samples);
    let mut cached: Option<(u64, Box<[u8; BLOCK_SIZE]>, BlockTree)> = None;
    let samples = indices
        .into_iter()
        .map(|index| cell_witness(tree, index, &mut cached, &mut read_block))
        .collect::<Result<_, _>>()?;
    Ok(SlotWitness {
        commitment: c.value,
        root: c.root,
        cell_count: c.cell_count,
        samples,
    })
}

/// The cell at `index` and its 22 siblings, reading (and checking) its block unless `cached`
/// already holds it.
pub fn cell_witness<E>(
    tree: &CompactSlotTree,
    index: u64,
    cached: &mut Option<(u64, Box<[u8; BLOCK_SIZE]>, BlockTree)>,
    read_block: &mut impl FnMut(u64, &mut [u8; BLOCK_SIZE]) -> Result<(), E>,
) -> Result<SampleWitness, ProveError<E>> {
    let block = index / CELLS_PER_BLOCK as u64;
    let within = (index % CELLS_PER_BLOCK as u64) as usize;
    let upper = tree
        .block_path(block)
        .ok_or(ProveError::CellOutOfRange { index })?;
    if cached.as_ref().is_none_or(|(b, _, _)| *b != block) {
        let mut buf = Box::new([0u8; BLOCK_SIZE]);
        read_block(block, &mut buf).map_err(|source| ProveError::Read { block, source })?;
        let sub = BlockTree::new(&buf);
        if Some(sub.root()) != tree.block_root(block) {
            return Err(ProveError::BlockMismatch { block });
        }
        *cached = Some((block, buf, sub));
    }
    let Some((_, buf, sub)) = cached.as_ref() else {
        return Err(ProveError::BlockMismatch { block });
    };
    let mut siblings = [Fr::zero(); DEPTH];
    siblings[..BLOCK_DEPTH].copy_from_slice(&sub.path(within));
    siblings[BLOCK_DEPTH..].copy_from_slice(&upper);
    let mut cell = [0u8; CELL_SIZE];
    cell.copy_from_slice(&buf[within * CELL_SIZE..][..CELL_SIZE]);
    Ok(SampleWitness { cell, siblings })
}

/// The batch circuit for `slots`, padded with zero commitments to the shape's size.
pub fn batch_circuit<E>(
    shape: Shape,
    host_seed: Fr,
    mut slots: Vec<SlotWitness>,
) -> Result<BatchCircuit, ProveError<E>> {
    if slots.is_empty() {
        return Err(ProveError::EmptyBatch);
    }
    if slots.len() > shape.slots {
        return Err(ProveError::BatchTooLarge {
            slots: slots.len(),
            circuit: shape.slots,
        });
    }
    if let Some((slot, s)) = slots
        .iter()
        .enumerate()
        .find(|(_, s)| s.samples.len() != shape.samples)
    {
        return Err(ProveError::SampleCount {
            slot,
            got: s.samples.len(),
            expected: shape.samples,
        });
    }
    slots.resize(shape.slots, SlotWitness::padding(shape.samples));
    Ok(BatchCircuit {
        shape,
        host_seed,
        slots,
    })
}

/// Proves `circuit` with `keys`, without checking it: a wrong witness gives a proof that fails.
///
/// ark-groth16's `prove` synthesises the circuit with its constraints and draws `r` and `s`. Here
/// the circuit is synthesised for its assignment only, against the matrices built with the keys,
/// and the proof is made with `r = s = 0`, which skips the MSM of `B` in G1 (one of five), then
/// re-randomised (Bünz, Kiffer, Sasson, Viswanathan 2020, theorem 3: the result is distributed as
/// a fresh zero-knowledge proof) for three scalar multiplications. Together they take an S = 32
/// proof from 30–35 s to 23–26 s on 2 cores (docs/performance.md).
///
/// The generator is a trait object on purpose: an `impl RngCore` here would monomorphise the
/// whole Groth16 prover in the calling crate, at that crate's opt-level; in a dev build of the
/// node that made a 4-slot proof take minutes instead of 5 s. Compiled here, it gets this crate's.
pub fn prove(
    keys: &Keys,
    circuit: BatchCircuit,
    rng: &mut dyn CryptoRngCore,
) -> Result<Proof, SynthesisError> {
    let r1cs = keys.matrices();
    let cs = ConstraintSystem::<Fr>::new_ref();
    cs.set_optimization_goal(OptimizationGoal::Constraints);
    cs.set_mode(SynthesisMode::Prove {
        construct_matrices: false,
        generate_lc_assignments: false,
    });
    circuit.generate_constraints(cs.clone())?;
    let mut assignment = cs.instance_assignment()?;
    assignment.extend(cs.witness_assignment()?);
    // The same circuit code allocates the same variables in both modes; a mismatch would be a bug
    // here, and would only give a proof that fails its local check, but is cheap to rule out.
    if cs.num_instance_variables() != r1cs.instance || cs.num_witness_variables() != r1cs.witness {
        return Err(SynthesisError::Unsatisfiable);
    }
    let zero = Fr::zero();
    let proof = Groth16::<Bn254>::create_proof_with_reduction_and_matrices(
        keys.proving_key(),
        zero,
        zero,
        &r1cs.abc,
        r1cs.instance,
        r1cs.constraints,
        &assignment,
    )?;
    Ok(Proof(Groth16::<Bn254>::rerandomize_proof(
        keys.vk(),
        &proof,
        &mut &mut *rng,
    )))
}

/// Proves a batch of slot witnesses (at most the circuit's size; the rest is padding) and checks
/// the proof locally before returning it with its public inputs.
pub fn prove_batch<E>(
    keys: &Keys,
    host_seed: Fr,
    slots: Vec<SlotWitness>,
    rng: &mut dyn CryptoRngCore,
) -> Result<(Proof, Vec<Fr>), ProveError<E>> {
    let circuit = batch_circuit(keys.shape(), host_seed, slots)?;
    let inputs = circuit.public_inputs();
    let proof = prove(keys, circuit, rng).map_err(ProveError::Groth16)?;
    verify(keys.prepared_vk(), &inputs, &proof).map_err(ProveError::SelfCheck)?;
    Ok((proof, inputs))
}

/// Checks a proof against public inputs `[x0, c_1, …, c_S]`.
pub fn verify(
    pvk: &PreparedVerifyingKey<Bn254>,
    inputs: &[Fr],
    proof: &Proof,
) -> Result<(), VerifyError> {
    let expected = pvk.vk.gamma_abc_g1.len() - 1;
    if inputs.len() != expected {
        return Err(VerifyError::InputCount {
            got: inputs.len(),
            expected,
        });
    }
    match Groth16::<Bn254>::verify_with_processed_vk(pvk, inputs, &proof.0) {
        Ok(true) => Ok(()),
        Ok(false) => Err(VerifyError::Invalid),
        Err(_) => Err(VerifyError::Malformed(
            "the pairing check refused the inputs",
        )),
    }
}

/// The public inputs as EVM words.
pub fn input_words(inputs: &[Fr]) -> Vec<[u8; 32]> {
    inputs.iter().map(fr_to_bytes).collect()
}
