//! Starting the network: anvil ([`start_anvil`]), the nodes ([`start_nodes`], each a
//! `hoard node run` child process driven through its API client) and Prometheus
//! ([`start_prometheus`], with the files [`write_prometheus_files`] lays out).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use anyhow::{Context as _, anyhow, bail, ensure};
use hoard_api::Client;
use serde_json::{Value, json};
use url::Url;

use super::{
    NodeSpec, Plan, Story,
    procs::{Kind, Procs},
    read_from, rel, remove_any, repo_root,
};

/// A started node.
#[derive(Debug)]
pub(super) struct RunningNode {
    pub(super) spec: NodeSpec,
    pub(super) address: Address,
    pub(super) api: Client,
    pub(super) log: PathBuf,
}

/// Starts the renter and the hosts as child processes and waits for their APIs.
pub(super) async fn start_nodes(
    plan: &Plan,
    procs: &mut Procs,
    rpc_url: &Url,
    deployment: &Path,
    keys: &[PrivateKeySigner],
) -> anyhow::Result<Vec<RunningNode>> {
    let exe = std::env::current_exe().context("finding the hoard binary to start the nodes")?;
    let margin = (plan.period_blocks * 3 / 8).clamp(1, 8);
    // One key cache for every node: the compact keys are made once (from the devnet seed).
    let keys_dir = plan.path("compact-keys");
    let mut nodes = Vec::new();
    for (spec, key) in plan.nodes.iter().zip(keys) {
        let data = plan.path(&format!("nodes/{}", spec.name));
        fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        // Devnet tempo: poll the chain often, fill without long back-offs.
        let config = data.join("devnet.toml");
        let upload = if spec.host { plan.host_upload_limit } else { 0 };
        fs::write(
            &config,
            format!(
                "# Written by hoard devnet; the flags on its command line set the rest.\n\
                 [p2p]\nrequest_timeout_secs = 10\nupload_limit_bytes_per_sec = {upload}\n\n\
                 [chain]\npoll_interval_ms = 250\n\
                 receipt_timeout_secs = 30\n\n[host]\nfill_backoff_secs = 3\n\
                 deadline_margin_blocks = {margin}\n\n[host.scrub]\ninterval_secs = {}\n\n\
                 [compact]\nkeys_dir = {keys_dir:?}\n",
                plan.scrub_interval_secs
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
        procs.spawn(Kind::Node, &spec.name, cmd, &log)?;
        nodes.push(RunningNode {
            spec: spec.clone(),
            address: key.address(),
            api: Client::new(&format!("http://127.0.0.1:{}", spec.api_port), None),
            log,
        });
    }
    for n in &mut nodes {
        let what = format!("{} to answer on its API", n.spec.name);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if n.api.node_info().await.is_ok() {
                break;
            }
            if let Some(status) = procs.exit_of(Kind::Node, &n.spec.name) {
                let (tail, log) = procs.tail(Kind::Node, &n.spec.name, 3);
                bail!(
                    "{} exited while starting ({status}): {tail} (full log: {})",
                    n.spec.name,
                    rel(&log)
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
        n.api = Client::new(n.api.url(), Some(token.trim().to_string()));
    }
    Ok(nodes)
}

pub(super) fn print_table(story: &Story, nodes: &[RunningNode]) {
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
                n.api.url().to_string(),
                format!("{}/metrics", n.api.url()),
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

/// A started anvil.
#[derive(Debug)]
pub(super) struct LocalAnvil {
    /// Its JSON-RPC endpoint.
    pub(super) url: Url,
    /// The dev accounts' keys, in anvil's order.
    pub(super) keys: Vec<PrivateKeySigner>,
}

/// Starts anvil with the chain state kept in DIR; waits until it listens and reads its keys.
pub(super) async fn start_anvil(
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
        // Also saved on every stop (SIGTERM after SIGCONT, see procs.rs); the interval bounds
        // what a SIGKILL of the whole devnet can lose.
        .arg("--state-interval")
        .arg("10")
        .env("NO_COLOR", "1")
        .env("FOUNDRY_DISABLE_NIGHTLY_WARNING", "1");
    procs.spawn(Kind::Anvil, "anvil", cmd, &log)?;
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
        if let Some(status) = procs.exit_of(Kind::Anvil, "anvil") {
            let hint = if loading {
                format!(
                    "; it could not load the saved chain {} — start over with --clean",
                    rel(&state)
                )
            } else {
                String::new()
            };
            let (tail, _) = procs.tail(Kind::Anvil, "anvil", 3);
            bail!(
                "anvil exited at start ({status}): {tail}{hint} (log: {})",
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
pub(super) fn write_prometheus_files(
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

/// Starts Prometheus on `port` with the files in DIR/prometheus; waits until it is ready.
pub(super) async fn start_prometheus(
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
    procs.spawn(Kind::Prometheus, "Prometheus", cmd, &log)?;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/-/ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if let Some(status) = procs.exit_of(Kind::Prometheus, "Prometheus") {
            let (tail, _) = procs.tail(Kind::Prometheus, "Prometheus", 3);
            bail!(
                "Prometheus exited at start ({status}): {tail} (log: {})",
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
pub(super) async fn check_dashboards(
    story: &Story,
    plan: &Plan,
    root: Option<&Path>,
) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
