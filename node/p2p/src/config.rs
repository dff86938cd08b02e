//! Network configuration.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId, identity::Keypair, multiaddr::Protocol};

/// Default request timeout for `/hoard/block/1` and `/hoard/audit/1`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time an idle connection is kept open.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How a node's networking is set up.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The node's identity; its public key gives the [`PeerId`].
    pub keypair: Keypair,
    /// Addresses to listen on (default `/ip4/127.0.0.1/tcp/0`).
    pub listen: Vec<Multiaddr>,
    /// Peers dialled at start and added to Kademlia.
    pub bootstrap: Vec<(PeerId, Multiaddr)>,
    /// Timeout of one block or audit request, both ways; also Kademlia's query timeout.
    pub request_timeout: Duration,
    /// How long a connection with no open streams stays up.
    pub idle_timeout: Duration,
}

impl NetworkConfig {
    /// Defaults around `keypair`: loopback on an ephemeral port, no bootstrap peers.
    pub fn new(keypair: Keypair) -> Self {
        Self {
            keypair,
            listen: vec![default_listen()],
            bootstrap: Vec::new(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl Default for NetworkConfig {
    /// A fresh ed25519 identity and the defaults of [`NetworkConfig::new`].
    fn default() -> Self {
        Self::new(Keypair::generate_ed25519())
    }
}

/// `/ip4/127.0.0.1/tcp/0`.
pub fn default_listen() -> Multiaddr {
    Multiaddr::empty()
        .with(Protocol::Ip4([127, 0, 0, 1].into()))
        .with(Protocol::Tcp(0))
}
