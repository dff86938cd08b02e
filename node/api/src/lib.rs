//! The hoard node's REST API, `/api/v1`: the JSON types of every route and one typed
//! [`Client`], shared by the node (which serves the types), the `hoard` CLI, `hoard devnet`, the
//! benchmarks and the tests.
//!
//! ```text
//!  hoard CLI / devnet / tests ──Client──HTTP JSON──▶ node: axum routes (hoard-node::api)
//!                                                     │ types from here
//!                                                     ▼
//!                                              roles (host, renter, download, …)
//! ```
//!
//! docs/api.md lists every route with its status codes. Errors come back as
//! `{"error": "…"}` with a status that says whose fault it is ([`ClientError::status`]).

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod client;
mod types;

pub use client::{Client, ClientError, metric_value};
pub use types::{
    AuditOutcome, AuditResult, CacheCleared, CacheStatus, CachedDataset, DamagedSlot,
    DownloadRequest, ErrorBody, ExtendRequest, ExtendResult, FileEntry, HostHealth, HostSlotView,
    HostStatus, JobKind, JobStarted, JobStatus, Listing, NodeInfo, Offer, PutRequest, RefundResult,
    RequestStatus, RewardWithdrawal, Scheme, SlotStatus, ValidatorState, WithdrawResult,
};
