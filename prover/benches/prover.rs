//! Slot-tree hashing and direct proofs. Figures go in docs/performance.md.

use std::{hint::black_box, num::NonZeroU64};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoard_prover::{
    BLOCK_SIZE, Challenge, DirectProof, Seed, SlotId, SlotTree, block_root, verify,
};

fn block(i: u64) -> Box<[u8; BLOCK_SIZE]> {
    let mut b = Box::new([0u8; BLOCK_SIZE]);
    for (j, w) in b.as_chunks_mut::<8>().0.iter_mut().enumerate() {
        *w = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ j as u64).to_le_bytes();
    }
    b
}

fn trees(c: &mut Criterion) {
    let b = block(1);
    let mut g = c.benchmark_group("slot tree");
    g.throughput(Throughput::Bytes(BLOCK_SIZE as u64));
    g.bench_function("block root (64 KiB, 256 cells)", |x| {
        x.iter(|| block_root(black_box(&b)))
    });
    let roots: Vec<_> = (0..16384).map(|i| block_root(&block(i % 61))).collect();
    g.throughput(Throughput::Elements(16384));
    g.bench_function("tree above 16384 block roots (1 GiB slot)", |x| {
        x.iter(|| SlotTree::from_block_roots(black_box(&roots)))
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    // A 1 GiB slot whose blocks repeat, so only 61 blocks need hashing to set it up.
    let distinct: Vec<_> = (0..61).map(block).collect();
    let roots: Vec<_> = (0..16384).map(|i| block_root(&distinct[i % 61])).collect();
    let tree = SlotTree::from_block_roots(&roots).expect("valid");
    let challenge = Challenge {
        seed: Seed([3; 32]),
        slot_id: SlotId([4; 32]),
        samples: 16,
        cell_count: NonZeroU64::new(tree.cell_count()).expect("non-empty"),
    };
    let read = |b: u64, buf: &mut [u8; BLOCK_SIZE]| {
        *buf = *distinct[(b % 61) as usize];
        Ok::<_, ()>(())
    };
    let bytes = DirectProof::create(&tree, &challenge, read)
        .expect("proof")
        .to_bytes();
    let mut g = c.benchmark_group("direct proof, 1 GiB slot, 16 samples");
    g.bench_function("create (blocks in memory)", |x| {
        x.iter(|| DirectProof::create(&tree, black_box(&challenge), read))
    });
    g.bench_function("verify", |x| {
        x.iter(|| verify(&tree.root(), black_box(&challenge), black_box(&bytes)))
    });
    g.finish();
}

criterion_group!(benches, trees, proofs);
criterion_main!(benches);
