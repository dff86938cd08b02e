//! The network actor: one task that owns the [`Swarm`] and runs one `select!` loop over the
//! handle's commands, swarm events, the node's pending replies and provider-search deadlines.

use std::{
    collections::{HashMap, HashSet},
    io,
    time::{Duration, Instant},
};

use futures::{
    FutureExt, StreamExt,
    future::{AbortHandle, BoxFuture, abortable},
    stream::FuturesUnordered,
};
use libp2p::{
    Multiaddr, PeerId, Swarm, identify,
    kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey},
    multiaddr::Protocol as AddrProtocol,
    request_response::{
        self, InboundFailure, InboundRequestId, OutboundFailure, OutboundRequestId, ResponseChannel,
    },
    swarm::SwarmEvent,
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::{
    ban::{BAN_DURATION, BAN_THRESHOLD, PeerScores},
    behaviour::{
        AUDIT_PROTOCOL, AUDIT_RESPONSE_MAX, BLOCK_PROTOCOL, BLOCK_RESPONSE_MAX, Behaviour,
        BehaviourEvent, KAD_PROTOCOL, Rr,
    },
    codec::too_large,
    error::NetError,
    handle::Command,
    inbound::InboundRequest,
    messages::{AuditRequest, AuditResponse, BlockRequest, BlockResponse},
    metrics::{Direction, Metrics, Outcome, Protocol},
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

/// What distinguishes the block and audit protocols to the generic request handling below.
trait Exchange: Serialize + DeserializeOwned + Send + 'static {
    type Request: Serialize + DeserializeOwned + Send + 'static;
    const PROTOCOL: Protocol;
    const RESPONSE_MAX: u64;
    fn error(message: &str) -> Self;
    fn payload_len(&self) -> u64;
    fn is_error(&self) -> bool;
    fn validate(request: &Self::Request) -> Result<(), String>;
    fn behaviour(behaviour: &mut Behaviour) -> &mut Rr<Self::Request, Self>;
    fn pending(actor: &mut Actor) -> &mut Pending<Self>;
    fn inbound(
        peer: PeerId,
        request: Self::Request,
        reply: oneshot::Sender<Self>,
    ) -> InboundRequest;
    fn reply(id: InboundRequestId, channel: ResponseChannel<Self>, answer: Option<Self>) -> Reply;
}

impl Exchange for BlockResponse {
    type Request = BlockRequest;
    const PROTOCOL: Protocol = Protocol::Block;
    const RESPONSE_MAX: u64 = BLOCK_RESPONSE_MAX;
    fn error(message: &str) -> Self {
        Self::Error(message.to_owned())
    }
    fn payload_len(&self) -> u64 {
        Self::payload_len(self)
    }
    fn is_error(&self) -> bool {
        Self::is_error(self)
    }
    fn validate(request: &BlockRequest) -> Result<(), String> {
        request.validate()
    }
    fn behaviour(behaviour: &mut Behaviour) -> &mut Rr<BlockRequest, Self> {
        &mut behaviour.block
    }
    fn pending(actor: &mut Actor) -> &mut Pending<Self> {
        &mut actor.pending_blocks
    }
    fn inbound(
        peer: PeerId,
        request: BlockRequest,
        reply: oneshot::Sender<Self>,
    ) -> InboundRequest {
        InboundRequest::Block {
            peer,
            request,
            reply,
        }
    }
    fn reply(id: InboundRequestId, channel: ResponseChannel<Self>, answer: Option<Self>) -> Reply {
        Reply::Block(id, channel, answer)
    }
}

impl Exchange for AuditResponse {
    type Request = AuditRequest;
    const PROTOCOL: Protocol = Protocol::Audit;
    const RESPONSE_MAX: u64 = AUDIT_RESPONSE_MAX;
    fn error(message: &str) -> Self {
        Self::Error(message.to_owned())
    }
    fn payload_len(&self) -> u64 {
        Self::payload_len(self)
    }
    fn is_error(&self) -> bool {
        Self::is_error(self)
    }
    fn validate(_: &AuditRequest) -> Result<(), String> {
        Ok(())
    }
    fn behaviour(behaviour: &mut Behaviour) -> &mut Rr<AuditRequest, Self> {
        &mut behaviour.audit
    }
    fn pending(actor: &mut Actor) -> &mut Pending<Self> {
        &mut actor.pending_audits
    }
    fn inbound(
        peer: PeerId,
        request: AuditRequest,
        reply: oneshot::Sender<Self>,
    ) -> InboundRequest {
        InboundRequest::Audit {
            peer,
            request,
            reply,
        }
    }
    fn reply(id: InboundRequestId, channel: ResponseChannel<Self>, answer: Option<Self>) -> Reply {
        Reply::Audit(id, channel, answer)
    }
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
                    .start_providing(RecordKey::new(&dataset))
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

    // ---- outbound requests ----

    fn send_request<R: Exchange>(
        &mut self,
        peer: PeerId,
        request: R::Request,
        reply: oneshot::Sender<Result<R, NetError>>,
    ) {
        if peer == *self.swarm.local_peer_id() {
            let _ = reply.send(Err(NetError::Request(
                "cannot send a request to ourselves".into(),
            )));
            return;
        }
        if self.is_banned(&peer) {
            let _ = reply.send(Err(NetError::Banned(peer)));
            return;
        }
        if let Err(e) = R::validate(&request) {
            let _ = reply.send(Err(NetError::Request(e)));
            return;
        }
        let in_flight = self.in_flight.entry(peer).or_default();
        if *in_flight >= MAX_PENDING_PER_PEER {
            let _ = reply.send(Err(NetError::Request(format!(
                "{MAX_PENDING_PER_PEER} requests already in flight to {peer}; wait for some to finish"
            ))));
            return;
        }
        *in_flight += 1;
        let id = R::behaviour(self.swarm.behaviour_mut()).send_request(&peer, request);
        R::pending(self).insert(id, (peer, reply));
    }

    fn release(&mut self, peer: &PeerId) {
        if let Some(n) = self.in_flight.get_mut(peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(peer);
            }
        }
    }

    fn on_response<R: Exchange>(&mut self, request_id: OutboundRequestId, response: R) {
        let Some((peer, reply)) = R::pending(self).remove(&request_id) else {
            return;
        };
        self.release(&peer);
        self.metrics.received(response.payload_len());
        let outcome = if response.is_error() {
            Outcome::Error
        } else {
            Outcome::Ok
        };
        self.metrics
            .request(R::PROTOCOL, Direction::Outbound, outcome);
        let _ = reply.send(Ok(response));
    }

    fn on_outbound_failure<R: Exchange>(
        &mut self,
        request_id: OutboundRequestId,
        error: OutboundFailure,
    ) {
        let Some((peer, reply)) = R::pending(self).remove(&request_id) else {
            return;
        };
        self.release(&peer);
        let protocol = match R::PROTOCOL {
            Protocol::Block => BLOCK_PROTOCOL,
            Protocol::Audit => AUDIT_PROTOCOL,
        };
        debug!(%peer, %protocol, err = %error, "outbound request failed");
        let (outcome, error) = match error {
            OutboundFailure::Timeout => (Outcome::Timeout, NetError::Timeout),
            _ if self.is_banned(&peer) => (Outcome::Error, NetError::Banned(peer)),
            OutboundFailure::DialFailure => (
                Outcome::Error,
                NetError::Dial(format!(
                    "no connection to {peer} (no known address, or none reachable; \
                     add its addresses with add_peer_addrs)"
                )),
            ),
            OutboundFailure::ConnectionClosed => (
                Outcome::Error,
                NetError::Request(format!("connection to {peer} closed before it answered")),
            ),
            OutboundFailure::UnsupportedProtocols => (
                Outcome::Error,
                NetError::Request(format!("{peer} does not speak {protocol}")),
            ),
            OutboundFailure::Io(e) if too_large(&e).is_some() => (
                Outcome::Error,
                NetError::Request(format!(
                    "{protocol} exchange with {peer} refused: {e} (the limits are fixed by the \
                     protocol: {} bytes per response)",
                    R::RESPONSE_MAX
                )),
            ),
            OutboundFailure::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => (
                Outcome::Error,
                NetError::Request(format!("{protocol} stream from {peer} ended early: {e}")),
            ),
            OutboundFailure::Io(e) => (Outcome::Error, NetError::Io(e)),
        };
        self.metrics
            .request(R::PROTOCOL, Direction::Outbound, outcome);
        let _ = reply.send(Err(error));
    }

    // ---- inbound requests ----

    /// Hands an inbound request to the node without ever waiting on it.
    fn on_request<R: Exchange>(
        &mut self,
        peer: PeerId,
        id: InboundRequestId,
        request: R::Request,
        channel: ResponseChannel<R>,
    ) {
        if self.is_banned(&peer) {
            self.respond(id, channel, R::error("banned"));
            return;
        }
        if let Err(e) = R::validate(&request) {
            debug!(%peer, err = %e, "invalid request");
            self.respond(id, channel, R::error(&e));
            return;
        }
        if self.replies.len() >= MAX_INBOUND_IN_FLIGHT {
            self.respond(id, channel, R::error("busy"));
            return;
        }
        let (tx, rx) = oneshot::channel();
        match self.inbound.try_send(R::inbound(peer, request, tx)) {
            Ok(()) => {
                self.inbound_state
                    .insert((R::PROTOCOL, id), InboundState::AwaitingNode);
                let timeout = self.request_timeout;
                self.replies.push(
                    async move {
                        let answer = match tokio::time::timeout(timeout, rx).await {
                            Ok(Ok(answer)) => Some(answer),
                            Ok(Err(_)) => Some(R::error("internal")),
                            Err(_) => None,
                        };
                        R::reply(id, channel, answer)
                    }
                    .boxed(),
                );
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                debug!(%peer, "inbound queue full");
                self.respond(id, channel, R::error("busy"));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.respond(id, channel, R::error("unavailable"));
            }
        }
    }

    /// The node answered (or ran out of time): send the answer if the peer still waits.
    fn answer<R: Exchange>(
        &mut self,
        id: InboundRequestId,
        channel: ResponseChannel<R>,
        answer: Option<R>,
    ) {
        match answer {
            Some(answer) => self.respond(id, channel, answer),
            None => {
                // Dropping the channel makes libp2p report the failure, which closes the state.
                debug!(request = %id, "node did not answer within the request timeout");
                if let Some(state) = self.inbound_state.get_mut(&(R::PROTOCOL, id)) {
                    *state = InboundState::Abandoned;
                }
            }
        }
    }

    fn respond<R: Exchange>(
        &mut self,
        id: InboundRequestId,
        channel: ResponseChannel<R>,
        response: R,
    ) {
        let key = (R::PROTOCOL, id);
        let bytes = response.payload_len();
        let is_error = response.is_error();
        match R::behaviour(self.swarm.behaviour_mut()).send_response(channel, response) {
            Ok(()) => {
                self.inbound_state
                    .insert(key, InboundState::Sending { bytes, is_error });
            }
            Err(_) => {
                // libp2p gave up on it already (timeout or connection closed); its
                // `InboundFailure` closes the state if it has not already.
                if let Some(state) = self.inbound_state.get_mut(&key) {
                    *state = InboundState::Abandoned;
                }
            }
        }
    }

    fn on_response_sent(&mut self, protocol: Protocol, id: InboundRequestId) {
        if let Some(InboundState::Sending { bytes, is_error }) =
            self.inbound_state.remove(&(protocol, id))
        {
            self.metrics.sent(bytes);
            let outcome = if is_error {
                Outcome::Error
            } else {
                Outcome::Ok
            };
            self.metrics.request(protocol, Direction::Inbound, outcome);
        }
    }

    fn on_inbound_failure(
        &mut self,
        protocol: Protocol,
        peer: PeerId,
        id: InboundRequestId,
        error: InboundFailure,
    ) {
        match &error {
            InboundFailure::Io(e) if too_large(e).is_some() => {
                warn!(%peer, protocol = protocol.label(), err = %e, "answer not sent");
            }
            _ => debug!(%peer, protocol = protocol.label(), err = %error, "inbound request failed"),
        }
        // Every inbound request ends in exactly one `ResponseSent` or `InboundFailure` (also
        // those that failed before reaching us), so this is where failures are counted.
        let state = self.inbound_state.remove(&(protocol, id));
        let outcome = match (error, state) {
            (InboundFailure::Timeout, _) | (_, Some(InboundState::Abandoned)) => Outcome::Timeout,
            _ => Outcome::Error,
        };
        self.metrics.request(protocol, Direction::Inbound, outcome);
    }

    fn on_rr_event<R: Exchange>(&mut self, event: request_response::Event<R::Request, R>) {
        use request_response::{Event, Message};
        match event {
            Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request_id,
                    request,
                    channel,
                } => {
                    self.on_request(peer, request_id, request, channel);
                }
                Message::Response {
                    request_id,
                    response,
                } => self.on_response(request_id, response),
            },
            Event::OutboundFailure {
                request_id, error, ..
            } => {
                self.on_outbound_failure::<R>(request_id, error);
            }
            Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.on_inbound_failure(R::PROTOCOL, peer, request_id, error);
            }
            Event::ResponseSent { request_id, .. } => {
                self.on_response_sent(R::PROTOCOL, request_id)
            }
        }
    }

    // ---- Kademlia ----

    fn find_providers(
        &mut self,
        dataset: [u8; 32],
        timeout: Duration,
        reply: oneshot::Sender<Result<Vec<PeerId>, NetError>>,
    ) {
        if self.searches.len() >= MAX_SEARCHES {
            let _ = reply.send(Err(NetError::Request(format!(
                "{MAX_SEARCHES} provider searches already running"
            ))));
            return;
        }
        let id = self
            .swarm
            .behaviour_mut()
            .kad
            .get_providers(RecordKey::new(&dataset));
        let (deadline, handle) = abortable(tokio::time::sleep(timeout));
        self.deadlines
            .push(deadline.map(move |r| r.ok().map(|()| id)).boxed());
        self.searches.insert(
            id,
            Search {
                found: Vec::new(),
                reply,
                deadline: handle,
            },
        );
    }

    fn on_providers(&mut self, id: QueryId, providers: HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        let mut fresh = Vec::new();
        let Some(search) = self.searches.get_mut(&id) else {
            return;
        };
        for peer in providers {
            if search.found.len() >= MAX_PROVIDERS {
                break;
            }
            if peer != local && !search.found.contains(&peer) {
                search.found.push(peer);
                fresh.push(peer);
            }
        }
        let full = search.found.len() >= MAX_PROVIDERS;
        for peer in fresh {
            if self.is_banned(&peer) || self.swarm.is_connected(&peer) {
                continue;
            }
            // Dial now, while the query still knows the addresses the provider came with:
            // Kademlia forgets them when the query ends, and the node will ask this peer next.
            if let Err(e) = self.swarm.dial(peer) {
                debug!(%peer, err = %e, "cannot dial provider");
            }
        }
        if full {
            self.finish_search(id);
        }
    }

    /// Ends a search (query done, deadline passed or enough providers) and answers.
    fn finish_search(&mut self, id: QueryId) {
        let Some(search) = self.searches.remove(&id) else {
            return;
        };
        search.deadline.abort();
        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
            query.finish();
        }
        let mut found = search.found;
        found.retain(|peer| !self.swarm.behaviour_mut().ban.is_banned(peer));
        debug!(query = ?id, providers = found.len(), "provider search done");
        let _ = search.reply.send(Ok(found));
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => {
                match result {
                    QueryResult::StartProviding(result) => {
                        if let Some(reply) = self.providing.remove(&id) {
                            let _ = reply.send(result.map(|_| ()).map_err(|_| NetError::Timeout));
                        }
                    }
                    QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders {
                        providers,
                        ..
                    })) => self.on_providers(id, providers),
                    QueryResult::GetProviders(_) => self.finish_search(id),
                    _ => {}
                }
                if step.last {
                    self.finish_search(id);
                }
            }
            kad::Event::RoutingUpdated {
                peer,
                is_new_peer: true,
                ..
            } => {
                debug!(%peer, "added to the routing table");
            }
            _ => {}
        }
    }

    fn on_identify(&mut self, event: identify::Event) {
        if let identify::Event::Received { peer_id, info, .. } = event
            && info.protocols.contains(&KAD_PROTOCOL)
        {
            // Kademlia only learns addresses from its own queries: give it what the peer says
            // it listens on, or it will never route to peers that dialled us.
            let addrs = info
                .listen_addrs
                .into_iter()
                .filter(is_dialable)
                .take(MAX_ADDRS_PER_PEER);
            for addr in addrs {
                self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
            }
        }
    }

    // ---- peers ----

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

/// Addresses worth giving Kademlia: TCP over a specified IP.
fn is_dialable(addr: &Multiaddr) -> bool {
    let mut ip_ok = false;
    let mut tcp = false;
    for part in addr.iter() {
        match part {
            AddrProtocol::Ip4(ip) => ip_ok = !ip.is_unspecified(),
            AddrProtocol::Ip6(ip) => ip_ok = !ip.is_unspecified(),
            AddrProtocol::Dns(_) | AddrProtocol::Dns4(_) | AddrProtocol::Dns6(_) => ip_ok = true,
            AddrProtocol::Tcp(port) => tcp = port != 0,
            _ => {}
        }
    }
    ip_ok && tcp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_concrete_tcp_addresses_are_dialable() {
        let ok: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().expect("addr");
        let any: Multiaddr = "/ip4/0.0.0.0/tcp/4001".parse().expect("addr");
        let port0: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("addr");
        let udp: Multiaddr = "/ip4/127.0.0.1/udp/4001".parse().expect("addr");
        assert!(is_dialable(&ok));
        assert!(!is_dialable(&any));
        assert!(!is_dialable(&port0));
        assert!(!is_dialable(&udp));
    }
}
