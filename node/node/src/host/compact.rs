//! The compact scheme on the host (docs/protocol.md §9): the Groth16 keys and their check against
//! the deployed verifiers, the Poseidon check of a fill, and the batch proof scheduler.
//!
//! ```text
//!  start:  Prover::start ─▶ each deployed verifier: slots(), samples(), verifyingKeyHash()
//!          == the hash of this node's cached key? (else StaleKey: the node does not start)
//!  fill:   ready (keys loaded and checked) ─▶ fetch ─▶ check_fill: the manifest's commitments
//!          make the request's compactRoot; the slot's commitment recomputed from the fetched data
//!          (blocking pool) equals the manifest's ─▶ slot-NNN.croots ─▶ fillCompactSlot
//!  head ─▶ run: this host's compact slots due in the period, not proven yet ─▶ batches of at
//!          most `compact.max_batch` (≤ 4 slots: the S = 4 circuit, else S = 32)
//!          ─▶ one batch at a time: witnesses + Groth16 + local verify (blocking pool)
//!          ─▶ submitCompactProof ─▶ record Submitted per slot
//!          a damaged block: left out, Damage::report ─▶ heal repairs it ─▶ proven in a later
//!          batch of the same period (slots under repair are not due meanwhile)
//!          near the deadline: a mined batch still on chain? (reorg) else prove again
//! ```
//!
//! One proof at a time keeps memory to one circuit's (about 4 GiB at S = 32, 0.3 GiB at S = 4).
//! A proof is worth nothing once its period's seed changes (a reorg of the seed block): the
//! chain then reverts it, the scheduler reads the seed again and proves anew while the period
//! lasts.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::primitives::{Address, B256};
use hoard_chain::{ChainError, CompactVerifierInfo, MarketplaceErrors, ProofStatus};
use hoard_compact::{Fr, Keys, Shape, SlotWitness, host_seed, verifying_key_hash};
use hoard_dataset::{DatasetError, Manifest, PackedDataset, SlotProblem};
use hoard_prover::{BLOCK_SIZE, DatasetTree, Hash, Seed, SlotId, SlotIndex};
use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};
use tokio::sync::Mutex;

use super::{Host, heal::Hurt, prove::proof_due};
use crate::{
    compact::{
        CompactError, commit_slot, commitment_word, manifest_commitment, open_tree, write_roots,
    },
    ctx::{Ctx, Head},
    store::{HostSlot, ProofOutcome, RequestRecord, StoreError},
};

/// `RequestParams.scheme` of a compact request (`ProofScheme.Compact`).
pub(crate) const COMPACT_SCHEME: u8 = 1;

/// A deployed verifier and this node's key for its circuit that differ.
#[derive(Debug)]
pub struct StaleKey {
    /// The circuit, e.g. `s4x5`.
    pub shape: String,
    /// The verifier's address.
    pub verifier: Address,
    /// `verifyingKeyHash()` on chain.
    pub deployed: B256,
    /// The hash of this node's key.
    pub ours: B256,
    /// The key cache.
    pub dir: PathBuf,
}

/// Why the compact keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CompactKeyError {
    /// The deployed verifier was made from another key than this node's: every proof of the node
    /// would revert. (Boxed: the error stays small on every `Result` path.)
    #[error(
        "stale verifying key: the deployed {} verifier {} has verifying key hash {}, but this \
         node's key for that circuit hashes to {} (key cache {}); every compact proof would \
         revert — use the keys of this deployment's set-up, or delete the cache if it holds keys \
         of an older circuit",
        .0.shape, .0.verifier, .0.deployed, .0.ours, .0.dir.display()
    )]
    StaleKey(Box<StaleKey>),
    /// A verifier of a circuit this hoard does not have.
    #[error(
        "the deployed compact verifier {verifier} proves {slots} slots of {samples} samples; this \
         hoard has the circuits s4x5 and s32x5 only — upgrade hoard or check the deployment file"
    )]
    UnknownShape {
        /// The verifier's address.
        verifier: Address,
        /// Its `slots()`.
        slots: u64,
        /// Its `samples()`.
        samples: u64,
    },
    /// No deployed verifier takes a batch this large.
    #[error("no deployed compact verifier takes {0} slots")]
    NoVerifier(usize),
    /// Making or reading the keys.
    #[error(transparent)]
    Keys(#[from] hoard_compact::KeyError),
    /// Reading the verifiers.
    #[error("reading the compact verifiers: {0}")]
    Chain(#[from] ChainError),
    /// Locking the key cache (one node generates a key at a time).
    #[error("locking the compact key cache {}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key task died.
    #[error("the key task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Why a compact fill was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CompactFillError {
    /// The keys are not usable: the slot could never be proven.
    #[error(transparent)]
    Keys(#[from] CompactKeyError),
    /// The fetched data.
    #[error(transparent)]
    Data(#[from] CompactError),
    /// The manifest's commitments are not the request's.
    #[error(
        "the manifest's commitments do not make the request's compact root: it is not the dataset \
         the renter requested"
    )]
    WrongRoot,
    /// A compact request on a deployment without verifiers (the contract refuses those).
    #[error("the request is compact but the deployment has no compact verifiers")]
    NoVerifiers,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest's commitments do not make a tree.
    #[error("the manifest's commitments: {0}")]
    Tree(#[from] hoard_prover::TreeError),
    /// The Poseidon task died.
    #[error("the Poseidon task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Why a batch could not be proven.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Keys(#[from] CompactKeyError),
    #[error(transparent)]
    Prove(#[from] hoard_compact::ProveError<SlotProblem>),
    #[error("the proving task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Why one slot's witness could not be built from local data.
#[derive(Debug, thiserror::Error)]
enum WitnessError {
    #[error(transparent)]
    Data(#[from] CompactError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("the slot's files: {0}")]
    Slot(#[from] SlotProblem),
    #[error(transparent)]
    Prove(#[from] hoard_compact::ProveError<SlotProblem>),
}

impl WitnessError {
    /// The block whose bytes do not match its compact block root (or cannot be read): damage a
    /// self-repair from the other slots mends (the data, not the kept roots, is wrong).
    fn damaged_block(&self) -> Option<u64> {
        match self {
            Self::Prove(
                hoard_compact::ProveError::BlockMismatch { block }
                | hoard_compact::ProveError::Read { block, .. },
            ) => Some(*block),
            _ => None,
        }
    }
}

/// The compact metrics (`docs/metrics.md`, "Compact proofs").
#[derive(Debug, Clone)]
pub(crate) struct CompactMetrics {
    /// `hoard_compact_batch_slots`: slots per proof sent.
    batch_slots: Histogram,
    /// `hoard_compact_prove_seconds`: witnesses, proving and local check of one batch.
    prove_seconds: Histogram,
    /// `hoard_compact_gas_per_slot`: a mined batch's gas over its slots.
    gas_per_slot: Histogram,
    /// `hoard_compact_proofs_submitted_total`.
    proofs_submitted: IntCounter,
    /// `hoard_compact_proofs_failed_total`.
    proofs_failed: IntCounter,
}

impl CompactMetrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| -> prometheus::Result<_> {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let counter = |name: &str, help: &str| -> prometheus::Result<_> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(Self {
            batch_slots: histogram(
                "hoard_compact_batch_slots",
                "Slots per compact proof this host sent (one proof per batch).",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
            )?,
            prove_seconds: histogram(
                "hoard_compact_prove_seconds",
                "Seconds to build one compact batch proof (witnesses, Groth16, local check).",
                vec![1.0, 2.5, 5.0, 10.0, 20.0, 35.0, 60.0, 120.0, 300.0],
            )?,
            gas_per_slot: histogram(
                "hoard_compact_gas_per_slot",
                "Gas of a mined compact proof transaction divided by its slots.",
                vec![
                    15e3, 20e3, 25e3, 30e3, 40e3, 60e3, 80e3, 120e3, 250e3, 500e3,
                ],
            )?,
            proofs_submitted: counter(
                "hoard_compact_proofs_submitted_total",
                "Compact batch proofs this host got mined.",
            )?,
            proofs_failed: counter(
                "hoard_compact_proofs_failed_total",
                "Compact batch proofs that could not be built or were refused by the chain.",
            )?,
        })
    }
}

/// The host's compact prover: the deployed verifiers, this node's keys for them (loaded when
/// first needed, then kept), and the metrics.
#[derive(Debug)]
pub(crate) struct Prover {
    dir: PathBuf,
    max_batch: usize,
    /// The deployed verifiers, smallest circuit first.
    verifiers: Vec<(Shape, CompactVerifierInfo)>,
    keys: Mutex<HashMap<usize, Arc<Keys>>>,
    metrics: CompactMetrics,
}

impl Prover {
    /// Reads the deployment's compact verifiers and checks each against this node's key for it
    /// where the key is already cached (a cheap read of the verifying key alone; a key generated
    /// later is checked when it is made). `None` if the deployment has no compact verifiers.
    pub(crate) async fn start(ctx: &Ctx) -> Result<Option<Self>, CompactKeyError> {
        let addresses = ctx.chain.deployment().compact_verifiers();
        if addresses.is_empty() {
            return Ok(None);
        }
        let dir = keys_dir(ctx);
        let mut verifiers = Vec::new();
        for address in addresses {
            let info = ctx.chain.compact_verifier(address).await?;
            let shape = [Shape::SMALL, Shape::LARGE]
                .into_iter()
                .find(|s| s.slots as u64 == info.slots && s.samples as u64 == info.samples)
                .ok_or(CompactKeyError::UnknownShape {
                    verifier: address,
                    slots: info.slots,
                    samples: info.samples,
                })?;
            let cached = {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    Keys::cached_verifying_key(shape, hoard_compact::DEVNET_SEED, &dir)
                })
                .await??
            };
            match cached {
                Some(vk) => check_key(shape, &info, verifying_key_hash(&vk), &dir)?,
                None => tracing::info!(
                    circuit = shape.name(),
                    dir = %dir.display(),
                    "compact keys not generated yet: made (and checked) when first needed"
                ),
            }
            verifiers.push((shape, info));
        }
        verifiers.sort_by_key(|(s, _)| s.slots);
        let largest = verifiers.last().map_or(0, |(s, _)| s.slots);
        Ok(Some(Self {
            dir,
            max_batch: ctx.config.compact.max_batch.clamp(1, largest),
            verifiers,
            keys: Mutex::default(),
            metrics: CompactMetrics::new(&ctx.registry).map_err(|e| {
                CompactKeyError::Chain(ChainError::Other(format!("compact metrics: {e}")))
            })?,
        }))
    }

    /// The smallest deployed circuit that takes `slots` slots (the contract picks the same).
    fn shape_for(&self, slots: usize) -> Result<Shape, CompactKeyError> {
        self.verifiers
            .iter()
            .map(|(s, _)| *s)
            .find(|s| s.slots >= slots)
            .ok_or(CompactKeyError::NoVerifier(slots))
    }

    /// The keys for `shape`, loaded (or generated from the devnet seed) once, under a lock on the
    /// cache so nodes sharing it do not write it together, and checked against the deployed
    /// verifier.
    async fn keys(&self, shape: Shape) -> Result<Arc<Keys>, CompactKeyError> {
        let mut keys = self.keys.lock().await;
        if let Some(k) = keys.get(&shape.slots) {
            return Ok(Arc::clone(k));
        }
        let info = self
            .verifiers
            .iter()
            .find(|(s, _)| *s == shape)
            .map(|(_, i)| *i)
            .ok_or(CompactKeyError::NoVerifier(shape.slots))?;
        let dir = self.dir.clone();
        let started = Instant::now();
        let loaded = tokio::task::spawn_blocking(move || -> Result<Keys, CompactKeyError> {
            let _lock = lock_cache(&dir)?;
            Ok(Keys::load_or_setup(
                shape,
                hoard_compact::DEVNET_SEED,
                &dir,
            )?)
        })
        .await??;
        check_key(shape, &info, verifying_key_hash(loaded.vk()), &self.dir)?;
        tracing::info!(
            circuit = shape.name(),
            secs = started.elapsed().as_secs_f64(),
            "compact keys ready"
        );
        let loaded = Arc::new(loaded);
        keys.insert(shape.slots, Arc::clone(&loaded));
        Ok(loaded)
    }
}

/// Where the keys are cached: `compact.keys_dir`, else `<data_dir>/compact-keys`.
fn keys_dir(ctx: &Ctx) -> PathBuf {
    ctx.config
        .compact
        .keys_dir
        .clone()
        .unwrap_or_else(|| ctx.config.data_dir.join("compact-keys"))
}

/// An exclusive lock on `<dir>/.lock`, held while keys are loaded or generated.
fn lock_cache(dir: &Path) -> Result<std::fs::File, CompactKeyError> {
    let path = dir.join(".lock");
    let err = |source| CompactKeyError::Lock {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| err(e.into()))?;
    Ok(file)
}

/// The deployed verifier `info` of `shape` must hold the key whose hash is `ours`.
fn check_key(
    shape: Shape,
    info: &CompactVerifierInfo,
    ours: [u8; 32],
    dir: &Path,
) -> Result<(), CompactKeyError> {
    if info.verifying_key_hash.0 == ours {
        return Ok(());
    }
    Err(CompactKeyError::StaleKey(Box::new(StaleKey {
        shape: shape.name(),
        verifier: info.address,
        deployed: info.verifying_key_hash,
        ours: B256::from(ours),
        dir: dir.to_path_buf(),
    })))
}

/// Registers the compact metrics and checks the keys (see [`Prover::start`]).
pub(crate) async fn start(ctx: &Ctx) -> Result<Option<Arc<Prover>>, CompactKeyError> {
    Ok(Prover::start(ctx).await?.map(Arc::new))
}

// ---------------------------------------------------------------------------------- fills

/// What a compact fill adds to `fillSlot`: the slot's commitment and its path to the compact
/// root.
#[derive(Debug, Clone)]
pub(super) struct CompactFill {
    pub(super) commitment: Hash,
    pub(super) path: Vec<Hash>,
}

/// Before a compact slot is fetched: the keys that will prove it are loaded and match the
/// deployed verifier (a host that cannot prove a slot must not take it). Nothing for a direct
/// request.
pub(super) async fn ready(host: &Host, r: &RequestRecord) -> Result<(), CompactFillError> {
    if host.ctx.store.compact_root(&r.id)?.is_none() {
        return Ok(());
    }
    let prover = host.compact.as_ref().ok_or(CompactFillError::NoVerifiers)?;
    prover.keys(prover.shape_for(1)?).await?;
    Ok(())
}

/// For a compact request: checks that the manifest's commitments make the request's compact
/// root, recomputes slot `index`'s commitment from the data fetched into `dir` (Poseidon, on the
/// blocking pool), refuses a difference, and keeps the slot's Poseidon block roots in `dir`.
/// `None` for a direct request.
pub(super) async fn check_fill(
    host: &Host,
    r: &RequestRecord,
    manifest: &Manifest,
    index: SlotIndex,
    dir: &Path,
) -> Result<Option<CompactFill>, CompactFillError> {
    let Some(root) = host.ctx.store.compact_root(&r.id)? else {
        return Ok(None);
    };
    if manifest.compact_root() != Some(root) {
        return Err(CompactFillError::WrongRoot);
    }
    let expected = manifest_commitment(manifest, index)?;
    let started = Instant::now();
    let dir = dir.to_path_buf();
    let computed = tokio::task::spawn_blocking(move || -> Result<Hash, CompactError> {
        let (c, roots) = commit_slot(&dir, index, |_| {})?;
        let word = commitment_word(&c);
        if word != expected {
            return Err(CompactError::Mismatch {
                index,
                expected,
                computed: word,
            });
        }
        write_roots(&dir, index, &roots)?;
        Ok(word)
    })
    .await??;
    tracing::info!(
        slot = index.0,
        secs = started.elapsed().as_secs_f64(),
        "slot's Poseidon commitment checked"
    );
    let path = DatasetTree::new(&manifest.commitments)?
        .path(usize::from(index.0))
        .ok_or(CompactError::NotCompact(manifest.format))?;
    Ok(Some(CompactFill {
        commitment: computed,
        path,
    }))
}

// ---------------------------------------------------------------------------------- proofs

/// Whether `r` is a compact request (its slots are proven here, not by `prove.rs`).
pub(super) fn is_compact(ctx: &Ctx, r: &RequestRecord) -> bool {
    ctx.store.compact_root(&r.id).ok().flatten().is_some()
}

/// A slot due in this period, with what its witness needs.
#[derive(Debug, Clone)]
struct Due {
    slot: HostSlot,
    dir: PathBuf,
    blocks: u64,
}

/// The scheduler: each period, this host's compact slots that owe a proof, in batches, one
/// proof at a time (see the module doc).
pub(super) async fn run(host: Arc<Host>) {
    let Some(prover) = host.compact.clone() else {
        return;
    };
    let ctx = &host.ctx;
    let mut head = ctx.head.clone();
    // Periods whose mined batches were checked against the chain near the deadline.
    let mut rechecked: HashSet<u64> = HashSet::new();
    // (slot, period) → failed attempts, so a batch the chain keeps refusing stops being sent.
    let mut attempts: HashMap<(SlotId, u64), u32> = HashMap::new();
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            changed = head.changed() => if changed.is_err() { return },
        }
        let now = *head.borrow_and_update();
        rechecked.retain(|p| *p >= now.period);
        attempts.retain(|(_, p), _| *p >= now.period);
        let seed = match ctx.chain.period_seed(now.period).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(err = %e, period = now.period, "cannot read the period seed");
                continue;
            }
        };
        if now.blocks_left <= ctx.config.host.deadline_margin_blocks && rechecked.insert(now.period)
        {
            recheck_mined(ctx, &now, &seed).await;
        }
        let due = due_slots(&host, &now, &seed, &attempts);
        if due.is_empty() {
            continue;
        }
        for batch in due.chunks(prover.max_batch) {
            if ctx.cancel.is_cancelled() || ctx.head().period != now.period {
                break;
            }
            let span = tracing::info_span!("compact", period = now.period, slots = batch.len());
            let batch_done = tracing::Instrument::instrument(
                prove_batch(&host, &prover, batch, now.period, seed),
                span,
            );
            // A proof takes tens of seconds on the blocking pool and cannot be interrupted:
            // at shutdown the batch is abandoned (the blocking task finishes unobserved, the
            // process does not wait for it). Nothing is lost: a proof sent but not recorded is
            // found by `prove_batch`'s status check after a restart.
            let proven = tokio::select! {
                _ = ctx.cancel.cancelled() => return,
                proven = batch_done => proven,
            };
            if !proven {
                for d in batch {
                    *attempts.entry((d.slot.slot_id, now.period)).or_default() += 1;
                }
            }
        }
    }
}

/// This host's compact slots that owe a proof in `now`'s period and have none recorded (and
/// were not refused too often, and are not waiting for a repair), sorted by slot id.
fn due_slots(
    host: &Host,
    now: &Head,
    seed: &Seed,
    attempts: &HashMap<(SlotId, u64), u32>,
) -> Vec<Due> {
    let ctx = &host.ctx;
    let Ok(slots) = ctx.store.host_slots() else {
        return Vec::new();
    };
    let mut due: Vec<Due> = slots
        .into_iter()
        .filter_map(|slot| {
            let r = ctx.store.request(&slot.request_id).ok().flatten()?;
            if !is_compact(ctx, &r) || !proof_due(&slot, &r, now, seed) {
                return None;
            }
            if attempts
                .get(&(slot.slot_id, now.period))
                .is_some_and(|n| *n >= 3)
                || !host.damage.is_clear(&slot.slot_id)
            {
                return None;
            }
            match ctx.store.proof(&slot.slot_id, now.period) {
                Ok(None) => {}
                _ => return None,
            }
            Some(Due {
                dir: ctx.store.slot_dir(&slot.volume, &slot.slot_id),
                blocks: r.slot_size / BLOCK_SIZE as u64,
                slot,
            })
        })
        .collect();
    due.sort_by_key(|d| d.slot.slot_id.0);
    due
}

/// Near the deadline: every batch mined this period must still be on chain; a reorg may have
/// dropped one, whose slots are then proven again.
async fn recheck_mined(ctx: &Ctx, now: &Head, seed: &Seed) {
    let Ok(slots) = ctx.store.host_slots() else {
        return;
    };
    for slot in slots {
        let Ok(Some(r)) = ctx.store.request(&slot.request_id) else {
            continue;
        };
        if !is_compact(ctx, &r) || !proof_due(&slot, &r, now, seed) {
            continue;
        }
        if !matches!(
            ctx.store.proof(&slot.slot_id, now.period),
            Ok(Some(ProofOutcome::Submitted { .. }))
        ) {
            continue;
        }
        if let Ok(status) = ctx.chain.proof_status(slot.slot_id, now.period).await
            && status != ProofStatus::Submitted
        {
            tracing::warn!(slot = %slot.slot_id.short(), period = now.period, "a mined compact proof is no longer on chain (reorg); proving again");
            let _ = ctx.store.forget_proof(&slot.slot_id, now.period);
        }
    }
}

/// Proves one batch for `period` and sends it; true once it is mined (or nothing is left to
/// prove), false if it should be tried again.
async fn prove_batch(host: &Host, prover: &Prover, batch: &[Due], period: u64, seed: Seed) -> bool {
    let ctx = &host.ctx;
    // Slots already proven (a run killed after sending) or no longer ours drop out: the
    // contract refuses the whole batch for any one of them.
    let mut live = Vec::new();
    for d in batch {
        match ctx.chain.proof_status(d.slot.slot_id, period).await {
            Ok(ProofStatus::None) => live.push(d.clone()),
            Ok(ProofStatus::Submitted) => {
                let mined = ProofOutcome::Submitted {
                    tx: B256::ZERO,
                    block: ctx.head().block,
                };
                let _ = ctx.store.put_proof(&d.slot.slot_id, period, &mined);
            }
            Ok(ProofStatus::Missed) => {
                let _ = ctx.store.put_proof(
                    &d.slot.slot_id,
                    period,
                    &ProofOutcome::Failed("marked missing".into()),
                );
            }
            Err(e) => {
                tracing::warn!(err = %e, "cannot read a proof's status; retrying");
                return false;
            }
        }
    }
    if live.is_empty() {
        return true;
    }
    ctx.metrics.proofs_required.inc_by(live.len() as u64);
    tracing::info!(slots = live.len(), "proving a compact batch");
    let started = Instant::now();
    let built = build(host, prover, &live, period, seed).await;
    prover
        .metrics
        .prove_seconds
        .observe(started.elapsed().as_secs_f64());
    let (proof, proven) = match built {
        Ok(p) => p,
        Err(e) => {
            prover.metrics.proofs_failed.inc();
            ctx.metrics
                .proofs_failed
                .with_label_values(&["local_verify"])
                .inc();
            tracing::error!(err = %e, "cannot build a compact proof");
            return false;
        }
    };
    if proven.is_empty() {
        return true;
    }
    let ids: Vec<SlotId> = proven.iter().map(|d| d.slot.slot_id).collect();
    tracing::info!(
        slots = ids.len(),
        secs = started.elapsed().as_secs_f64(),
        "compact proof built"
    );
    match ctx.chain.submit_compact_proof(period, &ids, proof).await {
        Ok(outcome) => {
            let n = ids.len() as u64;
            prover.metrics.proofs_submitted.inc();
            prover.metrics.batch_slots.observe(n as f64);
            prover
                .metrics
                .gas_per_slot
                .observe(outcome.gas_used as f64 / n as f64);
            ctx.metrics.proofs_submitted.inc_by(n);
            let start = ctx.periods().start(period).unwrap_or(0);
            ctx.metrics
                .proof_latency_blocks
                .observe(outcome.block.saturating_sub(start) as f64);
            let mined = ProofOutcome::Submitted {
                tx: outcome.hash,
                block: outcome.block,
            };
            for id in &ids {
                let _ = ctx.store.put_proof(id, period, &mined);
            }
            let _ = ctx.store.flush().await;
            tracing::info!(
                block = outcome.block,
                gas_per_slot = outcome.gas_used / n,
                "compact proof accepted"
            );
            true
        }
        Err(e) => {
            prover.metrics.proofs_failed.inc();
            let reason = match e.marketplace() {
                _ if e.is_transient() => "io",
                // Verified locally against the seed of `period`: the chain judged it against
                // another (the period ended, or a reorg replaced the seed block). The next head
                // reads the seed again and proves anew.
                Some(
                    MarketplaceErrors::InvalidProof(_) | MarketplaceErrors::NotCurrentPeriod(_),
                ) => "late",
                _ => "revert",
            };
            ctx.metrics.proofs_failed.with_label_values(&[reason]).inc();
            tracing::warn!(err = %e, reason, "compact proof not accepted; trying again while the period lasts");
            tokio::select! {
                _ = ctx.cancel.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            false
        }
    }
}

/// Builds the witnesses of `batch` and proves them, on the blocking pool. A slot whose local
/// data does not give a witness is left out (the others are still proven): a damaged block is
/// reported for self-repair (the slot is due again once repaired), anything else recorded as
/// failed for the period. Returns the proof and the slots it covers, in order.
async fn build(
    host: &Host,
    prover: &Prover,
    batch: &[Due],
    period: u64,
    seed: Seed,
) -> Result<([[u8; 32]; 8], Vec<Due>), BatchError> {
    let ctx = &host.ctx;
    let x0 = host_seed(&seed, &ctx.address().into_array());
    let jobs: Vec<Due> = batch.to_vec();
    let witnesses = tokio::task::spawn_blocking(move || {
        jobs.into_iter()
            .map(|d| {
                let w = witness(&d.dir, d.slot.index, d.blocks, x0);
                (d, w)
            })
            .collect::<Vec<_>>()
    })
    .await?;
    let mut proven = Vec::new();
    let mut slots = Vec::new();
    for (d, w) in witnesses {
        match w {
            Ok(w) => {
                proven.push(d);
                slots.push(w);
            }
            Err(e) => {
                ctx.metrics.integrity_failures.inc();
                tracing::error!(slot = %d.slot.slot_id.short(), err = %e, "cannot build a compact witness from local data");
                if let Some(block) = e.damaged_block()
                    && ctx.config.host.self_repair
                {
                    host.damage.report(d.slot.slot_id, Hurt::blocks([block]));
                    continue;
                }
                let _ = ctx.store.put_proof(
                    &d.slot.slot_id,
                    period,
                    &ProofOutcome::Failed(e.to_string()),
                );
            }
        }
    }
    if slots.is_empty() {
        return Ok(([[0; 32]; 8], proven));
    }
    let keys = prover.keys(prover.shape_for(slots.len())?).await?;
    let proof = tokio::task::spawn_blocking(move || {
        let mut rng = hoard_compact::rand::rngs::OsRng;
        hoard_compact::prove_batch::<SlotProblem>(&keys, x0, slots, &mut rng)
    })
    .await??;
    Ok((proof.0.to_evm(), proven))
}

/// The witness of slot `index` (in its one-slot folder `dir`) for the batch seeded by `x0`: its
/// kept Poseidon roots checked against the manifest's commitment, every block read checked
/// against its Poseidon root. Blocking.
fn witness(dir: &Path, index: SlotIndex, blocks: u64, x0: Fr) -> Result<SlotWitness, WitnessError> {
    let packed = PackedDataset::open(dir)?;
    let expected = manifest_commitment(packed.manifest(), index)?;
    let tree = open_tree(dir, index, blocks, expected)?;
    let files = packed.open_slot(index)?;
    Ok(hoard_compact::slot_witness(
        &tree,
        x0,
        hoard_compact::SAMPLES,
        |b, buf| files.read_blocks(b, &mut buf[..]),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(hash: [u8; 32]) -> CompactVerifierInfo {
        CompactVerifierInfo {
            address: Address::repeat_byte(4),
            slots: 4,
            samples: 5,
            verifying_key_hash: B256::from(hash),
        }
    }

    #[test]
    fn a_verifier_of_another_key_is_a_stale_key() {
        let dir = Path::new("/keys");
        assert!(check_key(Shape::SMALL, &info([1; 32]), [1; 32], dir).is_ok());
        let e = check_key(Shape::SMALL, &info([1; 32]), [2; 32], dir).expect_err("differs");
        let text = e.to_string();
        assert!(
            text.starts_with("stale verifying key") && text.contains("s4x5"),
            "{text}"
        );
        assert!(text.contains(&B256::from([2; 32]).to_string()), "{text}");
    }
}
