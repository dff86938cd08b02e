//! [`LocalSlots`]: which local folder holds which slot of which dataset, for serving. The renter
//! adds the datasets it packs, the host the slots it fills; both remove what they drop; `serve`
//! reads it. Cheap to clone: clones share one index.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use hoard_dataset::{PackedDataset, SlotFiles};
use hoard_prover::{DatasetId, SlotIndex, SlotTree};

use crate::store::{HostSlotState, Store, StoreError};

/// Slot trees kept in memory for serving; past this, the oldest are dropped and rebuilt from
/// their roots files when asked again.
const TREE_CACHE: usize = 64;

/// A slot's files and its tree, opened for serving.
pub(crate) type OpenSlot = (SlotFiles, SlotTree);

/// What a local folder holds a slot as (`hoard_served_bytes_total{role}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotRole {
    /// A slot this node hosts (`<volume>/slots/<slot id>`).
    Host,
    /// A dataset this node packed (`<volume>/datasets/<dataset id>`).
    Renter,
}

impl SlotRole {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Renter => "renter",
        }
    }
}

/// The index of the slots this node can serve.
#[derive(Debug, Clone, Default)]
pub(crate) struct LocalSlots {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (dataset id, slot) → packed folder holding that slot.
    slots: HashMap<(DatasetId, SlotIndex), PathBuf>,
    /// Opened slots with their trees, most recent last.
    open: Vec<(PathBuf, SlotIndex, Arc<OpenSlot>)>,
}

impl LocalSlots {
    /// Indexes every local dataset and hosted slot of `store` (at start).
    pub(crate) fn index(store: &Store) -> Result<Self, StoreError> {
        let this = Self::default();
        for (id, d) in store.datasets()? {
            if let Ok(packed) = PackedDataset::open(&d.dir) {
                for s in 0..packed.manifest().layout.slots() {
                    this.add(id, SlotIndex(s as u16), d.dir.clone());
                }
            }
        }
        for s in store.host_slots()? {
            if s.state != HostSlotState::Filled {
                continue;
            }
            if let Some(r) = store.request(&s.request_id)? {
                this.add(
                    r.manifest_id,
                    s.index,
                    store.slot_dir(&s.volume, &s.slot_id),
                );
            }
        }
        Ok(this)
    }

    /// Serves `slot` of `dataset` from the packed folder `dir`.
    pub(crate) fn add(&self, dataset: DatasetId, slot: SlotIndex, dir: PathBuf) {
        self.lock().slots.insert((dataset, slot), dir);
    }

    /// Stops serving everything in `dir`.
    pub(crate) fn remove_dir(&self, dir: &Path) {
        let mut inner = self.lock();
        inner.slots.retain(|_, d| d != dir);
        inner.open.retain(|(d, _, _)| d != dir);
    }

    /// The folder holding `slot` of `dataset`, or any slot of it for `None` (the manifest is in
    /// each).
    pub(crate) fn dir_of(&self, dataset: &DatasetId, slot: Option<SlotIndex>) -> Option<PathBuf> {
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

    /// Every slot of `dataset` held here, with its folder.
    pub(crate) fn slots_of(&self, dataset: &DatasetId) -> Vec<(SlotIndex, PathBuf)> {
        let mut out: Vec<(SlotIndex, PathBuf)> = self
            .lock()
            .slots
            .iter()
            .filter(|((d, _), _)| d == dataset)
            .map(|((_, s), p)| (*s, p.clone()))
            .collect();
        out.sort_by_key(|(s, _)| *s);
        out
    }

    /// What `dir` holds its slots as, from the store's layout (`Store::dataset_dir` puts
    /// packed datasets under `datasets/`, `Store::slot_dir` hosted slots under `slots/`).
    pub(crate) fn role_of(&self, dir: &Path) -> SlotRole {
        match dir.parent().and_then(|p| p.file_name()) {
            Some(name) if name == "datasets" => SlotRole::Renter,
            _ => SlotRole::Host,
        }
    }

    /// The opened slot and its tree, from the cache or built now (blocking: call off the runtime).
    pub(crate) fn open_slot(&self, dir: &Path, slot: SlotIndex) -> Result<Arc<OpenSlot>, String> {
        {
            let inner = self.lock();
            if let Some((_, _, t)) = inner.open.iter().find(|(d, s, _)| d == dir && *s == slot) {
                return Ok(t.clone());
            }
        }
        let packed = PackedDataset::open(dir).map_err(|e| e.to_string())?;
        let opened = Arc::new(packed.slot_tree(slot).map_err(|e| e.to_string())?);
        let mut inner = self.lock();
        if inner.open.len() >= TREE_CACHE {
            inner.open.remove(0);
        }
        inner.open.push((dir.to_path_buf(), slot, opened.clone()));
        Ok(opened)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps inconsistent (single inserts).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
