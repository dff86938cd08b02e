//! The renter role: pack a dataset, post and pay for its storage request, serve its slots to the
//! hosts that fill them, report each slot's health, extend it (`extend`), and withdraw the
//! refund at the end.
//!
//! ```text
//!  RenterHandle::put ─▶ checks (path, node data, k/m) ─▶ job (tracked):
//!      pack (blocking pool) ─▶ store + LocalSlots ─▶ provide (DHT) ─▶ requestStorage
//!      ─▶ serve until every slot is filled
//!  run: re-announce every packed dataset on the DHT every 10 minutes
//! ```

pub(crate) mod extend;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use alloy::primitives::{Address, U256};
use hoard_api::{JobKind, PutRequest, RequestStatus, SlotStatus};
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
        let id = self.jobs.start(JobKind::Put);
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
        let packed = tokio::task::spawn_blocking(move || {
            check_links(&path, &node_dirs)?;
            Ok::<_, PutError>(hoard_dataset::pack(&path, &out2, k, m, &pack_progress)?)
        })
        .await??;
        let id = packed.id;
        let dir = ctx.store.dataset_dir(&volume, &id);
        let io = |source| PutError::Io {
            path: dir.clone(),
            source,
        };
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io)?;
        }
        std::fs::rename(&out, &dir).map_err(io)?;
        let mut record = DatasetRecord {
            dir: dir.clone(),
            request_id: None,
        };
        ctx.store.put_dataset(&id, &record)?;
        ctx.store.flush().await?;
        for s in 0..packed.manifest.layout.slots() {
            self.slots.add(id, SlotIndex(s as u16), dir.clone());
        }
        let _ = ctx.net.start_providing(id).await;
        progress.set_result(serde_json::json!({ "dataset": id }));

        progress.enter("requesting storage", 1);
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
            samples: req.samples,
            scheme: 0,
            compactRoot: Default::default(),
        };
        let (request_id, tx) = ctx.chain.request_storage(params.clone()).await?;
        record.request_id = Some(request_id);
        ctx.store.put_dataset(&id, &record)?;
        ctx.store.flush().await?;
        tracing::info!(dataset = %id.short(), request = %request_id.short(), tx = %tx.hash, "storage requested");
        progress
            .set_result(serde_json::json!({ "dataset": id, "request": request_id, "tx": tx.hash }));

        // Serve until every slot is filled (or the request ends).
        let slots = u64::from(params.slots);
        let counter = progress.enter("waiting for hosts", slots);
        loop {
            let state = ctx
                .chain
                .request_state(request_id)
                .await
                .unwrap_or(RequestState::None);
            let mut filled = 0;
            for i in (0..params.slots).map(SlotIndex) {
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
    };
    (handle, reannounce(ctx))
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
