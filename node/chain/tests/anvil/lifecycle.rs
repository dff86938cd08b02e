//! A host's life on chain: announce, fill with real proofs, prove, get marked, reporter paid.

use std::{num::NonZeroU64, time::Duration};

use alloy::primitives::{B256, Bytes, U256};
use hoard_chain::{
    B256Ext, Chain, ChainError, DeploySettings, EventFollower, MarketEvent, MarketplaceErrors,
    ProofStatus, RequestParams, RequestState, SlotState, fund,
};
use hoard_prover::{
    BLOCK_SIZE, Challenge, DatasetTree, DirectProof, RequestId, SlotId, SlotIndex, SlotTree,
    block_root,
};
use tokio::time::Instant;

use crate::common::{DEADLINE, Env, poll_until, tokens};

/// Two slots of two 64-KiB blocks each, with their trees.
struct Dataset {
    blocks: Vec<Vec<Box<[u8; BLOCK_SIZE]>>>,
    trees: Vec<SlotTree>,
    dataset: DatasetTree,
}

impl Dataset {
    fn new() -> Self {
        let blocks: Vec<Vec<Box<[u8; BLOCK_SIZE]>>> = (0..2u8)
            .map(|slot| {
                (0..2u8)
                    .map(|b| {
                        let mut block = Box::new([0u8; BLOCK_SIZE]);
                        for (i, byte) in block.iter_mut().enumerate() {
                            *byte = (i as u8).wrapping_mul(31) ^ slot.wrapping_mul(7) ^ b;
                        }
                        block
                    })
                    .collect()
            })
            .collect();
        let trees: Vec<SlotTree> = blocks
            .iter()
            .map(|slot| {
                let roots: Vec<_> = slot.iter().map(|b| block_root(b)).collect();
                SlotTree::from_block_roots(&roots).expect("slot tree")
            })
            .collect();
        let roots: Vec<_> = trees.iter().map(SlotTree::root).collect();
        let dataset = DatasetTree::new(&roots).expect("dataset tree");
        Self {
            blocks,
            trees,
            dataset,
        }
    }

    fn params(&self) -> RequestParams {
        RequestParams {
            datasetRoot: self.dataset.root().to_b256(),
            manifestId: B256::repeat_byte(0x33),
            pricePerBytePerSecond: U256::from(1),
            collateralPerByte: U256::from(1),
            slotSize: 2 * BLOCK_SIZE as u64,
            cellCount: 512,
            duration: 3600,
            expiry: 600,
            proofProbability: 1,
            slots: 2,
            maxSlotLoss: 1,
            samples: 4,
            scheme: 0,
            compactRoot: B256::ZERO,
        }
    }

    /// The proof of `slot` for `period`, checked against the contract's view of the challenge.
    async fn proof(&self, chain: &Chain, slot_id: SlotId, slot: usize, period: u64) -> Bytes {
        let (seed, required, indices) = chain.challenge(slot_id, period).await.expect("challenge");
        assert!(required, "proofProbability 1: every period");
        let challenge = Challenge {
            seed,
            slot_id,
            samples: 4,
            cell_count: NonZeroU64::new(512).expect("non-zero"),
        };
        let ours: Vec<u64> = challenge.indices().iter().map(|c| c.0).collect();
        assert_eq!(ours, indices, "prover and contract draw the same samples");
        let proof = DirectProof::create(&self.trees[slot], &challenge, |b, buf| {
            buf.copy_from_slice(&self.blocks[slot][b as usize][..]);
            Ok::<_, std::convert::Infallible>(())
        })
        .expect("prove");
        Bytes::from(proof.to_bytes())
    }
}

/// Runs `attempt` for the current period until it does not fail with `InvalidProof` (the period
/// turned between reading its seed and the transaction's simulation); returns the period used.
async fn in_one_period<F, Fut>(chain: &Chain, mut attempt: F) -> u64
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<hoard_chain::TxOutcome, ChainError>>,
{
    for _ in 0..3 {
        let period = chain.current_period().await.expect("period");
        match attempt(period).await {
            Ok(_) => return period,
            Err(e) if matches!(e.marketplace(), Some(MarketplaceErrors::InvalidProof(_))) => {
                continue;
            }
            Err(e) => panic!("transaction failed: {e}"),
        }
    }
    panic!("the period kept turning")
}

async fn wait_for_period(chain: &Chain, period: u64) {
    let deadline = Instant::now() + DEADLINE;
    while chain.current_period().await.expect("period") < period {
        assert!(Instant::now() < deadline, "period {period} did not come");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn host_fills_proves_and_a_reporter_marks_a_missed_proof() {
    let env = Env::start_with(DeploySettings {
        period_length: 6,
        grace_blocks: 6,
        ..DeploySettings::default()
    })
    .await;
    let renter = env.chain(1).await;
    let host = env.chain(2).await;
    let reporter = env.chain(3).await;
    let host_address = host.address().expect("host");
    let reporter_address = reporter.address().expect("reporter");
    fund(
        &renter,
        &[renter.address().expect("renter"), host_address],
        tokens(10),
    )
    .await
    .expect("fund");

    let peer_id = vec![0x00, 0x24, 0x08, 0x01];
    let addr = vec![0x04, 127, 0, 0, 1, 0x06, 0x10, 0x92];
    host.announce_host(peer_id.clone(), vec![addr.clone()])
        .await
        .expect("announce");
    let hosts = renter.hosts().await.expect("hosts");
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].0, host_address);
    assert_eq!(
        (&hosts[0].1.peer_id, &hosts[0].1.addrs),
        (&peer_id, &vec![addr])
    );

    let data = Dataset::new();
    let (request, _) = renter
        .request_storage(data.params())
        .await
        .expect("request");
    let collateral = host.slot_collateral(request).await.expect("collateral");
    host.token_approve(env.deployment.marketplace, collateral * U256::from(2))
        .await
        .expect("approve ahead");

    let slots = [
        hoard_prover::slot_id(&request, SlotIndex(0)),
        hoard_prover::slot_id(&request, SlotIndex(1)),
    ];
    let mut fill_periods = Vec::new();
    for (i, slot_id) in slots.into_iter().enumerate() {
        let root = data.trees[i].root();
        let path = data.dataset.path(i).expect("path");
        let period = in_one_period(&host, |period| {
            let (host, data, path) = (&host, &data, path.clone());
            async move {
                let proof = data.proof(host, slot_id, i, period).await;
                host.fill_slot(request, SlotIndex(i as u16), root, &path, proof)
                    .await
            }
        })
        .await;
        fill_periods.push(period);
    }
    assert_eq!(
        host.request_state(request).await.expect("state"),
        RequestState::Started
    );
    assert_eq!(
        host.host_slots(host_address).await.expect("host slots"),
        slots
    );
    let info = host.get_slot(slots[0]).await.expect("slot");
    assert_eq!((info.host, info.state), (host_address, SlotState::Filled));
    // Collateral went in, and the approval ahead covered both fills exactly.
    assert_eq!(
        host.token_allowance(host_address, env.deployment.marketplace)
            .await
            .expect("allowance"),
        U256::ZERO
    );

    // In the next period, slot 0 is proven and slot 1 is not.
    let p = fill_periods.iter().max().expect("two fills") + 1;
    wait_for_period(&host, p).await;
    assert!(host.is_proof_required(slots[0]).await.expect("required"));
    let proven_in = in_one_period(&host, |period| {
        let (host, data) = (&host, &data);
        async move {
            let proof = data.proof(host, slots[0], 0, period).await;
            host.submit_proof(slots[0], proof).await
        }
    })
    .await;
    assert!(
        !host.is_proof_required(slots[0]).await.expect("required")
            || host.current_period().await.expect("period") > proven_in
    );
    assert_eq!(
        host.proof_status(slots[0], proven_in)
            .await
            .expect("status"),
        ProofStatus::Submitted
    );

    // Once that period is over, anyone may mark slot 1's missing proof, and is paid for it.
    wait_for_period(&host, proven_in + 1).await;
    let e = reporter
        .mark_proof_missing(slots[0], proven_in)
        .await
        .expect_err("was proven");
    assert!(
        matches!(
            e.marketplace(),
            Some(MarketplaceErrors::ProofWasSubmitted(_))
        ),
        "{e}"
    );
    reporter
        .mark_proof_missing(slots[1], proven_in)
        .await
        .expect("mark");
    assert_eq!(
        reporter
            .proof_status(slots[1], proven_in)
            .await
            .expect("status"),
        ProofStatus::Missed
    );
    let reward = reporter.reward_of(reporter_address).await.expect("reward");
    // W = C · slash · reporter / 10⁸.
    assert_eq!(
        reward,
        collateral * U256::from(1000 * 2500) / U256::from(100_000_000u64)
    );
    reporter.withdraw_reward().await.expect("withdraw reward");
    assert_eq!(
        reporter
            .token_balance(reporter_address)
            .await
            .expect("balance"),
        reward
    );

    host.remove_host().await.expect("remove");
    assert!(renter.hosts().await.expect("hosts").is_empty());

    // The event stream tells the same story.
    let mut follower = EventFollower::new(0);
    let mut cursor = None;
    let polls = poll_until(&mut follower, &renter, &mut cursor, |p| p.caught_up).await;
    let events: Vec<MarketEvent> = polls
        .into_iter()
        .flat_map(|p| p.events)
        .map(|e| e.event)
        .collect();
    let expected = [
        MarketEvent::HostAnnounced {
            host: host_address,
            peer_id: peer_id.clone(),
            addrs: vec![vec![0x04, 127, 0, 0, 1, 0x06, 0x10, 0x92]],
        },
        MarketEvent::SlotFilled {
            request_id: request,
            slot_id: slots[0],
            host: host_address,
            slot_index: SlotIndex(0),
            repair: false,
        },
        MarketEvent::SlotFilled {
            request_id: request,
            slot_id: slots[1],
            host: host_address,
            slot_index: SlotIndex(1),
            repair: false,
        },
        MarketEvent::RequestStarted {
            request_id: request,
        },
        MarketEvent::ProofSubmitted {
            slot_id: slots[0],
            host: host_address,
            period: proven_in,
        },
        MarketEvent::HostRemoved { host: host_address },
    ];
    for e in &expected {
        assert!(events.contains(e), "missing {e:?} in {events:#?}");
    }
    assert!(events.iter().any(|e| matches!(e,
        MarketEvent::ProofMissed { slot_id, period, reporter, reward: r, missed_proofs: 1, .. }
            if *slot_id == slots[1] && *period == proven_in && *reporter == reporter_address && *r == reward)));
    assert!(events.iter().any(|e| matches!(e,
        MarketEvent::Withdrawn { account, request_id, slot_id, amount }
            if *account == reporter_address && *request_id == RequestId::default() && *slot_id == SlotId::default() && *amount == reward)));
    assert!(events.iter().any(|e| matches!(e,
        MarketEvent::StorageRequested { request_id, .. } if *request_id == request)));
}
