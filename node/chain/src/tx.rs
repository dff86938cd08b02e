//! [`TxSender`]: the one task through which every transaction of a signer goes. It owns the
//! nonce, so transactions sent concurrently from clones of a [`crate::Chain`] get consecutive
//! nonces and never collide.
//!
//! ```text
//!  callers ──Job (bounded mpsc, oneshot reply)──▶ actor: [approve first if the allowance is short]
//!                                                        simulate (eth_call) ─ revert? ─▶ reply Revert
//!                                                        estimate gas + margin, fees
//!                                                        sign with the next nonce, broadcast
//!                                                        spawn ▼
//!                                                 receipt task: poll receipt until receipt_timeout,
//!                                                   re-broadcast the same signed bytes if still
//!                                                   pending or dropped, check status ─▶ reply
//! ```
//!
//! Sending is sequential (one nonce at a time); waiting for receipts is concurrent, so many
//! transactions of one signer can land in the same block. A job that needs a token allowance goes
//! out at once when the allowance covers it on top of what the transactions in flight may still
//! spend; otherwise it first waits for them to land, then approves exactly its amount, so its
//! check-then-approve cannot race with another job's spending.
//!
//! Nonces: the actor reads the pending nonce at the start and counts up from there. Whenever it
//! cannot be sure what the node has (a send that failed ambiguously, a receipt timeout, a nonce
//! error, a nonce taken by another sender of the same key), it forgets its nonce and re-reads the
//! pending nonce before the next send. (alloy's cached-nonce filler never resyncs, alloy #2385, so
//! the provider has no fillers at all.) When idle, it compares its nonce with the chain's: a
//! higher chain nonce means another program used the key (re-read it); a lower one means a reorg
//! dropped transactions of ours, which it broadcasts again from its [`Journal`] before going on.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::{
    consensus::Transaction as _,
    eips::Encodable2718,
    network::{EthereumWallet, NetworkTransactionBuilder, ReceiptResponse, TransactionBuilder},
    primitives::{Address, B256, Bytes, U256},
    providers::Provider,
    rpc::types::{TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinSet,
    time::Instant,
};
use tracing::Instrument;

use crate::{
    bindings::HoardTestToken,
    error::{ChainError, NodeRejection},
    rpc::Rpc,
};

/// Jobs waiting for the sender task; callers wait when it is full.
const QUEUE: usize = 256;

/// Times a send is signed again with a re-read nonce after a nonce error.
const NONCE_ATTEMPTS: u32 = 3;

/// Times a transaction whose receipt did not come in time is re-broadcast before giving up.
const MAX_REBROADCASTS: u32 = 2;

/// Receipt polling starts at this interval and doubles up to [`RECEIPT_POLL_MAX`].
const RECEIPT_POLL_MIN: Duration = Duration::from_millis(100);
const RECEIPT_POLL_MAX: Duration = Duration::from_secs(1);

/// Signed transactions kept per nonce for re-injection after a reorg (see [`Journal`]).
const JOURNAL_DEPTH: u64 = 256;

/// The last signed transaction this sender broadcast for each recent nonce.
///
/// A reorg can drop a mined transaction of ours from the chain, and not every node puts it back
/// into its pool (anvil does not): every later transaction then waits behind a nonce gap. So
/// when the sender is idle and the chain's nonce is below its own, and when a receipt does not
/// come in time, the journal's transactions for the nonces in between are broadcast again. They
/// are our own signed bytes for those nonces, so each can execute at most once; only the latest
/// transaction accepted for a nonce is kept, and a transaction the node refused is never
/// recorded.
type Journal = Arc<Mutex<BTreeMap<u64, Bytes>>>;

/// What a receipt task reports when its transaction has landed (or was given up on).
struct Landed {
    /// The nonce must be re-read from the node.
    resync: bool,
    /// The allowance the transaction could spend (reserved while it was in flight).
    spends: Option<Allowance>,
}

/// Settings of the sender.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxSettings {
    pub(crate) chain_id: u64,
    pub(crate) receipt_timeout: Duration,
    pub(crate) gas_margin_percent: u64,
}

/// A token allowance a transaction needs from the sender before it can run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Allowance {
    pub(crate) token: Address,
    pub(crate) spender: Address,
    pub(crate) amount: U256,
}

/// Handle to the sender task of one signer. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct TxSender {
    jobs: mpsc::Sender<Job>,
    address: Address,
}

struct Job {
    method: &'static str,
    tx: TransactionRequest,
    allowance: Option<Allowance>,
    reply: oneshot::Sender<Result<TransactionReceipt, ChainError>>,
}

impl TxSender {
    /// Starts the sender task for `signer`. It runs until every handle is dropped.
    pub(crate) fn spawn(rpc: Rpc, signer: PrivateKeySigner, settings: TxSettings) -> Self {
        let address = signer.address();
        let (jobs, rx) = mpsc::channel(QUEUE);
        let actor = Actor {
            rpc,
            wallet: EthereumWallet::from(signer),
            address,
            settings,
            nonce: None,
            inflight: JoinSet::new(),
            reserved: HashMap::new(),
            journal: Journal::default(),
        };
        let span = tracing::info_span!("tx_sender", %address);
        tokio::spawn(actor.run(rx).instrument(span));
        Self { jobs, address }
    }

    /// The signer's address.
    pub(crate) fn address(&self) -> Address {
        self.address
    }

    /// Sends `tx` (its `to`, `input` and `value`; everything else is filled in) as `method`,
    /// after approving `allowance` if the current allowance is short, and waits for the receipt.
    pub(crate) async fn send(
        &self,
        method: &'static str,
        tx: TransactionRequest,
        allowance: Option<Allowance>,
    ) -> Result<TransactionReceipt, ChainError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ChainError::Other("the transaction sender task has stopped".to_owned());
        self.jobs
            .send(Job {
                method,
                tx,
                allowance,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The sender task's state.
struct Actor {
    rpc: Rpc,
    wallet: EthereumWallet,
    address: Address,
    settings: TxSettings,
    /// Next nonce to use; `None`: read the pending nonce from the node before the next send.
    nonce: Option<u64>,
    /// Receipt waits of sent transactions.
    inflight: JoinSet<Landed>,
    /// Allowance that transactions in flight may still spend, per (token, spender): they have
    /// not lowered the allowance the chain reports yet.
    reserved: HashMap<(Address, Address), U256>,
    journal: Journal,
}

impl Actor {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        loop {
            tokio::select! {
                Some(done) = self.inflight.join_next(), if !self.inflight.is_empty() => {
                    self.settled(done);
                }
                job = jobs.recv() => match job {
                    Some(job) => self.handle(job).await,
                    None => break,
                },
            }
        }
        self.settle_all().await;
        tracing::debug!("transaction sender stopped");
    }

    fn settled(&mut self, done: Result<Landed, tokio::task::JoinError>) {
        match done {
            Ok(landed) => {
                if landed.resync {
                    self.nonce = None;
                }
                if let Some(a) = landed.spends
                    && let Some(r) = self.reserved.get_mut(&(a.token, a.spender))
                {
                    *r = r.saturating_sub(a.amount);
                }
            }
            // A receipt task that panicked leaves us unsure of the nonce as well.
            Err(_) => self.nonce = None,
        }
        if self.inflight.is_empty() {
            self.reserved.clear();
        }
    }

    /// Waits until no transaction of this signer is in flight.
    async fn settle_all(&mut self) {
        while let Some(done) = self.inflight.join_next().await {
            self.settled(done);
        }
    }

    async fn handle(&mut self, job: Job) {
        let Job {
            method,
            tx,
            allowance,
            reply,
        } = job;
        if reply.is_closed() {
            return; // the caller gave up before we started
        }
        if let Some(allowance) = allowance {
            if let Err(e) = self.ensure_allowance(allowance).await {
                let _ = reply.send(Err(e));
                return;
            }
        } else {
            while let Some(done) = self.inflight.try_join_next() {
                self.settled(done);
            }
            if self.inflight.is_empty() {
                self.reconcile().await;
            }
        }
        match self.submit(method, tx).await {
            Ok(sent) => {
                if let Some(a) = allowance {
                    let r = self.reserved.entry((a.token, a.spender)).or_default();
                    *r = r.saturating_add(a.amount);
                }
                self.inflight.spawn(async move {
                    let (result, resync) = sent.wait().await;
                    let _ = reply.send(result);
                    Landed {
                        resync,
                        spends: allowance,
                    }
                });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// With nothing in flight, every transaction we sent is mined, so the chain's nonce must be
    /// ours. If it is lower, a reorg dropped some of them: re-broadcast them from the journal and
    /// wait (up to the receipt timeout) until they are mined again, so later transactions neither
    /// wait behind the gap nor run before them. If it is higher, another program used the key.
    async fn reconcile(&mut self) {
        let Some(ours) = self.nonce else { return };
        let rpc = self.rpc.clone();
        let mined = || async {
            let count = rpc
                .provider
                .get_transaction_count(self.address)
                .latest()
                .into_future();
            rpc.call("eth_getTransactionCount", count).await
        };
        let Ok(mut chain) = mined().await else { return };
        if chain > ours {
            tracing::warn!(
                ours,
                chain,
                "the key was used elsewhere; re-reading the nonce"
            );
            self.nonce = None;
            return;
        }
        if chain == ours {
            return;
        }
        let dropped: Vec<Bytes> = match self.journal.lock() {
            Ok(journal) => journal
                .range(chain..ours)
                .map(|(_, raw)| raw.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        tracing::warn!(
            ours,
            chain,
            dropped = dropped.len(),
            "transactions of ours left the chain (reorg?); re-broadcasting them"
        );
        for raw in &dropped {
            let _ = broadcast(&rpc, raw, alloy::primitives::keccak256(raw)).await;
        }
        let deadline = Instant::now() + self.settings.receipt_timeout;
        while chain < ours && Instant::now() < deadline {
            tokio::time::sleep(RECEIPT_POLL_MAX).await;
            chain = mined().await.unwrap_or(chain);
        }
        if chain != ours {
            tracing::warn!(ours, chain, "nonce gap remains; re-reading the nonce");
            self.nonce = None;
        }
    }

    /// Makes sure `a.amount` of allowance is left for this transaction once the transactions in
    /// flight have spent theirs. If it is, the transaction goes out at once (many fills of one
    /// host can land in one block); if not, the earlier transactions land first, and if the
    /// allowance is still short, exactly `a.amount` is approved and the approval awaited.
    async fn ensure_allowance(&mut self, a: Allowance) -> Result<(), ChainError> {
        if !self.inflight.is_empty() {
            let reserved = self
                .reserved
                .get(&(a.token, a.spender))
                .copied()
                .unwrap_or_default();
            if self.allowance(a).await? >= reserved.saturating_add(a.amount) {
                return Ok(());
            }
        }
        // Earlier transactions of ours may spend allowance: let them land before reading it.
        self.settle_all().await;
        self.reconcile().await;
        if self.allowance(a).await? >= a.amount {
            return Ok(());
        }
        let call = HoardTestToken::approveCall {
            spender: a.spender,
            value: a.amount,
        };
        let tx = TransactionRequest::default()
            .with_to(a.token)
            .with_input(call.abi_encode());
        let sent = self.submit("approve", tx).await?;
        let (result, resync) = sent.wait().await;
        if resync {
            self.nonce = None;
        }
        result.map(drop)
    }

    /// The allowance `a.spender` has from this signer now.
    async fn allowance(&self, a: Allowance) -> Result<U256, ChainError> {
        let token = HoardTestToken::new(a.token, &self.rpc.provider);
        self.rpc
            .retry("allowance", || async {
                token.allowance(self.address, a.spender).call().await
            })
            .await
    }

    /// Simulates, prices, signs and broadcasts `tx`; returns the handle to wait for its receipt.
    async fn submit(
        &mut self,
        method: &'static str,
        tx: TransactionRequest,
    ) -> Result<Sent, ChainError> {
        let rpc = self.rpc.clone();
        let provider = &rpc.provider;
        let tx = tx.with_from(self.address);

        // A revert comes back here, decoded, before any gas is spent.
        let simulated = async {
            rpc.retry(method, || provider.call(tx.clone()).into_future())
                .await?;
            rpc.retry(method, || provider.estimate_gas(tx.clone()).into_future())
                .await
        };
        let estimate = simulated.await.map_err(|e| {
            if matches!(e, ChainError::Revert { .. }) {
                rpc.metrics.tx_reverted.with_label_values(&[method]).inc();
            }
            self.with_account(method, e)
        })?;
        let gas_limit = estimate
            .saturating_add(estimate.saturating_mul(self.settings.gas_margin_percent) / 100);
        let fees = rpc
            .retry("eth_feeHistory", || provider.estimate_eip1559_fees())
            .await?;

        let mut attempt = 1;
        loop {
            let nonce = match self.nonce {
                Some(n) => n,
                None => {
                    let n = rpc
                        .retry("eth_getTransactionCount", || {
                            provider
                                .get_transaction_count(self.address)
                                .pending()
                                .into_future()
                        })
                        .await?;
                    tracing::debug!(nonce = n, "read the pending nonce");
                    self.nonce = Some(n);
                    n
                }
            };
            let signed = tx
                .clone()
                .with_nonce(nonce)
                .with_chain_id(self.settings.chain_id)
                .with_gas_limit(gas_limit)
                .with_max_fee_per_gas(fees.max_fee_per_gas)
                .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas)
                .build(&self.wallet)
                .await
                .map_err(|e| ChainError::Other(format!("cannot sign {method}: {e}")))?;
            let raw = Bytes::from(signed.encoded_2718());
            let hash = *signed.tx_hash();
            match broadcast(&rpc, &raw, hash).await {
                Ok(()) => {
                    self.nonce = Some(nonce.saturating_add(1));
                    if let Ok(mut journal) = self.journal.lock() {
                        journal.insert(nonce, raw.clone());
                        let keep = journal.split_off(&nonce.saturating_sub(JOURNAL_DEPTH));
                        *journal = keep;
                    }
                    rpc.metrics.tx_sent.with_label_values(&[method]).inc();
                    tracing::info!(
                        method,
                        %hash,
                        nonce,
                        gas_limit = signed.gas_limit(),
                        max_fee_per_gas = fees.max_fee_per_gas,
                        "transaction sent"
                    );
                    return Ok(Sent {
                        rpc: self.rpc.clone(),
                        method,
                        hash,
                        nonce,
                        raw,
                        address: self.address,
                        timeout: self.settings.receipt_timeout,
                        journal: self.journal.clone(),
                    });
                }
                Err(Broadcast::NonceTaken(message)) if attempt < NONCE_ATTEMPTS => {
                    tracing::warn!(method, nonce, message, "nonce already used; re-reading it");
                    self.nonce = None;
                    attempt += 1;
                }
                Err(Broadcast::NonceTaken(message)) => {
                    self.nonce = None;
                    return Err(ChainError::Other(format!(
                        "{method}: the node keeps refusing our nonce ({message}) — is another \
                         program sending with the same key?"
                    )));
                }
                Err(Broadcast::Rejected(e)) => {
                    // Refused outright: the nonce was not used.
                    return Err(self.with_account(method, e));
                }
                Err(Broadcast::Unknown(e)) => {
                    // We cannot tell whether the node took it: ask it for the nonce next time.
                    self.nonce = None;
                    return Err(e);
                }
            }
        }
    }

    /// Turns the node's "insufficient funds" into [`ChainError::InsufficientFunds`].
    fn with_account(&self, method: &str, e: ChainError) -> ChainError {
        match e {
            ChainError::Node {
                message,
                kind: NodeRejection::InsufficientFunds,
                ..
            } => ChainError::InsufficientFunds {
                account: self.address,
                method: method.to_owned(),
                message,
            },
            e => e,
        }
    }
}

/// How a broadcast went wrong.
enum Broadcast {
    /// The nonce is used by another transaction (ours was not accepted).
    NonceTaken(String),
    /// The node refused the transaction; it is not in the pool.
    Rejected(ChainError),
    /// We do not know whether the node has it (transport failures after retries).
    Unknown(ChainError),
}

/// Sends signed bytes, retrying transient failures. Sending the same bytes twice is harmless: the
/// node either already has them ("already known") or mined them (then the nonce is "too low" but
/// the hash is known).
async fn broadcast(rpc: &Rpc, raw: &Bytes, hash: B256) -> Result<(), Broadcast> {
    let provider = &rpc.provider;
    let result = rpc
        .retry("eth_sendRawTransaction", || async move {
            provider.send_raw_transaction(raw).await.map(drop)
        })
        .await;
    let e = match result {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let ChainError::Node { message, kind, .. } = &e else {
        return Err(if e.is_transient() {
            Broadcast::Unknown(e)
        } else {
            Broadcast::Rejected(e)
        });
    };
    if *kind == NodeRejection::AlreadyKnown {
        return Ok(());
    }
    if *kind == NodeRejection::NonceTaken {
        // An earlier attempt of ours may have gone through after all.
        let known = rpc
            .retry("eth_getTransactionByHash", || {
                provider.get_transaction_by_hash(hash).into_future()
            })
            .await
            .map_err(Broadcast::Unknown)?;
        return if known.is_some() {
            Ok(())
        } else {
            Err(Broadcast::NonceTaken(message.clone()))
        };
    }
    Err(Broadcast::Rejected(e))
}

/// A broadcast transaction waiting for its receipt.
struct Sent {
    rpc: Rpc,
    method: &'static str,
    hash: B256,
    nonce: u64,
    raw: Bytes,
    address: Address,
    timeout: Duration,
    journal: Journal,
}

impl Sent {
    /// Waits for the receipt; returns it (or why not) and whether the sender must re-read its
    /// nonce.
    async fn wait(self) -> (Result<TransactionReceipt, ChainError>, bool) {
        let (method, hash) = (self.method, self.hash);
        let timeout = || ChainError::ReceiptTimeout {
            method: method.to_owned(),
            hash,
        };
        let mut rebroadcasts = 0;
        loop {
            if let Some(receipt) = self.poll_receipt(Instant::now() + self.timeout).await {
                return (self.check(receipt), false);
            }
            if rebroadcasts == MAX_REBROADCASTS {
                tracing::warn!(method, %hash, nonce = self.nonce, "no receipt; giving up");
                return (Err(timeout()), true);
            }
            rebroadcasts += 1;
            match self.lookup().await {
                Lookup::Mined => {} // the receipt is on its way
                Lookup::Pending | Lookup::Dropped => {
                    self.fill_gap().await;
                    tracing::warn!(method, %hash, nonce = self.nonce, "no receipt yet; re-broadcasting");
                    match broadcast(&self.rpc, &self.raw, hash).await {
                        Ok(()) => {}
                        Err(Broadcast::NonceTaken(_)) => return (Err(timeout()), true),
                        Err(Broadcast::Rejected(e) | Broadcast::Unknown(e)) => {
                            tracing::warn!(method, %hash, err = %e, "re-broadcast failed");
                        }
                    }
                }
                Lookup::Replaced => {
                    tracing::warn!(method, %hash, nonce = self.nonce, "nonce used by another transaction");
                    return (Err(timeout()), true);
                }
                Lookup::Unknown => {} // the node is not answering; keep waiting
            }
        }
    }

    /// Re-broadcasts our journaled transactions for the nonces between the chain's and ours,
    /// in case a reorg dropped them (see [`Journal`]).
    async fn fill_gap(&self) {
        let provider = &self.rpc.provider;
        let count = provider
            .get_transaction_count(self.address)
            .latest()
            .into_future();
        let Ok(mined) = self.rpc.call("eth_getTransactionCount", count).await else {
            return;
        };
        let missing: Vec<(u64, Bytes)> = match self.journal.lock() {
            Ok(journal) => journal
                .range(mined..self.nonce)
                .map(|(n, raw)| (*n, raw.clone()))
                .collect(),
            Err(_) => return,
        };
        for (nonce, raw) in missing {
            let hash = alloy::primitives::keccak256(&raw);
            match broadcast(&self.rpc, &raw, hash).await {
                Ok(()) => {
                    tracing::warn!(nonce, %hash, "re-broadcast an earlier transaction below a nonce gap")
                }
                Err(_) => tracing::debug!(nonce, %hash, "earlier transaction not re-broadcast"),
            }
        }
    }

    /// Polls for the receipt until `deadline`.
    async fn poll_receipt(&self, deadline: Instant) -> Option<TransactionReceipt> {
        let provider = &self.rpc.provider;
        let mut pause = RECEIPT_POLL_MIN;
        loop {
            // Errors here are transient by nature (the node is asked again); they are counted.
            let call = provider.get_transaction_receipt(self.hash).into_future();
            if let Ok(Some(receipt)) = self.rpc.call("eth_getTransactionReceipt", call).await {
                return Some(receipt);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(RECEIPT_POLL_MAX);
        }
    }

    /// What became of a transaction whose receipt did not come in time.
    async fn lookup(&self) -> Lookup {
        let provider = &self.rpc.provider;
        let tx = provider.get_transaction_by_hash(self.hash).into_future();
        match self.rpc.call("eth_getTransactionByHash", tx).await {
            Ok(Some(tx)) if tx.block_number.is_some() => Lookup::Mined,
            Ok(Some(_)) => Lookup::Pending,
            Ok(None) => {
                // Unknown to the node: either our nonce is still free (dropped from the pool) or
                // another transaction was mined with it.
                let count = provider
                    .get_transaction_count(self.address)
                    .latest()
                    .into_future();
                match self.rpc.call("eth_getTransactionCount", count).await {
                    Ok(mined) if mined > self.nonce => Lookup::Replaced,
                    Ok(_) => Lookup::Dropped,
                    Err(_) => Lookup::Unknown,
                }
            }
            Err(_) => Lookup::Unknown,
        }
    }

    fn check(&self, receipt: TransactionReceipt) -> Result<TransactionReceipt, ChainError> {
        let metrics = &self.rpc.metrics;
        metrics
            .tx_gas_used
            .with_label_values(&[self.method])
            .inc_by(receipt.gas_used());
        let block = receipt.block_number.unwrap_or_default();
        if receipt.status() {
            tracing::info!(method = self.method, hash = %self.hash, block, gas_used = receipt.gas_used(), "transaction mined");
            Ok(receipt)
        } else {
            metrics.tx_reverted.with_label_values(&[self.method]).inc();
            tracing::warn!(method = self.method, hash = %self.hash, block, "transaction reverted on chain");
            Err(ChainError::Reverted {
                method: self.method.to_owned(),
                hash: self.hash,
            })
        }
    }
}

enum Lookup {
    /// In a block.
    Mined,
    /// In the node's pool.
    Pending,
    /// Neither mined nor pending, and its nonce is still free.
    Dropped,
    /// Neither mined nor pending, and its nonce was used by another transaction.
    Replaced,
    /// The node did not answer.
    Unknown,
}
