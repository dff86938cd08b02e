//! [`ChainMetrics`]: RPC and transaction counters, registered into the registry the caller hands
//! in (never the global one: several nodes share one test process).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use prometheus::{
    IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use crate::error::ChainError;

/// Prometheus metrics of one chain client.
#[derive(Debug, Clone)]
pub struct ChainMetrics {
    /// RPC calls made (views, transactions, logs, blocks).
    pub rpc_requests: IntCounter,
    /// RPC calls that failed (transport or node errors; reverts are not counted here).
    pub rpc_errors: IntCounter,
    /// Transactions broadcast, per contract method.
    pub tx_sent: IntCounterVec,
    /// Transactions that reverted, in simulation or on chain, per contract method.
    pub tx_reverted: IntCounterVec,
    /// Gas used by mined transactions, per contract method.
    pub tx_gas_used: IntCounterVec,
    /// Latest block number seen.
    pub head_block: IntGauge,
    /// Seconds between now and the timestamp of the latest block seen.
    pub head_lag_seconds: HeadLag,
}

/// `hoard_chain_head_lag_seconds`: computed when it is scraped from the timestamp of the newest
/// block seen, so it keeps growing while the RPC endpoint is unreachable or hangs (a value set
/// only on a successful poll would freeze at its last value exactly when it matters).
#[derive(Debug, Clone)]
pub struct HeadLag {
    /// Timestamp of the newest block seen (0: none yet).
    newest: Arc<AtomicU64>,
    gauge: IntGauge,
}

impl HeadLag {
    fn new() -> Self {
        Self {
            newest: Arc::default(),
            gauge: IntGauge::new(
                "hoard_chain_head_lag_seconds",
                "Seconds between now and the timestamp of the newest block seen (grows while the \
                 chain or its RPC endpoint is stuck)",
            )
            .expect("static metric name and help"),
        }
    }

    /// A block with unix timestamp `timestamp` was seen (an older one than the newest is ignored).
    pub fn saw(&self, timestamp: u64) {
        self.newest.fetch_max(timestamp, Ordering::Relaxed);
    }

    /// The lag now, seconds (0 before the first block).
    pub fn get(&self) -> i64 {
        let newest = self.newest.load(Ordering::Relaxed);
        if newest == 0 {
            return 0;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        i64::try_from(i128::from(now) - i128::from(newest)).unwrap_or(i64::MAX)
    }
}

impl Collector for HeadLag {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.set(self.get());
        self.gauge.collect()
    }
}

impl ChainMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn new(registry: &Registry) -> Result<Self, ChainError> {
        let m = Self::unregistered();
        m.register(registry)?;
        Ok(m)
    }

    /// Creates the metrics without registering them anywhere.
    /// Every method the node sends, so each per-method series exists (at 0) from the start and
    /// dashboards and alerts have data before the first revert.
    const METHODS: [&'static str; 14] = [
        "requestStorage",
        "extendRequest",
        "fillSlot",
        "fillCompactSlot",
        "submitProof",
        "submitCompactProof",
        "markProofMissing",
        "withdrawSlot",
        "withdrawRequest",
        "withdrawReward",
        "announceHost",
        "removeHost",
        "approve",
        "faucet",
    ];

    pub(crate) fn unregistered() -> Self {
        // Names and help texts are static and valid: creation cannot fail.
        let counter = |name: &str, help: &str| {
            IntCounter::new(name, help).expect("static metric name and help")
        };
        let per_method = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["method"])
                .expect("static metric name, help and label")
        };
        let gauge = |name: &str, help: &str| {
            IntGauge::new(name, help).expect("static metric name and help")
        };
        let m = Self {
            rpc_requests: counter(
                "hoard_rpc_requests_total",
                "JSON-RPC calls made to the chain node",
            ),
            rpc_errors: counter(
                "hoard_rpc_errors_total",
                "JSON-RPC calls that failed at the transport or were rejected by the node \
                 (reverts excluded)",
            ),
            tx_sent: per_method(
                "hoard_tx_sent_total",
                "Transactions broadcast, by contract method",
            ),
            tx_reverted: per_method(
                "hoard_tx_reverted_total",
                "Transactions that reverted, in simulation (not sent) or mined with status 0, \
                 by contract method",
            ),
            tx_gas_used: per_method(
                "hoard_tx_gas_used_total",
                "Gas used by mined transactions, by contract method",
            ),
            head_block: gauge("hoard_chain_head_block", "Latest block number seen"),
            head_lag_seconds: HeadLag::new(),
        };
        for method in Self::METHODS {
            for vec in [&m.tx_sent, &m.tx_reverted, &m.tx_gas_used] {
                vec.with_label_values(&[method]);
            }
        }
        m
    }

    /// Registers every metric into `registry`, or none of them.
    pub(crate) fn register(&self, registry: &Registry) -> Result<(), ChainError> {
        for (i, collector) in self.collectors().into_iter().enumerate() {
            if let Err(e) = registry.register(collector) {
                for earlier in self.collectors().into_iter().take(i) {
                    let _ = registry.unregister(earlier);
                }
                return Err(metric_error(e));
            }
        }
        Ok(())
    }

    fn collectors(&self) -> [Box<dyn Collector>; 7] {
        [
            Box::new(self.rpc_requests.clone()),
            Box::new(self.rpc_errors.clone()),
            Box::new(self.tx_sent.clone()),
            Box::new(self.tx_reverted.clone()),
            Box::new(self.tx_gas_used.clone()),
            Box::new(self.head_block.clone()),
            Box::new(self.head_lag_seconds.clone()),
        ]
    }

    /// Counts one RPC call and, when it failed for a reason other than a revert, one error.
    pub(crate) fn observe_rpc<T>(&self, result: &Result<T, ChainError>) {
        self.rpc_requests.inc();
        if let Err(e) = result
            && !matches!(e, ChainError::Revert { .. })
        {
            self.rpc_errors.inc();
        }
    }
}

fn metric_error(e: prometheus::Error) -> ChainError {
    ChainError::Other(format!(
        "cannot register the chain metrics: {e} — is a second chain client using the same registry?"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_every_metric_with_help_and_refuses_a_second_registration() {
        let registry = Registry::new();
        let m = ChainMetrics::new(&registry).expect("register");
        m.tx_sent.with_label_values(&["fillSlot"]).inc();
        m.tx_reverted.with_label_values(&["fillSlot"]).inc();
        m.tx_gas_used
            .with_label_values(&["fillSlot"])
            .inc_by(21_000);
        let names: Vec<_> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        for name in [
            "hoard_rpc_requests_total",
            "hoard_rpc_errors_total",
            "hoard_tx_sent_total",
            "hoard_tx_reverted_total",
            "hoard_tx_gas_used_total",
            "hoard_chain_head_block",
            "hoard_chain_head_lag_seconds",
        ] {
            assert!(
                names.iter().any(|n| n == name),
                "{name} missing from {names:?}"
            );
        }
        assert!(registry.gather().iter().all(|f| !f.help().is_empty()));
        assert!(ChainMetrics::new(&registry).is_err());
    }

    #[test]
    fn the_head_lag_grows_between_polls() {
        let registry = Registry::new();
        let m = ChainMetrics::new(&registry).expect("register");
        let scrape = || {
            let text = prometheus::TextEncoder::new()
                .encode_to_string(&registry.gather())
                .expect("encode");
            crate::metrics::tests::value(&text, "hoard_chain_head_lag_seconds")
        };
        assert_eq!(scrape(), 0, "no block seen yet");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        // The newest block is 90 s old and no poll has succeeded since: the lag says 90, not
        // whatever it was when the last poll succeeded.
        m.head_lag_seconds.saw(now - 90);
        assert!((90..95).contains(&scrape()), "{}", scrape());
        // An older block (a lagging RPC replica) does not move it back.
        m.head_lag_seconds.saw(now - 600);
        assert!((90..95).contains(&scrape()), "{}", scrape());
        m.head_lag_seconds.saw(now);
        assert!(scrape() < 5);
    }

    /// The value of the series `name` in the text exposition `text`.
    pub(crate) fn value(text: &str, name: &str) -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .expect("the series is exported")
    }

    #[test]
    fn a_failed_registration_registers_nothing() {
        let registry = Registry::new();
        let taken = IntGauge::new("hoard_chain_head_block", "taken").expect("gauge");
        registry.register(Box::new(taken)).expect("register");
        assert!(ChainMetrics::new(&registry).is_err());
        let names: Vec<_> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(names, vec!["hoard_chain_head_block"]);
    }
}
