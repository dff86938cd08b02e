//! Block and audit requests: outbound calls, inbound requests handed to the node, metrics.

use std::io;

use futures::FutureExt;
use libp2p::{
    PeerId,
    request_response::{
        self, InboundFailure, InboundRequestId, OutboundFailure, OutboundRequestId, ResponseChannel,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::{Actor, InboundState, MAX_INBOUND_IN_FLIGHT, MAX_PENDING_PER_PEER, Pending, Reply};
use crate::{
    behaviour::{
        AUDIT_PROTOCOL, AUDIT_RESPONSE_MAX, BLOCK_PROTOCOL, BLOCK_RESPONSE_MAX, Behaviour, Rr,
    },
    codec::too_large,
    error::NetError,
    inbound::{InboundRequest, Sent},
    messages::{AuditRequest, AuditResponse, BlockRequest, BlockResponse},
    metrics::{Direction, Outcome, Protocol},
};

/// What distinguishes the block and audit protocols to the generic request handling below.
pub(super) trait Exchange: Serialize + DeserializeOwned + Send + 'static {
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
        sent: Sent,
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
        sent: Sent,
    ) -> InboundRequest {
        InboundRequest::Block {
            peer,
            request,
            reply,
            sent,
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
        sent: Sent,
    ) -> InboundRequest {
        InboundRequest::Audit {
            peer,
            request,
            reply,
            sent,
        }
    }
    fn reply(id: InboundRequestId, channel: ResponseChannel<Self>, answer: Option<Self>) -> Reply {
        Reply::Audit(id, channel, answer)
    }
}

impl Actor {
    pub(super) fn send_request<R: Exchange>(
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
        let (sent_tx, sent_rx) = oneshot::channel();
        match self
            .inbound
            .try_send(R::inbound(peer, request, tx, Sent(sent_rx)))
        {
            Ok(()) => {
                self.inbound_state
                    .insert((R::PROTOCOL, id), InboundState::AwaitingNode);
                self.inbound_sent.insert((R::PROTOCOL, id), sent_tx);
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
    pub(super) fn answer<R: Exchange>(
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
        // Dropping the sender resolves the node's `Sent`.
        self.inbound_sent.remove(&(protocol, id));
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
        self.inbound_sent.remove(&(protocol, id));
        let outcome = match (error, state) {
            (InboundFailure::Timeout, _) | (_, Some(InboundState::Abandoned)) => Outcome::Timeout,
            _ => Outcome::Error,
        };
        self.metrics.request(protocol, Direction::Inbound, outcome);
    }

    pub(super) fn on_rr_event<R: Exchange>(
        &mut self,
        event: request_response::Event<R::Request, R>,
    ) {
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
}
