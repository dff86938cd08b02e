//! [`Deployment`]: the deployment file `contracts/script/deploy.sh` (or the devnet) writes, naming
//! the contracts and the Marketplace's immutable configuration.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use crate::{bindings::Marketplace::MarketplaceConfig, error::ChainError};

/// Where the contracts live and how the Marketplace is configured (docs/contracts.md,
/// "Deployment file").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Chain id the contracts were deployed to.
    pub chain_id: u64,
    /// The Marketplace.
    #[serde(with = "checksummed")]
    pub marketplace: Address,
    /// The ERC-20 used for escrow, collateral and payouts.
    #[serde(with = "checksummed")]
    pub token: Address,
    /// The randomness source (`IRandomness`).
    #[serde(with = "checksummed")]
    pub randomness: Address,
    /// The small compact circuit's verifier (`ICompactVerifier`), or zero: without verifiers the
    /// Marketplace refuses compact requests. Zero when a file from before compact proofs omits it.
    #[serde(with = "checksummed", default)]
    pub compact_verifier_small: Address,
    /// The large compact circuit's verifier, or zero.
    #[serde(with = "checksummed", default)]
    pub compact_verifier_large: Address,
    /// Block the Marketplace was mined in: event backfill starts here.
    pub deployment_block: u64,
    /// Blocks per proof period.
    pub period_length: u64,
    /// Blocks after a period during which its missing proofs can be marked.
    pub grace_blocks: u64,
    /// Marks after which a host is evicted.
    pub max_missed: u64,
    /// Share of a slot's collateral slashed per mark, in basis points.
    pub slash_bps: u64,
    /// Reporter's share of each slash, in basis points.
    pub reporter_reward_bps: u64,
    /// Share of a slot's collateral paid to a repairing host, in basis points.
    pub repair_reward_bps: u64,
}

impl Deployment {
    /// The deployed compact verifiers, small first (none, one or two).
    pub fn compact_verifiers(&self) -> Vec<Address> {
        [self.compact_verifier_small, self.compact_verifier_large]
            .into_iter()
            .filter(|a| *a != Address::ZERO)
            .collect()
    }

    /// The period arithmetic of this deployment.
    pub fn periods(&self) -> crate::Periods {
        // `load` refuses a zero period length, and so does the contract's constructor.
        crate::Periods::new(self.period_length.max(1), self.grace_blocks)
            .expect("a period length of at least 1")
    }

    /// Reads a deployment file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ChainError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| ChainError::Io {
            action: "cannot read the deployment file",
            path: path.display().to_string(),
            source,
        })?;
        let invalid = |e: &dyn std::fmt::Display| {
            ChainError::Other(format!(
                "the deployment file {} is invalid: {e} — use the file contracts/script/deploy.sh \
                 or `hoard devnet` wrote",
                path.display()
            ))
        };
        let d: Self = serde_json::from_str(&text).map_err(|e| invalid(&e))?;
        if d.period_length == 0 {
            return Err(invalid(&"periodLength is 0"));
        }
        Ok(d)
    }

    /// Writes the deployment file atomically: a temporary file next to it, fsync, rename, fsync
    /// of the directory.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ChainError> {
        let path = path.as_ref();
        let io_err = |action: &'static str, p: &Path| {
            let p = p.display().to_string();
            move |source| ChainError::Io {
                action,
                path: p,
                source,
            }
        };
        let mut json = serde_json::to_string_pretty(self)
            .map_err(|e| ChainError::Other(format!("cannot encode the deployment: {e}")))?;
        json.push('\n');
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(io_err("cannot create the directory", &dir))?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            file_name.as_deref().unwrap_or("deployment.json"),
            std::process::id()
        ));
        let result = (|| {
            let mut file = fs::File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
            file.write_all(json.as_bytes())
                .map_err(io_err("cannot write", &tmp))?;
            file.sync_all().map_err(io_err("cannot sync", &tmp))?;
            fs::rename(&tmp, path).map_err(io_err("cannot move the deployment file to", path))?;
            // Make the rename itself durable. Not every platform can open a directory; the file's
            // content is synced already, so a failure here is not worth failing the save.
            if let Ok(d) = fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Compares the file's settings with the contract's `config()`; the error names every field
    /// that differs.
    pub(crate) fn check_config(&self, on_chain: &MarketplaceConfig) -> Result<(), ChainError> {
        let mut diffs = Vec::new();
        let mut check = |name: &str, file: String, chain: String| {
            if file != chain {
                diffs.push(format!("{name} is {file} in the file but {chain} on chain"));
            }
        };
        check("token", self.token.to_string(), on_chain.token.to_string());
        check(
            "randomness",
            self.randomness.to_string(),
            on_chain.randomness.to_string(),
        );
        check(
            "compactVerifierSmall",
            self.compact_verifier_small.to_string(),
            on_chain.compactVerifierSmall.to_string(),
        );
        check(
            "compactVerifierLarge",
            self.compact_verifier_large.to_string(),
            on_chain.compactVerifierLarge.to_string(),
        );
        check(
            "periodLength",
            self.period_length.to_string(),
            on_chain.periodLength.to_string(),
        );
        check(
            "graceBlocks",
            self.grace_blocks.to_string(),
            on_chain.graceBlocks.to_string(),
        );
        check(
            "maxMissed",
            self.max_missed.to_string(),
            on_chain.maxMissed.to_string(),
        );
        check(
            "slashBps",
            self.slash_bps.to_string(),
            on_chain.slashBps.to_string(),
        );
        check(
            "reporterRewardBps",
            self.reporter_reward_bps.to_string(),
            on_chain.reporterRewardBps.to_string(),
        );
        check(
            "repairRewardBps",
            self.repair_reward_bps.to_string(),
            on_chain.repairRewardBps.to_string(),
        );
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(ChainError::ConfigMismatch(diffs.join(", ")))
        }
    }
}

/// Addresses as EIP-55 checksummed hex, as `deploy.sh` writes them (alloy's serde writes
/// lowercase).
mod checksummed {
    use alloy::primitives::Address;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(a: &Address, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&a.to_checksum(None))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        Address::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
  "chainId": 31337,
  "marketplace": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
  "token": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
  "randomness": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
  "compactVerifierSmall": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
  "compactVerifierLarge": "0xDC64a140Aa3E981100a4beca4E685F962f0cF6C9",
  "deploymentBlock": 8,
  "periodLength": 64,
  "graceBlocks": 64,
  "maxMissed": 3,
  "slashBps": 1000,
  "reporterRewardBps": 2500,
  "repairRewardBps": 1000
}
"#;

    #[test]
    fn reads_the_documented_file_and_writes_it_back_identically() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("31337.json");
        fs::write(&path, EXAMPLE).expect("write example");
        let d = Deployment::load(&path).expect("load");
        assert_eq!(d.chain_id, 31337);
        assert_eq!(d.deployment_block, 8);
        assert_eq!(d.reporter_reward_bps, 2500);
        assert_eq!(d.compact_verifiers().len(), 2);
        let out = dir.path().join("sub/out.json");
        d.save(&out).expect("save");
        assert_eq!(fs::read_to_string(&out).expect("read back"), EXAMPLE);
        assert_eq!(Deployment::load(&out).expect("reload"), d);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec!["out.json"]);
    }

    #[test]
    fn a_file_without_verifiers_names_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.json");
        let old: String = EXAMPLE
            .lines()
            .filter(|l| !l.contains("compactVerifier"))
            .collect();
        fs::write(&path, old).expect("write");
        let d = Deployment::load(&path).expect("load");
        assert_eq!(d.compact_verifier_small, Address::ZERO);
        assert!(d.compact_verifiers().is_empty());
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.json");
        let e = Deployment::load(&missing).expect_err("missing file");
        assert!(e.to_string().contains("missing.json"), "{e}");
        let bad = dir.path().join("bad.json");
        fs::write(&bad, r#"{"chainId": 1}"#).expect("write");
        let e = Deployment::load(&bad).expect_err("incomplete file");
        assert!(
            e.to_string().contains("bad.json") && e.to_string().contains("marketplace"),
            "{e}"
        );
    }
}
