//! The renter role: pack a dataset, post and pay for its storage request, serve its slots to the
//! hosts that fill them, report each slot's health, extend it (`extend`), and withdraw the
//! refund at the end.
//!
//! ```text
//!  RenterHandle::put ─▶ checks (path, node data, k/m) ─▶ a put of this path under way? its job
//!      ─▶ job (tracked): pack (blocking pool) ─▶ [per-dataset lock] store + LocalSlots
//!      ─▶ provide (DHT) ─▶ an open or running request of this dataset? that one : requestStorage
//!      ─▶ serve until every slot is filled
//!  run: re-announce every packed dataset on the DHT every 10 minutes
//! ```
//!
//! **One request per dataset.** A put of a path whose put is still running returns that put's
//! job; a put whose dataset (same content, any path) already has a request of this node that is
//! New or Started returns that request (result `"existing": true`) and waits for its slots like
//! any put. `new_request` skips both. The check and the post hold a lock per dataset, so puts of
//! the same content racing each other post once.

pub(crate) mod extend;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::primitives::{Address, U256};
use hoard_api::{JobKind, PutRequest, RequestStatus, Scheme, SlotStatus};
use hoard_chain::{ChainError, RequestParams, RequestState, SlotState, TxOutcome};
use hoard_dataset::DatasetError;
use hoard_prover::{DatasetId, RequestId, SlotIndex};
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::{
    ctx::{Ctx, NotSynced},
    jobs::{JobProgress, Jobs},
    local_slots::LocalSlots,
    store::{DatasetRecord, ProofOutcome, StoreError},
};

/// Why a put was refused or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PutError {
    /// The path is not there.
    #[error("{} does not exist on the node's machine", .0.display())]
    NotFound(PathBuf),
    /// The path holds the node's own data folder (its keys, token, database) or lies in it.
    #[error(
        "{} {} the node's own data folder {} (its API token, p2p key, database and hosted \
         slots): storing it would publish them — store a folder that neither holds nor lies in it",
        path.display(), if *inside { "lies inside" } else { "contains" }, node_dir.display()
    )]
    NodeData {
        /// The path asked for.
        path: PathBuf,
        /// The node's folder it overlaps.
        node_dir: PathBuf,
        /// Whether `path` is inside `node_dir` (else it contains it).
        inside: bool,
    },
    /// A symbolic link in the dataset leads into the node's own data folder.
    #[error(
        "{} links into the node's own data folder {} (its API token, p2p key, database): storing \
         the dataset would publish it — remove the link",
        link.display(), node_dir.display()
    )]
    LinkToNodeData {
        /// The link.
        link: PathBuf,
        /// The node's folder it leads into.
        node_dir: PathBuf,
    },
    /// k or m is zero.
    #[error("--data-slots and --parity-slots must both be at least 1")]
    Slots,
    /// The request ended before every slot was filled.
    #[error("the request ended before every slot was filled (state {0})")]
    Ended(RequestState),
    /// The node is stopping.
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The compact scheme's Poseidon commitments (e.g. slots over 1 GiB).
    #[error("committing the slots for the compact scheme: {0}")]
    Compact(#[from] crate::compact::CompactError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Moving the packed folder into place failed.
    #[error("moving the packed dataset to {}: {source}", path.display())]
    Io {
        /// Where it was going.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The pack task died.
    #[error("the pack task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Why `hoard status` has no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StatusError {
    /// Neither a dataset nor a request this node knows.
    #[error("no storage request known for {0}")]
    Unknown(String),
    #[error(transparent)]
    NotSynced(#[from] NotSynced),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reaches the renter role: puts, status, extensions, refunds. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct RenterHandle {
    ctx: Arc<Ctx>,
    slots: LocalSlots,
    jobs: Jobs,
    tasks: TaskTracker,
    /// Puts under way, by the path they store (resolved): their job ids.
    putting: Arc<Mutex<HashMap<PathBuf, String>>>,
    /// One lock per dataset put since the start: held from "is there a request?" to its post.
    posting: Arc<Mutex<HashMap<DatasetId, Arc<tokio::sync::Mutex<()>>>>>,
}

impl RenterHandle {
    /// Checks `req` and starts the put job; returns its id.
    pub(crate) fn put(&self, req: PutRequest) -> Result<String, PutError> {
        if req.data_slots == 0 || req.parity_slots == 0 {
            return Err(PutError::Slots);
        }
        if !req.path.exists() {
            return Err(PutError::NotFound(req.path));
        }
        check_not_node_data(&req.path, &self.node_dirs())?;
        let key = std::fs::canonicalize(&req.path).unwrap_or_else(|_| req.path.clone());
        let id = {
            let mut putting = lock(&self.putting);
            if !req.new_request
                && let Some(job) = putting.get(&key)
                && self.jobs.get(job).is_some_and(|s| !s.finished)
            {
                tracing::info!(path = %key.display(), %job, "a put of this path is under way; returning its job");
                return Ok(job.clone());
            }
            let id = self.jobs.start(JobKind::Put);
            putting.insert(key.clone(), id.clone());
            id
        };
        let progress = JobProgress::new(self.jobs.clone(), id.clone());
        let (this, job) = (self.clone(), id.clone());
        let span = tracing::info_span!("put", job = %id);
        self.tasks.spawn(
            async move {
                let r = tokio::select! {
                    _ = this.ctx.cancel.cancelled() => Err(PutError::ShuttingDown),
                    r = this.run_put(&progress, req) => r,
                };
                if let Err(e) = &r {
                    tracing::error!(err = %e, "put failed");
                }
                this.jobs.finish(&job, r.map_err(|e| e.to_string()));
                let mut putting = lock(&this.putting);
                if putting.get(&key) == Some(&job) {
                    putting.remove(&key);
                }
            }
            .instrument(span),
        );
        Ok(id)
    }

    /// The node's own folders, which no dataset may hold, lie in, or link into.
    fn node_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.ctx.config.data_dir.clone()];
        dirs.extend(self.ctx.config.volumes());
        dirs
    }

    /// Packs and posts a dataset, then serves it until every slot is filled.
    async fn run_put(&self, progress: &JobProgress, req: PutRequest) -> Result<(), PutError> {
        let ctx = &self.ctx;
        let volume = ctx.store.roomiest_volume();
        let tmp = ctx.store.temp_dir(&volume)?;
        let out = tmp.path().join("packed");
        let (k, m) = (usize::from(req.data_slots), usize::from(req.parity_slots));
        let (path, out2, pack_progress) = (req.path.clone(), out.clone(), progress.clone());
        let node_dirs = self.node_dirs();
        let compact = req.scheme == Scheme::Compact;
        let packed = tokio::task::spawn_blocking(move || {
            check_links(&path, &node_dirs)?;
            let mut packed = hoard_dataset::pack(&path, &out2, k, m, &pack_progress)?;
            if compact {
                // The compact scheme's stage: Poseidon commitments into a format 3 manifest.
                packed.manifest = crate::compact::commit_packed(&out2, &pack_progress)?;
                packed.id = packed.manifest.id();
            }
            Ok::<_, PutError>(packed)
        })
        .await??;
        let id = packed.id;
        // Puts of the same content wait here for each other: one request between them.
        let lock = {
            let mut posting = lock(&self.posting);
            Arc::clone(posting.entry(id).or_default())
        };
        let _one = lock.lock().await;
        // A packed copy already served (an earlier put of the same content) stays: it is the
        // same bytes, and hosts may be fetching from it. This pack is dropped with `tmp`.
        let kept = ctx
            .store
            .dataset(&id)?
            .filter(|d| hoard_dataset::PackedDataset::open(&d.dir).is_ok_and(|p| p.id() == id));
        let mut record = match kept {
            Some(d) => d,
            None => {
                let dir = ctx.store.dataset_dir(&volume, &id);
                let io = |source| PutError::Io {
                    path: dir.clone(),
                    source,
                };
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(io)?;
                }
                std::fs::rename(&out, &dir).map_err(io)?;
                let record = DatasetRecord {
                    dir,
                    request_id: None,
                };
                ctx.store.put_dataset(&id, &record)?;
                ctx.store.flush().await?;
                record
            }
        };
        for s in 0..packed.manifest.layout.slots() {
            self.slots.add(id, SlotIndex(s as u16), record.dir.clone());
        }
        let _ = ctx.net.start_providing(id).await;
        progress.set_result(serde_json::json!({ "dataset": id }));

        progress.enter("requesting storage", 1);
        if !req.new_request
            && let Some(existing) = self.open_request(id, record.request_id).await?
        {
            drop(_one);
            tracing::info!(dataset = %id.short(), request = %existing.short(), "this dataset already has an open request of this node; returning it");
            progress.set_result(
                serde_json::json!({ "dataset": id, "request": existing, "existing": true }),
            );
            return self.serve_until_filled(progress, existing).await;
        }
        let layout = packed.manifest.layout;
        let params = RequestParams {
            datasetRoot: packed.manifest.root.0.into(),
            manifestId: id.0.into(),
            pricePerBytePerSecond: req.price_per_byte_per_second,
            collateralPerByte: req.collateral_per_byte,
            slotSize: layout.slot_bytes(),
            cellCount: layout.slot_bytes() / hoard_prover::CELL_SIZE as u64,
            duration: req.duration,
            expiry: req.expiry,
            proofProbability: req.proof_probability,
            slots: layout.slots() as u16,
            maxSlotLoss: layout.parity_slots() as u16,
            // The compact circuits fix the samples per slot.
            samples: if compact {
                hoard_compact::SAMPLES as u16
            } else {
                req.samples
            },
            scheme: if compact {
                crate::host::COMPACT_SCHEME
            } else {
                0
            },
            compactRoot: packed.manifest.compact_root().unwrap_or_default().0.into(),
        };
        let (request_id, tx) = ctx.chain.request_storage(params.clone()).await?;
        record.request_id = Some(request_id);
        ctx.store.put_dataset(&id, &record)?;
        ctx.store.flush().await?;
        drop(_one);
        tracing::info!(dataset = %id.short(), request = %request_id.short(), tx = %tx.hash, "storage requested");
        progress
            .set_result(serde_json::json!({ "dataset": id, "request": request_id, "tx": tx.hash }));
        self.serve_until_filled(progress, request_id).await
    }

    /// A request of this node for dataset `id` that is still New or Started (open or running):
    /// the one its record names (`recorded`), else any the chain announced for it.
    async fn open_request(
        &self,
        id: DatasetId,
        recorded: Option<RequestId>,
    ) -> Result<Option<RequestId>, PutError> {
        let ctx = &self.ctx;
        let mut candidates: Vec<RequestId> = recorded.into_iter().collect();
        candidates.extend(
            ctx.store
                .requests_for_manifest(&id)?
                .into_iter()
                .filter(|r| r.renter == ctx.address())
                .map(|r| r.id),
        );
        for r in candidates {
            if matches!(
                ctx.chain.request_state(r).await?,
                RequestState::New | RequestState::Started
            ) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Serves until every slot of `request_id` is filled (or the request ends).
    async fn serve_until_filled(
        &self,
        progress: &JobProgress,
        request_id: RequestId,
    ) -> Result<(), PutError> {
        let ctx = &self.ctx;
        let slots = u64::from(ctx.chain.get_request(request_id).await?.params.slots);
        let counter = progress.enter("waiting for hosts", slots);
        loop {
            let state = ctx
                .chain
                .request_state(request_id)
                .await
                .unwrap_or(RequestState::None);
            let mut filled = 0;
            for i in (0..slots as u16).map(SlotIndex) {
                let slot = hoard_prover::slot_id(&request_id, i);
                if ctx.chain.slot_state(slot).await.ok() == Some(SlotState::Filled) {
                    filled += 1;
                }
            }
            counter.store(filled, std::sync::atomic::Ordering::Relaxed);
            if state == RequestState::Started && filled == slots {
                return Ok(());
            }
            if !matches!(state, RequestState::New | RequestState::Started) {
                return Err(PutError::Ended(state));
            }
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Err(PutError::ShuttingDown),
                _ = tokio::time::sleep(ctx.config.chain.poll_interval()) => {}
            }
        }
    }

    /// Status of every request for `id` (a dataset id or a request id).
    pub(crate) async fn status(&self, id: [u8; 32]) -> Result<Vec<RequestStatus>, StatusError> {
        let ctx = &self.ctx;
        ctx.wait_synced(Duration::from_secs(60)).await?;
        let mut requests = ctx.store.requests_for_manifest(&DatasetId(id))?;
        if requests.is_empty()
            && let Some(r) = ctx.store.request(&RequestId(id))?
        {
            requests.push(r);
        }
        if requests.is_empty() {
            return Err(StatusError::Unknown(DatasetId(id).to_string()));
        }
        let mut out = Vec::new();
        for r in requests {
            let state = ctx.chain.request_state(r.id).await?;
            let mut slots = Vec::new();
            for i in (0..r.slots).map(SlotIndex) {
                let sid = hoard_prover::slot_id(&r.id, i);
                let info = ctx.chain.get_slot(sid).await?;
                let filled = info.host != Address::ZERO;
                slots.push(SlotStatus {
                    index: i,
                    slot_id: sid,
                    state: info.state.to_string().to_lowercase(),
                    host: filled.then_some(info.host),
                    missed_proofs: info.missed_proofs,
                    proofs_recorded: ctx
                        .store
                        .proofs_of(&sid)?
                        .values()
                        .filter(|p| matches!(p, ProofOutcome::Submitted { .. }))
                        .count(),
                });
            }
            out.push(RequestStatus {
                dataset: r.manifest_id,
                request: r.id,
                state: state.to_string().to_lowercase(),
                needed: r.slots - r.max_slot_loss,
                slots,
                ends_at: r.ends_at,
                period: ctx.head().period,
            });
        }
        Ok(out)
    }

    /// Extends the running request behind `id` (a dataset or request id) by `seconds`.
    pub(crate) async fn extend(
        &self,
        id: [u8; 32],
        seconds: u64,
    ) -> Result<hoard_api::ExtendResult, extend::ExtendError> {
        extend::extend(&self.ctx, id, seconds).await
    }

    /// Withdraws the renter's refund of request `id` after its end.
    pub(crate) async fn withdraw(&self, id: RequestId) -> Result<(U256, TxOutcome), ChainError> {
        let refund = self.ctx.chain.renter_refund(id).await.unwrap_or_default();
        let tx = self.ctx.chain.withdraw_request(id).await?;
        Ok((refund, tx))
    }
}

/// Starts the renter role; the returned future is its re-announce task.
pub(crate) fn spawn(
    ctx: Arc<Ctx>,
    slots: LocalSlots,
    jobs: Jobs,
    tasks: TaskTracker,
) -> (RenterHandle, impl Future<Output = ()>) {
    let handle = RenterHandle {
        ctx: ctx.clone(),
        slots,
        jobs,
        tasks,
        putting: Arc::default(),
        posting: Arc::default(),
    };
    (handle, reannounce(ctx))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each update is a single insert or remove: a panic elsewhere cannot leave it half done.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Provider records expire: re-announce what this node serves now and then.
async fn reannounce(ctx: Arc<Ctx>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Ok(datasets) = ctx.store.datasets() {
            for (id, _) in datasets {
                let _ = ctx.net.start_providing(id).await;
            }
        }
    }
}

/// Refuses `path` if it holds one of the node's own folders or lies in one (compared after
/// resolving symbolic links, so another spelling of the same folder is caught too).
fn check_not_node_data(path: &Path, node_dirs: &[PathBuf]) -> Result<(), PutError> {
    let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let target = resolve(path);
    for dir in node_dirs {
        let node_dir = resolve(dir);
        let inside = target.starts_with(&node_dir);
        if inside || node_dir.starts_with(&target) {
            return Err(PutError::NodeData {
                path: path.to_path_buf(),
                node_dir: dir.clone(),
                inside,
            });
        }
    }
    Ok(())
}

/// Refuses a dataset with a link that `pack` would follow into one of the node's folders (links
/// out of a dataset are followed: their targets are published with it).
fn check_links(path: &Path, node_dirs: &[PathBuf]) -> Result<(), PutError> {
    for (link, target) in hoard_dataset::followed_links(path)? {
        check_not_node_data(&target, node_dirs).map_err(|e| match e {
            PutError::NodeData { node_dir, .. } => PutError::LinkToNodeData {
                link: link.clone(),
                node_dir,
            },
            e => e,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_folder_and_anything_holding_it_or_in_it_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("work/.hoard");
        let dataset = root.path().join("work/dataset");
        std::fs::create_dir_all(data.join("data")).expect("node dir");
        std::fs::create_dir_all(&dataset).expect("dataset");
        std::fs::write(data.join("api-token"), "secret").expect("token");
        let dirs = [data.clone()];

        assert!(check_not_node_data(&dataset, &dirs).is_ok());
        for (path, inside) in [
            (root.path().join("work"), false),
            (data.clone(), true),
            (data.join("api-token"), true),
            (data.join("data"), true),
            (dataset.join("../.hoard"), true),
        ] {
            match check_not_node_data(&path, &dirs) {
                Err(PutError::NodeData { inside: i, .. }) => assert_eq!(i, inside, "{path:?}"),
                other => panic!("{path:?}: {other:?}"),
            }
        }
        // A symbolic link to the node folder is the node folder.
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&data, &link).expect("symlink");
        assert!(matches!(
            check_not_node_data(&link, &dirs),
            Err(PutError::NodeData { inside: true, .. })
        ));

        // A link inside the dataset to the token would publish it.
        std::fs::write(dataset.join("weights.bin"), "w").expect("file");
        assert!(check_links(&dataset, &dirs).is_ok());
        std::os::unix::fs::symlink(data.join("api-token"), dataset.join("token")).expect("link");
        match check_links(&dataset, &dirs) {
            Err(PutError::LinkToNodeData { link, .. }) => {
                assert!(link.ends_with("token"), "{link:?}")
            }
            other => panic!("{other:?}"),
        }
    }
}
