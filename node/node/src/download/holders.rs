//! Who may hold data of a request: its slots' hosts (from the chain), the renter, and the
//! dataset's Kademlia providers (readers among them).

use std::{collections::HashSet, time::Duration};

use alloy::primitives::Address;
use hoard_chain::SlotState;
use hoard_prover::SlotIndex;
use libp2p::PeerId;

use super::swarm::Kind;
use crate::{announce::peers_of, ctx::Ctx, store::RequestRecord};

/// Peers that may hold data of request `r`: its slots' hosts, the renter, and DHT providers.
pub(crate) async fn holders(ctx: &Ctx, r: &RequestRecord) -> Vec<PeerId> {
    let mut accounts: Vec<Address> = vec![r.renter];
    for i in (0..r.slots).map(SlotIndex) {
        if let Ok(s) = ctx.chain.get_slot(hoard_prover::slot_id(&r.id, i)).await
            && s.state == SlotState::Filled
        {
            accounts.push(s.host);
        }
    }
    let mut peers = peers_of(&ctx.store, &accounts);
    if let Ok(more) = ctx
        .net
        .find_providers(r.manifest_id, Duration::from_secs(3))
        .await
    {
        peers.extend(more);
    }
    let me = ctx.net.local_peer_id();
    let mut seen = HashSet::new();
    peers.retain(|p| *p != me && seen.insert(*p));
    peers
}

/// Peers that hold slot `index` of `r` now: its host if filled, and the renter.
pub(crate) async fn slot_holders(ctx: &Ctx, r: &RequestRecord, index: SlotIndex) -> Vec<PeerId> {
    let mut accounts = Vec::new();
    if let Ok(s) = ctx
        .chain
        .get_slot(hoard_prover::slot_id(&r.id, index))
        .await
        && s.state == SlotState::Filled
    {
        accounts.push(s.host);
    }
    accounts.push(r.renter);
    let me = ctx.net.local_peer_id();
    peers_of(&ctx.store, &accounts)
        .into_iter()
        .filter(|p| *p != me)
        .collect()
}

/// Where a new host fetches slot `index` from: whoever holds it, then every other known holder
/// (those without it answer "not found" and are skipped).
pub(crate) async fn slot_sources(
    ctx: &Ctx,
    r: &RequestRecord,
    index: SlotIndex,
    holders: &[PeerId],
) -> Vec<PeerId> {
    let mut peers = slot_holders(ctx, r, index).await;
    for p in holders {
        if !peers.contains(p) {
            peers.push(*p);
        }
    }
    peers
}

/// The peers a download starts from, with what they are: the hosts of `r`'s filled slots (from
/// the chain) and the renter. Readers are Kademlia providers, which the swarm looks up while it
/// already fetches; only when the chain names nobody is the lookup waited for here.
pub(crate) async fn sources(ctx: &Ctx, r: &RequestRecord) -> Vec<(PeerId, Kind)> {
    let me = ctx.net.local_peer_id();
    let mut out: Vec<(PeerId, Kind)> = Vec::new();
    let push = |p: PeerId, kind: Kind, out: &mut Vec<(PeerId, Kind)>| {
        if p != me && !out.iter().any(|(q, _)| *q == p) {
            out.push((p, kind));
        }
    };
    let mut hosts = Vec::new();
    for i in (0..r.slots).map(SlotIndex) {
        if let Ok(s) = ctx.chain.get_slot(hoard_prover::slot_id(&r.id, i)).await
            && s.state == SlotState::Filled
        {
            hosts.push(s.host);
        }
    }
    for p in peers_of(&ctx.store, &hosts) {
        push(p, Kind::Host, &mut out);
    }
    for p in peers_of(&ctx.store, &[r.renter]) {
        push(p, Kind::Renter, &mut out);
    }
    if !out.is_empty() {
        return out;
    }
    if let Ok(more) = ctx
        .net
        .find_providers(r.manifest_id, Duration::from_secs(3))
        .await
    {
        for p in more {
            push(p, Kind::Reader, &mut out);
        }
    }
    out
}
