//! The batch circuit against the native statement: honest witnesses of every slot size satisfy
//! it and prove; every kind of wrong witness or wrong public input is rejected.

mod common;

use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
use common::{Slot, small_keys};
use hoard_compact::{
    BatchCircuit, Fr, ProveError, Shape, SlotWitness, VerifyError, batch_circuit, cell_witness,
    host_seed, prove_batch, slot_witness, verify,
};
use hoard_prover::Seed;

fn seed(n: u8) -> Seed {
    Seed([n; 32])
}

fn satisfied(circuit: BatchCircuit) -> bool {
    let cs = ConstraintSystem::<Fr>::new_ref();
    circuit.generate_constraints(cs.clone()).expect("synthesis");
    cs.is_satisfied().expect("satisfiability check")
}

fn witness(slot: &Slot, x0: Fr) -> SlotWitness {
    slot_witness(&slot.compact, x0, Shape::SMALL.samples, |b, buf| {
        slot.read(b, buf)
    })
    .expect("honest witness")
}

#[test]
fn constraint_count_is_the_designed_one() {
    let cs = ConstraintSystem::<Fr>::new_ref();
    BatchCircuit::blank(Shape::SMALL)
        .generate_constraints(cs.clone())
        .expect("synthesis");
    let n = cs.num_constraints();
    // ≈ 30.3 k per slot (docs/protocol.md); a change here changes keys and verifiers.
    assert!((4 * 29_000..4 * 31_500).contains(&n), "{n} constraints");
    assert_eq!(
        cs.num_instance_variables(),
        1 + Shape::SMALL.public_inputs()
    );
}

#[test]
fn honest_batches_of_every_slot_size_satisfy_and_prove() {
    let x0 = host_seed(&seed(1), &[0xaa; 20]);
    // One block, 3 blocks (padded), 1 MiB, and a 1 GiB slot (2^14 blocks repeating 2 distinct).
    let slots = [
        Slot::new(1, 1, 1),
        Slot::new(2, 3, 3),
        Slot::new(3, 16, 16),
        Slot::new(4, 16_384, 2),
    ];
    let ws: Vec<_> = slots.iter().map(|s| witness(s, x0)).collect();
    let circuit = batch_circuit::<String>(Shape::SMALL, x0, ws.clone()).expect("fits");
    assert!(satisfied(circuit));

    let mut rng = hoard_compact::rand::rngs::OsRng;
    let keys = small_keys();
    let (proof, inputs) =
        prove_batch::<String>(keys, x0, ws[..3].to_vec(), &mut rng).expect("proof");
    assert_eq!(inputs.len(), 5);
    assert_eq!(inputs[4], Fr::from(0u8), "padding");
    verify(keys.prepared_vk(), &inputs, &proof).expect("valid");
    // The same proof under any other public input fails: another seed (period or host), the
    // commitments in another order, padding in place of a slot.
    let mut other = inputs.clone();
    other[0] = host_seed(&seed(2), &[0xaa; 20]);
    assert_eq!(
        verify(keys.prepared_vk(), &other, &proof),
        Err(VerifyError::Invalid)
    );
    other[0] = host_seed(&seed(1), &[0xbb; 20]);
    assert_eq!(
        verify(keys.prepared_vk(), &other, &proof),
        Err(VerifyError::Invalid)
    );
    let mut swapped = inputs.clone();
    swapped.swap(1, 2);
    assert_eq!(
        verify(keys.prepared_vk(), &swapped, &proof),
        Err(VerifyError::Invalid)
    );
    let mut dropped = inputs.clone();
    dropped[3] = Fr::from(0u8);
    assert_eq!(
        verify(keys.prepared_vk(), &dropped, &proof),
        Err(VerifyError::Invalid)
    );
    assert!(matches!(
        verify(keys.prepared_vk(), &inputs[..4], &proof),
        Err(VerifyError::InputCount {
            got: 4,
            expected: 5
        })
    ));
}

#[test]
fn wrong_witnesses_do_not_satisfy() {
    let x0 = host_seed(&seed(3), &[0xcc; 20]);
    let slot = Slot::new(5, 4, 4);
    let honest = witness(&slot, x0);
    let check = |w: SlotWitness| {
        satisfied(batch_circuit::<String>(Shape::SMALL, x0, vec![w]).expect("fits"))
    };
    assert!(check(honest.clone()));

    let mut w = honest.clone();
    w.samples[2].cell[17] ^= 1;
    assert!(!check(w), "wrong cell");

    let mut w = honest.clone();
    w.samples[0].siblings[5] += Fr::from(1u8);
    assert!(!check(w), "wrong sibling");

    let mut w = honest.clone();
    w.samples[4].siblings[21] += Fr::from(1u8);
    assert!(!check(w), "wrong top sibling");

    // A valid cell and path, but for another index (one bit flipped): what a host that kept only
    // some cells would try.
    let c = *slot.compact.commitment();
    let index = hoard_compact::sample_indices(x0, c.value, c.cell_count, 5)[1];
    let mut read = |b: u64, buf: &mut [u8; hoard_prover::BLOCK_SIZE]| slot.read(b, buf);
    let neighbour =
        cell_witness(&slot.compact, index ^ (1 << 3), &mut None, &mut read).expect("in range");
    let mut w = honest.clone();
    w.samples[1] = neighbour;
    assert!(!check(w), "wrong index bit");
    let mut w = honest.clone();
    w.samples.swap(0, 1);
    if w.samples[0] != honest.samples[0] {
        assert!(!check(w), "samples out of order");
    }

    // A witness for another seed.
    assert!(!check(witness(&slot, host_seed(&seed(4), &[0xcc; 20]))));

    // Claiming another cell count (to sample a smaller range) breaks the commitment.
    let mut w = honest.clone();
    w.cell_count = 256;
    assert!(!check(w), "wrong cell count");

    // The all-zero padding witness cannot stand in for a real commitment.
    let mut w = SlotWitness::padding(5);
    w.commitment = c.value;
    assert!(!check(w), "padding witness under a real commitment");
}

#[test]
fn batch_errors_are_named() {
    let x0 = host_seed(&seed(5), &[1; 20]);
    let slot = Slot::new(6, 1, 1);
    let w = witness(&slot, x0);
    assert!(matches!(
        batch_circuit::<String>(Shape::SMALL, x0, vec![w.clone(); 5]),
        Err(ProveError::BatchTooLarge {
            slots: 5,
            circuit: 4
        })
    ));
    assert!(matches!(
        batch_circuit::<String>(Shape::SMALL, x0, vec![]),
        Err(ProveError::EmptyBatch)
    ));
    let mut short = w.clone();
    short.samples.pop();
    assert!(matches!(
        batch_circuit::<String>(Shape::SMALL, x0, vec![short]),
        Err(ProveError::SampleCount {
            slot: 0,
            got: 4,
            expected: 5
        })
    ));
    // Damaged data is found while building the witness, before any proving.
    let damaged = slot_witness(&slot.compact, x0, 5, |b, buf| {
        slot.read(b, buf)?;
        buf[100] ^= 1;
        Ok::<_, String>(())
    });
    assert!(matches!(
        damaged,
        Err(ProveError::BlockMismatch { block: 0 })
    ));
    let failing = slot_witness(&slot.compact, x0, 5, |_, _| Err("disk gone".to_string()));
    assert!(matches!(failing, Err(ProveError::Read { block: 0, .. })));
}
