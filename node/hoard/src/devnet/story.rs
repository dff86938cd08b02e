//! The story of one dataset, told through the renter's REST API and the chain: the sample is
//! put ([`World::put`]), the slots fill, each period's proofs are counted from the chain and the
//! hosts' earnings read from their APIs ([`World::watch`]), then the dataset is fetched back
//! through the renter — which downloads from the hosts, never from its own copy — and checked
//! byte for byte ([`World::fetch`]).

use std::{
    collections::BTreeMap,
    fs,
    path::Path,
    time::{Duration, Instant},
};

use alloy::primitives::{Address, U256};
use anyhow::{anyhow, bail, ensure};
use hoard_api::{DownloadRequest, PutRequest};
use hoard_chain::{Chain, ProofStatus, RequestState, SlotState};
use hoard_prover::{DatasetId, RequestId, SlotId, SlotIndex};
use serde::{Deserialize, Serialize};

use super::{
    Plan, Story, mib,
    network::{RunningNode, check_dashboards},
    procs::{Kind, Procs},
    rel, remove_any,
    sample::{compare_trees, ensure_sample},
    short_addr, tokens,
};

/// Price of the sample's storage, token base units per byte per second: big enough that the
/// hosts' earnings read as tokens within a few periods.
const PRICE: u64 = 1_000_000_000;
/// Collateral per byte (100 seconds of pay, the ratio of the lifecycle test).
const COLLATERAL: u64 = 100 * PRICE;
/// Seconds of storage bought: outlives any devnet session.
const DURATION: u64 = 24 * 3600;
/// Cells sampled per proof.
const SAMPLES: u16 = 8;
/// Whole proof periods watched before the fetch.
const PROOF_PERIODS: u64 = 3;

/// What the story talks to.
pub(super) struct World<'a> {
    pub(super) plan: &'a Plan,
    pub(super) story: &'a Story,
    /// A read-only chain client.
    pub(super) chain: Chain,
    /// The renter first, then the hosts.
    pub(super) nodes: Vec<RunningNode>,
}

/// What `DIR/story.json` remembers between runs.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    dataset: DatasetId,
    request: RequestId,
}

/// What the story last said about a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlotSeen {
    state: SlotState,
    host: Address,
}

impl World<'_> {
    fn renter(&self) -> &RunningNode {
        &self.nodes[0]
    }

    fn name_of(&self, account: Address) -> String {
        self.nodes
            .iter()
            .find(|n| n.address == account)
            .map_or_else(|| short_addr(account), |n| n.spec.name.clone())
    }

    /// Tells the whole story; returns after the verified fetch with `--once`, else never.
    pub(super) async fn run(&self, procs: &mut Procs, root: Option<&Path>) -> anyhow::Result<()> {
        let (story, plan) = (self.story, self.plan);
        let accounts: Vec<Address> = self.nodes.iter().map(|n| n.address).collect();
        eventually(
            Duration::from_secs(90),
            "every node to announce itself on chain",
            || async {
                let announced: Vec<Address> =
                    self.chain.hosts().await?.into_iter().map(|h| h.0).collect();
                Ok(accounts.iter().all(|a| announced.contains(a)).then_some(()))
            },
        )
        .await?;
        story.say(format!(
            "all {} nodes announced their peer ids and addresses on chain",
            self.nodes.len()
        ));

        let sample = plan.path("sample");
        let (files, bytes) = ensure_sample(plan).await?;
        story.say(format!(
            "sample dataset: {} ({} in {files} files, deterministic content)",
            rel(&sample),
            mib(bytes)
        ));

        let saved = self.resumable().await?;
        let (dataset, request) = match saved {
            Some(s) => {
                story.say(format!(
                    "dataset {} (request {}) is still stored by its hosts: watching it",
                    s.dataset.short(),
                    s.request.short()
                ));
                (s.dataset, s.request)
            }
            None => self.put(&sample).await?,
        };
        self.show_slots(request).await?;

        self.watch(procs, dataset, request, root).await
    }

    /// The dataset of a previous run, if its request still runs with every slot filled.
    async fn resumable(&self) -> anyhow::Result<Option<Saved>> {
        let path = self.plan.path("story.json");
        let Ok(text) = fs::read_to_string(&path) else {
            return Ok(None);
        };
        let Ok(saved) = serde_json::from_str::<Saved>(&text) else {
            return Ok(None);
        };
        if self.chain.request_state(saved.request).await? != RequestState::Started {
            return Ok(None);
        }
        Ok(Some(saved))
    }

    /// Puts the sample through the renter and follows the slots filling.
    async fn put(&self, sample: &Path) -> anyhow::Result<(DatasetId, RequestId)> {
        let (story, plan) = (self.story, self.plan);
        let expiry = 120 + plan.size_mib;
        let req = PutRequest {
            path: sample.to_path_buf(),
            data_slots: plan.data_slots,
            parity_slots: plan.parity_slots,
            duration: DURATION,
            expiry,
            price_per_byte_per_second: U256::from(PRICE),
            collateral_per_byte: U256::from(COLLATERAL),
            proof_probability: 1,
            samples: SAMPLES,
            scheme: plan.scheme,
            new_request: false,
        };
        story.say(format!(
            "putting the sample through the renter: {}+{} slots (any {} rebuild it), a proof \
             of every slot each period ({} scheme), {} h of storage",
            plan.data_slots,
            plan.parity_slots,
            plan.data_slots,
            plan.scheme,
            DURATION / 3600
        ));
        let renter = &self.renter().api;
        let job = renter.put(&req).await?.job;
        let deadline = Instant::now() + Duration::from_secs(expiry + 120);
        let (mut phase, mut ids, mut filled) = (String::new(), None, BTreeMap::new());
        loop {
            let s = renter.job(&job).await?;
            if s.phase != phase && !s.finished {
                phase = s.phase.clone();
                story.say(format!("renter: {phase}"));
            }
            if ids.is_none()
                && let (Ok(d), Ok(r)) = (
                    serde_json::from_value::<DatasetId>(s.result["dataset"].clone()),
                    serde_json::from_value::<RequestId>(s.result["request"].clone()),
                )
            {
                ids = Some((d, r));
                let info = self.chain.get_request(r).await?;
                let slot_size = info.params.slotSize;
                let slots = u64::from(plan.data_slots + plan.parity_slots);
                let period_secs = self.period_secs();
                story.say(format!(
                    "dataset {} requested (request {}): slots of {}, pay {} per period for \
                     all slots, collateral {} per slot",
                    d.short(),
                    r.short(),
                    mib(slot_size),
                    tokens(U256::from(PRICE * slot_size * slots * period_secs)),
                    tokens(U256::from(COLLATERAL) * U256::from(slot_size)),
                ));
                fs::write(
                    self.plan.path("story.json"),
                    serde_json::to_vec_pretty(&Saved {
                        dataset: d,
                        request: r,
                    })?,
                )?;
            }
            if let Some((_, r)) = ids {
                self.report_fills(r, &mut filled).await;
            }
            if s.finished {
                if let Some(e) = s.error {
                    bail!(
                        "the renter's put failed: {e} (see {})",
                        rel(&self.renter().log)
                    );
                }
                let (d, r) = ids.ok_or_else(|| anyhow!("the put finished without ids"))?;
                self.report_fills(r, &mut filled).await;
                return Ok((d, r));
            }
            ensure!(
                Instant::now() < deadline,
                "the put did not finish in time (phase {phase}; see {})",
                rel(&self.renter().log)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Prints each newly filled slot of `request`.
    async fn report_fills(&self, request: RequestId, seen: &mut BTreeMap<SlotIndex, Address>) {
        let Ok(status) = self.renter().api.dataset_status(request).await else {
            return;
        };
        for s in status.iter().flat_map(|r| &r.slots) {
            if let Some(host) = s.host
                && s.state == "filled"
                && seen.get(&s.index) != Some(&host)
            {
                seen.insert(s.index, host);
                self.story.say(format!(
                    "slot {} filled by {} ({})",
                    s.index.0,
                    self.name_of(host),
                    short_addr(host)
                ));
            }
        }
    }

    /// One line with every slot's host.
    async fn show_slots(&self, request: RequestId) -> anyhow::Result<()> {
        let info = self.chain.get_request(request).await?;
        let mut parts = Vec::new();
        for i in 0..info.params.slots {
            let s = self
                .chain
                .get_slot(hoard_prover::slot_id(&request, SlotIndex(i)))
                .await?;
            parts.push(format!("{i}→{}", self.name_of(s.host)));
        }
        self.story
            .say(format!("every slot is filled: {}", parts.join(" ")));
        Ok(())
    }

    fn period_secs(&self) -> u64 {
        self.chain.deployment().period_length * self.plan.block_time
    }

    /// Reports each period; fetches after [`PROOF_PERIODS`] of them. Returns (with `--once`)
    /// after the fetch, else runs until cancelled.
    async fn watch(
        &self,
        procs: &mut Procs,
        dataset: DatasetId,
        request: RequestId,
        root: Option<&Path>,
    ) -> anyhow::Result<()> {
        let (story, plan) = (self.story, self.plan);
        let info = self.chain.get_request(request).await?;
        let slots: Vec<SlotId> = (0..info.params.slots)
            .map(|i| hoard_prover::slot_id(&request, SlotIndex(i)))
            .collect();
        let mut last_fill = 0;
        for s in &slots {
            last_fill = last_fill.max(self.chain.get_slot(*s).await?.filled_period);
        }
        let mut period = self.chain.current_period().await?;
        // The periods counted before the fetch: whole proof periods after every fill.
        let first = (last_fill + 1).max(period);
        let last = first + PROOF_PERIODS - 1;
        story.say(format!(
            "proofs required of every slot each period; watching periods {first}–{last} \
             ({} s each), then fetching",
            self.period_secs()
        ));
        let mut seen = Vec::new();
        for s in &slots {
            let info = self.chain.get_slot(*s).await?;
            seen.push(SlotSeen {
                state: info.state,
                host: info.host,
            });
        }
        let mut tally = Tally::default();
        let mut stall = Stall::default();
        let (mut required, mut accepted, mut fetched) = (0u64, 0u64, false);
        let mut exited = Vec::new();
        loop {
            for (name, status) in procs.exited(Kind::Node) {
                if !exited.contains(&name) {
                    let (tail, log) = procs.tail(Kind::Node, &name, 1);
                    story.say(format!(
                        "{name} exited ({status}): {tail} (log {})",
                        rel(&log)
                    ));
                    ensure!(name != "renter", "the renter node exited ({status})");
                    exited.push(name);
                }
            }
            if let Some(status) = procs.exit_of(Kind::Anvil, "anvil") {
                let (tail, log) = procs.tail(Kind::Anvil, "anvil", 2);
                bail!("anvil exited ({status}): {tail} (log {})", rel(&log));
            }
            // A chain that stops answering (anvil paused, overloaded) is waited for: the nodes
            // and anvil keep running, and the story goes on where it was when it answers again.
            let now = match answer(self.chain.current_period()).await {
                Ok(now) => {
                    stall.answered(story);
                    now
                }
                Err(e) => {
                    stall.silent(story, &e);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            while period < now {
                let (ok, req) =
                    match answer(self.report_period(period, &slots, &mut seen, &mut tally)).await {
                        Ok(r) => r,
                        Err(e) => {
                            stall.silent(story, &e);
                            break;
                        }
                    };
                if (first..=last).contains(&period) {
                    required += req;
                    accepted += ok;
                }
                period += 1;
            }
            if period < now {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            if !fetched && period > last {
                story.say(format!(
                    "{accepted} of {required} required proofs accepted in periods {first}–{last}"
                ));
                self.report_gas().await;
                self.fetch(dataset).await?;
                fetched = true;
                if plan.check_dashboards {
                    check_dashboards(story, plan, root).await?;
                }
                if plan.once {
                    ensure!(
                        accepted == required,
                        "only {accepted} of {required} required proofs were accepted in periods \
                         {first}–{last}; see the hosts' logs in {}",
                        rel(&plan.path("logs"))
                    );
                    return Ok(());
                }
                story.say("running until Ctrl-C (a line per period)");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Prints what changed in the slots and one line for `period` (just ended); returns (proofs
    /// accepted, proofs required) in it.
    async fn report_period(
        &self,
        period: u64,
        slots: &[SlotId],
        seen: &mut [SlotSeen],
        tally: &mut Tally,
    ) -> anyhow::Result<(u64, u64)> {
        let (mut required, mut accepted) = (0u64, 0u64);
        for (i, (s, before)) in slots.iter().zip(seen.iter_mut()).enumerate() {
            let info = self.chain.get_slot(*s).await?;
            let now = SlotSeen {
                state: info.state,
                host: info.host,
            };
            if now != *before {
                self.story.say(match (before.state, now.state) {
                    (SlotState::Filled, SlotState::Repair) => format!(
                        "slot {i}: {} evicted after {} missed proofs (collateral slashed); the \
                         slot waits for a new host",
                        self.name_of(before.host),
                        self.chain.deployment().max_missed
                    ),
                    (_, SlotState::Filled) => {
                        format!("slot {i}: now held by {}", self.name_of(now.host))
                    }
                    (old, new) => format!("slot {i}: {old} → {new}"),
                });
                *before = now;
            }
            // The grace window of the period before has just closed: its marks are final.
            if period > 0 && self.chain.proof_status(*s, period - 1).await? == ProofStatus::Missed {
                tally.missed += 1;
            }
            if now.state != SlotState::Filled || period <= info.filled_period {
                continue;
            }
            let (_, is_required, _) = self.chain.challenge(*s, period).await?;
            if !is_required {
                continue;
            }
            required += 1;
            if self.chain.proof_status(*s, period).await? == ProofStatus::Submitted {
                accepted += 1;
            }
        }
        let mut earned = U256::ZERO;
        for n in self.nodes.iter().filter(|n| n.spec.host) {
            if let Ok(h) = n.api.host_status().await {
                earned += h.earned;
            }
        }
        let proofs = if required == 0 {
            "no proofs due".to_string()
        } else {
            format!("{accepted}/{required} proofs accepted")
        };
        self.story.say(format!(
            "period {period}: {proofs} · {} marked missing so far · hosts earned {} so far",
            tally.missed,
            tokens(earned)
        ));
        Ok((accepted, required))
    }

    /// Says what a slot's proof cost the hosts so far, per scheme, from their metrics: a direct
    /// `submitProof` (one slot each) and a compact batch over its slots.
    async fn report_gas(&self) {
        let (mut direct_gas, mut direct_txs) = (0.0, 0.0);
        let (mut compact_gas, mut compact_batches) = (0.0, 0.0);
        for n in self.nodes.iter().filter(|n| n.spec.host) {
            let text = n.api.metrics().await.unwrap_or_default();
            let m = |series: &str| hoard_api::metric_value(&text, series);
            direct_gas += m("hoard_tx_gas_used_total{method=\"submitProof\"}");
            direct_txs += m("hoard_tx_sent_total{method=\"submitProof\"}");
            compact_gas += m("hoard_compact_gas_per_slot_sum");
            compact_batches += m("hoard_compact_gas_per_slot_count");
        }
        // A compact batch observes its gas over its slots once: `_sum / _count` is the mean
        // over batches of gas per slot.
        let per = |gas: f64, n: f64| match n > 0.0 {
            true => format!("{:.0} gas", gas / n),
            false => "none sent".to_string(),
        };
        self.story.say(format!(
            "gas per slot-proof so far: direct {} ({direct_txs:.0} submitProof), compact {} \
             ({compact_batches:.0} batch proofs)",
            per(direct_gas, direct_txs),
            per(compact_gas, compact_batches),
        ));
    }

    /// Fetches the dataset through the renter (from the hosts) and checks it against the sample.
    async fn fetch(&self, dataset: DatasetId) -> anyhow::Result<()> {
        let (story, plan) = (self.story, self.plan);
        let out = plan.path("fetched");
        remove_any(&out)?;
        story.say(format!(
            "fetching dataset {} back through the renter's API (from the hosts) into {}",
            dataset.short(),
            rel(&out)
        ));
        let started = Instant::now();
        let renter = &self.renter().api;
        let job = renter
            .download(&DownloadRequest {
                dataset,
                out: out.clone(),
                paths: Vec::new(),
            })
            .await?
            .job;
        let timeout = Duration::from_secs(120 + plan.size_mib);
        let status = renter.wait_job(&job, timeout).await?;
        if let Some(e) = status.error {
            bail!("the fetch failed: {e} (see {})", rel(&self.renter().log));
        }
        let secs = started.elapsed().as_secs_f64();
        let sample = plan.path("sample");
        let (files, bytes) = tokio::task::spawn_blocking({
            let out = out.clone();
            move || compare_trees(&sample, &out)
        })
        .await??;
        story.say(format!(
            "fetched {} in {secs:.1} s ({:.1} MiB/s); verified: byte-for-byte identical to {} \
             ({files} files)",
            mib(bytes),
            bytes as f64 / f64::from(1 << 20) / secs.max(1e-3),
            rel(&plan.path("sample"))
        ));
        Ok(())
    }
}

/// How long the story waits for one answer of the chain before it counts it as silent.
const CHAIN_ANSWER: Duration = Duration::from_secs(10);

/// `call`'s outcome, or an error if the chain gives none within [`CHAIN_ANSWER`].
async fn answer<T, E: Into<anyhow::Error>>(
    call: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(CHAIN_ANSWER, call).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(anyhow!("no answer within {} s", CHAIN_ANSWER.as_secs())),
    }
}

/// Tells of a chain that stopped answering: when it starts, every 30 s, and when it ends.
#[derive(Debug, Default)]
struct Stall {
    since: Option<Instant>,
    told: Option<Instant>,
}

impl Stall {
    fn silent(&mut self, story: &Story, e: &anyhow::Error) {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        match self.told {
            None => story.say(format!(
                "the chain is not answering ({e:#}); every node and anvil keep running, waiting \
                 for it"
            )),
            Some(t) if now.duration_since(t) >= Duration::from_secs(30) => story.say(format!(
                "still waiting for the chain ({} s so far)",
                now.duration_since(since).as_secs()
            )),
            Some(_) => return,
        }
        self.told = Some(now);
    }

    fn answered(&mut self, story: &Story) {
        if let Some(since) = self.since.take() {
            story.say(format!(
                "the chain answers again after {} s; carrying on",
                since.elapsed().as_secs()
            ));
        }
        self.told = None;
    }
}

/// Polls `check` every 250 ms until it returns `Some`, failing after `timeout` with `what`.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if Instant::now() >= deadline {
            let why = last
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            bail!(
                "timed out after {}s waiting for {what}{why}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Counts kept across periods.
#[derive(Debug, Default)]
struct Tally {
    /// Proofs marked missing on chain, seen since the story started watching.
    missed: u64,
}
