//! Shared test vectors: `testdata/vectors.json`, read by the Solidity tests so the prover and the
//! contract cannot drift. This test regenerates the keys the prover owns (`version`, `proofs`,
//! `datasets`) and fails if the committed file differs;
//! `UPDATE_VECTORS=1 cargo test -p hoard-prover --test vectors` rewrites them. The keys
//! `manifests` and `erasure` belong to hoard-dataset's `vectors` test and `compact` to
//! hoard-compact's; they are left alone.

mod common;

use std::num::NonZeroU64;

use hoard_prover::{
    Challenge, DatasetTree, DirectProof, Hash, RequestId, Seed, SlotIndex, proof_required, slot_id,
    verify,
};
use serde_json::{Map, Value, json};

struct Case {
    name: &'static str,
    blocks: u64,
    distinct: u64,
    slot_index: u16,
    samples: u32,
    probability: u64,
}

const CASES: &[Case] = &[
    Case {
        name: "one block, 1 sample",
        blocks: 1,
        distinct: 1,
        slot_index: 0,
        samples: 1,
        probability: 1,
    },
    Case {
        name: "one block, 16 samples",
        blocks: 1,
        distinct: 1,
        slot_index: 2,
        samples: 16,
        probability: 2,
    },
    Case {
        name: "3 blocks (padded to 4), 5 samples",
        blocks: 3,
        distinct: 3,
        slot_index: 1,
        samples: 5,
        probability: 3,
    },
    Case {
        name: "5 blocks (padded to 8), 16 samples",
        blocks: 5,
        distinct: 5,
        slot_index: 5,
        samples: 16,
        probability: 4,
    },
    Case {
        name: "64 blocks (4 MiB), 16 samples",
        blocks: 64,
        distinct: 64,
        slot_index: 3,
        samples: 16,
        probability: 5,
    },
    Case {
        name: "1 GiB slot, 5 samples",
        blocks: 16384,
        distinct: 61,
        slot_index: 4,
        samples: 5,
        probability: 1,
    },
    Case {
        name: "1 GiB slot, 16 samples",
        blocks: 16384,
        distinct: 61,
        slot_index: 4,
        samples: 16,
        probability: 1,
    },
];

fn h(tag: &str, i: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let b = common::block(i, tag.len() as u64);
    out.copy_from_slice(&b[..32]);
    out
}

fn proof_case(i: usize, c: &Case) -> Value {
    let slot = common::Slot::new(i as u64 + 1, c.blocks, c.distinct);
    let request = RequestId(h("request", i as u64));
    let id = slot_id(&request, SlotIndex(c.slot_index));
    let seed = Seed(h("seed", i as u64));
    let challenge = Challenge {
        seed,
        slot_id: id,
        samples: c.samples,
        cell_count: NonZeroU64::new(slot.tree.cell_count()).expect("non-empty"),
    };
    let proof = DirectProof::create(&slot.tree, &challenge, |b, buf| slot.read(b, buf))
        .expect("proof of a consistent slot");
    let bytes = proof.to_bytes();
    verify(&slot.tree.root(), &challenge, &bytes).expect("own proof verifies");
    let probability = NonZeroU64::new(c.probability).expect("non-zero");
    json!({
        "name": c.name,
        "cellCount": slot.tree.cell_count(),
        "slotRoot": slot.tree.root(),
        "requestId": request,
        "slotIndex": c.slot_index,
        "slotId": id,
        "seed": seed,
        "proofProbability": c.probability,
        "required": proof_required(&seed, &id, probability),
        "samples": c.samples,
        "indices": challenge.indices(),
        "proof": format!("0x{}", hex::encode(&bytes)),
        "cells": proof.cells.len(),
        "siblings": proof.siblings.len(),
    })
}

fn dataset_case(name: &str, slots: u64) -> Value {
    let roots: Vec<Hash> = (0..slots)
        .map(|i| Hash(h("slot root", i + 100 * slots)))
        .collect();
    let tree = DatasetTree::new(&roots).expect("non-empty");
    let paths: Vec<_> = (0..roots.len())
        .map(|i| tree.path(i).expect("in range"))
        .collect();
    json!({ "name": name, "slotRoots": roots, "datasetRoot": tree.root(), "paths": paths })
}

fn vectors() -> Map<String, Value> {
    let Value::Object(keys) = json!({
        "version": 1,
        "proofs": CASES.iter().enumerate().map(|(i, c)| proof_case(i, c)).collect::<Vec<_>>(),
        "datasets": [
            dataset_case("k=1 m=1", 2),
            dataset_case("k=2 m=1 (padded to 4)", 3),
            dataset_case("k=4 m=2 (padded to 8)", 6),
            dataset_case("k=10 m=6", 16),
        ],
    }) else {
        unreachable!("an object literal")
    };
    keys
}

#[test]
fn vectors_match_committed_file() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors.json");
    let rerun = "`UPDATE_VECTORS=1 cargo test -p hoard-prover --test vectors`";
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut all: Map<String, Value> = serde_json::from_str(&text).unwrap_or_default();
    let fresh = vectors();
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        all.extend(fresh);
        let out = serde_json::to_string_pretty(&all).expect("serialisable") + "\n";
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, out).expect("write testdata/vectors.json.tmp");
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .expect("sync");
        std::fs::rename(&tmp, path).expect("rename into testdata/vectors.json");
        return;
    }
    for (key, value) in &fresh {
        assert!(
            all.get(key) == Some(value),
            "testdata/vectors.json key {key:?} is out of date with the prover; if the change is \
             intended, run {rerun} and commit the file"
        );
    }
    assert!(
        serde_json::to_string_pretty(&all).expect("serialisable") + "\n" == text,
        "testdata/vectors.json is not in its canonical form; run {rerun}"
    );
}
