//! [`run`]: many hosts, each holding a slot in several requests, one [`Strategy`] each, played
//! period by period with the contract's rules and money.
//!
//! One tenure (a host's slot in one request), in the contract's terms (docs/contracts.md, "Money"):
//! the request starts at t = 0 and ends at T; the host fills at t = 0, and the fill's proof covers
//! period 0. Period j covers [j·L, (j+1)·L) (L in seconds); it requires a proof with probability
//! 1/proofProbability; a proof the host cannot give is marked right after the period by an auditor
//! (or by the host's own second account), which is possible only if the request still runs then,
//! i.e. (j+1)·L < T. The maxMissed-th mark evicts: the host gets nothing back. Otherwise it gets
//! P·T + C − marks·S at the end. Its cost is its storage, `cost_share` × P per second of the slot it
//! keeps; gas is not counted (it is paid in the chain's coin, not the token). Profit = tokens out −
//! tokens in + own reporter rewards − storage cost.

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::{Params, Strategy};

/// How big a market to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Hosts per strategy.
    pub hosts: usize,
    /// Requests each host holds a slot of (one tenure each).
    pub requests_per_host: usize,
    /// A host's storage cost as a share of the price it is paid (0 … 1).
    pub cost_share: f64,
    /// Seed of every random draw: the same seed gives the same table.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hosts: 200,
            requests_per_host: 5,
            cost_share: 0.5,
            seed: 0x68_6f61_7264, // "hoard", the contracts' fuzz seed
        }
    }
}

/// What one strategy earned, in token base units per slot and request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// The strategy.
    pub strategy: Strategy,
    /// Mean profit per tenure over all its hosts.
    pub mean: f64,
    /// The worst host's mean profit per tenure.
    pub worst: f64,
    /// The best host's mean profit per tenure.
    pub best: f64,
    /// Share of tenures that ended in an eviction (of the strategy's own account).
    pub evicted: f64,
    /// Mean marks per tenure.
    pub marks: f64,
}

/// One tenure's result.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tenure {
    profit: f64,
    evicted: bool,
    marks: u64,
}

/// Runs every strategy over `cfg.hosts` hosts of `cfg.requests_per_host` tenures each.
pub fn run(params: &Params, strategies: &[Strategy], cfg: &Config) -> Vec<Row> {
    strategies
        .iter()
        .enumerate()
        .map(|(i, &strategy)| {
            let stream = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut rng = StdRng::seed_from_u64(cfg.seed ^ stream);
            let mut sum = 0.0;
            let mut worst = f64::INFINITY;
            let mut best = f64::NEG_INFINITY;
            let mut evicted = 0usize;
            let mut marks = 0u64;
            for _ in 0..cfg.hosts {
                let mut host = 0.0;
                for _ in 0..cfg.requests_per_host {
                    let t = tenure(params, strategy, cfg.cost_share, &mut rng);
                    host += t.profit;
                    evicted += usize::from(t.evicted);
                    marks += t.marks;
                }
                let host = host / cfg.requests_per_host as f64;
                sum += host;
                worst = worst.min(host);
                best = best.max(host);
            }
            let tenures = (cfg.hosts * cfg.requests_per_host) as f64;
            Row {
                strategy,
                mean: sum / cfg.hosts as f64,
                worst,
                best,
                evicted: evicted as f64 / tenures,
                marks: marks as f64 / tenures,
            }
        })
        .collect()
}

/// One host's slot in one request, played period by period.
fn tenure(p: &Params, strategy: Strategy, cost_share: f64, rng: &mut StdRng) -> Tenure {
    let duration = p.request.duration_secs;
    let period = p.period_seconds();
    let periods = duration.div_ceil(period);
    let max_missed = p.deployment.max_missed;
    let pass = strategy.kept().powi(p.request.samples as i32);
    let stops_at = |at: f64| (at * duration as f64) as u64;

    let mut marks = 0u64;
    let mut evicted_at = None;
    for j in 1..periods {
        let required = p.request.proof_probability <= 1
            || rng.random_range(0..p.request.proof_probability) == 0;
        if !required {
            continue;
        }
        let start = j * period;
        let fails = match strategy {
            Strategy::Honest => false,
            Strategy::Partial { .. } | Strategy::SelfReport { .. } => rng.random::<f64>() >= pass,
            Strategy::NeverProve => true,
            Strategy::DropOut { at } | Strategy::SybilRepair { at } => start >= stops_at(at),
            Strategy::EndGame { periods: k } => j + k >= periods,
        };
        let markable = (j + 1) * period < duration;
        if fails && markable {
            marks += 1;
            if marks == max_missed {
                evicted_at = Some((j + 1) * period);
                break;
            }
        }
    }

    let pay = p.pay_per_second() as f64;
    let collateral = p.collateral() as f64;
    let held = evicted_at.unwrap_or(duration);
    let mut tokens_in = collateral;
    let mut tokens_out = match evicted_at {
        Some(_) => 0.0,
        None => pay * duration as f64 + collateral - (marks as f64) * p.slash() as f64,
    };
    if strategy.reports_itself() {
        tokens_out += (marks as f64) * p.reporter_reward() as f64;
    }
    let mut stored = match strategy {
        Strategy::Honest => duration as f64,
        Strategy::Partial { .. } | Strategy::SelfReport { .. } => strategy.kept() * held as f64,
        Strategy::NeverProve => 0.0,
        Strategy::DropOut { at } | Strategy::SybilRepair { at } => stops_at(at).min(held) as f64,
        Strategy::EndGame { periods: k } => {
            (periods.saturating_sub(k) * period).min(duration) as f64
        }
    };
    if let (Strategy::SybilRepair { .. }, Some(t)) = (strategy, evicted_at)
        && t < duration
    {
        // The second account refills at once (its fill's proof covers that period), brings
        // C − R, serves honestly to the end and gets C back with its pay.
        tokens_in += collateral - p.repair_reward() as f64;
        tokens_out += collateral + pay * (duration - t) as f64;
        stored += (duration - t) as f64;
    }
    Tenure {
        profit: tokens_out - tokens_in - cost_share * pay * stored,
        evicted: evicted_at.is_some(),
        marks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Config {
        Config {
            hosts: 20,
            requests_per_host: 2,
            ..Config::default()
        }
    }

    #[test]
    fn honest_earns_pay_less_cost() {
        let p = Params::defaults().expect("params");
        let rows = run(&p, &[Strategy::Honest], &small());
        let expected = 0.5 * p.pay_per_second() as f64 * p.request.duration_secs as f64;
        assert!((rows[0].mean - expected).abs() < 1e-6 * expected);
        assert_eq!(rows[0].worst, rows[0].mean);
        assert_eq!(rows[0].evicted, 0.0);
    }

    #[test]
    fn never_proving_loses_the_collateral() {
        let p = Params::defaults().expect("params");
        let rows = run(&p, &[Strategy::NeverProve], &small());
        assert_eq!(rows[0].mean, -(p.collateral() as f64));
        assert_eq!(rows[0].evicted, 1.0);
        assert_eq!(rows[0].marks, p.deployment.max_missed as f64);
    }

    #[test]
    fn the_same_seed_gives_the_same_rows() {
        let p = Params::defaults().expect("params");
        let s = [Strategy::Partial { lost: 0.001 }];
        assert_eq!(run(&p, &s, &small()), run(&p, &s, &small()));
        let other = Config { seed: 7, ..small() };
        assert_ne!(run(&p, &s, &small()), run(&p, &s, &other));
    }

    #[test]
    fn end_game_within_max_missed_is_never_evicted() {
        let p = Params::defaults().expect("params");
        let k = p.deployment.max_missed;
        let rows = run(&p, &[Strategy::EndGame { periods: k }], &small());
        assert_eq!(rows[0].evicted, 0.0);
        assert_eq!(rows[0].marks, (k - 1) as f64);
    }
}
