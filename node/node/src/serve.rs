//! Answering peers: manifests, blocks with their Merkle paths, and audit proofs, from the
//! datasets this node packed (renter) and the slots it hosts.
//!
//! Disk reads and hashing run on the blocking pool; the inbound loop only dispatches, so a
//! slow disk never stalls libp2p. Each block is checked against its root before it goes out: a
//! damaged one is refused (the reader asks another holder) and reported to the host's heal task.

use std::{path::Path, sync::Arc};

use hoard_dataset::MANIFEST_FILE;
use hoard_p2p::{
    AuditRequest, AuditResponse, BlockRequest, BlockResponse, BlockWithPath, InboundRequest,
    MAX_BLOCKS_PER_REQUEST,
};
use hoard_prover::{BLOCK_SIZE, DirectProof, SlotIndex, block_root};
use serde_bytes::ByteBuf;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::{ctx::Ctx, host::Damage, local_slots::LocalSlots};

/// Requests answered at once: each holds up to 1 MiB of blocks until libp2p has sent it, so this
/// bounds the memory that serving many hosts takes (the rest wait in the channel).
const SERVING_AT_ONCE: usize = 8;

/// Answers inbound requests until the node stops; each answer runs on the blocking pool, in
/// `tasks`.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    slots: LocalSlots,
    mut inbound: mpsc::Receiver<InboundRequest>,
    tasks: TaskTracker,
    damage: Arc<Damage>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(SERVING_AT_ONCE));
    loop {
        let req = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = inbound.recv() => match r { Some(r) => r, None => return },
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (ctx, slots, damage) = (ctx.clone(), slots.clone(), damage.clone());
        tasks.spawn_blocking(move || {
            let _permit = permit;
            match req {
                InboundRequest::Block { request, reply, .. } => {
                    let _ = reply.send(answer_block(&slots, &damage, request));
                }
                InboundRequest::Audit { request, reply, .. } => {
                    let _ = reply.send(answer_audit(&ctx, &slots, request));
                }
            }
        });
    }
}

fn answer_block(slots: &LocalSlots, damage: &Damage, request: BlockRequest) -> BlockResponse {
    match request {
        BlockRequest::Manifest { dataset } => match slots.dir_of(&dataset, None) {
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
            let Some(dir) = slots.dir_of(&dataset, Some(slot)) else {
                return BlockResponse::Error("not found".into());
            };
            match read_blocks(slots, damage, &dir, slot, first, count) {
                Ok(blocks) => BlockResponse::Blocks(blocks),
                Err(e) => BlockResponse::Error(e),
            }
        }
    }
}

fn read_blocks(
    slots: &LocalSlots,
    damage: &Damage,
    dir: &Path,
    slot: SlotIndex,
    first: u64,
    count: u32,
) -> Result<Vec<BlockWithPath>, String> {
    let opened = slots.open_slot(dir, slot)?;
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
        let block: &[u8; BLOCK_SIZE] = data.as_slice().try_into().map_err(|_| "a short block")?;
        if tree.block_root(i) != Some(block_root(block)) {
            damage.report_dir(dir, [i]);
            return Err(format!(
                "block {i} is damaged here and being repaired; ask another holder"
            ));
        }
        let path = tree.block_path(i).ok_or("blocks out of range")?;
        out.push(BlockWithPath {
            index: i,
            data: ByteBuf::from(data),
            path: path.into_iter().map(|h| h.0).collect(),
        });
    }
    Ok(out)
}

fn answer_audit(ctx: &Ctx, slots: &LocalSlots, request: AuditRequest) -> AuditResponse {
    let Some(dir) = slots.dir_of(&request.dataset, Some(request.slot)) else {
        return AuditResponse::Error("not found".into());
    };
    match prove(ctx, slots, &dir, &request) {
        Ok(bytes) => AuditResponse::Proof(ByteBuf::from(bytes)),
        Err(e) => AuditResponse::Error(e),
    }
}

fn prove(
    ctx: &Ctx,
    slots: &LocalSlots,
    dir: &Path,
    request: &AuditRequest,
) -> Result<Vec<u8>, String> {
    let opened = slots.open_slot(dir, request.slot)?;
    let (files, tree) = &*opened;
    let challenge = request.challenge(tree.cell_count()).ok_or(format!(
        "samples must be 1..={} and the slot not empty",
        AuditRequest::MAX_SAMPLES
    ))?;
    let proof =
        DirectProof::create(tree, &challenge, |b, buf| files.read_blocks(b, buf)).map_err(|e| {
            ctx.metrics.integrity_failures.inc();
            format!("cannot prove: {e}")
        })?;
    Ok(proof.to_bytes())
}
