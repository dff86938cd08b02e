//! Side-by-side benchmark of hoard's swarm against libtorrent 2.0 (Debian's python3-libtorrent):
//! the same 1 GiB of files (five: one of 10 MiB, four of about 253 MiB) served by six hoard hosts
//! and by six libtorrent seeders, over loopback, runs interleaved. `scripts/bench-swarm` builds
//! and runs it:
//!
//! ```text
//! cargo bench -p hoard-tests --bench swarm -- [SIZE_MIB] [RUNS]     (HOARD_BIN: the release hoard)
//! ```
//!
//! Every hoard node is its own `hoard node run` process (so each reader's CPU is its own, read
//! from `/proc/<pid>/stat`); anvil and the contracts come from the test harness. The renter puts
//! the dataset, waits for the six fills and stops: only the hosts (and readers) serve. Each run
//! uses fresh readers (empty caches). Prints figures and ratios; asserts nothing about speed.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy::{primitives::U256, signers::local::PrivateKeySigner};
use anyhow::Context as _;
use hoard_api::{Client, DownloadRequest, PutRequest};
use hoard_node::NodeConfig;
use hoard_prover::DatasetId;
use hoard_tests::{Network, eventually, free_port, succeeded, write_dataset};

/// CPU seconds (user + system) of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based) = indices 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The machine's CPU time so far, all cores, in clock ticks (from `/proc/stat`).
#[derive(Debug, Clone, Copy)]
struct MachineTicks {
    /// Running code (user, nice, system, irq, softirq).
    busy: f64,
    /// Idle with a disk request outstanding.
    iowait: f64,
    /// Taken by the hypervisor for others (on a VM, including its own disk emulation).
    steal: f64,
    total: f64,
}

impl MachineTicks {
    fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let f: Vec<f64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let at = |i: usize| f.get(i).copied().unwrap_or(0.0);
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        Self {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            iowait: at(4),
            steal: at(7),
            total: (0..8).map(at).sum(),
        }
    }

    /// Shares of the time since `earlier`, in percent: (busy, iowait, steal).
    fn since(&self, earlier: &Self) -> (f64, f64, f64) {
        let total = (self.total - earlier.total).max(1.0) / 100.0;
        (
            (self.busy - earlier.busy) / total,
            (self.iowait - earlier.iowait) / total,
            (self.steal - earlier.steal) / total,
        )
    }
}

/// Peak resident memory of `pid`, MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// A `hoard node run` child process.
struct NodeProc {
    name: String,
    child: Child,
    api: Client,
    url: String,
    config: PathBuf,
    key: PrivateKeySigner,
    bin: PathBuf,
    log: PathBuf,
    data_dir: PathBuf,
}

impl NodeProc {
    async fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        mut config: NodeConfig,
        key: PrivateKeySigner,
    ) -> anyhow::Result<Self> {
        let api_port = free_port()?;
        config.api.listen = format!("127.0.0.1:{api_port}").parse()?;
        config.p2p.listen = vec![format!("/ip4/127.0.0.1/tcp/{}", free_port()?)];
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, toml::to_string(&config)?)?;
        let mut this = Self {
            name: name.to_owned(),
            child: Command::new("true").spawn()?,
            api: Client::new(&format!("http://127.0.0.1:{api_port}"), None),
            url: format!("http://127.0.0.1:{api_port}"),
            config: file,
            key,
            bin: bin.to_path_buf(),
            log: dir.join(format!("{name}.log")),
            data_dir: config.data_dir.clone(),
        };
        this.spawn()?;
        let token_path = config.data_dir.join("api-token");
        let api = this.api.clone();
        eventually(Duration::from_secs(60), "a node's API", || async {
            Ok(api.node_info().await.ok().map(|_| ()))
        })
        .await?;
        let token = std::fs::read_to_string(&token_path)?.trim().to_owned();
        this.api = Client::new(&this.url, Some(token));
        Ok(this)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(&self.log)?;
        self.child = Command::new(&self.bin)
            .args(["node", "run", "--config"])
            .arg(&self.config)
            .env("HOARD_PRIVATE_KEY", self.key.to_bytes().to_string())
            .env("HOARD_LOG", "warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        Ok(())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (a clean stop), then wait.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A libtorrent peer process (tests/benches/lt_peer.py).
struct LtProc {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl LtProc {
    fn start(args: &[&str]) -> anyhow::Result<Self> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/lt_peer.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let out = child.stdout.take().context("stdout")?;
        Ok(Self {
            child,
            lines: BufReader::new(out).lines(),
        })
    }

    fn line(&mut self) -> anyhow::Result<String> {
        self.lines
            .next()
            .context("the peer exited")?
            .map_err(Into::into)
    }
}

impl Drop for LtProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one reader's get took.
#[derive(Debug, Clone, Copy)]
struct Took {
    seconds: f64,
    cpu: f64,
    rss_mib: f64,
    /// Bytes it fetched from hosts (the rest came from readers).
    from_hosts: f64,
}

struct Bench {
    net: Network,
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    files: Vec<(String, u64)>,
    dataset: DatasetId,
    hosts: Vec<NodeProc>,
    next_reader: usize,
    torrent: PathBuf,
    seeders: Vec<(LtProc, String, PathBuf)>,
}

impl Bench {
    fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }

    async fn reader(&mut self) -> anyhow::Result<NodeProc> {
        self.next_reader += 1;
        let name = format!("reader-{}", self.next_reader);
        let (config, _) = self.net.config(&name);
        let key = PrivateKeySigner::random();
        // Readers announce themselves on chain: give them gas money.
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance",
            "params": [key.address(), "0x56BC75E2D63100000"]});
        reqwest::Client::new()
            .post(self.net.chain.rpc_url())
            .json(&body)
            .send()
            .await?;
        NodeProc::start(&self.bin, &self.dir, &name, config, key).await
    }

    async fn hoard_get(&self, r: &NodeProc, paths: Vec<String>) -> anyhow::Result<Took> {
        let out = self.dir.join(format!("out-{}", r.name));
        // HOARD_BENCH_PERF=FILE: a CPU profile (perf, call graphs) of the first reader's get, of
        // the reader or (HOARD_BENCH_PERF_OF=hosts) of the six hosts, to see serving.
        let profiled = match std::env::var("HOARD_BENCH_PERF_OF") {
            Ok(of) if of == "hosts" => self
                .hosts
                .iter()
                .map(|h| h.pid().to_string())
                .collect::<Vec<_>>()
                .join(","),
            _ => r.pid().to_string(),
        };
        let perf = match std::env::var("HOARD_BENCH_PERF") {
            Ok(file) if r.name == "reader-1" => Some(
                Command::new("perf")
                    .args([
                        "record",
                        "-F",
                        "499",
                        "--call-graph",
                        "dwarf,32768",
                        "-o",
                        &file,
                        "-p",
                    ])
                    .arg(&profiled)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            ),
            _ => None,
        };
        let cpu0 = cpu_seconds(r.pid());
        let started = Instant::now();
        let job = r
            .api
            .download(&DownloadRequest {
                dataset: self.dataset,
                out,
                paths,
            })
            .await?
            .job;
        succeeded(r.api.wait_job(&job, Duration::from_secs(600)).await?)?;
        if let Some(mut p) = perf {
            let _ = Command::new("kill")
                .args(["-INT", &p.id().to_string()])
                .status();
            let _ = p.wait();
        }
        Ok(Took {
            seconds: started.elapsed().as_secs_f64(),
            cpu: cpu_seconds(r.pid()) - cpu0,
            rss_mib: peak_rss_mib(r.pid()),
            from_hosts: r
                .api
                .metric(r#"hoard_fetched_bytes_total{from="host"}"#)
                .await?,
        })
    }

    /// `n` fresh hoard readers, started `stagger` apart; each one's figures.
    async fn hoard_readers(&mut self, n: usize, stagger: Duration) -> anyhow::Result<Vec<Took>> {
        let mut readers = Vec::new();
        for _ in 0..n {
            readers.push(self.reader().await?);
        }
        let this = &*self;
        let runs = readers.iter().enumerate().map(|(i, r)| async move {
            tokio::time::sleep(stagger * i as u32).await;
            this.hoard_get(r, Vec::new()).await
        });
        let took = futures::future::try_join_all(runs).await?;
        for r in readers {
            self.discard(r);
        }
        Ok(took)
    }

    /// Stops a reader and removes its output and its data (cache included): a full run moves
    /// tens of GiB through fresh readers.
    fn discard(&self, mut r: NodeProc) {
        r.stop();
        let _ = std::fs::remove_dir_all(self.dir.join(format!("out-{}", r.name)));
        let _ = std::fs::remove_dir_all(&r.data_dir);
    }

    fn lt_seeders(&mut self, upload_limit: u64) -> anyhow::Result<()> {
        self.seeders.clear();
        for i in 0..6 {
            let port = free_port()?;
            let stats = self.dir.join(format!("seed-{i}.json"));
            let limit = upload_limit.to_string();
            let mut args = vec![
                "seed",
                self.torrent.to_str().context("utf-8")?,
                self.data.to_str().context("utf-8")?,
            ];
            let port_s = port.to_string();
            args.push(&port_s);
            args.push(stats.to_str().context("utf-8")?);
            if upload_limit > 0 {
                args.push("--upload-limit");
                args.push(&limit);
            }
            let mut p = LtProc::start(&args)?;
            anyhow::ensure!(p.line()? == "ready", "seeder did not start");
            self.seeders.push((p, format!("127.0.0.1:{port}"), stats));
        }
        Ok(())
    }

    fn lt_uploaded(&self) -> u64 {
        self.seeders
            .iter()
            .map(|(_, _, stats)| {
                std::fs::read_to_string(stats)
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .and_then(|v| v["uploaded"].as_u64())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// `n` libtorrent leechers, started `stagger` apart, each connecting to the seeders and the
    /// leechers before it; each one's figures.
    async fn lt_leechers(
        &mut self,
        n: usize,
        stagger: Duration,
        encrypt: bool,
    ) -> anyhow::Result<Vec<Took>> {
        let mut peers: Vec<String> = self.seeders.iter().map(|s| s.1.clone()).collect();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
        for p in &ports {
            peers.push(format!("127.0.0.1:{p}"));
        }
        let mut handles = Vec::new();
        let mut outs = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(stagger).await;
            }
            let out = self.dir.join(format!("lt-{}-{i}", self.next_reader));
            self.next_reader += 1;
            std::fs::create_dir_all(&out)?;
            outs.push(out.clone());
            let mut args: Vec<String> = vec![
                "leech".into(),
                self.torrent.display().to_string(),
                out.display().to_string(),
                port.to_string(),
                peers
                    .iter()
                    .filter(|p| **p != format!("127.0.0.1:{port}"))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(","),
            ];
            if encrypt {
                args.push("--encrypt".into());
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let proc = LtProc::start(&refs)?;
            handles.push(tokio::task::spawn_blocking(move || {
                let mut proc = proc;
                let line = proc.line();
                (proc, line)
            }));
        }
        let mut took = Vec::new();
        let mut procs = Vec::new();
        for h in handles {
            let (proc, line) = h.await?;
            let v: serde_json::Value = serde_json::from_str(&line?)?;
            took.push(Took {
                seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
                cpu: v["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
                rss_mib: v["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
                from_hosts: f64::NAN,
            });
            procs.push(proc);
        }
        drop(procs);
        for out in outs {
            let _ = std::fs::remove_dir_all(out);
        }
        Ok(took)
    }

    async fn hosts_sent(&self) -> anyhow::Result<f64> {
        let mut total = 0.0;
        for h in &self.hosts {
            total += h.api.metric("hoard_p2p_bytes_sent_total").await?;
        }
        Ok(total)
    }

    async fn restart_hosts(&mut self, upload_limit: u64) -> anyhow::Result<()> {
        for h in &mut self.hosts {
            h.stop();
            let text = std::fs::read_to_string(&h.config)?;
            let mut config: NodeConfig = toml::from_str(&text)?;
            config.p2p.upload_limit_bytes_per_sec = upload_limit;
            std::fs::write(&h.config, toml::to_string(&config)?)?;
            h.spawn()?;
        }
        for h in &self.hosts {
            let api = h.api.clone();
            eventually(Duration::from_secs(60), "a host's API", || async {
                Ok(api.node_info().await.ok().map(|_| ()))
            })
            .await?;
        }
        Ok(())
    }
}

fn line(what: &str, hoard: &[f64], lt: &[f64]) -> (f64, f64) {
    let (h, l) = (median(hoard.to_vec()), median(lt.to_vec()));
    println!(
        "{what}: hoard median {h:.2} s ({}), libtorrent median {l:.2} s ({}); hoard / libtorrent = {:.2}",
        hoard
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        lt.iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        h / l
    );
    (h, l)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<u64>().ok());
    let size_mib = args.next().unwrap_or(1024);
    let runs = args.next().unwrap_or(3) as usize;
    let bin = PathBuf::from(std::env::var("HOARD_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/hoard").into()
    }));
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it with cargo build --release -p hoard (or set HOARD_BIN)",
        bin.display()
    );
    hoard_tests::init_logs();
    let mut net = Network::start(64).await?;
    let dir = net.dir.path().to_path_buf();

    // The files: one of 10 MiB, four sharing the rest.
    let data = dir.join("dataset");
    std::fs::create_dir_all(&data)?;
    let small = 10u64 << 20;
    let rest = (size_mib << 20) - small;
    let mut files = vec![("small.bin".to_string(), small)];
    for i in 0..4 {
        files.push((
            format!("part-{i}.bin"),
            rest / 4 + if i == 3 { rest % 4 } else { 0 },
        ));
    }
    for (name, len) in &files {
        write_dataset(&data.join(name), *len as usize)?;
    }
    let torrent = dir.join("dataset.torrent");
    let made = Command::new("/usr/bin/python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/lt_peer.py"))
        .args(["torrent", data.to_str().context("utf-8")?])
        .arg(&torrent)
        .status()?;
    anyhow::ensure!(made.success(), "making the torrent failed");

    // Renter and six hosts, each its own process.
    let (mut rc, rkey) = net.config("renter");
    rc.chain.poll_interval_ms = 500;
    let mut renter = NodeProc::start(&bin, &dir, "renter", rc, rkey).await?;
    let mut hosts = Vec::new();
    for i in 0..6 {
        let (mut c, key) = net.config(&format!("host-{i}"));
        c.host.enabled = true;
        c.chain.poll_interval_ms = 500;
        hosts.push(NodeProc::start(&bin, &dir, &format!("host-{i}"), c, key).await?);
    }
    let observer = net.observer().await?;
    eventually(Duration::from_secs(60), "every node announced", || async {
        Ok((observer.hosts().await?.len() >= 7).then_some(()))
    })
    .await?;
    let started = Instant::now();
    let job = renter
        .api
        .put(&PutRequest {
            path: data.clone(),
            data_slots: 4,
            parity_slots: 2,
            duration: 24 * 3600,
            expiry: 3600,
            price_per_byte_per_second: U256::from(1u64),
            collateral_per_byte: U256::from(1u64),
            proof_probability: 1000,
            samples: 8,
            new_request: false,
            scheme: Default::default(),
        })
        .await?
        .job;
    let done = succeeded(renter.api.wait_job(&job, Duration::from_secs(900)).await?)?;
    let dataset: DatasetId = serde_json::from_value(done.result["dataset"].clone())?;
    println!(
        "setup: {size_mib} MiB in {} files put and filled by 6 hosts in {:.1} s; the renter stops",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    renter.stop();

    let mut b = Bench {
        net,
        bin,
        dir,
        data,
        files,
        dataset,
        hosts,
        next_reader: 0,
        torrent,
        seeders: Vec::new(),
    };
    let gib = b.bytes() as f64 / (1u64 << 30) as f64;
    b.lt_seeders(0)?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} cores, load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.trim()
    );

    // HOARD_BENCH_ONLY=single: the one-downloader part only (a quick look at one reader, e.g.
    // under perf); =capped: the capped part only.
    let only = std::env::var("HOARD_BENCH_ONLY").unwrap_or_default();
    if only != "capped" {
        uncapped(&mut b, runs, gib, size_mib, only == "single").await?;
    }
    if only != "single" {
        capped(&mut b, gib).await?;
    }
    for mut h in b.hosts.drain(..) {
        h.stop();
    }
    Ok(())
}

/// The parts with uncapped hosts: one downloader, then (unless `single_only`) four at once, one
/// file, the gateway.
async fn uncapped(
    b: &mut Bench,
    runs: usize,
    gib: f64,
    size_mib: u64,
    single_only: bool,
) -> anyhow::Result<()> {
    // 1 downloader, interleaved.
    let (mut h1, mut l1, mut le) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpu = Vec::new();
    let mut lt_cpu = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..runs {
        let t = b.hoard_readers(1, Duration::ZERO).await?[0];
        h1.push(t.seconds);
        cpu.push(t.cpu / gib);
        rss.push(t.rss_mib);
        let t = b.lt_leechers(1, Duration::ZERO, false).await?[0];
        l1.push(t.seconds);
        lt_cpu.push(t.cpu / gib);
        let t = b.lt_leechers(1, Duration::ZERO, true).await?[0];
        le.push(t.seconds);
    }
    line("1 downloader", &h1, &l1);
    println!("  libtorrent with RC4 forced: median {:.2} s", median(le));
    println!(
        "  reader CPU per GiB downloaded and restored: hoard median {:.2} s ({}), libtorrent leecher median {:.2} s",
        median(cpu.clone()),
        cpu.iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        median(lt_cpu)
    );
    println!("  hoard reader peak RSS: median {:.0} MiB", median(rss));
    if single_only {
        return Ok(());
    }

    // 4 downloaders at once.
    let (mut h4, mut l4, mut h4cpu) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs.min(2) {
        let t = b.hoard_readers(4, Duration::ZERO).await?;
        h4.push(t.iter().map(|t| t.seconds).fold(0.0, f64::max));
        h4cpu.extend(t.iter().map(|t| t.cpu / gib));
        let t = b.lt_leechers(4, Duration::ZERO, false).await?;
        l4.push(t.iter().map(|t| t.seconds).fold(0.0, f64::max));
    }
    line("4 downloaders at once (last done)", &h4, &l4);
    println!(
        "  hoard reader CPU per GiB in the swarm: median {:.2} s",
        median(h4cpu)
    );

    // One 10 MiB file out of the dataset.
    let r = b.reader().await?;
    let t = b.hoard_get(&r, vec!["small.bin".into()]).await?;
    let moved = r.api.metric("hoard_p2p_bytes_received_total").await?;
    println!(
        "10 MiB file of {size_mib} MiB: {:.1} MiB moved over the network ({:.2} s)",
        moved / (1u64 << 20) as f64,
        t.seconds
    );
    b.discard(r);

    // The gateway: a 1 MiB range, warm; a whole part streamed vs hoard get of it.
    let g = b.reader().await?;
    let base = format!("{}/api/v1/datasets/{}/files", g.url, b.dataset);
    let http = reqwest::Client::new();
    http.head(format!("{base}/part-0.bin")).send().await?;
    let mut ranges = Vec::new();
    let part1 = b.files[2].1;
    for i in 0..7u64 {
        let from = (part1 - (1 << 20)) / 7 * i;
        let started = Instant::now();
        let body = http
            .get(format!("{base}/part-1.bin"))
            .header("Range", format!("bytes={from}-{}", from + (1 << 20) - 1))
            .send()
            .await?
            .bytes()
            .await?;
        anyhow::ensure!(body.len() == 1 << 20, "short range");
        ranges.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let part = b.files[1].1 as f64;
    let started = Instant::now();
    let mut resp = http.get(format!("{base}/part-2.bin")).send().await?;
    let mut got = 0usize;
    while let Some(chunk) = resp.chunk().await? {
        got += chunk.len();
    }
    anyhow::ensure!(got as f64 == part, "short stream");
    let stream_secs = started.elapsed().as_secs_f64();
    let gateway_rss = peak_rss_mib(g.pid());
    b.discard(g);
    let r = b.reader().await?;
    let t = b.hoard_get(&r, vec!["part-3.bin".into()]).await?;
    b.discard(r);
    println!(
        "gateway: 1 MiB range (warm) median {:.0} ms ({}); a {:.0} MiB file streamed at {:.0} MB/s vs hoard get of one at {:.0} MB/s ({:.0} %); gateway reader peak RSS {gateway_rss:.0} MiB",
        median(ranges.clone()),
        ranges
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        part / (1u64 << 20) as f64,
        part / stream_secs / 1e6,
        part / t.seconds / 1e6,
        100.0 * t.seconds / stream_secs
    );

    Ok(())
}

/// Hosts capped to 25 MB/s: one reader alone, then 8 started 2 s apart.
async fn capped(b: &mut Bench, gib: f64) -> anyhow::Result<()> {
    let cap = 25_000_000;
    b.restart_hosts(cap).await?;
    b.lt_seeders(cap)?;
    let alone = b.hoard_readers(1, Duration::ZERO).await?[0].seconds;
    let sent0 = b.hosts_sent().await?;
    let hosts_cpu0: f64 = b.hosts.iter().map(|h| cpu_seconds(h.pid())).sum();
    let ticks0 = MachineTicks::now();
    let eight = b.hoard_readers(8, Duration::from_secs(2)).await?;
    let (busy, iowait, steal) = MachineTicks::now().since(&ticks0);
    let hosts_cpu = b.hosts.iter().map(|h| cpu_seconds(h.pid())).sum::<f64>() - hosts_cpu0;
    let hosts_gib = (b.hosts_sent().await? - sent0) / (1u64 << 30) as f64;
    let lt_alone = b.lt_leechers(1, Duration::ZERO, false).await?[0].seconds;
    let up0 = b.lt_uploaded();
    let lt_eight = b.lt_leechers(8, Duration::from_secs(2), false).await?;
    let lt_gib = (b.lt_uploaded() - up0) as f64 / (1u64 << 30) as f64;
    let last = |t: &[Took]| t.iter().map(|t| t.seconds).fold(0.0, f64::max);
    println!(
        "hosts capped at 25 MB/s, 8 readers 2 s apart ({:.1} GiB delivered): hoard hosts uploaded {hosts_gib:.2} GiB, slowest reader {:.1} s = {:.2} × one reader alone ({alone:.1} s); libtorrent seeders uploaded {lt_gib:.2} GiB, slowest {:.1} s = {:.2} × alone ({lt_alone:.1} s)",
        8.0 * gib,
        last(&eight),
        last(&eight) / alone,
        last(&lt_eight),
        last(&lt_eight) / lt_alone
    );
    println!(
        "  each hoard reader: {}",
        eight
            .iter()
            .map(|t| format!("{:.1} s", t.seconds))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  from hosts (MiB): {}",
        eight
            .iter()
            .map(|t| format!("{:.0}", t.from_hosts / (1u64 << 20) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  CPU: readers {:.1} s ({:.2} s per GiB), hosts {hosts_cpu:.1} s; the machine's cores were {busy:.0} % busy, {iowait:.0} % waiting on the disk, {steal:.0} % taken by the hypervisor (steal)",
        eight.iter().map(|t| t.cpu).sum::<f64>(),
        eight.iter().map(|t| t.cpu).sum::<f64>() / (8.0 * gib),
    );
    Ok(())
}
