//! `hoard audit`: spot-check every host of a dataset off chain. Each host gets a fresh random
//! challenge over the libp2p audit protocol ([`AuditRequest::challenge`], the rule both sides
//! use) and must answer with a proof that verifies against the slot root on chain. Costs no gas;
//! proves the data is retrievable now.

use std::time::{Duration, Instant};

use alloy::primitives::Address;
use hoard_api::{AuditOutcome, AuditResult};
use hoard_chain::ChainError;
use hoard_p2p::{AuditRequest, AuditResponse};
use hoard_prover::{DatasetId, Seed, SlotIndex};

use crate::{
    announce::peers_of,
    ctx::{Ctx, NotSynced},
    store::StoreError,
};

/// Samples per audit challenge.
const AUDIT_SAMPLES: u16 = 16;

/// Why an audit could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditError {
    /// No request for this dataset is known.
    #[error("no storage request known for dataset {0} (check the id; is the node synced?)")]
    Unknown(DatasetId),
    #[error(transparent)]
    NotSynced(#[from] NotSynced),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Audits every filled slot of the newest request for `dataset`.
pub(crate) async fn audit(ctx: &Ctx, dataset: DatasetId) -> Result<Vec<AuditResult>, AuditError> {
    ctx.wait_synced(Duration::from_secs(60)).await?;
    let mut requests = ctx.store.requests_for_manifest(&dataset)?;
    requests.sort_by_key(|r| std::cmp::Reverse(r.ends_at));
    let r = requests
        .into_iter()
        .next()
        .ok_or(AuditError::Unknown(dataset))?;
    let mut out = Vec::new();
    for i in (0..r.slots).map(SlotIndex) {
        let slot = ctx.chain.get_slot(hoard_prover::slot_id(&r.id, i)).await?;
        let outcome = |outcome, host, detail: &str, millis| {
            ctx.metrics
                .audit_checks
                .with_label_values(&[label(outcome)])
                .inc();
            AuditResult {
                slot: i,
                host,
                outcome,
                detail: detail.to_string(),
                millis,
            }
        };
        if slot.host == Address::ZERO {
            out.push(outcome(AuditOutcome::Unreachable, None, "no host", 0));
            continue;
        }
        let request = AuditRequest {
            dataset,
            slot: i,
            seed: Seed(rand::random()),
            samples: AUDIT_SAMPLES,
        };
        let started = Instant::now();
        let (result, detail) = match peers_of(&ctx.store, &[slot.host]).first() {
            None => (AuditOutcome::Unreachable, "host not announced".to_string()),
            Some(peer) => match ctx.net.request_audit(*peer, request.clone()).await {
                Ok(AuditResponse::Proof(bytes)) => match request.challenge(r.cell_count) {
                    None => (AuditOutcome::Failed, "the request has no cells".to_string()),
                    Some(challenge) => {
                        match hoard_prover::verify(&slot.slot_root, &challenge, &bytes) {
                            Ok(()) => (
                                AuditOutcome::Ok,
                                format!("{} byte proof verified", bytes.len()),
                            ),
                            Err(e) => (AuditOutcome::Failed, format!("proof does not verify: {e}")),
                        }
                    }
                },
                Ok(AuditResponse::Error(e)) => (AuditOutcome::Failed, e),
                Err(e) => (AuditOutcome::Unreachable, e.to_string()),
            },
        };
        let millis = started.elapsed().as_millis() as u64;
        out.push(outcome(result, Some(slot.host), &detail, millis));
    }
    Ok(out)
}

/// The `outcome` label of `hoard_audit_checks_total`.
fn label(outcome: AuditOutcome) -> &'static str {
    match outcome {
        AuditOutcome::Ok => "ok",
        AuditOutcome::Failed => "failed",
        AuditOutcome::Unreachable => "unreachable",
    }
}
