//! Answering peers: manifests, have-maps, blocks with their Merkle paths, and audit proofs, from
//! the datasets this node packed (renter), the slots it hosts, and its reader cache (blocks it
//! downloaded and verified).
//!
//! Disk reads and hashing run on the blocking pool; the inbound loop only dispatches, so a
//! slow disk never stalls libp2p. Each block is checked against its root before it goes out: a
//! damaged one is refused (the reader asks another holder) and reported to the host's heal task.
//! With `p2p.upload_limit_bytes_per_sec` set, every answer carrying blocks or a manifest first
//! takes its size from a token bucket (`governor`'s GCRA, one second's worth of burst), which
//! paces what this node uploads.

use std::{num::NonZeroU32, path::Path, sync::Arc};

use governor::{DefaultDirectRateLimiter, Quota};
use hoard_dataset::MANIFEST_FILE;
use hoard_p2p::{
    AuditRequest, AuditResponse, BlockRequest, BlockResponse, BlockWithPath, Bytes, InboundRequest,
    MAX_BLOCKS_PER_REQUEST, SlotHave,
};
use hoard_prover::{BLOCK_SIZE, DatasetId, DirectProof, SlotIndex, block_root};
use serde_bytes::ByteBuf;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::{ctx::Ctx, host::Damage, local_slots::LocalSlots, reader_cache::ReaderCache};

/// Answers read from disk at once (each a task on the blocking pool).
const READING_AT_ONCE: usize = 8;

/// Answers from the start of their read until libp2p reports them written (`Sent`): each holds
/// up to 2 MiB until then (its blocks and their encoding), so this bounds serving's memory to
/// about 64 MiB however slowly peers read; the requests beyond wait in the channel. Releasing
/// at the hand-over instead let answers pile up in libp2p while six hosts fetched from a renter
/// (80 MiB more at the peak). A peer keeps at most 16 requests open with us (a reader's depth),
/// so one slow peer cannot hold them all.
const IN_TRANSIT: usize = 32;

/// The upload cap counts in KiB: a byte-sized cell would need sub-nanosecond refills at
/// gigabytes per second.
const CELL: u64 = 1024;

/// What an answer was served as, for `hoard_served_bytes_total{role}`.
type Served = Option<&'static str>;

/// Answers inbound requests until the node stops; each answer runs on the blocking pool, in
/// `tasks`.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    slots: LocalSlots,
    cache: ReaderCache,
    mut inbound: mpsc::Receiver<InboundRequest>,
    tasks: TaskTracker,
    damage: Arc<Damage>,
) {
    let reading = Arc::new(tokio::sync::Semaphore::new(READING_AT_ONCE));
    let in_transit = Arc::new(tokio::sync::Semaphore::new(IN_TRANSIT));
    let limiter = upload_limiter(ctx.config.p2p.upload_limit_bytes_per_sec).map(Arc::new);
    loop {
        let req = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = inbound.recv() => match r { Some(r) => r, None => return },
        };
        let Ok(transit) = in_transit.clone().acquire_owned().await else {
            return;
        };
        let (ctx, slots, cache, limiter, damage, reading) = (
            ctx.clone(),
            slots.clone(),
            cache.clone(),
            limiter.clone(),
            damage.clone(),
            reading.clone(),
        );
        tasks.spawn(async move {
            let _transit = transit;
            let Ok(read) = reading.acquire_owned().await else {
                return;
            };
            match req {
                InboundRequest::Block {
                    request,
                    reply,
                    sent,
                    ..
                } => {
                    let answered = tokio::task::spawn_blocking(move || {
                        answer_block(&slots, &cache, &damage, request)
                    })
                    .await;
                    drop(read);
                    let (answer, served) = answered
                        .unwrap_or_else(|_| (BlockResponse::Error("internal".into()), None));
                    let bytes = answer.payload_len();
                    if let (Some(limiter), Some(cells)) = (&limiter, NonZeroU32::new(cells(bytes)))
                    {
                        // A single answer never exceeds the burst (at least 2 MiB).
                        let _ = limiter.until_n_ready(cells).await;
                    }
                    if let Some(role) = served {
                        ctx.metrics
                            .served_bytes
                            .with_label_values(&["p2p", role])
                            .inc_by(bytes);
                    }
                    if reply.send(answer).is_ok() {
                        sent.wait().await;
                    }
                }
                InboundRequest::Audit {
                    request,
                    reply,
                    sent,
                    ..
                } => {
                    let answer = tokio::task::spawn_blocking({
                        let ctx = ctx.clone();
                        move || answer_audit(&ctx, &slots, request)
                    })
                    .await
                    .unwrap_or_else(|_| AuditResponse::Error("internal".into()));
                    drop(read);
                    if reply.send(answer).is_ok() {
                        sent.wait().await;
                    }
                }
            }
        });
    }
}

fn cells(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(CELL)).unwrap_or(u32::MAX)
}

/// The upload cap's bucket: `rate` bytes per second, bursts of one second (at least 2 MiB, so
/// one full answer always fits). `None` for no cap.
fn upload_limiter(rate: u64) -> Option<DefaultDirectRateLimiter> {
    let per_sec = NonZeroU32::new(cells(rate))?;
    let burst = NonZeroU32::new(cells(rate.max(2 << 20)))?;
    Some(DefaultDirectRateLimiter::direct(
        Quota::per_second(per_sec).allow_burst(burst),
    ))
}

fn answer_block(
    slots: &LocalSlots,
    cache: &ReaderCache,
    damage: &Damage,
    request: BlockRequest,
) -> (BlockResponse, Served) {
    match request {
        BlockRequest::Manifest { dataset } => {
            if let Some(dir) = slots.dir_of(&dataset, None) {
                return match std::fs::read(dir.join(MANIFEST_FILE)) {
                    Ok(bytes) => (
                        BlockResponse::Manifest(ByteBuf::from(bytes)),
                        Some(slots.role_of(&dir).label()),
                    ),
                    Err(e) => (
                        BlockResponse::Error(format!("reading the manifest: {e}")),
                        None,
                    ),
                };
            }
            match cache.manifest_bytes(&dataset) {
                Some(bytes) => (
                    BlockResponse::Manifest(ByteBuf::from(bytes)),
                    Some("reader"),
                ),
                None => (BlockResponse::Error("not found".into()), None),
            }
        }
        BlockRequest::Blocks {
            dataset,
            slot,
            first,
            count,
        } => {
            if let Some(dir) = slots.dir_of(&dataset, Some(slot)) {
                return match read_blocks(slots, damage, &dir, slot, first, count) {
                    Ok(blocks) => (
                        BlockResponse::Blocks(blocks),
                        Some(slots.role_of(&dir).label()),
                    ),
                    Err(e) => (BlockResponse::Error(e), None),
                };
            }
            // Only blocks verified on arrival are in the cache, each with the path it came with.
            match cache.read(&dataset, slot, first, count) {
                Some(blocks) => (BlockResponse::Blocks(blocks), Some("reader")),
                None => (BlockResponse::Error("not found".into()), None),
            }
        }
        BlockRequest::Have { dataset } => (BlockResponse::Have(have(slots, cache, &dataset)), None),
    }
}

/// Every slot this node serves whole (hosted or packed), then what the reader cache holds of
/// the others.
fn have(slots: &LocalSlots, cache: &ReaderCache, dataset: &DatasetId) -> Vec<SlotHave> {
    let mut out: Vec<SlotHave> = Vec::new();
    for (slot, dir) in slots.slots_of(dataset) {
        if let Ok(opened) = slots.open_slot(&dir, slot) {
            out.push(SlotHave {
                slot,
                ranges: vec![[0, opened.1.blocks()]],
            });
        }
    }
    for h in cache.have(dataset) {
        if !out.iter().any(|o| o.slot == h.slot) {
            out.push(h);
        }
    }
    out
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
            data: Bytes::from(data),
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn the_upload_cap_paces_answers() {
        assert!(upload_limiter(0).is_none(), "0 = no cap");
        // 4 MiB/s with a 4 MiB burst: 8 MiB cannot go out in less than a second.
        let limiter = upload_limiter(4 << 20).expect("capped");
        let mib = NonZeroU32::new(cells(1 << 20)).expect("cells");
        let started = Instant::now();
        for _ in 0..4 {
            limiter.until_n_ready(mib).await.expect("fits");
        }
        for _ in 0..4 {
            limiter.until_n_ready(mib).await.expect("fits");
        }
        let paced = started.elapsed();
        assert!(paced.as_millis() >= 800, "{paced:?}");
        // A small cap still lets a whole answer through.
        let small = upload_limiter(1000).expect("capped");
        assert!(
            small
                .until_n_ready(NonZeroU32::new(cells(1 << 20)).expect("cells"))
                .await
                .is_ok()
        );
    }
}
