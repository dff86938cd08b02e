//! The hoard node: one process with libp2p networking, the chain client, the local store, the
//! host, client and validator roles, and an HTTP server with the REST API and `/metrics`.
//!
//! ```text
//!             ┌──────────── Node::start ────────────┐
//!  chain ◀──▶ │ sync ──events/head──▶ host ─▶ prove │ ◀── REST /api/v1 (api) ◀── hoard CLI
//! (alloy)     │   │                  validator      │
//!             │   ▼                  renter, jobs   │
//!             │ store (sled + slot files)           │
//!  peers ◀──▶ │ p2p actor ──inbound──▶ serve        │ ──▶ /metrics ──▶ Prometheus
//! (libp2p)    │          ◀─requests── fetch/download│
//!             └─────────────────────────────────────┘
//! ```
//!
//! - `sync` polls the head, follows Marketplace events from a saved cursor and broadcasts them.
//! - `host` picks and fills slots (`fetch`, `repair`); `prove` answers each period's challenges on
//!   the blocking pool and withdraws at the end.
//! - `renter` packs and posts datasets and serves them; `extend` buys more time for one;
//!   `download` fetches them back; `audit` spot-checks hosts off chain; `validator` marks missed
//!   proofs.
//! - Every task shares one `Ctx` and stops on its cancellation token.

mod announce;
mod api;
mod audit;
pub mod config;
mod download;
mod extend;
mod fetch;
mod host;
mod jobs;
pub mod metrics;
mod node;
mod prove;
mod renter;
mod repair;
mod serve;
pub mod store;
mod sync;
mod validator;

pub use api::{DownloadRequest, HostSlotView, HostStatus, NodeInfo, ValidatorState};
pub use audit::AuditResult;
pub use config::{NodeConfig, Offer, Overrides, Secret};
pub use extend::{ExtendRequest, ExtendResult};
pub use jobs::JobStatus;
pub use node::Node;
pub use renter::{PutRequest, RequestStatus, SlotStatus};
