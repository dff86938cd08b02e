//! `hoard audit`: spot-check every host of a dataset off chain. Each host gets a fresh random
//! challenge over the libp2p audit protocol and must answer with a proof that verifies against
//! the slot root on chain. Costs no gas; proves the data is retrievable now.

use std::{num::NonZeroU64, sync::Arc, time::Instant};

use alloy::primitives::{Address, B256};
use hoard_p2p::{AuditRequest, AuditResponse};
use hoard_prover::{Challenge, Hash, Seed, SlotId};
use serde::{Deserialize, Serialize};

use crate::{announce::peers_of, node::Ctx};

/// Samples per audit challenge.
const AUDIT_SAMPLES: u16 = 16;

/// One host's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditResult {
    /// Slot index.
    pub slot: u16,
    /// The host.
    pub host: Option<Address>,
    /// `ok`, `failed` (wrong or no proof) or `unreachable`.
    pub outcome: String,
    /// Details.
    pub detail: String,
    /// Round-trip time.
    pub millis: u64,
}

/// Audits every filled slot of the newest request for `dataset`.
pub(crate) async fn audit(ctx: &Arc<Ctx>, dataset: B256) -> anyhow::Result<Vec<AuditResult>> {
    crate::sync::wait_synced(ctx, std::time::Duration::from_secs(60)).await?;
    let mut requests = ctx.store.requests_for_manifest(&dataset)?;
    anyhow::ensure!(
        !requests.is_empty(),
        "no storage request known for dataset {dataset}"
    );
    requests.sort_by_key(|r| std::cmp::Reverse(r.ends_at));
    let r = requests.remove(0);
    let cells = NonZeroU64::new(r.cell_count).ok_or_else(|| anyhow::anyhow!("empty slots"))?;
    let mut out = Vec::new();
    for i in 0..r.slots {
        let slot = ctx
            .chain
            .get_slot(hoard_chain::slot_id(r.id, u64::from(i)))
            .await?;
        if slot.host == Address::ZERO {
            out.push(AuditResult {
                slot: i,
                host: None,
                outcome: "unreachable".into(),
                detail: "no host".into(),
                millis: 0,
            });
            ctx.metrics
                .audit_checks
                .with_label_values(&["unreachable"])
                .inc();
            continue;
        }
        let seed: [u8; 32] = rand::random();
        let request = AuditRequest {
            dataset: dataset.0,
            slot: i,
            seed,
            samples: AUDIT_SAMPLES,
        };
        let started = Instant::now();
        let (outcome, detail) = match peers_of(ctx, &[slot.host]).first() {
            None => ("unreachable", "host not announced".to_string()),
            Some(peer) => match ctx.net.request_audit(*peer, request).await {
                Ok(AuditResponse::Proof(bytes)) => {
                    let challenge = Challenge {
                        seed: Seed(seed),
                        slot_id: SlotId(dataset.0),
                        samples: u32::from(AUDIT_SAMPLES),
                        cell_count: cells,
                    };
                    match hoard_prover::verify(&Hash(slot.slotRoot.0), &challenge, &bytes) {
                        Ok(()) => ("ok", format!("{} byte proof verified", bytes.len())),
                        Err(e) => ("failed", format!("proof does not verify: {e}")),
                    }
                }
                Ok(AuditResponse::Error(e)) => ("failed", e),
                Err(e) => ("unreachable", e.to_string()),
            },
        };
        ctx.metrics.audit_checks.with_label_values(&[outcome]).inc();
        out.push(AuditResult {
            slot: i,
            host: Some(slot.host),
            outcome: outcome.into(),
            detail,
            millis: started.elapsed().as_millis() as u64,
        });
    }
    Ok(out)
}
