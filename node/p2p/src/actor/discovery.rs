//! Kademlia provider records and identify.

use std::{collections::HashSet, time::Duration};

use futures::{FutureExt, future::abortable};
use libp2p::{
    Multiaddr, PeerId, identify,
    kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey},
    multiaddr::Protocol as AddrProtocol,
};
use tokio::sync::oneshot;
use tracing::debug;

use super::{Actor, MAX_ADDRS_PER_PEER, MAX_PROVIDERS, MAX_SEARCHES, Search};
use crate::{behaviour::KAD_PROTOCOL, error::NetError};

impl Actor {
    pub(super) fn find_providers(
        &mut self,
        dataset: hoard_prover::DatasetId,
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
            .get_providers(RecordKey::new(dataset.as_bytes()));
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
    pub(super) fn finish_search(&mut self, id: QueryId) {
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

    pub(super) fn on_kad_event(&mut self, event: kad::Event) {
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

    pub(super) fn on_identify(&mut self, event: identify::Event) {
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
