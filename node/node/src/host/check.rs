//! After a restart: re-check every hosted slot on disk, every block against its root and the
//! roots against the slot root (on the blocking pool, one slot at a time). Runs as its own task
//! at start, beside the rest of the role, so a large store does not hold up fills or proofs.

use std::{path::Path, sync::Arc};

use hoard_dataset::{DatasetError, PackedDataset};
use hoard_prover::{BLOCK_SIZE, SlotIndex};

use super::Host;
use crate::store::HostSlotState;

/// What is wrong with a hosted slot on disk.
#[derive(Debug, thiserror::Error)]
enum DamageError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Slot(#[from] hoard_dataset::SlotProblem),
    #[error("block {0} does not match its root")]
    Block(u64),
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
            }
            Err(e) => tracing::warn!(err = %e, "slot check did not finish"),
        }
    }
    host.gauges_stale.notify_one();
}

/// Reads a hosted slot block by block and checks each against its committed root.
fn check_slot(dir: &Path, index: SlotIndex) -> Result<(), DamageError> {
    let packed = PackedDataset::open(dir)?;
    let (files, tree) = packed.slot_tree(index)?;
    let mut buf = vec![0u8; BLOCK_SIZE];
    for b in 0..tree.blocks() {
        files.read_blocks(b, &mut buf)?;
        let root = <&[u8; BLOCK_SIZE]>::try_from(buf.as_slice())
            .map(hoard_prover::block_root)
            .map_err(|_| DamageError::Block(b))?;
        if Some(root) != tree.block_root(b) {
            return Err(DamageError::Block(b));
        }
    }
    Ok(())
}
