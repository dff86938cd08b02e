//! Downloading from peers: manifests (checked against their id) and whole slots, block by block,
//! each block checked against the slot root by its Merkle path as it arrives.
//!
//! A slot is fetched in requests of [`MAX_BLOCKS_PER_REQUEST`] blocks, [`IN_FLIGHT`] of them at
//! once, spread over the peers that hold it. A peer that sends a block that does not verify is
//! penalised and dropped for this slot; its batch goes to another peer. Hashing and writing run
//! on the blocking pool.

use std::{
    fs::File,
    os::unix::fs::FileExt,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::{StreamExt, stream::FuturesUnordered};
use hoard_dataset::{MANIFEST_FILE, Manifest, slot_data_file, slot_roots_file};
use hoard_p2p::{BlockRequest, BlockResponse, BlockWithPath, MAX_BLOCKS_PER_REQUEST};
use hoard_prover::{BLOCK_SIZE, DatasetId, Hash, SlotIndex};
use libp2p::PeerId;
use sha2::{Digest, Sha256};

use crate::ctx::Ctx;

/// Block requests in flight per slot download.
pub(crate) const IN_FLIGHT: usize = 8;

/// Consecutive failed requests (busy, timeout) after which a peer is dropped for this slot.
const MAX_STRIKES: u32 = 3;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// Nobody that was asked had it (or every peer misbehaved).
    #[error("no peer could serve {what}: {last}")]
    Unavailable {
        /// What was wanted.
        what: String,
        /// The last peer's error.
        last: String,
    },
    /// The manifest does not describe the request (wrong dataset root or layout).
    #[error("the manifest of {dataset} does not match its request: {why}")]
    WrongManifest {
        /// The dataset.
        dataset: DatasetId,
        /// What differs.
        why: &'static str,
    },
    /// Writing locally failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Fetches and checks the manifest with id `dataset` from any of `peers`.
pub(crate) async fn manifest(
    ctx: &Ctx,
    dataset: DatasetId,
    peers: &[PeerId],
) -> Result<(Manifest, Vec<u8>), FetchError> {
    let mut last = String::from("no peers known");
    for peer in peers {
        match ctx
            .net
            .request_block(*peer, BlockRequest::Manifest { dataset })
            .await
        {
            Ok(BlockResponse::Manifest(bytes)) => {
                let bytes = bytes.into_vec();
                if <[u8; 32]>::from(Sha256::digest(&bytes)) != dataset.0 {
                    ctx.net
                        .penalise(*peer, "sent a manifest that does not hash to its id")
                        .await;
                    last = format!("{peer} sent a wrong manifest");
                    continue;
                }
                match Manifest::decode(&bytes) {
                    Ok(m) => return Ok((m, bytes)),
                    Err(e) => last = format!("{peer}: invalid manifest: {e}"),
                }
            }
            Ok(BlockResponse::Error(e)) => last = format!("{peer}: {e}"),
            Ok(_) => last = format!("{peer}: unexpected answer"),
            Err(e) => last = format!("{peer}: {e}"),
        }
    }
    Err(FetchError::Unavailable {
        what: format!("manifest {}", dataset.short()),
        last,
    })
}

/// Writes `manifest.bin` into `dir`.
pub(crate) fn write_manifest(dir: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    let path = dir.join(MANIFEST_FILE);
    let io = |source| FetchError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = File::create(&path).map_err(io)?;
    f.write_all_at(bytes, 0).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Downloads slot `index` of the dataset into the packed folder `dir` (`slot-NNN.bin` and
/// `slot-NNN.roots`, synced), from `peers`, verifying every block against the manifest's slot
/// root. `progress` counts bytes received.
pub(crate) async fn slot(
    ctx: &Ctx,
    manifest: &Manifest,
    dataset: DatasetId,
    index: SlotIndex,
    peers: &[PeerId],
    dir: &Path,
    progress: Arc<AtomicU64>,
) -> Result<(), FetchError> {
    let slot_root = *manifest
        .slot_roots
        .get(usize::from(index.0))
        .ok_or_else(|| FetchError::Unavailable {
            what: format!("slot {index}"),
            last: "no such slot in the manifest".into(),
        })?;
    let blocks = manifest.layout.slot_blocks();
    let data_path = dir.join(slot_data_file(index));
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| FetchError::Io { path, source }
    };
    let data = Arc::new(File::create(&data_path).map_err(io(&data_path))?);
    data.set_len(blocks * BLOCK_SIZE as u64)
        .map_err(io(&data_path))?;

    let mut roots = vec![Hash::default(); blocks as usize];
    let mut good: Vec<PeerId> = peers.to_vec();
    let mut last_error = String::from("no peers known");
    let batch = u64::from(MAX_BLOCKS_PER_REQUEST);
    let mut queue: std::collections::VecDeque<u64> = (0..blocks.div_ceil(batch)).collect();
    let mut in_flight = FuturesUnordered::new();
    let mut turn = 0usize;
    let mut strikes: std::collections::HashMap<PeerId, u32> = std::collections::HashMap::new();
    loop {
        while in_flight.len() < IN_FLIGHT && !good.is_empty() {
            let Some(b) = queue.pop_front() else { break };
            let peer = good[turn % good.len()];
            turn += 1;
            let first = b * batch;
            let count = (blocks - first).min(batch) as u32;
            let net = ctx.net.clone();
            let data = data.clone();
            in_flight.push(async move {
                let r = net
                    .request_block(
                        peer,
                        BlockRequest::Blocks {
                            dataset,
                            slot: index,
                            first,
                            count,
                        },
                    )
                    .await;
                let checked = match r {
                    Ok(BlockResponse::Blocks(got)) => tokio::task::spawn_blocking(move || {
                        check_and_write(&data, &slot_root, first, count, got)
                    })
                    .await
                    .unwrap_or_else(|e| Err(Bad::Local(e.to_string()))),
                    Ok(BlockResponse::Error(e)) => Err(Bad::Refused(e)),
                    Ok(_) => Err(Bad::Unexpected),
                    Err(e) => Err(Bad::Refused(e.to_string())),
                };
                (b, peer, checked)
            });
        }
        let Some((b, peer, result)) = in_flight.next().await else {
            break;
        };
        match result {
            Ok(batch_roots) => {
                strikes.remove(&peer);
                let first = (b * batch) as usize;
                roots[first..first + batch_roots.len()].copy_from_slice(&batch_roots);
                progress.fetch_add((batch_roots.len() * BLOCK_SIZE) as u64, Ordering::Relaxed);
            }
            Err(bad) => {
                queue.push_back(b);
                last_error = format!("{peer}: {bad}");
                match bad {
                    Bad::Data(_) | Bad::Count(_) | Bad::Unexpected => {
                        let reason = bad;
                        ctx.metrics.blocks_rejected.inc();
                        tracing::warn!(%peer, slot = index.0, %reason, "peer sent bad blocks; dropping it");
                        ctx.net.penalise(peer, &reason.to_string()).await;
                        good.retain(|p| *p != peer);
                    }
                    Bad::Refused(reason) => {
                        // Busy or slow is not bad faith: drop the peer only after repeated failures.
                        let n = strikes.entry(peer).or_insert(0u32);
                        *n += 1;
                        tracing::debug!(%peer, slot = index.0, reason, strikes = *n, "block request failed");
                        if *n >= MAX_STRIKES && good.contains(&peer) {
                            tracing::warn!(%peer, slot = index.0, reason, "peer keeps failing; using others");
                            good.retain(|p| *p != peer);
                        }
                    }
                    Bad::Local(e) => {
                        return Err(FetchError::Io {
                            path: data_path.display().to_string(),
                            source: std::io::Error::other(e),
                        });
                    }
                }
            }
        }
        if good.is_empty() && in_flight.is_empty() {
            break;
        }
    }
    if !queue.is_empty() {
        return Err(FetchError::Unavailable {
            what: format!("slot {index}"),
            last: last_error,
        });
    }
    data.sync_all().map_err(io(&data_path))?;
    let roots_path = dir.join(slot_roots_file(index));
    let bytes: Vec<u8> = roots.iter().flat_map(|r| r.0).collect();
    let f = File::create(&roots_path).map_err(io(&roots_path))?;
    f.write_all_at(&bytes, 0).map_err(io(&roots_path))?;
    f.sync_all().map_err(io(&roots_path))?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum Bad {
    /// The peer sent a block that does not verify: penalise it.
    #[error("bad data: {0}")]
    Data(#[from] hoard_p2p::BadBlock),
    /// The peer sent another number of blocks than asked for, or another kind of answer.
    #[error("bad data: {0}")]
    Count(String),
    /// The peer answered a block request with something else.
    #[error("bad data: an answer of another kind")]
    Unexpected,
    /// The peer could not answer (busy, not found, timeout).
    #[error("{0}")]
    Refused(String),
    /// A local failure.
    #[error("local: {0}")]
    Local(String),
}

/// Checks a batch against the slot root ([`BlockWithPath::verify`], the one block check) and
/// writes it; returns the block roots.
fn check_and_write(
    data: &File,
    slot_root: &Hash,
    first: u64,
    count: u32,
    got: Vec<BlockWithPath>,
) -> Result<Vec<Hash>, Bad> {
    if got.len() != count as usize {
        return Err(Bad::Count(format!(
            "{} blocks instead of {count}",
            got.len()
        )));
    }
    let mut roots = Vec::with_capacity(got.len());
    for (b, want) in got.iter().zip(first..) {
        roots.push(b.verify(slot_root, want)?);
        data.write_all_at(&b.data, want * BLOCK_SIZE as u64)
            .map_err(|e| Bad::Local(e.to_string()))?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use hoard_p2p::Bytes;
    use hoard_prover::{SlotTree, block_root};

    use super::*;

    /// A slot of `n` blocks, each block filled with its index, and its tree.
    fn slot(n: u8) -> (Vec<Vec<u8>>, SlotTree) {
        let data: Vec<Vec<u8>> = (0..n).map(|i| vec![i; BLOCK_SIZE]).collect();
        let roots: Vec<Hash> = data
            .iter()
            .map(|b| block_root(b.as_slice().try_into().expect("block")))
            .collect();
        (data, SlotTree::from_block_roots(&roots).expect("tree"))
    }

    fn sent(data: &[Vec<u8>], tree: &SlotTree, first: u64, count: u64) -> Vec<BlockWithPath> {
        (first..first + count)
            .map(|i| BlockWithPath {
                index: i,
                data: Bytes::from(data[i as usize].clone()),
                path: tree
                    .block_path(i)
                    .expect("in range")
                    .iter()
                    .map(|h| h.0)
                    .collect(),
            })
            .collect()
    }

    #[test]
    fn a_batch_is_written_only_if_every_block_checks_out() {
        let (data, tree) = slot(6);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("slot.bin"))
            .expect("file");
        file.set_len(6 * BLOCK_SIZE as u64).expect("size");
        let root = tree.root();

        let roots = check_and_write(&file, &root, 2, 3, sent(&data, &tree, 2, 3)).expect("good");
        assert_eq!(
            roots,
            (2..5)
                .map(|i| tree.block_root(i).expect("root"))
                .collect::<Vec<_>>()
        );
        let mut got = vec![0u8; BLOCK_SIZE];
        file.read_exact_at(&mut got, 3 * BLOCK_SIZE as u64)
            .expect("read");
        assert_eq!(got, data[3]);

        // Fewer blocks than asked, blocks from elsewhere in the slot, a flipped byte: refused.
        assert!(matches!(
            check_and_write(&file, &root, 2, 3, sent(&data, &tree, 2, 2)),
            Err(Bad::Count(_))
        ));
        assert!(matches!(
            check_and_write(&file, &root, 0, 3, sent(&data, &tree, 2, 3)),
            Err(Bad::Data(hoard_p2p::BadBlock::WrongIndex {
                want: 0,
                got: 2
            }))
        ));
        let mut flipped = sent(&data, &tree, 0, 2);
        let mut bytes = flipped[1].data.to_vec();
        bytes[7] ^= 1;
        flipped[1].data = bytes.into();
        assert!(matches!(
            check_and_write(&file, &root, 0, 2, flipped),
            Err(Bad::Data(hoard_p2p::BadBlock::RootMismatch { index: 1 }))
        ));
    }
}
