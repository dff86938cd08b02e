//! What is damaged and not yet repaired: a set of blocks (or the whole slot) per hosted slot,
//! reported by the scrub, the start-up check, serving and the proof scheduler, taken one slot at
//! a time by the heal task, and watched by proofs that wait for a repair.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Mutex,
};

use hoard_prover::SlotId;
use tokio::sync::{Notify, watch};

/// Damaged blocks remembered per slot; past this the slot is rebuilt whole.
pub(crate) const MAX_BLOCKS: usize = 1 << 16;

/// What is damaged in one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hurt {
    /// These blocks do not match their roots (or cannot be read).
    Blocks(BTreeSet<u64>),
    /// The slot's files are missing, the wrong size, or their roots do not give the slot root.
    Whole,
}

impl Hurt {
    /// Some blocks.
    pub(crate) fn blocks(blocks: impl IntoIterator<Item = u64>) -> Self {
        Self::Blocks(blocks.into_iter().collect())
    }

    pub(super) fn merge(&mut self, other: Hurt) {
        match (&mut *self, other) {
            (Hurt::Blocks(mine), Hurt::Blocks(more)) => {
                mine.extend(more);
                if mine.len() > MAX_BLOCKS {
                    *self = Hurt::Whole;
                }
            }
            (_, Hurt::Whole) => *self = Hurt::Whole,
            (Hurt::Whole, Hurt::Blocks(_)) => {}
        }
    }
}

/// Damage known and not yet repaired, shared by every reporter and the heal task.
#[derive(Debug)]
pub(crate) struct Damage {
    inner: Mutex<Inner>,
    /// Wakes the heal task when something is reported.
    pub(super) wake: Notify,
    /// Bumped after every repair attempt (and every report), for those waiting on a slot.
    changed: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Reported and waiting for a repair.
    queued: BTreeMap<SlotId, Hurt>,
    /// The slot being repaired now.
    working: Option<SlotId>,
    /// Slots whose last attempt failed, with why, tried again after [`RETRY`](super::RETRY).
    failed: HashMap<SlotId, (Hurt, String)>,
    /// Damage reported by the folder it was found in (serving knows folders, not slot ids);
    /// the heal task maps each to its slot (folders that are no hosted slot are dropped).
    by_dir: BTreeMap<PathBuf, BTreeSet<u64>>,
}

impl Default for Damage {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            wake: Notify::new(),
            changed: watch::channel(0).0,
        }
    }
}

impl Damage {
    /// Reports damage in `slot` (callable from any thread, never blocks for long).
    pub(crate) fn report(&self, slot: SlotId, hurt: Hurt) {
        if matches!(&hurt, Hurt::Blocks(b) if b.is_empty()) {
            return;
        }
        {
            let mut inner = self.lock();
            let mut hurt = hurt;
            if let Some((earlier, _)) = inner.failed.remove(&slot) {
                let mut h = earlier;
                h.merge(hurt);
                hurt = h;
            }
            match inner.queued.get_mut(&slot) {
                Some(h) => h.merge(hurt),
                None => {
                    inner.queued.insert(slot, hurt);
                }
            }
        }
        self.wake.notify_one();
        self.changed.send_modify(|n| *n += 1);
    }

    /// Reports damaged `blocks` of the slot served from the packed folder `dir`.
    pub(crate) fn report_dir(&self, dir: &Path, blocks: impl IntoIterator<Item = u64>) {
        {
            let mut inner = self.lock();
            let set = inner.by_dir.entry(dir.to_path_buf()).or_default();
            set.extend(blocks);
            if set.len() > MAX_BLOCKS {
                // Bounded like any other report: the heal task re-checks what it is told.
                let keep: BTreeSet<u64> = set.iter().take(MAX_BLOCKS).copied().collect();
                *set = keep;
            }
        }
        self.wake.notify_one();
    }

    /// Moves the reports by folder to their hosted slots (`slots`: folder → slot id).
    pub(super) fn resolve_dirs(&self, slots: &HashMap<PathBuf, SlotId>) {
        let by_dir = std::mem::take(&mut self.lock().by_dir);
        for (dir, blocks) in by_dir {
            if let Some(slot) = slots.get(&dir) {
                self.report(*slot, Hurt::Blocks(blocks));
            }
        }
    }

    pub(super) fn has_dir_reports(&self) -> bool {
        !self.lock().by_dir.is_empty()
    }

    /// Whether `slot` has no damage waiting, in repair, or left by a failed repair.
    pub(crate) fn is_clear(&self, slot: &SlotId) -> bool {
        let inner = self.lock();
        !inner.queued.contains_key(slot)
            && inner.working.as_ref() != Some(slot)
            && !inner.failed.contains_key(slot)
    }

    /// Why the last repair of `slot` failed, if it did and no new attempt succeeded since.
    pub(crate) fn failure(&self, slot: &SlotId) -> Option<String> {
        self.lock().failed.get(slot).map(|(_, why)| why.clone())
    }

    /// Slots with damage not yet repaired.
    pub(crate) fn damaged_slots(&self) -> usize {
        let inner = self.lock();
        let mut n = inner.queued.len() + inner.failed.len();
        if let Some(w) = &inner.working
            && !inner.queued.contains_key(w)
            && !inner.failed.contains_key(w)
        {
            n += 1;
        }
        n
    }

    /// Every slot with damage not yet repaired, with why its last repair failed (if it did).
    pub(crate) fn damaged(&self) -> Vec<(SlotId, Option<String>)> {
        let inner = self.lock();
        let mut out: BTreeMap<SlotId, Option<String>> = BTreeMap::new();
        for s in inner.queued.keys().chain(inner.working.iter()) {
            out.insert(*s, None);
        }
        for (s, (_, why)) in &inner.failed {
            out.insert(*s, Some(why.clone()));
        }
        out.into_iter().collect()
    }

    /// Told of every change (report, attempt finished).
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(super) fn take_next(&self) -> Option<(SlotId, Hurt)> {
        let mut inner = self.lock();
        let (slot, hurt) = inner.queued.pop_first()?;
        inner.working = Some(slot);
        Some((slot, hurt))
    }

    pub(super) fn finish(&self, slot: SlotId, failed: Option<(Hurt, String)>) {
        {
            let mut inner = self.lock();
            inner.working = None;
            if let Some(f) = failed {
                // Reports that arrived while this attempt ran are queued and go next anyway.
                match inner.queued.remove(&slot) {
                    Some(mut newer) => {
                        newer.merge(f.0);
                        inner.queued.insert(slot, newer);
                    }
                    None => {
                        inner.failed.insert(slot, f);
                    }
                }
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Queues again every slot whose last attempt failed.
    pub(super) fn retry_failed(&self) {
        let again: Vec<(SlotId, Hurt)> = {
            let mut inner = self.lock();
            inner.failed.drain().map(|(s, (h, _))| (s, h)).collect()
        };
        for (slot, hurt) in again {
            self.report(slot, hurt);
        }
    }

    /// Forgets a slot no longer held.
    pub(super) fn forget(&self, slot: &SlotId) {
        let mut inner = self.lock();
        inner.queued.remove(slot);
        inner.failed.remove(slot);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update is a single insert or remove: a panic elsewhere cannot leave it half done.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_merges_per_slot_and_a_failed_repair_is_retried() {
        let d = Damage::default();
        let a = SlotId([1; 32]);
        assert!(d.is_clear(&a));
        d.report(a, Hurt::blocks([3]));
        d.report(a, Hurt::blocks([1, 3]));
        assert!(!d.is_clear(&a));
        assert_eq!(d.take_next(), Some((a, Hurt::blocks([1, 3]))));
        assert!(!d.is_clear(&a), "being repaired");
        assert_eq!(d.damaged_slots(), 1);
        d.finish(a, Some((Hurt::blocks([1, 3]), "no sources".into())));
        assert_eq!(d.failure(&a).as_deref(), Some("no sources"));
        assert_eq!(d.take_next(), None, "not retried before RETRY");
        d.retry_failed();
        assert_eq!(d.take_next(), Some((a, Hurt::blocks([1, 3]))));
        d.finish(a, None);
        assert!(d.is_clear(&a));
        assert_eq!(d.damaged_slots(), 0);

        let mut h = Hurt::blocks([1]);
        h.merge(Hurt::Whole);
        assert_eq!(h, Hurt::Whole);
        let b = SlotId([2; 32]);
        d.report_dir(Path::new("/vol/slots/bb"), [5]);
        d.report_dir(Path::new("/not/hosted"), [1]);
        d.resolve_dirs(&HashMap::from([(PathBuf::from("/vol/slots/bb"), b)]));
        assert_eq!(d.take_next(), Some((b, Hurt::blocks([5]))));
        assert!(
            !d.has_dir_reports(),
            "folders of no hosted slot are dropped"
        );
        d.finish(b, None);

        let mut many = Hurt::blocks(0..MAX_BLOCKS as u64);
        many.merge(Hurt::blocks([u64::MAX]));
        assert_eq!(
            many,
            Hurt::Whole,
            "past MAX_BLOCKS the slot is rebuilt whole"
        );
    }
}
