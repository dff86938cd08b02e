//! Prometheus metrics of the networking actor, registered in the node's own [`Registry`] (never
//! the global one: several nodes share one process in tests).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Which request-response protocol a request used (`protocol` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Protocol {
    Block,
    Audit,
}

impl Protocol {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Audit => "audit",
        }
    }
}

/// Which side started a request (`direction` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Inbound,
    Outbound,
}

/// How a request ended (`outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Timeout,
}

/// The actor's metrics.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    peers: IntGauge,
    bytes_sent: IntCounter,
    bytes_received: IntCounter,
    requests: IntCounterVec,
    banned: IntCounter,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let peers = IntGauge::new("hoard_peers", "Peers with at least one open connection.")?;
        let bytes_sent = IntCounter::new(
            "hoard_p2p_bytes_sent_total",
            "Payload bytes (blocks, manifests, proofs) of responses sent to peers.",
        )?;
        let bytes_received = IntCounter::new(
            "hoard_p2p_bytes_received_total",
            "Payload bytes (blocks, manifests, proofs) of responses received from peers.",
        )?;
        let requests = IntCounterVec::new(
            Opts::new(
                "hoard_p2p_requests_total",
                "Block and audit requests by protocol (block|audit), direction \
                 (inbound|outbound) and outcome (ok|error|timeout).",
            ),
            &["protocol", "direction", "outcome"],
        )?;
        let banned = IntCounter::new(
            "hoard_p2p_peers_banned_total",
            "Peers banned after their penalty score passed the threshold.",
        )?;
        registry.register(Box::new(peers.clone()))?;
        registry.register(Box::new(bytes_sent.clone()))?;
        registry.register(Box::new(bytes_received.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(banned.clone()))?;
        Ok(Self {
            peers,
            bytes_sent,
            bytes_received,
            requests,
            banned,
        })
    }

    pub(crate) fn set_peers(&self, peers: usize) {
        self.peers.set(i64::try_from(peers).unwrap_or(i64::MAX));
    }

    pub(crate) fn sent(&self, bytes: u64) {
        self.bytes_sent.inc_by(bytes);
    }

    pub(crate) fn received(&self, bytes: u64) {
        self.bytes_received.inc_by(bytes);
    }

    pub(crate) fn request(&self, protocol: Protocol, direction: Direction, outcome: Outcome) {
        let direction = match direction {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        };
        let outcome = match outcome {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        };
        self.requests
            .with_label_values(&[protocol.label(), direction, outcome])
            .inc();
    }

    pub(crate) fn banned(&self) {
        self.banned.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_nodes_register_in_their_own_registries() {
        let a = Registry::new();
        let b = Registry::new();
        Metrics::register(&a).expect("first registry");
        Metrics::register(&b).expect("second registry");
        assert!(
            Metrics::register(&a).is_err(),
            "duplicate names are refused per registry"
        );
    }

    #[test]
    fn request_labels_are_exported() {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry).expect("register");
        metrics.request(Protocol::Audit, Direction::Inbound, Outcome::Timeout);
        let families = registry.gather();
        let requests = families
            .iter()
            .find(|f| f.name() == "hoard_p2p_requests_total")
            .expect("requests family");
        let labels: Vec<(String, String)> = requests.get_metric()[0]
            .get_label()
            .iter()
            .map(|l| (l.name().to_owned(), l.value().to_owned()))
            .collect();
        assert!(labels.contains(&("protocol".to_owned(), "audit".to_owned())));
        assert!(labels.contains(&("direction".to_owned(), "inbound".to_owned())));
        assert!(labels.contains(&("outcome".to_owned(), "timeout".to_owned())));
    }
}
