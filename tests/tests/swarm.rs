//! Distribution that improves with participation, on a real chain with real nodes: six hosts
//! whose upload is capped store a folder dataset; the renter leaves; a first reader downloads it
//! from the hosts, a second mostly from the first reader (checked from the metrics of both
//! sides and from what the hosts sent); `hoard_p2p_bytes_*` add up across the network to what
//! was moved; a third reader fetches one folder only and moves little more than its blocks; the
//! HTTP gateway answers real curl and Python (requests, fsspec) clients, every bad path and
//! range with its status; the reader cache survives a restart; a reader whose cache went bad
//! (damaged blocks, blocks its have-map claims but cannot serve) harms nobody; the cache can
//! be cleared.

use std::{path::Path, process::Command, time::Duration};

use alloy::primitives::U256;
use hoard_api::{DownloadRequest, PutRequest};
use hoard_prover::DatasetId;
use hoard_tests::{
    Network, TestNode, download_via, eventually, init_logs, succeeded, write_dataset,
};

/// Blocks per period (1 s blocks): proofs are not what this test is about.
const PERIOD: u64 = 32;
/// Each host's upload cap: slow enough that a reader holding the data is much faster.
const HOST_UPLOAD: u64 = 3 << 20;

/// The dataset: a folder of a few files (in stream order: a/one.bin, a/two.bin, b/three.bin,
/// small.txt), 7 MiB and a bit.
fn dataset(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let root = dir.join("data");
    std::fs::create_dir_all(root.join("a"))?;
    std::fs::create_dir_all(root.join("b"))?;
    write_dataset(&root.join("a/one.bin"), (2 << 20) + 12_345)?;
    write_dataset(&root.join("a/two.bin"), 1 << 20)?;
    write_dataset(&root.join("b/three.bin"), (4 << 20) - 999)?;
    std::fs::write(
        root.join("small.txt"),
        b"a small file at the end of the stream\n",
    )?;
    Ok(root)
}

fn same_tree(a: &Path, b: &Path, files: &[&str]) -> anyhow::Result<()> {
    for f in files {
        anyhow::ensure!(
            std::fs::read(a.join(f))? == std::fs::read(b.join(f))?,
            "{f} differs"
        );
    }
    Ok(())
}

async fn sum(nodes: &[&TestNode], series: &str) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for n in nodes {
        total += n.metric(series).await?;
    }
    Ok(total)
}

fn curl(args: &[&str]) -> anyhow::Result<(String, Vec<u8>)> {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()?;
    anyhow::ensure!(out.status.success(), "curl {args:?} failed: {out:?}");
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&body[nl + 1..]).into_owned();
    body.truncate(nl);
    Ok((code, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_serve_each_other_and_the_gateway_answers_real_clients() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let observer = net.observer().await?;
    let mut renter = net.node("renter", false).await?;
    let mut hosts = Vec::new();
    for i in 0..6 {
        let (mut c, key) = net.config(&format!("host-{i}"));
        c.host.enabled = true;
        c.p2p.upload_limit_bytes_per_sec = HOST_UPLOAD;
        hosts.push(TestNode::start(c, key).await?);
    }
    eventually(
        Duration::from_secs(60),
        "every node to be announced on chain",
        || async { Ok((observer.hosts().await?.len() >= 7).then_some(())) },
    )
    .await?;

    let root = dataset(net.dir.path())?;
    let put = PutRequest {
        path: root.clone(),
        data_slots: 4,
        parity_slots: 2,
        duration: 900,
        expiry: 300,
        price_per_byte_per_second: U256::from(1000u64),
        collateral_per_byte: U256::from(100_000u64),
        proof_probability: 1,
        samples: 8,
        new_request: false,
        scheme: Default::default(),
    };
    let job = renter.api().put(&put).await?.job;
    let done = succeeded(
        renter
            .api()
            .wait_job(&job, Duration::from_secs(180))
            .await?,
    )?;
    let dataset: DatasetId = serde_json::from_value(done.result["dataset"].clone())?;
    let renter_sent = renter.metric("hoard_p2p_bytes_sent_total").await?;
    renter.stop().await;

    let files = ["a/one.bin", "a/two.bin", "b/three.bin", "small.txt"];
    let stream_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(root.join(f)).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;

    // A first reader: from the hosts. (A fixed p2p port, as a real node has: it is restarted
    // below and found again at the address its peers know.)
    let (mut ca, key) = net.config("reader-a");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    ca.p2p.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}")];
    let a = TestNode::start(ca, key).await?;
    let out_a = net.dir.path().join("out-a");
    a.download(dataset, &out_a).await?;
    same_tree(&root, &out_a, &files)?;
    assert!(a.metric("hoard_fetched_bytes_total{from=\"host\"}").await? > 0.0);

    // The first reader's cache is committed and announced within a few seconds.
    eventually(
        Duration::from_secs(20),
        "reader a to seed the dataset",
        || async {
            let c = a.api().cache().await?;
            Ok(c.datasets
                .iter()
                .any(|d| d.dataset == dataset && d.blocks > 0 && d.announced)
                .then_some(()))
        },
    )
    .await?;

    // A second reader: most of it from the first (the hosts are capped, the reader is not).
    let b = net.node("reader-b", false).await?;
    let out_b = net.dir.path().join("out-b");
    b.download(dataset, &out_b).await?;
    same_tree(&root, &out_b, &files)?;
    let from_reader = b
        .metric("hoard_fetched_bytes_total{from=\"reader\"}")
        .await?;
    let from_hosts = b.metric("hoard_fetched_bytes_total{from=\"host\"}").await?;
    assert!(from_reader > 0.0, "reader b got nothing from reader a");
    assert!(
        from_reader > from_hosts,
        "{from_reader} from a, {from_hosts} from hosts"
    );
    let served_by_a = a
        .metric("hoard_served_bytes_total{protocol=\"p2p\",role=\"reader\"}")
        .await?;
    assert!(
        served_by_a >= from_reader,
        "a served {served_by_a}, b got {from_reader}"
    );

    // What the hosts sent is less than what the two readers received.
    let host_refs: Vec<&TestNode> = hosts.iter().collect();
    let hosts_sent = sum(&host_refs, "hoard_p2p_bytes_sent_total").await?;
    let readers_received = sum(&[&a, &b], "hoard_p2p_bytes_received_total").await?;
    assert!(
        readers_received >= 2.0 * stream_bytes as f64,
        "every block received is counted: {readers_received} for 2 × {stream_bytes}"
    );
    assert!(
        hosts_sent < readers_received,
        "hosts sent {hosts_sent}, readers received {readers_received}"
    );
    // Every byte sent was received and the other way round, over the whole network (the
    // renter's uploads to the hosts included). Late copies of the endgame settle first.
    eventually(
        Duration::from_secs(20),
        "bytes sent to equal bytes received",
        || async {
            let all: Vec<&TestNode> = host_refs.iter().copied().chain([&a, &b]).collect();
            let sent = sum(&all, "hoard_p2p_bytes_sent_total").await? + renter_sent;
            let received = sum(&all, "hoard_p2p_bytes_received_total").await?;
            Ok((sent == received).then_some(()))
        },
    )
    .await?;

    // A partial read: one folder, little more than its blocks over the network.
    let c = net.node("reader-c", false).await?;
    let out_c = net.dir.path().join("out-c");
    let job = c
        .api()
        .download(&DownloadRequest {
            dataset,
            out: out_c.clone(),
            paths: vec!["a".into()],
        })
        .await?
        .job;
    succeeded(c.api().wait_job(&job, Duration::from_secs(120)).await?)?;
    same_tree(&root, &out_c, &["a/one.bin", "a/two.bin"])?;
    assert!(!out_c.join("b").exists() && !out_c.join("small.txt").exists());
    let folder_bytes = ((2 << 20) + 12_345 + (1 << 20)) as f64;
    let moved = c.metric("hoard_p2p_bytes_received_total").await?;
    assert!(
        moved <= folder_bytes + 3.0 * 65536.0 + 4096.0,
        "{moved} bytes moved for a {folder_bytes}-byte folder"
    );
    let bad = c
        .api()
        .download(&DownloadRequest {
            dataset,
            out: net.dir.path().join("out-bad"),
            paths: vec!["../etc".into()],
        })
        .await
        .expect_err("a path outside the dataset");
    assert_eq!(bad.status(), Some(400));
    let job = c
        .api()
        .download(&DownloadRequest {
            dataset,
            out: net.dir.path().join("out-none"),
            paths: vec!["nope".into()],
        })
        .await?
        .job;
    let failed = c.api().wait_job(&job, Duration::from_secs(60)).await?;
    assert!(
        failed
            .error
            .is_some_and(|e| e.contains("no file or folder"))
    );

    // `hoard ls`'s listing.
    let listing = c.api().files(&dataset).await?;
    let three = listing
        .entries
        .iter()
        .find(|e| e.path == "b/three.bin")
        .expect("listed");
    assert_eq!(three.size, Some((4 << 20) - 999));

    // The gateway, from reader c (it holds only folder a: b/three.bin comes from the swarm).
    let base = format!("{}/api/v1/datasets/{dataset}/files", c.url);
    let three = std::fs::read(root.join("b/three.bin"))?;
    let (code, body) = curl(&[&format!("{base}/b/three.bin")])?;
    assert_eq!(code, "200");
    assert!(body == three, "whole file through curl");
    let (code, body) = curl(&["--range", "100000-1148575", &format!("{base}/b/three.bin")])?;
    assert_eq!(code, "206");
    assert!(
        body == three[100_000..1_148_576],
        "a 1 MiB range through curl"
    );
    let (code, _) = curl(&["-I", &format!("{base}/b/three.bin")])?;
    assert_eq!(code, "200");
    let (code, _) = curl(&["--range", "99999999-", &format!("{base}/b/three.bin")])?;
    assert_eq!(code, "416");
    let (code, _) = curl(&["-H", "Range: bytes=9-1", &format!("{base}/b/three.bin")])?;
    assert_eq!(code, "400");
    let (code, _) = curl(&["-H", "Range: bytes=0-1,5-6", &format!("{base}/b/three.bin")])?;
    assert_eq!(code, "400");
    for bad in [
        "%2e%2e/%2e%2e/etc/passwd",
        "a/%2e%2e/b/three.bin",
        "..%2fsmall.txt",
    ] {
        let (code, _) = curl(&["--path-as-is", &format!("{base}/{bad}")])?;
        assert_eq!(code, "400", "{bad}");
    }
    let (code, _) = curl(&["--path-as-is", &format!("{base}/../../../cache")])?;
    assert_eq!(code, "400");
    let (code, _) = curl(&[&format!("{base}/b/nothing.bin")])?;
    assert_eq!(code, "404");
    let (code, body) = curl(&[&format!("{base}/a")])?;
    assert_eq!(code, "200");
    let folder: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(folder["entries"].as_array().map(Vec::len), Some(2));

    // Python: requests and fsspec, in a venv the script makes.
    let setup =
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway/setup-venv")).output()?;
    anyhow::ensure!(
        setup.status.success(),
        "venv: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let python = String::from_utf8(setup.stdout)?.trim().to_owned();
    let checked = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway/check.py"))
        .args([&base, root.to_str().expect("utf-8"), "b/three.bin", "b"])
        .output()?;
    anyhow::ensure!(
        checked.status.success(),
        "python clients: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // A reader restarted keeps its cache and serves it; clearing it empties it.
    let mut a = a;
    a.stop().await;
    let mut a = TestNode::start(a.config.clone(), a.key.clone()).await?;
    let held = a.api().cache().await?;
    let entry = held
        .datasets
        .iter()
        .find(|d| d.dataset == dataset)
        .expect("kept");
    assert!(entry.blocks * 65536 >= stream_bytes, "{entry:?}");
    let out_again = net.dir.path().join("out-a2");
    download_via(a.api(), dataset, &out_again).await?;
    same_tree(&root, &out_again, &files)?;
    assert!(a.metric("hoard_reader_cache_hits_total").await? > 0.0);
    assert_eq!(
        a.metric("hoard_fetched_bytes_total{from=\"host\"}").await?,
        0.0
    );

    // A reader whose cache went bad under it: two slots' blocks damaged on disk, two others'
    // gone although its have-map still claims them. A new reader gets the right bytes anyway,
    // rejecting what it was sent (and dropping that source), from the others. Reader a is the
    // only uncapped source left (b and c, which holds most of the dataset from the gateway's
    // reads, stop), so the new reader asks it first.
    let mut b = b;
    b.stop().await;
    let mut c = c;
    c.stop().await;
    let cached = a.config.volumes()[0]
        .join("cache")
        .join(dataset.to_string());
    for slot in 0..4 {
        use std::os::unix::fs::FileExt;
        let path = cached.join(format!("slot-{slot:03}.bin"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        if slot % 2 == 0 {
            let len = file.metadata()?.len();
            for at in (0..len).step_by(65536) {
                let mut byte = [0u8];
                file.read_exact_at(&mut byte, at + 100)?;
                file.write_all_at(&[byte[0] ^ 0xff], at + 100)?;
            }
        } else {
            file.set_len(0)?;
        }
    }
    let d = net.node("reader-d", false).await?;
    let out_d = net.dir.path().join("out-d");
    d.download(dataset, &out_d).await?;
    same_tree(&root, &out_d, &files)?;
    assert!(
        d.metric("hoard_blocks_rejected_total").await? > 0.0,
        "reader a's bad blocks"
    );
    // Reader a's own cache is checked on use as well: it restores the right bytes.
    let out_a3 = net.dir.path().join("out-a3");
    download_via(a.api(), dataset, &out_a3).await?;
    same_tree(&root, &out_a3, &files)?;

    let cleared = a.api().cache_clear(None).await?;
    assert!(cleared.freed_bytes > 0);
    assert!(a.api().cache().await?.datasets.is_empty());

    a.stop().await;
    for mut n in [c, d] {
        n.stop().await;
    }
    hoard_tests::stop_all(&mut hosts).await;
    Ok(())
}
