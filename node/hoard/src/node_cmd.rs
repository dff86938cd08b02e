//! `hoard node run`: start a node in the foreground until Ctrl-C or SIGTERM.

use std::{io::IsTerminal as _, net::SocketAddr, path::PathBuf, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use anyhow::Context as _;
use clap::Args;
use hoard_node::{Node, NodeConfig, Overrides};
use url::Url;

/// Flags of `hoard node run`. Each also reads a `HOARD_*` environment variable; flags win over
/// the environment, which wins over the config file, which wins over the defaults.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// TOML config file (see docs/operator-guide.md for every key).
    #[arg(long, env = "HOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Folder for the database, keys, API token and (by default) data.
    #[arg(long, env = "HOARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the REST API and /metrics.
    #[arg(long, env = "HOARD_API")]
    api: Option<SocketAddr>,
    /// libp2p listen multiaddr (repeat for several).
    #[arg(long, env = "HOARD_LISTEN", value_delimiter = ',')]
    listen: Option<Vec<String>>,
    /// Chain JSON-RPC URL.
    #[arg(long, env = "HOARD_RPC_URL")]
    rpc_url: Option<Url>,
    /// Deployment file (contracts/deployments/<chainId>.json).
    #[arg(long, env = "HOARD_DEPLOYMENT")]
    deployment: Option<PathBuf>,
    /// Run the host role: take storage requests that match the offer.
    #[arg(long, env = "HOARD_HOST", num_args = 0..=1, default_missing_value = "true")]
    host: Option<bool>,
    /// Run the validator role: mark missed proofs for the reward.
    #[arg(long, env = "HOARD_VALIDATE", num_args = 0..=1, default_missing_value = "true")]
    validate: Option<bool>,
    /// Bytes of slot data this host offers.
    #[arg(long, env = "HOARD_CAPACITY")]
    capacity: Option<u64>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

pub(crate) fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logs(args.log_json);
    let overrides = Overrides {
        data_dir: args.data_dir,
        api_listen: args.api,
        p2p_listen: args.listen,
        rpc_url: args.rpc_url,
        deployment: args.deployment,
        host: args.host,
        validator: args.validate,
        capacity_bytes: args.capacity,
    };
    let config = NodeConfig::resolve(args.config.as_deref(), &overrides)?;
    let signer = load_signer(&config)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let run = rt.block_on(async move {
        let node = Node::start(config, signer).await?;
        eprintln!(
            "hoard node {} (account {}) — API and /metrics on http://{}",
            node.peer_id(),
            node.address(),
            node.api_addr()
        );
        node.run_until(shutdown_signal()).await;
        Ok(())
    });
    // The node has stopped and flushed its store; a compact proof it abandoned may still be
    // running on the blocking pool (tens of seconds, not interruptible): do not wait for it.
    rt.shutdown_timeout(Duration::from_secs(1));
    run
}

/// The chain key: `HOARD_PRIVATE_KEY`, else the keystore (password in `HOARD_KEYSTORE_PASSWORD`).
/// Never printed.
fn load_signer(config: &NodeConfig) -> anyhow::Result<PrivateKeySigner> {
    if let Ok(key) = std::env::var("HOARD_PRIVATE_KEY") {
        return key
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("HOARD_PRIVATE_KEY is not a valid hex private key"));
    }
    let Some(path) = &config.chain.keystore else {
        anyhow::bail!(
            "no chain key: set HOARD_PRIVATE_KEY, or chain.keystore in the config file with HOARD_KEYSTORE_PASSWORD"
        );
    };
    let password = std::env::var("HOARD_KEYSTORE_PASSWORD")
        .context("HOARD_KEYSTORE_PASSWORD is not set (needed to open the keystore)")?;
    PrivateKeySigner::decrypt_keystore(path, password)
        .with_context(|| format!("opening the keystore {} (wrong password?)", path.display()))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    eprintln!("shutting down…");
}

fn init_logs(json: bool) {
    let given = std::env::var("HOARD_LOG").ok();
    let mut filter = given
        .as_deref()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| {
            tracing_subscriber::EnvFilter::new("info,libp2p=warn,alloy=warn,hyper=warn")
        });
    // arkworks' gadgets open an info span per constraint-building call (targets `gr1cs`, and
    // `r1cs` for a few), each recording its field-element arguments as text: millions per
    // compact proof or key set-up. Left on, a host setting up its keys grew past 11 GiB in a
    // minute. Off unless HOARD_LOG names them.
    if !given.is_some_and(|f| f.contains("r1cs")) {
        for directive in ["gr1cs=off", "r1cs=off"] {
            filter = filter.add_directive(directive.parse().expect("a valid directive"));
        }
    }
    // Colours only on a terminal (`hoard node run 2> node.log` writes plain text), and never with
    // NO_COLOR set (no-color.org).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
