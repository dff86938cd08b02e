//! The download role, `get`: find the hosts of a dataset, download `k` of its slots from many
//! hosts at once (every block checked by [`hoard_p2p::BlockWithPath::verify`] as it arrives, in
//! `fetch`), and restore the files, decoding only the stripes it must.
//!
//! ```text
//!  DownloadHandle::start ─▶ job (tracked) ─▶ holders (chain + DHT) ─▶ fetch::manifest
//!      ─▶ k × fetch::slot (blocks verified, IN_FLIGHT requests each) ─▶ unpack_verified
//! ```
//!
//! Hosts are found from the chain (each filled slot's host and its announced peer id and
//! addresses) and from Kademlia provider records. Data slots are preferred (no decoding); a slot
//! whose host fails or sends bad data is replaced by the next slot, parity included.

pub(crate) mod fetch;
pub(crate) mod holders;

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use futures::{StreamExt, stream::FuturesUnordered};
use hoard_api::{DownloadRequest, JobKind};
use hoard_dataset::{DatasetError, Unpacked};
use hoard_prover::{DatasetId, SlotIndex};
use libp2p::PeerId;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use self::{fetch::FetchError, holders::slot_holders};
use crate::{
    ctx::{Ctx, NotSynced},
    jobs::{JobProgress, Jobs},
    store::StoreError,
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
    /// Fewer than `k` slots have a reachable host.
    #[error("only {have} of the {need} slots needed have a reachable host")]
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
}

/// Starts downloads as jobs the role owns. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct DownloadHandle {
    ctx: Arc<Ctx>,
    jobs: Jobs,
    tasks: TaskTracker,
}

impl DownloadHandle {
    /// The download role; its jobs run in `tasks`.
    pub(crate) fn new(ctx: Arc<Ctx>, jobs: Jobs, tasks: TaskTracker) -> Self {
        Self { ctx, jobs, tasks }
    }

    /// Checks `req` and starts downloading; returns the job id.
    pub(crate) fn start(&self, req: DownloadRequest) -> Result<String, DownloadError> {
        if req.out.exists()
            && std::fs::read_dir(&req.out)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(DownloadError::OutNotEmpty(req.out));
        }
        let id = self.jobs.start(JobKind::Get);
        let progress = JobProgress::new(self.jobs.clone(), id.clone());
        let (ctx, jobs, job) = (self.ctx.clone(), self.jobs.clone(), id.clone());
        let span = tracing::info_span!("get", job = %id, dataset = %req.dataset.short());
        self.tasks.spawn(
            async move {
                let work = get(&ctx, &progress, req.dataset, req.out);
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

/// Downloads dataset `dataset` to `out`, reporting to `progress`.
async fn get(
    ctx: &Ctx,
    progress: &JobProgress,
    dataset: DatasetId,
    out: PathBuf,
) -> Result<Unpacked, DownloadError> {
    ctx.wait_synced(Duration::from_secs(60)).await?;
    let mut requests = ctx.store.requests_for_manifest(&dataset)?;
    // The newest request (furthest end) is the likeliest to have live hosts.
    requests.sort_by_key(|r| std::cmp::Reverse(r.ends_at));
    let r = requests
        .into_iter()
        .next()
        .ok_or(DownloadError::Unknown(dataset))?;
    let peers = holders::holders(ctx, &r).await;
    progress.enter("finding hosts", u64::from(r.slots));
    let (manifest, bytes) = fetch::manifest(ctx, dataset, &peers).await?;
    let volume = ctx.store.roomiest_volume();
    let tmp = ctx.store.temp_dir(&volume)?;
    fetch::write_manifest(tmp.path(), &bytes)?;

    let k = manifest.layout.data_slots();
    let mut candidates: Vec<(SlotIndex, Vec<PeerId>)> = Vec::new();
    for index in (0..r.slots).map(SlotIndex) {
        let from = slot_holders(ctx, &r, index).await;
        if !from.is_empty() {
            candidates.push((index, from));
        }
    }
    if candidates.len() < k {
        return Err(DownloadError::TooFewHosts {
            have: candidates.len(),
            need: k,
        });
    }
    let counter = progress.enter("downloading", k as u64 * manifest.layout.slot_bytes());
    let mut next = candidates.into_iter();
    let mut running = FuturesUnordered::new();
    let mut done = 0;
    let start = |(index, from): (SlotIndex, Vec<PeerId>), counter: Arc<AtomicU64>| {
        let manifest = manifest.clone();
        let dir = tmp.path().to_path_buf();
        async move {
            let r = fetch::slot(ctx, &manifest, dataset, index, &from, &dir, counter).await;
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
    let unpacked =
        tokio::task::spawn_blocking(move || hoard_dataset::unpack_verified(&dir, &out, &restore))
            .await??;
    Ok(unpacked)
}
