//! `hoard`: the command-line entry point. Parses the command line, runs the command, prints the
//! error chain and exits non-zero on failure.
//!
//! ```text
//!  hoard pack   ─▶ hoard_dataset::pack    (file/dir ─▶ k+m slot files + manifest)
//!  hoard unpack ─▶ hoard_dataset::unpack  (any k slots ─▶ the original bytes)
//!  hoard proof  ─▶ hoard_prover           (slot + seed ─▶ proof JSON ─▶ verdict)
//!  hoard bench  ─▶ all of the above, timed, with peak memory
//! ```

mod bench;
mod dataset;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = output::Output::new(cli.json);
    let result = match cli.command {
        Command::Pack(args) => dataset::pack(args, &out),
        Command::Unpack(args) => dataset::unpack(args, &out),
        Command::Proof(cmd) => proof::run(cmd, &out),
        Command::Bench(args) => bench::run(args, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
