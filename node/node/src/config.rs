//! Node configuration: a TOML file, environment variables and command-line flags.
//!
//! Precedence is flag > environment > file > default, decided in one place
//! ([`NodeConfig::resolve`]). clap reads flags and their `HOARD_*` environment variables into
//! [`Overrides`] (so clap already ranks flag over env); `resolve` lays those over the file.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

pub use hoard_api::Offer;
use serde::{Deserialize, Serialize};
use url::Url;

/// Everything a node needs to start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Folder for the database, keys, the API token and (unless `volumes` is set) slot data.
    pub data_dir: PathBuf,
    /// Folders that hold slot data (hosts) and packed datasets (renters). Default: `<data_dir>/data`.
    pub volumes: Vec<PathBuf>,
    /// HTTP API and `/metrics`.
    pub api: ApiConfig,
    /// libp2p.
    pub p2p: P2pConfig,
    /// The chain.
    pub chain: ChainSettings,
    /// Host role.
    pub host: HostConfig,
    /// Validator role: mark missed proofs for the reward.
    pub validator: ValidatorConfig,
    /// Compact proofs (hosts of compact slots).
    pub compact: CompactConfig,
    /// The reader cache: blocks this node downloaded, kept to serve other readers.
    pub cache: CacheConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".hoard"),
            volumes: Vec::new(),
            api: ApiConfig::default(),
            p2p: P2pConfig::default(),
            chain: ChainSettings::default(),
            host: HostConfig::default(),
            validator: ValidatorConfig::default(),
            compact: CompactConfig::default(),
            cache: CacheConfig::default(),
        }
    }
}

/// Compact proof settings (docs/protocol.md §9, docs/operator-guide.md "Choosing a scheme").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompactConfig {
    /// Folder of the Groth16 keys. Keys missing there are generated from the devnet set-up seed
    /// when first needed and cached (seconds and 47 MB for the 4-slot circuit, about a minute,
    /// 4 GiB of memory and 376 MB for the 32-slot one); several nodes may share one folder.
    /// Default: `<data_dir>/compact-keys`.
    pub keys_dir: Option<PathBuf>,
    /// Most slots proven in one proof, 1–32: up to 32 uses the large circuit for batches over 4
    /// (about 4 GiB of memory while proving); 4 or fewer the small circuit only (for small
    /// machines and short periods).
    pub max_batch: usize,
}

impl Default for CompactConfig {
    fn default() -> Self {
        Self {
            keys_dir: None,
            max_batch: 32,
        }
    }
}

/// HTTP API settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on; localhost by default (the API moves money).
    pub listen: SocketAddr,
    /// Connections served at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (and to start the next request on a
    /// kept-alive connection) before the connection is closed.
    pub header_timeout_secs: u64,
    /// Seconds from a request's headers to its answer (bodies included) before it gets 408.
    pub request_timeout_secs: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8650)),
            max_connections: 256,
            header_timeout_secs: 10,
            request_timeout_secs: 300,
        }
    }
}

/// libp2p settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Addresses to announce on chain instead of the listen addresses (e.g. a public IP).
    pub announce: Vec<String>,
    /// Seconds before a request to a peer times out.
    pub request_timeout_secs: u64,
    /// Bytes per second this node sends to peers at most (blocks and manifests it serves, a
    /// token bucket holding one second's worth); 0 = no limit.
    pub upload_limit_bytes_per_sec: u64,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/127.0.0.1/tcp/8651".into()],
            announce: Vec::new(),
            request_timeout_secs: 30,
            upload_limit_bytes_per_sec: 0,
        }
    }
}

/// Chain settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChainSettings {
    /// JSON-RPC endpoint.
    pub rpc_url: Url,
    /// Deployment file written by `contracts/script/deploy.sh` or `hoard devnet`.
    pub deployment: PathBuf,
    /// Encrypted keystore file (password from `HOARD_KEYSTORE_PASSWORD`). `HOARD_PRIVATE_KEY`
    /// wins over it.
    pub keystore: Option<PathBuf>,
    /// Seconds to wait for a receipt before looking the transaction up again.
    pub receipt_timeout_secs: u64,
    /// Milliseconds between polls of the chain head.
    pub poll_interval_ms: u64,
    /// Blocks an event must be deep before the node acts on it.
    pub confirmations: u64,
}

impl Default for ChainSettings {
    fn default() -> Self {
        Self {
            rpc_url: Url::parse("http://127.0.0.1:8545").expect("a valid literal URL"),
            deployment: PathBuf::from("contracts/deployments/31337.json"),
            keystore: None,
            receipt_timeout_secs: 60,
            poll_interval_ms: 1000,
            confirmations: 0,
        }
    }
}

impl ChainSettings {
    /// Time between head polls.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

/// The host's offer and behaviour.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// Take storage requests.
    pub enabled: bool,
    /// The offer hosts match requests against.
    pub offer: Offer,
    /// Seconds a host waits per step of its preference order before trying a slot another host
    /// prefers (see docs/architecture.md, "Who fills which slot").
    pub fill_backoff_secs: u64,
    /// Warn (log + `hoard_proofs_at_risk`) when a required proof is still unsent this many
    /// blocks before its period ends.
    pub deadline_margin_blocks: u64,
    /// Proofs built at once on the blocking pool.
    pub prove_parallelism: usize,
    /// Rebuild damaged or missing blocks of hosted slots from the other slots' hosts (and make a
    /// proof that needs them wait for the repair). Off: damage is only detected and counted.
    pub self_repair: bool,
    /// The background scrub that re-checks every hosted block.
    pub scrub: ScrubConfig,
}

/// The background scrub: every hosted block re-read and checked against its root, at a pace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScrubConfig {
    /// Re-check every hosted block at least once in this many seconds (0: no scrub).
    pub interval_secs: u64,
    /// Read at most this many bytes per second (the scrub's share of the disk).
    pub max_bytes_per_sec: u64,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        Self {
            interval_secs: 86_400,
            max_bytes_per_sec: 32 << 20,
        }
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            offer: Offer::default(),
            fill_backoff_secs: 8,
            deadline_margin_blocks: 8,
            prove_parallelism: 2,
            self_repair: true,
            scrub: ScrubConfig::default(),
        }
    }
}

/// Validator settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ValidatorConfig {
    /// Watch every request and mark missed proofs.
    pub enabled: bool,
}

/// Reader cache settings (docs/operator-guide.md, "Reader cache").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Bytes of downloaded blocks kept per volume (least recently used dropped first); 0 turns
    /// the cache off, and the node then serves nothing it downloaded.
    pub max_bytes_per_volume: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes_per_volume: 10 << 30,
        }
    }
}

/// Values from flags or the environment; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data-dir` / `HOARD_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--api` / `HOARD_API`.
    pub api_listen: Option<SocketAddr>,
    /// `--listen` / `HOARD_LISTEN` (replaces the list).
    pub p2p_listen: Option<Vec<String>>,
    /// `--rpc-url` / `HOARD_RPC_URL`.
    pub rpc_url: Option<Url>,
    /// `--deployment` / `HOARD_DEPLOYMENT`.
    pub deployment: Option<PathBuf>,
    /// `--host` / `HOARD_HOST`.
    pub host: Option<bool>,
    /// `--validate` / `HOARD_VALIDATE`.
    pub validator: Option<bool>,
    /// `--capacity` / `HOARD_CAPACITY`.
    pub capacity_bytes: Option<u64>,
}

/// A configuration problem, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a node config.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said (line and column included).
        message: String,
    },
    /// A value is outside what the node can work with.
    #[error("`{key} = {value}` is out of range: {expected}")]
    OutOfRange {
        /// The key, as in the file (`chain.poll_interval_ms`).
        key: &'static str,
        /// The value given.
        value: u64,
        /// What would do.
        expected: &'static str,
    },
}

impl NodeConfig {
    /// Reads `file` (if given) and lays `overrides` over it. This is the one place where
    /// precedence is decided.
    pub fn resolve(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.into(),
                    message: e.to_string(),
                })?
            }
            None => NodeConfig::default(),
        };
        let o = overrides.clone();
        if let Some(v) = o.data_dir {
            config.data_dir = v;
        }
        if let Some(v) = o.api_listen {
            config.api.listen = v;
        }
        if let Some(v) = o.p2p_listen {
            config.p2p.listen = v;
        }
        if let Some(v) = o.rpc_url {
            config.chain.rpc_url = v;
        }
        if let Some(v) = o.deployment {
            config.chain.deployment = v;
        }
        if let Some(v) = o.host {
            config.host.enabled = v;
        }
        if let Some(v) = o.validator {
            config.validator.enabled = v;
        }
        if let Some(v) = o.capacity_bytes {
            config.host.offer.capacity_bytes = v;
        }
        config.check()?;
        Ok(config)
    }

    /// Refuses values the node cannot work with, naming the key: nothing is clamped silently.
    pub fn check(&self) -> Result<(), ConfigError> {
        let limits: [(&'static str, u64, u64, u64, &'static str); 10] = [
            (
                "chain.poll_interval_ms",
                self.chain.poll_interval_ms,
                50,
                3_600_000,
                "between 50 and 3600000 milliseconds (50 polls an RPC 20 times a second)",
            ),
            (
                "chain.receipt_timeout_secs",
                self.chain.receipt_timeout_secs,
                1,
                86_400,
                "between 1 and 86400 seconds",
            ),
            (
                "p2p.request_timeout_secs",
                self.p2p.request_timeout_secs,
                1,
                3_600,
                "between 1 and 3600 seconds",
            ),
            (
                "host.prove_parallelism",
                self.host.prove_parallelism as u64,
                1,
                1_024,
                "between 1 and 1024 proofs built at once",
            ),
            (
                "compact.max_batch",
                self.compact.max_batch as u64,
                1,
                32,
                "between 1 and 32 slots per proof (the largest compact circuit)",
            ),
            (
                "api.max_connections",
                self.api.max_connections as u64,
                1,
                100_000,
                "between 1 and 100000 connections",
            ),
            (
                "api.header_timeout_secs",
                self.api.header_timeout_secs,
                1,
                3_600,
                "between 1 and 3600 seconds",
            ),
            (
                "api.request_timeout_secs",
                self.api.request_timeout_secs,
                1,
                86_400,
                "between 1 and 86400 seconds",
            ),
            (
                "host.scrub.interval_secs",
                self.host.scrub.interval_secs,
                0,
                365 * 86_400,
                "0 (no scrub) or up to 31536000 seconds (a year)",
            ),
            (
                "host.scrub.max_bytes_per_sec",
                self.host.scrub.max_bytes_per_sec,
                1 << 20,
                u64::MAX,
                "at least 1048576 bytes per second",
            ),
        ];
        for (key, value, min, max, expected) in limits {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::OutOfRange {
                    key,
                    value,
                    expected,
                });
            }
        }
        Ok(())
    }

    /// The data folders, defaulting to `<data_dir>/data`.
    pub fn volumes(&self) -> Vec<PathBuf> {
        if self.volumes.is_empty() {
            vec![self.data_dir.join("data")]
        } else {
            self.volumes.clone()
        }
    }

    /// Where the API token lives (read by the CLI, like bitcoind's cookie).
    pub fn token_path(&self) -> PathBuf {
        self.data_dir.join("api-token")
    }
}

/// A secret string (API token, password) that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::U256;

    use super::*;

    #[test]
    fn flag_beats_file_beats_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "data_dir = \"/file\"\n[chain]\nrpc_url = \"http://file:1\"\n[host]\nenabled = true\n",
        )
        .expect("write");
        let overrides = Overrides {
            rpc_url: Some(Url::parse("http://flag:2").expect("url")),
            ..Overrides::default()
        };
        let c = NodeConfig::resolve(Some(&path), &overrides).expect("resolve");
        assert_eq!(c.chain.rpc_url.as_str(), "http://flag:2/");
        assert_eq!(c.data_dir, PathBuf::from("/file"));
        assert!(c.host.enabled);
        assert_eq!(c.api, ApiConfig::default());

        let none = NodeConfig::resolve(None, &Overrides::default()).expect("defaults");
        assert_eq!(none, NodeConfig::default());
        assert_eq!(none.volumes(), vec![PathBuf::from(".hoard/data")]);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "[host]\ncapacity = 5\n").expect("write");
        let err = NodeConfig::resolve(Some(&path), &Overrides::default())
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("capacity") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn token_amounts_are_integers_or_strings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        let offer = |body: &str| {
            std::fs::write(&path, format!("[host.offer]\n{body}\n")).expect("write");
            NodeConfig::resolve(Some(&path), &Overrides::default()).map(|c| c.host.offer)
        };

        let o = offer("min_price_per_byte_per_second = 1000\nmax_collateral_per_slot = 5")
            .expect("integers");
        assert_eq!(o.min_price_per_byte_per_second, U256::from(1000));
        assert_eq!(o.max_collateral_per_slot, U256::from(5));

        // Past i64: a string, decimal or hex.
        let o = offer(
            "min_price_per_byte_per_second = \"0x3e8\"\n\
             max_collateral_per_slot = \"1000000000000000000000\"",
        )
        .expect("strings");
        assert_eq!(o.min_price_per_byte_per_second, U256::from(1000));
        assert_eq!(
            o.max_collateral_per_slot,
            U256::from(10u64).pow(U256::from(21))
        );
        // The toml crate reads integers past i64 (as i128); accept them too.
        let o = offer("max_collateral_per_slot = 1000000000000000000000").expect("big integer");
        assert_eq!(
            o.max_collateral_per_slot,
            U256::from(10u64).pow(U256::from(21))
        );

        for (bad, place) in [
            ("max_collateral_per_slot = -1", "-1"),
            ("max_collateral_per_slot = 1.5", "1.5"),
            ("max_collateral_per_slot = \"ten\"", "ten"),
            ("max_collateral_per_slot = \"\"", "line 2"),
        ] {
            let err = offer(bad).expect_err(bad).to_string();
            assert!(
                err.contains("a token amount in base units") && err.contains(place),
                "{bad}: {err}"
            );
        }

        // The database and the API keep the offer as JSON in U256's own form; it reads back.
        let o = offer("max_collateral_per_slot = 7").expect("integer");
        let json = serde_json::to_string(&o).expect("to JSON");
        assert_eq!(serde_json::from_str::<Offer>(&json).expect("from JSON"), o);
    }

    #[test]
    fn values_out_of_range_are_refused_with_their_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        for (body, key) in [
            ("[chain]\npoll_interval_ms = 0", "chain.poll_interval_ms"),
            ("[chain]\npoll_interval_ms = 49", "chain.poll_interval_ms"),
            ("[host]\nprove_parallelism = 0", "host.prove_parallelism"),
            ("[compact]\nmax_batch = 0", "compact.max_batch"),
            ("[compact]\nmax_batch = 33", "compact.max_batch"),
            ("[api]\nmax_connections = 0", "api.max_connections"),
            ("[api]\nheader_timeout_secs = 0", "api.header_timeout_secs"),
            (
                "[p2p]\nrequest_timeout_secs = 0",
                "p2p.request_timeout_secs",
            ),
        ] {
            std::fs::write(&path, body).expect("write");
            match NodeConfig::resolve(Some(&path), &Overrides::default()) {
                Err(ConfigError::OutOfRange { key: k, .. }) => assert_eq!(k, key, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        std::fs::write(&path, "[chain]\npoll_interval_ms = 50").expect("write");
        let c = NodeConfig::resolve(Some(&path), &Overrides::default()).expect("the minimum");
        assert_eq!(c.chain.poll_interval(), Duration::from_millis(50));
    }

    #[test]
    fn secrets_stay_hidden() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2".into())),
            "Secret(***)"
        );
    }
}
