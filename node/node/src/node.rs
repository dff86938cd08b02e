//! Starting, wiring and stopping one node.
//!
//! Every task belongs to a role and runs in that role's [`TaskTracker`], inside a tracing span
//! named after the role. [`Node::stop`] cancels the node's token, then waits for every tracker
//! (with a deadline), flushes the store and closes libp2p.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use hoard_chain::{Chain, ChainConfig, ChainError, Deployment};
use hoard_p2p::{NetError, NetworkConfig};
use libp2p::{Multiaddr, identity::Keypair};
use prometheus::Registry;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument as _;

use crate::{
    api,
    config::{NodeConfig, Secret},
    ctx::{Ctx, Head},
    download::DownloadHandle,
    jobs::Jobs,
    local_slots::LocalSlots,
    metrics::NodeMetrics,
    store::{Store, StoreError},
};

/// How long [`Node::stop`] waits for the roles' tasks.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data folder or its database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain or the deployment file.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// libp2p did not start.
    #[error("starting libp2p (is the --listen port free?): {0}")]
    P2p(#[from] NetError),
    /// A listen address is not a multiaddr.
    #[error("p2p listen address {addr:?}: {source}")]
    ListenAddr {
        /// The address.
        addr: String,
        /// Why.
        source: libp2p::multiaddr::Error,
    },
    /// The API port is taken.
    #[error("binding the API to {addr} (in use? pick another with --api): {source}")]
    ApiBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A key file is damaged or cannot be written.
    #[error("{what} {}: {detail}", path.display())]
    Key {
        /// Which file.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// What went wrong and what to do.
        detail: String,
    },
    /// The metrics did not register.
    #[error("registering the node's metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The compact keys do not match the deployed verifiers (or cannot be read).
    #[error(transparent)]
    CompactKeys(#[from] crate::host::CompactKeyError),
    /// The reader cache's folder cannot be used.
    #[error("{0} (is the volume writable? `cache.max_bytes_per_volume = 0` turns the cache off)")]
    Cache(String),
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    ctx: Arc<Ctx>,
    api_addr: SocketAddr,
    /// Each role's tasks, by role name, in the order they stop.
    roles: Vec<(&'static str, TaskTracker)>,
    net_task: tokio::task::JoinHandle<()>,
}

impl Node {
    /// Starts a node: store, chain client, libp2p, roles, API. Fails with a readable reason if
    /// the chain, the deployment, the ports or the data folder are not usable.
    pub async fn start(config: NodeConfig, signer: PrivateKeySigner) -> Result<Self, NodeError> {
        let registry = Registry::new();
        let metrics = NodeMetrics::new(&registry)?;
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
                    .map_err(|source| NodeError::ListenAddr {
                        addr: a.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
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
        .await?;

        let api_listener = tokio::net::TcpListener::bind(config.api.listen)
            .await
            .map_err(|source| NodeError::ApiBind {
                addr: config.api.listen,
                source,
            })?;
        let api_addr = api_listener
            .local_addr()
            .map_err(|source| NodeError::ApiBind {
                addr: config.api.listen,
                source,
            })?;
        let token = load_or_create_token(&config.token_path())?;

        let head = Head::read(&chain).await?;
        let (head_tx, head_rx) = watch::channel(head);
        let (synced_tx, synced_rx) = watch::channel(0);
        let (events, _) = broadcast::channel(1024);
        let slots = LocalSlots::index(&store)?;
        let cache = crate::reader_cache::ReaderCache::open(
            store.volumes(),
            config.cache.max_bytes_per_volume,
        )
        .map_err(|e| NodeError::Cache(e.to_string()))?;
        let ctx = Arc::new(Ctx {
            config,
            store,
            chain,
            net,
            metrics,
            registry,
            token,
            cancel: CancellationToken::new(),
            head: head_rx,
            synced: synced_rx,
            events,
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

        let role = |name: &'static str| (name, TaskTracker::new());
        let [
            sync,
            serve,
            announce,
            host,
            renter,
            download,
            validator,
            api,
        ] = [
            role("sync"),
            role("serve"),
            role("announce"),
            role("host"),
            role("renter"),
            role("download"),
            role("validator"),
            role("api"),
        ];
        let span = |name| tracing::info_span!("role", name);
        sync.1.spawn(
            crate::sync::run(ctx.clone(), slots.clone(), head_tx, synced_tx)
                .instrument(span("sync")),
        );
        announce
            .1
            .spawn(crate::announce::run(ctx.clone()).instrument(span("announce")));
        // The host role runs whenever the node holds slots, even with `host.enabled` off (it
        // then takes no new slots but keeps its promises).
        let compact = crate::host::start_compact(&ctx).await?;
        let host_handle = crate::host::spawn(ctx.clone(), slots.clone(), &host.1, compact)?;
        serve.1.spawn(
            crate::serve::run(
                ctx.clone(),
                slots.clone(),
                cache.clone(),
                inbound_rx,
                serve.1.clone(),
                host_handle.damage(),
            )
            .instrument(span("serve")),
        );
        let jobs = Jobs::default();
        download.1.spawn(
            crate::download::seed::run(ctx.clone(), cache.clone(), slots.clone())
                .instrument(span("download")),
        );
        let (renter_handle, reannounce) =
            crate::renter::spawn(ctx.clone(), slots, jobs.clone(), renter.1.clone());
        renter.1.spawn(reannounce.instrument(span("renter")));
        let downloads = DownloadHandle::new(ctx.clone(), jobs.clone(), download.1.clone(), cache);
        let (validator_handle, validate) = crate::validator::spawn(ctx.clone());
        validator.1.spawn(validate.instrument(span("validator")));
        let app = api::router(api::Roles {
            ctx: ctx.clone(),
            jobs,
            host: host_handle,
            renter: renter_handle,
            downloads,
            validator: validator_handle,
        });
        let limits = api::listener::Limits {
            max_connections: ctx.config.api.max_connections,
            header_timeout: Duration::from_secs(ctx.config.api.header_timeout_secs),
            request_timeout: Duration::from_secs(ctx.config.api.request_timeout_secs),
        };
        api.1.spawn(
            api::listener::serve(
                api_listener,
                app,
                limits,
                ctx.cancel.clone(),
                api.1.clone(),
                ctx.metrics.api_connections_refused.clone(),
            )
            .instrument(span("api")),
        );
        tracing::info!(
            api = %api_addr,
            peer = %ctx.net.local_peer_id(),
            address = %ctx.address(),
            host = ctx.config.host.enabled,
            "node started"
        );
        Ok(Self {
            ctx,
            api_addr,
            // Stop order: the API first (no new work), sync last (the others read its head).
            roles: vec![
                api, download, renter, validator, host, announce, serve, sync,
            ],
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

    /// Stops every role's tasks (each role within [`STOP_DEADLINE`]), flushes the store, closes
    /// libp2p.
    pub async fn stop(mut self) {
        self.ctx.cancel.cancel();
        let deadline = tokio::time::Instant::now() + STOP_DEADLINE;
        for (name, tasks) in &self.roles {
            tasks.close();
            if tokio::time::timeout_at(deadline, tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    role = name,
                    tasks = tasks.len(),
                    "tasks did not stop within {} s",
                    STOP_DEADLINE.as_secs()
                );
            }
        }
        if let Err(e) = self.ctx.store.flush().await {
            tracing::error!(err = %e, "flushing the store at shutdown");
        }
        self.ctx.net.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.net_task).await;
        tracing::info!("node stopped");
    }
}

/// Reads the libp2p key, or creates one (written to a temp file, synced, renamed, mode 0600).
fn load_or_create_p2p_key(path: &Path) -> Result<Keypair, NodeError> {
    let key_error = |detail: String| NodeError::Key {
        what: "the p2p key",
        path: path.to_path_buf(),
        detail,
    };
    if let Ok(bytes) = std::fs::read(path) {
        return Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            key_error(format!(
                "is damaged ({e}); remove it to make a new identity"
            ))
        });
    }
    let key = Keypair::generate_ed25519();
    let bytes = key
        .to_protobuf_encoding()
        .map_err(|e| key_error(format!("cannot be encoded: {e}")))?;
    write_secret(path, &bytes).map_err(|e| key_error(format!("cannot be written: {e}")))?;
    Ok(key)
}

/// Reads the API token, or creates a random one.
fn load_or_create_token(path: &Path) -> Result<Secret, NodeError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(Secret::new(text.trim().to_string()));
    }
    let token = hex::encode(rand::random::<[u8; 24]>());
    write_secret(path, token.as_bytes()).map_err(|e| NodeError::Key {
        what: "the API token",
        path: path.to_path_buf(),
        detail: format!("cannot be written (is the data folder writable?): {e}"),
    })?;
    Ok(Secret::new(token))
}

fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        d.sync_all()?;
    }
    Ok(())
}
