//! Proof-scheduler benchmark: one host process with many filled slots, proving every period.
//!
//! `cargo bench -p hoard --bench scheduler [-- --slots N --compact C --period-blocks L --periods P
//! --slot-kib S]`
//!
//! ```text
//!  anvil (1 s blocks) + contracts ── renter (in this process) puts N datasets of S KiB, k=1 m=1,
//!                                    proof probability 1 (a proof every period: the worst case);
//!                                    the first C of them compact, the rest direct (side by side)
//!                                 ── host A: `hoard node run --host`, its own process (measured)
//!                                 ── host B (in this process) takes the other slot of each request
//!  after every slot is filled: renter and host B stop, host A's peak RSS is reset, then for P
//!  whole periods: host A's RSS and CPU time, the block of the period by which all its proofs
//!  were mined, and the proofs on chain (proofStatus of every slot) against the proofs required,
//!  with the gas of each scheme's proof transactions in the period.
//! ```
//!
//! Prints figures and exits non-zero if a required proof is missing; asserts nothing about speed
//! (tests never time things; this is the benchmark). Host A runs with the test harness's node
//! settings (250 ms chain poll) but a 30 s receipt timeout, and two proofs built at a time (the
//! default).

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use anyhow::{Context as _, bail, ensure};
use hoard_api::Scheme;
use hoard_chain::ProofStatus;
use hoard_node::NodeConfig;
use hoard_tests::{Client, Network, TestNode, eventually, free_port, params, succeeded};

/// Requests posted before waiting for their slots to fill.
const BATCH: usize = 50;

struct Args {
    slots: usize,
    compact: usize,
    period_blocks: u64,
    periods: u64,
    slot_kib: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        slots: 1000,
        compact: 0,
        period_blocks: 64,
        periods: 3,
        slot_kib: 1024,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> anyhow::Result<u64> {
            it.next()
                .with_context(|| format!("{flag} needs a value"))?
                .parse()
                .with_context(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--slots" => a.slots = value()? as usize,
            "--compact" => a.compact = value()? as usize,
            "--period-blocks" => a.period_blocks = value()?,
            "--periods" => a.periods = value()?,
            "--slot-kib" => a.slot_kib = value()? as usize,
            "--bench" => {} // added by cargo
            other => bail!(
                "unknown argument {other}; use --slots, --compact, --period-blocks, --periods, --slot-kib"
            ),
        }
    }
    ensure!(
        a.slots > 0 && a.periods > 0 && a.slot_kib > 0,
        "values must be positive"
    );
    ensure!(a.compact <= a.slots, "--compact is at most --slots");
    Ok(a)
}

/// A `hoard node run` child process, killed on drop.
struct HostProcess {
    child: Child,
    api: Client,
    log: PathBuf,
}

impl HostProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// User + system CPU seconds so far.
    fn cpu_secs(&self) -> f64 {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // clock ticks are 100 per second on Linux (USER_HZ).
        (ticks(11) + ticks(12)) / 100.0
    }

    /// RPC calls so far, and per scheme the gas and transactions of its proof method.
    async fn proof_costs(&self) -> Costs {
        let mut c = Costs {
            rpc: self.metric("hoard_rpc_requests_total").await,
            ..Costs::default()
        };
        for (i, method) in ["submitProof", "submitCompactProof"]
            .into_iter()
            .enumerate()
        {
            c.gas[i] = self
                .metric(&format!("hoard_tx_gas_used_total{{method=\"{method}\"}}"))
                .await;
            c.sent[i] = self
                .metric(&format!("hoard_tx_sent_total{{method=\"{method}\"}}"))
                .await;
        }
        c
    }

    /// One series of its /metrics (0 if it does not answer).
    async fn metric(&self, series: &str) -> f64 {
        self.api.metric(series).await.unwrap_or(0.0)
    }
}

/// Host A's proof costs so far; `[direct, compact]`.
#[derive(Debug, Clone, Copy, Default)]
struct Costs {
    rpc: f64,
    gas: [f64; 2],
    sent: [f64; 2],
}

impl std::ops::Sub for Costs {
    type Output = Self;

    fn sub(self, o: Self) -> Self {
        Self {
            rpc: self.rpc - o.rpc,
            gas: [self.gas[0] - o.gas[0], self.gas[1] - o.gas[1]],
            sent: [self.sent[0] - o.sent[0], self.sent[1] - o.sent[1]],
        }
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts host A as its own process with the harness's settings for a host named `name`.
async fn start_host_process(net: &mut Network, name: &str) -> anyhow::Result<HostProcess> {
    let (mut config, key) = net.config(name);
    config.host.enabled = true;
    approve_all(net, &key).await?;
    // Fixed ports: the process cannot tell us which port 0 became.
    let api = free_port()?;
    config.api.listen = format!("127.0.0.1:{api}").parse()?;
    config.p2p.listen = vec![format!("/ip4/127.0.0.1/tcp/{}", free_port()?)];
    config.chain.receipt_timeout_secs = 30;
    // A host's default batch (the test harness proves 4 slots at a time for speed).
    config.compact.max_batch = NodeConfig::default().compact.max_batch;
    fs::create_dir_all(&config.data_dir)?;
    let file = config.data_dir.join("node.toml");
    fs::write(&file, toml::to_string(&config)?)?;
    let log = config.data_dir.join("node.log");
    let out = fs::File::create(&log)?;
    let child = Command::new(env!("CARGO_BIN_EXE_hoard"))
        .args(["node", "run", "--config"])
        .arg(&file)
        .env("HOARD_PRIVATE_KEY", key.to_bytes().to_string())
        .env("HOARD_LOG", "warn,hoard_node=warn")
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .spawn()
        .context("starting the host process")?;
    // Reads only (node info, /metrics): no token needed.
    let host = HostProcess {
        child,
        api: Client::new(&format!("http://127.0.0.1:{api}"), None),
        log,
    };
    eventually(Duration::from_secs(60), "host A's API", || async {
        Ok(host.api.node_info().await.ok().map(drop))
    })
    .await?;
    Ok(host)
}

/// Lets the marketplace take any amount of `key`'s tokens. The nodes approve exactly what each
/// transaction needs; with hundreds of fills at once, one approval up front keeps the setup from
/// spending a block on an approval between fills.
async fn approve_all(net: &Network, key: &PrivateKeySigner) -> anyhow::Result<()> {
    net.client(key.clone())
        .await?
        .token_approve(net.deployment.marketplace, U256::MAX)
        .await?;
    Ok(())
}

/// Writes `n` distinct files of `len` bytes (a shared pseudo-random body, its index in front).
fn write_inputs(dir: &Path, n: usize, len: usize) -> anyhow::Result<Vec<PathBuf>> {
    let body = dir.join("body.bin");
    hoard_tests::write_dataset(&body, len)?;
    let mut bytes = fs::read(&body)?;
    (0..n)
        .map(|i| {
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let path = dir.join(format!("input-{i}.bin"));
            fs::write(&path, &bytes)?;
            Ok(path)
        })
        .collect()
}

/// Posts one put (compact or direct) and returns its job id.
async fn post_put(renter: &TestNode, input: &Path, compact: bool) -> anyhow::Result<String> {
    let mut p = params(7 * 24 * 3600, 3600);
    p.path = input.to_path_buf();
    p.data_slots = 1;
    p.parity_slots = 1;
    p.samples = 16;
    if compact {
        p.scheme = Scheme::Compact;
    }
    Ok(renter.api().put(&p).await?.job)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    hoard_tests::init_logs();
    let mut net = Network::start(a.period_blocks).await?;
    println!(
        "scheduler bench: {} slots of {} KiB ({} compact, {} direct), {}-block periods (1 s blocks), {} periods measured",
        a.slots,
        a.slot_kib,
        a.compact,
        a.slots - a.compact,
        a.period_blocks,
        a.periods
    );

    let (mut renter_cfg, renter_key) = net.config("renter");
    renter_cfg.chain.poll_interval_ms = 1000;
    let (mut b_cfg, b_key) = net.config("host-b");
    b_cfg.host.enabled = true;
    for key in [&renter_key, &b_key] {
        approve_all(&net, key).await?;
    }
    let mut host_a = start_host_process(&mut net, "host-a").await?;
    let a_addr = host_a.api.node_info().await?.address;
    let mut renter = TestNode::start(renter_cfg, renter_key).await?;
    let mut host_b = TestNode::start(b_cfg, b_key).await?;
    let chain = net.observer().await?;
    eventually(Duration::from_secs(60), "three nodes announced", || async {
        Ok((chain.hosts().await?.len() >= 3).then_some(()))
    })
    .await?;

    // Setup: N requests in batches; each batch waits until both its slots are filled.
    let setup = Instant::now();
    let inputs = write_inputs(net.dir.path(), a.slots, a.slot_kib << 10)?;
    let mut posted = 0;
    for batch in inputs.chunks(BATCH) {
        let mut jobs = Vec::new();
        for input in batch {
            jobs.push(post_put(&renter, input, posted + jobs.len() < a.compact).await?);
        }
        for job in &jobs {
            succeeded(renter.api().wait_job(job, Duration::from_secs(600)).await?)?;
        }
        posted += batch.len();
        println!(
            "  setup: {posted} requests filled ({:.0} s)",
            setup.elapsed().as_secs_f64()
        );
    }
    let mine = chain.host_slots(a_addr).await?;
    ensure!(
        mine.len() == a.slots,
        "host A holds {} slots, expected {}",
        mine.len(),
        a.slots
    );
    let mut compact_slots = HashSet::new();
    for slot in &mine {
        let request = chain.get_slot(*slot).await?.request_id;
        if chain.get_request(request).await?.params.scheme == 1 {
            compact_slots.insert(*slot);
        }
    }
    ensure!(
        compact_slots.len() == a.compact,
        "host A holds {} compact slots, expected {}",
        compact_slots.len(),
        a.compact
    );
    println!(
        "setup: {} requests, host A holds {} slots, host A peak RSS while filling {} MiB ({:.0} s)",
        a.slots,
        mine.len(),
        host_a.status_kib("VmHWM:") / 1024,
        setup.elapsed().as_secs_f64()
    );
    renter.stop().await;
    host_b.stop().await;

    // Measure whole periods from the next one on.
    let first = chain.current_period().await? + 1;
    let start_block = first * a.period_blocks;
    eventually(
        Duration::from_secs(a.period_blocks * 3),
        "the first measured period",
        || async { Ok((chain.head().await?.0 >= start_block).then_some(())) },
    )
    .await?;
    // Writing 5 to clear_refs resets the process's VmHWM to its current RSS.
    fs::write(format!("/proc/{}/clear_refs", host_a.pid()), "5")
        .context("resetting host A's peak RSS")?;
    let rss_start = host_a.status_kib("VmRSS:") / 1024;
    let costs0 = host_a.proof_costs().await;
    let mut failures = 0;
    for period in first..first + a.periods {
        let cpu0 = host_a.cpu_secs();
        let period_costs0 = host_a.proof_costs().await;
        let submitted0 = host_a.metric("hoard_proofs_submitted_total").await;
        let proving0 = host_a.metric("hoard_compact_prove_seconds_sum").await;
        let period_start = period * a.period_blocks;
        let period_end = period_start + a.period_blocks; // first block of the next period
        let mut all_in_at = None;
        let mut max_rss = 0;
        loop {
            let (head, _) = chain.head().await?;
            max_rss = max_rss.max(host_a.status_kib("VmRSS:"));
            let done = host_a.metric("hoard_proofs_submitted_total").await - submitted0;
            if all_in_at.is_none() && done as usize >= a.slots {
                all_in_at = Some(head.saturating_sub(period_start));
            }
            if head >= period_end {
                break;
            }
            if let Some(status) = host_a.child.try_wait()? {
                bail!("host A exited ({status}); see {}", host_a.log.display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let cpu = host_a.cpu_secs() - cpu0;
        let proving = host_a.metric("hoard_compact_prove_seconds_sum").await - proving0;
        // Proofs of the period mined after its last block count in the next period's gas; the
        // totals below are exact.
        let spent = host_a.proof_costs().await - period_costs0;
        let mut on_chain = [0usize; 2];
        for slot in &mine {
            if chain.proof_status(*slot, period).await? == ProofStatus::Submitted {
                on_chain[usize::from(compact_slots.contains(slot))] += 1;
            }
        }
        failures += a.slots - on_chain[0] - on_chain[1];
        println!(
            "period {period}: direct {}/{} and compact {}/{} proofs on chain; all mined by block {} of {}; host A CPU {cpu:.1} s, max RSS {} MiB; gas direct {:.0} ({:.0} txs), compact {:.0} ({:.0} txs, {proving:.0} s proving)",
            on_chain[0],
            a.slots - a.compact,
            on_chain[1],
            a.compact,
            all_in_at.map_or("—".to_string(), |b| b.to_string()),
            a.period_blocks,
            max_rss / 1024,
            spent.gas[0],
            spent.sent[0],
            spent.gas[1],
            spent.sent[1],
        );
    }
    let spent = host_a.proof_costs().await - costs0;
    let per_slot = |i: usize, slots: usize| {
        if slots == 0 {
            "—".to_string()
        } else {
            format!("{:.0}", spent.gas[i] / (slots as u64 * a.periods) as f64)
        }
    };
    println!(
        "host A: RSS {rss_start} MiB at the start of measuring, peak {} MiB while proving; \
         gas per slot-proof: direct {}, compact {} ({:.0} compact txs); {:.1} RPC calls per slot-proof",
        host_a.status_kib("VmHWM:") / 1024,
        per_slot(0, a.slots - a.compact),
        per_slot(1, a.compact),
        spent.sent[1],
        spent.rpc / (a.slots as u64 * a.periods) as f64,
    );
    if failures > 0 {
        // The log goes with the network's temporary folder: show its end.
        let log = fs::read_to_string(&host_a.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        eprintln!("host A's last log lines:");
        for line in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("  {line}");
        }
        bail!("{failures} required proofs missing");
    }
    Ok(())
}
