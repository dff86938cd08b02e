//! hoard-sim: a market of storage hosts played period by period under the Marketplace's real rules
//! and parameters, with no chain, to show which host strategies pay.
//!
//! ```text
//!  committed files ──include_str!──▶ Params (deployment + request; params.rs says which file)
//!                                        │
//!  Strategy::all ─▶ run(Config: hosts × requests, cost share, seed) ─▶ per tenure, period by period:
//!                     proof required? (1/proofProbability) ─▶ passes? (strategy: (1 − f)^s, …)
//!                     ─▶ marked if the request still runs after the period ─▶ evicted at maxMissed
//!                   ─▶ money as the contract pays it (P·T + C − marks·S, or nothing if evicted;
//!                      W to the reporter, C − R for a repair) − storage cost
//!                   ─▶ Row per strategy: mean, worst and best profit ─▶ table (markdown)
//! ```
//!
//! `cargo run -p hoard-sim --release` prints the tables docs/contracts.md shows.

mod params;
mod sim;
mod strategy;
mod table;

pub use params::{
    Deployment, MAINNET_BLOCK_SECONDS, ParamError, Params, Request, SLOT_BYTES,
    chain_deploy_settings, deploy_script, put_defaults, story_request,
};
pub use sim::{Config, Row, run};
pub use strategy::Strategy;
pub use table::{TOKEN, markdown};
