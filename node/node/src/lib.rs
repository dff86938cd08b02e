//! The hoard node: one process with libp2p networking, the chain client, the local store, the
//! host, renter, download and validator roles, and an HTTP server with the REST API and
//! `/metrics`.
//!
//! ```text
//!             ┌──────────────────────── Node::start ─────────────────────────┐
//!  chain ◀──▶ │ sync ──head, events──▶ host/ (fill, prove, payout, repair)   │ ◀── REST /api/v1
//! (alloy)     │   │                    validator, renter/ (put, extend)      │     (api/, via
//!             │   ▼                    download/ (get: holders, fetch)       │      each role's
//!             │ store (sled + slot files)        audit                       │      handle)
//!  peers ◀──▶ │ p2p actor ──inbound──▶ serve ◀── local_slots                 │ ──▶ /metrics
//! (libp2p)    └──────────────────────────────────────────────────────────────┘
//! ```
//!
//! Layers, each using only those below it: `node` (wiring) → `api` → the roles (`host`,
//! `renter`, `download`, `validator`, `audit`) → the services (`sync`, `serve`, `announce`) →
//! `ctx` (what every role shares: config, store, chain, net, metrics, token, cancellation, head
//! and events) → `local_slots`, `reader_cache`, `jobs`, `store`, `config`, `metrics`.
//!
//! - `sync` polls the head, follows Marketplace events from a saved cursor and broadcasts them.
//! - `host` picks and fills slots, proves them every period (`host/prove.rs`: where a proof is
//!   built and sent; `host/compact.rs`: the compact scheme's batch proofs), withdraws at the end;
//!   it owns its offer and its fills in flight and is reached through `HostHandle`.
//! - `compact` is the compact scheme's slot data, shared by the renter (the Poseidon pack stage)
//!   and the host (the fill's check, the kept Poseidon block roots).
//! - `renter` packs and posts datasets and serves them; `download` fetches them back
//!   (`download/fetch.rs`: where every downloaded block is checked, with
//!   `BlockWithPath::verify`); `audit` spot-checks hosts off chain; `validator` marks missed
//!   proofs.
//! - Every task belongs to a role's `TaskTracker` and stops on the node's cancellation token;
//!   `Node::stop` waits for them.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod announce;
mod api;
mod audit;
mod compact;
pub mod config;
mod ctx;
mod download;
mod host;
mod jobs;
mod local_slots;
pub mod metrics;
mod node;
mod reader_cache;
mod renter;
mod serve;
pub mod store;
mod sync;
mod validator;

pub use config::{CompactConfig, ConfigError, NodeConfig, Offer, Overrides, Secret};
pub use ctx::NotSynced;
pub use host::CompactKeyError;
pub use node::{Node, NodeError};
