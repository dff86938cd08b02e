//! Network benchmark: `cargo bench -p hoard-tests --bench network [-- SIZE_MIB]`.
//!
//! One process, a real anvil, a renter and six hosts over loopback libp2p (TCP + noise + yamux).
//! Measures `put` (pack + request + every slot filled by the hosts) with the process's peak RSS,
//! and `get` of the whole dataset by a fresh node from the six hosts (every block verified by its
//! Merkle path, written, then restored to the output file). Prints figures; asserts nothing about
//! speed (tests never time things; this is the benchmark).

use std::time::{Duration, Instant};

use hoard_tests::{Network, params, put};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn reset_peak() {
    // Writing 5 resets VmHWM to the current RSS (Linux ≥ 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let size_mib: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    hoard_tests::init_logs();
    let mut net = Network::start(64).await?;
    let (mut renter, mut hosts) = net.renter_and_hosts(6).await?;
    println!("network: anvil + renter + 6 hosts up; dataset {size_mib} MiB, 4+2 slots");

    let started = Instant::now();
    reset_peak();
    let base = peak_rss_mib();
    let stored = put(
        &renter,
        net.dir.path(),
        size_mib << 20,
        &params(3600, 1800),
        true,
    )
    .await?;
    let put_secs = started.elapsed().as_secs_f64();
    let put_peak = peak_rss_mib();
    println!(
        "put: {put_secs:.1} s for pack + request + 6 slots fetched and filled; process peak RSS {put_peak:.0} MiB (was {base:.0} MiB before)"
    );

    renter.stop().await;
    let mut reader = net.node("reader", false).await?;
    let out = net.dir.path().join("fetched.bin");
    reset_peak();
    let started = Instant::now();
    let job = reader.download(stored.dataset, &out).await?;
    let get_secs = started.elapsed().as_secs_f64();
    let bytes = (size_mib << 20) as f64;
    println!(
        "get: {get_secs:.1} s = {:.0} MB/s (download of 4 slots with per-block verification, then restore); decoded stripes {}; peak RSS {:.0} MiB",
        bytes / get_secs / 1e6,
        job.result["decoded_stripes"],
        peak_rss_mib()
    );
    anyhow::ensure!(
        std::fs::metadata(&out)?.len() == (size_mib << 20) as u64,
        "fetched size differs"
    );
    reader.stop().await;
    for h in &mut hosts {
        h.stop().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
