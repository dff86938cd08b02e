//! The reads behind the HTTP gateway (`GET /api/v1/datasets/{id}/files/{path}`): a byte range
//! of one file, fetched block by block from the swarm in stream order and handed out only after
//! each block verified; what is fetched goes into the reader cache like any download.
//!
//! ```text
//!  open(dataset) ─▶ request, sources, manifest (kept 30 s per dataset)
//!  stream(range) ─▶ task: swarm::fetch(window of WINDOW units) ─▶ Ordered sink ─▶ channel
//!                                                 (reorders, blocks until the client reads)
//! ```
//!
//! Memory per read is bounded by the window (`WINDOW` units of 1 MiB) and the channel, whatever
//! the file's size: a unit's delivery waits for the client, so the swarm cannot run ahead.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hoard_dataset::{DatasetError, Entry, EntryKind, Manifest};
use hoard_p2p::BlockWithPath;
use hoard_prover::{BLOCK_SIZE, DatasetId, SlotIndex};
use libp2p::PeerId;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::{
    DownloadError, DownloadHandle, holders, newest_request,
    swarm::{self, Kind, Plan, Sink, Unit},
};

/// Units the swarm may fetch ahead of what the client has read.
const WINDOW: usize = 24;
/// Chunks buffered between the swarm and the HTTP body.
const CHANNEL: usize = 8;
/// How long the sources and manifest of a dataset are reused between reads.
const KEEP: Duration = Duration::from_secs(30);

/// Why a gateway read cannot be answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GatewayError {
    /// Not a path inside a dataset.
    #[error(transparent)]
    BadPath(DatasetError),
    /// The dataset has no such entry.
    #[error("dataset {dataset} has no file or folder {path:?} (`hoard ls {dataset}` lists them)")]
    NoSuchPath {
        /// The dataset.
        dataset: DatasetId,
        /// The path asked for.
        path: String,
    },
    /// Finding the dataset or its manifest failed.
    #[error(transparent)]
    Download(#[from] DownloadError),
}

/// What a path names.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    /// A file: `size` bytes at `offset` of the stream (a link is resolved to its target).
    File {
        /// Its path (the target's, for a link).
        path: String,
        /// Stream offset.
        offset: u64,
        /// Bytes.
        size: u64,
    },
    /// A folder and its direct entries (the root for `""`).
    Dir {
        /// Its path.
        path: String,
        /// Direct children.
        entries: Vec<Entry>,
    },
}

/// A dataset ready to be read: its manifest and who may serve it.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The dataset.
    pub(crate) dataset: DatasetId,
    /// Its manifest.
    pub(crate) manifest: Arc<Manifest>,
    peers: Vec<(PeerId, Kind)>,
    at: Instant,
}

impl Opened {
    /// What `path` (already normalised) names.
    pub(crate) fn resolve(&self, path: &str) -> Result<Resolved, GatewayError> {
        let m = &self.manifest;
        if path.is_empty() {
            return Ok(Resolved::Dir {
                path: String::new(),
                entries: children(m, ""),
            });
        }
        let missing = || GatewayError::NoSuchPath {
            dataset: self.dataset,
            path: path.to_owned(),
        };
        let entry = m
            .entries
            .iter()
            .find(|e| e.path == path)
            .ok_or_else(missing)?;
        let entry = match &entry.kind {
            EntryKind::Link { target } => m
                .entries
                .iter()
                .find(|e| e.path == *target)
                .ok_or_else(missing)?,
            _ => entry,
        };
        Ok(match entry.kind {
            EntryKind::File { offset, size } => Resolved::File {
                path: entry.path.clone(),
                offset,
                size,
            },
            _ => Resolved::Dir {
                path: entry.path.clone(),
                entries: children(m, &entry.path),
            },
        })
    }
}

/// The direct children of folder `dir` (`""`: the root).
fn children(m: &Manifest, dir: &str) -> Vec<Entry> {
    m.entries
        .iter()
        .filter(|e| match e.path.rsplit_once('/') {
            Some((parent, _)) => parent == dir,
            None => dir.is_empty(),
        })
        .cloned()
        .collect()
}

/// Sources and manifests of recently read datasets.
pub(crate) type Book = Arc<Mutex<HashMap<DatasetId, Arc<Opened>>>>;

impl DownloadHandle {
    /// The dataset's manifest and sources, reused for `KEEP` after a first read.
    pub(crate) async fn open(&self, dataset: DatasetId) -> Result<Arc<Opened>, GatewayError> {
        if let Some(o) = self
            .book
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&dataset)
            .filter(|o| o.at.elapsed() < KEEP)
        {
            return Ok(o.clone());
        }
        let ctx = &self.ctx;
        ctx.wait_synced(Duration::from_secs(60))
            .await
            .map_err(DownloadError::from)?;
        let r = newest_request(ctx, dataset)?;
        let peers = holders::sources(ctx, &r).await;
        let (manifest, bytes) = super::manifest(ctx, &self.cache, dataset, &peers).await?;
        let manifest = Arc::new(manifest);
        {
            let (cache, m) = (self.cache.clone(), manifest.clone());
            let _ = tokio::task::spawn_blocking(move || cache.begin(&m, &bytes)).await;
        }
        let opened = Arc::new(Opened {
            dataset,
            manifest,
            peers,
            at: Instant::now(),
        });
        self.book
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dataset, opened.clone());
        Ok(opened)
    }

    /// Streams `len` bytes of the dataset stream from `offset`: chunks in order, each from
    /// blocks verified by their paths; an `Err` ends the stream early.
    pub(crate) fn stream(
        &self,
        opened: Arc<Opened>,
        offset: u64,
        len: u64,
    ) -> mpsc::Receiver<Result<Vec<u8>, String>> {
        let (tx, rx) = mpsc::channel(CHANNEL);
        if len == 0 {
            return rx;
        }
        let s = opened.manifest.layout.slot_blocks();
        let blocks = hoard_dataset::covering_blocks(offset, len);
        let mut units: Vec<Unit> = Vec::new();
        let mut by_slot: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for b in blocks {
            by_slot.entry(b / s).or_default().push(b % s);
        }
        for (slot, idx) in by_slot {
            units.extend(Unit::cut(SlotIndex(slot as u16), idx));
        }
        let order: HashMap<Unit, usize> = units.iter().enumerate().map(|(i, u)| (*u, i)).collect();
        let sink = Arc::new(Ordered {
            tx: tx.clone(),
            order,
            slot_blocks: s,
            range: (offset, offset + len),
            state: Mutex::new((0, BTreeMap::new())),
            emitting: Mutex::new(()),
        });
        let plan = Plan {
            dataset: opened.dataset,
            manifest: opened.manifest.clone(),
            units,
            peers: opened.peers.clone(),
            window: Some(WINDOW),
        };
        let (ctx, cache) = (self.ctx.clone(), self.cache.clone());
        let span = tracing::info_span!("gateway", dataset = %opened.dataset.short(), offset, len);
        self.tasks.spawn(
            async move {
                let progress = Arc::default();
                let fetched = tokio::select! {
                    _ = ctx.cancel.cancelled() => Err("the node is shutting down".to_owned()),
                    _ = tx.closed() => Ok(()),
                    r = swarm::fetch(&ctx, &cache, plan, sink, progress) => {
                        r.map(|_| ()).map_err(|e| e.to_string())
                    }
                };
                if let Err(e) = fetched {
                    tracing::warn!(err = %e, "gateway read failed");
                    let _ = tx.send(Err(e)).await;
                }
            }
            .instrument(span),
        );
        rx
    }
}

/// Hands units out in stream order, each cut to the range asked for.
struct Ordered {
    tx: mpsc::Sender<Result<Vec<u8>, String>>,
    order: HashMap<Unit, usize>,
    slot_blocks: u64,
    range: (u64, u64),
    /// The next unit to send and the units that came early.
    state: Mutex<(usize, BTreeMap<usize, Vec<u8>>)>,
    /// One thread sends at a time, so chunks leave in order.
    emitting: Mutex<()>,
}

impl Ordered {
    fn cut(&self, unit: Unit, blocks: &[BlockWithPath]) -> Vec<u8> {
        let (from, to) = self.range;
        let base = u64::from(unit.slot.0) * self.slot_blocks;
        let mut out = Vec::with_capacity(blocks.len() * BLOCK_SIZE);
        for b in blocks {
            let start = (base + b.index) * BLOCK_SIZE as u64;
            let end = start + BLOCK_SIZE as u64;
            let a = from.max(start);
            let z = to.min(end);
            if a < z {
                out.extend_from_slice(&b.data[(a - start) as usize..(z - start) as usize]);
            }
        }
        out
    }
}

impl Sink for Ordered {
    fn deliver(&self, unit: Unit, blocks: &[BlockWithPath]) -> Result<(), String> {
        let Some(&i) = self.order.get(&unit) else {
            return Ok(());
        };
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if i < st.0 || st.1.contains_key(&i) {
                return Ok(());
            }
            let bytes = self.cut(unit, blocks);
            st.1.insert(i, bytes);
        }
        let _one = self.emitting.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let next = {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let n = st.0;
                match st.1.remove(&n) {
                    Some(b) => {
                        st.0 += 1;
                        b
                    }
                    None => return Ok(()),
                }
            };
            // Waits while the client is slower than the swarm: this is what bounds memory.
            if self.tx.blocking_send(Ok(next)).is_err() {
                return Err("the client went away".into());
            }
        }
    }
}
