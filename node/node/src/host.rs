//! The host role: pick slots that match the offer, fetch them, store them crash-safely and fill
//! them on chain; withdraw pay and collateral when requests end.
//!
//! **Who fills which slot.** Hosts do not race for the same slot: for each request every host
//! ranks the announced hosts (minus the renter) by `keccak(requestId ‖ host)`; the host at
//! position `p` tries slot `p mod slots` at once, and slot `(p + d) mod slots` only after
//! `d × fill_backoff`, checking the slot is still free before downloading. With as many hosts
//! as slots each gets its own; a host that is offline or not interested leaves its slot to the
//! next one after a short wait. The ranking is made again at every step, so hosts that saw the
//! request before each other's announcements stop racing after the first step. A host fills at
//! most one slot per request (slots of one request on one machine would fail together).

use std::{sync::Arc, time::Duration};

use alloy::primitives::{Address, B256, U256, keccak256};
use hoard_chain::{B256Ext as _, RequestState, SlotState};
use hoard_dataset::PackedDataset;
use hoard_prover::{Challenge, DirectProof, Seed, SlotId, SlotIndex, tree::DatasetTree};

use crate::{
    node::Ctx,
    store::{HostSlot, HostSlotState, RequestRecord},
    sync::short,
};

pub(crate) async fn run(ctx: Arc<Ctx>) {
    let mut events = ctx.events.subscribe();
    let mut rescan = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = rescan.tick() => {
                settle_filling(&ctx).await;
                if let Ok(requests) = ctx.store.requests() {
                    for r in requests {
                        consider(&ctx, r.id);
                    }
                }
                crate::prove::withdraw_ended(&ctx).await;
            }
            e = events.recv() => match e {
                Ok(hoard_chain::MarketEvent::StorageRequested { request_id, .. })
                | Ok(hoard_chain::MarketEvent::SlotFreed { request_id, .. }) => consider(&ctx, request_id),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "host role fell behind the event stream; rescanning");
                    rescan.reset_immediately();
                }
                Err(_) => return,
            }
        }
    }
}

/// Settles fills that were in flight when the node stopped: the chain says whether they landed.
/// Runs at start and on every rescan until the chain answers.
async fn settle_filling(ctx: &Arc<Ctx>) {
    let Ok(slots) = ctx.store.host_slots() else {
        return;
    };
    for mut s in slots {
        match s.state {
            HostSlotState::Filling if !ctx.filling_now(&s.slot_id) => {
                // Did the fill land before the crash? The chain knows.
                match ctx.chain.get_slot(s.slot_id).await {
                    Ok(info)
                        if info.host == ctx.address()
                            && info.state == u8::from(SlotState::Filled) =>
                    {
                        tracing::info!(slot = %short(&s.slot_id), "fill was mined before the restart");
                        s.state = HostSlotState::Filled;
                        let _ = ctx.store.put_host_slot(&s);
                    }
                    Ok(_) => {
                        tracing::info!(slot = %short(&s.slot_id), "fill did not land before the restart; dropping the copy");
                        let _ = std::fs::remove_dir_all(ctx.store.slot_dir(&s.volume, &s.slot_id));
                        s.state = HostSlotState::Done;
                        let _ = ctx.store.put_host_slot(&s);
                    }
                    Err(e) => tracing::warn!(err = %e, "cannot check an interrupted fill yet"),
                }
            }
            _ => {}
        }
    }
    let _ = ctx.store.flush().await;
}

/// After a restart: re-check every hosted slot on disk, every block against its root and the
/// roots against the slot root (on the blocking pool, one slot at a time). Runs as its own task
/// at start, beside the roles, so a large store does not hold up fills or proofs.
pub(crate) async fn verify_local(ctx: Arc<Ctx>) {
    let Ok(slots) = ctx.store.host_slots() else {
        return;
    };
    for s in slots
        .into_iter()
        .filter(|s| s.state == HostSlotState::Filled)
    {
        if ctx.cancel.is_cancelled() {
            return;
        }
        let dir = ctx.store.slot_dir(&s.volume, &s.slot_id);
        let check = tokio::task::spawn_blocking(move || check_slot(&dir, s.index)).await;
        match check {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                ctx.metrics.integrity_failures.inc();
                tracing::error!(slot = %short(&s.slot_id), err = %e, "a hosted slot is damaged or missing on disk");
            }
            Err(e) => tracing::warn!(err = %e, "slot check did not finish"),
        }
    }
    ctx.gauges_stale.notify_one();
}

/// Reads a hosted slot block by block and checks each against its committed root.
fn check_slot(dir: &std::path::Path, index: u16) -> anyhow::Result<()> {
    let packed = PackedDataset::open(dir)?;
    let (files, tree) = packed.slot_tree(SlotIndex(index))?;
    let mut buf = vec![0u8; hoard_prover::BLOCK_SIZE];
    for b in 0..tree.blocks() {
        files.read_blocks(b, &mut buf)?;
        let block: &[u8; hoard_prover::BLOCK_SIZE] = buf.as_slice().try_into()?;
        anyhow::ensure!(
            Some(hoard_prover::block_root(block)) == tree.block_root(b),
            "block {b} does not match its root"
        );
    }
    Ok(())
}

/// Starts working on `request` unless a task already is.
fn consider(ctx: &Arc<Ctx>, request: B256) {
    {
        let mut busy = ctx.considering.lock().unwrap_or_else(|p| p.into_inner());
        if !busy.insert(request) {
            return;
        }
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = try_fill(&ctx, request).await {
            tracing::warn!(request = %short(&request), err = %e, "could not fill a slot");
        }
        ctx.considering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&request);
    });
}

/// Why this host passes on a request (logged, so operators see why they get no work).
fn offer_mismatch(ctx: &Ctx, r: &RequestRecord, used: u64) -> Option<String> {
    let offer = &ctx.offer();
    if r.price_per_byte_per_second < offer.min_price_per_byte_per_second {
        return Some(format!(
            "price {} below the offer's minimum {}",
            r.price_per_byte_per_second, offer.min_price_per_byte_per_second
        ));
    }
    let collateral = r.collateral_per_byte * U256::from(r.slot_size);
    if collateral > offer.max_collateral_per_slot {
        return Some(format!(
            "collateral {collateral} above the offer's maximum {}",
            offer.max_collateral_per_slot
        ));
    }
    if used + r.slot_size > offer.capacity_bytes {
        return Some(format!(
            "slot of {} bytes does not fit (capacity {}, used {used})",
            r.slot_size, offer.capacity_bytes
        ));
    }
    if ctx.store.free_bytes() < r.slot_size.saturating_mul(2) {
        return Some("not enough free disk space".into());
    }
    None
}

async fn try_fill(ctx: &Arc<Ctx>, request: B256) -> anyhow::Result<()> {
    let Some(r) = ctx.store.request(&request)? else {
        return Ok(());
    };
    if r.renter == ctx.address() {
        return Ok(());
    }
    let mine = ctx.store.host_slots()?;
    if mine.iter().any(|s| {
        s.request_id == request
            && s.state != HostSlotState::Done
            && s.state != HostSlotState::Evicted
    }) {
        return Ok(());
    }
    let state = ctx.chain.request_state(request).await?;
    if !matches!(state, RequestState::New | RequestState::Started) {
        return Ok(());
    }
    let used: u64 = mine
        .iter()
        .filter(|s| matches!(s.state, HostSlotState::Filled | HostSlotState::Filling))
        .filter_map(|s| ctx.store.request(&s.request_id).ok().flatten())
        .map(|r| r.slot_size)
        .sum();
    if let Some(why) = offer_mismatch(ctx, &r, used) {
        tracing::info!(request = %short(&request), why, "passing on a request");
        return Ok(());
    }
    let backoff = Duration::from_secs(ctx.config.host.fill_backoff_secs);
    for d in 0..usize::from(r.slots) {
        if d > 0 {
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
        }
        // Ranked again at every step, not once: hosts that see a request before they know each
        // other (all started after it was posted) each rank themselves first and would race for
        // the same slot at every step, each race a wasted download and a reverted fill. By the
        // next step their announcements are in, and the order is the agreed one.
        let Some(&index) = preference(ctx, &r).get(d) else {
            break;
        };
        let slot_id = hoard_chain::slot_id(request, u64::from(index));
        let st = ctx.chain.slot_state(slot_id).await?;
        if !matches!(st, SlotState::Free | SlotState::Repair) {
            continue;
        }
        match fill(ctx, &r, index, st == SlotState::Repair).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(request = %short(&request), slot = index, err = %e, "fill failed; trying the next slot");
            }
        }
    }
    Ok(())
}

/// This host's order of slots for request `r` (see the module doc).
fn preference(ctx: &Ctx, r: &RequestRecord) -> Vec<u16> {
    let me = ctx.address();
    let mut hosts: Vec<Address> = ctx
        .store
        .hosts()
        .unwrap_or_default()
        .into_iter()
        .map(|(a, _)| a)
        .filter(|a| *a != r.renter)
        .collect();
    if !hosts.contains(&me) {
        hosts.push(me);
    }
    hosts.sort_by_key(|h| keccak256([r.id.as_slice(), h.as_slice()].concat()));
    let p = hosts.iter().position(|h| *h == me).unwrap_or(0);
    (0..r.slots)
        .map(|d| ((p + usize::from(d)) % usize::from(r.slots)) as u16)
        .collect()
}

/// Fetches slot `index` of `r` (from its holders, or by decoding for a repair), stores it,
/// and fills it on chain.
async fn fill(ctx: &Arc<Ctx>, r: &RequestRecord, index: u16, repair: bool) -> anyhow::Result<()> {
    let slot_id = hoard_chain::slot_id(r.id, u64::from(index));
    let volume = ctx.store.roomiest_volume();
    let tmp = ctx.store.temp_dir(&volume)?;
    let peers = crate::download::holders(ctx, r).await;
    let (manifest, bytes) = crate::fetch::manifest(ctx, r.manifest_id.0, &peers).await?;
    check_manifest(&manifest, r)?;
    crate::fetch::write_manifest(tmp.path(), &bytes)?;
    tracing::info!(request = %short(&r.id), slot = index, repair, "fetching a slot");
    let progress = Arc::default();
    if repair {
        crate::repair::rebuild(ctx, r, &manifest, index, tmp.path(), progress).await?;
    } else {
        let from = crate::download::slot_sources(ctx, r, index, &peers).await;
        crate::fetch::slot(
            ctx,
            &manifest,
            r.manifest_id.0,
            index,
            &from,
            tmp.path(),
            progress,
        )
        .await?;
    }
    // Verify what is on disk (size, roots, slot root) before anything refers to it.
    let dir = tmp.path().to_path_buf();
    let tree = tokio::task::spawn_blocking(move || {
        PackedDataset::open(&dir).and_then(|p| p.slot_tree(SlotIndex(index)).map(|(_, t)| t))
    })
    .await??;
    let final_dir = ctx.store.slot_dir(&volume, &slot_id);
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, &final_dir)?;
    sync_parent(&final_dir);
    let collateral = ctx.chain.slot_collateral(r.id).await.unwrap_or_default();
    // Approve before proving: an approval inside the fill would cost a block and could push the
    // fill into the next period, where its proof no longer answers the seed.
    let market = ctx.chain.deployment().marketplace;
    if ctx.chain.token_allowance(ctx.address(), market).await? < collateral {
        ctx.chain.token_approve(market, collateral).await?;
    }
    let mut record = HostSlot {
        slot_id,
        request_id: r.id,
        index,
        state: HostSlotState::Filling,
        volume,
        filled_period: 0,
        collateral,
        repair,
    };
    ctx.filling
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(slot_id);
    // Verified and in place: serve it from now on (a downloader may ask as soon as the fill is
    // mined, before this task has seen its receipt).
    ctx.serving.add(r.manifest_id.0, index, final_dir.clone());
    ctx.store.put_host_slot(&record)?;
    ctx.store.flush().await?;
    ctx.metrics.slots.with_label_values(&["filling"]).inc();

    let result = submit_fill(ctx, r, index, &manifest, &tree, &final_dir).await;
    ctx.metrics.slots.with_label_values(&["filling"]).dec();
    ctx.filling
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&slot_id);
    // An error is not proof that the fill failed (a receipt may time out while the transaction
    // is mined): the chain decides. Never drop data the chain says this host is paid to keep.
    let result = match result {
        Ok(period) => Ok(period),
        Err(e) => match ctx.chain.get_slot(slot_id).await {
            Ok(info) if info.host == ctx.address() && info.state == u8::from(SlotState::Filled) => {
                tracing::info!(slot = index, err = %e, "the fill landed despite the error");
                Ok(info.filledPeriod)
            }
            Ok(_) => Err(e),
            Err(chain_err) => {
                // Unknown outcome: keep the copy as Filling; settle_filling asks again later.
                tracing::warn!(slot = index, err = %chain_err, "fill outcome unknown; will check again");
                return Err(e);
            }
        },
    };
    match result {
        Ok(period) => {
            record.state = HostSlotState::Filled;
            record.filled_period = period;
            ctx.store.put_host_slot(&record)?;
            ctx.store.flush().await?;
            let _ = ctx.net.start_providing(r.manifest_id.0).await;
            tracing::info!(request = %short(&r.id), slot = index, period, "slot filled");
            ctx.gauges_stale.notify_one();
            Ok(())
        }
        Err(e) => {
            record.state = HostSlotState::Done;
            ctx.store.put_host_slot(&record)?;
            ctx.store.flush().await?;
            ctx.serving.remove_dir(&final_dir);
            let _ = std::fs::remove_dir_all(&final_dir);
            Err(e)
        }
    }
}

/// Sends `fillSlot` with a proof for the current period; if the period turns before it is
/// mined (the proof then answers the wrong seed), proves again.
async fn submit_fill(
    ctx: &Arc<Ctx>,
    r: &RequestRecord,
    index: u16,
    manifest: &hoard_dataset::Manifest,
    tree: &hoard_prover::SlotTree,
    dir: &std::path::Path,
) -> anyhow::Result<u64> {
    let slot_id = hoard_chain::slot_id(r.id, u64::from(index));
    let dataset_tree = DatasetTree::new(&manifest.slot_roots)?;
    let path: Vec<B256> = dataset_tree
        .path(usize::from(index))
        .ok_or_else(|| anyhow::anyhow!("slot {index} outside the dataset tree"))?
        .iter()
        .map(|h| h.to_b256())
        .collect();
    let mut last_err = None;
    let period_length = ctx.chain.deployment().period_length.max(1);
    for _attempt in 0..5 {
        // The proof must answer the seed of the period of the block the fill lands in: the
        // next one (a call simulated on "latest" runs in the next block's context too).
        let next = ctx.chain.head_block().await? + 1;
        let period = next / period_length;
        let seed = match ctx.chain.period_seed(period).await {
            Ok(seed) => seed,
            // When the next block opens a period, a chain that runs calls in the latest block's
            // context (anvil does) refuses its seed as `FuturePeriod` until that block is mined:
            // wait for it rather than give the slot up.
            Err(e) if e.to_string().contains("FuturePeriod") => {
                last_err = Some(e);
                let mut head = ctx.head.clone();
                let _ = tokio::time::timeout(
                    Duration::from_secs(60),
                    head.wait_for(|h| h.block >= next),
                )
                .await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let proof = build_proof(dir, index, tree.clone(), seed, slot_id, r).await?;
        match ctx
            .chain
            .fill_slot(
                r.id,
                u64::from(index),
                tree.root().to_b256(),
                path.clone(),
                proof.into(),
            )
            .await
        {
            Ok(_) => {
                let slot = ctx.chain.get_slot(slot_id).await?;
                return Ok(slot.filledPeriod);
            }
            Err(e) => {
                let msg = e.to_string();
                // A proof against a seed that went stale while the tx was in flight: prove again.
                if msg.contains("InvalidProof") || msg.contains("Period") {
                    last_err = Some(e);
                    // Wait for the next block: the period may just have turned.
                    tokio::time::sleep(ctx.config.chain.poll_interval()).await;
                    continue;
                }
                return Err(e.into());
            }
        }
    }
    Err(last_err
        .map(Into::into)
        .unwrap_or_else(|| anyhow::anyhow!("fill failed")))
}

/// Builds a proof for `seed` on the blocking pool and checks it locally before it goes out.
pub(crate) async fn build_proof(
    dir: &std::path::Path,
    index: u16,
    tree: hoard_prover::SlotTree,
    seed: B256,
    slot_id: B256,
    r: &RequestRecord,
) -> anyhow::Result<Vec<u8>> {
    let challenge = Challenge {
        seed: Seed(seed.0),
        slot_id: SlotId(slot_id.0),
        samples: u32::from(r.samples),
        cell_count: std::num::NonZeroU64::new(r.cell_count)
            .ok_or_else(|| anyhow::anyhow!("request with zero cells"))?,
    };
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let packed = PackedDataset::open(&dir)?;
        let files = packed.open_slot(SlotIndex(index))?;
        let proof = DirectProof::create(&tree, &challenge, |b, buf| files.read_blocks(b, buf))?;
        let bytes = proof.to_bytes();
        hoard_prover::verify(&tree.root(), &challenge, &bytes)?;
        Ok(bytes)
    })
    .await?
}

/// The manifest must be the one the request commits to.
fn check_manifest(m: &hoard_dataset::Manifest, r: &RequestRecord) -> anyhow::Result<()> {
    anyhow::ensure!(
        m.root.to_b256() == r.dataset_root,
        "the manifest's dataset root differs from the request's"
    );
    anyhow::ensure!(
        m.layout.slots() == usize::from(r.slots)
            && m.layout.parity_slots() == usize::from(r.max_slot_loss)
            && m.layout.slot_bytes() == r.slot_size,
        "the manifest's layout differs from the request's"
    );
    Ok(())
}

/// fsyncs the folder holding `path`, so a rename into it survives a crash.
fn sync_parent(path: &std::path::Path) {
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
}
