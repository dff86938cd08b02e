//! Repairing a freed slot: fetch `k` other slots from their hosts (each block verified), decode
//! the lost one from them, check it against the manifest, and keep only it.

use std::{
    path::Path,
    sync::{Arc, atomic::AtomicU64},
};

use hoard_dataset::{Manifest, NoProgress, slot_data_file, slot_roots_file};
use hoard_prover::SlotIndex;

use crate::{node::Ctx, store::RequestRecord};

/// Writes slot `target` of `r` into the packed folder `dir` (which holds the manifest).
pub(crate) async fn rebuild(
    ctx: &Arc<Ctx>,
    r: &RequestRecord,
    manifest: &Manifest,
    target: u16,
    dir: &Path,
    progress: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let k = manifest.layout.data_slots();
    let mut have = Vec::new();
    for index in (0..r.slots).filter(|i| *i != target) {
        if have.len() == k {
            break;
        }
        let peers = crate::download::slot_holders(ctx, r, index).await;
        if peers.is_empty() {
            continue;
        }
        match crate::fetch::slot(
            ctx,
            manifest,
            r.manifest_id.0,
            index,
            &peers,
            dir,
            progress.clone(),
        )
        .await
        {
            Ok(()) => have.push(index),
            Err(e) => {
                tracing::warn!(slot = index, err = %e, "cannot fetch a slot for the repair; trying another")
            }
        }
    }
    anyhow::ensure!(
        have.len() == k,
        "only {} of the {k} slots needed to rebuild slot {target} could be fetched",
        have.len()
    );
    let dir2 = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        hoard_dataset::rebuild_slot(&dir2, SlotIndex(target), &NoProgress)
    })
    .await??;
    for index in have {
        let _ = std::fs::remove_file(dir.join(slot_data_file(SlotIndex(index))));
        let _ = std::fs::remove_file(dir.join(slot_roots_file(SlotIndex(index))));
    }
    tracing::info!(slot = target, "rebuilt a freed slot from {k} others");
    Ok(())
}
