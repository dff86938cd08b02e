//! Repairing a freed slot: fetch `k` other slots from their hosts (each block verified), decode
//! the lost one from them, check it against the manifest, and keep only it.

use std::{
    path::Path,
    sync::{Arc, atomic::AtomicU64},
};

use hoard_dataset::{DatasetError, Manifest, NoProgress, slot_data_file, slot_roots_file};
use hoard_prover::SlotIndex;

use crate::{
    ctx::Ctx,
    download::{fetch, holders::slot_holders},
    store::RequestRecord,
};

/// Why a repair could not rebuild its slot.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RepairError {
    /// Fewer than `k` other slots could be fetched.
    #[error("only {have} of the {need} slots needed to rebuild slot {target} could be fetched")]
    TooFew {
        /// Slots fetched.
        have: usize,
        /// k.
        need: usize,
        /// The slot being rebuilt.
        target: u16,
    },
    /// Decoding failed.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The decoding task died.
    #[error("the decoding task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Writes slot `target` of `r` into the packed folder `dir` (which holds the manifest).
pub(super) async fn rebuild(
    ctx: &Ctx,
    r: &RequestRecord,
    manifest: &Manifest,
    target: SlotIndex,
    dir: &Path,
    progress: Arc<AtomicU64>,
) -> Result<(), RepairError> {
    let k = manifest.layout.data_slots();
    let mut have = Vec::new();
    for index in (0..r.slots).map(SlotIndex).filter(|i| *i != target) {
        if have.len() == k {
            break;
        }
        let peers = slot_holders(ctx, r, index).await;
        if peers.is_empty() {
            continue;
        }
        let fetched = fetch::slot(
            ctx,
            manifest,
            r.manifest_id,
            index,
            &peers,
            dir,
            progress.clone(),
        )
        .await;
        match fetched {
            Ok(()) => have.push(index),
            Err(e) => {
                tracing::warn!(slot = index.0, err = %e, "cannot fetch a slot for the repair; trying another")
            }
        }
    }
    if have.len() < k {
        return Err(RepairError::TooFew {
            have: have.len(),
            need: k,
            target: target.0,
        });
    }
    let dir2 = dir.to_path_buf();
    tokio::task::spawn_blocking(move || hoard_dataset::rebuild_slot(&dir2, target, &NoProgress))
        .await??;
    for index in have {
        let _ = std::fs::remove_file(dir.join(slot_data_file(index)));
        let _ = std::fs::remove_file(dir.join(slot_roots_file(index)));
    }
    tracing::info!(slot = target.0, "rebuilt a freed slot from {k} others");
    Ok(())
}
