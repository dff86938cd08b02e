//! Fetching a set of blocks from every source at once: the hosts of the dataset's slots, its
//! renter and other readers (Kademlia providers), each asked for its have-map first.
//!
//! ```text
//!  fetch(plan) ─▶ units in the local cache: read, deliver (hits)
//!             ─▶ sources: holders (chain + DHT) ─▶ Have each ─▶ have-maps
//!             ─▶ loop: for each source with room (fastest first): pick a unit it has
//!                        (rarest first, random start per slot; hosts skip units a reader has)
//!                      ─▶ /hoard/block/1 ─▶ verify on the blocking pool ─▶ cache + sink
//!                      every 1 s: readers' have-maps again; every 5 s: new providers
//!                      nothing pending: endgame (a second copy of units in flight)
//! ```
//!
//! A *unit* is one request: a run of wanted blocks of one slot inside an aligned window of
//! `MAX_BLOCKS_PER_REQUEST` blocks. A source that sends a block failing its path is penalised
//! (the existing bans) and dropped; one that keeps refusing or timing out is dropped after
//! `MAX_STRIKES`; one that refuses a unit its have-map claimed is not asked for it again. Its
//! unit goes back to the pending set for the others.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use hoard_dataset::Manifest;
use hoard_p2p::{BadBlock, BlockRequest, BlockResponse, BlockWithPath, MAX_BLOCKS_PER_REQUEST};
use hoard_prover::{BLOCK_SIZE, DatasetId, SlotIndex};
use libp2p::PeerId;
use rand::Rng as _;

use crate::{ctx::Ctx, reader_cache::ReaderCache};

/// Requests in flight to one host or renter.
const HOST_DEPTH: usize = 8;
/// Requests in flight to one reader (it may serve every slot).
const READER_DEPTH: usize = 16;
/// Requests in flight for one fetch: bounds its memory (each answer is up to 1 MiB).
const MAX_IN_FLIGHT: usize = 48;
/// Failed requests (busy, timeout, refused) in a row after which a source is dropped.
const MAX_STRIKES: u32 = 3;
/// Units looked at per pick before taking the rarest seen.
const SCAN: usize = 64;
/// A host takes a unit a reader also has only if it answers this much faster than the fastest
/// reader (hosts' upload is what participation saves).
const HOST_SPEEDUP: f64 = 2.0;
/// In the endgame, a unit gets a second copy only after it has been in flight this long (a
/// fast source's answer is not worth doubling).
const ENDGAME_AFTER: Duration = Duration::from_millis(750);
/// Work is handed out once the first provider lookup and every first have-map have come back,
/// or after this long.
const FIRST_HAVES: Duration = Duration::from_millis(300);
/// The `source` of an event that was read from the local cache.
const LOCAL: usize = usize::MAX;
/// Readers' have-maps are asked again this often while fetching.
const HAVE_REFRESH: Duration = Duration::from_secs(1);
/// New providers are looked up this often while fetching.
const PROVIDER_REFRESH: Duration = Duration::from_secs(5);

/// One request's worth of wanted blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Unit {
    /// The slot.
    pub(crate) slot: SlotIndex,
    /// First block in the slot.
    pub(crate) first: u64,
    /// Blocks, 1 ..= `MAX_BLOCKS_PER_REQUEST`, inside one aligned window.
    pub(crate) count: u32,
}

impl Unit {
    /// Cuts the wanted blocks of `slot` (ascending, no duplicates) into units.
    pub(crate) fn cut(slot: SlotIndex, blocks: impl IntoIterator<Item = u64>) -> Vec<Unit> {
        let window = u64::from(MAX_BLOCKS_PER_REQUEST);
        let mut out: Vec<Unit> = Vec::new();
        for b in blocks {
            match out.last_mut() {
                Some(u) if u.first + u64::from(u.count) == b && u.first / window == b / window => {
                    u.count += 1
                }
                _ => out.push(Unit {
                    slot,
                    first: b,
                    count: 1,
                }),
            }
        }
        out
    }

    fn end(&self) -> u64 {
        self.first + u64::from(self.count)
    }
}

/// Where verified units go. Called on the blocking pool, possibly from several threads, and
/// (in the endgame) possibly twice for one unit.
pub(crate) trait Sink: Send + Sync + 'static {
    /// A unit's blocks, each verified against its slot root.
    fn deliver(&self, unit: Unit, blocks: &[BlockWithPath]) -> Result<(), String>;
    /// Makes what was delivered so far durable (called every few seconds and at the end).
    fn checkpoint(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What kind of peer a source is, for preferences and `hoard_fetched_bytes_total{from}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The host of a slot on chain.
    Host,
    /// The renter of the request.
    Renter,
    /// Anyone else that announced itself as a provider: a reader serving its cache.
    Reader,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Renter => "renter",
            Self::Reader => "reader",
        }
    }
}

/// What to fetch.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The dataset.
    pub(crate) dataset: DatasetId,
    /// Its manifest (slot roots).
    pub(crate) manifest: Arc<Manifest>,
    /// The units, sorted; for `window` in stream order.
    pub(crate) units: Vec<Unit>,
    /// Peers that may hold blocks, and what they are.
    pub(crate) peers: Vec<(PeerId, Kind)>,
    /// `Some(n)`: only the first `n` units not yet delivered may be asked for (a streaming
    /// reader consumes them in order); `None`: any, rarest first.
    pub(crate) window: Option<usize>,
}

/// How a fetch went.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    /// Units found in the local cache.
    pub(crate) local_units: usize,
    /// Peers that delivered at least one unit.
    pub(crate) sources_used: usize,
    /// Verified bytes received from peers.
    pub(crate) fetched_bytes: u64,
}

/// Why a fetch did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SwarmError {
    /// Some units have no source left that could serve them.
    #[error("{missing} of {total} block runs could not be fetched from any source: {last}")]
    Unavailable {
        /// Units not fetched.
        missing: usize,
        /// Units wanted.
        total: usize,
        /// The last failure seen.
        last: String,
        /// The slots of the units not fetched.
        slots: Vec<SlotIndex>,
    },
    /// The sink refused a unit (the output's disk).
    #[error("writing the download: {0}")]
    Sink(String),
}

#[derive(Debug)]
struct Source {
    peer: PeerId,
    kind: Kind,
    /// Normalised ranges per slot; empty until its have-map arrives.
    have: HashMap<SlotIndex, Vec<[u64; 2]>>,
    in_flight: usize,
    /// Seconds per request, smoothed; `None` until the first answer.
    latency: Option<f64>,
    strikes: u32,
    dropped: bool,
    /// Units it refused although its have-map claimed them.
    refused: HashSet<usize>,
    delivered: u64,
    asking_have: bool,
}

impl Source {
    fn depth(&self) -> usize {
        match self.kind {
            Kind::Reader => READER_DEPTH,
            Kind::Host | Kind::Renter => HOST_DEPTH,
        }
    }

    fn has(&self, u: &Unit) -> bool {
        let Some(ranges) = self.have.get(&u.slot) else {
            return false;
        };
        let i = ranges.partition_point(|[_, b]| *b <= u.first);
        ranges
            .get(i)
            .is_some_and(|[a, b]| *a <= u.first && u.end() <= *b)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    InFlight { copies: u8, since: Instant },
    Done,
}

/// The outcome of one request, back in the loop.
enum Event {
    Blocks {
        unit: usize,
        source: usize,
        sent: Instant,
        result: Result<Got, Bad>,
    },
    Have {
        source: usize,
        have: Option<Vec<hoard_p2p::SlotHave>>,
    },
    Providers(Vec<PeerId>),
}

/// What a request's verified blocks came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    /// Delivered to the sink (and cached): this many bytes.
    Delivered(u64),
    /// A second copy (endgame) of blocks another request delivers or delivered. The unit is done
    /// only once that delivery's own event arrives: it may still be writing now.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
enum Bad {
    #[error("bad data: {0}")]
    Data(#[from] BadBlock),
    #[error("bad data: {0}")]
    Count(String),
    #[error("{0}")]
    Refused(String),
    #[error("local: {0}")]
    Local(String),
}

/// Fetches every unit of `plan` (from the cache, then from peers) into `sink`, every block
/// verified before it is delivered or cached. `progress` counts bytes delivered.
pub(crate) async fn fetch(
    ctx: &Ctx,
    cache: &ReaderCache,
    plan: Plan,
    sink: Arc<dyn Sink>,
    progress: Arc<AtomicU64>,
) -> Result<Report, SwarmError> {
    let mut report = Report::default();
    let units = plan.units.clone();
    let total = units.len();
    let done_flags: Arc<Vec<AtomicBool>> =
        Arc::new((0..total).map(|_| AtomicBool::new(false)).collect());
    let mut state = vec![State::Pending; total];

    // Units already in the local cache need no network: all of them at once, or (streaming)
    // those inside the window, as it moves.
    let mut remaining = total;
    if plan.window.is_none() {
        let local = {
            let (cache, units, sink, dataset, manifest) = (
                cache.clone(),
                units.clone(),
                sink.clone(),
                plan.dataset,
                plan.manifest.clone(),
            );
            let rejected = ctx.metrics.blocks_rejected.clone();
            tokio::task::spawn_blocking(move || -> Result<Vec<usize>, SwarmError> {
                let mut found = Vec::new();
                for (i, u) in units.iter().enumerate() {
                    let Some(blocks) = cache.read(&dataset, u.slot, u.first, u.count) else {
                        continue;
                    };
                    // The cache is a disk like any other: its blocks are checked too.
                    let root = manifest.slot_roots.get(usize::from(u.slot.0)).copied();
                    if let Err(e) = check(&blocks, &root.unwrap_or_default(), *u) {
                        tracing::warn!(slot = u.slot.0, first = u.first, err = %e, "a cached block fails its path; fetching it again");
                        rejected.inc();
                        continue;
                    }
                    sink.deliver(*u, &blocks).map_err(SwarmError::Sink)?;
                    found.push(i);
                }
                Ok(found)
            })
            .await
            .map_err(|e| SwarmError::Sink(e.to_string()))??
        };
        for i in &local {
            state[*i] = State::Done;
            done_flags[*i].store(true, Ordering::Relaxed);
            let blocks = u64::from(units[*i].count);
            ctx.metrics.reader_cache_hits.inc_by(blocks);
            progress.fetch_add(blocks * BLOCK_SIZE as u64, Ordering::Relaxed);
        }
        report.local_units = local.len();
        remaining -= local.len();
        if remaining == 0 {
            return Ok(report);
        }
    }

    let slots = plan.manifest.layout.slots();
    let slot_blocks = plan.manifest.layout.slot_blocks();
    let mut pending: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); slots];
    for (i, u) in units.iter().enumerate() {
        if state[i] == State::Pending {
            pending[usize::from(u.slot.0)].insert(i);
        }
    }
    let offsets: Vec<usize> = {
        let mut rng = rand::rng();
        (0..slots)
            .map(|s| {
                let ids: Vec<usize> = pending[s].iter().copied().collect();
                if ids.is_empty() || plan.window.is_some() {
                    0
                } else {
                    ids[rng.random_range(0..ids.len())]
                }
            })
            .collect()
    };

    let mut sources: Vec<Source> = Vec::new();
    let mut known: HashSet<PeerId> = HashSet::new();
    let me = ctx.net.local_peer_id();
    let mut events: FuturesUnordered<BoxFuture<'static, Event>> = FuturesUnordered::new();
    let add_source =
        |peer: PeerId,
         kind: Kind,
         sources: &mut Vec<Source>,
         known: &mut HashSet<PeerId>,
         events: &mut FuturesUnordered<BoxFuture<'static, Event>>| {
            if peer == me || !known.insert(peer) {
                return;
            }
            sources.push(Source {
                peer,
                kind,
                have: HashMap::new(),
                in_flight: 0,
                latency: None,
                strikes: 0,
                dropped: false,
                refused: HashSet::new(),
                delivered: 0,
                asking_have: true,
            });
            events.push(ask_have(ctx, sources.len() - 1, peer, plan.dataset));
        };
    for (peer, kind) in &plan.peers {
        add_source(*peer, *kind, &mut sources, &mut known, &mut events);
    }
    events.push(find_providers(ctx, plan.dataset, Duration::ZERO));

    let mut avail_total = vec![0u16; total];
    let mut avail_reader = vec![0u16; total];
    let mut in_flight = 0usize;
    let mut last = String::from("no source answered");
    let mut last_have_round = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut checkpointing: Option<tokio::task::JoinHandle<Result<(), String>>> = None;
    let mut low_water = 0usize;
    let started = Instant::now();
    let mut providers_looked_up = false;
    // Units the cache claimed but could not give (evicted, damaged): from the network.
    let mut not_local: HashSet<usize> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        // Streaming: units of the window that the cache holds are read locally.
        if let Some(w) = plan.window {
            for u in low_water..(low_water + w).min(total) {
                let unit = units[u];
                if state[u] == State::Pending
                    && !not_local.contains(&u)
                    && cache.has(&plan.dataset, unit.slot, unit.first, unit.count)
                {
                    pending[usize::from(unit.slot.0)].remove(&u);
                    state[u] = State::InFlight {
                        copies: 1,
                        since: Instant::now(),
                    };
                    in_flight += 1;
                    events.push(read_local(
                        cache,
                        &plan,
                        u,
                        unit,
                        sink.clone(),
                        done_flags.clone(),
                    ));
                }
            }
        }
        // Assign work: fastest sources first (unmeasured ones first of all, to measure them).
        let mut order: Vec<usize> = (0..sources.len())
            .filter(|s| !sources[*s].dropped && !sources[*s].have.is_empty())
            .collect();
        order.sort_by(|a, b| {
            let key = |s: &Source| s.latency.unwrap_or(0.0);
            key(&sources[*a]).total_cmp(&key(&sources[*b]))
        });
        let best_reader = sources
            .iter()
            .filter(|s| s.kind == Kind::Reader && !s.dropped)
            .filter_map(|s| s.latency)
            .min_by(f64::total_cmp);
        let endgame = pending.iter().all(BTreeSet::is_empty);
        // Until the first have-maps are in, a host could be handed units a reader also has.
        // A streaming read does not wait for the lookup: it answers a person, now.
        let first_haves_in = ((providers_looked_up || plan.window.is_some())
            && sources.iter().all(|s| !s.asking_have || !s.have.is_empty()))
            || started.elapsed() >= FIRST_HAVES;
        if !first_haves_in {
            order.clear();
        }
        while let Some(idx) = order.first().copied() {
            if in_flight >= MAX_IN_FLIGHT {
                break;
            }
            let s = &sources[idx];
            if s.in_flight >= s.depth() {
                order.remove(0);
                continue;
            }
            let host_may_take_shared = s.kind != Kind::Reader
                && match (s.latency, best_reader) {
                    (Some(mine), Some(theirs)) => mine * HOST_SPEEDUP < theirs,
                    _ => false,
                };
            let window_end = plan.window.map(|w| low_water + w);
            let picked = pick(
                s,
                &units,
                &pending,
                &offsets,
                &avail_total,
                &avail_reader,
                host_may_take_shared,
                window_end,
            )
            .or_else(|| {
                endgame
                    .then(|| pick_endgame(s, &units, &state, window_end))
                    .flatten()
            });
            let Some(u) = picked else {
                order.remove(0);
                continue;
            };
            let copies = match state[u] {
                State::InFlight { copies, .. } => copies + 1,
                _ => {
                    pending[usize::from(units[u].slot.0)].remove(&u);
                    1
                }
            };
            state[u] = State::InFlight {
                copies,
                since: match state[u] {
                    State::InFlight { since, .. } => since,
                    _ => Instant::now(),
                },
            };
            in_flight += 1;
            let s = &mut sources[idx];
            s.in_flight += 1;
            events.push(request(
                ctx,
                cache,
                &plan,
                u,
                units[u],
                idx,
                s.peer,
                sink.clone(),
                done_flags.clone(),
            ));
        }

        if remaining == 0 {
            break;
        }
        let usable = sources
            .iter()
            .any(|s| !s.dropped && (s.asking_have || !s.have.is_empty()));
        if in_flight == 0 && !usable && events.is_empty() {
            break;
        }

        let event = tokio::select! {
            e = events.next(), if !events.is_empty() => e,
            _ = tick.tick() => None,
        };
        match event {
            Some(Event::Blocks {
                unit,
                source,
                sent,
                result,
            }) => {
                in_flight -= 1;
                if source == LOCAL {
                    match result {
                        // An endgame copy from the network delivers it (its event follows).
                        Ok(Got::Duplicate) => {}
                        Ok(Got::Delivered(bytes)) => {
                            state[unit] = State::Done;
                            remaining -= 1;
                            report.local_units += 1;
                            ctx.metrics
                                .reader_cache_hits
                                .inc_by(u64::from(units[unit].count));
                            progress.fetch_add(bytes, Ordering::Relaxed);
                            while low_water < total && state[low_water] == State::Done {
                                low_water += 1;
                            }
                        }
                        Err(Bad::Local(e)) => return Err(SwarmError::Sink(e)),
                        // Evicted meanwhile, or damaged on disk: fetch it.
                        Err(e) => {
                            if !matches!(e, Bad::Refused(_)) {
                                tracing::warn!(err = %e, "a cached block fails its path; fetching it again");
                                ctx.metrics.blocks_rejected.inc();
                            }
                            not_local.insert(unit);
                            state[unit] = State::Pending;
                            pending[usize::from(units[unit].slot.0)].insert(unit);
                        }
                    }
                    continue;
                }
                let s = &mut sources[source];
                s.in_flight -= 1;
                match result {
                    Ok(got) => {
                        s.strikes = 0;
                        let took = sent.elapsed().as_secs_f64();
                        s.latency = Some(s.latency.map_or(took, |l| 0.7 * l + 0.3 * took));
                        // A duplicate changes nothing: the copy that delivers has its own event
                        // coming (the unit stays in flight until then, with no further copies).
                        let Got::Delivered(bytes) = got else {
                            continue;
                        };
                        if state[unit] != State::Done {
                            state[unit] = State::Done;
                            remaining -= 1;
                            s.delivered += bytes;
                            report.fetched_bytes += bytes;
                            progress.fetch_add(bytes, Ordering::Relaxed);
                            ctx.metrics
                                .fetched_bytes
                                .with_label_values(&[s.kind.label()])
                                .inc_by(bytes);
                            ctx.metrics
                                .reader_cache_misses
                                .inc_by(u64::from(units[unit].count));
                            while low_water < total && state[low_water] == State::Done {
                                low_water += 1;
                            }
                        }
                    }
                    Err(bad) => {
                        last = format!("{}: {bad}", s.peer);
                        match &bad {
                            Bad::Data(_) | Bad::Count(_) => {
                                ctx.metrics.blocks_rejected.inc();
                                if !s.dropped {
                                    tracing::warn!(peer = %s.peer, reason = %bad, "peer sent bad blocks; dropping it");
                                    s.dropped = true;
                                    ctx.net.penalise(s.peer, &bad.to_string()).await;
                                }
                            }
                            Bad::Refused(reason) => {
                                s.strikes += 1;
                                s.refused.insert(unit);
                                tracing::debug!(peer = %s.peer, reason, strikes = s.strikes, "block request failed");
                                if s.strikes >= MAX_STRIKES && !s.dropped {
                                    tracing::info!(peer = %s.peer, reason, "source keeps failing; using others");
                                    s.dropped = true;
                                    if s.delivered == 0 && reason.contains("not found") {
                                        // Its have-map claimed blocks it never served.
                                        ctx.net
                                            .penalise(s.peer, "claims blocks it does not serve")
                                            .await;
                                    }
                                }
                            }
                            Bad::Local(e) => return Err(SwarmError::Sink(e.clone())),
                        }
                        if let State::InFlight { copies, since } = state[unit] {
                            state[unit] = if copies > 1 {
                                State::InFlight {
                                    copies: copies - 1,
                                    since,
                                }
                            } else {
                                pending[usize::from(units[unit].slot.0)].insert(unit);
                                State::Pending
                            };
                        }
                        if sources[source].dropped {
                            recount(&sources, &units, &mut avail_total, &mut avail_reader);
                        }
                    }
                }
            }
            Some(Event::Have { source, have }) => {
                let s = &mut sources[source];
                s.asking_have = false;
                match have {
                    Some(list) => {
                        s.have = list
                            .iter()
                            .filter(|h| usize::from(h.slot.0) < slots)
                            .map(|h| (h.slot, h.normalised(slot_blocks)))
                            .filter(|(_, r)| !r.is_empty())
                            .collect();
                    }
                    None if s.have.is_empty() => {
                        s.dropped = s.kind == Kind::Reader;
                        if s.kind != Kind::Reader {
                            // An older node that does not answer have-maps: the chain says
                            // which slot it holds; the plan's units of it are asked directly.
                            for u in &units {
                                s.have.entry(u.slot).or_default();
                            }
                            for ranges in s.have.values_mut() {
                                *ranges = vec![[0, slot_blocks]];
                            }
                        }
                    }
                    None => {}
                }
                recount(&sources, &units, &mut avail_total, &mut avail_reader);
            }
            Some(Event::Providers(found)) => {
                providers_looked_up = true;
                for p in found {
                    add_source(p, Kind::Reader, &mut sources, &mut known, &mut events);
                }
                events.push(find_providers(ctx, plan.dataset, PROVIDER_REFRESH));
            }
            None => {}
        }
        if last_have_round.elapsed() >= HAVE_REFRESH {
            last_have_round = Instant::now();
            for (i, s) in sources.iter_mut().enumerate() {
                if s.kind == Kind::Reader && !s.dropped && !s.asking_have {
                    s.asking_have = true;
                    events.push(ask_have(ctx, i, s.peer, plan.dataset));
                }
            }
        }
        // Checkpoints sync the output: they run beside the fetching, one at a time.
        if checkpointing.as_ref().is_some_and(|c| c.is_finished())
            && let Some(c) = checkpointing.take()
        {
            c.await
                .map_err(|e| SwarmError::Sink(e.to_string()))?
                .map_err(SwarmError::Sink)?;
        }
        if checkpointing.is_none() && last_checkpoint.elapsed() >= Duration::from_secs(2) {
            last_checkpoint = Instant::now();
            let sink = sink.clone();
            checkpointing = Some(tokio::task::spawn_blocking(move || sink.checkpoint()));
        }
        // Nothing in flight, nothing any live source can give, no lookup pending: stuck.
        if in_flight == 0
            && !sources.iter().any(|s| s.asking_have)
            && !pending.iter().any(|p| {
                p.iter().any(|u| {
                    sources
                        .iter()
                        .any(|s| !s.dropped && !s.refused.contains(u) && s.has(&units[*u]))
                })
            })
            && events.len() <= 1
        {
            break;
        }
    }
    report.sources_used = sources.iter().filter(|s| s.delivered > 0).count();
    ctx.metrics
        .download_sources
        .observe(report.sources_used as f64);
    if let Some(c) = checkpointing.take() {
        c.await
            .map_err(|e| SwarmError::Sink(e.to_string()))?
            .map_err(SwarmError::Sink)?;
    }
    if remaining > 0 {
        // Keep what was fetched for a later resume (a complete fetch is synced by its commit).
        let sink2 = sink.clone();
        tokio::task::spawn_blocking(move || sink2.checkpoint())
            .await
            .map_err(|e| SwarmError::Sink(e.to_string()))?
            .map_err(SwarmError::Sink)?;
        let mut missing_slots: Vec<SlotIndex> = (0..total)
            .filter(|i| state[*i] != State::Done)
            .map(|i| units[i].slot)
            .collect();
        missing_slots.sort_unstable();
        missing_slots.dedup();
        return Err(SwarmError::Unavailable {
            missing: remaining,
            total,
            last,
            slots: missing_slots,
        });
    }
    Ok(report)
}

/// The unit `s` should fetch next: among pending units it has (up to `SCAN` looked at, from a
/// random start per slot), the one the fewest sources have. A host passes over units a reader
/// has unless it is much faster.
#[allow(clippy::too_many_arguments)]
fn pick(
    s: &Source,
    units: &[Unit],
    pending: &[BTreeSet<usize>],
    offsets: &[usize],
    avail_total: &[u16],
    avail_reader: &[u16],
    host_may_take_shared: bool,
    window_end: Option<usize>,
) -> Option<usize> {
    let mut best: Option<(u16, usize)> = None;
    let mut looked = 0;
    let mut slots: Vec<&SlotIndex> = s.have.keys().collect();
    slots.sort_unstable();
    for slot in slots {
        let Some(set) = pending.get(usize::from(slot.0)) else {
            continue;
        };
        let start = offsets.get(usize::from(slot.0)).copied().unwrap_or(0);
        let ids = set.range(start..).chain(set.range(..start));
        for &u in ids {
            // In a window the scan starts at 0 and ids ascend: past the end means done.
            if window_end.is_some_and(|end| u >= end) {
                break;
            }
            if s.refused.contains(&u) || !s.has(&units[u]) {
                continue;
            }
            if s.kind != Kind::Reader && avail_reader[u] > 0 && !host_may_take_shared {
                continue;
            }
            looked += 1;
            let a = avail_total[u];
            if best.is_none_or(|(b, _)| a < b) {
                best = Some((a, u));
            }
            if a <= 1 || looked >= SCAN || window_end.is_some() {
                return best.map(|(_, u)| u);
            }
        }
    }
    best.map(|(_, u)| u)
}

/// In the endgame: a unit in flight elsewhere that `s` has, asked longest ago, with one copy.
fn pick_endgame(
    s: &Source,
    units: &[Unit],
    state: &[State],
    window_end: Option<usize>,
) -> Option<usize> {
    state
        .iter()
        .enumerate()
        .filter(|(u, _)| window_end.is_none_or(|end| *u < end))
        .filter_map(|(u, st)| match st {
            State::InFlight { copies: 1, since } if since.elapsed() >= ENDGAME_AFTER => {
                Some((u, *since))
            }
            _ => None,
        })
        .filter(|(u, _)| !s.refused.contains(u) && s.has(&units[*u]))
        .min_by_key(|(_, since)| *since)
        .map(|(u, _)| u)
}

fn recount(sources: &[Source], units: &[Unit], total: &mut [u16], readers: &mut [u16]) {
    total.fill(0);
    readers.fill(0);
    for s in sources.iter().filter(|s| !s.dropped) {
        for (i, u) in units.iter().enumerate() {
            if s.has(u) {
                total[i] = total[i].saturating_add(1);
                if s.kind == Kind::Reader {
                    readers[i] = readers[i].saturating_add(1);
                }
            }
        }
    }
}

fn read_local(
    cache: &ReaderCache,
    plan: &Plan,
    id: usize,
    unit: Unit,
    sink: Arc<dyn Sink>,
    done: Arc<Vec<AtomicBool>>,
) -> BoxFuture<'static, Event> {
    let cache = cache.clone();
    let dataset = plan.dataset;
    let root = plan
        .manifest
        .slot_roots
        .get(usize::from(unit.slot.0))
        .copied()
        .unwrap_or_default();
    async move {
        let sent = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let blocks = cache
                .read(&dataset, unit.slot, unit.first, unit.count)
                .ok_or_else(|| Bad::Refused("no longer cached".into()))?;
            // The cache is a disk like any other: its blocks are checked too.
            check(&blocks, &root, unit)?;
            if done[id].swap(true, Ordering::AcqRel) {
                return Ok(Got::Duplicate);
            }
            sink.deliver(unit, &blocks).map_err(Bad::Local)?;
            Ok(Got::Delivered(blocks.len() as u64 * BLOCK_SIZE as u64))
        })
        .await
        .unwrap_or_else(|e| Err(Bad::Local(e.to_string())));
        Event::Blocks {
            unit: id,
            source: LOCAL,
            sent,
            result,
        }
    }
    .boxed()
}

fn ask_have(
    ctx: &Ctx,
    source: usize,
    peer: PeerId,
    dataset: DatasetId,
) -> BoxFuture<'static, Event> {
    let net = ctx.net.clone();
    async move {
        let have = match tokio::time::timeout(
            Duration::from_secs(5),
            net.request_block(peer, BlockRequest::Have { dataset }),
        )
        .await
        {
            Ok(Ok(BlockResponse::Have(h))) => Some(h),
            _ => None,
        };
        Event::Have { source, have }
    }
    .boxed()
}

fn find_providers(ctx: &Ctx, dataset: DatasetId, after: Duration) -> BoxFuture<'static, Event> {
    let net = ctx.net.clone();
    async move {
        tokio::time::sleep(after).await;
        let found = net
            .find_providers(dataset, Duration::from_secs(2))
            .await
            .unwrap_or_default();
        Event::Providers(found)
    }
    .boxed()
}

#[allow(clippy::too_many_arguments)]
fn request(
    ctx: &Ctx,
    cache: &ReaderCache,
    plan: &Plan,
    id: usize,
    unit: Unit,
    source: usize,
    peer: PeerId,
    sink: Arc<dyn Sink>,
    done: Arc<Vec<AtomicBool>>,
) -> BoxFuture<'static, Event> {
    let net = ctx.net.clone();
    let cache = cache.clone();
    let dataset = plan.dataset;
    let root = plan
        .manifest
        .slot_roots
        .get(usize::from(unit.slot.0))
        .copied()
        .unwrap_or_default();
    async move {
        let sent = Instant::now();
        let r = net
            .request_block(
                peer,
                BlockRequest::Blocks {
                    dataset,
                    slot: unit.slot,
                    first: unit.first,
                    count: unit.count,
                },
            )
            .await;
        let result = match r {
            Ok(BlockResponse::Blocks(got)) => tokio::task::spawn_blocking(move || {
                check(&got, &root, unit)?;
                if done[id].swap(true, Ordering::AcqRel) {
                    return Ok(Got::Duplicate);
                }
                sink.deliver(unit, &got).map_err(Bad::Local)?;
                if let Err(e) = cache.put(&dataset, unit.slot, &got) {
                    tracing::debug!(err = %e, "not cached");
                }
                Ok(Got::Delivered(got.len() as u64 * BLOCK_SIZE as u64))
            })
            .await
            .unwrap_or_else(|e| Err(Bad::Local(e.to_string()))),
            Ok(BlockResponse::Error(e)) => Err(Bad::Refused(e)),
            Ok(_) => Err(Bad::Count("an answer of another kind".into())),
            Err(e) => Err(Bad::Refused(e.to_string())),
        };
        Event::Blocks {
            unit: id,
            source,
            sent,
            result,
        }
    }
    .boxed()
}

/// Every block of `got` is the block of `unit` it should be and verifies by its path.
fn check(got: &[BlockWithPath], root: &hoard_prover::Hash, unit: Unit) -> Result<(), Bad> {
    if got.len() != unit.count as usize {
        return Err(Bad::Count(format!(
            "{} blocks instead of {}",
            got.len(),
            unit.count
        )));
    }
    for (b, want) in got.iter().zip(unit.first..) {
        b.verify(root, want)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_runs_inside_request_windows() {
        let s = SlotIndex(2);
        let units = Unit::cut(s, [0, 1, 2, 5, 6, 15, 16, 17, 40]);
        assert_eq!(
            units,
            vec![
                Unit {
                    slot: s,
                    first: 0,
                    count: 3
                },
                Unit {
                    slot: s,
                    first: 5,
                    count: 2
                },
                Unit {
                    slot: s,
                    first: 15,
                    count: 1
                },
                Unit {
                    slot: s,
                    first: 16,
                    count: 2
                },
                Unit {
                    slot: s,
                    first: 40,
                    count: 1
                },
            ]
        );
        let all = Unit::cut(s, 0..40);
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|u| u.count <= MAX_BLOCKS_PER_REQUEST));
    }

    fn source(kind: Kind, have: &[(u16, u64, u64)]) -> Source {
        let mut map: HashMap<SlotIndex, Vec<[u64; 2]>> = HashMap::new();
        for (s, a, b) in have {
            map.entry(SlotIndex(*s)).or_default().push([*a, *b]);
        }
        Source {
            peer: PeerId::random(),
            kind,
            have: map,
            in_flight: 0,
            latency: None,
            strikes: 0,
            dropped: false,
            refused: HashSet::new(),
            delivered: 0,
            asking_have: false,
        }
    }

    #[test]
    fn picks_the_rarest_unit_and_hosts_leave_shared_units_to_readers() {
        let units: Vec<Unit> = Unit::cut(SlotIndex(0), 0..64);
        let host = source(Kind::Host, &[(0, 0, 64)]);
        let reader = source(Kind::Reader, &[(0, 0, 32)]);
        let sources = vec![host, reader];
        let (mut total, mut readers) = (vec![0; 4], vec![0; 4]);
        recount(&sources, &units, &mut total, &mut readers);
        assert_eq!(total, vec![2, 2, 1, 1]);
        let pending = vec![(0..4).collect::<BTreeSet<usize>>()];
        let pick_for = |s: &Source, shared: bool, start: usize| {
            pick(
                s,
                &units,
                &pending,
                &[start],
                &total,
                &readers,
                shared,
                None,
            )
        };
        // The host takes what only it has, wherever the scan starts.
        assert_eq!(pick_for(&sources[0], false, 0), Some(2));
        assert_eq!(pick_for(&sources[0], false, 3), Some(3));
        // Units the reader has are left to it, unless the host is much faster.
        let only_shared = vec![(0..2).collect::<BTreeSet<usize>>()];
        assert_eq!(
            pick(
                &sources[0],
                &units,
                &only_shared,
                &[0],
                &total,
                &readers,
                false,
                None
            ),
            None
        );
        assert_eq!(
            pick(
                &sources[0],
                &units,
                &only_shared,
                &[0],
                &total,
                &readers,
                true,
                None
            ),
            Some(0)
        );
        // The reader never gets what it does not have; a refused unit is not asked again.
        assert_eq!(pick_for(&sources[1], false, 2), Some(0));
        let mut refusing = source(Kind::Reader, &[(0, 0, 32)]);
        refusing.refused.insert(0);
        refusing.refused.insert(1);
        assert_eq!(
            pick(
                &refusing,
                &units,
                &pending,
                &[0],
                &total,
                &readers,
                false,
                None
            ),
            None
        );
        // A streaming window keeps to the first units.
        assert_eq!(
            pick(
                &sources[0],
                &units,
                &pending,
                &[0],
                &total,
                &readers,
                true,
                Some(1)
            ),
            Some(0)
        );
    }

    #[test]
    fn the_endgame_doubles_the_oldest_single_copy() {
        let units: Vec<Unit> = Unit::cut(SlotIndex(0), 0..48);
        let s = source(Kind::Reader, &[(0, 0, 48)]);
        let now = Instant::now();
        let old = now - 2 * ENDGAME_AFTER;
        let new = now - ENDGAME_AFTER - Duration::from_millis(5);
        let state = vec![
            State::Done,
            State::InFlight {
                copies: 1,
                since: new,
            },
            State::InFlight {
                copies: 1,
                since: old,
            },
        ];
        assert_eq!(pick_endgame(&s, &units, &state, None), Some(2));
        let state = vec![
            State::Done,
            State::InFlight {
                copies: 2,
                since: old,
            },
            State::Done,
        ];
        assert_eq!(pick_endgame(&s, &units, &state, None), None);
    }
}
