//! Block hashing spread over the machine's cores (std scoped threads: the work is one flat,
//! evenly sized batch, so a thread pool library would add nothing).

use std::{num::NonZeroUsize, thread};

use hoard_prover::{BLOCK_SIZE, Hash, block_root};

/// Roots of every block in `buffers` (each a whole number of blocks), buffer after buffer.
pub(crate) fn block_roots(buffers: &[&[u8]]) -> Vec<Vec<Hash>> {
    let blocks: Vec<(usize, &[u8; BLOCK_SIZE])> = buffers
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            b.as_chunks::<BLOCK_SIZE>()
                .0
                .iter()
                .map(move |blk| (i, blk))
        })
        .collect();
    let threads = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let per_thread = blocks.len().div_ceil(threads).max(1);
    let roots: Vec<Hash> = thread::scope(|s| {
        let workers: Vec<_> = blocks
            .chunks(per_thread)
            .map(|part| {
                s.spawn(move || part.iter().map(|(_, b)| block_root(b)).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("block hashing does not panic"))
            .collect()
    });
    let mut out = vec![Vec::new(); buffers.len()];
    for ((i, _), root) in blocks.iter().zip(roots) {
        out[*i].push(root);
    }
    out
}
