//! Announcing this node on chain (peer id and addresses) so renters, hosts and downloaders find
//! it without a bootstrap server, and dialling the nodes announced there.

use std::{sync::Arc, time::Duration};

use libp2p::{Multiaddr, PeerId};

use crate::{
    ctx::Ctx,
    store::{HostEntry, Store},
};

/// Why announcing failed (it is retried).
#[derive(Debug, thiserror::Error)]
enum AnnounceError {
    #[error("p2p.announce address {0:?} is not a multiaddr: {1}")]
    Addr(String, libp2p::multiaddr::Error),
    #[error(transparent)]
    Chain(#[from] hoard_chain::ChainError),
}

pub(crate) async fn run(ctx: Arc<Ctx>) {
    // Every node announces (hosts to be found, renters to serve their data): a host entry is
    // just "this account's node is reachable here".
    let mut delay = Duration::from_secs(1);
    loop {
        match announce_once(&ctx).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(err = %e, "announcing on chain failed; will retry");
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    }
    // Dial what the chain knows so Kademlia has a routing table.
    if let Ok(hosts) = ctx.store.hosts() {
        for (_, entry) in hosts {
            if let Some((peer, addrs)) = decode_entry(&entry)
                && peer != ctx.net.local_peer_id()
            {
                ctx.net.add_peer_addrs(peer, addrs).await;
            }
        }
    }
}

async fn announce_once(ctx: &Ctx) -> Result<(), AnnounceError> {
    let addrs = if ctx.config.p2p.announce.is_empty() {
        ctx.net.listen_addrs().await
    } else {
        ctx.config
            .p2p
            .announce
            .iter()
            .map(|a| {
                a.parse::<Multiaddr>()
                    .map_err(|e| AnnounceError::Addr(a.clone(), e))
            })
            .collect::<Result<_, _>>()?
    };
    let addrs: Vec<Multiaddr> = addrs.into_iter().take(8).collect();
    let entry = HostEntry {
        peer_id: ctx.net.local_peer_id().to_bytes(),
        addrs: addrs.iter().map(|a| a.to_vec()).collect(),
    };
    let info = ctx.chain.host_info(ctx.address()).await?;
    if info.peer_id == entry.peer_id && info.addrs == entry.addrs {
        return Ok(());
    }
    ctx.chain
        .announce_host(entry.peer_id.clone(), entry.addrs.clone())
        .await?;
    tracing::info!(addrs = ?addrs, "announced this node on chain");
    Ok(())
}

/// Parses an announcement; `None` if the peer id or every address is malformed (chain data is
/// untrusted).
pub(crate) fn decode_entry(entry: &HostEntry) -> Option<(PeerId, Vec<Multiaddr>)> {
    let peer = PeerId::from_bytes(&entry.peer_id).ok()?;
    let addrs: Vec<Multiaddr> = entry
        .addrs
        .iter()
        .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
        .collect();
    (!addrs.is_empty()).then_some((peer, addrs))
}

/// The peer ids of the accounts in `hosts` that announced themselves.
pub(crate) fn peers_of(store: &Store, hosts: &[alloy::primitives::Address]) -> Vec<PeerId> {
    hosts
        .iter()
        .filter_map(|h| store.host(h).ok().flatten())
        .filter_map(|e| decode_entry(&e).map(|(p, _)| p))
        .collect()
}
