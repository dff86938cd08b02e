//! The background scrub: every hosted block re-read and checked against its root, slot after
//! slot in slot id order, paced so that each pass takes about half of
//! `host.scrub.interval_secs` (every block is then checked at least once per interval, with
//! room for a slow disk) and never reads more than `host.scrub.max_bytes_per_sec`. Damage goes
//! to the heal task.
//!
//! ```text
//!  store: ScrubCursor { pass started, last full pass, slot, block } ──▶ resume there
//!    ─▶ per chunk of 16 blocks (blocking pool, one at a time: at most one core):
//!         read, hash, compare with the slot's block roots ─▶ bad: Damage::report
//!       sleep so that bytes / elapsed stays at the pace ─▶ cursor saved every 10 s and at stop
//!    ─▶ no slot left after this one: the pass is complete; the next begins
//! ```
//!
//! A slot whose files cannot be opened (missing, wrong size, roots not giving the slot root) is
//! reported whole. Slots filled during a pass with an id before the cursor wait for the next
//! pass (they were checked block by block when they were fetched).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hoard_dataset::{PackedDataset, SlotFiles};
use hoard_prover::{BLOCK_SIZE, SlotId, SlotIndex, SlotTree};
use tokio::time::Instant;

use super::{
    Host,
    heal::{Hurt, matches_root},
};
use crate::store::{HostSlotState, ScrubCursor};

/// Blocks read and checked per step (1 MiB).
const CHUNK: u64 = 16;
/// How often the position is saved.
const SAVE_EVERY: Duration = Duration::from_secs(10);
/// How long an idle scrub (no slots) waits before looking again.
const IDLE: Duration = Duration::from_secs(30);
/// Slowest pace: a tiny store is still checked in reasonable time.
const MIN_BYTES_PER_SEC: u64 = 1 << 20;

/// What `hoard host status` shows of the scrub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ScrubView {
    /// The scrub runs (interval not 0).
    pub(crate) enabled: bool,
    /// Unix seconds when this pass began.
    pub(crate) pass_started: u64,
    /// Unix seconds when the last full pass ended.
    pub(crate) last_full_pass: Option<u64>,
    /// Bytes checked in this pass, and the bytes a pass covers now.
    pub(crate) pass_done_bytes: u64,
    pub(crate) pass_total_bytes: u64,
    /// The pace, bytes per second.
    pub(crate) bytes_per_sec: u64,
}

/// The pace for `total` hosted bytes: a pass in half the interval, capped by `max` and at
/// least [`MIN_BYTES_PER_SEC`] (never above `max`).
pub(crate) fn pace(total: u64, interval_secs: u64, max: u64) -> u64 {
    let want = total.saturating_mul(2) / interval_secs.max(1);
    want.max(MIN_BYTES_PER_SEC).min(max.max(1))
}

/// Where to go on from `cursor` in `slots` (sorted by id): the index of the slot and its first
/// block to check, or `None` when the pass is over.
pub(crate) fn resume(slots: &[(SlotId, u64)], cursor: &ScrubCursor) -> Option<(usize, u64)> {
    let Some(at) = cursor.slot else {
        return (!slots.is_empty()).then_some((0, 0));
    };
    match slots.binary_search_by_key(&at, |(id, _)| *id) {
        Ok(i) if cursor.block < slots[i].1 => Some((i, cursor.block)),
        Ok(i) => (i + 1 < slots.len()).then_some((i + 1, 0)),
        Err(i) => (i < slots.len()).then_some((i, 0)),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The scrub task.
pub(super) async fn run(host: Arc<Host>) {
    let ctx = &host.ctx;
    let config = ctx.config.host.scrub.clone();
    ctx.metrics
        .scrub_interval
        .set(i64::try_from(config.interval_secs).unwrap_or(i64::MAX));
    if config.interval_secs == 0 {
        tracing::info!("scrub off (host.scrub.interval_secs = 0)");
        return;
    }
    let mut cursor = match ctx.store.scrub_cursor() {
        Ok(Some(c)) => c,
        _ => ScrubCursor {
            pass_started: now_secs(),
            last_full_pass: None,
            slot: None,
            block: 0,
        },
    };
    let mut saved = Instant::now();
    loop {
        // The slots, by id, with their block counts; re-read at every slot boundary.
        let slots = filled_slots(&host);
        let total: u64 = slots.iter().map(|(_, b)| b * BLOCK_SIZE as u64).sum();
        let rate = pace(total, config.interval_secs, config.max_bytes_per_sec);
        let Some((i, first)) = resume(&slots, &cursor) else {
            if cursor.slot.is_some() {
                // A pass is complete. The next starts half an interval after this one did (a
                // large store takes that long at its pace anyway; a small one is not re-read
                // over and over).
                let now = now_secs();
                tracing::debug!(bytes = total, "scrub pass complete");
                let next = cursor.pass_started.saturating_add(config.interval_secs / 2);
                cursor = ScrubCursor {
                    pass_started: now.max(next),
                    last_full_pass: Some(now),
                    slot: None,
                    block: 0,
                };
                let _ = ctx.store.set_scrub_cursor(&cursor);
                publish(&host, &cursor, total, total, rate);
                let pause = Duration::from_secs(next.saturating_sub(now));
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
            // Nothing held: nothing to check, so everything is checked; wait for a fill.
            let now = now_secs();
            cursor.pass_started = now;
            cursor.last_full_pass = Some(now);
            publish(&host, &cursor, 0, total, rate);
            tokio::select! {
                _ = ctx.cancel.cancelled() => return,
                _ = host.scrub_wake.notified() => continue,
                _ = tokio::time::sleep(IDLE) => continue,
            }
        };
        let (slot_id, blocks) = slots[i];
        let before: u64 = slots[..i].iter().map(|(_, b)| b * BLOCK_SIZE as u64).sum();
        let Some(opened) = open(&host, slot_id).await else {
            // Gone since it was listed, or damaged beyond reading: go on with the next one.
            cursor.slot = Some(slot_id);
            cursor.block = blocks;
            continue;
        };
        let opened = Arc::new(opened);
        let mut b = first;
        while b < blocks {
            let n = CHUNK.min(blocks - b);
            let started = Instant::now();
            let o = Arc::clone(&opened);
            let bad = tokio::task::spawn_blocking(move || check_chunk(&o.0, &o.1, b, n))
                .await
                .unwrap_or_default();
            ctx.metrics.scrub_blocks_checked.inc_by(n);
            if !bad.is_empty() {
                ctx.metrics.scrub_corrupt_blocks.inc_by(bad.len() as u64);
                ctx.metrics.integrity_failures.inc();
                tracing::error!(slot = %slot_id.short(), blocks = ?bad, "the scrub found damaged blocks");
                host.damage.report(slot_id, Hurt::blocks(bad));
            }
            b += n;
            cursor.slot = Some(slot_id);
            cursor.block = b;
            let done = before + b * BLOCK_SIZE as u64;
            publish(&host, &cursor, done, total, rate);
            if saved.elapsed() >= SAVE_EVERY {
                let _ = ctx.store.set_scrub_cursor(&cursor);
                saved = Instant::now();
            }
            let wait = Duration::from_secs_f64((n * BLOCK_SIZE as u64) as f64 / rate as f64);
            tokio::select! {
                _ = ctx.cancel.cancelled() => {
                    let _ = ctx.store.set_scrub_cursor(&cursor);
                    return;
                }
                _ = tokio::time::sleep_until(started + wait) => {}
            }
        }
    }
}

/// Filled slots by id, with their block counts.
fn filled_slots(host: &Host) -> Vec<(SlotId, u64)> {
    let store = &host.ctx.store;
    let mut slots: Vec<(SlotId, u64)> = store
        .host_slots()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.state == HostSlotState::Filled)
        .filter_map(|s| {
            let r = store.request(&s.request_id).ok().flatten()?;
            Some((s.slot_id, r.slot_size.div_ceil(BLOCK_SIZE as u64)))
        })
        .collect();
    slots.sort_unstable_by_key(|(id, _)| *id);
    slots
}

/// Opens a hosted slot for checking; reports it whole if its files are unusable.
async fn open(host: &Host, slot_id: SlotId) -> Option<(SlotFiles, SlotTree)> {
    let ctx = &host.ctx;
    let s = ctx.store.host_slot(&slot_id).ok().flatten()?;
    let dir = ctx.store.slot_dir(&s.volume, &slot_id);
    let index = s.index;
    let opened = tokio::task::spawn_blocking(move || open_slot(&dir, index))
        .await
        .ok()?;
    match opened {
        Ok(o) => Some(o),
        Err(e) => {
            ctx.metrics.integrity_failures.inc();
            tracing::error!(slot = %slot_id.short(), err = %e, "the scrub cannot open a hosted slot");
            host.damage.report(slot_id, Hurt::Whole);
            None
        }
    }
}

fn open_slot(
    dir: &Path,
    index: SlotIndex,
) -> Result<(SlotFiles, SlotTree), hoard_dataset::DatasetError> {
    PackedDataset::open(dir)?.slot_tree(index)
}

/// Blocks `first..first + n` that do not match their roots (or cannot be read).
pub(crate) fn check_chunk(files: &SlotFiles, tree: &SlotTree, first: u64, n: u64) -> Vec<u64> {
    let mut buf = vec![0u8; n as usize * BLOCK_SIZE];
    if files.read_blocks(first, &mut buf).is_err() {
        // Read one by one to tell the unreadable blocks from the rest.
        let mut one = vec![0u8; BLOCK_SIZE];
        return (first..first + n)
            .filter(|b| files.read_blocks(*b, &mut one).is_err() || !matches_root(tree, *b, &one))
            .collect();
    }
    buf.chunks_exact(BLOCK_SIZE)
        .zip(first..)
        .filter(|(block, b)| !matches_root(tree, *b, block))
        .map(|(_, b)| b)
        .collect()
}

fn publish(host: &Host, cursor: &ScrubCursor, done: u64, total: u64, rate: u64) {
    let m = &host.ctx.metrics;
    let ratio = if total == 0 {
        0.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    m.scrub_progress.set(ratio);
    m.scrub_last_full_pass
        .set(cursor.last_full_pass.unwrap_or(cursor.pass_started) as i64);
    m.scrub_bytes_per_second.set(rate as i64);
    host.scrub.send_replace(ScrubView {
        enabled: true,
        pass_started: cursor.pass_started,
        last_full_pass: cursor.last_full_pass,
        pass_done_bytes: done,
        pass_total_bytes: total,
        bytes_per_sec: rate,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_fits_two_passes_per_interval_within_the_cap() {
        let gib = 1u64 << 30;
        // 1 GiB a day: twice a day is about 25 KB/s, below the floor.
        assert_eq!(pace(gib, 86_400, 32 << 20), MIN_BYTES_PER_SEC);
        // 10 TiB a day wants 254 MB/s; the cap holds it at 32 MiB/s.
        assert_eq!(pace(10 << 40, 86_400, 32 << 20), 32 << 20);
        assert_eq!(pace(100 * gib, 86_400, 1 << 30), 100 * gib * 2 / 86_400);
        // A cap below the floor wins; no division by zero.
        assert_eq!(pace(gib, 0, 1 << 19), 1 << 19);
    }

    #[test]
    fn a_pass_resumes_where_it_stopped_and_skips_what_is_gone() {
        let id = |b: u8| SlotId([b; 32]);
        let slots = vec![(id(1), 10), (id(3), 4), (id(5), 8)];
        let at = |slot: Option<u8>, block: u64| ScrubCursor {
            pass_started: 0,
            last_full_pass: None,
            slot: slot.map(id),
            block,
        };
        assert_eq!(resume(&slots, &at(None, 0)), Some((0, 0)));
        assert_eq!(resume(&slots, &at(Some(3), 2)), Some((1, 2)));
        // Done with slot 3: on to slot 5.
        assert_eq!(resume(&slots, &at(Some(3), 4)), Some((2, 0)));
        // Slot 2 is gone (withdrawn): the next id after it.
        assert_eq!(resume(&slots, &at(Some(2), 7)), Some((1, 0)));
        // Past the last slot: the pass is over.
        assert_eq!(resume(&slots, &at(Some(5), 8)), None);
        assert_eq!(resume(&slots, &at(Some(9), 0)), None);
        assert_eq!(resume(&[], &at(None, 0)), None);
    }

    #[test]
    fn a_chunk_check_names_each_flipped_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("input.bin");
        // 40 blocks over k = 2: 20 blocks per slot.
        let bytes: Vec<u8> = (0..40 * BLOCK_SIZE).map(|i| (i % 251) as u8).collect();
        std::fs::write(&input, &bytes).expect("input");
        let out = dir.path().join("packed");
        hoard_dataset::pack(&input, &out, 2, 1, &hoard_dataset::NoProgress).expect("pack");
        let index = SlotIndex(1);
        let data = out.join(hoard_dataset::slot_data_file(index));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&data)
            .expect("open");
        for b in [3u64, 17] {
            use std::os::unix::fs::FileExt as _;
            f.write_all_at(&[0x40], b * BLOCK_SIZE as u64 + 1000)
                .expect("flip");
        }
        let (files, tree) = open_slot(&out, index).expect("open");
        assert_eq!(tree.blocks(), 20);
        assert_eq!(check_chunk(&files, &tree, 0, 16), vec![3]);
        assert_eq!(check_chunk(&files, &tree, 16, 4), vec![17]);
        // Cut short under an open slot: the blocks past the end are named, the others not.
        f.set_len(18 * BLOCK_SIZE as u64 + 5).expect("truncate");
        assert_eq!(check_chunk(&files, &tree, 16, 4), vec![17, 18, 19]);
    }
}
