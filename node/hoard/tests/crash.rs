//! A host process killed with SIGKILL at its two worst moments, as an operator would meet it:
//! the `hoard` binary (`hoard node run`) on a real anvil, next to a renter (which also validates)
//! and a second host, for a 1+1 dataset.
//!
//! - **Mid-download**: the host dies while it fetches its slot from the renter. At restart it
//!   removes the partial download, fetches again, fills the slot, and proves from what it stored.
//! - **Between building a proof and getting it mined**: an [`RpcProxy`] in front of the host
//!   catches its `submitProof` transaction; the host is killed at that moment (once before the
//!   transaction reaches the chain, once after) and restarted at once. The period's proof is on
//!   chain each time, none is marked missing, and no duplicate proof is sent.
//! - **Mid-repair**: the host finds damaged blocks at its start-up check and rebuilds them from
//!   the other slot, a batch at a time (the sources' uploads capped so that it takes a while);
//!   it is frozen and killed between two batches. Every block on disk is then the old bytes or
//!   the repaired ones, never a mix, and after a restart the check finds what is left and the
//!   slot is whole again.

use std::{
    fs::{self, OpenOptions},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use anyhow::{Context as _, bail, ensure};
use hoard_api::PutRequest;
use hoard_chain::{Chain, ProofStatus, SlotState};
use hoard_dataset::{slot_data_file, slot_roots_file};
use hoard_node::NodeConfig;
use hoard_prover::SlotIndex;
use hoard_prover::{DatasetId, RequestId, SlotId};
use hoard_tests::{
    Client, Network, RpcProxy, Trap, eventually, free_port, poll_every, put_via, write_dataset,
};
use url::Url;

const HOARD: &str = env!("CARGO_BIN_EXE_hoard");

/// Blocks per period (1 s blocks): room for a restart and a proof within one period.
const PERIOD: u64 = 10;

/// Dataset size of the download test: one 64 MiB slot takes a moment to fetch.
const BIG: usize = 64 << 20;

/// A `hoard node run` child process with the harness's settings; SIGKILLed on drop.
struct NodeProc {
    name: String,
    config: NodeConfig,
    config_file: PathBuf,
    key: PrivateKeySigner,
    log: PathBuf,
    child: Option<Child>,
    api: Client,
}

impl NodeProc {
    /// Configures node `name` as the in-process harness does (short polls and back-offs), on
    /// fixed ports so that a restart keeps the address it announced, and starts it.
    async fn start(
        net: &mut Network,
        name: &str,
        host: bool,
        rpc: Option<Url>,
    ) -> anyhow::Result<Self> {
        Self::start_with(net, name, host, rpc, |_| {}).await
    }

    /// [`Self::start`], with `tweak` applied to the configuration first.
    async fn start_with(
        net: &mut Network,
        name: &str,
        host: bool,
        rpc: Option<Url>,
        tweak: impl FnOnce(&mut NodeConfig),
    ) -> anyhow::Result<Self> {
        let (mut config, key) = net.config(name);
        config.host.enabled = host;
        config.validator.enabled = !host;
        config.api.listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        config.p2p.listen = vec![format!("/ip4/127.0.0.1/tcp/{}", free_port()?)];
        if let Some(url) = rpc {
            config.chain.rpc_url = url;
        }
        tweak(&mut config);
        let config_file = net.dir.path().join(format!("{name}.toml"));
        fs::write(&config_file, toml::to_string(&config)?)?;
        let mut this = Self {
            name: name.into(),
            log: net.dir.path().join(format!("{name}.log")),
            api: Client::new(&format!("http://{}", config.api.listen), None),
            config,
            config_file,
            key,
            child: None,
        };
        this.restart().await?;
        Ok(this)
    }

    /// Starts the process (again: same data folder, key and ports) and waits for its API.
    async fn restart(&mut self) -> anyhow::Result<()> {
        ensure!(self.child.is_none(), "{} is still running", self.name);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(HOARD);
        cmd.args(["node", "run", "--config"])
            .arg(&self.config_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Only this test's settings: no HOARD_* of the caller's shell leaks in.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("HOARD_") && k != "HOARD_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOARD_PRIVATE_KEY", self.key.to_bytes().to_string())
            .env("NO_COLOR", "1");
        let child = self
            .child
            .insert(cmd.spawn().context("starting hoard node run")?);
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://{}", self.config.api.listen);
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                bail!(
                    "{} exited at start ({status}): {}",
                    self.name,
                    self.log_tail()
                );
            }
            if Client::new(&url, None).node_info().await.is_ok() {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{} did not answer on its API within 60 s: {}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let token = fs::read_to_string(self.config.data_dir.join("api-token"))?;
        self.api = Client::new(&url, Some(token.trim().to_string()));
        Ok(())
    }

    /// SIGKILL, and reap it.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // std's kill is SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process stays exactly where it is until killed.
    fn freeze(&self) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("not running")?;
        rustix::process::kill_process(
            rustix::process::Pid::from_child(child),
            rustix::process::Signal::STOP,
        )?;
        Ok(())
    }

    fn address(&self) -> Address {
        self.key.address()
    }

    /// The node's one data folder (`<data_dir>/data`).
    fn volume(&self) -> PathBuf {
        self.config.data_dir.join("data")
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} log (last lines) ---\n{}",
                self.name,
                self.log_tail()
            );
        }
        self.kill9();
    }
}

/// 1 data slot + 1 parity slot, a proof every period.
fn one_plus_one(duration: u64, expiry: u64) -> PutRequest {
    PutRequest {
        data_slots: 1,
        parity_slots: 1,
        ..hoard_tests::params(duration, expiry)
    }
}

/// A renter (validating) and two hosts, all announced on chain.
async fn renter_and_two_hosts(
    net: &mut Network,
    rpc_of_host_a: Option<Url>,
) -> anyhow::Result<(NodeProc, NodeProc, NodeProc)> {
    renter_and_two_hosts_with(net, rpc_of_host_a, |_| {}).await
}

/// [`renter_and_two_hosts`], with `others` applied to the renter's and host B's configurations.
async fn renter_and_two_hosts_with(
    net: &mut Network,
    rpc_of_host_a: Option<Url>,
    others: impl Fn(&mut NodeConfig),
) -> anyhow::Result<(NodeProc, NodeProc, NodeProc)> {
    let renter = NodeProc::start_with(net, "renter", false, None, &others).await?;
    let a = NodeProc::start(net, "host-a", true, rpc_of_host_a).await?;
    let b = NodeProc::start_with(net, "host-b", true, None, &others).await?;
    let chain = net.observer().await?;
    eventually(
        Duration::from_secs(60),
        "the three nodes to be announced on chain",
        || async { Ok((chain.hosts().await?.len() >= 3).then_some(())) },
    )
    .await?;
    Ok((renter, a, b))
}

fn entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        out.push(e?.path());
    }
    Ok(out)
}

/// Lower-case hex without `0x`: how the store names its folders.
fn hex_id(id: &impl AsRef<[u8]>) -> String {
    hex::encode(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_killed_mid_download_cleans_up_fetches_again_and_fills() -> anyhow::Result<()> {
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    let (renter, a, b) = renter_and_two_hosts(&mut net, None).await?;
    let mut hosts = [a, b];

    let input = net.dir.path().join("big.bin");
    write_dataset(&input, BIG)?;
    let mut params = one_plus_one(600, 180);
    params.path = input;
    let job = renter.api.put(&params).await?.job;

    // Catch a host in the middle of its download: some blocks in, far from the end (a slot is
    // about BIG bytes; at most 8 MiB are in flight at once).
    let received = "hoard_p2p_bytes_received_total";
    let victim = poll_every(
        Duration::from_millis(10),
        Duration::from_secs(120),
        "a host to be downloading its slot",
        || async {
            for (i, h) in hosts.iter().enumerate() {
                let got = h.api.metric(received).await?;
                if (1 << 20) as f64 <= got && got <= (BIG / 2) as f64 {
                    return Ok(Some(i));
                }
            }
            Ok(None)
        },
    )
    .await?;
    let victim = &mut hosts[victim];
    // Freeze it where it is, check that it is mid-download, then kill it.
    victim.freeze()?;
    // (The hosts may be faster to see the request than the renter is to see its receipt: ask
    // the chain, not the renter's job.)
    let request = *chain
        .renter_requests(renter.address())
        .await?
        .first()
        .context("the renter's request is on chain")?;
    let tmp = victim.volume().join("tmp");
    let partial = entries(&tmp)?;
    ensure!(partial.len() == 1, "one download in progress: {partial:?}");
    let partial = partial[0].clone();
    let index = (0..2u16)
        .find(|i| partial.join(slot_data_file(SlotIndex(*i))).is_file())
        .context("the partial download holds a slot file")?;
    let slot_id = hoard_prover::slot_id(&request, SlotIndex(index));
    assert!(
        entries(&victim.volume().join("slots"))?.is_empty(),
        "nothing may be stored yet"
    );
    assert_eq!(chain.slot_state(slot_id).await?, SlotState::Free);
    victim.kill9();
    assert!(partial.exists(), "a SIGKILL leaves the partial download");

    // The store is opened before the API answers: by then the leftovers are gone.
    victim.restart().await?;
    assert!(
        !partial.exists(),
        "the partial download survived the restart"
    );

    let filled = eventually(
        Duration::from_secs(90),
        "the restarted host to fill its slot",
        || async {
            let s = chain.get_slot(slot_id).await?;
            Ok((s.state == SlotState::Filled).then_some(s))
        },
    )
    .await?;
    assert_eq!(filled.host, victim.address(), "filled by another host");
    assert!(
        entries(&tmp)?.is_empty(),
        "temporary files left: {:?}",
        entries(&tmp)?
    );
    // What it stored is the renter's slot, byte for byte (data and block roots)...
    let status = renter.api.job(&job).await?;
    let dataset: DatasetId = serde_json::from_value(status.result["dataset"].clone())?;
    let stored = victim.volume().join("slots").join(hex_id(&slot_id));
    let original = renter.volume().join("datasets").join(hex_id(&dataset));
    for file in [
        slot_data_file(SlotIndex(index)),
        slot_roots_file(SlotIndex(index)),
    ] {
        assert!(
            fs::read(stored.join(&file))? == fs::read(original.join(&file))?,
            "{file} differs from the renter's"
        );
    }
    // ...and it proves from it: the next period's proof is accepted.
    let next = filled.filled_period + 1;
    eventually(
        Duration::from_secs(3 * PERIOD),
        "a proof of the slot after its fill",
        || async {
            Ok((chain.proof_status(slot_id, next).await? == ProofStatus::Submitted).then_some(()))
        },
    )
    .await?;
    assert_eq!(
        victim.api.metric("hoard_integrity_failures_total").await?,
        0.0
    );
    Ok(())
}

/// Waits for `trap` to spring (`what`: which transaction), for at most three periods.
async fn sprung(trap: tokio::sync::oneshot::Receiver<()>, what: &str) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(3 * PERIOD), trap)
        .await
        .with_context(|| format!("no transaction from the host within three periods ({what})"))?
        .context("the trap was dropped")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_killed_between_proving_and_mining_proves_once_after_restart() -> anyhow::Result<()>
{
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    let proxy = RpcProxy::start(&net.chain.rpc_url()).await?;
    let (renter, mut host, _other) = renter_and_two_hosts(&mut net, Some(proxy.url())).await?;
    let stored = put_via(
        &renter.api,
        net.dir.path(),
        1 << 20,
        &one_plus_one(600, 120),
        true,
    )
    .await?;
    let slot = slot_of(&chain, stored.request, host.address()).await?;
    let filled_period = chain.get_slot(slot).await?.filled_period;

    // Window 1: the proof is built and signed; the host dies before it reaches the chain.
    let required = host.api.metric("hoard_proofs_required_total").await?;
    let trap = proxy.trap(Trap::Hold);
    sprung(trap, "held").await?;
    let now_required = host.api.metric("hoard_proofs_required_total").await?;
    host.kill9();
    let held = chain.current_period().await?;
    assert!(
        now_required > required,
        "the caught transaction is not a proof"
    );
    assert_ne!(
        chain.proof_status(slot, held).await?,
        ProofStatus::Submitted,
        "the held proof reached the chain"
    );
    host.restart().await?;
    eventually(
        Duration::from_secs(2 * PERIOD),
        "the restarted host to prove the period",
        || async {
            Ok((chain.proof_status(slot, held).await? == ProofStatus::Submitted).then_some(()))
        },
    )
    .await?;

    // Window 2: the proof reached the chain's pool; the host dies before it sees the receipt
    // (nothing recorded locally). Back at once, it must find the proof mined, not send another.
    let trap = proxy.trap(Trap::Pass);
    sprung(trap, "passed").await?;
    host.kill9();
    let passed = chain.current_period().await?;
    host.restart().await?;
    eventually(
        Duration::from_secs(2 * PERIOD),
        "the passed proof to be mined",
        || async {
            Ok((chain.proof_status(slot, passed).await? == ProofStatus::Submitted).then_some(()))
        },
    )
    .await?;

    // One more whole period: the validator (the renter) has had its chance to mark both
    // periods, and the host keeps proving.
    let last = passed + 1;
    eventually(
        Duration::from_secs(3 * PERIOD),
        "the period after the second kill to end",
        || async { Ok((chain.current_period().await? > last).then_some(())) },
    )
    .await?;
    for p in filled_period + 1..=last {
        assert_eq!(
            chain.proof_status(slot, p).await?,
            ProofStatus::Submitted,
            "period {p} (kills in {held} and {passed})"
        );
    }
    assert_eq!(chain.get_slot(slot).await?.missed_proofs, 0);
    assert_eq!(
        host.api
            .metric("hoard_tx_reverted_total{method=\"submitProof\"}")
            .await?,
        0.0,
        "the restarted host sent a duplicate proof"
    );
    // The host knows what the chain knows: the proof its previous run got into the pool counts
    // as mined (`hoard host status`), and it was required once, not once per block.
    eventually(
        Duration::from_secs(2 * PERIOD),
        "the host's record of mined proofs to match the chain",
        || async {
            let status = host.api.host_status().await?;
            let recorded = status
                .slots
                .iter()
                .find(|s| s.slot_id == slot)
                .context("the host lists its slot")?
                .proofs_submitted;
            let now = chain.current_period().await?;
            let mut mined = 0;
            for p in filled_period + 1..=now {
                if chain.proof_status(slot, p).await? == ProofStatus::Submitted {
                    mined += 1;
                }
            }
            Ok((recorded == mined).then_some(()))
        },
    )
    .await?;
    let required = host.api.metric("hoard_proofs_required_total").await?;
    let seen = chain.current_period().await? - passed + 1;
    assert!(
        required <= seen as f64,
        "{required} proofs counted as required in {seen} periods"
    );
    Ok(())
}

/// Upload cap of the repair sources in the mid-repair test: a 1 MiB batch takes about half a
/// second, so the test can stop the host between two batches.
const REPAIR_UPLOAD: u64 = 2 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_killed_mid_repair_keeps_whole_blocks_and_finishes_after_restart()
-> anyhow::Result<()> {
    use hoard_prover::BLOCK_SIZE;
    let mut net = Network::start(PERIOD).await?;
    let chain = net.observer().await?;
    let capped = |c: &mut NodeConfig| c.p2p.upload_limit_bytes_per_sec = REPAIR_UPLOAD;
    let (renter, mut a, _b) = renter_and_two_hosts_with(&mut net, None, capped).await?;
    let stored = put_via(
        &renter.api,
        net.dir.path(),
        8 << 20,
        &one_plus_one(600, 120),
        true,
    )
    .await?;
    let slot = slot_of(&chain, stored.request, a.address()).await?;
    let index = (0..2u16)
        .map(SlotIndex)
        .find(|i| hoard_prover::slot_id(&stored.request, *i) == slot)
        .context("host-a's slot index")?;
    let file = a
        .volume()
        .join("slots")
        .join(hex_id(&slot))
        .join(slot_data_file(index));
    let journal = file.with_file_name("repair.journal");
    let good = fs::read(
        renter
            .volume()
            .join("datasets")
            .join(hex_id(&stored.dataset))
            .join(slot_data_file(index)),
    )?;
    ensure!(good.len() >= 128 * BLOCK_SIZE, "a slot of 128 blocks");

    // Four runs of 16 damaged blocks: four repair batches of 1 MiB each.
    let damaged: Vec<usize> = [0, 32, 64, 96].iter().flat_map(|s| *s..s + 16).collect();
    a.kill9();
    let mut bad = good.clone();
    for b in &damaged {
        bad[b * BLOCK_SIZE + 7] ^= 0x5a;
    }
    fs::write(&file, &bad)?;
    a.restart().await?;

    // Stop it between two batches: at least one written back, not all.
    let repaired = "hoard_self_repair_blocks_total";
    let done = poll_every(
        Duration::from_millis(5),
        Duration::from_secs(60),
        "the first repair batch to be written back",
        || async {
            let n = a.api.metric(repaired).await?;
            Ok((n >= 16.0).then_some(n))
        },
    )
    .await?;
    a.freeze()?;
    ensure!(
        done < damaged.len() as f64,
        "the whole repair ({done} blocks) finished before the host could be stopped"
    );
    let on_disk = fs::read(&file)?;
    let (mut old, mut new) = (0, 0);
    for b in &damaged {
        let r = b * BLOCK_SIZE..(b + 1) * BLOCK_SIZE;
        if on_disk[r.clone()] == good[r.clone()] {
            new += 1;
        } else if on_disk[r.clone()] == bad[r] {
            old += 1;
        } else {
            // Only a block the journal holds may be half written; the restart writes it again.
            ensure!(
                journal.exists(),
                "block {b} is neither the old bytes nor the new"
            );
        }
    }
    ensure!(
        new >= done as usize && old > 0,
        "stopped mid-repair: {new} blocks repaired on disk, {old} still old ({done} counted)"
    );
    a.kill9();

    // The start-up check finds what is left (the journal, if any, replayed first).
    a.restart().await?;
    eventually(
        Duration::from_secs(60),
        "the restarted host to repair the rest",
        || async { Ok((fs::read(&file)? == good).then_some(())) },
    )
    .await?;
    let after = a.api.metric(repaired).await?;
    assert!(
        after > 0.0 && after <= (damaged.len() - new) as f64,
        "{after} blocks repaired after the restart, {new} were repaired before it"
    );
    assert!(!journal.exists(), "the journal was left behind");
    let s = chain.get_slot(slot).await?;
    assert_eq!(
        (s.state, s.host),
        (SlotState::Filled, a.address()),
        "the slot stays host-a's"
    );
    Ok(())
}

/// The slot of `request` that `host` holds.
async fn slot_of(chain: &Chain, request: RequestId, host: Address) -> anyhow::Result<SlotId> {
    for i in 0..2u16 {
        let id = hoard_prover::slot_id(&request, SlotIndex(i));
        if chain.get_slot(id).await?.host == host {
            return Ok(id);
        }
    }
    bail!("{host} holds no slot of the request")
}
