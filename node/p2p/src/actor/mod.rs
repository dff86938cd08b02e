//! The network actor: one task that owns the [`Swarm`] and runs one `select!` loop over the
//! handle's commands, swarm events, the node's pending replies and provider-search deadlines.
//!
//! - `requests.rs`: block and audit requests, both directions, and their metrics.
//! - `discovery.rs`: Kademlia provider records and identify.

mod discovery;
mod requests;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures::{
    StreamExt,
    future::{AbortHandle, BoxFuture},
    stream::FuturesUnordered,
};
use libp2p::{
    Multiaddr, PeerId, Swarm,
    kad::{QueryId, RecordKey},
    request_response::{InboundRequestId, OutboundRequestId, ResponseChannel},
    swarm::SwarmEvent,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::{
    ban::{BAN_DURATION, BAN_THRESHOLD, PeerScores},
    behaviour::{Behaviour, BehaviourEvent},
    error::NetError,
    handle::Command,
    inbound::InboundRequest,
    messages::{AuditResponse, BlockResponse},
    metrics::{Metrics, Protocol},
};

/// Most providers [`find_providers`](crate::NetworkHandle::find_providers) returns.
pub const MAX_PROVIDERS: usize = 32;
/// Most outbound requests (block + audit) in flight to one peer.
pub const MAX_PENDING_PER_PEER: usize = 64;
/// Most inbound requests waiting for the node's answer; past it peers get `Error("busy")`.
pub const MAX_INBOUND_IN_FLIGHT: usize = 1024;
/// Most provider searches at once.
pub const MAX_SEARCHES: usize = 64;
/// Most addresses taken per peer from one `add_peer_addrs` call or identify message.
const MAX_ADDRS_PER_PEER: usize = 8;
/// Most `listen_addrs` callers waiting for the first address.
const MAX_LISTEN_WAITERS: usize = 64;

type Pending<R> = HashMap<OutboundRequestId, (PeerId, oneshot::Sender<Result<R, NetError>>)>;

/// What happened to an inbound request the actor is tracking.
#[derive(Debug, Clone, Copy)]
enum InboundState {
    /// Handed to the node; its answer is awaited in `replies`.
    AwaitingNode,
    /// Answer handed to libp2p; `ResponseSent` or `InboundFailure` closes it.
    Sending { bytes: u64, is_error: bool },
    /// libp2p had already closed the channel when the answer came; `InboundFailure` closes it.
    Abandoned,
}

/// The node's answer (or its absence) to an inbound request, ready to send.
enum Reply {
    Block(
        InboundRequestId,
        ResponseChannel<BlockResponse>,
        Option<BlockResponse>,
    ),
    Audit(
        InboundRequestId,
        ResponseChannel<AuditResponse>,
        Option<AuditResponse>,
    ),
}

/// A running provider search.
#[derive(Debug)]
struct Search {
    found: Vec<PeerId>,
    reply: oneshot::Sender<Result<Vec<PeerId>, NetError>>,
    deadline: AbortHandle,
}

/// The actor's state. Everything in it is bounded: see the `MAX_*` constants.
pub(crate) struct Actor {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<InboundRequest>,
    request_timeout: Duration,
    metrics: Metrics,
    listen_addrs: Vec<Multiaddr>,
    listen_waiters: Vec<oneshot::Sender<Vec<Multiaddr>>>,
    /// The node's answers to inbound requests, each bounded by the request timeout.
    replies: FuturesUnordered<BoxFuture<'static, Reply>>,
    inbound_state: HashMap<(Protocol, InboundRequestId), InboundState>,
    /// Dropped when libp2p is done with the answer: resolves the node's [`crate::Sent`].
    inbound_sent: HashMap<(Protocol, InboundRequestId), oneshot::Sender<()>>,
    pending_blocks: Pending<BlockResponse>,
    pending_audits: Pending<AuditResponse>,
    in_flight: HashMap<PeerId, usize>,
    providing: HashMap<QueryId, oneshot::Sender<Result<(), NetError>>>,
    searches: HashMap<QueryId, Search>,
    deadlines: FuturesUnordered<BoxFuture<'static, Option<QueryId>>>,
    scores: PeerScores,
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("peer", self.swarm.local_peer_id())
            .field("listen_addrs", &self.listen_addrs)
            .field("inbound_in_flight", &self.replies.len())
            .field(
                "outbound_in_flight",
                &(self.pending_blocks.len() + self.pending_audits.len()),
            )
            .field("searches", &self.searches.len())
            .finish_non_exhaustive()
    }
}

impl Actor {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        inbound: mpsc::Sender<InboundRequest>,
        request_timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            swarm,
            commands,
            inbound,
            request_timeout,
            metrics,
            listen_addrs: Vec::new(),
            listen_waiters: Vec::new(),
            replies: FuturesUnordered::new(),
            inbound_state: HashMap::new(),
            inbound_sent: HashMap::new(),
            pending_blocks: HashMap::new(),
            pending_audits: HashMap::new(),
            in_flight: HashMap::new(),
            providing: HashMap::new(),
            searches: HashMap::new(),
            deadlines: FuturesUnordered::new(),
            scores: PeerScores::default(),
        }
    }

    /// Adds bootstrap peers to the swarm and Kademlia, dials them and starts a Kademlia
    /// bootstrap.
    pub(crate) fn bootstrap(&mut self, peers: &[(PeerId, Multiaddr)]) {
        for (peer, addr) in peers {
            self.add_peer_addrs(*peer, vec![addr.clone()]);
            if let Err(e) = self.swarm.dial(*peer) {
                warn!(%peer, %addr, err = %e, "cannot dial bootstrap peer");
            }
        }
        if !peers.is_empty()
            && let Err(e) = self.swarm.behaviour_mut().kad.bootstrap()
        {
            debug!(err = %e, "kademlia bootstrap not started");
        }
    }

    /// The loop. Ends on [`Command::Shutdown`] or when every handle is dropped.
    pub(crate) async fn run(mut self) {
        info!(peer = %self.swarm.local_peer_id(), "network started");
        let mut shutdown_ack = None;
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(ack)) => {
                        shutdown_ack = Some(ack);
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(reply) = self.replies.next(), if !self.replies.is_empty() => {
                    match reply {
                        Reply::Block(id, channel, answer) => self.answer(id, channel, answer),
                        Reply::Audit(id, channel, answer) => self.answer(id, channel, answer),
                    }
                }
                Some(deadline) = self.deadlines.next(), if !self.deadlines.is_empty() => {
                    if let Some(id) = deadline {
                        self.finish_search(id);
                    }
                }
            }
        }
        info!(peer = %self.swarm.local_peer_id(), "network stopped");
        // Dropping the swarm closes every connection; dropping the pending reply senders makes
        // every waiting call return `NetError::Closed`.
        drop(self);
        if let Some(ack) = shutdown_ack {
            let _ = ack.send(());
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs(reply) => {
                if self.listen_addrs.is_empty() {
                    self.listen_waiters.retain(|w| !w.is_closed());
                    if self.listen_waiters.len() < MAX_LISTEN_WAITERS {
                        self.listen_waiters.push(reply);
                    }
                } else {
                    let _ = reply.send(self.listen_addrs.clone());
                }
            }
            Command::AddPeerAddrs { peer, addrs, reply } => {
                self.add_peer_addrs(peer, addrs);
                let _ = reply.send(());
            }
            Command::RequestBlock {
                peer,
                request,
                reply,
            } => {
                self.send_request::<BlockResponse>(peer, request, reply);
            }
            Command::RequestAudit {
                peer,
                request,
                reply,
            } => {
                self.send_request::<AuditResponse>(peer, request, reply);
            }
            Command::StartProviding { dataset, reply } => {
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(RecordKey::new(dataset.as_bytes()))
                {
                    Ok(id) => {
                        self.providing.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Request(format!(
                            "cannot store the provider record: {e}"
                        ))));
                    }
                }
            }
            Command::StopProviding { dataset, reply } => {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .stop_providing(&RecordKey::new(dataset.as_bytes()));
                let _ = reply.send(());
            }
            Command::FindProviders {
                dataset,
                timeout,
                reply,
            } => {
                self.find_providers(dataset, timeout, reply);
            }
            Command::Penalise {
                peer,
                reason,
                reply,
            } => {
                self.penalise(peer, &reason);
                let _ = reply.send(());
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().count());
            }
            Command::Shutdown(_) => {}
        }
    }

    fn add_peer_addrs(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        for addr in addrs.into_iter().take(MAX_ADDRS_PER_PEER) {
            self.swarm.add_peer_address(peer, addr.clone());
            self.swarm.behaviour_mut().kad.add_address(&peer, addr);
        }
    }

    fn is_banned(&mut self, peer: &PeerId) -> bool {
        self.swarm.behaviour_mut().ban.is_banned(peer)
    }

    fn penalise(&mut self, peer: PeerId, reason: &str) {
        if peer == *self.swarm.local_peer_id() || self.is_banned(&peer) {
            return;
        }
        let score = self.scores.penalise(peer, Instant::now());
        warn!(%peer, %reason, score, threshold = BAN_THRESHOLD, "peer penalised");
        if score < BAN_THRESHOLD {
            return;
        }
        self.scores.clear(&peer);
        let behaviour = self.swarm.behaviour_mut();
        behaviour.ban.ban(peer, Instant::now() + BAN_DURATION);
        behaviour.kad.remove_peer(&peer);
        let _ = self.swarm.disconnect_peer_id(peer);
        self.metrics.banned();
        warn!(%peer, %reason, ban_secs = BAN_DURATION.as_secs(), "peer banned");
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Block(event)) => {
                self.on_rr_event::<BlockResponse>(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Audit(event)) => {
                self.on_rr_event::<AuditResponse>(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => self.on_identify(event),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(_)) => {}
            SwarmEvent::Behaviour(BehaviourEvent::Ban(never)) => match never {},
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                if !self.listen_addrs.contains(&address) {
                    self.listen_addrs.push(address);
                }
                for waiter in self.listen_waiters.drain(..) {
                    let _ = waiter.send(self.listen_addrs.clone());
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address);
            }
            SwarmEvent::ListenerError { error, .. } => warn!(err = %error, "listener error"),
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connected");
                self.metrics.set_peers(self.swarm.connected_peers().count());
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                debug!(peer = %peer_id, cause = ?cause, "connection closed");
                self.metrics.set_peers(self.swarm.connected_peers().count());
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(peer = ?peer_id, err = %error, "dial failed");
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                debug!(addr = %send_back_addr, err = %error, "inbound connection failed");
            }
            _ => {}
        }
    }
}
