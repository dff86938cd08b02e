//! [`markdown`]: the rows of one run as the table docs/contracts.md shows.

use std::fmt::Write as _;

use crate::{Config, Params, Row, Strategy};

/// Token base units per token (18 decimals).
pub const TOKEN: f64 = 1e18;

/// A markdown table of `rows` (the first must be the honest strategy), with a heading naming the
/// parameters.
pub fn markdown(params: &Params, cfg: &Config, rows: &[Row]) -> String {
    let honest = rows
        .iter()
        .find(|r| r.strategy == Strategy::Honest)
        .map_or(f64::NAN, |r| r.mean);
    let p = params;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {}-block periods of {} s, maxMissed {}, slash {} bps (reporter {} bps of it), repair \
         {} bps; request of {} s, price {} and collateral {} base units per byte, proof \
         probability 1/{}, {} samples. Per 1 GiB slot and request, in tokens (10^18 base units); \
         storage costs {} % of the price; {} hosts × {} requests per strategy, seed {:#x}.",
        p.name,
        p.deployment.period_blocks,
        p.period_seconds(),
        p.deployment.max_missed,
        p.deployment.slash_bps,
        p.deployment.reporter_reward_bps,
        p.deployment.repair_reward_bps,
        p.request.duration_secs,
        p.request.price_per_byte_per_second,
        p.request.collateral_per_byte,
        p.request.proof_probability,
        p.request.samples,
        cfg.cost_share * 100.0,
        cfg.hosts,
        cfg.requests_per_host,
        cfg.seed,
    );
    out.push('\n');
    out.push_str("| strategy | mean profit | worst host | mean − honest | evicted | marks |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} % | {:.2} |",
            r.strategy,
            tokens(r.mean),
            tokens(r.worst),
            tokens(r.mean - honest),
            r.evicted * 100.0,
            r.marks,
        );
    }
    out
}

fn tokens(base_units: f64) -> String {
    format!("{:.4e}", base_units / TOKEN)
}
