//! Peer scoring and the ban list.
//!
//! [`PeerScores`] turns [`penalise`](crate::NetworkHandle::penalise) calls into a decaying score;
//! past [`BAN_THRESHOLD`] the actor bans the peer. [`BanList`] is a small `NetworkBehaviour` that
//! refuses banned peers' connections in both directions until the ban expires, so no other
//! behaviour ever sees them.

use std::{
    collections::HashMap,
    convert::Infallible,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use libp2p::{
    Multiaddr, PeerId,
    core::{Endpoint, transport::PortUse},
    swarm::{
        ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
        THandlerOutEvent, ToSwarm, dummy,
    },
};

/// Penalty points at which a peer is banned.
pub const BAN_THRESHOLD: u32 = 5;
/// How long a ban lasts.
pub const BAN_DURATION: Duration = Duration::from_secs(60 * 60);
/// One penalty point is forgiven per this much time without penalties.
pub const SCORE_DECAY: Duration = Duration::from_secs(5 * 60);
/// Most peers banned at once; past it the ban closest to expiry is dropped.
pub const MAX_BANNED: usize = 4096;
/// Most peers with a penalty score kept; past it the stalest score is dropped.
pub const MAX_SCORED: usize = 4096;

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("peer {peer} is banned")]
pub(crate) struct Banned {
    peer: PeerId,
}

/// Penalty scores, decaying by one point per [`SCORE_DECAY`].
#[derive(Debug, Default)]
pub(crate) struct PeerScores {
    scores: HashMap<PeerId, (u32, Instant)>,
}

impl PeerScores {
    /// Adds one penalty point; returns the new score.
    pub(crate) fn penalise(&mut self, peer: PeerId, now: Instant) -> u32 {
        if !self.scores.contains_key(&peer) && self.scores.len() >= MAX_SCORED {
            let stalest = self
                .scores
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(p, _)| *p);
            if let Some(stalest) = stalest {
                self.scores.remove(&stalest);
            }
        }
        let (score, since) = self.scores.entry(peer).or_insert((0, now));
        let elapsed = now.saturating_duration_since(*since);
        let forgiven = elapsed.as_secs() / SCORE_DECAY.as_secs().max(1);
        *score = score.saturating_sub(u32::try_from(forgiven).unwrap_or(u32::MAX));
        // Keep the unspent part of the decay interval so frequent penalties still decay.
        *since = if *score == 0 {
            now
        } else {
            since
                .checked_add(SCORE_DECAY.saturating_mul(u32::try_from(forgiven).unwrap_or(0)))
                .unwrap_or(now)
        };
        *score = score.saturating_add(1);
        *score
    }

    /// Forgets a peer's score (once it is banned).
    pub(crate) fn clear(&mut self, peer: &PeerId) {
        self.scores.remove(peer);
    }
}

/// Banned peers and when their bans end; refuses their connections.
#[derive(Debug, Default)]
pub(crate) struct BanList {
    banned: HashMap<PeerId, Instant>,
}

impl BanList {
    /// Bans `peer` until `until`.
    pub(crate) fn ban(&mut self, peer: PeerId, until: Instant) {
        if !self.banned.contains_key(&peer) && self.banned.len() >= MAX_BANNED {
            let now = Instant::now();
            self.banned.retain(|_, end| *end > now);
            if self.banned.len() >= MAX_BANNED {
                let soonest = self
                    .banned
                    .iter()
                    .min_by_key(|(_, end)| **end)
                    .map(|(p, _)| *p);
                if let Some(soonest) = soonest {
                    self.banned.remove(&soonest);
                }
            }
        }
        self.banned.insert(peer, until);
    }

    /// True while `peer`'s ban lasts; forgets expired bans.
    pub(crate) fn is_banned(&mut self, peer: &PeerId) -> bool {
        match self.banned.get(peer) {
            Some(end) if *end > Instant::now() => true,
            Some(_) => {
                self.banned.remove(peer);
                false
            }
            None => false,
        }
    }

    fn enforce(&mut self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        if self.is_banned(peer) {
            return Err(ConnectionDenied::new(Banned { peer: *peer }));
        }
        Ok(())
    }
}

impl NetworkBehaviour for BanList {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.enforce(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = peer {
            self.enforce(&peer)?;
        }
        Ok(vec![])
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.enforce(&peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm<'_>) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_accumulate_and_decay() {
        let mut scores = PeerScores::default();
        let peer = PeerId::random();
        let t0 = Instant::now();
        for expected in 1..=3 {
            assert_eq!(scores.penalise(peer, t0), expected);
        }
        // Two decay intervals forgive two points.
        assert_eq!(scores.penalise(peer, t0 + SCORE_DECAY * 2), 2);
        // A long quiet spell forgives everything.
        assert_eq!(scores.penalise(peer, t0 + SCORE_DECAY * 100), 1);
    }

    #[test]
    fn ban_expires() {
        let mut bans = BanList::default();
        let peer = PeerId::random();
        bans.ban(peer, Instant::now() + Duration::from_secs(60));
        assert!(bans.is_banned(&peer));
        bans.ban(peer, Instant::now());
        assert!(!bans.is_banned(&peer));
    }

    #[test]
    fn ban_list_is_bounded() {
        let mut bans = BanList::default();
        let until = Instant::now() + Duration::from_secs(60);
        for _ in 0..MAX_BANNED + 10 {
            bans.ban(PeerId::random(), until);
        }
        assert_eq!(bans.banned.len(), MAX_BANNED);
    }
}
