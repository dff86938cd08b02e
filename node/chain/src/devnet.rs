//! A local chain for tests and `hoard devnet`: find and start anvil ([`LocalChain`]), deploy the
//! contracts from the committed artifacts ([`deploy`]), hand out test tokens ([`fund`]).

use std::{env, path::PathBuf, time::Duration};

use alloy::{
    network::TransactionBuilder,
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, Bytes, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
};
use tokio::task::JoinSet;
use url::Url;

use crate::{
    bindings::{
        BlockHashRandomness, HoardTestToken,
        Marketplace::{self, MarketplaceConfig},
    },
    client::{Chain, plain_provider},
    deployment::Deployment,
    error::ChainError,
    metrics::ChainMetrics,
    rpc::Rpc,
    tx::{TxSender, TxSettings},
};

/// Where `npm ci` in `contracts/` puts the real anvil binary (not the Node wrapper in
/// `node_modules/.bin`, which does not pass a kill on).
fn npm_anvil() -> String {
    let arch = match env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!(
        "contracts/node_modules/@foundry-rs/anvil-{}-{arch}/bin/anvil",
        env::consts::OS
    )
}

/// Finds anvil: `$HOARD_ANVIL`, else the npm-installed binary in the repository (searched upwards
/// from this crate's source directory and from the current directory), else `anvil` on `PATH`.
pub fn find_anvil() -> Result<PathBuf, ChainError> {
    if let Some(path) = env::var_os("HOARD_ANVIL") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(ChainError::Other(format!(
                "HOARD_ANVIL is {}, which is not a file — point it at an anvil binary",
                path.display()
            )))
        };
    }
    let relative = npm_anvil();
    let starts = [
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
        env::current_dir().ok(),
    ];
    for start in starts.iter().flatten() {
        if let Some(found) = start
            .ancestors()
            .map(|dir| dir.join(&relative))
            .find(|p| p.is_file())
        {
            return Ok(found);
        }
    }
    if let Some(paths) = env::var_os("PATH")
        && let Some(found) = env::split_paths(&paths)
            .map(|dir| dir.join("anvil"))
            .find(|p| p.is_file())
    {
        return Ok(found);
    }
    Err(ChainError::Other(format!(
        "anvil not found (looked for $HOARD_ANVIL, {relative} and anvil on PATH) — run \
         scripts/contracts (npm ci in contracts/) first"
    )))
}

/// A running anvil, killed when this is dropped.
#[derive(Debug)]
pub struct LocalChain {
    anvil: AnvilInstance,
}

impl LocalChain {
    /// Starts anvil (found by [`find_anvil`]) on 127.0.0.1, mining a block every `block_time`
    /// seconds (at least 1; periods count blocks, so the chain must move without transactions),
    /// on `port` or a free one. Blocks the thread until anvil listens.
    pub fn start(block_time: u64, port: Option<u16>) -> Result<Self, ChainError> {
        let path = find_anvil()?;
        let mut anvil = Anvil::at(&path)
            .host("127.0.0.1")
            .block_time(block_time.max(1));
        if let Some(port) = port {
            anvil = anvil.port(port);
        }
        let anvil = anvil.try_spawn().map_err(|e| {
            ChainError::Other(format!("cannot start anvil ({}): {e}", path.display()))
        })?;
        tracing::info!(url = %anvil.endpoint(), "anvil started");
        Ok(Self { anvil })
    }

    /// The JSON-RPC endpoint.
    pub fn rpc_url(&self) -> Url {
        self.anvil.endpoint_url()
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.anvil.chain_id()
    }

    /// Signers of the funded dev accounts (ten on a default anvil).
    pub fn keys(&self) -> Vec<PrivateKeySigner> {
        self.anvil
            .keys()
            .iter()
            .cloned()
            .map(PrivateKeySigner::from)
            .collect()
    }

    /// Addresses of the dev accounts.
    pub fn addresses(&self) -> &[Address] {
        self.anvil.addresses()
    }
}

/// The Marketplace configuration to deploy; the defaults are `contracts/script/Deploy.s.sol`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeploySettings {
    /// Blocks per proof period.
    pub period_length: u64,
    /// Blocks after a period during which its missing proofs can be marked.
    pub grace_blocks: u64,
    /// Marks after which a host is evicted.
    pub max_missed: u8,
    /// Share of a slot's collateral slashed per mark, in basis points.
    pub slash_bps: u16,
    /// Reporter's share of each slash, in basis points.
    pub reporter_reward_bps: u16,
    /// Share of a slot's collateral paid to a repairing host, in basis points.
    pub repair_reward_bps: u16,
}

impl Default for DeploySettings {
    fn default() -> Self {
        Self {
            period_length: 64,
            grace_blocks: 64,
            max_missed: 3,
            slash_bps: 1000,
            reporter_reward_bps: 2500,
            repair_reward_bps: 1000,
        }
    }
}

/// Deploys HoardTestToken, BlockHashRandomness and the Marketplace from the committed artifacts,
/// as `Deploy.s.sol` does, and returns the deployment (with `deploymentBlock()` read back).
pub async fn deploy(
    rpc_url: &Url,
    deployer: PrivateKeySigner,
    settings: DeploySettings,
) -> Result<Deployment, ChainError> {
    let rpc = Rpc {
        provider: plain_provider(rpc_url),
        url: rpc_url.clone(),
        metrics: ChainMetrics::unregistered(),
    };
    let provider = rpc.provider.clone();
    let chain_id = rpc
        .retry("eth_chainId", || provider.get_chain_id().into_future())
        .await?;
    let sender = TxSender::spawn(
        rpc.clone(),
        deployer,
        TxSettings {
            chain_id,
            receipt_timeout: Duration::from_secs(30),
            gas_margin_percent: 20,
        },
    );
    let create = |method: &'static str, code: Bytes| {
        let sender = sender.clone();
        async move {
            let tx = TransactionRequest::default().with_deploy_code(code);
            let receipt = sender.send(method, tx, None).await?;
            receipt.contract_address.ok_or_else(|| {
                ChainError::Other(format!("{method}: the receipt names no contract address"))
            })
        }
    };
    // Independent: both go out before either is mined.
    let (token, randomness) = tokio::try_join!(
        create("deployHoardTestToken", HoardTestToken::BYTECODE.clone()),
        create(
            "deployBlockHashRandomness",
            BlockHashRandomness::BYTECODE.clone()
        ),
    )?;
    let config = MarketplaceConfig {
        token,
        randomness,
        periodLength: settings.period_length,
        graceBlocks: settings.grace_blocks,
        maxMissed: settings.max_missed,
        slashBps: settings.slash_bps,
        reporterRewardBps: settings.reporter_reward_bps,
        repairRewardBps: settings.repair_reward_bps,
        // No compact verifiers yet: compact requests are refused (SchemeNotSupported).
        compactVerifierSmall: Address::ZERO,
        compactVerifierLarge: Address::ZERO,
    };
    let code = Marketplace::deploy_builder(&provider, config)
        .calldata()
        .clone();
    let marketplace = create("deployMarketplace", code).await?;
    let block = rpc
        .retry("deploymentBlock", || async {
            Marketplace::new(marketplace, &provider)
                .deploymentBlock()
                .call()
                .await
        })
        .await?;
    let deployment_block = u64::try_from(block)
        .map_err(|_| ChainError::Other(format!("deploymentBlock() returned {block}")))?;
    let deployment = Deployment {
        chain_id,
        marketplace,
        token,
        randomness,
        deployment_block,
        period_length: settings.period_length,
        grace_blocks: settings.grace_blocks,
        max_missed: settings.max_missed.into(),
        slash_bps: settings.slash_bps.into(),
        reporter_reward_bps: settings.reporter_reward_bps.into(),
        repair_reward_bps: settings.repair_reward_bps.into(),
    };
    tracing::info!(?deployment, "contracts deployed");
    Ok(deployment)
}

/// Mints `amount` test tokens to each of `accounts` through the faucet, from `chain`'s signer
/// (all sent at once, so they land in the same block).
pub async fn fund(chain: &Chain, accounts: &[Address], amount: U256) -> Result<(), ChainError> {
    let mut mints = JoinSet::new();
    for &account in accounts {
        let chain = chain.clone();
        mints.spawn(async move { chain.faucet_to(account, amount).await });
    }
    while let Some(done) = mints.join_next().await {
        done.map_err(|e| ChainError::Other(format!("a faucet task failed: {e}")))??;
    }
    Ok(())
}
