//! [`EventFollower`]: the Marketplace's events, in order, from a saved [`Cursor`], surviving
//! reorgs.
//!
//! ```text
//!  node db: Cursor { block, hash } ──▶ poll ──▶ is `block` still `hash`?
//!                                                 no ─▶ walk back through remembered hashes to
//!                                                       the fork (or FALLBACK_DEPTH blocks) ─▶ reorg
//!                                      eth_getLogs(cursor+1 ..= head − confirmations), in ranges
//!                                      ◀── Poll { events, cursor, reorg } ── the node applies the
//!                                          events (idempotently) and stores the new cursor
//! ```
//!
//! Only `eth_getLogs` with block ranges: polling filters end silently when the node forgets
//! them. Each range is read between two looks at its last block's hash, and its first block must
//! link to the cursor, so a reorg during a poll is never mistaken for a consistent range.

use std::collections::VecDeque;

use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::{Filter, Log},
    sol_types::SolEventInterface,
};
use serde::{Deserialize, Serialize};

use hoard_prover::{RequestId, SlotId, SlotIndex};

use crate::{
    bindings::Marketplace::{MarketplaceEvents, RequestParams},
    client::Chain,
    error::ChainError,
};

/// How far back to re-deliver after a reorg whose fork point is unknown (no remembered hash of
/// this chain below the cursor, e.g. right after a restart). Deeper reorgs go unnoticed.
pub const FALLBACK_DEPTH: u64 = 64;

/// Block hashes remembered for finding fork points.
const RECENT: usize = 256;

/// Ranges read per poll, so a long backfill hands events (and a cursor to save) back regularly.
const RANGES_PER_POLL: u32 = 16;

/// One Marketplace event (docs/contracts.md, "For the node").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketEvent {
    /// A renter opened a request and escrowed `escrow` tokens.
    StorageRequested {
        /// Request id.
        request_id: RequestId,
        /// The renter.
        renter: Address,
        /// The request's parameters.
        params: RequestParams,
        /// Tokens escrowed.
        escrow: U256,
        /// Last second at which a slot of the New request can be filled.
        expires_at: u64,
        /// When the request finishes.
        ends_at: u64,
    },
    /// The renter extended a running request: it now ends at `ends_at`.
    RequestExtended {
        /// Request id.
        request_id: RequestId,
        /// Seconds added to the duration.
        extra_seconds: u64,
        /// The new end (unix seconds).
        ends_at: u64,
        /// Tokens the renter paid into escrow for the extra time.
        payment: U256,
    },
    /// A host filled a slot (`repair`: the slot was in Repair).
    SlotFilled {
        /// Request id.
        request_id: RequestId,
        /// Slot id.
        slot_id: SlotId,
        /// The host.
        host: Address,
        /// Slot index in the request.
        slot_index: SlotIndex,
        /// Whether the slot was being repaired.
        repair: bool,
    },
    /// A host proved its slot for `period`.
    ProofSubmitted {
        /// Slot id.
        slot_id: SlotId,
        /// The host.
        host: Address,
        /// The period.
        period: u64,
    },
    /// A host proved the compact slots `slot_ids` for `period` with one proof.
    CompactProofSubmitted {
        /// The host.
        host: Address,
        /// The period.
        period: u64,
        /// The slots proven, in the batch's order.
        slot_ids: Vec<B256>,
    },
    /// `reporter` marked the proof of `period` missing.
    ProofMissed {
        /// Slot id.
        slot_id: SlotId,
        /// The host.
        host: Address,
        /// The period.
        period: u64,
        /// Who marked it.
        reporter: Address,
        /// Collateral slashed.
        slashed: U256,
        /// The reporter's reward.
        reward: U256,
        /// The host's marks on this slot so far.
        missed_proofs: u64,
    },
    /// `host` was evicted; the slot is in Repair.
    SlotFreed {
        /// Request id.
        request_id: RequestId,
        /// Slot id.
        slot_id: SlotId,
        /// The evicted host.
        host: Address,
        /// Slot index in the request.
        slot_index: SlotIndex,
    },
    /// Every slot of the request is filled.
    RequestStarted {
        /// Request id.
        request_id: RequestId,
    },
    /// The request ran its duration (emitted by the first withdrawal after the end).
    RequestFinished {
        /// Request id.
        request_id: RequestId,
    },
    /// The request lost too many slots.
    RequestFailed {
        /// Request id.
        request_id: RequestId,
    },
    /// The request expired unfilled (emitted by the first withdrawal after the expiry).
    RequestCancelled {
        /// Request id.
        request_id: RequestId,
    },
    /// Tokens left the contract: to a host (`slot_id` set), a renter (`slot_id` zero) or a
    /// reporter (both ids zero).
    Withdrawn {
        /// Who was paid.
        account: Address,
        /// Request id (zero for a reporter).
        request_id: RequestId,
        /// Slot id (zero for a renter or a reporter).
        slot_id: SlotId,
        /// Tokens paid.
        amount: U256,
    },
    /// A host announced (or updated) how to reach it.
    HostAnnounced {
        /// The host.
        host: Address,
        /// libp2p peer id bytes.
        peer_id: Vec<u8>,
        /// Multiaddr bytes.
        addrs: Vec<Vec<u8>>,
    },
    /// A host withdrew its announcement.
    HostRemoved {
        /// The host.
        host: Address,
    },
}

/// An event with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEvent {
    /// Block number.
    pub block: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Index of the log in its block.
    pub log_index: u64,
    /// The event.
    pub event: MarketEvent,
}

/// The last block whose events were delivered, and its hash (to notice reorgs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Block number.
    pub block: u64,
    /// Its hash when it was delivered.
    pub hash: B256,
}

/// The result of one [`EventFollower::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    /// New events, in chain order.
    pub events: Vec<ChainEvent>,
    /// Where the next poll starts; save it after applying `events`.
    pub cursor: Cursor,
    /// After a reorg: the first block whose events are delivered again (events of the old
    /// branch from there on may be gone or changed).
    pub reorg: Option<u64>,
    /// Whether the cursor reached head − confirmations (else poll again right away).
    pub caught_up: bool,
}

/// Follows the Marketplace's events with a confirmation depth. Keep one per event stream; it
/// remembers recent block hashes to find fork points.
#[derive(Debug, Clone)]
pub struct EventFollower {
    confirmations: u64,
    max_range: u64,
    /// Blocks delivered and their hashes, oldest first.
    recent: VecDeque<(u64, B256)>,
}

impl EventFollower {
    /// Default blocks per `eth_getLogs` call.
    pub const DEFAULT_MAX_RANGE: u64 = 2000;

    /// A follower delivering blocks once they are `confirmations` deep (0: at the head).
    pub fn new(confirmations: u64) -> Self {
        Self {
            confirmations,
            max_range: Self::DEFAULT_MAX_RANGE,
            recent: VecDeque::new(),
        }
    }

    /// Sets the most blocks per `eth_getLogs` call (at least 1).
    pub fn with_max_range(mut self, max_range: u64) -> Self {
        self.max_range = max_range.max(1);
        self
    }

    /// Delivers the events after `cursor` (after the deployment block's parent when `None`) up
    /// to head − confirmations, and the cursor to save. On a reorg, starts again at the fork.
    pub async fn poll(
        &mut self,
        chain: &Chain,
        cursor: Option<Cursor>,
    ) -> Result<Poll, ChainError> {
        let head = chain.head_block().await?;
        let safe = head.saturating_sub(self.confirmations);
        let (mut cursor, reorg) = match cursor {
            None => (self.start(chain).await?, None),
            Some(c) => match chain.block_hash(c.block).await? {
                Some(hash) if hash == c.hash => (c, None),
                now => {
                    let base = self.find_fork(chain, c).await?;
                    tracing::warn!(
                        cursor = c.block,
                        old = %c.hash,
                        new = ?now,
                        replay_from = base.block.saturating_add(1),
                        "reorg: re-delivering events"
                    );
                    (base, Some(base.block.saturating_add(1)))
                }
            },
        };

        let mut events = Vec::new();
        let mut span = self.max_range;
        let mut ranges = 0;
        while cursor.block < safe && ranges < RANGES_PER_POLL {
            let from = cursor.block + 1;
            let to = safe.min(from.saturating_add(span - 1));
            match self.read_range(chain, cursor, from, to).await {
                Ok(Some((end, logs))) => {
                    events.extend(logs.iter().filter_map(decode));
                    cursor = end;
                    self.remember(end);
                    ranges += 1;
                }
                // The chain changed under us: hand back what is consistent; the next poll checks
                // the cursor and walks back if needed.
                Ok(None) => break,
                // Some providers cap results per call: try a smaller range.
                Err(ChainError::Node { .. }) if span > 1 => span /= 2,
                Err(e) => return Err(e),
            }
        }
        Ok(Poll {
            events,
            cursor,
            reorg,
            caught_up: cursor.block >= safe,
        })
    }

    /// The cursor before the deployment block.
    async fn start(&mut self, chain: &Chain) -> Result<Cursor, ChainError> {
        let block = chain.deployment().deployment_block.saturating_sub(1);
        let hash = chain.block_hash(block).await?.ok_or_else(|| {
            ChainError::Other(format!(
                "the chain has no block {block}, but the Marketplace was deployed after it — \
                 wrong deployment file or a reset chain?"
            ))
        })?;
        Ok(Cursor { block, hash })
    }

    /// Logs of `[from, to]` if that range is consistent and links to `cursor`; `None` if the
    /// chain changed while reading.
    async fn read_range(
        &self,
        chain: &Chain,
        cursor: Cursor,
        from: u64,
        to: u64,
    ) -> Result<Option<(Cursor, Vec<Log>)>, ChainError> {
        let Some(before) = chain.block_hash(to).await? else {
            return Ok(None);
        };
        let parent = chain.parent_hash(from).await?;
        if parent != Some(cursor.hash) {
            return Ok(None);
        }
        let filter = Filter::new()
            .address(chain.deployment().marketplace)
            .from_block(from)
            .to_block(to);
        let provider = chain.provider();
        let logs = chain.rpc("eth_getLogs", provider.get_logs(&filter)).await?;
        if chain.block_hash(to).await? != Some(before) {
            return Ok(None);
        }
        // A log of a block on another branch (a node answering from a stale view) is as bad.
        if logs.iter().any(|log| {
            log.removed || (log.block_number == Some(to) && log.block_hash != Some(before))
        }) {
            return Ok(None);
        }
        Ok(Some((
            Cursor {
                block: to,
                hash: before,
            },
            logs,
        )))
    }

    /// The last block below `cursor` that is still on the chain: the newest remembered block
    /// whose hash matches, else `FALLBACK_DEPTH` blocks back.
    async fn find_fork(&mut self, chain: &Chain, cursor: Cursor) -> Result<Cursor, ChainError> {
        let floor = chain.deployment().deployment_block.saturating_sub(1);
        while let Some(&(block, hash)) = self.recent.back() {
            if block < cursor.block
                && block >= floor
                && chain.block_hash(block).await? == Some(hash)
            {
                return Ok(Cursor { block, hash });
            }
            self.recent.pop_back();
        }
        let block = cursor.block.saturating_sub(FALLBACK_DEPTH).max(floor);
        let hash = chain
            .block_hash(block)
            .await?
            .ok_or_else(|| ChainError::Other(format!("block {block} vanished during a reorg")))?;
        Ok(Cursor { block, hash })
    }

    fn remember(&mut self, c: Cursor) {
        while self
            .recent
            .back()
            .is_some_and(|&(block, _)| block >= c.block)
        {
            self.recent.pop_back();
        }
        self.recent.push_back((c.block, c.hash));
        while self.recent.len() > RECENT {
            self.recent.pop_front();
        }
    }
}

/// Decodes one Marketplace log; logs it cannot read are skipped with an error message (an ABI
/// newer than this client), not fatal: the rest of the stream stays usable.
fn decode(log: &Log) -> Option<ChainEvent> {
    let (Some(block), Some(block_hash), Some(tx_hash), Some(log_index)) = (
        log.block_number,
        log.block_hash,
        log.transaction_hash,
        log.log_index,
    ) else {
        tracing::error!(?log, "log without its block position; skipped");
        return None;
    };
    let event = match MarketplaceEvents::decode_log(&log.inner) {
        Ok(decoded) => convert(decoded.data),
        Err(e) => Err(e.to_string()),
    };
    match event {
        Ok(event) => Some(ChainEvent {
            block,
            block_hash,
            tx_hash,
            log_index,
            event,
        }),
        Err(e) => {
            tracing::error!(block, log_index, %tx_hash, err = %e, "cannot decode a Marketplace log; skipped");
            None
        }
    }
}

fn convert(e: MarketplaceEvents) -> Result<MarketEvent, String> {
    let small =
        |name: &str, v: U256| u64::try_from(v).map_err(|_| format!("{name} {v} exceeds 64 bits"));
    let index = |name: &str, v: U256| {
        u16::try_from(v)
            .map(SlotIndex)
            .map_err(|_| format!("{name} {v} exceeds 16 bits"))
    };
    use MarketplaceEvents as E;
    Ok(match e {
        E::StorageRequested(e) => MarketEvent::StorageRequested {
            request_id: RequestId(e.requestId.0),
            renter: e.renter,
            params: e.params,
            escrow: e.escrow,
            expires_at: e.expiresAt,
            ends_at: e.endsAt,
        },
        E::RequestExtended(e) => MarketEvent::RequestExtended {
            request_id: RequestId(e.requestId.0),
            extra_seconds: small("extraSeconds", e.extraSeconds)?,
            ends_at: e.endsAt,
            payment: e.payment,
        },
        E::SlotFilled(e) => MarketEvent::SlotFilled {
            request_id: RequestId(e.requestId.0),
            slot_id: SlotId(e.slotId.0),
            host: e.host,
            slot_index: index("slotIndex", e.slotIndex)?,
            repair: e.repair,
        },
        E::ProofSubmitted(e) => MarketEvent::ProofSubmitted {
            slot_id: SlotId(e.slotId.0),
            host: e.host,
            period: small("period", e.period)?,
        },
        E::CompactProofSubmitted(e) => MarketEvent::CompactProofSubmitted {
            host: e.host,
            period: small("period", e.period)?,
            slot_ids: e.slotIds,
        },
        E::ProofMissed(e) => MarketEvent::ProofMissed {
            slot_id: SlotId(e.slotId.0),
            host: e.host,
            period: small("period", e.period)?,
            reporter: e.reporter,
            slashed: e.slashed,
            reward: e.reward,
            missed_proofs: small("missedProofs", e.missedProofs)?,
        },
        E::SlotFreed(e) => MarketEvent::SlotFreed {
            request_id: RequestId(e.requestId.0),
            slot_id: SlotId(e.slotId.0),
            host: e.host,
            slot_index: index("slotIndex", e.slotIndex)?,
        },
        E::RequestStarted(e) => MarketEvent::RequestStarted {
            request_id: RequestId(e.requestId.0),
        },
        E::RequestFinished(e) => MarketEvent::RequestFinished {
            request_id: RequestId(e.requestId.0),
        },
        E::RequestFailed(e) => MarketEvent::RequestFailed {
            request_id: RequestId(e.requestId.0),
        },
        E::RequestCancelled(e) => MarketEvent::RequestCancelled {
            request_id: RequestId(e.requestId.0),
        },
        E::Withdrawn(e) => MarketEvent::Withdrawn {
            account: e.account,
            request_id: RequestId(e.requestId.0),
            slot_id: SlotId(e.slotId.0),
            amount: e.amount,
        },
        E::HostAnnounced(e) => MarketEvent::HostAnnounced {
            host: e.host,
            peer_id: e.peerId.to_vec(),
            addrs: e.addrs.into_iter().map(|a| a.to_vec()).collect(),
        },
        E::HostRemoved(e) => MarketEvent::HostRemoved { host: e.host },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remember_keeps_blocks_ascending_and_bounded() {
        let mut f = EventFollower::new(0);
        for b in 0..(RECENT as u64 + 10) {
            f.remember(Cursor {
                block: b,
                hash: B256::with_last_byte(b as u8),
            });
        }
        assert_eq!(f.recent.len(), RECENT);
        assert_eq!(f.recent.front().map(|e| e.0), Some(10));
        // Re-delivery after a reorg replaces the entries from the fork on.
        f.remember(Cursor {
            block: 100,
            hash: B256::repeat_byte(0xaa),
        });
        assert_eq!(f.recent.back(), Some(&(100, B256::repeat_byte(0xaa))));
        assert!(
            f.recent
                .iter()
                .zip(f.recent.iter().skip(1))
                .all(|(a, b)| a.0 < b.0)
        );
    }

    #[test]
    fn cursor_serialises_as_number_and_hex() {
        let c = Cursor {
            block: 7,
            hash: B256::repeat_byte(1),
        };
        let json = serde_json::to_string(&c).expect("serialise");
        assert_eq!(
            json,
            format!(r#"{{"block":7,"hash":"{}"}}"#, B256::repeat_byte(1))
        );
        assert_eq!(serde_json::from_str::<Cursor>(&json).expect("parse"), c);
    }
}
