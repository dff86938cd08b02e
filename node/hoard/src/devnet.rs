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
//!  shutdown (Ctrl-C, SIGTERM, SIGHUP, --once, error, panic): SIGCONT + SIGTERM the nodes, then
//!   Prometheus, then anvil (which saves the chain); 10 s each (anvil 60 s), then SIGKILL.
//!   [`Procs`]' Drop does the same. SIGCONT first: a paused anvil would save nothing.
//!  a chain that stops answering (anvil paused, overloaded) is waited for: every child keeps
//!   running, the story says so and carries on when the chain answers again.
//! ```
//!
//! A second run on the same `--dir` resumes: anvil reloads its saved state, the nodes keep their
//! data, and a dataset whose request is still running is watched instead of put again.
//!
//! anvil is started here rather than through `hoard_chain::LocalChain` so that it lives in its own
//! process group (a terminal's Ctrl-C must not stop it before the nodes), logs to a file instead
//! of a pipe nobody reads, and is stopped last.

mod network;
mod procs;
mod sample;
mod story;

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::{self, Read, Seek, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use alloy::primitives::{Address, U256};
use anyhow::{Context as _, anyhow, bail, ensure};
use clap::Args;
use hoard_chain::{Chain, ChainConfig, DeploySettings, Deployment};

use self::{
    network::{print_table, start_anvil, start_nodes, start_prometheus, write_prometheus_files},
    procs::{Procs, StopSignal},
    story::World,
};

/// Test tokens each account gets from the faucet (18 decimals).
const FUNDS: u128 = 1_000_000 * 10u128.pow(18);

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
    /// Split the sample's data into this many files of equal size instead of the default four
    /// unequal parts (40/30/20/10 %); e.g. `--size-mib 4096 --sample-files 1` for one 4 GiB file,
    /// `--size-mib 4000 --sample-files 20` for twenty files of 200 MiB.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    sample_files: Option<u32>,
    /// Proof scheme of the sample's request: direct, or compact (one Groth16 proof per host per
    /// period from keys of the published devnet seed, generated on first use into DIR/compact-keys;
    /// give it periods of 30 blocks or more on a busy machine).
    #[arg(long, default_value_t = hoard_api::Scheme::Direct)]
    scheme: hoard_api::Scheme,
    /// Cap each host's upload to this many bytes per second (`p2p.upload_limit_bytes_per_sec`;
    /// 0: no cap).
    #[arg(long, default_value_t = 0)]
    host_upload_limit: u64,
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
    /// The hosts' scrub interval (`host.scrub.interval_secs`): every hosted block re-checked at
    /// least this often; short values show the scrub at work (0: no scrub).
    #[arg(long, default_value_t = 86_400)]
    scrub_interval_secs: u64,
}

/// The network this run starts, fixed before anything starts.
#[derive(Debug)]
struct Plan {
    dir: PathBuf,
    hosts: u16,
    period_blocks: u64,
    block_time: u64,
    size_mib: u64,
    sample_files: Option<u32>,
    scheme: hoard_api::Scheme,
    host_upload_limit: u64,
    anvil_port: u16,
    prometheus_port: Option<u16>,
    check_dashboards: bool,
    once: bool,
    scrub_interval_secs: u64,
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
            sample_files: args.sample_files,
            scheme: args.scheme,
            host_upload_limit: args.host_upload_limit,
            anvil_port: args.port,
            prometheus_port: prometheus.then_some(args.prometheus_port),
            check_dashboards: args.check_dashboards,
            once: args.once,
            scrub_interval_secs: args.scrub_interval_secs,
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
        let stop = StopSignal::install()?;
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
        procs::stop_timeout_secs()
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
        for stale in [
            "anvil-state.json",
            "nodes",
            "prometheus",
            "story.json",
            "fetched",
        ] {
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
    let node_keys = keys[1..accounts_needed].to_vec();
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

/// Token base units (18 decimals) as tokens with four decimals.
fn tokens(units: U256) -> String {
    let scaled = units / U256::from(10u64.pow(14));
    let scaled: u128 = scaled.try_into().unwrap_or(u128::MAX);
    format!("{}.{:04} tHOARD", scaled / 10_000, scaled % 10_000)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

fn short_addr(a: Address) -> String {
    let s = a.to_string();
    format!("{}…{}", &s[..6], &s[s.len() - 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

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
