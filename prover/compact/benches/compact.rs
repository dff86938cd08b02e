//! Figures of the compact scheme (docs/performance.md, "Compact proofs"):
//!
//! ```text
//! cargo bench -p hoard-compact --bench compact -- commit [MiB] # Poseidon commitment of a slot (1 GiB)
//! cargo bench -p hoard-compact --bench compact -- prove [S]   # one proof of S (4 or 32) 1 GiB slots
//! cargo bench -p hoard-compact --bench compact -- gas OUT     # S = 32 vectors for script/gas-anvil-compact.sh
//! cargo bench -p hoard-compact --bench compact -- verifier    # CompactVerifier32.sol from the cached keys
//! ```
//!
//! Keys come from the devnet seed through the cache in `$HOARD_KEY_CACHE` (default
//! `target/compact-keys`); the first `prove 32` generates them. Each mode reports the process's peak
//! RSS, so run one mode per process. The proving witness uses 1 GiB slots whose blocks repeat two
//! distinct random blocks (the trees stay cheap to build; every witness value is still a
//! full-width field element and the circuit is the same for any data).

use std::{num::NonZeroU64, path::PathBuf, time::Instant};

use ark_std::rand::SeedableRng;
use hoard_compact::{
    CommitmentBuilder, CompactSlotTree, DEVNET_SEED, Fr, Keys, Shape, block_roots, fr_to_bytes,
    host_seed, input_words, prove_batch, slot_witness, solidity,
};
use hoard_prover::{
    BLOCK_SIZE, Challenge, DatasetTree, DirectProof, Hash, RequestId, Seed, SlotIndex, SlotTree,
    slot_id,
};
use rand_chacha::ChaCha20Rng;
use serde_json::json;

fn fill(seed: u64, index: u64, out: &mut [u8]) {
    let mut state = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for chunk in out.chunks_exact_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<u64>().ok())
            })
        })
        .map_or(0, |kib| kib / 1024)
}

fn cache() -> PathBuf {
    std::env::var_os("HOARD_KEY_CACHE").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/compact-keys"
            ))
        },
        PathBuf::from,
    )
}

fn shape(slots: usize) -> Shape {
    if slots == 32 {
        Shape::LARGE
    } else {
        Shape::SMALL
    }
}

fn commit(mib: u64) {
    const BATCH: usize = 64; // 4 MiB of blocks in flight
    let blocks = (mib * 16).clamp(BATCH as u64, hoard_compact::MAX_BLOCKS);
    let mut buf = vec![0u8; BATCH * BLOCK_SIZE];
    let mut b = CommitmentBuilder::new();
    let start = Instant::now();
    let mut done = 0u64;
    while done < blocks {
        for (i, chunk) in buf.chunks_exact_mut(BLOCK_SIZE).enumerate() {
            fill(7, done + i as u64, chunk);
        }
        b.push_blocks(&buf).expect("whole blocks");
        done += BATCH as u64;
        if done.is_multiple_of(2048) {
            eprintln!(
                "  {done}/{blocks} blocks, {:.0} s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    let c = b.finish().expect("non-empty");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "commit: {} MiB ({blocks} blocks) in {secs:.1} s ({:.3} MiB/s, {:.0} s per GiB) on {} threads; peak RSS {} MiB; commitment 0x{}",
        blocks / 16,
        blocks as f64 / 16.0 / secs,
        secs * 16_384.0 / blocks as f64,
        rayon::current_num_threads(),
        peak_rss_mib(),
        hex::encode(fr_to_bytes(&c.value))
    );
}

/// A 1 GiB slot whose blocks alternate two random blocks.
fn big_slot(seed: u64) -> (CompactSlotTree, [Box<[u8; BLOCK_SIZE]>; 2]) {
    let mut two = [Box::new([0u8; BLOCK_SIZE]), Box::new([0u8; BLOCK_SIZE])];
    let mut bytes = Vec::new();
    for (i, b) in two.iter_mut().enumerate() {
        fill(seed, i as u64, &mut b[..]);
        bytes.extend_from_slice(&b[..]);
    }
    let roots = block_roots(&bytes).expect("whole blocks");
    let all = (0..hoard_compact::MAX_BLOCKS)
        .map(|i| roots[(i % 2) as usize])
        .collect();
    (CompactSlotTree::from_block_roots(all).expect("valid"), two)
}

fn prove(slots: usize) {
    let shape = shape(slots);
    let t = Instant::now();
    let keys = Keys::load_or_setup(shape, DEVNET_SEED, &cache()).expect("keys");
    let load = t.elapsed().as_secs_f64();
    let data: Vec<_> = (0..shape.slots as u64).map(|i| big_slot(100 + i)).collect();
    let x0 = host_seed(&Seed([9; 32]), &[0xb0; 20]);
    let t = Instant::now();
    let witnesses: Vec<_> = data
        .iter()
        .map(|(tree, two)| {
            slot_witness(tree, x0, shape.samples, |b, buf| {
                buf.copy_from_slice(&two[(b % 2) as usize][..]);
                Ok::<_, String>(())
            })
            .expect("witness")
        })
        .collect();
    let witness_secs = t.elapsed().as_secs_f64();
    let mut rng = hoard_compact::rand::rngs::OsRng;
    let t = Instant::now();
    prove_batch::<String>(&keys, x0, witnesses, &mut rng).expect("proof");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "prove: {} slots of 1 GiB x {} samples: keys {load:.1} s (cache {}), witness {witness_secs:.1} s, prove + local verify {secs:.1} s ({:.2} s per slot) on {} threads; peak RSS {} MiB",
        shape.slots,
        shape.samples,
        cache().display(),
        secs / shape.slots as f64,
        rayon::current_num_threads(),
        peak_rss_mib()
    );
}

/// One request of 32 two-block compact slots, all filled by one host, and a valid 32-slot batch,
/// in the layout of the `compact` key of testdata/vectors.json (read by script/gas-anvil.sh).
fn gas(out: &str) {
    let shape = Shape::LARGE;
    let keys = Keys::load_or_setup(shape, DEVNET_SEED, &cache()).expect("keys");
    let n = shape.slots;
    let host = {
        let mut a = [0u8; 20];
        a[18] = 0xb0;
        a[19] = 0xb1;
        a
    };
    let mut shas = Vec::new();
    let mut trees = Vec::new();
    let mut blocks = Vec::new();
    for i in 0..n as u64 {
        let mut bytes = vec![0u8; 2 * BLOCK_SIZE];
        fill(500 + i, 0, &mut bytes);
        let sha: Vec<Hash> = bytes
            .chunks_exact(BLOCK_SIZE)
            .map(|b| hoard_prover::block_root(b.try_into().expect("a block")))
            .collect();
        shas.push(SlotTree::from_block_roots(&sha).expect("valid"));
        trees.push(
            CompactSlotTree::from_block_roots(block_roots(&bytes).expect("whole")).expect("valid"),
        );
        blocks.push(bytes);
    }
    let commitments: Vec<Fr> = trees.iter().map(|t| t.commitment().value).collect();
    let dataset =
        DatasetTree::new(&shas.iter().map(SlotTree::root).collect::<Vec<_>>()).expect("non-empty");
    let compact = DatasetTree::new(
        &commitments
            .iter()
            .map(|c| Hash(fr_to_bytes(c)))
            .collect::<Vec<_>>(),
    )
    .expect("non-empty");
    let request = RequestId([0x5e; 32]);
    let (fill_seed, seed) = (Seed([1; 32]), Seed([2; 32]));
    let fill_proofs: Vec<String> = (0..n)
        .map(|i| {
            let c = Challenge {
                seed: fill_seed,
                slot_id: slot_id(&request, SlotIndex(i as u16)),
                samples: shape.samples as u32,
                cell_count: NonZeroU64::new(512).expect("non-zero"),
            };
            let p = DirectProof::create(&shas[i], &c, |b, buf| {
                buf.copy_from_slice(&blocks[i][b as usize * BLOCK_SIZE..][..BLOCK_SIZE]);
                Ok::<_, String>(())
            })
            .expect("direct proof");
            format!("0x{}", hex::encode(p.to_bytes()))
        })
        .collect();
    let x0 = host_seed(&seed, &host);
    let witnesses: Vec<_> = (0..n)
        .map(|i| {
            slot_witness(&trees[i], x0, shape.samples, |b, buf| {
                buf.copy_from_slice(&blocks[i][b as usize * BLOCK_SIZE..][..BLOCK_SIZE]);
                Ok::<_, String>(())
            })
            .expect("witness")
        })
        .collect();
    let mut rng = ChaCha20Rng::from_seed([0xcc; 32]);
    let (proof, inputs) = prove_batch::<String>(&keys, x0, witnesses, &mut rng).expect("proof");
    let hex32 = |w: &[u8; 32]| format!("0x{}", hex::encode(w));
    let v = json!({ "compact": {
        "shape": { "slots": n, "samples": shape.samples, "depth": 22 },
        "dataset": {
            "slots": n, "cellCount": 512, "samples": shape.samples,
            "datasetRoot": dataset.root(), "compactRoot": compact.root(),
            "slotRoots": shas.iter().map(SlotTree::root).collect::<Vec<_>>(),
            "commitments": commitments.iter().map(|c| hex32(&fr_to_bytes(c))).collect::<Vec<_>>(),
            "rootPaths": (0..n).map(|i| dataset.path(i).expect("in range")).collect::<Vec<_>>(),
            "commitmentPaths": (0..n).map(|i| compact.path(i).expect("in range")).collect::<Vec<_>>(),
        },
        "fillSeed": fill_seed, "seed": seed,
        "hosts": [format!("0x{}", hex::encode(host))],
        "requests": [{ "requestId": request, "fillProofs": fill_proofs }],
        "batches": [{ "name": "valid, 32 slots", "request": 0, "slots": (0..n).collect::<Vec<_>>(),
            "inputs": input_words(&inputs).iter().map(hex32).collect::<Vec<_>>(),
            "proof": proof.to_evm().iter().map(hex32).collect::<Vec<_>>() }],
    }});
    std::fs::write(out, serde_json::to_string_pretty(&v).expect("json")).expect("write");
    let src = solidity::verifier_source(shape, keys.vk(), solidity::DEVNET_ORIGIN);
    println!("gas: wrote {out}; verifier {} bytes of source", src.len());
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("commit") => commit(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1024)),
        Some("prove") => prove(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4)),
        Some("gas") => gas(args
            .get(1)
            .map_or("target/compact-gas-32.json", String::as_str)),
        Some("verifier") => {
            // The S = 32 verifier from the cached devnet keys (the ignored test checks it fresh).
            let keys = Keys::load_or_setup(Shape::LARGE, DEVNET_SEED, &cache()).expect("keys");
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../contracts/src/verifiers/CompactVerifier32.sol"
            );
            let src = solidity::verifier_source(Shape::LARGE, keys.vk(), solidity::DEVNET_ORIGIN);
            std::fs::write(path, src).expect("write the verifier");
            println!("verifier: wrote {path}");
        }
        _ => {
            // `cargo bench` with no mode: the quick figures only.
            prove(4);
        }
    }
}
