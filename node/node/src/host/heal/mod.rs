//! Self-repair of hosted slots: damage found by the scrub, the start-up check, serving or the
//! proof scheduler is rebuilt from the same blocks of `k` other slots on their holders, checked
//! against the slot's block roots and written back in place (`journal`), or, when the slot's
//! files are gone or unreadable, rebuilt whole as a repair fill does.
//!
//! ```text
//!  scrub / check / prove / serve ── Damage::report (a set of blocks per slot) ──▶ heal::run
//!    Blocks: re-check them locally (blocking pool) ─▶ per batch of ≤ 16 consecutive blocks:
//!            the same blocks of k other slots from their holders, each checked by its path
//!            (a wrong one: rejected, its sender penalised, the next source asked)
//!            ─▶ rebuild_stripe ─▶ each block checked against its root ─▶ journal ─▶ in place
//!            ─▶ read back and checked
//!    Whole:  k other slots fetched into tmp/ ─▶ rebuild_slot ─▶ slot tree checked ─▶ files
//!            renamed into the slot's folder
//!  prove: a proof that needs a damaged block reports it and waits (Damage::subscribe until
//!         is_clear) for the repair, then proves; a repair that fails is retried every RETRY
//!         until it succeeds.
//! ```
//!
//! One repair runs at a time (they are rare, and each may read `k` × its size from the
//! network). Damage waiting for a repair (`damage.rs`) is a set per slot, bounded by
//! [`MAX_BLOCKS`] (past it the slot is rebuilt whole), so reporters never block and nothing is
//! dropped.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use hoard_dataset::{
    DatasetError, MANIFEST_FILE, Manifest, PackedDataset, slot_data_file, slot_roots_file,
};
use hoard_p2p::{BlockRequest, BlockResponse, BlockWithPath, MAX_BLOCKS_PER_REQUEST};
use hoard_prover::{BLOCK_SIZE, Hash, SlotId, SlotIndex, SlotTree};
use libp2p::PeerId;
use sha2::{Digest as _, Sha256};
use tracing::Instrument as _;

mod damage;

pub(crate) use self::damage::{Damage, Hurt, MAX_BLOCKS};
use super::{
    Host,
    journal::{self, JournalError},
    prove::{ProveError, open_tree},
    repair::{self, RepairError},
};
use crate::{
    ctx::Ctx,
    download::{
        fetch::{self, FetchError},
        holders,
    },
    store::{HostSlot, HostSlotState, RequestRecord, StoreError},
};

/// How long a failed repair waits before it is tried again.
pub(super) const RETRY: Duration = Duration::from_secs(5);

/// Why a repair did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HealError {
    /// Fewer than `k` other slots answered with good blocks.
    #[error(
        "only {have} of the {need} other slots needed could send blocks {first}..{end} (their \
         hosts are offline or sent bad data); trying again in {} s",
        RETRY.as_secs()
    )]
    TooFewSources {
        /// Slots that sent good blocks.
        have: usize,
        /// k.
        need: usize,
        /// First block of the batch.
        first: u64,
        /// One past its last block.
        end: u64,
    },
    /// Writing the repaired blocks failed (a full disk among others).
    #[error(transparent)]
    Write(#[from] JournalError),
    /// The rebuilt bytes do not match the slot's root (a bug: every input was checked).
    #[error("rebuilt block {0} does not match its root; not written (please report this bug)")]
    Mismatch(u64),
    /// The whole-slot rebuild failed.
    #[error(transparent)]
    Repair(#[from] RepairError),
    /// The manifest could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The slot's files.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The rebuilt slot did not verify.
    #[error(transparent)]
    Prove(#[from] ProveError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Moving rebuilt files into place.
    #[error("moving the rebuilt slot into {}: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A blocking task died.
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl HealError {
    /// The `reason` label of `hoard_self_repair_failures_total`.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::TooFewSources { .. }
            | Self::Repair(RepairError::TooFew { .. })
            | Self::Fetch(FetchError::Unavailable { .. }) => "sources",
            _ if self.disk_full() => "disk",
            _ => "other",
        }
    }

    /// Whether an I/O error in the chain is a full disk.
    fn disk_full(&self) -> bool {
        let mut e: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = e {
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
            {
                return true;
            }
            if matches!(
                err.downcast_ref::<JournalError>(),
                Some(JournalError::Full { .. })
            ) {
                return true;
            }
            e = err.source();
        }
        false
    }
}

/// The heal task: repairs what is reported, one slot at a time, until the node stops.
pub(super) async fn run(host: Arc<Host>) {
    let ctx = &host.ctx;
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = host.damage.wake.notified() => {}
            _ = retry.tick() => host.damage.retry_failed(),
        }
        if host.damage.has_dir_reports()
            && let Ok(held) = ctx.store.host_slots()
        {
            let dirs = held
                .iter()
                .filter(|s| s.state == HostSlotState::Filled)
                .map(|s| (ctx.store.slot_dir(&s.volume, &s.slot_id), s.slot_id))
                .collect();
            host.damage.resolve_dirs(&dirs);
        }
        while let Some((slot, hurt)) = host.damage.take_next() {
            if ctx.cancel.is_cancelled() {
                return;
            }
            ctx.metrics
                .damaged_slots
                .set(host.damage.damaged_slots() as i64);
            let span = tracing::info_span!("heal", slot = %slot.short());
            let result = heal_slot(&host, slot, hurt.clone()).instrument(span).await;
            let failed = match result {
                Ok(Healed::Gone) => {
                    host.damage.forget(&slot);
                    None
                }
                Ok(_) => None,
                Err(e) => {
                    ctx.metrics
                        .self_repair_failures
                        .with_label_values(&[e.reason()])
                        .inc();
                    tracing::error!(slot = %slot.short(), err = %e, "self-repair failed");
                    Some((hurt, e.to_string()))
                }
            };
            host.damage.finish(slot, failed);
            ctx.metrics
                .damaged_slots
                .set(host.damage.damaged_slots() as i64);
        }
    }
}

/// What a repair did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Healed {
    /// Blocks rebuilt and written back (0: the reported blocks were fine after all).
    Blocks(u64),
    /// The whole slot was rebuilt.
    Whole,
    /// The slot is no longer held: nothing to do.
    Gone,
}

async fn heal_slot(host: &Host, slot_id: SlotId, hurt: Hurt) -> Result<Healed, HealError> {
    let ctx = &host.ctx;
    let Some(s) = ctx.store.host_slot(&slot_id)? else {
        return Ok(Healed::Gone);
    };
    if s.state != HostSlotState::Filled {
        return Ok(Healed::Gone);
    }
    let Some(r) = ctx.store.request(&s.request_id)? else {
        return Ok(Healed::Gone);
    };
    let dir = ctx.store.slot_dir(&s.volume, &slot_id);
    if let Hurt::Blocks(blocks) = hurt {
        match open(&dir, s.index).await {
            Ok((manifest, tree)) => {
                return heal_blocks(host, &r, &s, &dir, &manifest, &tree, blocks).await;
            }
            Err(e) => {
                tracing::warn!(err = %e, "the slot's files are unusable; rebuilding it whole");
            }
        }
    }
    heal_whole(host, &r, &s, &dir).await
}

/// The manifest and tree of slot `index` in `dir` (every block root checked against the slot
/// root), on the blocking pool.
async fn open(dir: &Path, index: SlotIndex) -> Result<(Manifest, SlotTree), HealError> {
    let dir = dir.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || {
        let packed = PackedDataset::open(&dir)?;
        let (_, tree) = packed.slot_tree(index)?;
        Ok::<_, DatasetError>((packed.manifest().clone(), tree))
    })
    .await??;
    Ok(opened)
}

/// Repairs `blocks` of slot `s` in place.
async fn heal_blocks(
    host: &Host,
    r: &RequestRecord,
    s: &HostSlot,
    dir: &Path,
    manifest: &Manifest,
    tree: &SlotTree,
    blocks: BTreeSet<u64>,
) -> Result<Healed, HealError> {
    let ctx = &host.ctx;
    let bad = {
        let (dir, tree, index) = (dir.to_path_buf(), tree.clone(), s.index);
        tokio::task::spawn_blocking(move || damaged_blocks(&dir, index, &tree, blocks)).await?
    };
    if bad.is_empty() {
        tracing::info!("the reported blocks match their roots now; nothing to repair");
        return Ok(Healed::Blocks(0));
    }
    tracing::warn!(
        blocks = bad.len(),
        "repairing damaged blocks from the other slots"
    );
    let k = manifest.layout.data_slots();
    let m = manifest.layout.parity_slots();
    let mut sources = Vec::new();
    for i in (0..r.slots).map(SlotIndex).filter(|i| *i != s.index) {
        let root = manifest.slot_roots.get(usize::from(i.0)).copied();
        let peers = holders::slot_holders(ctx, r, i).await;
        if let Some(root) = root
            && !peers.is_empty()
        {
            sources.push(Source {
                slot: i,
                root,
                peers,
            });
        }
    }
    let net = NetSources {
        ctx,
        dataset: r.manifest_id,
    };
    let mut repaired = 0;
    for (first, count) in batches(&bad) {
        let shards = collect_stripe(&net, k, &mut sources, first, count).await?;
        let (dir2, tree2, index) = (dir.to_path_buf(), tree.clone(), s.index);
        tokio::task::spawn_blocking(move || -> Result<(), HealError> {
            let given: Vec<(SlotIndex, &[u8])> =
                shards.iter().map(|(i, b)| (*i, b.as_slice())).collect();
            let rebuilt = hoard_dataset::rebuild_stripe(k, m, index, &given)?;
            for (i, block) in rebuilt.chunks_exact(BLOCK_SIZE).enumerate() {
                let b = first + i as u64;
                if !matches_root(&tree2, b, block) {
                    return Err(HealError::Mismatch(b));
                }
            }
            journal::write_blocks(&dir2, index, first, &rebuilt)?;
            Ok(())
        })
        .await??;
        repaired += u64::from(count);
        ctx.metrics.self_repair_blocks.inc_by(u64::from(count));
        tracing::info!(first, count, "blocks rebuilt and written back");
    }
    // Read back what was written: the disk must give the new bytes now.
    let still = {
        let (dir, tree, index) = (dir.to_path_buf(), tree.clone(), s.index);
        tokio::task::spawn_blocking(move || damaged_blocks(&dir, index, &tree, bad)).await?
    };
    if let Some(b) = still.first() {
        return Err(HealError::Mismatch(*b));
    }
    Ok(Healed::Blocks(repaired))
}

/// Of `blocks`, those that do not match their root in slot `index` of `dir` (or cannot be read).
pub(crate) fn damaged_blocks(
    dir: &Path,
    index: SlotIndex,
    tree: &SlotTree,
    blocks: impl IntoIterator<Item = u64>,
) -> Vec<u64> {
    let file = std::fs::File::open(dir.join(slot_data_file(index)));
    let mut buf = vec![0u8; BLOCK_SIZE];
    blocks
        .into_iter()
        .filter(|b| *b < tree.blocks())
        .filter(|b| {
            use std::os::unix::fs::FileExt as _;
            let read = file
                .as_ref()
                .ok()
                .map(|f| f.read_exact_at(&mut buf, b * BLOCK_SIZE as u64));
            !matches!(read, Some(Ok(()))) || !matches_root(tree, *b, &buf)
        })
        .collect()
}

/// Whether `block` is block `b` of the slot committed to by `tree`.
pub(crate) fn matches_root(tree: &SlotTree, b: u64, block: &[u8]) -> bool {
    <&[u8; BLOCK_SIZE]>::try_from(block)
        .is_ok_and(|block| tree.block_root(b) == Some(hoard_prover::block_root(block)))
}

/// Consecutive runs of `blocks`, each at most one block request long.
fn batches(blocks: &[u64]) -> Vec<(u64, u32)> {
    let mut out: Vec<(u64, u32)> = Vec::new();
    for &b in blocks {
        match out.last_mut() {
            Some((first, count))
                if *first + u64::from(*count) == b && *count < MAX_BLOCKS_PER_REQUEST =>
            {
                *count += 1
            }
            _ => out.push((b, 1)),
        }
    }
    out
}

/// Another slot of the dataset and who holds it.
#[derive(Debug, Clone)]
struct Source {
    slot: SlotIndex,
    /// Its slot root, from the manifest.
    root: Hash,
    /// Its holders, best first; one that sent bad data is removed.
    peers: Vec<PeerId>,
}

/// Asking peers for blocks (the network in a node, canned answers in the unit tests).
trait Peers {
    async fn blocks(
        &self,
        peer: PeerId,
        slot: SlotIndex,
        first: u64,
        count: u32,
    ) -> Result<Vec<BlockWithPath>, String>;
    async fn penalise(&self, peer: PeerId, reason: &str);
}

struct NetSources<'a> {
    ctx: &'a Ctx,
    dataset: hoard_prover::DatasetId,
}

impl Peers for NetSources<'_> {
    async fn blocks(
        &self,
        peer: PeerId,
        slot: SlotIndex,
        first: u64,
        count: u32,
    ) -> Result<Vec<BlockWithPath>, String> {
        let request = BlockRequest::Blocks {
            dataset: self.dataset,
            slot,
            first,
            count,
        };
        match self.ctx.net.request_block(peer, request).await {
            Ok(BlockResponse::Blocks(b)) => Ok(b),
            Ok(BlockResponse::Error(e)) => Err(e),
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn penalise(&self, peer: PeerId, reason: &str) {
        self.ctx.metrics.blocks_rejected.inc();
        self.ctx.net.penalise(peer, reason).await;
    }
}

/// Blocks `first..first + count` of `k` of the `sources`' slots, each block checked against its
/// slot's root. A peer that sends a wrong block is penalised and not asked again; the next peer
/// or slot is asked instead.
async fn collect_stripe(
    peers: &impl Peers,
    k: usize,
    sources: &mut [Source],
    first: u64,
    count: u32,
) -> Result<Vec<(SlotIndex, Vec<u8>)>, HealError> {
    let mut shards = Vec::with_capacity(k);
    for source in sources.iter_mut() {
        if shards.len() == k {
            break;
        }
        let mut asked = 0;
        while asked < source.peers.len() {
            let peer = source.peers[asked];
            let answer = peers.blocks(peer, source.slot, first, count).await;
            match answer.map(|got| check_shard(&got, &source.root, first, count)) {
                Ok(Ok(bytes)) => {
                    shards.push((source.slot, bytes));
                    break;
                }
                Ok(Err(bad)) => {
                    tracing::warn!(%peer, slot = source.slot.0, %bad, "a repair source sent a wrong block; asking another");
                    peers.penalise(peer, &bad).await;
                    source.peers.remove(asked);
                }
                Err(refused) => {
                    tracing::debug!(%peer, slot = source.slot.0, refused, "a repair source could not answer");
                    asked += 1;
                }
            }
        }
    }
    if shards.len() < k {
        return Err(HealError::TooFewSources {
            have: shards.len(),
            need: k,
            first,
            end: first + u64::from(count),
        });
    }
    Ok(shards)
}

/// The blocks' bytes, if there are `count` of them, from `first` on, each matching `root` by
/// its path ([`BlockWithPath::verify`]).
fn check_shard(
    got: &[BlockWithPath],
    root: &Hash,
    first: u64,
    count: u32,
) -> Result<Vec<u8>, String> {
    if got.len() != count as usize {
        return Err(format!("{} blocks instead of {count}", got.len()));
    }
    let mut bytes = Vec::with_capacity(count as usize * BLOCK_SIZE);
    for (b, want) in got.iter().zip(first..) {
        b.verify(root, want).map_err(|e| e.to_string())?;
        bytes.extend_from_slice(&b.data);
    }
    Ok(bytes)
}

/// Rebuilds slot `s` whole from `k` other slots, as a repair fill does, and moves its files into
/// `dir` (each rename atomic; the contents are fixed by the slot root, so any mix of the old
/// good files and the new ones is consistent).
async fn heal_whole(
    host: &Host,
    r: &RequestRecord,
    s: &HostSlot,
    dir: &Path,
) -> Result<Healed, HealError> {
    let ctx = &host.ctx;
    tracing::warn!("rebuilding the whole slot from the other slots");
    let tmp = ctx.store.temp_dir(&s.volume)?;
    // The manifest: the slot's own copy if it is intact (its hash is the dataset id), else
    // from the other holders.
    let local = std::fs::read(dir.join(MANIFEST_FILE))
        .ok()
        .filter(|b| <[u8; 32]>::from(Sha256::digest(b)) == r.manifest_id.0)
        .and_then(|b| Manifest::decode(&b).ok().map(|m| (m, b)));
    let (manifest, bytes) = match local {
        Some(m) => m,
        None => {
            let peers = holders::holders(ctx, r).await;
            fetch::manifest(ctx, r.manifest_id, &peers).await?
        }
    };
    fetch::write_manifest(tmp.path(), &bytes)?;
    repair::rebuild(ctx, r, &manifest, s.index, tmp.path(), Arc::default()).await?;
    open_tree(tmp.path(), s.index).await?;
    let mv = |name: String| -> Result<(), HealError> {
        let to = dir.join(&name);
        std::fs::rename(tmp.path().join(&name), &to)
            .map_err(|source| HealError::Io { path: to, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| HealError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let _ = std::fs::remove_file(dir.join(journal::JOURNAL_FILE));
    mv(MANIFEST_FILE.to_string())?;
    mv(slot_roots_file(s.index))?;
    mv(slot_data_file(s.index))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    // Served files were opened before the rename: drop them so serving opens the new ones.
    host.slots.remove_dir(dir);
    host.slots.add(r.manifest_id, s.index, dir.to_path_buf());
    ctx.metrics.self_repair_slots.inc();
    tracing::info!("slot rebuilt whole");
    Ok(Healed::Whole)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use hoard_p2p::Bytes;
    use hoard_prover::block_root;

    use super::*;

    #[test]
    fn damaged_blocks_are_batched_in_runs_of_one_request() {
        assert_eq!(batches(&[1, 2, 3, 7, 9, 10]), vec![(1, 3), (7, 1), (9, 2)]);
        let long: Vec<u64> = (0..20).collect();
        assert_eq!(batches(&long), vec![(0, 16), (16, 4)]);
    }

    /// Slots of 2 blocks, each block filled with `slot * 16 + block`, and their trees.
    fn slots(n: u16) -> Vec<(Vec<Vec<u8>>, SlotTree)> {
        (0..n)
            .map(|s| {
                let blocks: Vec<Vec<u8>> = (0..2u8)
                    .map(|b| vec![s as u8 * 16 + b; BLOCK_SIZE])
                    .collect();
                let roots: Vec<Hash> = blocks
                    .iter()
                    .map(|b| block_root(b.as_slice().try_into().expect("block")))
                    .collect();
                (blocks, SlotTree::from_block_roots(&roots).expect("tree"))
            })
            .collect()
    }

    /// Each peer holds one slot; `liar` sends slot 1's block with a flipped byte.
    struct Canned {
        slots: Vec<(Vec<Vec<u8>>, SlotTree)>,
        liar: PeerId,
        penalised: RefCell<Vec<PeerId>>,
        asked: RefCell<Vec<(PeerId, u16)>>,
    }

    impl Peers for Canned {
        async fn blocks(
            &self,
            peer: PeerId,
            slot: SlotIndex,
            first: u64,
            count: u32,
        ) -> Result<Vec<BlockWithPath>, String> {
            self.asked.borrow_mut().push((peer, slot.0));
            let (blocks, tree) = &self.slots[usize::from(slot.0)];
            Ok((first..first + u64::from(count))
                .map(|i| {
                    let mut data = blocks[i as usize].clone();
                    if peer == self.liar {
                        data[100] ^= 1;
                    }
                    BlockWithPath {
                        index: i,
                        data: Bytes::from(data),
                        path: tree
                            .block_path(i)
                            .expect("in range")
                            .iter()
                            .map(|h| h.0)
                            .collect(),
                    }
                })
                .collect())
        }

        async fn penalise(&self, peer: PeerId, _reason: &str) {
            self.penalised.borrow_mut().push(peer);
        }
    }

    #[tokio::test]
    async fn a_source_that_sends_a_wrong_block_is_penalised_and_the_next_one_asked() {
        let all = slots(4);
        let (liar, honest, other) = (PeerId::random(), PeerId::random(), PeerId::random());
        let canned = Canned {
            slots: all.clone(),
            liar,
            penalised: RefCell::default(),
            asked: RefCell::default(),
        };
        // Rebuilding slot 0 with k = 2: slot 1's first holder lies, its second is honest.
        let mut sources = vec![
            Source {
                slot: SlotIndex(1),
                root: all[1].1.root(),
                peers: vec![liar, honest],
            },
            Source {
                slot: SlotIndex(2),
                root: all[2].1.root(),
                peers: vec![other],
            },
        ];
        let shards = collect_stripe(&canned, 2, &mut sources, 1, 1)
            .await
            .expect("two good shards");
        assert_eq!(*canned.penalised.borrow(), vec![liar]);
        assert_eq!(shards[0], (SlotIndex(1), all[1].0[1].clone()));
        assert_eq!(shards[1], (SlotIndex(2), all[2].0[1].clone()));
        assert_eq!(
            sources[0].peers,
            vec![honest],
            "the liar is not asked again"
        );

        // With only the liar left for slot 1 and k = 2 of one other slot: too few.
        let mut only_liar = vec![Source {
            slot: SlotIndex(1),
            root: all[1].1.root(),
            peers: vec![liar],
        }];
        let err = collect_stripe(&canned, 2, &mut only_liar, 0, 2)
            .await
            .expect_err("too few");
        assert!(
            matches!(
                err,
                HealError::TooFewSources {
                    have: 0,
                    need: 2,
                    first: 0,
                    end: 2
                }
            ),
            "{err}"
        );
        assert_eq!(err.reason(), "sources");
    }

    #[test]
    fn a_shard_of_the_wrong_length_or_index_is_refused() {
        let all = slots(1);
        let (blocks, tree) = &all[0];
        let one = |i: u64| BlockWithPath {
            index: i,
            data: Bytes::from(blocks[i as usize].clone()),
            path: tree
                .block_path(i)
                .expect("path")
                .iter()
                .map(|h| h.0)
                .collect(),
        };
        assert!(check_shard(&[one(0), one(1)], &tree.root(), 0, 2).is_ok());
        assert!(check_shard(&[one(0)], &tree.root(), 0, 2).is_err());
        assert!(check_shard(&[one(1)], &tree.root(), 0, 1).is_err());
    }

    #[test]
    fn a_full_disk_is_told_apart() {
        let full = HealError::Write(JournalError::Full {
            path: PathBuf::from("/x"),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        });
        assert_eq!(full.reason(), "disk");
        let nested = HealError::Dataset(DatasetError::Io {
            action: "writing",
            path: PathBuf::from("/x"),
            source: std::io::Error::from_raw_os_error(28),
        });
        assert_eq!(nested.reason(), "disk");
        assert_eq!(HealError::Mismatch(3).reason(), "other");
    }
}
