//! `hoard devnet`: a whole hoard network on this machine, and the story of one dataset told live.
//!
//! ```text
//!  hoard devnet ─ lock DIR/devnet.lock ─ check every port ─┐
//!   children (own process group; Ctrl-C reaches only us):  │
//!   ├─ anvil --state DIR/anvil-state.json ─ deploy, faucet ─▶ DIR/deployment.json
//!   ├─ hoard node run × (renter + validator, host-1 … host-N), logs in DIR/logs/<name>.log
//!   └─ prometheus (--prometheus) ◀─ DIR/prometheus/{prometheus.yml,rules/,targets/devnet.json}
//!  the story, through the nodes' REST APIs and the chain:
//!   DIR/sample ─▶ renter put (k+m) ─▶ slots fill ─▶ proofs every period ─▶ fetch ─▶ DIR/fetched
//!   ─▶ byte-for-byte check ─▶ (--check-dashboards) scripts/dashboard-queries ─▶ (--once) exit
//!  shutdown (Ctrl-C, SIGTERM, SIGHUP, --once, error, panic): SIGTERM the nodes, then Prometheus,
//!   then anvil (which saves the chain); 10 s each, then SIGKILL. [`Procs`]' Drop does the same.
//! ```
//!
//! A second run on the same `--dir` resumes: anvil reloads its saved state, the nodes keep their
//! data, and a dataset whose request is still running is watched instead of put again.
//!
//! anvil is started here rather than through `hoard_chain::LocalChain` so that it lives in its own
//! process group (a terminal's Ctrl-C must not stop it before the nodes), logs to a file instead
//! of a pipe nobody reads, and is stopped last.

use std::{
    collections::{BTreeMap, HashMap},
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Read, Seek, Write},
    net::TcpListener,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use anyhow::{Context as _, anyhow, bail, ensure};
use clap::Args;
use hoard_chain::{Chain, ChainConfig, DeploySettings, Deployment, ProofStatus, RequestState};
use hoard_node::{HostStatus, JobStatus, PutRequest, RequestStatus};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use url::Url;

/// Test tokens each account gets from the faucet (18 decimals).
const FUNDS: u128 = 1_000_000 * 10u128.pow(18);
/// Price of the sample's storage, token base units per byte per second: big enough that the
/// hosts' earnings read as whole tokens within minutes.
const PRICE: u64 = 1_000_000_000;
/// Collateral per byte (100 seconds of pay, the ratio the lifecycle test uses).
const COLLATERAL: u64 = 100 * PRICE;
/// Seconds of storage bought: outlives any devnet session.
const DURATION: u64 = 24 * 3600;
/// Cells sampled per proof.
const SAMPLES: u16 = 8;
/// Proof periods watched before the fetch.
const PROOF_PERIODS: u64 = 3;
/// How long a child gets to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Flags of `hoard devnet`.
#[derive(Debug, Args)]
pub(crate) struct DevnetArgs {
    /// Folder for the chain state, the nodes' data, logs, Prometheus and the sample dataset.
    #[arg(long, default_value = "target/devnet")]
    dir: PathBuf,
    /// Host nodes to start (at least 3; 6 or more store the sample 4+2).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(3..=64))]
    hosts: u16,
    /// Blocks per proof period (also the grace window for marking missed proofs).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(2..=128))]
    period_blocks: u64,
    /// Seconds per block.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=60))]
    block_time: u64,
    /// Size of the sample dataset, MiB.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=65536))]
    size_mib: u64,
    /// anvil's JSON-RPC port.
    #[arg(long, default_value_t = 8545)]
    port: u16,
    /// First node port: node i (renter 0, host-1 …) gets API port base+2i and p2p port base+2i+1.
    #[arg(long, default_value_t = 8650)]
    api_base_port: u16,
    /// Prometheus' port (with --prometheus).
    #[arg(long, default_value_t = 9090)]
    prometheus_port: u16,
    /// Exit (0) after the fetch has been verified, instead of running until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Wipe --dir first instead of resuming the previous run kept there.
    #[arg(long)]
    clean: bool,
    /// Start Prometheus (Debian's `prometheus` binary) scraping every node.
    #[arg(long)]
    prometheus: bool,
    /// Run scripts/dashboard-queries against Prometheus after the fetch and fail if any dashboard
    /// panel has no data (implies --prometheus).
    #[arg(long)]
    check_dashboards: bool,
}

/// The network this run starts, fixed before anything starts.
#[derive(Debug)]
struct Plan {
    dir: PathBuf,
    hosts: u16,
    period_blocks: u64,
    block_time: u64,
    size_mib: u64,
    anvil_port: u16,
    prometheus_port: Option<u16>,
    check_dashboards: bool,
    once: bool,
    nodes: Vec<NodeSpec>,
    data_slots: u16,
    parity_slots: u16,
}

/// One node to start.
#[derive(Debug, Clone)]
struct NodeSpec {
    name: String,
    host: bool,
    api_port: u16,
    p2p_port: u16,
}

impl Plan {
    fn new(args: &DevnetArgs, dir: PathBuf) -> anyhow::Result<Self> {
        let prometheus = args.prometheus || args.check_dashboards;
        let mut nodes = Vec::new();
        for i in 0..=args.hosts {
            let port = |extra: u16| {
                (2 * i)
                    .checked_add(extra)
                    .and_then(|o| args.api_base_port.checked_add(o))
                    .filter(|p| *p != 0)
                    .ok_or_else(|| {
                        anyhow!(
                            "--api-base-port {} leaves no room for the ports of {} nodes \
                             (two each); pick a lower one",
                            args.api_base_port,
                            args.hosts + 1
                        )
                    })
            };
            nodes.push(NodeSpec {
                name: if i == 0 {
                    "renter".into()
                } else {
                    format!("host-{i}")
                },
                host: i > 0,
                api_port: port(0)?,
                p2p_port: port(1)?,
            });
        }
        let (data_slots, parity_slots) = if args.hosts >= 6 {
            (4, 2)
        } else {
            (args.hosts - 2, 2)
        };
        Ok(Self {
            dir,
            hosts: args.hosts,
            period_blocks: args.period_blocks,
            block_time: args.block_time,
            size_mib: args.size_mib,
            anvil_port: args.port,
            prometheus_port: prometheus.then_some(args.prometheus_port),
            check_dashboards: args.check_dashboards,
            once: args.once,
            nodes,
            data_slots,
            parity_slots,
        })
    }

    /// Every port this run listens on, what uses it and the flag that moves it.
    fn ports(&self) -> Vec<(u16, String, &'static str)> {
        let mut ports = vec![(self.anvil_port, "anvil's JSON-RPC".to_string(), "--port")];
        for n in &self.nodes {
            ports.push((n.api_port, format!("{}'s API", n.name), "--api-base-port"));
            ports.push((n.p2p_port, format!("{}'s p2p", n.name), "--api-base-port"));
        }
        if let Some(p) = self.prometheus_port {
            ports.push((p, "Prometheus".into(), "--prometheus-port"));
        }
        ports
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

/// Runs `hoard devnet`.
pub(crate) fn run(args: DevnetArgs) -> anyhow::Result<()> {
    let dir = prepare_dir(&args.dir)?;
    let plan = Plan::new(&args, dir)?;
    let _lock = DirLock::acquire(&plan.dir)?;
    if args.clean {
        wipe(&plan.dir)?;
    }
    check_ports(&plan.ports())?;
    let anvil = hoard_chain::find_anvil()?;
    let tools = if plan.prometheus_port.is_some() {
        let prometheus = find_on_path("prometheus").ok_or_else(|| {
            anyhow!(
                "prometheus is not installed: install it with `sudo apt-get install prometheus` \
                 (or run scripts/monitoring-check, which installs it), or drop --prometheus"
            )
        })?;
        let root = repo_root().ok_or_else(|| {
            anyhow!(
                "cannot find the hoard repository (a folder with monitoring/) above the current \
                 folder: run hoard devnet from the repository to use --prometheus"
            )
        })?;
        Some((prometheus, root))
    } else {
        None
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let story = Story::new();
    let mut procs = Procs::default();
    let outcome = rt.block_on(async {
        let stop = match StopSignal::install() {
            Ok(s) => s,
            Err(e) => return Err(e),
        };
        tokio::select! {
            r = devnet(&plan, &story, &mut procs, &anvil, tools.as_ref()) => r,
            name = stop.wait() => {
                story.say(format!("{name}: stopping the devnet"));
                Ok(())
            }
        }
    });
    let clean = procs.shutdown(&story);
    rt.shutdown_timeout(Duration::from_secs(1));
    outcome?;
    ensure!(
        clean.is_empty(),
        "{} did not stop within {}s after SIGTERM and were killed",
        clean.join(", "),
        STOP_TIMEOUT.as_secs()
    );
    story.say(format!(
        "stopped; {} keeps the chain and the nodes' data for the next run (--clean starts over)",
        rel(&plan.dir)
    ));
    Ok(())
}

/// Starts everything and tells the story; returns with `--once` after the verified fetch.
async fn devnet(
    plan: &Plan,
    story: &Story,
    procs: &mut Procs,
    anvil: &Path,
    tools: Option<&(PathBuf, PathBuf)>,
) -> anyhow::Result<()> {
    for sub in ["logs", "nodes"] {
        fs::create_dir_all(plan.path(sub))
            .with_context(|| format!("creating {}", plan.path(sub).display()))?;
    }
    let deployment_file = plan.path("deployment.json");
    let state_file = plan.path("anvil-state.json");
    let resume = deployment_file.exists();
    if resume && !state_file.exists() {
        bail!(
            "{} holds a devnet whose chain was not saved (no anvil-state.json; did it stop \
             cleanly?); start over with --clean",
            plan.dir.display()
        );
    }
    if !resume {
        // Nothing of a previous run is usable without its deployment.
        for stale in ["anvil-state.json", "nodes", "story.json", "fetched"] {
            remove_any(&plan.path(stale))?;
        }
        fs::create_dir_all(plan.path("nodes"))?;
    }

    let accounts_needed = usize::from(plan.hosts) + 2;
    let chain = start_anvil(plan, procs, anvil, accounts_needed).await?;
    story.say(format!(
        "anvil on {} ({} s blocks; log {})",
        chain.url,
        plan.block_time,
        rel(&plan.path("logs/anvil.log"))
    ));
    let keys = chain.keys;
    let deployer = keys[0].clone();
    let deployment = if resume {
        let d = Deployment::load(&deployment_file)?;
        story.say(format!(
            "resuming the devnet in {} (Marketplace {}, {}-block periods)",
            rel(&plan.dir),
            d.marketplace,
            d.period_length
        ));
        if d.period_length != plan.period_blocks {
            story.say(format!(
                "note: --period-blocks {} applies to a fresh devnet; pass --clean to use it",
                plan.period_blocks
            ));
        }
        d
    } else {
        let settings = DeploySettings {
            period_length: plan.period_blocks,
            grace_blocks: plan.period_blocks,
            ..DeploySettings::default()
        };
        let d = hoard_chain::deploy(&chain.url, deployer.clone(), settings)
            .await
            .context("deploying the contracts")?;
        story.say(format!(
            "deployed: Marketplace {}, token {} ({}-block periods)",
            d.marketplace, d.token, d.period_length
        ));
        d
    };
    let faucet = Chain::connect(
        ChainConfig {
            receipt_timeout: Duration::from_secs(30),
            ..ChainConfig::new(chain.url.clone(), deployment).with_signer(deployer)
        },
        &prometheus::Registry::new(),
    )
    .await
    .map_err(|e| {
        if resume {
            anyhow!(
                "the saved chain ({}) does not hold the deployment in {} ({e}); start over \
                 with --clean",
                rel(&state_file),
                rel(&deployment_file)
            )
        } else {
            anyhow!("connecting to the new deployment: {e}")
        }
    })?;
    let node_keys: Vec<PrivateKeySigner> = keys[1..accounts_needed].to_vec();
    let mut unfunded = Vec::new();
    for k in &node_keys {
        if faucet.token_balance(k.address()).await? == U256::ZERO {
            unfunded.push(k.address());
        }
    }
    if !unfunded.is_empty() {
        hoard_chain::fund(&faucet, &unfunded, U256::from(FUNDS))
            .await
            .context("funding the dev accounts from the test token's faucet")?;
        story.say(format!(
            "funded {} accounts with {} tHOARD each from the faucet",
            unfunded.len(),
            FUNDS / 10u128.pow(18)
        ));
    }
    if !resume {
        // Written last: its presence means "a chain worth resuming".
        deployment.save(&deployment_file)?;
    }

    let nodes = start_nodes(plan, procs, &chain.url, &deployment_file, &node_keys).await?;
    print_table(story, &nodes);
    let targets = write_prometheus_files(plan, &nodes, tools.map(|t| t.1.as_path()))?;
    story.say(format!("Prometheus targets: {}", rel(&targets)));
    if let (Some(port), Some((binary, _))) = (plan.prometheus_port, tools) {
        start_prometheus(plan, procs, binary, port).await?;
        story.say(format!(
            "Prometheus on http://127.0.0.1:{port} (log {})",
            rel(&plan.path("logs/prometheus.log"))
        ));
    }

    let observer = Chain::connect(
        ChainConfig::new(chain.url.clone(), deployment),
        &prometheus::Registry::new(),
    )
    .await?;
    let world = World {
        plan,
        story,
        chain: observer,
        nodes,
    };
    world.run(procs, tools.map(|t| t.1.as_path())).await
}

/// What the story talks to.
struct World<'a> {
    plan: &'a Plan,
    story: &'a Story,
    chain: Chain,
    nodes: Vec<RunningNode>,
}

/// What `story.json` remembers between runs.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    dataset: B256,
    request: B256,
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

    async fn run(&self, procs: &mut Procs, root: Option<&Path>) -> anyhow::Result<()> {
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
                    short_id(&s.dataset),
                    short_id(&s.request)
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
    async fn put(&self, sample: &Path) -> anyhow::Result<(B256, B256)> {
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
        };
        story.say(format!(
            "putting the sample through the renter: {}+{} slots (any {} rebuild it), a proof \
             of every slot each period, {} h of storage",
            plan.data_slots,
            plan.parity_slots,
            plan.data_slots,
            DURATION / 3600
        ));
        let renter = &self.renter().api;
        let started: Value = renter.post("/api/v1/datasets", &req).await?;
        let job = started["job"]
            .as_str()
            .ok_or_else(|| anyhow!("the renter answered the put without a job id: {started}"))?
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(expiry + 120);
        let (mut phase, mut ids, mut filled) = (String::new(), None, BTreeMap::new());
        loop {
            let s: JobStatus = renter.get(&format!("/api/v1/jobs/{job}")).await?;
            if s.phase != phase {
                phase = s.phase.clone();
                story.say(format!("renter: {phase}"));
            }
            if ids.is_none()
                && let (Ok(d), Ok(r)) = (
                    serde_json::from_value::<B256>(s.result["dataset"].clone()),
                    serde_json::from_value::<B256>(s.result["request"].clone()),
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
                    short_id(&d),
                    short_id(&r),
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
    async fn report_fills(&self, request: B256, seen: &mut BTreeMap<u16, Address>) {
        let Ok(status) = self
            .renter()
            .api
            .get::<Vec<RequestStatus>>(&format!("/api/v1/datasets/{request}"))
            .await
        else {
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
                    s.index,
                    self.name_of(host),
                    short_addr(host)
                ));
            }
        }
    }

    /// One line with every slot's host.
    async fn show_slots(&self, request: B256) -> anyhow::Result<()> {
        let info = self.chain.get_request(request).await?;
        let mut parts = Vec::new();
        for i in 0..info.params.slots {
            let s = self.chain.get_slot(slot_id(request, i)).await?;
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
        dataset: B256,
        request: B256,
        root: Option<&Path>,
    ) -> anyhow::Result<()> {
        let (story, plan) = (self.story, self.plan);
        let info = self.chain.get_request(request).await?;
        let slots: Vec<B256> = (0..info.params.slots)
            .map(|i| slot_id(request, i))
            .collect();
        let mut last_fill = 0;
        for s in &slots {
            last_fill = last_fill.max(self.chain.get_slot(*s).await?.filledPeriod);
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
        let (mut required, mut accepted, mut fetched) = (0u64, 0u64, false);
        let mut exited = Vec::new();
        loop {
            for (name, status) in procs.exited_nodes() {
                if !exited.contains(&name) {
                    story.say(format!(
                        "{name} exited ({status}); see {}",
                        rel(&plan.path(&format!("logs/{name}.log")))
                    ));
                    ensure!(name != "renter", "the renter node exited ({status})");
                    exited.push(name);
                }
            }
            if let Some(status) = procs.anvil_exited() {
                bail!(
                    "anvil exited ({status}); see {}",
                    rel(&plan.path("logs/anvil.log"))
                );
            }
            let now = self.chain.current_period().await?;
            while period < now {
                let (ok, req) = self.report_period(period, &slots).await?;
                if (first..=last).contains(&period) {
                    required += req;
                    accepted += ok;
                }
                period += 1;
            }
            if !fetched && period > last {
                story.say(format!(
                    "{accepted} of {required} required proofs accepted in periods {first}–{last}"
                ));
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

    /// Prints one period's line; returns (proofs accepted, proofs required).
    async fn report_period(&self, period: u64, slots: &[B256]) -> anyhow::Result<(u64, u64)> {
        let (mut required, mut accepted, mut missed) = (0u64, 0u64, 0u64);
        for s in slots {
            let info = self.chain.get_slot(*s).await?;
            missed += u64::from(info.missedProofs);
            if info.host == Address::ZERO || period <= info.filledPeriod {
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
            if let Ok(h) = n.api.get::<HostStatus>("/api/v1/host").await {
                earned += h.earned;
            }
        }
        let proofs = if required == 0 {
            "no proofs due (slots filled in it)".to_string()
        } else {
            format!("{accepted}/{required} proofs accepted")
        };
        self.story.say(format!(
            "period {period}: {proofs} · {missed} missed so far · hosts earned {} so far",
            tokens(earned)
        ));
        Ok((accepted, required))
    }

    /// Fetches the dataset through the renter (from the hosts) and checks it against the sample.
    async fn fetch(&self, dataset: B256) -> anyhow::Result<()> {
        let (story, plan) = (self.story, self.plan);
        let out = plan.path("fetched");
        remove_any(&out)?;
        story.say(format!(
            "fetching dataset {} back through the renter's API (from the hosts) into {}",
            short_id(&dataset),
            rel(&out)
        ));
        let started = Instant::now();
        let renter = &self.renter().api;
        let job: Value = renter
            .post(
                "/api/v1/downloads",
                &json!({ "dataset": dataset, "out": out }),
            )
            .await?;
        let job = job["job"]
            .as_str()
            .ok_or_else(|| anyhow!("the renter answered the download without a job id: {job}"))?
            .to_string();
        let timeout = Duration::from_secs(120 + plan.size_mib);
        let status = eventually(timeout, "the fetch to finish", || async {
            let s: JobStatus = renter.get(&format!("/api/v1/jobs/{job}")).await?;
            Ok(s.finished.then_some(s))
        })
        .await?;
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

// ---------------------------------------------------------------------------------- the nodes

/// A started node.
#[derive(Debug)]
struct RunningNode {
    spec: NodeSpec,
    address: Address,
    api: Api,
    log: PathBuf,
}

/// Starts the renter and the hosts as child processes and waits for their APIs.
async fn start_nodes(
    plan: &Plan,
    procs: &mut Procs,
    rpc_url: &Url,
    deployment: &Path,
    keys: &[PrivateKeySigner],
) -> anyhow::Result<Vec<RunningNode>> {
    let exe = std::env::current_exe().context("finding the hoard binary to start the nodes")?;
    let margin = (plan.period_blocks * 3 / 8).clamp(1, 8);
    let mut nodes = Vec::new();
    for (spec, key) in plan.nodes.iter().zip(keys) {
        let data = plan.path(&format!("nodes/{}", spec.name));
        fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        // Devnet tempo: poll the chain often, fill without long back-offs.
        let config = data.join("devnet.toml");
        fs::write(
            &config,
            format!(
                "# Written by hoard devnet; the flags on its command line set the rest.\n\
                 [p2p]\nrequest_timeout_secs = 10\n\n[chain]\npoll_interval_ms = 250\n\
                 receipt_timeout_secs = 30\n\n[host]\nfill_backoff_secs = 3\n\
                 deadline_margin_blocks = {margin}\n"
            ),
        )?;
        let log = plan.path(&format!("logs/{}.log", spec.name));
        let mut cmd = Command::new(&exe);
        cmd.arg("node")
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .arg("--api")
            .arg(format!("127.0.0.1:{}", spec.api_port))
            .arg("--listen")
            .arg(format!("/ip4/127.0.0.1/tcp/{}", spec.p2p_port))
            .arg("--rpc-url")
            .arg(rpc_url.as_str())
            .arg("--deployment")
            .arg(deployment)
            .arg(if spec.host { "--host" } else { "--validate" });
        // Only what this devnet says: no HOARD_* setting of the caller's shell leaks in.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("HOARD_") && k != "HOARD_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOARD_PRIVATE_KEY", key.to_bytes().to_string())
            .env("NO_COLOR", "1");
        procs.spawn_node(&spec.name, cmd, &log)?;
        nodes.push(RunningNode {
            spec: spec.clone(),
            address: key.address(),
            api: Api::new(spec.api_port, None),
            log,
        });
    }
    for n in &mut nodes {
        let what = format!("{} to answer on its API", n.spec.name);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if n.api.get::<Value>("/api/v1/node").await.is_ok() {
                break;
            }
            if let Some(status) = procs.node_exited(&n.spec.name) {
                bail!(
                    "{} exited while starting ({status}): {} (full log: {})",
                    n.spec.name,
                    last_lines(&n.log, 3),
                    rel(&n.log)
                );
            }
            ensure!(
                Instant::now() < deadline,
                "timed out waiting for {what} (see {})",
                rel(&n.log)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let token_file = plan.path(&format!("nodes/{}/api-token", n.spec.name));
        let token = fs::read_to_string(&token_file)
            .with_context(|| format!("reading {}", token_file.display()))?;
        n.api = Api::new(n.spec.api_port, Some(token.trim().to_string()));
    }
    Ok(nodes)
}

fn print_table(story: &Story, nodes: &[RunningNode]) {
    story.say(format!("{} nodes up:", nodes.len()));
    let rows: Vec<[String; 5]> = nodes
        .iter()
        .map(|n| {
            [
                format!(
                    "{}{}",
                    n.spec.name,
                    if n.spec.host { "" } else { " (+validator)" }
                ),
                n.address.to_string(),
                n.api.url.clone(),
                format!("{}/metrics", n.api.url),
                rel(&n.log),
            ]
        })
        .collect();
    let header = ["node", "account", "API", "metrics", "log"].map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("    {}", line.join("  ").trim_end());
    }
}

/// A node's REST API.
#[derive(Debug, Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Api {
    fn new(port: u16, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            url: format!("http://127.0.0.1:{port}"),
            token,
        }
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!(
                "{}",
                body.get("error").and_then(Value::as_str).unwrap_or("error")
            );
        }
        Ok(serde_json::from_value(body)?)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.url)).json(body))
            .await
    }
}

// ------------------------------------------------------------------------- anvil, Prometheus

/// A started anvil.
struct LocalAnvil {
    url: Url,
    keys: Vec<PrivateKeySigner>,
}

/// Starts anvil with the chain state kept in DIR; waits until it listens and reads its keys.
async fn start_anvil(
    plan: &Plan,
    procs: &mut Procs,
    anvil: &Path,
    accounts: usize,
) -> anyhow::Result<LocalAnvil> {
    let log = plan.path("logs/anvil.log");
    let state = plan.path("anvil-state.json");
    let loading = state.exists();
    let from = fs::metadata(&log).map_or(0, |m| m.len());
    let mut cmd = Command::new(anvil);
    cmd.arg("--host")
        .arg("127.0.0.1")
        .arg("--port")
        .arg(plan.anvil_port.to_string())
        .arg("--block-time")
        .arg(plan.block_time.to_string())
        .arg("--accounts")
        .arg(accounts.max(10).to_string())
        .arg("--state")
        .arg(&state)
        .arg("--state-interval")
        .arg("30")
        .env("NO_COLOR", "1")
        .env("FOUNDRY_DISABLE_NIGHTLY_WARNING", "1");
    procs.spawn_anvil(cmd, &log)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = read_from(&log, from);
        if let Some(at) = text.find("Listening on") {
            let keys = parse_keys(&text[..at]);
            ensure!(
                keys.len() >= accounts,
                "anvil listed {} dev keys, {accounts} are needed",
                keys.len()
            );
            let url = Url::parse(&format!("http://127.0.0.1:{}", plan.anvil_port))?;
            return Ok(LocalAnvil { url, keys });
        }
        if let Some(status) = procs.anvil_exited() {
            let hint = if loading {
                format!(
                    "; it could not load the saved chain {} — start over with --clean",
                    rel(&state)
                )
            } else {
                String::new()
            };
            bail!(
                "anvil exited at start ({status}): {}{hint} (log: {})",
                last_lines(&log, 3),
                rel(&log)
            );
        }
        ensure!(
            Instant::now() < deadline,
            "anvil did not start listening within 60 s (see {})",
            rel(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The dev keys anvil prints under "Private Keys", in order.
fn parse_keys(banner: &str) -> Vec<PrivateKeySigner> {
    let Some(at) = banner.find("Private Keys") else {
        return Vec::new();
    };
    banner[at..]
        .lines()
        .skip(1)
        .map(str::trim)
        .skip_while(|l| !l.starts_with('('))
        .take_while(|l| l.starts_with('('))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// Writes `DIR/prometheus/targets/devnet.json` and, when the repository is found, a copy of
/// `monitoring/prometheus.yml` and its rules next to it. Returns the targets file.
fn write_prometheus_files(
    plan: &Plan,
    nodes: &[RunningNode],
    root: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let base = plan.path("prometheus");
    let targets_dir = base.join("targets");
    fs::create_dir_all(&targets_dir)
        .with_context(|| format!("creating {}", targets_dir.display()))?;
    let targets: Vec<Value> = nodes
        .iter()
        .map(|n| {
            json!({
                "targets": [format!("127.0.0.1:{}", n.spec.api_port)],
                "labels": { "node": n.spec.name, "role": if n.spec.host { "host" } else { "renter" } },
            })
        })
        .collect();
    let file = targets_dir.join("devnet.json");
    // Prometheus re-reads the file on change: write whole, then rename.
    let tmp = targets_dir.join(".devnet.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(&targets)?)?;
    fs::rename(&tmp, &file)?;
    if let Some(root) = root.map(Path::to_path_buf).or_else(repo_root) {
        let monitoring = root.join("monitoring");
        fs::copy(
            monitoring.join("prometheus.yml"),
            base.join("prometheus.yml"),
        )
        .context("copying monitoring/prometheus.yml")?;
        let rules = base.join("rules");
        remove_any(&rules)?;
        fs::create_dir_all(&rules)?;
        for entry in fs::read_dir(monitoring.join("rules"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yml" || e == "yaml")
                && let Some(name) = path.file_name()
            {
                fs::copy(&path, rules.join(name))?;
            }
        }
    }
    Ok(file)
}

async fn start_prometheus(
    plan: &Plan,
    procs: &mut Procs,
    binary: &Path,
    port: u16,
) -> anyhow::Result<()> {
    let base = plan.path("prometheus");
    let log = plan.path("logs/prometheus.log");
    let mut cmd = Command::new(binary);
    cmd.arg(format!(
        "--config.file={}",
        base.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        base.join("data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    procs.spawn_prometheus(cmd, &log)?;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/-/ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if let Some(status) = procs.prometheus_exited() {
            bail!(
                "Prometheus exited at start ({status}): {} (log: {})",
                last_lines(&log, 3),
                rel(&log)
            );
        }
        ensure!(
            Instant::now() < deadline,
            "Prometheus was not ready within 60 s (see {})",
            rel(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `scripts/dashboard-queries` against the devnet's Prometheus.
async fn check_dashboards(story: &Story, plan: &Plan, root: Option<&Path>) -> anyhow::Result<()> {
    let root = root
        .map(Path::to_path_buf)
        .or_else(repo_root)
        .ok_or_else(|| {
            anyhow!("cannot find scripts/dashboard-queries (run from the repository)")
        })?;
    let port = plan.prometheus_port.unwrap_or(9090);
    story.say("checking every dashboard panel against Prometheus (scripts/dashboard-queries)");
    let status = tokio::process::Command::new(root.join("scripts/dashboard-queries"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("--retry-for")
        .arg("60")
        .kill_on_drop(true)
        .status()
        .await
        .context("running scripts/dashboard-queries (is python3 installed?)")?;
    ensure!(
        status.success(),
        "scripts/dashboard-queries failed ({status}): a dashboard panel has no data"
    );
    story.say("dashboards: every panel query returns data");
    Ok(())
}

// ------------------------------------------------------------------------------- processes

/// One child process.
#[derive(Debug)]
struct Proc {
    name: String,
    child: Child,
}

/// The children of this devnet. Stopped in order — nodes, Prometheus, anvil — by
/// [`Procs::shutdown`], or by `Drop` on an early error or a panic.
#[derive(Debug, Default)]
struct Procs {
    nodes: Vec<Proc>,
    prometheus: Vec<Proc>,
    anvil: Vec<Proc>,
}

impl Procs {
    fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        // Its own process group: a terminal's Ctrl-C reaches only the devnet, which then stops
        // the children in order.
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            name: name.into(),
            child,
        })
    }

    fn spawn_node(&mut self, name: &str, cmd: Command, log: &Path) -> anyhow::Result<()> {
        self.nodes.push(Self::spawn(name, cmd, log)?);
        Ok(())
    }

    fn spawn_prometheus(&mut self, cmd: Command, log: &Path) -> anyhow::Result<()> {
        self.prometheus.push(Self::spawn("Prometheus", cmd, log)?);
        Ok(())
    }

    fn spawn_anvil(&mut self, cmd: Command, log: &Path) -> anyhow::Result<()> {
        self.anvil.push(Self::spawn("anvil", cmd, log)?);
        Ok(())
    }

    fn exited(group: &mut [Proc]) -> Vec<(String, ExitStatus)> {
        group
            .iter_mut()
            .filter_map(|p| Some((p.name.clone(), p.child.try_wait().ok()??)))
            .collect()
    }

    fn exited_nodes(&mut self) -> Vec<(String, ExitStatus)> {
        Self::exited(&mut self.nodes)
    }

    fn node_exited(&mut self, name: &str) -> Option<ExitStatus> {
        Self::exited(&mut self.nodes)
            .into_iter()
            .find_map(|(n, s)| (n == name).then_some(s))
    }

    fn anvil_exited(&mut self) -> Option<ExitStatus> {
        Self::exited(&mut self.anvil)
            .into_iter()
            .next()
            .map(|e| e.1)
    }

    fn prometheus_exited(&mut self) -> Option<ExitStatus> {
        Self::exited(&mut self.prometheus)
            .into_iter()
            .next()
            .map(|e| e.1)
    }

    /// Stops every child in order; returns the names of those that had to be killed.
    fn shutdown(&mut self, story: &Story) -> Vec<String> {
        let mut killed = Vec::new();
        for (what, group) in [
            ("nodes", &mut self.nodes),
            ("Prometheus", &mut self.prometheus),
            ("anvil", &mut self.anvil),
        ] {
            if group.is_empty() {
                continue;
            }
            story.say(format!("stopping {what}"));
            killed.extend(stop_group(group));
        }
        killed
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for group in [&mut self.nodes, &mut self.prometheus, &mut self.anvil] {
            stop_group(group);
        }
    }
}

/// SIGTERM to every process of `group`, up to [`STOP_TIMEOUT`] for them to exit, then SIGKILL.
/// Empties `group`; returns the names of those killed.
fn stop_group(group: &mut Vec<Proc>) -> Vec<String> {
    for p in group.iter_mut() {
        if matches!(p.child.try_wait(), Ok(None)) {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_child(&p.child),
                rustix::process::Signal::TERM,
            );
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut killed = Vec::new();
    loop {
        let mut running = 0;
        for p in group.iter_mut() {
            if matches!(p.child.try_wait(), Ok(None)) {
                running += 1;
            }
        }
        if running == 0 {
            break;
        }
        if Instant::now() >= deadline {
            for p in group.iter_mut() {
                if matches!(p.child.try_wait(), Ok(None)) {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    killed.push(p.name.clone());
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    group.clear();
    killed
}

/// SIGINT, SIGTERM and SIGHUP, installed before the first child starts.
struct StopSignal {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |k| signal(k).context("listening for signals");
        Ok(Self {
            int: listen(SignalKind::interrupt())?,
            term: listen(SignalKind::terminate())?,
            hup: listen(SignalKind::hangup())?,
        })
    }

    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "Ctrl-C",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

// ------------------------------------------------------------------------- the devnet folder

/// Creates `dir` and returns it absolute.
fn prepare_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).map_err(|e| {
        anyhow!(
            "cannot create the devnet folder {}: {e}; pass a writable --dir",
            dir.display()
        )
    })?;
    let dir = fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let probe = dir.join(".write-test");
    fs::write(&probe, b"").map_err(|e| {
        anyhow!(
            "the devnet folder {} is not writable: {e}; pass a writable --dir",
            dir.display()
        )
    })?;
    let _ = fs::remove_file(probe);
    Ok(dir)
}

/// An exclusive lock on `DIR/devnet.lock` holding this process' id, released on exit.
#[derive(Debug)]
struct DirLock {
    _file: File,
}

impl DirLock {
    fn acquire(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("devnet.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| anyhow!("cannot open {}: {e}; pass a writable --dir", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                bail!(
                    "another hoard devnet is using {} (pid {}); stop it or pass another --dir",
                    dir.display(),
                    if pid.is_empty() { "unknown" } else { pid }
                );
            }
            Err(fs::TryLockError::Error(e)) => {
                bail!("cannot lock {}: {e}", path.display())
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(Self { _file: file })
    }
}

/// Empties `dir` except the lock file.
fn wipe(dir: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n == "devnet.lock") {
            continue;
        }
        remove_any(&path)?;
    }
    Ok(())
}

fn remove_any(path: &Path) -> anyhow::Result<()> {
    let r = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    r.with_context(|| format!("removing {}", path.display()))
}

/// Fails naming the first port something already listens on, and the flag that moves it.
fn check_ports(ports: &[(u16, String, &'static str)]) -> anyhow::Result<()> {
    let mut seen: HashMap<u16, &str> = HashMap::new();
    for (port, what, flag) in ports {
        if let Some(other) = seen.insert(*port, what) {
            bail!("port {port} would be both {other} and {what}; change {flag}");
        }
        if let Err(e) = TcpListener::bind(("127.0.0.1", *port)) {
            if e.kind() == io::ErrorKind::AddrInUse {
                bail!(
                    "port {port} ({what}) is already in use — stop what listens there or pass \
                     {flag} to use another"
                );
            }
            bail!("cannot listen on port {port} ({what}): {e}; pass {flag} to use another");
        }
    }
    Ok(())
}

/// The hoard repository: the first folder holding `monitoring/prometheus.yml`, looking up from
/// the current folder, then from this crate's source folder.
fn repo_root() -> Option<PathBuf> {
    let starts = [
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    starts.into_iter().flatten().find_map(|start| {
        start
            .ancestors()
            .find(|d| d.join("monitoring/prometheus.yml").is_file())
            .map(Path::to_path_buf)
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

// ------------------------------------------------------------------------------ the sample

/// Sizes of the sample's files: a README and four parts summing to `--size-mib`.
fn sample_files(size_mib: u64) -> Vec<(String, u64)> {
    let total = size_mib << 20;
    let parts = [total * 4 / 10, total * 3 / 10, total * 2 / 10];
    let rest = total - parts.iter().sum::<u64>();
    let mut files = vec![("README.txt".to_string(), 0)];
    for (i, len) in parts.into_iter().chain([rest]).enumerate() {
        files.push((format!("data/part-{i}.bin"), len));
    }
    files
}

const SAMPLE_README: &str = "A sample dataset made by `hoard devnet`: pseudo-random parts \
                             (xorshift64, one seed per file), the same on every run.\n";

/// Writes DIR/sample unless a sample of this size is already there; returns (files, bytes).
async fn ensure_sample(plan: &Plan) -> anyhow::Result<(usize, u64)> {
    let dir = plan.path("sample");
    let marker = plan.path("sample.json");
    let want = json!({ "size_mib": plan.size_mib, "version": 1 });
    let files = sample_files(plan.size_mib);
    let bytes = files.iter().map(|f| f.1).sum::<u64>() + SAMPLE_README.len() as u64;
    let have: Option<Value> = fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if have.as_ref() == Some(&want) && dir.is_dir() {
        return Ok((files.len(), bytes));
    }
    remove_any(&dir)?;
    let n = files.len();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for (seed, (name, len)) in files.into_iter().enumerate() {
            let path = dir.join(&name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            if name == "README.txt" {
                fs::write(&path, SAMPLE_README)?;
                continue;
            }
            let mut out = BufWriter::new(
                File::create(&path).with_context(|| format!("creating {}", path.display()))?,
            );
            let mut x =
                0x9e37_79b9_7f4a_7c15u64 ^ (seed as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let mut left = len;
            let mut buf = vec![0u8; 1 << 20];
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                for chunk in buf[..n].chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
                }
                out.write_all(&buf[..n])?;
                left -= n as u64;
            }
            out.flush()?;
        }
        Ok(())
    })
    .await??;
    fs::write(&marker, serde_json::to_vec(&want)?)?;
    Ok((n, bytes))
}

/// Checks that `b` holds exactly the files of `a`, byte for byte; returns (files, bytes).
fn compare_trees(a: &Path, b: &Path) -> anyhow::Result<(usize, u64)> {
    let (fa, fb) = (list_files(a)?, list_files(b)?);
    if let Some(missing) = fa.iter().find(|f| !fb.contains(f)) {
        bail!("the fetched copy lacks {}", missing.display());
    }
    if let Some(extra) = fb.iter().find(|f| !fa.contains(f)) {
        bail!(
            "the fetched copy has a file the sample lacks: {}",
            extra.display()
        );
    }
    let mut bytes = 0;
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    for rel in &fa {
        let (mut x, mut y) = (File::open(a.join(rel))?, File::open(b.join(rel))?);
        let mut offset = 0u64;
        loop {
            let n = read_full(&mut x, &mut ba)?;
            let m = read_full(&mut y, &mut bb)?;
            if n != m || ba[..n] != bb[..m] {
                bail!(
                    "the fetched {} differs from the sample near byte {offset}",
                    rel.display()
                );
            }
            if n == 0 {
                break;
            }
            offset += n as u64;
        }
        bytes += offset;
    }
    Ok((fa.len(), bytes))
}

fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Files under `root`, relative, sorted.
fn list_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root)?.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

// -------------------------------------------------------------------------------- helpers

/// Prints the story: one plain line per event, with the time since the start.
#[derive(Debug)]
struct Story {
    start: Instant,
}

impl Story {
    fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    fn say(&self, msg: impl AsRef<str>) {
        let msg = msg.as_ref();
        println!("[{:>6.1}s] {msg}", self.start.elapsed().as_secs_f64());
    }
}

/// `path` relative to the current folder when below it (shorter lines), else as is.
fn rel(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// The text of `path` from byte `from` on (lossy; empty when unreadable).
fn read_from(path: &Path, from: u64) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path)
        && f.seek(io::SeekFrom::Start(from)).is_ok()
    {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last `n` non-empty lines of a log, joined with " | ".
fn last_lines(path: &Path, n: usize) -> String {
    let text = read_from(path, 0);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
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

/// A slot id, as the contract and the node compute it.
fn slot_id(request: B256, index: u16) -> B256 {
    let id = hoard_prover::slot_id(
        &hoard_prover::RequestId(request.0),
        hoard_prover::SlotIndex(index),
    );
    B256::from(id.0)
}

/// Token base units (18 decimals) as tokens with four decimals.
fn tokens(units: U256) -> String {
    let scaled = units / U256::from(10u64.pow(14));
    let scaled: u128 = scaled.try_into().unwrap_or(u128::MAX);
    format!("{}.{:04} tHOARD", scaled / 10_000, scaled % 10_000)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn short_id(id: &B256) -> String {
    let s = id.to_string();
    format!("{}…", &s[..10])
}

fn short_addr(a: Address) -> String {
    let s = a.to_string();
    format!("{}…{}", &s[..6], &s[s.len() - 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_sizes_add_up() {
        for mib in [1, 4, 16, 1000] {
            let files = sample_files(mib);
            assert_eq!(files.iter().map(|f| f.1).sum::<u64>(), mib << 20);
            assert_eq!(files.len(), 5);
        }
    }

    #[test]
    fn keys_are_read_from_anvils_banner() {
        let banner = "Available Accounts\n==================\n\n(0) 0xf39F (10000 ETH)\n\n\
                      Private Keys\n==================\n\n\
                      (0) 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n\
                      (1) 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d\n\n\
                      Wallet\n==================\n";
        let keys = parse_keys(banner);
        assert_eq!(keys.len(), 2);
        assert_eq!(
            keys[0].address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
    }

    #[test]
    fn busy_ports_name_their_flag() {
        let held = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = held.local_addr().expect("bound").port();
        let err = check_ports(&[(port, "anvil's JSON-RPC".into(), "--port")])
            .expect_err("busy")
            .to_string();
        assert!(
            err.contains(&port.to_string()) && err.contains("--port"),
            "{err}"
        );
        let err = check_ports(&[
            (1, "a".into(), "--port"),
            (1, "b".into(), "--api-base-port"),
        ])
        .expect_err("twice")
        .to_string();
        assert!(err.contains("both"), "{err}");
    }

    #[test]
    fn tokens_read_as_decimals() {
        assert_eq!(
            tokens(U256::from(1_234_500_000_000_000_000u64)),
            "1.2345 tHOARD"
        );
        assert_eq!(tokens(U256::ZERO), "0.0000 tHOARD");
    }
}
