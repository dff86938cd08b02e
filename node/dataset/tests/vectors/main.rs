//! `testdata/vectors.json`, keys `manifests` and `erasure`: worked examples of the manifest
//! encoding and of the Reed–Solomon code, for anyone rebuilding hoard from `docs/protocol.md`.
//!
//! [`vectors_match_committed_file`] regenerates both keys with hoard's code and fails if the
//! committed file differs; `UPDATE_VECTORS=1 cargo test -p hoard-dataset --test vectors`
//! rewrites them (the other keys belong to hoard-prover's `vectors` test). [`reed_solomon`]
//! holds the code as the document defines it, independent of reed-solomon-simd, and checks the
//! crate, `pack` and the committed vectors against it; [`manifest`] rebuilds each manifest vector
//! from the files it lists.

mod manifest;
mod reed_solomon;
mod shared;

use reed_solomon_simd::ReedSolomonEncoder;
use serde_json::{Map, Value, json};

/// Deterministic bytes (xorshift64), different per seed.
pub(crate) fn xorshift(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Recovery shards as reed-solomon-simd (hoard's encoder) computes them.
pub(crate) fn crate_encode(k: usize, m: usize, original: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut e = ReedSolomonEncoder::new(k, m, original[0].len()).expect("supported");
    for s in original {
        e.add_original_shard(s).expect("right size");
    }
    let encoded = e.encode().expect("encodes");
    encoded.recovery_iter().map(<[u8]>::to_vec).collect()
}

/// `(name, k, m, shard bytes)`: both encoders, one chunk and several, full and partial.
const ERASURE_CASES: &[(&str, usize, usize, usize)] = &[
    ("k=1 m=1: high rate, one chunk", 1, 1, 64),
    ("k=2 m=1: high rate, one chunk", 2, 1, 64),
    ("k=4 m=2: high rate, two original chunks", 4, 2, 128),
    (
        "k=3 m=2: high rate, the second original chunk partial",
        3,
        2,
        64,
    ),
    (
        "k=10 m=6: high rate, two original chunks of 8, the second partial",
        10,
        6,
        64,
    ),
    ("k=2 m=4: low rate, two recovery chunks", 2, 4, 128),
    (
        "k=3 m=5: low rate, originals padded to 4, the second recovery chunk partial",
        3,
        5,
        64,
    ),
    (
        "k=4 m=3: low rate by the tie rule (high rate gives the same bytes)",
        4,
        3,
        64,
    ),
];

fn erasure_vectors() -> Vec<Value> {
    ERASURE_CASES
        .iter()
        .enumerate()
        .map(|(i, &(name, k, m, len))| {
            let shards: Vec<Vec<u8>> = (0..k)
                .map(|j| xorshift((i * 1000 + j) as u64 + 1, len))
                .collect();
            let original: Vec<&[u8]> = shards.iter().map(Vec::as_slice).collect();
            let recovery = crate_encode(k, m, &original);
            json!({
                "name": name,
                "k": k,
                "m": m,
                "encoder": if reed_solomon::high_rate(k, m) { "high" } else { "low" },
                "shardBytes": len,
                "original": shards.iter().map(|s| shared::hex(s)).collect::<Vec<_>>(),
                "recovery": recovery.iter().map(|s| shared::hex(s)).collect::<Vec<_>>(),
            })
        })
        .collect()
}

#[test]
fn vectors_match_committed_file() {
    let mut fresh = Map::new();
    fresh.insert("manifests".into(), Value::Array(manifest::vectors()));
    fresh.insert("erasure".into(), Value::Array(erasure_vectors()));
    shared::check_or_update(fresh, "cargo test -p hoard-dataset --test vectors");
}
