//! hoard's end-to-end test crate: multi-node networks on a real anvil chain with the real
//! contracts, nodes talking over real libp2p sockets and driven through their REST API.
//!
//! [`Network`] starts anvil (1 s blocks), deploys the contracts with short periods, funds the
//! dev accounts from the test token, and starts nodes in this process (each with its own data
//! folder, ports and metrics registry). Tests wait with [`eventually`] (a poll with a deadline),
//! never with bare sleeps.
//!
//! [`RpcProxy`] sits between nodes and anvil to cut the chain off or catch a transaction on its
//! way ([`Network::rpc_proxy`] routes every node started afterwards through one). Every node's
//! REST API, in this process or a `hoard node run` child, is driven with `hoard_api::Client`.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod proxy;

pub use proxy::{RpcProxy, Trap};

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::{
    primitives::{Address, U256},
    signers::local::PrivateKeySigner,
};
use anyhow::Context as _;
pub use hoard_api::Client;
use hoard_api::{DownloadRequest, JobStatus, PutRequest, SlotStatus};
use hoard_chain::{
    Chain, ChainConfig, Deployment,
    devnet::{DeploySettings, LocalChain},
};
use hoard_node::{Node, NodeConfig};
use hoard_prover::{DatasetId, RequestId};
use tempfile::TempDir;

/// Tokens each account gets from the faucet (18 decimals).
pub const FUNDS: u128 = 1_000_000 * 10u128.pow(18);

/// A chain with the contracts and some nodes.
#[derive(Debug)]
pub struct Network {
    /// anvil (killed on drop).
    pub chain: LocalChain,
    /// The deployment.
    pub deployment: Deployment,
    /// Where the deployment file is.
    pub deployment_file: PathBuf,
    /// Scratch space for nodes and data.
    pub dir: TempDir,
    /// When set, nodes configured afterwards reach the chain through this proxy.
    pub rpc_proxy: Option<RpcProxy>,
    keys: Vec<PrivateKeySigner>,
    next_key: usize,
}

/// A node started by the harness, with an API client.
#[derive(Debug)]
pub struct TestNode {
    /// The node.
    pub node: Option<Node>,
    /// Its config (to restart it).
    pub config: NodeConfig,
    /// Its key.
    pub key: PrivateKeySigner,
    /// API base URL.
    pub url: String,
    api: Client,
}

impl Network {
    /// Starts anvil and deploys with `period_length` blocks per period.
    pub async fn start(period_length: u64) -> anyhow::Result<Self> {
        Self::start_with(DeploySettings {
            period_length,
            grace_blocks: period_length,
            ..DeploySettings::default()
        })
        .await
    }

    /// Starts anvil and deploys with `settings`.
    pub async fn start_with(settings: DeploySettings) -> anyhow::Result<Self> {
        let chain = LocalChain::start(1, None)?;
        let keys = chain.keys();
        let deployment =
            hoard_chain::devnet::deploy(&chain.rpc_url(), keys[0].clone(), settings).await?;
        let dir = tempfile::tempdir()?;
        let deployment_file = dir.path().join("deployment.json");
        deployment.save(&deployment_file)?;
        let this = Self {
            chain,
            deployment,
            deployment_file,
            dir,
            rpc_proxy: None,
            keys,
            next_key: 1,
        };
        let accounts: Vec<Address> = this.keys.iter().map(|k| k.address()).collect();
        hoard_chain::devnet::fund(
            &this.client(this.keys[0].clone()).await?,
            &accounts,
            U256::from(FUNDS),
        )
        .await?;
        Ok(this)
    }

    /// A chain client signing with `key`.
    pub async fn client(&self, key: PrivateKeySigner) -> anyhow::Result<Chain> {
        Ok(Chain::connect(
            ChainConfig {
                rpc_url: self.chain.rpc_url(),
                deployment: self.deployment,
                signer: Some(key),
                receipt_timeout: Duration::from_secs(30),
                gas_margin_percent: 20,
            },
            &prometheus::Registry::new(),
        )
        .await?)
    }

    /// A read-only view of the chain (signs with the deployer, which no node uses).
    pub async fn observer(&self) -> anyhow::Result<Chain> {
        self.client(self.keys[0].clone()).await
    }

    /// A node config for a new node named `name`, with the next unused dev key.
    pub fn config(&mut self, name: &str) -> (NodeConfig, PrivateKeySigner) {
        let key = self.keys[self.next_key % self.keys.len()].clone();
        self.next_key += 1;
        let mut c = NodeConfig {
            data_dir: self.dir.path().join(name),
            ..NodeConfig::default()
        };
        c.api.listen = "127.0.0.1:0".parse().expect("literal address");
        c.p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
        c.p2p.request_timeout_secs = 10;
        c.chain.rpc_url = self
            .rpc_proxy
            .as_ref()
            .map_or_else(|| self.chain.rpc_url(), RpcProxy::url);
        c.chain.deployment = self.deployment_file.clone();
        c.chain.poll_interval_ms = 250;
        // Periods are 8 s here: a transaction dropped by a reorg must be sent again quickly.
        c.chain.receipt_timeout_secs = 6;
        c.host.fill_backoff_secs = 3;
        c.host.deadline_margin_blocks = 3;
        // The small circuit only (seconds per proof), its keys generated once for every test.
        c.compact.keys_dir = Some(compact_keys_dir());
        c.compact.max_batch = 4;
        (c, key)
    }

    /// Starts a node.
    pub async fn node(&mut self, name: &str, host: bool) -> anyhow::Result<TestNode> {
        let (mut config, key) = self.config(name);
        config.host.enabled = host;
        TestNode::start(config, key).await
    }

    /// Starts a renter node that also validates, and `hosts` host nodes, and waits until all
    /// are announced on chain.
    pub async fn renter_and_hosts(
        &mut self,
        hosts: usize,
    ) -> anyhow::Result<(TestNode, Vec<TestNode>)> {
        self.renter_and_hosts_with(hosts, |_| {}).await
    }

    /// [`Network::renter_and_hosts`] with `tweak` applied to each host's config.
    pub async fn renter_and_hosts_with(
        &mut self,
        hosts: usize,
        tweak: impl Fn(&mut NodeConfig),
    ) -> anyhow::Result<(TestNode, Vec<TestNode>)> {
        let (mut config, key) = self.config("renter");
        config.validator.enabled = true;
        let renter = TestNode::start(config, key).await?;
        let mut started = Vec::new();
        for i in 0..hosts {
            let (mut config, key) = self.config(&format!("host-{i}"));
            config.host.enabled = true;
            tweak(&mut config);
            started.push(TestNode::start(config, key).await?);
        }
        let observer = self.observer().await?;
        eventually(
            Duration::from_secs(60),
            "every node to be announced on chain",
            || async { Ok((observer.hosts().await?.len() > hosts).then_some(())) },
        )
        .await?;
        Ok((renter, started))
    }
}

/// Where the tests keep the compact circuits' Groth16 keys (generated from the devnet seed the
/// first time, then shared by every test and `hoard devnet`): `$HOARD_KEY_CACHE`, else
/// `compact-keys` in cargo's target folder (found from the test binary's path,
/// `target/<profile>/deps/…`), else the system's temporary folder.
pub fn compact_keys_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOARD_KEY_CACHE") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .filter(|target| target.join("CACHEDIR.TAG").is_file())
        .unwrap_or_else(std::env::temp_dir)
        .join("compact-keys")
}

/// What a test stores.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Dataset id.
    pub dataset: DatasetId,
    /// Request id.
    pub request: RequestId,
    /// The original file.
    pub input: PathBuf,
}

/// Puts a `len`-byte generated file through `renter` with 4+2 slots; waits for the job (every
/// slot filled) when `wait`, else only until the request is posted.
pub async fn put(
    renter: &TestNode,
    dir: &Path,
    len: usize,
    params: &PutRequest,
    wait: bool,
) -> anyhow::Result<Stored> {
    put_via(renter.api(), dir, len, params, wait).await
}

/// [`put`] through any node's API (a `hoard node run` child too).
pub async fn put_via(
    renter: &Client,
    dir: &Path,
    len: usize,
    params: &PutRequest,
    wait: bool,
) -> anyhow::Result<Stored> {
    let input = dir.join(format!("input-{len}.bin"));
    write_dataset(&input, len)?;
    let mut params = params.clone();
    params.path = input.clone();
    let job = renter.put(&params).await?.job;
    let status = if wait {
        succeeded(renter.wait_job(&job, Duration::from_secs(120)).await?)?
    } else {
        eventually(
            Duration::from_secs(60),
            "the request to be posted",
            || async {
                let s = renter.job(&job).await?;
                if let Some(e) = &s.error {
                    anyhow::bail!("put failed: {e}");
                }
                Ok(s.result.get("request").is_some().then_some(s))
            },
        )
        .await?
    };
    Ok(Stored {
        dataset: serde_json::from_value(status.result["dataset"].clone())?,
        request: serde_json::from_value(status.result["request"].clone())?,
        input,
    })
}

/// Fetches `stored` through a fresh node (which holds nothing and fetches from the hosts),
/// checks it byte for byte against the input, stops that node and returns the job.
pub async fn fetch_and_compare(net: &mut Network, stored: &Stored) -> anyhow::Result<JobStatus> {
    let mut reader = net.node("reader", false).await?;
    let out = net.dir.path().join("fetched.bin");
    let job = reader.download(stored.dataset, &out).await?;
    anyhow::ensure!(
        std::fs::read(&out)? == std::fs::read(&stored.input)?,
        "fetched bytes differ from the input"
    );
    reader.stop().await;
    Ok(job)
}

/// Downloads `dataset` to `out` through the node behind `api` and waits for the job (failing
/// if it failed).
pub async fn download_via(
    api: &Client,
    dataset: DatasetId,
    out: &Path,
) -> anyhow::Result<JobStatus> {
    let job = api
        .download(&DownloadRequest {
            dataset,
            out: out.to_path_buf(),
            paths: Vec::new(),
        })
        .await?
        .job;
    succeeded(api.wait_job(&job, Duration::from_secs(120)).await?)
}

/// `status`, or an error if its job failed.
pub fn succeeded(status: JobStatus) -> anyhow::Result<JobStatus> {
    match &status.error {
        Some(e) => anyhow::bail!("job {} failed: {e}", status.id),
        None => Ok(status),
    }
}

/// Stops every node of `nodes`.
pub async fn stop_all(nodes: &mut [TestNode]) {
    for n in nodes {
        n.stop().await;
    }
}

/// Request parameters the tests use: 4+2 slots, a proof every period, 8 samples.
pub fn params(duration: u64, expiry: u64) -> PutRequest {
    PutRequest {
        path: PathBuf::new(),
        data_slots: 4,
        parity_slots: 2,
        duration,
        expiry,
        price_per_byte_per_second: U256::from(1000u64),
        collateral_per_byte: U256::from(100_000u64),
        proof_probability: 1,
        samples: 8,
        scheme: hoard_api::Scheme::Direct,
        new_request: false,
    }
}

impl TestNode {
    /// Starts a node with `config`.
    pub async fn start(config: NodeConfig, key: PrivateKeySigner) -> anyhow::Result<Self> {
        let node = Node::start(config.clone(), key.clone()).await?;
        let url = format!("http://{}", node.api_addr());
        Ok(Self {
            api: Client::new(&url, Some(node.token().expose().to_string())),
            url,
            node: Some(node),
            config,
            key,
        })
    }

    /// The node's account.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// Stops the node (clean shutdown).
    pub async fn stop(&mut self) {
        if let Some(n) = self.node.take() {
            n.stop().await;
        }
    }

    /// The node's API client.
    pub fn api(&self) -> &Client {
        &self.api
    }

    /// The value of one metric line (exact series), or 0.
    pub async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        Ok(self.api.metric(series).await?)
    }

    /// Downloads `dataset` to `out` through this node and waits for it.
    pub async fn download(&self, dataset: DatasetId, out: &Path) -> anyhow::Result<JobStatus> {
        download_via(&self.api, dataset, out).await
    }
}

pub use hoard_api::metric_value;

/// Token balances of a renter and its hosts, taken before a request to check payouts against.
#[derive(Debug, Clone)]
pub struct Balances {
    /// The renter's.
    pub renter: U256,
    /// Each host's, in the order given.
    pub hosts: Vec<U256>,
}

impl Balances {
    /// Reads the balances of `renter` and `hosts` now.
    pub async fn of(chain: &Chain, renter: &TestNode, hosts: &[TestNode]) -> anyhow::Result<Self> {
        let mut balances = Vec::new();
        for h in hosts {
            balances.push(chain.token_balance(h.address()).await?);
        }
        Ok(Self {
            renter: chain.token_balance(renter.address()).await?,
            hosts: balances,
        })
    }
}

/// After `request` ended at `end`: every host withdraws, then the renter. Host i holding slot i
/// must have gained exactly `pay_per_second`·(end − filledAtᵢ) over `before` (its collateral came
/// back), the renter must have paid exactly their sum, and the marketplace must hold nothing.
#[allow(clippy::too_many_arguments)]
pub async fn withdraw_and_check_pay(
    chain: &Chain,
    request: RequestId,
    renter: &TestNode,
    hosts: &[TestNode],
    slots: &[SlotStatus],
    pay_per_second: U256,
    end: u64,
    before: &Balances,
) -> anyhow::Result<()> {
    let mut filled_at = Vec::new();
    for s in slots {
        filled_at.push(chain.get_slot(s.slot_id).await?.filled_at);
    }
    for h in hosts {
        h.api().host_withdraw().await?;
    }
    renter.api().request_withdraw(&request).await?;
    let mut paid = U256::ZERO;
    for (i, s) in slots.iter().enumerate() {
        let host = hosts
            .iter()
            .position(|h| Some(h.address()) == s.host)
            .expect("a host of ours");
        let earned = pay_per_second * U256::from(end - filled_at[i]);
        paid += earned;
        assert_eq!(
            chain.token_balance(hosts[host].address()).await?,
            before.hosts[host] + earned,
            "host of slot {i}"
        );
    }
    assert_eq!(
        chain.token_balance(renter.address()).await?,
        before.renter - paid,
        "renter"
    );
    assert_eq!(
        chain.token_balance(chain.deployment().marketplace).await?,
        U256::ZERO,
        "nothing left in escrow"
    );
    Ok(())
}

/// Waits until `request` is in `state` on chain (polled, failing after `timeout`).
pub async fn until_state(
    chain: &Chain,
    request: RequestId,
    state: hoard_chain::RequestState,
    timeout: Duration,
) -> anyhow::Result<()> {
    let what = format!("request {request} to be {state}");
    eventually(timeout, &what, || async {
        Ok((chain.request_state(request).await? == state).then_some(()))
    })
    .await
}

/// Polls `check` every 250 ms until it returns `Some`, failing after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    poll_every(Duration::from_millis(250), timeout, what, check).await
}

/// [`eventually`] polling every `every`: for moments that pass quickly (a download under way).
pub async fn poll_every<T, F, Fut>(
    every: Duration,
    timeout: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(anyhow::anyhow!(
                "timed out after {timeout:?} waiting for {what} (last error: {last_err:?})"
            ));
        }
        tokio::time::sleep(every).await;
    }
}

/// Writes a deterministic pseudo-random file of `len` bytes, 1 MiB at a time.
pub fn write_dataset(path: &Path, len: usize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        for b in &mut chunk[..n] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        file.write_all(&chunk[..n])?;
        left -= n;
    }
    file.flush()?;
    Ok(())
}

/// The first of `len` consecutive local TCP ports, all free when chosen, for a node or devnet
/// started as a child process (which must be told its ports; nodes in this process bind port 0).
///
/// The run lies below the kernel's ephemeral range: a port the OS hands out (a parallel test's
/// outgoing connection or port-0 listener, the devnet's own RPC connections) is always an
/// ephemeral one, so a run found free here stays free until the child binds it, even seconds
/// later. One found free inside that range can be handed out in between (a CI run failed that
/// way: a devnet's renter could not bind its port). Successive calls in one process move on, so
/// two runs never overlap before either is bound; processes start at random places.
pub fn free_ports(len: u16) -> anyhow::Result<u16> {
    use std::sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    };
    /// The lowest port handed out (above the usual fixed ones, such as 8545 or 9090).
    const LOWEST: u16 = 10_000;
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&low| low > LOWEST + 1000)
        .unwrap_or(32768);
    let span = u64::from(ephemeral - LOWEST - len);
    let next = NEXT.get_or_init(|| {
        // Random: std's hasher keys are.
        let start = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0u8);
        AtomicU64::new(start % span)
    });
    for _ in 0..500 {
        let base = LOWEST + (next.fetch_add(u64::from(len), Ordering::Relaxed) % span) as u16;
        if (0..len).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return Ok(base);
        }
    }
    anyhow::bail!("no run of {len} free ports below {ephemeral}")
}

/// A free local TCP port for a child process (see [`free_ports`]).
pub fn free_port() -> anyhow::Result<u16> {
    free_ports(1)
}

/// Logs to the test output (`HOARD_LOG` filters; default warnings and node milestones).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,hoard_node=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
