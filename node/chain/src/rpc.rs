//! [`Rpc`]: the one place every provider call goes through. It bounds each call with a timeout
//! (alloy's HTTP transport has none), counts calls and errors, turns alloy's errors into
//! [`ChainError`]s, and retries transient failures where the caller asks for it.

use std::{future::Future, time::Duration};

use alloy::{
    contract::Error as ContractError,
    providers::DynProvider,
    transports::{TransportError, TransportErrorKind},
};
use url::Url;

use crate::{error::ChainError, metrics::ChainMetrics};

/// Longest a single RPC call may take before it counts as a (transient) transport failure.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts of a call retried on transient errors (see [`Rpc::retry`]).
pub(crate) const RETRY_ATTEMPTS: u32 = 4;

/// First pause between retries; doubles after each attempt.
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// A provider with its endpoint and metrics.
#[derive(Clone)]
pub(crate) struct Rpc {
    pub(crate) provider: DynProvider,
    pub(crate) url: Url,
    pub(crate) metrics: ChainMetrics,
}

impl std::fmt::Debug for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rpc")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Errors alloy hands back from provider and contract calls.
pub(crate) trait RpcFailure {
    fn into_chain_error(self, url: &Url, method: &str) -> ChainError;
}

impl RpcFailure for TransportError {
    fn into_chain_error(self, url: &Url, method: &str) -> ChainError {
        ChainError::from_transport(url, method, self)
    }
}

impl RpcFailure for ContractError {
    fn into_chain_error(self, url: &Url, method: &str) -> ChainError {
        ChainError::from_contract(url, method, self)
    }
}

impl RpcFailure for ChainError {
    fn into_chain_error(self, _url: &Url, _method: &str) -> ChainError {
        self
    }
}

impl Rpc {
    /// Runs one provider call made for `method` (a contract method or an RPC method name; it
    /// appears in errors): bounded by [`CALL_TIMEOUT`], counted, errors classified.
    pub(crate) async fn call<T, E: RpcFailure>(
        &self,
        method: &str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, ChainError> {
        let result = match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(result) => result.map_err(|e| e.into_chain_error(&self.url, method)),
            Err(_) => Err(ChainError::Rpc {
                url: self.url.clone(),
                source: Box::new(TransportErrorKind::custom_str(&format!(
                    "{method}: no answer within {} s",
                    CALL_TIMEOUT.as_secs()
                ))),
            }),
        };
        self.metrics.observe_rpc(&result);
        if let Err(e) = &result
            && !matches!(e, ChainError::Revert { .. })
        {
            tracing::debug!(method, err = %e, "rpc call failed");
        }
        result
    }

    /// Like [`Rpc::call`], but makes the call again (up to [`RETRY_ATTEMPTS`] times, with
    /// exponential backoff) while it fails transiently. Only for idempotent calls.
    pub(crate) async fn retry<T, E: RpcFailure, F: Future<Output = Result<T, E>>>(
        &self,
        method: &str,
        mut make: impl FnMut() -> F,
    ) -> Result<T, ChainError> {
        let mut pause = RETRY_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.call(method, make()).await {
                Err(e) if e.is_transient() && attempt < RETRY_ATTEMPTS => {
                    tracing::warn!(method, attempt, err = %e, "transient RPC failure; retrying");
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}
