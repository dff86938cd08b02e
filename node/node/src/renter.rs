//! The client role: pack a dataset, post and pay for its storage request, serve its slots to the
//! hosts that fill them, report each slot's health, and withdraw the refund at the end.

use std::{path::PathBuf, sync::Arc, time::Duration};

use alloy::primitives::{B256, U256};
use hoard_chain::{B256Ext as _, RequestParams, RequestState, SlotState};
use serde::{Deserialize, Serialize};

use crate::{
    jobs::JobProgress,
    node::Ctx,
    store::{DatasetRecord, ProofOutcome},
    sync::short,
};

/// What `hoard put` asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PutRequest {
    /// File or folder to store (on the node's machine).
    pub path: PathBuf,
    /// Data slots (k).
    pub data_slots: u16,
    /// Parity slots (m): the slots that may be lost.
    pub parity_slots: u16,
    /// Seconds of storage.
    pub duration: u64,
    /// Seconds hosts have to fill every slot.
    pub expiry: u64,
    /// Token base units per byte per second.
    pub price_per_byte_per_second: U256,
    /// Collateral hosts put up, token base units per byte.
    pub collateral_per_byte: U256,
    /// A proof is required in one period of this many, on average.
    pub proof_probability: u64,
    /// Cells sampled per proof.
    pub samples: u16,
}

pub(crate) async fn run(ctx: Arc<Ctx>) {
    // Provider records expire: re-announce what this node serves now and then.
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Ok(datasets) = ctx.store.datasets() {
            for (id, _) in datasets {
                let _ = ctx.net.start_providing(id.0).await;
            }
        }
    }
}

/// Packs and posts a dataset as job `job`.
pub(crate) async fn put(ctx: Arc<Ctx>, job: String, req: PutRequest) -> anyhow::Result<()> {
    anyhow::ensure!(
        req.path.exists(),
        "{} does not exist on the node's machine",
        req.path.display()
    );
    let volume = ctx.store.roomiest_volume();
    let tmp = ctx.store.temp_dir(&volume)?;
    let out = tmp.path().join("packed");
    let progress = JobProgress {
        jobs: ctx.clone(),
        id: job.clone(),
        counter: std::sync::Mutex::default(),
    };
    let (k, m) = (usize::from(req.data_slots), usize::from(req.parity_slots));
    let path = req.path.clone();
    let out2 = out.clone();
    let packed =
        tokio::task::spawn_blocking(move || hoard_dataset::pack(&path, &out2, k, m, &progress))
            .await??;
    let id = B256::from(packed.id.0);
    let dir = ctx.store.dataset_dir(&volume, &id);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::rename(&out, &dir)?;
    let mut record = DatasetRecord {
        dir: dir.clone(),
        request_id: None,
    };
    ctx.store.put_dataset(&id, &record)?;
    ctx.store.flush().await?;
    for s in 0..packed.manifest.layout.slots() {
        ctx.serving.add(id.0, s as u16, dir.clone());
    }
    let _ = ctx.net.start_providing(id.0).await;
    ctx.jobs
        .set_result(&job, serde_json::json!({ "dataset": id }));

    ctx.jobs.phase(&job, "requesting storage", 1);
    let layout = packed.manifest.layout;
    let params = RequestParams {
        datasetRoot: packed.manifest.root.to_b256(),
        manifestId: id,
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
    };
    let (request_id, tx) = ctx.chain.request_storage(params.clone()).await?;
    record.request_id = Some(request_id);
    ctx.store.put_dataset(&id, &record)?;
    ctx.store.flush().await?;
    tracing::info!(dataset = %short(&id), request = %short(&request_id), tx = %tx.hash, "storage requested");
    ctx.jobs.set_result(
        &job,
        serde_json::json!({ "dataset": id, "request": request_id, "tx": tx.hash }),
    );

    // Serve until every slot is filled (or the request ends).
    let slots = u64::from(params.slots);
    let counter = ctx.jobs.phase(&job, "waiting for hosts", slots);
    loop {
        let state = ctx
            .chain
            .request_state(request_id)
            .await
            .unwrap_or(RequestState::None);
        let mut filled = 0;
        for i in 0..params.slots {
            if ctx
                .chain
                .slot_state(hoard_chain::slot_id(request_id, u64::from(i)))
                .await
                .ok()
                == Some(SlotState::Filled)
            {
                filled += 1;
            }
        }
        counter.store(filled, std::sync::atomic::Ordering::Relaxed);
        if state == RequestState::Started && filled == slots {
            return Ok(());
        }
        if !matches!(state, RequestState::New | RequestState::Started) {
            anyhow::bail!("the request ended before every slot was filled (state {state})");
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => anyhow::bail!("node shutting down"),
            _ = tokio::time::sleep(ctx.config.chain.poll_interval()) => {}
        }
    }
}

/// One slot of a request, as `hoard status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotStatus {
    /// Index.
    pub index: u16,
    /// Slot id.
    pub slot_id: B256,
    /// `free`, `filled`, `repair`, `finished`, `failed`, `cancelled`, `paid`.
    pub state: String,
    /// Current host.
    pub host: Option<alloy::primitives::Address>,
    /// Proofs marked missing against the current host.
    pub missed_proofs: u64,
    /// Proofs this node recorded (when it is the host).
    pub proofs_recorded: usize,
}

/// A request as `hoard status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestStatus {
    /// Dataset id.
    pub dataset: B256,
    /// Request id.
    pub request: B256,
    /// `new`, `started`, `cancelled`, `finished`, `failed`.
    pub state: String,
    /// Slots needed to rebuild (k).
    pub needed: u16,
    /// Slots.
    pub slots: Vec<SlotStatus>,
    /// Unix time the request ends.
    pub ends_at: u64,
    /// Current period.
    pub period: u64,
}

/// Status of every request for `dataset` (a dataset id or a request id).
pub(crate) async fn status(ctx: &Ctx, id: B256) -> anyhow::Result<Vec<RequestStatus>> {
    crate::sync::wait_synced(ctx, Duration::from_secs(60)).await?;
    let mut requests = ctx.store.requests_for_manifest(&id)?;
    if requests.is_empty()
        && let Some(r) = ctx.store.request(&id)?
    {
        requests.push(r);
    }
    anyhow::ensure!(!requests.is_empty(), "no storage request known for {id}");
    let mut out = Vec::new();
    for r in requests {
        let state = ctx.chain.request_state(r.id).await?;
        let mut slots = Vec::new();
        for i in 0..r.slots {
            let sid = hoard_chain::slot_id(r.id, u64::from(i));
            let info = ctx.chain.get_slot(sid).await?;
            let filled = info.host != alloy::primitives::Address::ZERO;
            slots.push(SlotStatus {
                index: i,
                slot_id: sid,
                state: SlotState::try_from(info.state)
                    .map_or_else(|_| "?".into(), |s| s.to_string().to_lowercase()),
                host: filled.then_some(info.host),
                missed_proofs: u64::from(info.missedProofs),
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
