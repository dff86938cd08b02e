//! [`ApiError`]: a role's error as an HTTP answer, its status chosen by the error's variant
//! (docs/api.md, "Status codes"):
//!
//! | status | when |
//! |---|---|
//! | 400 | the call cannot succeed as it is: a malformed id, a missing path, zero slots… |
//! | 401 | the token is missing or wrong |
//! | 404 | the dataset, request or job is unknown |
//! | 409 | the chain's state forbids it now: the request ended, not yours, nothing to withdraw… |
//! | 503 | try again later: the chain is unreachable or the node is still catching up |
//! | 500 | the node's own trouble: its database or disk |

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use hoard_api::ErrorBody;
use hoard_chain::ChainError;
use hoard_dataset::DatasetError;

use crate::{
    audit::AuditError,
    ctx::NotSynced,
    download::{DownloadError, gateway::GatewayError},
    host::HostError,
    reader_cache::CacheError,
    renter::{PutError, StatusError, extend::ExtendError},
    store::StoreError,
    validator::ValidatorError,
};

/// An API error: a status and a message a person can act on.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl ApiError {
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, msg.into())
    }

    pub(crate) fn not_found(msg: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, msg.into())
    }

    fn with(status: StatusCode, e: &impl std::fmt::Display) -> Self {
        Self(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

/// A chain error's status: unreachable or congested → 503; the contract refused → 409
/// (its state forbids the call now); anything else (a node bug, a wrong deployment) → 500.
fn chain_status(e: &ChainError) -> StatusCode {
    if e.is_transient() {
        StatusCode::SERVICE_UNAVAILABLE
    } else if matches!(e, ChainError::Revert { .. }) {
        StatusCode::CONFLICT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

impl From<ChainError> for ApiError {
    fn from(e: ChainError) -> Self {
        Self::with(chain_status(&e), &e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::with(StatusCode::INTERNAL_SERVER_ERROR, &e)
    }
}

impl From<NotSynced> for ApiError {
    fn from(e: NotSynced) -> Self {
        Self::with(StatusCode::SERVICE_UNAVAILABLE, &e)
    }
}

impl From<PutError> for ApiError {
    fn from(e: PutError) -> Self {
        let status = match &e {
            PutError::NotFound(_)
            | PutError::NodeData { .. }
            | PutError::LinkToNodeData { .. }
            | PutError::Slots => StatusCode::BAD_REQUEST,
            PutError::Ended(_) => StatusCode::CONFLICT,
            PutError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            PutError::Chain(c) => chain_status(c),
            PutError::Dataset(_)
            | PutError::Compact(_)
            | PutError::Store(_)
            | PutError::Io { .. }
            | PutError::Join(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::with(status, &e)
    }
}

impl From<StatusError> for ApiError {
    fn from(e: StatusError) -> Self {
        match e {
            StatusError::Unknown(_) => Self::with(StatusCode::NOT_FOUND, &e),
            StatusError::NotSynced(n) => n.into(),
            StatusError::Chain(c) => c.into(),
            StatusError::Store(s) => s.into(),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Unknown(_) => Self::with(StatusCode::NOT_FOUND, &e),
            AuditError::NotSynced(n) => n.into(),
            AuditError::Chain(c) => c.into(),
            AuditError::Store(s) => s.into(),
        }
    }
}

impl From<ExtendError> for ApiError {
    fn from(e: ExtendError) -> Self {
        let status = match &e {
            ExtendError::Unknown(_) => StatusCode::NOT_FOUND,
            ExtendError::Duration(_) => StatusCode::BAD_REQUEST,
            ExtendError::NotRenter { .. }
            | ExtendError::Ended { .. }
            | ExtendError::Unaffordable { .. } => StatusCode::CONFLICT,
            ExtendError::NotSynced(_) => StatusCode::SERVICE_UNAVAILABLE,
            ExtendError::Chain(c) => chain_status(c),
            ExtendError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::with(status, &e)
    }
}

impl From<DownloadError> for ApiError {
    fn from(e: DownloadError) -> Self {
        let status = match &e {
            DownloadError::OutNotEmpty(_) => StatusCode::BAD_REQUEST,
            DownloadError::Unknown(_) => StatusCode::NOT_FOUND,
            DownloadError::NotSynced(_)
            | DownloadError::ShuttingDown
            | DownloadError::TooFewHosts { .. }
            | DownloadError::TooFewSlots { .. }
            | DownloadError::Fetch(_) => StatusCode::SERVICE_UNAVAILABLE,
            DownloadError::Path(DatasetError::NoSuchPath(_)) => StatusCode::NOT_FOUND,
            DownloadError::Path(_) => StatusCode::BAD_REQUEST,
            DownloadError::PartialNeedsDecoding(_) => StatusCode::SERVICE_UNAVAILABLE,
            DownloadError::Dataset(_)
            | DownloadError::Store(_)
            | DownloadError::Join(_)
            | DownloadError::Swarm(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::with(status, &e)
    }
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::BadPath(_) => Self::with(StatusCode::BAD_REQUEST, &e),
            GatewayError::NoSuchPath { .. } => Self::with(StatusCode::NOT_FOUND, &e),
            GatewayError::Download(d) => d.into(),
        }
    }
}

impl From<CacheError> for ApiError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Unknown(_) => Self::with(StatusCode::NOT_FOUND, &e),
            CacheError::Io { .. } => Self::with(StatusCode::INTERNAL_SERVER_ERROR, &e),
        }
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Chain(c) => c.into(),
            HostError::Store(s) => s.into(),
        }
    }
}

impl From<ValidatorError> for ApiError {
    fn from(e: ValidatorError) -> Self {
        match e {
            ValidatorError::NothingToWithdraw => Self::with(StatusCode::CONFLICT, &e),
            ValidatorError::Chain(c) => c.into(),
            ValidatorError::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use alloy::primitives::{Address, U256};
    use hoard_chain::{MarketplaceErrors, RequestState, RevertReason};
    use hoard_prover::{DatasetId, RequestId};

    use super::*;

    fn status(e: impl Into<ApiError>) -> u16 {
        e.into().0.as_u16()
    }

    #[test]
    fn each_variant_answers_its_status() {
        let id = DatasetId([1; 32]);
        let request = RequestId([2; 32]);
        let not_synced = NotSynced {
            synced: 1,
            target: 9,
        };
        let revert = ChainError::Revert {
            method: "withdrawRequest".into(),
            reason: RevertReason::Marketplace(Box::new(MarketplaceErrors::NothingToWithdraw(
                hoard_chain::bindings::Marketplace::NothingToWithdraw {},
            ))),
        };
        let unreachable = ChainError::Rpc {
            url: "http://127.0.0.1:1".parse().expect("url"),
            source: Box::new(alloy::transports::TransportErrorKind::backend_gone()),
        };
        let corrupt = StoreError::Corrupt {
            tree: "requests",
            message: "x".into(),
        };
        assert_eq!(status(PutError::NotFound(PathBuf::from("/x"))), 400);
        assert_eq!(status(PutError::Slots), 400);
        assert_eq!(
            status(PutError::NodeData {
                path: PathBuf::from("/a"),
                node_dir: PathBuf::from("/a/.hoard"),
                inside: false
            }),
            400
        );
        assert_eq!(status(StatusError::Unknown(id.to_string())), 404);
        assert_eq!(status(StatusError::NotSynced(not_synced)), 503);
        assert_eq!(status(AuditError::Unknown(id)), 404);
        assert_eq!(status(ExtendError::Unknown(id)), 404);
        assert_eq!(status(ExtendError::Duration("0".into())), 400);
        assert_eq!(
            status(ExtendError::Ended {
                request,
                state: RequestState::Finished
            }),
            409
        );
        assert_eq!(
            status(ExtendError::Unaffordable {
                request,
                seconds: 1,
                cost: U256::from(2),
                account: Address::ZERO,
                balance: U256::ZERO
            }),
            409
        );
        assert_eq!(status(DownloadError::OutNotEmpty(PathBuf::from("/x"))), 400);
        assert_eq!(status(DownloadError::Unknown(id)), 404);
        assert_eq!(
            status(DownloadError::Path(DatasetError::BadPath("../x".into()))),
            400
        );
        assert_eq!(
            status(DownloadError::Path(DatasetError::NoSuchPath("x".into()))),
            404
        );
        assert_eq!(status(ValidatorError::NothingToWithdraw), 409);
        assert_eq!(
            status(GatewayError::BadPath(DatasetError::BadPath("..".into()))),
            400
        );
        assert_eq!(
            status(GatewayError::NoSuchPath {
                dataset: id,
                path: "x".into()
            }),
            404
        );
        assert_eq!(status(CacheError::Unknown(id)), 404);
        assert_eq!(status(revert), 409);
        assert_eq!(status(unreachable), 503);
        assert_eq!(status(corrupt), 500);
    }
}
