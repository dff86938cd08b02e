//! Requests from peers, handed to the node.

use libp2p::PeerId;
use tokio::sync::oneshot;

use crate::messages::{AuditRequest, AuditResponse, BlockRequest, BlockResponse};

/// A request from a peer for the node to answer. Send the answer on `reply`; dropping `reply`
/// answers `Error("internal")`, and an answer later than the request timeout is discarded (the
/// peer has given up by then). `sent` resolves once libp2p is done with the answer.
#[derive(Debug)]
pub enum InboundRequest {
    /// A manifest or blocks request on `/hoard/block/1` (already checked with
    /// [`BlockRequest::validate`]).
    Block {
        /// Who asked.
        peer: PeerId,
        /// What they asked for.
        request: BlockRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<BlockResponse>,
        /// Resolves when the answer has left.
        sent: Sent,
    },
    /// An audit on `/hoard/audit/1`.
    Audit {
        /// Who asked.
        peer: PeerId,
        /// The challenge.
        request: AuditRequest,
        /// Where the proof goes.
        reply: oneshot::Sender<AuditResponse>,
        /// Resolves when the proof has left.
        sent: Sent,
    },
}

/// Resolves once libp2p has written the answer to the peer's stream, or given up on it (the peer
/// left, the request timed out, the node is stopping). Until then libp2p holds the answer and
/// its encoded copy: a server that waits on this before taking more work bounds the memory of
/// its answers in transit, which handing answers over alone does not (they queue in libp2p when
/// peers read slower than the disk).
#[derive(Debug)]
pub struct Sent(pub(crate) oneshot::Receiver<()>);

impl Sent {
    /// Waits until the answer has been written or abandoned.
    pub async fn wait(self) {
        // The actor drops its sender at `ResponseSent` or `InboundFailure`, one of which ends
        // every inbound request, or when it stops.
        let _ = self.0.await;
    }
}

impl InboundRequest {
    /// The peer that sent the request.
    pub fn peer(&self) -> PeerId {
        match self {
            Self::Block { peer, .. } | Self::Audit { peer, .. } => *peer,
        }
    }
}
