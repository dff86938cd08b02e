//! `get`: find the hosts of a dataset, download `k` of its slots from many hosts at once (every
//! block verified as it arrives), and restore the files, decoding only the stripes it must.
//!
//! Hosts are found from the chain (each filled slot's host and its announced peer id and
//! addresses) and from Kademlia provider records. Data slots are preferred (no decoding); a slot
//! whose host fails or sends bad data is replaced by the next slot, parity included.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use alloy::primitives::{Address, B256};
use futures::{StreamExt, stream::FuturesUnordered};
use hoard_dataset::Unpacked;
use libp2p::PeerId;

use hoard_chain::SlotState;

use crate::{announce::peers_of, jobs::JobProgress, node::Ctx, store::RequestRecord};

/// Peers that may hold data of request `r`: its slots' hosts, the renter, and DHT providers.
pub(crate) async fn holders(ctx: &Ctx, r: &RequestRecord) -> Vec<PeerId> {
    let mut accounts: Vec<Address> = vec![r.renter];
    for i in 0..r.slots {
        if let Ok(s) = ctx
            .chain
            .get_slot(hoard_chain::slot_id(r.id, u64::from(i)))
            .await
            && s.state == u8::from(SlotState::Filled)
        {
            accounts.push(s.host);
        }
    }
    let mut peers = peers_of(ctx, &accounts);
    if let Ok(more) = ctx
        .net
        .find_providers(r.manifest_id.0, Duration::from_secs(3))
        .await
    {
        peers.extend(more);
    }
    let me = ctx.net.local_peer_id();
    let mut seen = std::collections::HashSet::new();
    peers.retain(|p| *p != me && seen.insert(*p));
    peers
}

/// Peers that hold slot `index` of `r` now: its host if filled, and the renter.
pub(crate) async fn slot_holders(ctx: &Ctx, r: &RequestRecord, index: u16) -> Vec<PeerId> {
    let mut accounts = Vec::new();
    if let Ok(s) = ctx
        .chain
        .get_slot(hoard_chain::slot_id(r.id, u64::from(index)))
        .await
        && s.state == u8::from(SlotState::Filled)
    {
        accounts.push(s.host);
    }
    accounts.push(r.renter);
    let me = ctx.net.local_peer_id();
    peers_of(ctx, &accounts)
        .into_iter()
        .filter(|p| *p != me)
        .collect()
}

/// Where a new host fetches slot `index` from: whoever holds it, then every other known holder
/// (those without it answer "not found" and are skipped).
pub(crate) async fn slot_sources(
    ctx: &Ctx,
    r: &RequestRecord,
    index: u16,
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

/// Downloads dataset `dataset` to `out` as job `job`.
pub(crate) async fn get(
    ctx: Arc<Ctx>,
    job: String,
    dataset: B256,
    out: PathBuf,
) -> anyhow::Result<Unpacked> {
    crate::sync::wait_synced(&ctx, Duration::from_secs(60)).await?;
    let mut requests = ctx.store.requests_for_manifest(&dataset)?;
    anyhow::ensure!(
        !requests.is_empty(),
        "no storage request on chain for dataset {dataset} (check the id; is the node synced?)"
    );
    // The newest request (furthest end) is the likeliest to have live hosts.
    requests.sort_by_key(|r| std::cmp::Reverse(r.ends_at));
    let r = requests.remove(0);
    let peers = holders(&ctx, &r).await;
    ctx.jobs.phase(&job, "finding hosts", u64::from(r.slots));
    let (manifest, bytes) = crate::fetch::manifest(&ctx, dataset.0, &peers).await?;
    let volume = ctx.store.roomiest_volume();
    let tmp = ctx.store.temp_dir(&volume)?;
    crate::fetch::write_manifest(tmp.path(), &bytes)?;

    let k = manifest.layout.data_slots();
    let mut candidates: Vec<(u16, Vec<PeerId>)> = Vec::new();
    for index in 0..r.slots {
        let from = slot_holders(&ctx, &r, index).await;
        if !from.is_empty() {
            candidates.push((index, from));
        }
    }
    anyhow::ensure!(
        candidates.len() >= k,
        "only {} of the {k} slots needed have a reachable host",
        candidates.len()
    );
    let counter = ctx
        .jobs
        .phase(&job, "downloading", k as u64 * manifest.layout.slot_bytes());
    let mut next = candidates.into_iter();
    let mut running = FuturesUnordered::new();
    let mut done = 0;
    let start = |(index, from): (u16, Vec<PeerId>), counter: Arc<AtomicU64>| {
        let ctx = ctx.clone();
        let manifest = manifest.clone();
        let dir = tmp.path().to_path_buf();
        async move {
            let r =
                crate::fetch::slot(&ctx, &manifest, dataset.0, index, &from, &dir, counter).await;
            (index, r)
        }
    };
    for c in next.by_ref().take(k) {
        running.push(start(c, counter.clone()));
    }
    while let Some((index, result)) = running.next().await {
        match result {
            Ok(()) => done += 1,
            Err(e) => {
                tracing::warn!(slot = index, err = %e, "slot download failed; using another slot");
                let _ = std::fs::remove_file(tmp.path().join(hoard_dataset::slot_data_file(
                    hoard_prover::SlotIndex(index),
                )));
                match next.next() {
                    Some(c) => running.push(start(c, counter.clone())),
                    None if running.is_empty() && done < k => {
                        anyhow::bail!("could not download {k} slots: {e}")
                    }
                    None => {}
                }
            }
        }
    }
    anyhow::ensure!(done >= k, "could not download {k} slots");
    let progress = JobProgress {
        jobs: ctx.clone(),
        id: job.clone(),
        counter: std::sync::Mutex::default(),
    };
    let dir = tmp.path().to_path_buf();
    let unpacked =
        tokio::task::spawn_blocking(move || hoard_dataset::unpack_verified(&dir, &out, &progress))
            .await??;
    Ok(unpacked)
}
