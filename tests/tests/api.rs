//! The REST API of a real node on a real chain, tried as an outsider would: each bad call gets
//! the status its error says (docs/api.md, "Status codes"), nothing is changed by a refused call,
//! and connections a client leaves idle or half-sent are closed; the connection cap holds.

use std::time::{Duration, Instant};

use hoard_api::{Client, DownloadRequest, ExtendRequest};
use hoard_prover::{DatasetId, RequestId};
use hoard_tests::{Network, TestNode, init_logs, params, write_dataset};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Blocks per period (1 s blocks).
const PERIOD: u64 = 8;

/// The status a refused call answered with (`None` if it succeeded or got no answer).
fn status<T>(r: Result<T, hoard_api::ClientError>) -> Option<u16> {
    r.err().and_then(|e| e.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_bad_call_gets_its_status_and_changes_nothing() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let (config, key) = net.config("renter");
    let data_dir = config.data_dir.clone();
    let mut node = TestNode::start(config, key).await?;
    let api = node.api().clone();
    let unknown = DatasetId([0x42; 32]);

    // 404: nothing known by that id.
    assert_eq!(status(api.dataset_status(unknown).await), Some(404));
    assert_eq!(status(api.audit(&unknown).await), Some(404));
    assert_eq!(
        status(api.extend(unknown, &ExtendRequest { duration: 60 }).await),
        Some(404)
    );
    assert_eq!(status(api.job("0123456789abcdef").await), Some(404));

    // 400: the call cannot succeed as it is.
    assert_eq!(status(api.dataset_status("0x12").await), Some(400));
    let mut put = params(300, 60);
    put.path = net.dir.path().join("does-not-exist");
    assert_eq!(status(api.put(&put).await), Some(400));
    for path in [
        data_dir.clone(),
        data_dir.join("api-token"),
        net.dir.path().to_path_buf(),
    ] {
        put.path = path.clone();
        let e = api.put(&put).await.expect_err("the node's own folder");
        assert_eq!(e.status(), Some(400), "{path:?}: {e}");
        assert!(e.to_string().contains("the node's own data folder"), "{e}");
    }
    let full = net.dir.path().join("full");
    std::fs::create_dir_all(&full)?;
    write_dataset(&full.join("x.bin"), 10)?;
    let e = api
        .download(&DownloadRequest {
            dataset: unknown,
            out: full.clone(),
            paths: Vec::new(),
        })
        .await
        .expect_err("not empty");
    assert_eq!(e.status(), Some(400), "{e}");

    // 409: the chain's state forbids it.
    assert_eq!(status(api.validator_withdraw().await), Some(409));
    assert_eq!(
        status(api.request_withdraw(&RequestId([0x42; 32])).await),
        Some(409)
    );

    // 401: calls that change things need the token.
    let anonymous = Client::new(api.url(), None);
    assert_eq!(status(anonymous.set_validator(true).await), Some(401));
    assert!(
        !api.validator().await?.enabled,
        "the refused call changed nothing"
    );

    // Nothing above posted a request or a job.
    let chain = net.observer().await?;
    assert!(chain.renter_requests(node.address()).await?.is_empty());
    node.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_and_half_sent_connections_are_closed_and_the_cap_holds() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let (mut config, key) = net.config("node");
    config.api.max_connections = 64;
    config.api.header_timeout_secs = 2;
    let mut node = TestNode::start(config, key).await?;
    let addr = node.url.trim_start_matches("http://").to_string();

    // 500 connections, every other one with half a request: 64 are held, the rest refused.
    let mut conns = Vec::new();
    for i in 0..500 {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        if i % 2 == 0 {
            // A refused connection may be closed already: then the write fails, as it should.
            let _ = s
                .write_all(b"GET /api/v1/node HTTP/1.1\r\nHost: x\r\n")
                .await;
        }
        conns.push(s);
    }
    let api = node.api().clone();
    // Every connection ends, closed by the node, within a few header timeouts.
    let started = Instant::now();
    for s in &mut conns {
        let mut buf = Vec::new();
        // An EOF or a reset: either way the node closed it.
        let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut buf))
            .await
            .expect("the node closed the connection within 20 s");
    }
    let closed_after = started.elapsed();
    let refused = api.metric("hoard_api_connections_refused_total").await?;
    assert!(
        refused >= 500.0 - 64.0,
        "{refused} connections refused past the cap of 64"
    );
    // And the API answers again at once.
    assert!(api.node_info().await.is_ok());
    println!(
        "500 idle or half-sent connections: {refused} refused at the cap of 64, all closed \
         within {:.1} s (header timeout 2 s)",
        closed_after.as_secs_f64()
    );
    node.stop().await;
    Ok(())
}
