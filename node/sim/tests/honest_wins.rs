//! The market simulation's verdict for the default and the devnet parameters: honest hosting beats
//! every cheating strategy, except deleting the slot in the request's last periods, whose gain is
//! bounded by the storage of those periods less the marks they draw (docs/contracts.md, "The end of
//! a request").

use hoard_sim::{Config, Params, Row, Strategy, run};

fn config(cost_share: f64) -> Config {
    Config {
        hosts: 60,
        requests_per_host: 2,
        cost_share,
        ..Config::default()
    }
}

fn rows(params: &Params, cost_share: f64) -> Vec<Row> {
    run(
        params,
        &Strategy::all(params.deployment.max_missed),
        &config(cost_share),
    )
}

fn both() -> [Params; 2] {
    [
        Params::defaults().expect("the default parameters parse"),
        Params::devnet().expect("the devnet parameters parse"),
    ]
}

#[test]
fn honest_beats_every_cheating_strategy() {
    for params in both() {
        for cost_share in [0.1, 0.5, 0.9] {
            let rows = rows(&params, cost_share);
            let honest = rows[0];
            assert_eq!(honest.strategy, Strategy::Honest);
            assert!(honest.mean > 0.0, "{}: honest hosting pays", params.name);
            for r in rows.iter().skip(1).filter(|r| !r.strategy.is_end_game()) {
                assert!(
                    honest.worst > r.best,
                    "{} (cost share {cost_share}): the worst honest host ({:e}) must beat the best \
                     host playing `{}` ({:e})",
                    params.name,
                    honest.worst,
                    r.strategy,
                    r.best
                );
            }
        }
    }
}

#[test]
fn the_end_game_gains_at_most_the_storage_of_its_periods_less_its_marks() {
    for params in both() {
        let cost_share = 0.5;
        let rows = rows(&params, cost_share);
        let honest = rows[0].mean;
        let period_storage =
            cost_share * params.pay_per_second() as f64 * params.period_seconds() as f64;
        for r in rows.iter().filter(|r| r.strategy.is_end_game()) {
            let Strategy::EndGame { periods } = r.strategy else {
                unreachable!("filtered on is_end_game")
            };
            let bound =
                periods as f64 * period_storage - (periods - 1) as f64 * params.slash() as f64;
            let gain = r.mean - honest;
            assert!(
                gain <= bound + bound.abs() * 1e-9,
                "{}: `{}` gains {gain:e}, more than {bound:e}",
                params.name,
                r.strategy
            );
            assert_eq!(
                r.evicted, 0.0,
                "{} periods ≤ maxMissed never evict",
                periods
            );
        }
    }
}
