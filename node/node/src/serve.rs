//! Answering peers: manifests, blocks with their Merkle paths, and audit proofs, from the
//! datasets this node packed (renter) and the slots it hosts.
//!
//! Disk reads and hashing run on the blocking pool; the inbound loop only dispatches, so a
//! slow disk never stalls libp2p.

use std::{
    collections::HashMap,
    num::NonZeroU64,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use hoard_dataset::{MANIFEST_FILE, PackedDataset, SlotFiles};
use hoard_p2p::{
    AuditRequest, AuditResponse, BlockRequest, BlockResponse, BlockWithPath, InboundRequest,
    MAX_BLOCKS_PER_REQUEST,
};
use hoard_prover::{BLOCK_SIZE, Challenge, DirectProof, Seed, SlotId, SlotIndex, SlotTree};
use serde_bytes::ByteBuf;
use tokio::sync::mpsc;

use crate::{
    node::Ctx,
    store::{HostSlotState, StoreError},
};

/// Slot trees kept in memory for serving; past this, the oldest are dropped and rebuilt from
/// their roots files when asked again.
const TREE_CACHE: usize = 64;

/// A slot's files and its tree, opened for serving.
type OpenSlot = (SlotFiles, SlotTree);

/// Which local folder holds which slot of which dataset.
#[derive(Debug, Default)]
pub(crate) struct Serving {
    inner: Mutex<ServingInner>,
}

#[derive(Debug, Default)]
struct ServingInner {
    /// (dataset id, slot) → packed folder holding that slot.
    slots: HashMap<([u8; 32], u16), PathBuf>,
    /// Opened slots with their trees, most recent last.
    open: Vec<(PathBuf, u16, Arc<OpenSlot>)>,
}

impl Serving {
    /// Serves `slot` of `dataset` from the packed folder `dir`.
    pub(crate) fn add(&self, dataset: [u8; 32], slot: u16, dir: PathBuf) {
        self.lock().slots.insert((dataset, slot), dir);
    }

    /// Stops serving everything in `dir`.
    pub(crate) fn remove_dir(&self, dir: &Path) {
        let mut inner = self.lock();
        inner.slots.retain(|_, d| d != dir);
        inner.open.retain(|(d, _, _)| d != dir);
    }

    fn dir_of(&self, dataset: &[u8; 32], slot: Option<u16>) -> Option<PathBuf> {
        let inner = self.lock();
        match slot {
            Some(s) => inner.slots.get(&(*dataset, s)).cloned(),
            None => inner
                .slots
                .iter()
                .find(|((d, _), _)| d == dataset)
                .map(|(_, p)| p.clone()),
        }
    }

    /// The opened slot and its tree, from the cache or built now (blocking: call off the runtime).
    fn open_slot(&self, dir: &Path, slot: u16) -> Result<Arc<OpenSlot>, String> {
        {
            let inner = self.lock();
            if let Some((_, _, t)) = inner.open.iter().find(|(d, s, _)| d == dir && *s == slot) {
                return Ok(t.clone());
            }
        }
        let packed = PackedDataset::open(dir).map_err(|e| e.to_string())?;
        let opened = Arc::new(
            packed
                .slot_tree(SlotIndex(slot))
                .map_err(|e| e.to_string())?,
        );
        let mut inner = self.lock();
        if inner.open.len() >= TREE_CACHE {
            inner.open.remove(0);
        }
        inner.open.push((dir.to_path_buf(), slot, opened.clone()));
        Ok(opened)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ServingInner> {
        // A panic while holding this lock cannot leave the maps inconsistent (single inserts).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Registers every local dataset and hosted slot for serving (at start).
pub(crate) fn index_local_data(ctx: &Ctx) -> Result<(), StoreError> {
    for (id, d) in ctx.store.datasets()? {
        if let Ok(packed) = PackedDataset::open(&d.dir) {
            for s in 0..packed.manifest().layout.slots() {
                ctx.serving.add(id.0, s as u16, d.dir.clone());
            }
        }
    }
    for s in ctx.store.host_slots()? {
        if s.state != HostSlotState::Filled {
            continue;
        }
        if let Some(r) = ctx.store.request(&s.request_id)? {
            ctx.serving.add(
                r.manifest_id.0,
                s.index,
                ctx.store.slot_dir(&s.volume, &s.slot_id),
            );
        }
    }
    Ok(())
}

/// Requests answered at once: each holds up to 1 MiB of blocks until libp2p has sent it, so this
/// bounds the memory that serving many hosts takes (the rest wait in the channel).
const SERVING_AT_ONCE: usize = 8;

pub(crate) async fn run(ctx: Arc<Ctx>, mut inbound: mpsc::Receiver<InboundRequest>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(SERVING_AT_ONCE));
    loop {
        let req = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = inbound.recv() => match r { Some(r) => r, None => return },
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match req {
                InboundRequest::Block { request, reply, .. } => {
                    let _ = reply.send(answer_block(&ctx, request));
                }
                InboundRequest::Audit { request, reply, .. } => {
                    let _ = reply.send(answer_audit(&ctx, request));
                }
            }
        });
    }
}

fn answer_block(ctx: &Ctx, request: BlockRequest) -> BlockResponse {
    match request {
        BlockRequest::Manifest { dataset } => match ctx.serving.dir_of(&dataset, None) {
            None => BlockResponse::Error("not found".into()),
            Some(dir) => match std::fs::read(dir.join(MANIFEST_FILE)) {
                Ok(bytes) => BlockResponse::Manifest(ByteBuf::from(bytes)),
                Err(e) => BlockResponse::Error(format!("reading the manifest: {e}")),
            },
        },
        BlockRequest::Blocks {
            dataset,
            slot,
            first,
            count,
        } => {
            let Some(dir) = ctx.serving.dir_of(&dataset, Some(slot)) else {
                return BlockResponse::Error("not found".into());
            };
            match read_blocks(ctx, &dir, slot, first, count) {
                Ok(blocks) => BlockResponse::Blocks(blocks),
                Err(e) => BlockResponse::Error(e),
            }
        }
    }
}

fn read_blocks(
    ctx: &Ctx,
    dir: &Path,
    slot: u16,
    first: u64,
    count: u32,
) -> Result<Vec<BlockWithPath>, String> {
    let opened = ctx.serving.open_slot(dir, slot)?;
    let (files, tree) = &*opened;
    if count == 0 || count > MAX_BLOCKS_PER_REQUEST {
        return Err(format!("count must be 1..={MAX_BLOCKS_PER_REQUEST}"));
    }
    let end = first
        .checked_add(u64::from(count))
        .filter(|e| *e <= tree.blocks())
        .ok_or("blocks out of range")?;
    // Each block is read straight into the buffer it is sent from (no batch copy). Blocks go
    // out unverified: the receiver checks every one by its path.
    let mut out = Vec::with_capacity(count as usize);
    for i in first..end {
        let mut data = vec![0u8; BLOCK_SIZE];
        files.read_blocks(i, &mut data).map_err(|e| e.to_string())?;
        let path = tree.block_path(i).ok_or("blocks out of range")?;
        out.push(BlockWithPath {
            index: i,
            data: ByteBuf::from(data),
            path: path.into_iter().map(|h| h.0).collect(),
        });
    }
    Ok(out)
}

fn answer_audit(ctx: &Ctx, request: AuditRequest) -> AuditResponse {
    let Some(dir) = ctx.serving.dir_of(&request.dataset, Some(request.slot)) else {
        return AuditResponse::Error("not found".into());
    };
    match prove(ctx, &dir, request) {
        Ok(bytes) => AuditResponse::Proof(ByteBuf::from(bytes)),
        Err(e) => AuditResponse::Error(e),
    }
}

fn prove(ctx: &Ctx, dir: &Path, request: AuditRequest) -> Result<Vec<u8>, String> {
    if request.samples == 0 || request.samples > 128 {
        return Err("samples must be 1..=128".into());
    }
    let opened = ctx.serving.open_slot(dir, request.slot)?;
    let (files, tree) = &*opened;
    let challenge = Challenge {
        seed: Seed(request.seed),
        // Audits are off chain: the slot id only salts the samples, so the dataset id will do.
        slot_id: SlotId(request.dataset),
        samples: u32::from(request.samples),
        cell_count: NonZeroU64::new(tree.cell_count()).ok_or("empty slot")?,
    };
    let proof =
        DirectProof::create(tree, &challenge, |b, buf| files.read_blocks(b, buf)).map_err(|e| {
            ctx.metrics.integrity_failures.inc();
            format!("cannot prove: {e}")
        })?;
    Ok(proof.to_bytes())
}
