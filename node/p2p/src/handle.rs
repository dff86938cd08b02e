//! [`NetworkHandle`]: the cloneable front of the network actor.

use std::time::Duration;

use hoard_prover::DatasetId;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::{
    error::NetError,
    messages::{AuditRequest, AuditResponse, BlockRequest, BlockResponse},
};

/// How long [`NetworkHandle::listen_addrs`] waits for the first address to be bound.
pub const LISTEN_ADDR_DEADLINE: Duration = Duration::from_secs(10);

/// Requests from the handle to the actor. Every variant that wants an answer carries a oneshot.
#[derive(Debug)]
pub(crate) enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    AddPeerAddrs {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<()>,
    },
    RequestBlock {
        peer: PeerId,
        request: BlockRequest,
        reply: oneshot::Sender<Result<BlockResponse, NetError>>,
    },
    RequestAudit {
        peer: PeerId,
        request: AuditRequest,
        reply: oneshot::Sender<Result<AuditResponse, NetError>>,
    },
    StartProviding {
        dataset: DatasetId,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    StopProviding {
        dataset: DatasetId,
        reply: oneshot::Sender<()>,
    },
    FindProviders {
        dataset: DatasetId,
        timeout: Duration,
        reply: oneshot::Sender<Result<Vec<PeerId>, NetError>>,
    },
    Penalise {
        peer: PeerId,
        reason: String,
        reply: oneshot::Sender<()>,
    },
    ConnectedPeers(oneshot::Sender<usize>),
    Shutdown(oneshot::Sender<()>),
}

/// A cloneable handle on the network actor. Every call is a message to the actor; once the actor
/// has stopped, calls return [`NetError::Closed`] (or an empty/zero answer where they have no
/// error type).
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    local_peer_id: PeerId,
    commands: mpsc::Sender<Command>,
}

impl NetworkHandle {
    pub(crate) fn new(local_peer_id: PeerId, commands: mpsc::Sender<Command>) -> Self {
        Self {
            local_peer_id,
            commands,
        }
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses actually bound (with real ports). Waits up to [`LISTEN_ADDR_DEADLINE`] for
    /// the first one; empty if none is bound by then or the actor has stopped.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let call = self.call(Command::ListenAddrs);
        match tokio::time::timeout(LISTEN_ADDR_DEADLINE, call).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(_)) | Err(_) => Vec::new(),
        }
    }

    /// Tells the swarm and Kademlia where `peer` can be reached (at most 8 addresses are kept
    /// per call).
    pub async fn add_peer_addrs(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let _ = self
            .call(|reply| Command::AddPeerAddrs { peer, addrs, reply })
            .await;
    }

    /// Sends a block or manifest request and waits for the answer (or the request timeout).
    pub async fn request_block(
        &self,
        peer: PeerId,
        request: BlockRequest,
    ) -> Result<BlockResponse, NetError> {
        self.call(|reply| Command::RequestBlock {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Sends an audit request and waits for the answer (or the request timeout).
    pub async fn request_audit(
        &self,
        peer: PeerId,
        request: AuditRequest,
    ) -> Result<AuditResponse, NetError> {
        self.call(|reply| Command::RequestAudit {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Announces this node as a provider of `dataset` (one Kademlia provider record per
    /// dataset, republished by Kademlia). Returns once the announcement has been sent to the
    /// closest peers known; on [`NetError::Timeout`] the record is still stored locally and
    /// republished later.
    pub async fn start_providing(&self, dataset: DatasetId) -> Result<(), NetError> {
        self.call(|reply| Command::StartProviding { dataset, reply })
            .await?
    }

    /// Stops announcing this node as a provider of `dataset` (the record held by other peers
    /// expires by itself).
    pub async fn stop_providing(&self, dataset: DatasetId) {
        let _ = self
            .call(|reply| Command::StopProviding { dataset, reply })
            .await;
    }

    /// Looks up providers of `dataset` for at most `timeout`, returning those found by then
    /// (possibly none), at most [`MAX_PROVIDERS`](crate::MAX_PROVIDERS), without this node or
    /// banned peers. The actor dials the providers it finds so they can be asked right away.
    pub async fn find_providers(
        &self,
        dataset: DatasetId,
        timeout: Duration,
    ) -> Result<Vec<PeerId>, NetError> {
        self.call(|reply| Command::FindProviders {
            dataset,
            timeout,
            reply,
        })
        .await?
    }

    /// Adds a penalty point to `peer` for `reason`. At
    /// [`BAN_THRESHOLD`](crate::BAN_THRESHOLD) points the peer is disconnected and refused, both
    /// ways, for [`BAN_DURATION`](crate::BAN_DURATION). Points decay over time.
    pub async fn penalise(&self, peer: PeerId, reason: &str) {
        let reason = reason.to_owned();
        let _ = self
            .call(|reply| Command::Penalise {
                peer,
                reason,
                reply,
            })
            .await;
    }

    /// Number of peers with at least one open connection.
    pub async fn connected_peers(&self) -> usize {
        self.call(Command::ConnectedPeers).await.unwrap_or(0)
    }

    /// Stops the actor: connections close and later calls return [`NetError::Closed`]. Returns
    /// once the actor has acknowledged (await the `JoinHandle` from [`start`](crate::start) to
    /// wait for it to finish).
    pub async fn shutdown(&self) {
        let _ = self.call(Command::Shutdown).await;
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(command(tx))
            .await
            .map_err(|_| NetError::Closed)?;
        rx.await.map_err(|_| NetError::Closed)
    }
}
