//! The networking error type.

use libp2p::{PeerId, TransportError};

/// Errors of [`start`](crate::start) and the [`NetworkHandle`](crate::NetworkHandle) calls.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The network actor has stopped (shut down, or its task ended).
    #[error("the network task has stopped")]
    Closed,
    /// The peer did not answer within the request timeout.
    #[error("the request timed out (raise `request_timeout` if the peer is just slow)")]
    Timeout,
    /// No connection to the peer could be made.
    #[error("could not dial the peer: {0}")]
    Dial(String),
    /// The peer is banned: requests to it are refused until the ban ends.
    #[error("peer {0} is banned after repeated misbehaviour")]
    Banned(PeerId),
    /// The request failed: connection lost, protocol unsupported, too many in flight, …
    #[error("request failed: {0}")]
    Request(String),
    /// An I/O error on a stream.
    #[error("network I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Listening on an address failed.
    #[error("cannot listen: {0}")]
    Transport(#[from] TransportError<std::io::Error>),
    /// Building the transport or behaviours failed.
    #[error("cannot set up the network: {0}")]
    Setup(String),
    /// Registering the metrics failed (the names are already in this registry).
    #[error("cannot register the network metrics (one registry per node): {0}")]
    Metrics(#[from] prometheus::Error),
}
