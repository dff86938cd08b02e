//! `hoard`: the command-line entry point. Parses the command line, runs the command, prints the
//! error chain and exits non-zero on failure.
//!
//! ```text
//!  hoard pack   ─▶ hoard_dataset::pack    (file/dir ─▶ k+m slot files + manifest)
//!  hoard unpack ─▶ hoard_dataset::unpack  (any k slots ─▶ the original bytes)
//!  hoard proof  ─▶ hoard_prover           (slot + seed ─▶ proof JSON ─▶ verdict)
//!  hoard bench  ─▶ all of the above, timed, with peak memory
//!  hoard node run ─▶ hoard_node::Node (libp2p + chain + store + roles + REST API)
//!  hoard devnet ─▶ anvil + deploy + renter + N hosts (child processes) + the story of a dataset
//!  hoard put/get/ls/cache/status/extend/withdraw/host/validate/audit ─▶ REST calls to a node
//! ```

mod bench;
mod client;
mod dataset;
mod devnet;
mod duration;
mod extend;
mod node_cmd;
mod output;
mod proof;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// hoard: erasure-coded datasets stored by paid hosts that prove, every period, that they
/// still hold them.
#[derive(Debug, Parser)]
#[command(name = "hoard", version, propagate_version = true)]
struct Cli {
    /// Print machine-readable JSON on stdout instead of text (progress bars are never shown).
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    api: client::ApiArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Pack a file or directory into k data + m parity slot files and a manifest.
    Pack(dataset::PackArgs),
    /// Restore a packed dataset from any k good slots, byte-identical.
    Unpack(dataset::UnpackArgs),
    /// Create or verify a direct storage proof for one slot of a packed dataset.
    #[command(subcommand)]
    Proof(proof::ProofCommand),
    /// Measure pack and unpack speed, peak memory and proof time on this machine.
    Bench(bench::BenchArgs),
    /// Run a node (host, renter and validator roles, REST API, /metrics).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Run a whole network on this machine (anvil, a renter, hosts, optionally Prometheus) and
    /// watch a sample dataset get stored, proven every period and fetched back.
    Devnet(devnet::DevnetArgs),
    /// Store a file or folder on the network: pack it, buy storage, serve it until hosts fill it.
    Put(client::PutArgs),
    /// Download a dataset (or some of its files) by its id from its hosts and other readers,
    /// verifying every block.
    Get(client::GetArgs),
    /// List the files and folders of a dataset (path, size), from its manifest.
    Ls {
        /// Dataset id.
        dataset: hoard_prover::DatasetId,
    },
    /// Show or clear the node's reader cache (the blocks it downloaded and serves to others).
    Cache {
        #[command(subcommand)]
        command: Option<client::CacheCommand>,
    },
    /// Show a dataset's storage request: state, each slot's host and missed proofs.
    Status {
        /// Dataset id or request id.
        id: alloy::primitives::B256,
    },
    /// Store a dataset longer: extend its running request and pay the escrow for the extra time.
    Extend(extend::ExtendArgs),
    /// Withdraw the renter's refund of an ended request.
    Withdraw {
        /// Request id.
        request: hoard_prover::RequestId,
    },
    /// Host operations: status, offer, withdraw.
    #[command(subcommand)]
    Host(client::HostCommand),
    /// Turn the node's validator on (or off): it marks missed proofs and earns the reporter reward.
    Validate {
        /// Turn it off instead.
        #[arg(long)]
        off: bool,
        /// Withdraw the reporter rewards earned so far instead.
        #[arg(long, conflicts_with = "off")]
        withdraw: bool,
    },
    /// Spot-check every host of a dataset now with a fresh random challenge (off chain, no gas).
    Audit {
        /// Dataset id.
        dataset: hoard_prover::DatasetId,
    },
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Start a node in the foreground (Ctrl-C stops it cleanly).
    Run(Box<node_cmd::RunArgs>),
    /// Show a running node's identity, chain and roles.
    Info,
}

/// Runs a command that talks to a node's API.
fn api_command(cmd: Command, api: &client::ApiArgs, out: &output::Output) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let c = api.client();
    rt.block_on(async move {
        match cmd {
            Command::Put(a) => client::put(&c, a, out).await,
            Command::Get(a) => client::get(&c, a, out).await,
            Command::Ls { dataset } => client::ls(&c, dataset, out).await,
            Command::Cache { command } => client::cache(&c, command, out).await,
            Command::Status { id } => client::status(&c, id, out).await,
            Command::Extend(a) => extend::run(&c, a, out).await,
            Command::Withdraw { request } => client::withdraw(&c, request, out).await,
            Command::Host(h) => client::host(&c, h, out).await,
            Command::Validate { off, withdraw } => client::validate(&c, off, withdraw, out).await,
            Command::Audit { dataset } => client::audit(&c, dataset, out).await,
            Command::Node(NodeCommand::Info) => client::info(&c, out).await,
            _ => unreachable!("local commands are dispatched in main"),
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = output::Output::new(cli.json);
    let result = match cli.command {
        Command::Pack(args) => dataset::pack(args, &out),
        Command::Unpack(args) => dataset::unpack(args, &out),
        Command::Proof(cmd) => proof::run(cmd, &out),
        Command::Bench(args) => bench::run(args, &out),
        Command::Node(NodeCommand::Run(args)) => node_cmd::run(*args),
        Command::Devnet(args) => devnet::run(args),
        other => api_command(other, &cli.api, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated, each once: many errors already quote their source in
/// their own message (`cannot read … : {source}`), which `{:#}` would print a second time.
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(io).context("cannot read x.toml: no such file");
        assert_eq!(error_chain(&e), "cannot read x.toml: no such file");
        let e = anyhow::anyhow!("root cause").context("outer");
        assert_eq!(error_chain(&e), "outer: root cause");
    }
}
