//! Reed–Solomon encoding and decoding of one stripe batch as pack and unpack run it.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

const K: usize = 4;
const M: usize = 2;
/// 64 stripes of 64 KiB per shard: 4 MiB.
const SHARD: usize = 64 * 64 * 1024;

fn erasure(c: &mut Criterion) {
    let data: Vec<Vec<u8>> = (0..K)
        .map(|i| (0..SHARD).map(|j| (i * 31 + j * 7) as u8).collect())
        .collect();
    let mut g = c.benchmark_group("reed-solomon 4+2");
    g.throughput(Throughput::Bytes((K * SHARD) as u64));
    g.bench_function("encode 16 MiB of data", |x| {
        let mut enc = ReedSolomonEncoder::new(K, M, SHARD).expect("valid");
        x.iter(|| {
            for d in &data {
                enc.add_original_shard(d).expect("shard");
            }
            let r = enc.encode().expect("encode");
            black_box(r.recovery(0).map(|s| s[0]));
        })
    });
    let parity: Vec<Vec<u8>> = {
        let mut enc = ReedSolomonEncoder::new(K, M, SHARD).expect("valid");
        data.iter()
            .for_each(|d| enc.add_original_shard(d).expect("shard"));
        enc.encode()
            .expect("encode")
            .recovery_iter()
            .map(<[u8]>::to_vec)
            .collect()
    };
    g.bench_function("decode with 2 data shards lost", |x| {
        let mut dec = ReedSolomonDecoder::new(K, M, SHARD).expect("valid");
        x.iter(|| {
            dec.add_original_shard(2, &data[2]).expect("shard");
            dec.add_original_shard(3, &data[3]).expect("shard");
            dec.add_recovery_shard(0, &parity[0]).expect("shard");
            dec.add_recovery_shard(1, &parity[1]).expect("shard");
            let r = dec.decode().expect("decode");
            black_box(r.restored_original(0).map(|s| s[0]));
        })
    });
    g.finish();
}

criterion_group!(benches, erasure);
criterion_main!(benches);
