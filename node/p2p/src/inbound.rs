//! Requests from peers, handed to the node.

use libp2p::PeerId;
use tokio::sync::oneshot;

use crate::messages::{AuditRequest, AuditResponse, BlockRequest, BlockResponse};

/// A request from a peer for the node to answer. Send the answer on `reply`; dropping `reply`
/// answers `Error("internal")`, and an answer later than the request timeout is discarded (the
/// peer has given up by then).
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
    },
    /// An audit on `/hoard/audit/1`.
    Audit {
        /// Who asked.
        peer: PeerId,
        /// The challenge.
        request: AuditRequest,
        /// Where the proof goes.
        reply: oneshot::Sender<AuditResponse>,
    },
}

impl InboundRequest {
    /// The peer that sent the request.
    pub fn peer(&self) -> PeerId {
        match self {
            Self::Block { peer, .. } | Self::Audit { peer, .. } => *peer,
        }
    }
}
