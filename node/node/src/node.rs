//! Starting, wiring and stopping one node.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use anyhow::Context as _;
use hoard_chain::{Chain, ChainConfig, Deployment};
use hoard_p2p::{NetworkConfig, NetworkHandle};
use libp2p::{Multiaddr, identity::Keypair};
use prometheus::Registry;
use tokio::{
    sync::{broadcast, mpsc, watch},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    api,
    config::{NodeConfig, Secret},
    jobs::Jobs,
    metrics::NodeMetrics,
    serve::Serving,
    store::Store,
    sync::{self, Head},
};

/// What every task of a node shares.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) config: NodeConfig,
    pub(crate) store: Store,
    pub(crate) chain: Chain,
    pub(crate) net: NetworkHandle,
    pub(crate) metrics: NodeMetrics,
    pub(crate) registry: Registry,
    pub(crate) token: Secret,
    pub(crate) cancel: CancellationToken,
    pub(crate) jobs: Jobs,
    pub(crate) serving: Serving,
    /// The chain head as the sync task last saw it.
    pub(crate) head: watch::Receiver<Head>,
    /// Marketplace events, as handled by the sync task (roles subscribe).
    pub(crate) events: broadcast::Sender<hoard_chain::MarketEvent>,
    /// The validator role can be switched on at run time (`hoard validate`).
    pub(crate) validator_on: watch::Sender<bool>,
    /// Requests some task of the host role is working on (one at a time each).
    pub(crate) considering: Mutex<std::collections::HashSet<alloy::primitives::B256>>,
    /// The host's offer (config, replaced at run time by `hoard host offer`, kept in the store).
    offer: Mutex<crate::config::Offer>,
    /// Slots whose fill this process has in flight.
    pub(crate) filling: Mutex<std::collections::HashSet<alloy::primitives::B256>>,
    /// When each freed slot was freed (block time), to time its repair.
    pub(crate) freed_at: Mutex<std::collections::HashMap<alloy::primitives::B256, u64>>,
    /// Told when the host's slots, collateral or earnings changed (`prove::gauges` refreshes).
    pub(crate) gauges_stale: tokio::sync::Notify,
}

impl Ctx {
    /// This node's chain account. Every node has one: it signs fills, proofs and requests.
    pub(crate) fn address(&self) -> Address {
        self.chain.address().unwrap_or_default()
    }

    /// Whether this process is filling `slot` right now (so a rescan must not settle it).
    pub(crate) fn filling_now(&self, slot: &alloy::primitives::B256) -> bool {
        self.filling
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(slot)
    }

    /// The host's current offer.
    pub(crate) fn offer(&self) -> crate::config::Offer {
        self.offer.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the offer and keeps it across restarts.
    pub(crate) fn set_offer(
        &self,
        offer: crate::config::Offer,
    ) -> Result<(), crate::store::StoreError> {
        self.store.set_offer(&offer)?;
        *self.offer.lock().unwrap_or_else(|p| p.into_inner()) = offer;
        Ok(())
    }

    /// Current head and period.
    pub(crate) fn head(&self) -> Head {
        *self.head.borrow()
    }
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    ctx: Arc<Ctx>,
    tasks: JoinSet<()>,
    api_addr: SocketAddr,
    net_task: tokio::task::JoinHandle<()>,
}

impl Node {
    /// Starts a node: store, chain client, libp2p, roles, API. Fails with a readable reason if
    /// the chain, the deployment, the ports or the data folder are not usable.
    pub async fn start(config: NodeConfig, signer: PrivateKeySigner) -> anyhow::Result<Self> {
        let registry = Registry::new();
        let metrics = NodeMetrics::new(&registry).context("registering metrics")?;
        let store = Store::open(&config.data_dir, &config.volumes())?;
        let deployment = Deployment::load(&config.chain.deployment)?;
        let chain = Chain::connect(
            ChainConfig {
                rpc_url: config.chain.rpc_url.clone(),
                deployment,
                signer: Some(signer),
                receipt_timeout: Duration::from_secs(config.chain.receipt_timeout_secs),
                gas_margin_percent: 20,
            },
            &registry,
        )
        .await?;

        let keypair = load_or_create_p2p_key(&config.data_dir.join("p2p-key"))?;
        let listen = config
            .p2p
            .listen
            .iter()
            .map(|a| {
                a.parse::<Multiaddr>()
                    .with_context(|| format!("p2p listen address {a:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (inbound_tx, inbound_rx) = mpsc::channel(256);
        let (net, net_task) = hoard_p2p::start(
            NetworkConfig {
                keypair,
                listen,
                bootstrap: Vec::new(),
                request_timeout: Duration::from_secs(config.p2p.request_timeout_secs),
                idle_timeout: Duration::from_secs(120),
            },
            &registry,
            inbound_tx,
        )
        .await
        .context("starting libp2p (is the --listen port free?)")?;

        let api_listener = tokio::net::TcpListener::bind(config.api.listen)
            .await
            .with_context(|| {
                format!(
                    "binding the API to {} (in use? pick another with --api)",
                    config.api.listen
                )
            })?;
        let api_addr = api_listener.local_addr()?;
        let token = load_or_create_token(&config.token_path())?;

        let offer = store.offer()?.unwrap_or_else(|| config.host.offer.clone());
        let head = sync::initial_head(&chain).await?;
        let (head_tx, head_rx) = watch::channel(head);
        let (events, _) = broadcast::channel(1024);
        let (validator_on, _) = watch::channel(config.validator.enabled);
        let cancel = CancellationToken::new();
        let ctx = Arc::new(Ctx {
            serving: Serving::default(),
            config,
            store,
            chain,
            net,
            metrics,
            registry,
            token,
            cancel,
            jobs: Jobs::default(),
            head: head_rx,
            events,
            validator_on,
            considering: Mutex::default(),
            offer: Mutex::new(offer),
            filling: Mutex::default(),
            freed_at: Mutex::default(),
            gauges_stale: tokio::sync::Notify::new(),
        });
        ctx.metrics
            .period_length_blocks
            .set(ctx.chain.deployment().period_length as i64);
        ctx.metrics
            .info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                &ctx.net.local_peer_id().to_string(),
                &ctx.address().to_string(),
            ])
            .set(1);
        crate::serve::index_local_data(&ctx)?;

        let mut tasks = JoinSet::new();
        tasks.spawn(crate::serve::run(ctx.clone(), inbound_rx));
        tasks.spawn(sync::run(ctx.clone(), head_tx));
        tasks.spawn(crate::announce::run(ctx.clone()));
        if ctx.config.host.enabled {
            tasks.spawn(crate::host::run(ctx.clone()));
        }
        // Proofs and withdrawals run whenever the node holds slots, even with the host role off
        // (it then takes no new slots but keeps its promises).
        tasks.spawn(crate::prove::run(ctx.clone()));
        tasks.spawn(crate::prove::gauges(ctx.clone()));
        tasks.spawn(crate::host::verify_local(ctx.clone()));
        tasks.spawn(crate::validator::run(ctx.clone()));
        tasks.spawn(crate::renter::run(ctx.clone()));
        tasks.spawn(api::serve(ctx.clone(), api_listener));
        tracing::info!(
            api = %api_addr,
            peer = %ctx.net.local_peer_id(),
            address = %ctx.address(),
            host = ctx.config.host.enabled,
            "node started"
        );
        Ok(Self {
            ctx,
            tasks,
            api_addr,
            net_task,
        })
    }

    /// Where the API (and `/metrics`) listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The API token for mutating calls.
    pub fn token(&self) -> &Secret {
        &self.ctx.token
    }

    /// The node's chain account.
    pub fn address(&self) -> Address {
        self.ctx.address()
    }

    /// The node's libp2p identity.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.ctx.net.local_peer_id()
    }

    /// Runs until `shutdown` is cancelled (Ctrl-C in `hoard node run`), then stops.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        self.stop().await;
    }

    /// Stops every task (with a deadline), flushes the store, closes libp2p.
    pub async fn stop(mut self) {
        self.ctx.cancel.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            tracing::warn!("tasks did not stop within 10 s; aborting them");
            self.tasks.abort_all();
        }
        if let Err(e) = self.ctx.store.flush().await {
            tracing::error!(err = %e, "flushing the store at shutdown");
        }
        self.ctx.net.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.net_task).await;
        // Short-lived tasks (a proof in flight, a block being served) hold the context too; the
        // database closes, and its lock is released, when the last of them lets go.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.ctx) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if Arc::strong_count(&self.ctx) > 1 {
            tracing::warn!("some tasks still hold the node's state after 10 s");
        }
        tracing::info!("node stopped");
    }
}

/// Reads the libp2p key, or creates one (written to a temp file, synced, renamed, mode 0600).
fn load_or_create_p2p_key(path: &Path) -> anyhow::Result<Keypair> {
    if let Ok(bytes) = std::fs::read(path) {
        return Keypair::from_protobuf_encoding(&bytes).with_context(|| {
            format!(
                "the p2p key {} is damaged; remove it to make a new identity",
                path.display()
            )
        });
    }
    let key = Keypair::generate_ed25519();
    let bytes = key.to_protobuf_encoding().context("encoding the p2p key")?;
    write_secret(path, &bytes)?;
    Ok(key)
}

/// Reads the API token, or creates a random one.
fn load_or_create_token(path: &Path) -> anyhow::Result<Secret> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(Secret::new(text.trim().to_string()));
    }
    let token: [u8; 24] = rand::random();
    let token = hex::encode(token);
    write_secret(path, token.as_bytes())?;
    Ok(Secret::new(token))
}

fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {} (is the data folder writable?)", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
