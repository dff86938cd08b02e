//! After a restart: finish (or drop) a block repair a crash interrupted (`journal::replay`), then
//! re-check every hosted slot on disk, every block against its root and the roots against the
//! slot root (on the blocking pool, one slot at a time), and report what is damaged to the heal
//! task. Runs as its own task at start, beside the rest of the role, so a large store does not
//! hold up fills or proofs.

use std::{path::Path, sync::Arc};

use hoard_dataset::{DatasetError, PackedDataset};
use hoard_prover::{BLOCK_SIZE, SlotIndex};

use super::{
    Host,
    heal::{Hurt, MAX_BLOCKS, matches_root},
    journal::{self, Replayed},
};
use crate::store::HostSlotState;

/// What is wrong with a hosted slot on disk.
#[derive(Debug, thiserror::Error)]
enum DamageError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Slot(#[from] hoard_dataset::SlotProblem),
    #[error("{} block(s) do not match their roots, the first {}", .0.len(), .0.first().copied().unwrap_or(0))]
    Blocks(Vec<u64>),
}

pub(super) async fn verify_local(host: Arc<Host>) {
    let ctx = &host.ctx;
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
                tracing::error!(slot = %s.slot_id.short(), err = %e, "a hosted slot is damaged or missing on disk");
                host.damage.report(
                    s.slot_id,
                    match e {
                        DamageError::Blocks(b) => Hurt::blocks(b),
                        _ => Hurt::Whole,
                    },
                );
            }
            Err(e) => tracing::warn!(err = %e, "slot check did not finish"),
        }
    }
    host.gauges_stale.notify_one();
}

/// Replays an interrupted repair of a hosted slot, then reads it block by block and checks each
/// against its committed root.
fn check_slot(dir: &Path, index: SlotIndex) -> Result<(), DamageError> {
    let packed = PackedDataset::open(dir)?;
    let (files, tree) = packed.slot_tree(index)?;
    match journal::replay(dir, index, &tree) {
        Ok(Replayed::Nothing) => {}
        Ok(Replayed::Applied { first, count }) => {
            tracing::info!(first, count, "finished a block repair a crash interrupted");
        }
        Ok(Replayed::Dropped(why)) => {
            tracing::warn!(
                why,
                "dropped the journal of an interrupted block repair; the old bytes stay"
            );
        }
        Err(e) => tracing::error!(err = %e, "cannot finish an interrupted block repair"),
    }
    let mut buf = vec![0u8; BLOCK_SIZE];
    let mut bad = Vec::new();
    for b in 0..tree.blocks() {
        if files.read_blocks(b, &mut buf).is_err() || !matches_root(&tree, b, &buf) {
            bad.push(b);
            if bad.len() > MAX_BLOCKS {
                // Beyond this the slot is rebuilt whole anyway.
                return Err(DamageError::Slot(
                    hoard_dataset::SlotProblem::CorruptBlock { block: bad[0] },
                ));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(DamageError::Blocks(bad))
    }
}
