//! The download role: `get` (whole datasets or some of their files), the reads behind the HTTP
//! gateway, and seeding: what it downloads goes into the reader cache, which it announces in
//! Kademlia and serves.
//!
//! ```text
//!  DownloadHandle::start ─▶ job (tracked) ─▶ holders::sources (chain + DHT) ─▶ manifest
//!      ─▶ Restore (the output, resumable) ─▶ swarm::fetch (cache first, then hosts and readers
//!         at once, every block verified) ─▶ blocks straight into the output files ─▶ commit
//!      └▶ a data slot nobody serves: fetch::slot × k into slot files ─▶ unpack_verified (decode)
//!  seed::run ─▶ every 2 s: reader cache commit, provider records, gauges
//! ```
//!
//! Hosts are found from the chain (each filled slot's host and its announced peer id and
//! addresses), readers and the renter from Kademlia provider records. When no decoding is
//! needed (every data slot has a source) blocks go to their place in the output files as they
//! are verified, with no intermediate slot files; a `get` into the output of an interrupted
//! one resumes from its journal.

pub(crate) mod fetch;
pub(crate) mod gateway;
pub(crate) mod holders;
pub(crate) mod seed;
pub(crate) mod swarm;

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use futures::{StreamExt, stream::FuturesUnordered};
use hoard_api::{DownloadRequest, JobKind};
use hoard_dataset::{DatasetError, Manifest, Restore, Unpacked};
use hoard_prover::{BLOCK_SIZE, DatasetId, SlotIndex};
use libp2p::PeerId;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use self::{
    fetch::FetchError,
    holders::slot_holders,
    swarm::{Plan, Sink, Unit},
};
use crate::{
    ctx::{Ctx, NotSynced},
    jobs::{JobProgress, Jobs},
    reader_cache::ReaderCache,
    store::{RequestRecord, StoreError},
};

/// Why a download did not start or did not finish.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DownloadError {
    /// The output exists and holds something.
    #[error("{0} exists and is not an empty folder")]
    OutNotEmpty(PathBuf),
    /// No request for the dataset is known.
    #[error("no storage request on chain for dataset {0} (check the id; is the node synced?)")]
    Unknown(DatasetId),
    /// Fewer than `k` slots have a reachable host (none: no host, renter or reader known).
    #[error("only {have} of the {need} slots have a reachable host")]
    TooFewHosts {
        /// Slots with a host.
        have: usize,
        /// k.
        need: usize,
    },
    /// Every candidate slot failed.
    #[error("could not download {need} slots: {last}")]
    TooFewSlots {
        /// k.
        need: usize,
        /// The last slot's error.
        last: String,
    },
    #[error(transparent)]
    NotSynced(#[from] NotSynced),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node stopped before the download finished.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The restore task died.
    #[error("the restore task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// A path asked for is not in the dataset or not a dataset path.
    #[error(transparent)]
    Path(DatasetError),
    /// Some blocks of the files asked for have no source and decoding them needs the whole
    /// dataset.
    #[error(
        "{0}; a data slot has no reachable host, so only the whole dataset can be restored (decoding): get it without --path"
    )]
    PartialNeedsDecoding(swarm::SwarmError),
    /// The swarm could not write the output.
    #[error(transparent)]
    Swarm(swarm::SwarmError),
}

/// Starts downloads as jobs the role owns. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct DownloadHandle {
    ctx: Arc<Ctx>,
    jobs: Jobs,
    tasks: TaskTracker,
    cache: ReaderCache,
    book: gateway::Book,
}

impl DownloadHandle {
    /// The download role; its jobs run in `tasks`; what it fetches goes into `cache`.
    pub(crate) fn new(ctx: Arc<Ctx>, jobs: Jobs, tasks: TaskTracker, cache: ReaderCache) -> Self {
        Self {
            ctx,
            jobs,
            tasks,
            cache,
            book: gateway::Book::default(),
        }
    }

    /// The reader cache this role fills.
    pub(crate) fn cache(&self) -> &ReaderCache {
        &self.cache
    }

    /// Checks `req` and starts downloading; returns the job id.
    pub(crate) fn start(&self, req: DownloadRequest) -> Result<String, DownloadError> {
        for p in &req.paths {
            hoard_dataset::normalise_path(p).map_err(DownloadError::Path)?;
        }
        if req.out.exists()
            && std::fs::read_dir(&req.out)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(DownloadError::OutNotEmpty(req.out));
        }
        let id = self.jobs.start(JobKind::Get);
        let progress = JobProgress::new(self.jobs.clone(), id.clone());
        let (ctx, jobs, job, cache) = (
            self.ctx.clone(),
            self.jobs.clone(),
            id.clone(),
            self.cache.clone(),
        );
        let span = tracing::info_span!("get", job = %id, dataset = %req.dataset.short());
        self.tasks.spawn(
            async move {
                let work = get(&ctx, &cache, &progress, req);
                let result = tokio::select! {
                    _ = ctx.cancel.cancelled() => Err(DownloadError::ShuttingDown),
                    r = work => r,
                };
                match result {
                    Ok(u) => {
                        progress.set_result(serde_json::json!({
                            "out": u.out, "size": u.size, "decoded_stripes": u.decoded_stripes
                        }));
                        jobs.finish(&job, Ok(()));
                    }
                    Err(e) => {
                        tracing::error!(err = %e, "get failed");
                        jobs.finish(&job, Err(e.to_string()));
                    }
                }
            }
            .instrument(span),
        );
        Ok(id)
    }
}

/// Downloads `req.dataset` (or the files `req.paths` pick) to `req.out`, reporting to
/// `progress`.
async fn get(
    ctx: &Ctx,
    cache: &ReaderCache,
    progress: &JobProgress,
    req: DownloadRequest,
) -> Result<Unpacked, DownloadError> {
    let dataset = req.dataset;
    ctx.wait_synced(Duration::from_secs(60)).await?;
    let r = newest_request(ctx, dataset)?;
    progress.enter("finding hosts", u64::from(r.slots));
    let peers = holders::sources(ctx, &r).await;
    if peers.is_empty() {
        return Err(DownloadError::TooFewHosts {
            have: 0,
            need: usize::from(r.slots),
        });
    }
    let (manifest, bytes) = manifest(ctx, cache, dataset, &peers).await?;
    let manifest = Arc::new(manifest);
    {
        let (cache, m, b) = (cache.clone(), manifest.clone(), bytes.clone());
        let begun = tokio::task::spawn_blocking(move || cache.begin(&m, &b)).await?;
        if let Err(e) = begun {
            tracing::warn!(err = %e, "not caching this download");
        }
    }
    let restore = {
        let (out, m, paths) = (req.out.clone(), manifest.clone(), req.paths.clone());
        tokio::task::spawn_blocking(move || Restore::start(&out, &m, &paths))
            .await?
            .map_err(|e| match e {
                DatasetError::BadPath(_) | DatasetError::NoSuchPath(_) => DownloadError::Path(e),
                DatasetError::OutputExists(p) => DownloadError::OutNotEmpty(p),
                e => DownloadError::Dataset(e),
            })?
    };
    let restore = Arc::new(restore);
    let layout = manifest.layout;
    let s = layout.slot_blocks();
    let missing = restore.missing();
    let resumed = restore.done_count();
    if resumed > 0 {
        tracing::info!(blocks = resumed, "resuming an interrupted download");
    }
    let mut by_slot: Vec<Vec<u64>> = vec![Vec::new(); layout.data_slots()];
    for b in missing {
        if let Some(v) = by_slot.get_mut((b / s) as usize) {
            v.push(b % s);
        }
    }
    let units: Vec<Unit> = by_slot
        .into_iter()
        .enumerate()
        .flat_map(|(i, blocks)| Unit::cut(SlotIndex(i as u16), blocks))
        .collect();
    let wanted: u64 = units.iter().map(|u| u64::from(u.count)).sum::<u64>() * BLOCK_SIZE as u64;
    let counter = progress.enter("downloading", wanted + resumed * BLOCK_SIZE as u64);
    counter.fetch_add(
        resumed * BLOCK_SIZE as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let plan = Plan {
        dataset,
        manifest: manifest.clone(),
        units,
        peers: peers.clone(),
        window: None,
    };
    let sink: Arc<dyn Sink> = Arc::new(RestoreSink {
        restore: restore.clone(),
        slot_blocks: s,
    });
    match swarm::fetch(ctx, cache, plan, sink, counter).await {
        Ok(report) => {
            tracing::info!(
                sources = report.sources_used,
                local_units = report.local_units,
                bytes = report.fetched_bytes,
                "download complete"
            );
            let size = restore.selected_bytes();
            let out = tokio::task::spawn_blocking(move || restore.commit()).await??;
            Ok(Unpacked {
                id: dataset,
                out,
                size,
                decoded_stripes: 0,
                problems: Vec::new(),
            })
        }
        Err(e @ swarm::SwarmError::Unavailable { .. }) if req.paths.is_empty() => {
            // Some data slot has no source: decode from any k slots (the journal is kept, so a
            // later `get` with the hosts back resumes).
            tracing::warn!(err = %e, "no source for some data blocks; downloading k slots to decode");
            drop(restore);
            let restore_target = req.out.clone();
            decode_get(
                ctx,
                progress,
                &r,
                dataset,
                &manifest,
                &bytes,
                &peers,
                restore_target,
            )
            .await
        }
        Err(e @ swarm::SwarmError::Unavailable { .. }) => {
            Err(DownloadError::PartialNeedsDecoding(e))
        }
        Err(e) => Err(DownloadError::Swarm(e)),
    }
}

/// The newest request for `dataset` (the furthest end: the likeliest to have live hosts).
fn newest_request(ctx: &Ctx, dataset: DatasetId) -> Result<RequestRecord, DownloadError> {
    let mut requests = ctx.store.requests_for_manifest(&dataset)?;
    requests.sort_by_key(|r| std::cmp::Reverse(r.ends_at));
    requests
        .into_iter()
        .next()
        .ok_or(DownloadError::Unknown(dataset))
}

/// The manifest of `dataset`: from the reader cache, else from a peer (checked against its id).
pub(crate) async fn manifest(
    ctx: &Ctx,
    cache: &ReaderCache,
    dataset: DatasetId,
    peers: &[(PeerId, swarm::Kind)],
) -> Result<(Manifest, Vec<u8>), DownloadError> {
    let cached = {
        let cache = cache.clone();
        tokio::task::spawn_blocking(move || cache.manifest_bytes(&dataset)).await?
    };
    if let Some(bytes) = cached
        && let Ok(m) = Manifest::decode(&bytes)
        && m.id() == dataset
    {
        return Ok((m, bytes));
    }
    let peers: Vec<PeerId> = peers.iter().map(|(p, _)| *p).collect();
    Ok(fetch::manifest(ctx, dataset, &peers).await?)
}

/// Writes verified units of data slots into the output files at their stream offsets.
struct RestoreSink {
    restore: Arc<Restore>,
    slot_blocks: u64,
}

impl Sink for RestoreSink {
    fn deliver(&self, unit: Unit, blocks: &[hoard_p2p::BlockWithPath]) -> Result<(), String> {
        let base = u64::from(unit.slot.0) * self.slot_blocks;
        // The swarm checked that `blocks` are the unit's, in order: a run of one data slot,
        // consecutive in the stream.
        let data: Vec<&[u8]> = blocks.iter().map(|b| &b.data[..]).collect();
        self.restore
            .write_run(base + unit.first, &data)
            .map_err(|e| e.to_string())
    }

    fn checkpoint(&self) -> Result<(), String> {
        self.restore.checkpoint().map_err(|e| e.to_string())
    }
}

/// The decoding path: `k` whole slots into a packed folder, then `unpack_verified`.
#[allow(clippy::too_many_arguments)]
async fn decode_get(
    ctx: &Ctx,
    progress: &JobProgress,
    r: &RequestRecord,
    dataset: DatasetId,
    manifest: &Manifest,
    bytes: &[u8],
    peers: &[(PeerId, swarm::Kind)],
    out: PathBuf,
) -> Result<Unpacked, DownloadError> {
    let volume = ctx.store.roomiest_volume();
    let tmp = ctx.store.temp_dir(&volume)?;
    fetch::write_manifest(tmp.path(), bytes)?;
    let all: Vec<PeerId> = peers.iter().map(|(p, _)| *p).collect();
    let k = manifest.layout.data_slots();
    let mut candidates: Vec<(SlotIndex, Vec<PeerId>)> = Vec::new();
    for index in (0..r.slots).map(SlotIndex) {
        let mut from = slot_holders(ctx, r, index).await;
        for p in &all {
            if !from.contains(p) {
                from.push(*p);
            }
        }
        candidates.push((index, from));
    }
    let counter = progress.enter("downloading", k as u64 * manifest.layout.slot_bytes());
    let mut next = candidates.into_iter();
    let mut running = FuturesUnordered::new();
    let mut done = 0;
    let start = |(index, from): (SlotIndex, Vec<PeerId>), counter: Arc<AtomicU64>| {
        let dir = tmp.path().to_path_buf();
        async move {
            let r = fetch::slot(ctx, manifest, dataset, index, &from, &dir, counter).await;
            (index, r)
        }
    };
    for c in next.by_ref().take(k) {
        running.push(start(c, counter.clone()));
    }
    while let Some((index, result)) = running.next().await {
        match result {
            Ok(()) => done += 1,
            Err(e) => {
                tracing::warn!(slot = index.0, err = %e, "slot download failed; using another slot");
                let _ = std::fs::remove_file(tmp.path().join(hoard_dataset::slot_data_file(index)));
                match next.next() {
                    Some(c) => running.push(start(c, counter.clone())),
                    None if running.is_empty() && done < k => {
                        return Err(DownloadError::TooFewSlots {
                            need: k,
                            last: e.to_string(),
                        });
                    }
                    None => {}
                }
            }
        }
    }
    if done < k {
        return Err(DownloadError::TooFewSlots {
            need: k,
            last: "every candidate slot failed".into(),
        });
    }
    let dir = tmp.path().to_path_buf();
    let restore = progress.clone();
    // The swarm's partial output (if any) is dropped: unpack writes its own.
    Restore::discard(&out, manifest);
    let unpacked =
        tokio::task::spawn_blocking(move || hoard_dataset::unpack_verified(&dir, &out, &restore))
            .await??;
    Ok(unpacked)
}
