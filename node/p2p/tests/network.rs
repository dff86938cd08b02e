//! Two and three real nodes on 127.0.0.1 in one process: block transfer with proofs, large
//! responses, timeouts, bans, provider records and back-pressure.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use hoard_p2p::{
    AuditRequest, AuditResponse, BAN_THRESHOLD, BlockRequest, BlockResponse, BlockWithPath, Bytes,
    InboundRequest, Keypair, MAX_BLOCKS_PER_REQUEST, Multiaddr, NetError, NetworkConfig,
    NetworkHandle, PeerId,
};
use hoard_prover::{BLOCK_SIZE, DatasetId, Hash, Seed, SlotIndex, SlotTree, block_root};
use prometheus::Registry;
use serde_bytes::ByteBuf;
use tokio::{sync::mpsc, task::JoinHandle};

const DATASET: DatasetId = DatasetId([7; 32]);
const WAIT: Duration = Duration::from_secs(15);

/// A running node and what the test needs to drive it.
struct Node {
    net: NetworkHandle,
    task: JoinHandle<()>,
    registry: Registry,
    addr: Multiaddr,
}

impl Node {
    fn peer(&self) -> PeerId {
        self.net.local_peer_id()
    }

    fn dial_info(&self) -> (PeerId, Multiaddr) {
        (self.peer(), self.addr.clone())
    }

    async fn stop(self) {
        self.net.shutdown().await;
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("actor stops promptly")
            .expect("actor task does not panic");
    }

    /// Sum of a metric family's samples whose labels include all of `labels`.
    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| family.get_metric())
            .filter(|m| {
                labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                })
            })
            // Only one of the two is set; the other reads 0.
            .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
            .sum()
    }
}

async fn start_node(
    bootstrap: Vec<(PeerId, Multiaddr)>,
    request_timeout: Duration,
    inbound_capacity: usize,
) -> (Node, mpsc::Receiver<InboundRequest>) {
    let mut config = NetworkConfig::new(Keypair::generate_ed25519());
    config.bootstrap = bootstrap;
    config.request_timeout = request_timeout;
    let registry = Registry::new();
    let (tx, rx) = mpsc::channel(inbound_capacity);
    let (net, task) = hoard_p2p::start(config, &registry, tx)
        .await
        .expect("network starts");
    let addrs = net.listen_addrs().await;
    let addr = addrs.first().cloned().expect("a listen address is bound");
    assert!(
        !addr.to_string().ends_with("/tcp/0"),
        "the bound port is reported: {addr}"
    );
    (
        Node {
            net,
            task,
            registry,
            addr,
        },
        rx,
    )
}

/// A slot held in memory, as a serving node would keep it on disk.
struct TestSlot {
    blocks: Vec<Vec<u8>>,
    tree: SlotTree,
    manifest: Vec<u8>,
}

impl TestSlot {
    fn new(blocks: usize, manifest_len: usize) -> Self {
        let blocks: Vec<Vec<u8>> = (0..blocks)
            .map(|i| {
                (0..BLOCK_SIZE)
                    .map(|j| (i * 31 + j * 7 + j / 256) as u8)
                    .collect()
            })
            .collect();
        let roots: Vec<Hash> = blocks
            .iter()
            .map(|b| block_root(b.as_slice().try_into().expect("64 KiB block")))
            .collect();
        let tree = SlotTree::from_block_roots(&roots).expect("slot tree");
        let manifest = (0..manifest_len).map(|i| (i % 251) as u8).collect();
        Self {
            blocks,
            tree,
            manifest,
        }
    }

    fn answer(&self, request: &BlockRequest) -> BlockResponse {
        match request {
            BlockRequest::Manifest { .. } => {
                BlockResponse::Manifest(ByteBuf::from(self.manifest.clone()))
            }
            BlockRequest::Blocks { first, count, .. } => {
                let mut out = Vec::new();
                for index in *first..first + u64::from(*count) {
                    let (Some(data), Some(path)) =
                        (self.blocks.get(index as usize), self.tree.block_path(index))
                    else {
                        return BlockResponse::Error("not found".into());
                    };
                    out.push(BlockWithPath {
                        index,
                        data: Bytes::from(data.clone()),
                        path: path.iter().map(|h| h.0).collect(),
                    });
                }
                BlockResponse::Blocks(out)
            }
            BlockRequest::Have { .. } => BlockResponse::Have(vec![hoard_p2p::SlotHave {
                slot: hoard_prover::SlotIndex(0),
                ranges: vec![[0, self.blocks.len() as u64]],
            }]),
        }
    }
}

/// Answers every inbound request from `slot`; counts them.
fn serve(
    mut rx: mpsc::Receiver<InboundRequest>,
    slot: Arc<TestSlot>,
) -> (Arc<AtomicUsize>, JoinHandle<()>) {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let task = tokio::spawn(async move {
        while let Some(request) = rx.recv().await {
            counter.fetch_add(1, Ordering::SeqCst);
            match request {
                InboundRequest::Block { request, reply, .. } => {
                    let _ = reply.send(slot.answer(&request));
                }
                InboundRequest::Audit { request, reply, .. } => {
                    let proof = vec![request.samples as u8; 256 * usize::from(request.samples)];
                    let _ = reply.send(AuditResponse::Proof(ByteBuf::from(proof)));
                }
            }
        }
    });
    (served, task)
}

/// Polls `check` until it holds; fails the test after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_blocks_in_one_request_all_verify() {
    let slot = Arc::new(TestSlot::new(20, 100));
    let (server, rx) = start_node(vec![], TIMEOUT, 16).await;
    let (_served, _serving) = serve(rx, slot.clone());
    let (client, _rx) = start_node(vec![server.dial_info()], TIMEOUT, 16).await;

    let request = BlockRequest::Blocks {
        dataset: DATASET,
        slot: SlotIndex(3),
        first: 2,
        count: MAX_BLOCKS_PER_REQUEST,
    };
    let response = client
        .net
        .request_block(server.peer(), request)
        .await
        .expect("blocks arrive");
    let BlockResponse::Blocks(blocks) = response else {
        panic!("expected blocks, got {response:?}");
    };
    assert_eq!(blocks.len(), MAX_BLOCKS_PER_REQUEST as usize);
    let root = slot.tree.root();
    for (offset, block) in blocks.iter().enumerate() {
        assert_eq!(block.index, 2 + offset as u64);
        assert!(
            block.verify(&root, block.index).is_ok(),
            "block {} verifies",
            block.index
        );
    }

    // A flipped bit, a block served at another index, or the wrong slot root all fail.
    let mut tampered = blocks[5].clone();
    let mut bytes = tampered.data.to_vec();
    bytes[12_345] ^= 0x40;
    tampered.data = bytes.into();
    assert!(tampered.verify(&root, 7).is_err());
    let mut moved = blocks[5].clone();
    moved.index += 1;
    assert!(moved.verify(&root, 8).is_err());
    assert!(blocks[5].verify(&Hash([0; 32]), 7).is_err());

    // Payload bytes are counted on both sides, as are the outcomes.
    let payload = f64::from(MAX_BLOCKS_PER_REQUEST) * BLOCK_SIZE as f64;
    assert_eq!(
        client.metric("hoard_p2p_bytes_received_total", &[]),
        payload
    );
    let outbound_ok = [
        ("protocol", "block"),
        ("direction", "outbound"),
        ("outcome", "ok"),
    ];
    assert_eq!(client.metric("hoard_p2p_requests_total", &outbound_ok), 1.0);
    eventually("the server to count the response sent", || async {
        server.metric("hoard_p2p_bytes_sent_total", &[]) == payload
            && server.metric(
                "hoard_p2p_requests_total",
                &[("direction", "inbound"), ("outcome", "ok")],
            ) == 1.0
    })
    .await;
    assert_eq!(client.metric("hoard_peers", &[]), 1.0);
    assert_eq!(client.net.connected_peers().await, 1);

    // Out-of-range blocks come back as the node's error; too many blocks are refused before
    // reaching it.
    let missing = BlockRequest::Blocks {
        dataset: DATASET,
        slot: SlotIndex(3),
        first: 19,
        count: 2,
    };
    let response = client.net.request_block(server.peer(), missing).await;
    assert!(matches!(response, Ok(BlockResponse::Error(e)) if e == "not found"));
    let too_many = BlockRequest::Blocks {
        dataset: DATASET,
        slot: SlotIndex(3),
        first: 0,
        count: MAX_BLOCKS_PER_REQUEST + 1,
    };
    let response = client.net.request_block(server.peer(), too_many).await;
    assert!(
        matches!(response, Err(NetError::Request(_))),
        "{response:?}"
    );

    // Audits travel on their own protocol.
    let audit = AuditRequest {
        dataset: DATASET,
        slot: SlotIndex(3),
        seed: Seed([1; 32]),
        samples: 16,
    };
    let response = client
        .net
        .request_audit(server.peer(), audit)
        .await
        .expect("audit answered");
    assert_eq!(
        response,
        AuditResponse::Proof(ByteBuf::from(vec![16; 4096]))
    );

    client.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mib_manifest_goes_through() {
    const MANIFEST: usize = 20 * 1024 * 1024;
    let slot = Arc::new(TestSlot::new(1, MANIFEST));
    let (server, rx) = start_node(vec![], TIMEOUT, 16).await;
    let (_served, _serving) = serve(rx, slot.clone());
    let (client, _rx) = start_node(vec![server.dial_info()], TIMEOUT, 16).await;

    let response = client
        .net
        .request_block(server.peer(), BlockRequest::Manifest { dataset: DATASET })
        .await
        .expect("a 20 MiB response is within the limit");
    let BlockResponse::Manifest(manifest) = response else {
        panic!("expected the manifest");
    };
    assert_eq!(manifest.len(), MANIFEST);
    assert!(manifest.as_slice() == slot.manifest.as_slice());
    assert_eq!(
        client.metric("hoard_p2p_bytes_received_total", &[]),
        MANIFEST as f64
    );

    client.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_response_is_not_sent() {
    // Past the 65 MiB cap the server refuses to send (the client would refuse to read it: the
    // codec's unit tests cover that side) and the client is told the stream ended early.
    const MANIFEST: usize = 66 * 1024 * 1024;
    let slot = Arc::new(TestSlot::new(1, MANIFEST));
    let (server, rx) = start_node(vec![], TIMEOUT, 16).await;
    let (_served, _serving) = serve(rx, slot);
    let (client, _rx) = start_node(vec![server.dial_info()], TIMEOUT, 16).await;

    let response = client
        .net
        .request_block(server.peer(), BlockRequest::Manifest { dataset: DATASET })
        .await;
    match response {
        Err(NetError::Request(message)) => assert!(message.contains("ended early"), "{message}"),
        other => panic!("expected an early end of stream, got {other:?}"),
    }
    eventually("the server to count the failed answer", || async {
        server.metric(
            "hoard_p2p_requests_total",
            &[("direction", "inbound"), ("outcome", "error")],
        ) == 1.0
    })
    .await;
    assert_eq!(server.metric("hoard_p2p_bytes_sent_total", &[]), 0.0);

    client.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_peer_times_out() {
    let (server, mut rx) = start_node(vec![], TIMEOUT, 16).await;
    // The "node" takes requests but sits on the replies.
    let (held_tx, mut held_rx) = mpsc::unbounded_channel();
    let _holder = tokio::spawn(async move {
        while let Some(request) = rx.recv().await {
            let _ = held_tx.send(request);
        }
    });
    let timeout = Duration::from_millis(800);
    let (client, _rx) = start_node(vec![server.dial_info()], timeout, 16).await;

    let started = Instant::now();
    let response = client
        .net
        .request_block(server.peer(), BlockRequest::Manifest { dataset: DATASET })
        .await;
    assert!(matches!(response, Err(NetError::Timeout)), "{response:?}");
    assert!(started.elapsed() >= timeout);
    assert!(
        held_rx.recv().await.is_some(),
        "the request reached the node"
    );
    assert_eq!(
        client.metric(
            "hoard_p2p_requests_total",
            &[("direction", "outbound"), ("outcome", "timeout")]
        ),
        1.0
    );

    client.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_reply_answers_internal() {
    let (server, mut rx) = start_node(vec![], TIMEOUT, 16).await;
    let _dropper = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let (client, _rx) = start_node(vec![server.dial_info()], TIMEOUT, 16).await;

    let response = client
        .net
        .request_block(server.peer(), BlockRequest::Manifest { dataset: DATASET })
        .await;
    assert!(
        matches!(&response, Ok(BlockResponse::Error(e)) if e == "internal"),
        "{response:?}"
    );

    client.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn penalised_peer_is_disconnected_and_refused() {
    let slot = Arc::new(TestSlot::new(4, 10));
    let (server, rx) = start_node(vec![], TIMEOUT, 16).await;
    let (served, _serving) = serve(rx, slot.clone());
    let (client, client_rx) = start_node(vec![server.dial_info()], TIMEOUT, 16).await;
    let (_client_served, _client_serving) = serve(client_rx, slot);

    let manifest = BlockRequest::Manifest { dataset: DATASET };
    client
        .net
        .request_block(server.peer(), manifest.clone())
        .await
        .expect("served before the ban");
    assert_eq!(served.load(Ordering::SeqCst), 1);

    // Below the threshold nothing happens.
    for _ in 1..BAN_THRESHOLD {
        server.net.penalise(client.peer(), "bad block").await;
    }
    assert_eq!(server.net.connected_peers().await, 1);
    assert_eq!(server.metric("hoard_p2p_peers_banned_total", &[]), 0.0);

    server.net.penalise(client.peer(), "bad block").await;
    assert_eq!(server.metric("hoard_p2p_peers_banned_total", &[]), 1.0);
    eventually("both sides to see the connection closed", || async {
        server.net.connected_peers().await == 0 && client.net.connected_peers().await == 0
    })
    .await;

    // The banned peer's requests are refused (its connection is denied) and never reach the
    // node; ours to it are refused locally.
    let response = client
        .net
        .request_block(server.peer(), manifest.clone())
        .await;
    assert!(response.is_err(), "banned peer was served: {response:?}");
    assert_eq!(served.load(Ordering::SeqCst), 1);
    let response = server.net.request_block(client.peer(), manifest).await;
    assert!(
        matches!(response, Err(NetError::Banned(peer)) if peer == client.peer()),
        "{response:?}"
    );
    assert_eq!(server.net.connected_peers().await, 0);

    client.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_found_through_a_third_node() {
    let slot = Arc::new(TestSlot::new(2, 1000));
    let (b, _b_rx) = start_node(vec![], TIMEOUT, 16).await;
    let (a, a_rx) = start_node(vec![b.dial_info()], TIMEOUT, 16).await;
    let (_served, _serving) = serve(a_rx, slot.clone());
    let (c, _c_rx) = start_node(vec![b.dial_info()], TIMEOUT, 16).await;

    // Nobody provides yet.
    let none = c
        .net
        .find_providers(DATASET, Duration::from_secs(2))
        .await
        .expect("search runs");
    assert!(none.is_empty(), "{none:?}");

    a.net.start_providing(DATASET).await.expect("announced");

    // The record travels A → B; C only knows B. Provider announcements are fire-and-forget,
    // so poll.
    let deadline = Instant::now() + WAIT;
    let found = loop {
        let found = c
            .net
            .find_providers(DATASET, Duration::from_secs(2))
            .await
            .expect("search runs");
        if !found.is_empty() {
            break found;
        }
        assert!(Instant::now() < deadline, "C never found A as a provider");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(found, vec![a.peer()]);

    // C never had A's address from us: the search carried it, so C can fetch from A now.
    let response = c
        .net
        .request_block(a.peer(), BlockRequest::Manifest { dataset: DATASET })
        .await
        .expect("C reaches the provider it found");
    assert_eq!(
        response,
        BlockResponse::Manifest(ByteBuf::from(slot.manifest.clone()))
    );

    // Another dataset has no providers.
    let other = c
        .net
        .find_providers(DatasetId([9; 32]), Duration::from_secs(2))
        .await
        .expect("search runs");
    assert!(other.is_empty());

    c.stop().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_resolves_once_the_answer_has_left() {
    let (server, mut rx) = start_node(vec![], TIMEOUT, 4).await;
    let (client, _rx) = start_node(vec![server.dial_info()], TIMEOUT, 4).await;
    let ask = || {
        let (net, peer) = (client.net.clone(), server.peer());
        tokio::spawn(async move {
            net.request_block(peer, BlockRequest::Manifest { dataset: DATASET })
                .await
        })
    };

    let asked = ask();
    let Some(InboundRequest::Block { reply, sent, .. }) = rx.recv().await else {
        panic!("expected the block request");
    };
    let sent = sent.wait();
    tokio::pin!(sent);
    assert!(
        futures::poll!(&mut sent).is_pending(),
        "resolved before there was an answer"
    );
    let manifest = BlockResponse::Manifest(ByteBuf::from(vec![7u8; 1 << 20]));
    reply.send(manifest.clone()).expect("the actor waits");
    tokio::time::timeout(WAIT, &mut sent)
        .await
        .expect("resolves once the answer is written");
    let got = asked.await.expect("task").expect("answered");
    assert_eq!(got, manifest);

    // An answer the node never gives (libp2p answers "internal") resolves too.
    let asked = ask();
    let Some(InboundRequest::Block { reply, sent, .. }) = rx.recv().await else {
        panic!("expected the block request");
    };
    drop(reply);
    tokio::time::timeout(WAIT, sent.wait())
        .await
        .expect("resolves once the error is written");
    let got = asked.await.expect("task").expect("answered");
    assert_eq!(got, BlockResponse::Error("internal".into()));

    client.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_inbound_channel_answers_busy() {
    // The node reads nothing: one request fills the channel, the next is refused.
    let (server, mut rx) = start_node(vec![], TIMEOUT, 1).await;
    let (client, _rx) = start_node(vec![server.dial_info()], TIMEOUT, 16).await;

    let net = client.net.clone();
    let peer = server.peer();
    let first = tokio::spawn(async move {
        net.request_block(peer, BlockRequest::Manifest { dataset: DATASET })
            .await
    });
    eventually("the first request to fill the inbound channel", || async {
        rx.len() == 1
    })
    .await;

    let response = client
        .net
        .request_block(server.peer(), BlockRequest::Manifest { dataset: DATASET })
        .await;
    assert!(
        matches!(&response, Ok(BlockResponse::Error(e)) if e == "busy"),
        "{response:?}"
    );

    // The queued request is still answered once the node gets to it.
    let Some(InboundRequest::Block { reply, .. }) = rx.recv().await else {
        panic!("expected the queued block request");
    };
    reply
        .send(BlockResponse::Error("not found".into()))
        .expect("actor waits for the reply");
    let first = first.await.expect("task").expect("answered");
    assert_eq!(first, BlockResponse::Error("not found".into()));

    client.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_after_shutdown_report_closed() {
    let (node, _rx) = start_node(vec![], TIMEOUT, 1).await;
    let net = node.net.clone();
    node.stop().await;
    let response = net
        .request_block(
            PeerId::random(),
            BlockRequest::Manifest { dataset: DATASET },
        )
        .await;
    assert!(matches!(response, Err(NetError::Closed)), "{response:?}");
    assert!(net.listen_addrs().await.is_empty());
    assert_eq!(net.connected_peers().await, 0);
}
