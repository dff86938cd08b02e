//! [`ChainMetrics`]: RPC and transaction counters, registered into the registry the caller hands
//! in (never the global one: several nodes share one test process).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

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
    pub head_lag_seconds: IntGauge,
}

impl ChainMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn new(registry: &Registry) -> Result<Self, ChainError> {
        let m = Self {
            rpc_requests: IntCounter::new(
                "hoard_rpc_requests_total",
                "JSON-RPC calls made to the chain node",
            )
            .map_err(metric_error)?,
            rpc_errors: IntCounter::new(
                "hoard_rpc_errors_total",
                "JSON-RPC calls that failed at the transport or were rejected by the node \
                 (reverts excluded)",
            )
            .map_err(metric_error)?,
            tx_sent: IntCounterVec::new(
                Opts::new(
                    "hoard_tx_sent_total",
                    "Transactions broadcast, by contract method",
                ),
                &["method"],
            )
            .map_err(metric_error)?,
            tx_reverted: IntCounterVec::new(
                Opts::new(
                    "hoard_tx_reverted_total",
                    "Transactions that reverted, in simulation (not sent) or mined with status 0, \
                     by contract method",
                ),
                &["method"],
            )
            .map_err(metric_error)?,
            tx_gas_used: IntCounterVec::new(
                Opts::new(
                    "hoard_tx_gas_used_total",
                    "Gas used by mined transactions, by contract method",
                ),
                &["method"],
            )
            .map_err(metric_error)?,
            head_block: IntGauge::new("hoard_chain_head_block", "Latest block number seen")
                .map_err(metric_error)?,
            head_lag_seconds: IntGauge::new(
                "hoard_chain_head_lag_seconds",
                "Seconds between now and the timestamp of the latest block seen",
            )
            .map_err(metric_error)?,
        };
        registry
            .register(Box::new(m.rpc_requests.clone()))
            .map_err(metric_error)?;
        registry
            .register(Box::new(m.rpc_errors.clone()))
            .map_err(metric_error)?;
        registry
            .register(Box::new(m.tx_sent.clone()))
            .map_err(metric_error)?;
        registry
            .register(Box::new(m.tx_reverted.clone()))
            .map_err(metric_error)?;
        registry
            .register(Box::new(m.tx_gas_used.clone()))
            .map_err(metric_error)?;
        registry
            .register(Box::new(m.head_block.clone()))
            .map_err(metric_error)?;
        registry
            .register(Box::new(m.head_lag_seconds.clone()))
            .map_err(metric_error)?;
        Ok(m)
    }

    /// Metrics registered into a private registry nobody reads (devnet tooling).
    pub(crate) fn unregistered() -> Self {
        Self::new(&Registry::new()).expect("a fresh registry has no name to collide with")
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
}
