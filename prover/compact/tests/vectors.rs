//! The compact scheme's shared vectors: the `compact` key of `testdata/vectors.json`, read by
//! `contracts/test/Marketplace.Compact.t.sol` so the contract is checked against this prover.
//! Regenerates them (keys and proofs are deterministic) and fails if the committed file differs;
//! `UPDATE_VECTORS=1 cargo test -p hoard-compact --test vectors` rewrites the key.
//!
//! Two requests (A and B) store the same four-slot dataset; host 1 holds A's slots, host 2 B's.
//! The batches: valid ones, proofs of wrong witnesses (cell, sibling, index bit), and a valid
//! proof of another period's seed. Each is checked natively here.

mod common;

use std::num::NonZeroU64;

use ark_std::rand::SeedableRng;
use common::{Slot, small_keys};
use hoard_compact::{
    BatchCircuit, Fr, Shape, SlotWitness, VerifyError, batch_circuit, cell_witness, fr_to_bytes,
    host_seed, input_words, poseidon::hash2, prove, sample_indices, slot_witness, verify,
    verifying_key_hash,
};
use hoard_prover::{
    Challenge, DatasetTree, DirectProof, Hash, RequestId, Seed, SlotIndex, slot_id,
};
use rand_chacha::ChaCha20Rng;
use serde_json::{Value, json};

const HOST1: [u8; 20] = addr(0xb0b1);
const HOST2: [u8; 20] = addr(0xb0b2);
const SLOTS: usize = 4;
const BLOCKS: u64 = 2;

const fn addr(x: u16) -> [u8; 20] {
    let mut a = [0u8; 20];
    a[18] = (x >> 8) as u8;
    a[19] = x as u8;
    a
}

fn word(tag: u8) -> [u8; 32] {
    let mut w = [tag; 32];
    w[0] = 0x5e;
    w
}

fn hex32(w: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(w))
}

fn fr_hex(x: &Fr) -> String {
    hex32(&fr_to_bytes(x))
}

struct Batch {
    name: &'static str,
    host: [u8; 20],
    seed: Seed,
    request: usize,
    slots: Vec<usize>,
    valid: bool,
    circuit: BatchCircuit,
}

fn batch(
    name: &'static str,
    host: [u8; 20],
    seed: Seed,
    request: usize,
    slots: &[usize],
    data: &[Slot],
    tamper: impl FnOnce(&mut Vec<SlotWitness>, Fr),
) -> Batch {
    let x0 = host_seed(&seed, &host);
    let mut ws: Vec<_> = slots
        .iter()
        .map(|i| {
            slot_witness(&data[*i].compact, x0, Shape::SMALL.samples, |b, buf| {
                data[*i].read(b, buf)
            })
            .expect("honest witness")
        })
        .collect();
    let before = ws.clone();
    tamper(&mut ws, x0);
    let valid = ws == before;
    Batch {
        name,
        host,
        seed,
        request,
        slots: slots.to_vec(),
        valid,
        circuit: batch_circuit::<String>(Shape::SMALL, x0, ws).expect("fits"),
    }
}

fn compact_vectors() -> Value {
    let keys = small_keys();
    let data: Vec<Slot> = (0..SLOTS as u64)
        .map(|i| Slot::new(40 + i, BLOCKS, BLOCKS))
        .collect();
    let commitments: Vec<Fr> = data.iter().map(|s| s.compact.commitment().value).collect();
    let sha_roots: Vec<Hash> = data.iter().map(|s| s.sha.root()).collect();
    let dataset = DatasetTree::new(&sha_roots).expect("non-empty");
    let compact_tree = DatasetTree::new(
        &commitments
            .iter()
            .map(|c| Hash(fr_to_bytes(c)))
            .collect::<Vec<_>>(),
    )
    .expect("non-empty");
    let fill_seed = Seed(word(1));
    let (seed, next_seed) = (Seed(word(2)), Seed(word(3)));
    let cell_count = data[0].sha.cell_count();

    let requests: Vec<Value> = [RequestId(word(0xa)), RequestId(word(0xb))]
        .iter()
        .map(|request| {
            let ids: Vec<_> = (0..SLOTS)
                .map(|i| slot_id(request, SlotIndex(i as u16)))
                .collect();
            let fill_proofs: Vec<String> = ids
                .iter()
                .zip(&data)
                .map(|(id, slot)| {
                    let challenge = Challenge {
                        seed: fill_seed,
                        slot_id: *id,
                        samples: Shape::SMALL.samples as u32,
                        cell_count: NonZeroU64::new(cell_count).expect("non-empty"),
                    };
                    let p = DirectProof::create(&slot.sha, &challenge, |b, buf| slot.read(b, buf))
                        .expect("direct proof");
                    format!("0x{}", hex::encode(p.to_bytes()))
                })
                .collect();
            json!({ "requestId": request, "slotIds": ids, "fillProofs": fill_proofs })
        })
        .collect();

    let batches = vec![
        batch(
            "valid, 3 slots",
            HOST1,
            seed,
            0,
            &[0, 1, 2],
            &data,
            |_, _| {},
        ),
        batch(
            "valid, 4 slots",
            HOST1,
            seed,
            0,
            &[0, 1, 2, 3],
            &data,
            |_, _| {},
        ),
        batch("wrong cell", HOST1, seed, 0, &[0, 1, 2], &data, |ws, _| {
            ws[1].samples[3].cell[200] ^= 0x40;
        }),
        batch(
            "wrong sibling",
            HOST1,
            seed,
            0,
            &[0, 1, 2],
            &data,
            |ws, _| {
                ws[2].samples[0].siblings[12] += Fr::from(1u8);
            },
        ),
        batch(
            "wrong index bit",
            HOST1,
            seed,
            0,
            &[0, 1, 2],
            &data,
            |ws, x0| {
                // A real cell with its real path, one index bit away from the challenged one.
                let c = data[0].compact.commitment();
                let index = sample_indices(x0, c.value, c.cell_count, Shape::SMALL.samples)[2];
                let mut read =
                    |b: u64, buf: &mut [u8; hoard_prover::BLOCK_SIZE]| data[0].read(b, buf);
                ws[0].samples[2] = cell_witness(&data[0].compact, index ^ 1, &mut None, &mut read)
                    .expect("in range");
            },
        ),
        batch(
            "another period's seed",
            HOST1,
            next_seed,
            0,
            &[0, 1, 2],
            &data,
            |_, _| {},
        ),
        batch(
            "host 2, 3 slots",
            HOST2,
            seed,
            1,
            &[0, 1, 2],
            &data,
            |_, _| {},
        ),
    ];

    let mut rng = ChaCha20Rng::from_seed(word(0xcc));
    let batch_values: Vec<Value> = batches
        .into_iter()
        .map(|b| {
            let inputs = b.circuit.public_inputs();
            let proof = prove(keys, b.circuit, &mut rng).expect("proof");
            let native = verify(keys.prepared_vk(), &inputs, &proof);
            if b.valid {
                native.expect("a valid batch verifies");
                // Bound to its public inputs: order, seed, host.
                let mut swapped = inputs.clone();
                swapped.swap(1, 2);
                assert_eq!(
                    verify(keys.prepared_vk(), &swapped, &proof),
                    Err(VerifyError::Invalid)
                );
                let mut other = inputs.clone();
                other[0] = host_seed(&next_seed, &b.host);
                if b.seed != next_seed {
                    assert_eq!(
                        verify(keys.prepared_vk(), &other, &proof),
                        Err(VerifyError::Invalid)
                    );
                }
                other[0] = host_seed(&b.seed, &if b.host == HOST1 { HOST2 } else { HOST1 });
                assert_eq!(
                    verify(keys.prepared_vk(), &other, &proof),
                    Err(VerifyError::Invalid)
                );
            } else {
                assert_eq!(native, Err(VerifyError::Invalid), "{}", b.name);
            }
            let words: Vec<String> = proof.to_evm().iter().map(hex32).collect();
            json!({
                "name": b.name,
                "host": format!("0x{}", hex::encode(b.host)),
                "seed": b.seed,
                "request": b.request,
                "slots": b.slots,
                "valid": b.valid,
                "inputs": input_words(&inputs).iter().map(hex32).collect::<Vec<_>>(),
                "proof": words,
            })
        })
        .collect();

    json!({
        "shape": { "slots": Shape::SMALL.slots, "samples": Shape::SMALL.samples, "depth": 22 },
        "verifyingKeyHash": hex32(&verifying_key_hash(keys.vk())),
        "poseidon": {
            "inputs": [1, 2],
            "output": fr_hex(&hash2(Fr::from(1u8), Fr::from(2u8))),
        },
        "dataset": {
            "slots": SLOTS,
            "cellCount": cell_count,
            "samples": Shape::SMALL.samples,
            "datasetRoot": dataset.root(),
            "compactRoot": compact_tree.root(),
            "slotRoots": sha_roots,
            "commitments": commitments.iter().map(fr_hex).collect::<Vec<_>>(),
            "treeRoots": data.iter().map(|s| fr_hex(&s.compact.commitment().root)).collect::<Vec<_>>(),
            "rootPaths": (0..SLOTS).map(|i| dataset.path(i).expect("in range")).collect::<Vec<_>>(),
            "commitmentPaths": (0..SLOTS).map(|i| compact_tree.path(i).expect("in range")).collect::<Vec<_>>(),
        },
        "fillSeed": fill_seed,
        "seed": seed,
        "nextSeed": next_seed,
        "hosts": [format!("0x{}", hex::encode(HOST1)), format!("0x{}", hex::encode(HOST2))],
        "requests": requests,
        "batches": batch_values,
    })
}

#[test]
fn commitments_are_hash_of_root_and_cell_count() {
    let s = Slot::new(40, BLOCKS, BLOCKS);
    let c = s.compact.commitment();
    assert_eq!(c.value, hash2(c.root, Fr::from(512u64)));
}

#[test]
fn compact_vectors_match_committed_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/vectors.json");
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default())
        .unwrap_or(Value::Null);
    let fresh = compact_vectors();
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        let mut all = committed;
        all["compact"] = fresh;
        let text = serde_json::to_string_pretty(&all).expect("serialisable") + "\n";
        std::fs::write(path, text).expect("write testdata/vectors.json");
        return;
    }
    assert!(
        committed.get("compact") == Some(&fresh),
        "the `compact` key of testdata/vectors.json is out of date with the prover; if the change \
         is intended, run `UPDATE_VECTORS=1 cargo test -p hoard-compact --test vectors` and commit \
         the file"
    );
}
