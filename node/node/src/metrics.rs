//! The node's own Prometheus metrics (chain and p2p metrics live in their crates and share the
//! node's registry). Every series is registered at start, so counters read 0 before their first
//! event and dashboards have data. Names and meanings: `docs/metrics.md`.

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Metrics of the node's roles.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    /// `hoard_node_info`.
    pub info: IntGaugeVec,
    /// `hoard_storage_capacity_bytes`.
    pub storage_capacity: IntGauge,
    /// `hoard_storage_used_bytes`.
    pub storage_used: IntGauge,
    /// `hoard_storage_free_bytes`.
    pub storage_free: IntGauge,
    /// `hoard_slots{state}`.
    pub slots: IntGaugeVec,
    /// `hoard_slots_evicted_total`.
    pub slots_evicted: IntCounter,
    /// `hoard_integrity_failures_total`.
    pub integrity_failures: IntCounter,
    /// `hoard_proofs_required_total`.
    pub proofs_required: IntCounter,
    /// `hoard_proofs_submitted_total`.
    pub proofs_submitted: IntCounter,
    /// `hoard_proofs_failed_total{reason}`.
    pub proofs_failed: IntCounterVec,
    /// `hoard_proofs_missed_total`.
    pub proofs_missed: IntCounter,
    /// `hoard_proofs_at_risk`.
    pub proofs_at_risk: IntGauge,
    /// `hoard_proof_latency_blocks`.
    pub proof_latency_blocks: Histogram,
    /// `hoard_period_length_blocks`.
    pub period_length_blocks: IntGauge,
    /// `hoard_proof_build_seconds`.
    pub proof_build_seconds: Histogram,
    /// `hoard_collateral_locked_tokens`.
    pub collateral_locked: Gauge,
    /// `hoard_collateral_slashed_tokens_total`.
    pub collateral_slashed: prometheus::Counter,
    /// `hoard_earnings_accrued_tokens`.
    pub earnings_accrued: Gauge,
    /// `hoard_earnings_withdrawn_tokens_total`.
    pub earnings_withdrawn: prometheus::Counter,
    /// `hoard_token_balance_tokens`.
    pub token_balance: Gauge,
    /// `hoard_chain_synced_block`.
    pub synced_block: IntGauge,
    /// `hoard_blocks_rejected_total`.
    pub blocks_rejected: IntCounter,
    /// `hoard_dataset_slots{dataset,state}`.
    pub dataset_slots: IntGaugeVec,
    /// `hoard_dataset_slots_needed{dataset}`.
    pub dataset_slots_needed: IntGaugeVec,
    /// `hoard_dataset_proofs_total{dataset,outcome}`.
    pub dataset_proofs: IntCounterVec,
    /// `hoard_dataset_repairs_total{dataset}`.
    pub dataset_repairs: IntCounterVec,
    /// `hoard_repair_duration_seconds`.
    pub repair_duration: Histogram,
    /// `hoard_validator_marks_total`.
    pub validator_marks: IntCounter,
    /// `hoard_validator_rewards_tokens_total`.
    pub validator_rewards: prometheus::Counter,
    /// `hoard_audit_checks_total{outcome}`.
    pub audit_checks: IntCounterVec,
    /// `hoard_api_connections_refused_total`.
    pub api_connections_refused: IntCounter,
    /// `hoard_served_bytes_total{protocol,role}`.
    pub served_bytes: IntCounterVec,
    /// `hoard_fetched_bytes_total{from}`.
    pub fetched_bytes: IntCounterVec,
    /// `hoard_reader_cache_bytes`.
    pub reader_cache_bytes: IntGauge,
    /// `hoard_reader_cache_capacity_bytes`.
    pub reader_cache_capacity: IntGauge,
    /// `hoard_reader_cache_hits_total`.
    pub reader_cache_hits: IntCounter,
    /// `hoard_reader_cache_misses_total`.
    pub reader_cache_misses: IntCounter,
    /// `hoard_download_sources`.
    pub download_sources: Histogram,
    /// `hoard_damaged_slots`.
    pub damaged_slots: IntGauge,
    /// `hoard_self_repair_blocks_total`.
    pub self_repair_blocks: IntCounter,
    /// `hoard_self_repair_slots_total`.
    pub self_repair_slots: IntCounter,
    /// `hoard_self_repair_failures_total{reason}`.
    pub self_repair_failures: IntCounterVec,
    /// `hoard_scrub_blocks_checked_total`.
    pub scrub_blocks_checked: IntCounter,
    /// `hoard_scrub_corrupt_blocks_total`.
    pub scrub_corrupt_blocks: IntCounter,
    /// `hoard_scrub_pass_progress_ratio`.
    pub scrub_progress: Gauge,
    /// `hoard_scrub_last_full_pass_timestamp_seconds`.
    pub scrub_last_full_pass: IntGauge,
    /// `hoard_scrub_bytes_per_second`.
    pub scrub_bytes_per_second: IntGauge,
    /// `hoard_scrub_interval_seconds`.
    pub scrub_interval: IntGauge,
}

impl NodeMetrics {
    /// Creates and registers every metric in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let r = Reg(registry);
        let m = Self {
            info: r.int_gauge_vec(
                "hoard_node_info",
                "Constant 1, labelled with the node's version, libp2p peer id and chain address.",
                &["version", "peer_id", "address"],
            )?,
            storage_capacity: r.int_gauge(
                "hoard_storage_capacity_bytes",
                "Bytes of slot data the host offers to store.",
            )?,
            storage_used: r.int_gauge(
                "hoard_storage_used_bytes",
                "Bytes of slot data the host stores now.",
            )?,
            storage_free: r.int_gauge(
                "hoard_storage_free_bytes",
                "Free disk space left in the node's data folders, bytes.",
            )?,
            slots: r.int_gauge_vec(
                "hoard_slots",
                "Slots this host holds, by state (filling, filled, finished, failed).",
                &["state"],
            )?,
            slots_evicted: r.int_counter(
                "hoard_slots_evicted_total",
                "Slots this host lost by eviction after too many missed proofs.",
            )?,
            integrity_failures: r.int_counter(
                "hoard_integrity_failures_total",
                "Times local slot data failed its integrity check (block roots or slot root).",
            )?,
            proofs_required: r.int_counter(
                "hoard_proofs_required_total",
                "Proofs the chain required of this host.",
            )?,
            proofs_submitted: r.int_counter(
                "hoard_proofs_submitted_total",
                "Proofs this host got mined.",
            )?,
            proofs_failed: r.int_counter_vec(
                "hoard_proofs_failed_total",
                "Proof attempts that failed, by reason (local_verify, revert, late, io).",
                &["reason"],
            )?,
            proofs_missed: r.int_counter(
                "hoard_proofs_missed_total",
                "Proofs of this host marked missing on chain.",
            )?,
            proofs_at_risk: r.int_gauge(
                "hoard_proofs_at_risk",
                "Required proofs not yet mined whose period ends within the warning margin.",
            )?,
            proof_latency_blocks: r.histogram(
                "hoard_proof_latency_blocks",
                "Blocks after the period start at which this host's proof was mined.",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            )?,
            period_length_blocks: r.int_gauge(
                "hoard_period_length_blocks",
                "Blocks per proof period (the deadline the latency is measured against).",
            )?,
            proof_build_seconds: r.histogram(
                "hoard_proof_build_seconds",
                "Time to read the challenged cells and build a proof, seconds.",
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            )?,
            collateral_locked: r.gauge(
                "hoard_collateral_locked_tokens",
                "Collateral locked in held slots, tokens (less slashes).",
            )?,
            collateral_slashed: r.counter(
                "hoard_collateral_slashed_tokens_total",
                "Collateral this host lost to missed-proof slashes, tokens.",
            )?,
            earnings_accrued: r.gauge(
                "hoard_earnings_accrued_tokens",
                "Pay earned so far on slots held, not yet withdrawn, tokens.",
            )?,
            earnings_withdrawn: r.counter(
                "hoard_earnings_withdrawn_tokens_total",
                "Pay and collateral withdrawn by this node, tokens.",
            )?,
            token_balance: r.gauge(
                "hoard_token_balance_tokens",
                "Token balance of the node's account, tokens.",
            )?,
            synced_block: r.int_gauge(
                "hoard_chain_synced_block",
                "Last block whose marketplace events the node has handled.",
            )?,
            blocks_rejected: r.int_counter(
                "hoard_blocks_rejected_total",
                "Downloaded blocks that failed verification against their slot root.",
            )?,
            dataset_slots: r.int_gauge_vec(
                "hoard_dataset_slots",
                "Slots of each watched request by state (free, filled, repair).",
                &["dataset", "state"],
            )?,
            dataset_slots_needed: r.int_gauge_vec(
                "hoard_dataset_slots_needed",
                "Slots a watched request needs to rebuild its dataset (k = slots - maxSlotLoss).",
                &["dataset"],
            )?,
            dataset_proofs: r.int_counter_vec(
                "hoard_dataset_proofs_total",
                "Proofs of each watched request, by outcome (submitted, missed).",
                &["dataset", "outcome"],
            )?,
            dataset_repairs: r.int_counter_vec(
                "hoard_dataset_repairs_total",
                "Freed slots of each watched request that were filled again.",
                &["dataset"],
            )?,
            repair_duration: r.histogram(
                "hoard_repair_duration_seconds",
                "Time from a slot being freed to its refill, seconds.",
                vec![
                    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0,
                ],
            )?,
            validator_marks: r.int_counter(
                "hoard_validator_marks_total",
                "Missed proofs this node marked on chain.",
            )?,
            validator_rewards: r.counter(
                "hoard_validator_rewards_tokens_total",
                "Reporter rewards earned by this node's marks, tokens.",
            )?,
            audit_checks: r.int_counter_vec(
                "hoard_audit_checks_total",
                "Off-chain spot checks of hosts, by outcome (ok, failed, unreachable).",
                &["outcome"],
            )?,
            api_connections_refused: r.int_counter(
                "hoard_api_connections_refused_total",
                "API connections closed unanswered because api.max_connections were open.",
            )?,
            served_bytes: r.int_counter_vec(
                "hoard_served_bytes_total",
                "Block and manifest bytes this node served, by protocol (p2p, http) and the role \
                 it served them as (host: slots it hosts, renter: datasets it packed, reader: its \
                 reader cache; http: the gateway, from the network or the cache).",
                &["protocol", "role"],
            )?,
            fetched_bytes: r.int_counter_vec(
                "hoard_fetched_bytes_total",
                "Verified block bytes this node downloaded, by the role of the peer that sent \
                 them (host of the slot on chain, renter, reader).",
                &["from"],
            )?,
            reader_cache_bytes: r.int_gauge(
                "hoard_reader_cache_bytes",
                "Bytes of downloaded blocks (and their paths) held in the reader cache.",
            )?,
            reader_cache_capacity: r.int_gauge(
                "hoard_reader_cache_capacity_bytes",
                "Bytes the reader cache may hold, summed over the volumes.",
            )?,
            reader_cache_hits: r.int_counter(
                "hoard_reader_cache_hits_total",
                "Blocks a download or gateway read found in the reader cache.",
            )?,
            reader_cache_misses: r.int_counter(
                "hoard_reader_cache_misses_total",
                "Blocks a download or gateway read had to fetch from peers.",
            )?,
            download_sources: r.histogram(
                "hoard_download_sources",
                "Peers that delivered blocks to one download or gateway read.",
                vec![1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0],
            )?,
            damaged_slots: r.int_gauge(
                "hoard_damaged_slots",
                "Hosted slots with damaged or missing blocks not yet repaired.",
            )?,
            self_repair_blocks: r.int_counter(
                "hoard_self_repair_blocks_total",
                "Damaged blocks of hosted slots rebuilt from the other slots and written back.",
            )?,
            self_repair_slots: r.int_counter(
                "hoard_self_repair_slots_total",
                "Hosted slots rebuilt whole from the other slots (their files were gone or unusable).",
            )?,
            self_repair_failures: r.int_counter_vec(
                "hoard_self_repair_failures_total",
                "Self-repair attempts that failed, by reason (sources, disk, other).",
                &["reason"],
            )?,
            scrub_blocks_checked: r.int_counter(
                "hoard_scrub_blocks_checked_total",
                "Hosted blocks the background scrub re-read and checked against their roots.",
            )?,
            scrub_corrupt_blocks: r.int_counter(
                "hoard_scrub_corrupt_blocks_total",
                "Hosted blocks the background scrub found damaged or unreadable.",
            )?,
            scrub_progress: r.gauge(
                "hoard_scrub_pass_progress_ratio",
                "Share of the hosted bytes the current scrub pass has checked (0..1).",
            )?,
            scrub_last_full_pass: r.int_gauge(
                "hoard_scrub_last_full_pass_timestamp_seconds",
                "Unix time the last complete scrub pass ended (before the first: when it began).",
            )?,
            scrub_bytes_per_second: r.int_gauge(
                "hoard_scrub_bytes_per_second",
                "The scrub's pace: bytes per second it reads (host.scrub settings, hosted bytes).",
            )?,
            scrub_interval: r.int_gauge(
                "hoard_scrub_interval_seconds",
                "Every hosted block is re-checked at least once in this many seconds (0: no scrub).",
            )?,
        };
        for protocol in ["p2p", "http"] {
            for role in ["host", "renter", "reader"] {
                m.served_bytes.with_label_values(&[protocol, role]);
            }
        }
        for from in ["host", "renter", "reader"] {
            m.fetched_bytes.with_label_values(&[from]);
        }
        for state in ["filling", "filled", "finished", "failed"] {
            m.slots.with_label_values(&[state]).set(0);
        }
        for reason in ["local_verify", "revert", "late", "io"] {
            m.proofs_failed.with_label_values(&[reason]);
        }
        for outcome in ["ok", "failed", "unreachable"] {
            m.audit_checks.with_label_values(&[outcome]);
        }
        for reason in ["sources", "disk", "other"] {
            m.self_repair_failures.with_label_values(&[reason]);
        }
        Ok(m)
    }
}

/// Token base units (18 decimals) as whole tokens, for gauges.
pub fn tokens(units: alloy::primitives::U256) -> f64 {
    // f64 keeps 15–16 significant digits: plenty for a dashboard, never used for accounting.
    let s = units.to_string();
    s.parse::<f64>().unwrap_or(f64::MAX) / 1e18
}

struct Reg<'a>(&'a Registry);

impl Reg<'_> {
    fn add<T: prometheus::core::Collector + Clone + 'static>(&self, c: T) -> prometheus::Result<T> {
        self.0.register(Box::new(c.clone()))?;
        Ok(c)
    }
    fn int_gauge(&self, name: &str, help: &str) -> prometheus::Result<IntGauge> {
        self.add(IntGauge::new(name, help)?)
    }
    fn gauge(&self, name: &str, help: &str) -> prometheus::Result<Gauge> {
        self.add(Gauge::new(name, help)?)
    }
    fn counter(&self, name: &str, help: &str) -> prometheus::Result<prometheus::Counter> {
        self.add(prometheus::Counter::new(name, help)?)
    }
    fn int_counter(&self, name: &str, help: &str) -> prometheus::Result<IntCounter> {
        self.add(IntCounter::new(name, help)?)
    }
    fn int_gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntGaugeVec> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }
    fn int_counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntCounterVec> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }
    fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: Vec<f64>,
    ) -> prometheus::Result<Histogram> {
        self.add(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_from_the_start() {
        let registry = Registry::new();
        NodeMetrics::new(&registry).expect("register");
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .expect("encode");
        for name in [
            "hoard_slots{state=\"filled\"} 0",
            "hoard_proofs_missed_total 0",
            "hoard_proofs_failed_total{reason=\"revert\"} 0",
            "# HELP hoard_proof_latency_blocks ",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
        assert_eq!(
            tokens(
                alloy::primitives::U256::from(15u64)
                    * alloy::primitives::U256::from(10u64).pow(alloy::primitives::U256::from(17))
            ),
            1.5
        );
    }
}
