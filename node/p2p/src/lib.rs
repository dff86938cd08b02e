//! libp2p networking of a hoard node: block and audit protocols, Kademlia provider records,
//! peer scoring.
//!
//! ```text
//!   node code                                   network task (one per node)
//!  ───────────                                 ─────────────────────────────
//!  NetworkHandle (Clone) ──Command (mpsc 256)──▶ Actor: one select! loop, owns the Swarm
//!       ▲                                         │
//!       └──────────── oneshot reply ◀─────────────┤   Swarm<Behaviour>  TCP + noise + yamux
//!                                                 │    ├ BanList        refuses banned peers
//!                                                 │    ├ identify       /hoard/id/1.0.0
//!                                                 │    ├ ping
//!                                                 │    ├ kad            /hoard/kad/1.0.0, Server
//!                                                 │    ├ block          /hoard/block/1  (CBOR)
//!                                                 │    └ audit          /hoard/audit/1  (CBOR)
//!                                                 │
//!  inbound flow:                                  │
//!  peer ─request─▶ Swarm ─▶ Actor ──try_send──▶ mpsc<InboundRequest> ──▶ node serves it
//!                           │  (full: "busy")                              │
//!                           │                                              ▼
//!                           └◀── FuturesUnordered<oneshot reply, timeout> ◀─ reply.send(..)
//!                                  └─▶ ResponseChannel ─▶ peer   (dropped reply: "internal")
//! ```
//!
//! - [`start`] builds the swarm, binds the listen addresses, dials the bootstrap peers and spawns
//!   the actor; it returns a [`NetworkHandle`] and the task's `JoinHandle`.
//! - The actor never waits on the node: inbound requests go out with `try_send`, and the node's
//!   answers are awaited inside the loop, each bounded by the request timeout.
//! - Requests and responses are CBOR, one message per stream (the bytes of libp2p's `cbor`
//!   codec), under deliberate caps: block 1 KiB / 65 MiB, audit 1 KiB / 2 MiB. The codec is our
//!   own (`codec.rs`) so reads are fast in debug builds and an oversized message names the limit.
//! - Kademlia holds one provider record per dataset (key = the 32-byte dataset id), never per
//!   block; hosts, renters and readers that cache blocks all announce themselves.
//!   `BlockRequest::Have` asks a provider which blocks it holds. Identify's listen addresses are fed to Kademlia by hand.
//! - [`NetworkHandle::penalise`] scores peers; at [`BAN_THRESHOLD`] a peer is disconnected and its
//!   connections refused both ways for [`BAN_DURATION`].
//! - Every queue and table is bounded (`MAX_*` constants); metrics go to the node's own
//!   `prometheus::Registry`.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod actor;
mod ban;
mod behaviour;
mod codec;
mod config;
mod error;
mod handle;
mod inbound;
mod messages;
mod metrics;

use libp2p::{SwarmBuilder, noise, tcp, yamux};
use tokio::sync::mpsc;
use tracing::Instrument;

pub use actor::{MAX_INBOUND_IN_FLIGHT, MAX_PENDING_PER_PEER, MAX_PROVIDERS, MAX_SEARCHES};
pub use ban::{BAN_DURATION, BAN_THRESHOLD, MAX_BANNED, MAX_SCORED, SCORE_DECAY};
pub use behaviour::{
    AUDIT_PROTOCOL, AUDIT_REQUEST_MAX, AUDIT_RESPONSE_MAX, BLOCK_PROTOCOL, BLOCK_REQUEST_MAX,
    BLOCK_RESPONSE_MAX, IDENTIFY_PROTOCOL, KAD_PROTOCOL,
};
/// A block's bytes in [`BlockWithPath`] (a slice of the buffer it was received in).
pub use bytes::Bytes;
pub use codec::TooLarge;
pub use config::{DEFAULT_IDLE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, NetworkConfig, default_listen};
pub use error::NetError;
pub use handle::{LISTEN_ADDR_DEADLINE, NetworkHandle};
pub use inbound::{InboundRequest, Sent};
pub use libp2p::{Multiaddr, PeerId, identity::Keypair};
pub use messages::{
    AuditRequest, AuditResponse, BadBlock, BlockRequest, BlockResponse, BlockWithPath,
    MAX_BLOCKS_PER_REQUEST, MAX_HAVE_RANGES, MAX_PATH_LEN, SlotHave,
};

/// Capacity of the handle → actor command channel.
const COMMAND_CHANNEL: usize = 256;

/// Starts the network: builds the swarm, listens on `config.listen`, dials `config.bootstrap`,
/// registers the metrics in `registry` and spawns the actor on the current Tokio runtime.
///
/// Inbound requests are delivered on `inbound`; when it is full, peers are answered
/// `Error("busy")`. The task ends on [`NetworkHandle::shutdown`] or when every handle is dropped.
pub async fn start(
    config: NetworkConfig,
    registry: &prometheus::Registry,
    inbound: mpsc::Sender<InboundRequest>,
) -> Result<(NetworkHandle, tokio::task::JoinHandle<()>), NetError> {
    let metrics = metrics::Metrics::register(registry)?;
    let transport = SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Setup(format!("noise: {e}")))?;
    // Building a behaviour that is not a `Result` cannot fail.
    let Ok(with_behaviour) =
        transport.with_behaviour(|key| behaviour::Behaviour::new(key, &config));
    let mut swarm = with_behaviour
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    for addr in &config.listen {
        swarm.listen_on(addr.clone())?;
    }
    let local_peer_id = *swarm.local_peer_id();

    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CHANNEL);
    let mut actor = actor::Actor::new(swarm, commands_rx, inbound, config.request_timeout, metrics);
    actor.bootstrap(&config.bootstrap);
    let span = tracing::info_span!("p2p", peer = %local_peer_id);
    let task = tokio::spawn(actor.run().instrument(span));
    Ok((NetworkHandle::new(local_peer_id, commands_tx), task))
}
