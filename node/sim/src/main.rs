//! `hoard-sim`: prints the strategy tables for the default and the devnet parameters.
//!
//! ```text
//! cargo run -p hoard-sim --release [-- --seed N --hosts N --requests N --cost-share X]
//! ```
//!
//! Four flags do not warrant clap here; the crate keeps to `rand` and `thiserror`.

use std::process::ExitCode;

use hoard_sim::{Config, Params, Strategy, markdown, run};

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)) {
        Ok(cfg) => match print(&cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hoard-sim: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("hoard-sim: {e}");
            eprintln!("usage: hoard-sim [--seed N] [--hosts N] [--requests N] [--cost-share 0..1]");
            ExitCode::from(2)
        }
    }
}

fn print(cfg: &Config) -> Result<(), hoard_sim::ParamError> {
    for params in [Params::defaults()?, Params::devnet()?] {
        let rows = run(&params, &Strategy::all(params.deployment.max_missed), cfg);
        println!("{}", markdown(&params, cfg, &rows));
    }
    Ok(())
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Config, String> {
    let mut cfg = Config::default();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |_| format!("{flag} {value}: not a valid value");
        match flag.as_str() {
            "--seed" => cfg.seed = value.parse().map_err(|_| bad(()))?,
            "--hosts" => cfg.hosts = value.parse().map_err(|_| bad(()))?,
            "--requests" => cfg.requests_per_host = value.parse().map_err(|_| bad(()))?,
            "--cost-share" => {
                cfg.cost_share = value.parse().map_err(|_| bad(()))?;
                if !(0.0..=1.0).contains(&cfg.cost_share) {
                    return Err(format!("--cost-share {value}: must be between 0 and 1"));
                }
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if cfg.hosts == 0 || cfg.requests_per_host == 0 {
        return Err("--hosts and --requests must be at least 1".into());
    }
    Ok(cfg)
}
