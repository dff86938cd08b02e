//! [`Params`]: the Marketplace deployment and the storage request the simulation runs, read from the
//! files that define them (compiled in with `include_str!`, so a change there changes the
//! simulation, and a change of their shape fails the build's tests instead of going unnoticed).
//!
//! | value | default run | devnet run |
//! |---|---|---|
//! | period, grace, maxMissed, slash, reporter and repair shares | `contracts/script/Deploy.s.sol` (`vm.envOr` defaults; `node/chain/src/devnet.rs` `DeploySettings::default` must agree) | the same, with period and grace = `hoard devnet --period-blocks` (`node/hoard/src/devnet.rs`) |
//! | seconds per block | 12 (Ethereum's slot time; docs/contracts.md assumes it) | `hoard devnet --block-time` |
//! | price, collateral, duration, proof probability, samples | `hoard put` defaults (`node/hoard/src/client.rs`) | the devnet story's request (`node/hoard/src/devnet/story.rs`) |

use thiserror::Error;

const DEPLOY_SOL: &str = include_str!("../../../contracts/script/Deploy.s.sol");
const CHAIN_DEVNET_RS: &str = include_str!("../../chain/src/devnet.rs");
const CLIENT_RS: &str = include_str!("../../hoard/src/client.rs");
const DEVNET_RS: &str = include_str!("../../hoard/src/devnet.rs");
const STORY_RS: &str = include_str!("../../hoard/src/devnet/story.rs");

/// Seconds per block on the default chain: Ethereum's 12-second slot, as docs/contracts.md assumes
/// ("64 blocks of 12 s"). No committed file states it as a number.
pub const MAINNET_BLOCK_SECONDS: u64 = 12;

/// Bytes of one slot the simulation prices: 1 GiB, as in docs/contracts.md's worked example. Every
/// amount is proportional to it, so it only sets the unit of the table.
pub const SLOT_BYTES: u128 = 1 << 30;

/// A value the simulation needs could not be read from the file that defines it.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParamError {
    /// The pattern that locates the value is gone: the file changed shape.
    #[error("{file}: cannot find {what}; update node/sim/src/params.rs to the file's new shape")]
    Missing {
        /// The file read.
        file: &'static str,
        /// What was looked for.
        what: String,
    },
    /// The text found is not a number the simulation can use.
    #[error("{file}: {what} is `{text}`, not a number")]
    NotANumber {
        /// The file read.
        file: &'static str,
        /// What was looked for.
        what: String,
        /// The text found.
        text: String,
    },
}

/// The Marketplace's immutable configuration (`MarketplaceConfig`, less the addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// Blocks per proof period (L).
    pub period_blocks: u64,
    /// Blocks after a period during which its missed proof may be marked (G).
    pub grace_blocks: u64,
    /// Marks after which a host is evicted.
    pub max_missed: u64,
    /// Share of the slot's collateral slashed per mark, basis points.
    pub slash_bps: u64,
    /// Reporter's share of each slash, basis points.
    pub reporter_reward_bps: u64,
    /// Share of the slot's collateral paid to the repairing host, basis points.
    pub repair_reward_bps: u64,
}

/// The storage request every simulated slot belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Seconds from the request to its end.
    pub duration_secs: u64,
    /// Token base units per byte per second.
    pub price_per_byte_per_second: u128,
    /// Token base units of collateral per byte.
    pub collateral_per_byte: u128,
    /// A proof is required in a period with probability 1/proofProbability.
    pub proof_probability: u64,
    /// Cells sampled per proof.
    pub samples: u32,
}

/// Everything one simulation run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Name shown in the table.
    pub name: &'static str,
    /// The Marketplace's configuration.
    pub deployment: Deployment,
    /// Seconds per block.
    pub block_seconds: u64,
    /// The request.
    pub request: Request,
}

impl Params {
    /// The default deployment (`Deploy.s.sol`) on a 12-second chain, with `hoard put`'s default
    /// request.
    pub fn defaults() -> Result<Self, ParamError> {
        Ok(Self {
            name: "default (Deploy.s.sol + hoard put)",
            deployment: deploy_script()?,
            block_seconds: MAINNET_BLOCK_SECONDS,
            request: put_defaults()?,
        })
    }

    /// What `hoard devnet` runs: the default deployment with its `--period-blocks` periods and
    /// grace, `--block-time` blocks, and the request its story puts.
    pub fn devnet() -> Result<Self, ParamError> {
        let file = "node/hoard/src/devnet.rs";
        let args = section(DEVNET_RS, file, "pub(crate) struct DevnetArgs {")?;
        let period = number(
            file,
            "--period-blocks",
            &clap_default(args, file, "period_blocks")?,
        )?;
        let block_seconds = number(
            file,
            "--block-time",
            &clap_default(args, file, "block_time")?,
        )?;
        // The devnet deploys `DeploySettings { period_length: plan.period_blocks, grace_blocks:
        // plan.period_blocks, ..DeploySettings::default() }`; check that it still does.
        let deploy = "period_length: plan.period_blocks,\n            grace_blocks: plan.period_blocks,\n            ..DeploySettings::default()";
        if !DEVNET_RS.contains(deploy) {
            return Err(ParamError::Missing {
                file,
                what: "the DeploySettings the devnet deploys".into(),
            });
        }
        let mut deployment = chain_deploy_settings()?;
        deployment.period_blocks = period;
        deployment.grace_blocks = period;
        Ok(Self {
            name: "devnet (hoard devnet)",
            deployment,
            block_seconds,
            request: story_request()?,
        })
    }

    /// Seconds per proof period.
    pub fn period_seconds(&self) -> u64 {
        self.deployment.period_blocks * self.block_seconds
    }

    /// P: one slot's pay per second.
    pub fn pay_per_second(&self) -> u128 {
        self.request.price_per_byte_per_second * SLOT_BYTES
    }

    /// C: one slot's collateral.
    pub fn collateral(&self) -> u128 {
        self.request.collateral_per_byte * SLOT_BYTES
    }

    /// S: the slash of one mark (rounded down, as `_slash`).
    pub fn slash(&self) -> u128 {
        self.collateral() * u128::from(self.deployment.slash_bps) / 10_000
    }

    /// W: the reporter's reward of one mark.
    pub fn reporter_reward(&self) -> u128 {
        self.slash() * u128::from(self.deployment.reporter_reward_bps) / 10_000
    }

    /// R: the repair reward.
    pub fn repair_reward(&self) -> u128 {
        self.collateral() * u128::from(self.deployment.repair_reward_bps) / 10_000
    }
}

/// `Deploy.s.sol`'s defaults: `vm.envOr("NAME", uint256(VALUE))`.
pub fn deploy_script() -> Result<Deployment, ParamError> {
    let file = "contracts/script/Deploy.s.sol";
    let env = |name: &str| -> Result<u64, ParamError> {
        let what = format!("vm.envOr(\"{name}\", uint256(…))");
        let start = format!("vm.envOr(\"{name}\", uint256(");
        let text = after(DEPLOY_SOL, file, &start, &what)?;
        let end = text.find(')').ok_or_else(|| missing(file, &what))?;
        number(file, &what, &text[..end])
    };
    Ok(Deployment {
        period_blocks: env("PERIOD_LENGTH")?,
        grace_blocks: env("GRACE_BLOCKS")?,
        max_missed: env("MAX_MISSED")?,
        slash_bps: env("SLASH_BPS")?,
        reporter_reward_bps: env("REPORTER_REWARD_BPS")?,
        repair_reward_bps: env("REPAIR_REWARD_BPS")?,
    })
}

/// `DeploySettings::default()` in the node's chain crate (what `hoard devnet` deploys).
pub fn chain_deploy_settings() -> Result<Deployment, ParamError> {
    let file = "node/chain/src/devnet.rs";
    let body = section(CHAIN_DEVNET_RS, file, "impl Default for DeploySettings {")?;
    let field = |name: &str| -> Result<u64, ParamError> {
        let what = format!("DeploySettings::default().{name}");
        let text = after(body, file, &format!("{name}: "), &what)?;
        let end = text.find(',').ok_or_else(|| missing(file, &what))?;
        number(file, &what, &text[..end])
    };
    Ok(Deployment {
        period_blocks: field("period_length")?,
        grace_blocks: field("grace_blocks")?,
        max_missed: field("max_missed")?,
        slash_bps: field("slash_bps")?,
        reporter_reward_bps: field("reporter_reward_bps")?,
        repair_reward_bps: field("repair_reward_bps")?,
    })
}

/// `hoard put`'s defaults (`PutArgs`).
pub fn put_defaults() -> Result<Request, ParamError> {
    let file = "node/hoard/src/client.rs";
    let args = section(CLIENT_RS, file, "pub(crate) struct PutArgs {")?;
    let get = |field: &str| -> Result<u128, ParamError> {
        number(
            file,
            &format!("--{field}"),
            &clap_default(args, file, field)?,
        )
    };
    Ok(Request {
        duration_secs: to_u64(file, "--duration", get("duration")?)?,
        price_per_byte_per_second: get("price")?,
        collateral_per_byte: get("collateral")?,
        proof_probability: to_u64(file, "--proof-probability", get("proof_probability")?)?,
        samples: to_u32(file, "--samples", get("samples")?)?,
    })
}

/// The request `hoard devnet`'s story puts (its constants, and the literal proof probability).
pub fn story_request() -> Result<Request, ParamError> {
    let file = "node/hoard/src/devnet/story.rs";
    let put = section(STORY_RS, file, "let req = PutRequest {")?;
    let what = "proof_probability in the story's PutRequest";
    let text = after(put, file, "proof_probability: ", what)?;
    let end = text.find(',').ok_or_else(|| missing(file, what))?;
    let proof_probability = number(file, what, &text[..end])?;
    Ok(Request {
        duration_secs: to_u64(file, "DURATION", rust_const(STORY_RS, file, "DURATION")?)?,
        price_per_byte_per_second: rust_const(STORY_RS, file, "PRICE")?,
        collateral_per_byte: rust_const(STORY_RS, file, "COLLATERAL")?,
        proof_probability,
        samples: to_u32(file, "SAMPLES", rust_const(STORY_RS, file, "SAMPLES")?)?,
    })
}

// ---------------------------------------------------------------------- reading source text

fn missing(file: &'static str, what: &str) -> ParamError {
    ParamError::Missing {
        file,
        what: what.to_string(),
    }
}

/// The text after the first `pattern`.
fn after<'a>(
    text: &'a str,
    file: &'static str,
    pattern: &str,
    what: &str,
) -> Result<&'a str, ParamError> {
    text.find(pattern)
        .map(|i| &text[i + pattern.len()..])
        .ok_or_else(|| missing(file, what))
}

/// The block that starts with `opening` (up to its matching closing brace).
fn section<'a>(text: &'a str, file: &'static str, opening: &str) -> Result<&'a str, ParamError> {
    let body = after(text, file, opening, opening)?;
    let mut depth = 1usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(&body[..i]);
                }
            }
            _ => {}
        }
    }
    Err(missing(file, &format!("the end of `{opening}`")))
}

/// The clap default of field `field` in a derive(Args) struct body: `default_value_t = N` or
/// `default_value = "N"` in the `#[arg(…)]` right above `field: Type,`.
fn clap_default(args: &str, file: &'static str, field: &str) -> Result<String, ParamError> {
    let what = format!("the default of `{field}`");
    let at = args
        .find(&format!("\n    {field}: "))
        .ok_or_else(|| missing(file, &what))?;
    let attr_start = args[..at]
        .rfind("#[arg(")
        .ok_or_else(|| missing(file, &what))?;
    let attr = &args[attr_start..at];
    if let Some(rest) = attr.split("default_value_t = ").nth(1) {
        let end = rest.find([',', ')']).ok_or_else(|| missing(file, &what))?;
        return Ok(rest[..end].trim().to_string());
    }
    if let Some(rest) = attr.split("default_value = \"").nth(1) {
        let end = rest.find('"').ok_or_else(|| missing(file, &what))?;
        return Ok(rest[..end].to_string());
    }
    Err(missing(file, &what))
}

/// `const NAME: Type = EXPR;` where EXPR is a product of integer literals and other such consts.
fn rust_const(text: &str, file: &'static str, name: &str) -> Result<u128, ParamError> {
    let what = format!("const {name}");
    let rest = after(text, file, &format!("const {name}: "), &what)?;
    let eq = rest.find('=').ok_or_else(|| missing(file, &what))?;
    let end = rest.find(';').ok_or_else(|| missing(file, &what))?;
    if end < eq {
        return Err(missing(file, &what));
    }
    let mut product: u128 = 1;
    for factor in rest[eq + 1..end].split('*') {
        let factor = factor.trim();
        let value = if factor.starts_with(|c: char| c.is_ascii_digit()) {
            number(file, &what, factor)?
        } else {
            rust_const(text, file, factor)?
        };
        product = product
            .checked_mul(value)
            .ok_or_else(|| ParamError::NotANumber {
                file,
                what: what.clone(),
                text: rest[eq + 1..end].trim().to_string(),
            })?;
    }
    Ok(product)
}

fn number<T: std::str::FromStr>(
    file: &'static str,
    what: &str,
    text: &str,
) -> Result<T, ParamError> {
    text.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| ParamError::NotANumber {
            file,
            what: what.to_string(),
            text: text.trim().to_string(),
        })
}

fn to_u64(file: &'static str, what: &str, v: u128) -> Result<u64, ParamError> {
    u64::try_from(v).map_err(|_| ParamError::NotANumber {
        file,
        what: what.to_string(),
        text: v.to_string(),
    })
}

fn to_u32(file: &'static str, what: &str, v: u128) -> Result<u32, ParamError> {
    u32::try_from(v).map_err(|_| ParamError::NotANumber {
        file,
        what: what.to_string(),
        text: v.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_script_and_chain_defaults_agree() {
        assert_eq!(deploy_script(), chain_deploy_settings());
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let p = Params::defaults().expect("the committed files parse");
        assert_eq!(
            p.deployment,
            Deployment {
                period_blocks: 64,
                grace_blocks: 64,
                max_missed: 3,
                slash_bps: 1000,
                reporter_reward_bps: 2500,
                repair_reward_bps: 1000,
            }
        );
        assert_eq!(
            p.request,
            Request {
                duration_secs: 2_592_000,
                price_per_byte_per_second: 1,
                collateral_per_byte: 1000,
                proof_probability: 1,
                samples: 16,
            }
        );
        assert_eq!(p.period_seconds(), 768);
    }

    #[test]
    fn devnet_is_the_story_on_short_periods() {
        let p = Params::devnet().expect("the committed files parse");
        assert_eq!(
            (p.deployment.period_blocks, p.deployment.grace_blocks),
            (8, 8)
        );
        assert_eq!(p.block_seconds, 1);
        assert_eq!(p.request.price_per_byte_per_second, 1_000_000_000);
        assert_eq!(p.request.collateral_per_byte, 100_000_000_000);
        assert_eq!(p.request.duration_secs, 86_400);
        assert_eq!((p.request.proof_probability, p.request.samples), (1, 8));
    }

    #[test]
    fn const_products_resolve_names() {
        let src = "const A: u64 = 1_000;\nconst B: u64 = 3 * A * 2;\n";
        assert_eq!(rust_const(src, "x", "B"), Ok(6_000));
    }

    #[test]
    fn a_changed_file_names_what_is_missing() {
        let err = clap_default("    #[arg(long)]\n    other: u8,", "f", "samples");
        assert!(matches!(err, Err(ParamError::Missing { .. })));
    }

    #[test]
    fn money_follows_the_contract() {
        let p = Params::defaults().expect("the committed files parse");
        assert_eq!(p.collateral(), 1000 << 30);
        assert_eq!(p.slash(), 100 << 30);
        assert_eq!(p.reporter_reward(), 25 << 30);
        assert_eq!(p.repair_reward(), 100 << 30);
    }
}
