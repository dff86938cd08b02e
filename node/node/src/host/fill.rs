//! Filling one slot: fetch it (from its holders, or by decoding for a repair), check it, move it
//! into place crash-safely, and send `fillSlot` with a first proof; after a crash, settle what a
//! fill left behind with the chain.
//!
//! ```text
//!  tmp/part-*/  ◀── manifest (checked against the request) + slot blocks (each verified)
//!      ─▶ slot tree rebuilt from disk (every root checked) ─▶ rename to slots/<id>/ ─▶ record
//!      Filling, flush ─▶ approve ─▶ fillSlot (proof for the next block's period; again if the
//!      period turns) ─▶ record Filled (or Done, files removed, if the chain says it failed)
//! ```

use std::{collections::HashSet, path::Path, sync::Arc};

use hoard_chain::{ChainError, MarketplaceErrors};
use hoard_dataset::{DatasetError, Manifest};
use hoard_prover::{RequestId, SlotIndex, SlotTree, TreeError, tree::DatasetTree};

use super::{
    Host,
    compact::{self, CompactFill, CompactFillError},
    prove::{ProveError, build_proof, open_tree},
    repair::{self, RepairError},
};
use crate::{
    download::{
        fetch::{self, FetchError},
        holders,
    },
    store::{HostSlot, HostSlotState, RequestRecord, StoreError},
};

/// Fill attempts per slot when the period keeps turning under the fill's proof.
const FILL_ATTEMPTS: usize = 5;

/// Why a fill did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FillError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Repair(#[from] RepairError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Prove(#[from] ProveError),
    /// A compact slot's keys or Poseidon commitment.
    #[error(transparent)]
    Compact(#[from] CompactFillError),
    /// The manifest's slot roots do not make a dataset tree.
    #[error("the manifest's slot roots: {0}")]
    Tree(#[from] TreeError),
    /// The manifest has no slot of this index.
    #[error("slot {} is outside the manifest's dataset tree", .0.0)]
    NoSuchSlot(SlotIndex),
    /// Moving the slot into place failed.
    #[error("moving the slot to {}: {source}", path.display())]
    Io {
        /// Where it was going.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Every attempt answered a seed that had gone stale by the time it was mined.
    #[error("the period kept turning under the fill's proof ({0} attempts)")]
    PeriodTurning(usize),
    /// A blocking task died.
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Settles fills that were in flight when the node stopped: the chain says whether they landed.
/// Runs at start and on every rescan until the chain answers. Skips the requests whose fill task
/// is running now (`busy`).
pub(super) async fn settle_filling(host: &Host, busy: &HashSet<RequestId>) {
    let ctx = &host.ctx;
    let Ok(slots) = ctx.store.host_slots() else {
        return;
    };
    for mut s in slots
        .into_iter()
        .filter(|s| s.state == HostSlotState::Filling && !busy.contains(&s.request_id))
    {
        // Did the fill land before the crash? The chain knows.
        match ctx.chain.get_slot(s.slot_id).await {
            Ok(info) if info.is_filled_by(ctx.address()) => {
                tracing::info!(slot = %s.slot_id.short(), "fill was mined before the restart");
                s.state = HostSlotState::Filled;
                s.filled_period = info.filled_period;
                let _ = ctx.store.put_host_slot(&s);
            }
            Ok(_) => {
                tracing::info!(slot = %s.slot_id.short(), "fill did not land before the restart; dropping the copy");
                let _ = std::fs::remove_dir_all(ctx.store.slot_dir(&s.volume, &s.slot_id));
                s.state = HostSlotState::Done;
                let _ = ctx.store.put_host_slot(&s);
            }
            Err(e) => tracing::warn!(err = %e, "cannot check an interrupted fill yet"),
        }
    }
    let _ = ctx.store.flush().await;
}

/// Fetches slot `index` of `r` (from its holders, or by decoding for a repair), stores it,
/// and fills it on chain.
pub(super) async fn fill(
    host: &Host,
    r: &RequestRecord,
    index: SlotIndex,
    repair: bool,
) -> Result<(), FillError> {
    let ctx = &host.ctx;
    let slot_id = hoard_prover::slot_id(&r.id, index);
    // A compact slot needs keys that match the deployed verifier before it is worth fetching.
    compact::ready(host, r).await?;
    let volume = ctx.store.roomiest_volume();
    let tmp = ctx.store.temp_dir(&volume)?;
    let peers = holders::holders(ctx, r).await;
    let (manifest, bytes) = fetch::manifest(ctx, r.manifest_id, &peers).await?;
    check_manifest(&manifest, r)?;
    fetch::write_manifest(tmp.path(), &bytes)?;
    tracing::info!(slot = index.0, repair, "fetching a slot");
    let progress = Arc::default();
    if repair {
        repair::rebuild(ctx, r, &manifest, index, tmp.path(), progress).await?;
    } else {
        let from = holders::slot_sources(ctx, r, index, &peers).await;
        fetch::slot(
            ctx,
            &manifest,
            r.manifest_id,
            index,
            &from,
            tmp.path(),
            progress,
        )
        .await?;
    }
    // Verify what is on disk (size, roots, slot root) before anything refers to it.
    let tree = open_tree(tmp.path(), index).await?;
    // Compact requests: the slot's Poseidon commitment, recomputed from the data just checked.
    let compact = compact::check_fill(host, r, &manifest, index, tmp.path()).await?;
    let final_dir = ctx.store.slot_dir(&volume, &slot_id);
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, &final_dir).map_err(|source| FillError::Io {
        path: final_dir.clone(),
        source,
    })?;
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
    // Verified and in place: serve it from now on (a downloader may ask as soon as the fill is
    // mined, before this task has seen its receipt).
    host.slots.add(r.manifest_id, index, final_dir.clone());
    ctx.store.put_host_slot(&record)?;
    ctx.store.flush().await?;
    ctx.metrics.slots.with_label_values(&["filling"]).inc();

    let result = submit_fill(
        host,
        r,
        index,
        &manifest,
        &tree,
        &final_dir,
        compact.as_ref(),
    )
    .await;
    ctx.metrics.slots.with_label_values(&["filling"]).dec();
    // An error is not proof that the fill failed (a receipt may time out while the transaction
    // is mined): the chain decides. Never drop data the chain says this host is paid to keep.
    let result = match result {
        Ok(period) => Ok(period),
        Err(e) => match ctx.chain.get_slot(slot_id).await {
            Ok(info) if info.is_filled_by(ctx.address()) => {
                tracing::info!(slot = index.0, err = %e, "the fill landed despite the error");
                Ok(info.filled_period)
            }
            Ok(_) => Err(e),
            Err(chain_err) => {
                // Unknown outcome: keep the copy as Filling; settle_filling asks again later.
                tracing::warn!(slot = index.0, err = %chain_err, "fill outcome unknown; will check again");
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
            let _ = ctx.net.start_providing(r.manifest_id).await;
            tracing::info!(slot = index.0, period, "slot filled");
            host.gauges_stale.notify_one();
            host.scrub_wake.notify_one();
            Ok(())
        }
        Err(e) => {
            record.state = HostSlotState::Done;
            ctx.store.put_host_slot(&record)?;
            ctx.store.flush().await?;
            host.slots.remove_dir(&final_dir);
            let _ = std::fs::remove_dir_all(&final_dir);
            Err(e)
        }
    }
}

/// Sends `fillSlot` with a proof for the current period; if the period turns before it is
/// mined (the proof then answers the wrong seed), proves again. Returns the fill's period.
async fn submit_fill(
    host: &Host,
    r: &RequestRecord,
    index: SlotIndex,
    manifest: &Manifest,
    tree: &SlotTree,
    dir: &Path,
    compact: Option<&CompactFill>,
) -> Result<u64, FillError> {
    let ctx = &host.ctx;
    let slot_id = hoard_prover::slot_id(&r.id, index);
    let path = DatasetTree::new(&manifest.slot_roots)?
        .path(usize::from(index.0))
        .ok_or(FillError::NoSuchSlot(index))?;
    let periods = ctx.periods();
    for _attempt in 0..FILL_ATTEMPTS {
        // The proof must answer the seed of the period of the block the fill lands in: the
        // next one (a call simulated on "latest" runs in the next block's context too).
        let next = ctx.chain.head_block().await? + 1;
        let period = periods.period_of(next);
        let seed = match ctx.chain.period_seed(period).await {
            Ok(seed) => seed,
            // When the next block opens a period, a chain that runs calls in the latest block's
            // context (anvil does) refuses its seed as `FuturePeriod` until that block is mined:
            // wait for it rather than give the slot up.
            Err(e) if matches!(e.marketplace(), Some(MarketplaceErrors::FuturePeriod(_))) => {
                let mut head = ctx.head.clone();
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(60),
                    head.wait_for(|h| h.block >= next),
                )
                .await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let proof = build_proof(dir, index, tree.clone(), seed, slot_id, r).await?;
        let filled = match compact {
            None => {
                ctx.chain
                    .fill_slot(r.id, index, tree.root(), &path, proof.into())
                    .await
            }
            Some(c) => {
                ctx.chain
                    .fill_compact_slot(
                        r.id,
                        index,
                        tree.root(),
                        &path,
                        proof.into(),
                        c.commitment,
                        &c.path,
                    )
                    .await
            }
        };
        match filled {
            Ok(_) => return Ok(ctx.chain.get_slot(slot_id).await?.filled_period),
            // A proof against a seed that went stale while the tx was in flight: prove again
            // once the next block is in (the period may just have turned).
            Err(e)
                if matches!(
                    e.marketplace(),
                    Some(MarketplaceErrors::InvalidProof(_) | MarketplaceErrors::FuturePeriod(_))
                ) =>
            {
                tracing::debug!(err = %e, "the fill's proof went stale; proving again");
                tokio::time::sleep(ctx.config.chain.poll_interval()).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(FillError::PeriodTurning(FILL_ATTEMPTS))
}

/// The manifest must be the one the request commits to.
fn check_manifest(m: &Manifest, r: &RequestRecord) -> Result<(), FetchError> {
    let wrong = |why| FetchError::WrongManifest {
        dataset: r.manifest_id,
        why,
    };
    if m.root != r.dataset_root {
        return Err(wrong("its dataset root differs from the request's"));
    }
    if m.layout.slots() != usize::from(r.slots)
        || m.layout.parity_slots() != usize::from(r.max_slot_loss)
        || m.layout.slot_bytes() != r.slot_size
    {
        return Err(wrong("its layout differs from the request's"));
    }
    Ok(())
}

/// fsyncs the folder holding `path`, so a rename into it survives a crash.
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
}
