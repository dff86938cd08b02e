//! Extending a dataset's storage: the renter buys more time for its running request
//! (`extendRequest`), paying `price · slotSize · slots · seconds` into escrow up front.
//!
//! ```text
//!  POST /api/v1/datasets/{id}/extend ─▶ resolve id (dataset → this account's running request
//!      that ends last; or a request id) ─▶ check: renter? running? ≤ 100 years? balance?
//!      ─▶ Chain::extend_request (approve exactly, send) ─▶ store ends_at ─▶ ExtendResult
//!  sync: RequestExtended ─▶ every node's store ends_at (hosts prove until then)
//! ```

use alloy::primitives::{Address, U256};
use hoard_api::ExtendResult;
use hoard_chain::{ChainError, RequestState};
use hoard_prover::{DatasetId, RequestId};

use crate::{
    ctx::{Ctx, NotSynced},
    store::StoreError,
};

/// The contract's longest duration (`MAX_DURATION`, 100 years of 365 days).
const MAX_DURATION: u64 = 100 * 365 * 24 * 3600;

/// Why an extension was not made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExtendError {
    /// Neither a dataset nor a request this node knows.
    #[error("no storage request known for {0} (check the id; is the node synced?)")]
    Unknown(DatasetId),
    /// Somebody else's request.
    #[error(
        "{request} was posted by {renter}, not by this node's account {account}: only its renter \
         can extend it (use the renter's node)"
    )]
    NotRenter {
        /// The request.
        request: RequestId,
        /// Its renter.
        renter: Address,
        /// This node's account.
        account: Address,
    },
    /// Nothing left to extend.
    #[error(
        "request {request} has ended ({}); only a running request can be extended — store the \
         dataset again with `hoard put`",
        .state.to_string().to_lowercase()
    )]
    Ended {
        /// The request (the one that ended last).
        request: RequestId,
        /// Its state.
        state: RequestState,
    },
    /// Zero seconds, or past the contract's limit.
    #[error("{0}")]
    Duration(String),
    /// The account cannot pay for it.
    #[error(
        "extending {request} by {seconds} s costs {cost} token base units, but {account} holds \
         {balance}: fund the account first"
    )]
    Unaffordable {
        /// The request.
        request: RequestId,
        /// Seconds asked for.
        seconds: u64,
        /// What it costs.
        cost: U256,
        /// This node's account.
        account: Address,
        /// Its token balance.
        balance: U256,
    },
    /// The chain refused or could not be reached.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    NotSynced(#[from] NotSynced),
}

/// Extends the running request behind `id` (a dataset id or a request id) by `seconds`.
///
/// For a dataset id, the request is this account's running request for it that ends last.
pub(crate) async fn extend(
    ctx: &Ctx,
    id: [u8; 32],
    seconds: u64,
) -> Result<ExtendResult, ExtendError> {
    ctx.wait_synced(std::time::Duration::from_secs(60)).await?;
    let mut requests = ctx.store.requests_for_manifest(&DatasetId(id))?;
    if requests.is_empty()
        && let Some(r) = ctx.store.request(&RequestId(id))?
    {
        requests.push(r);
    }
    let account = ctx.address();
    let Some(first) = requests.first() else {
        return Err(ExtendError::Unknown(DatasetId(id)));
    };
    let (first_id, first_renter) = (first.id, first.renter);
    requests.retain(|r| r.renter == account);
    if requests.is_empty() {
        return Err(ExtendError::NotRenter {
            request: first_id,
            renter: first_renter,
            account,
        });
    }
    requests.sort_by_key(|r| std::cmp::Reverse(r.ends_at));
    let mut chosen = None;
    let mut ended = None;
    for r in requests {
        let state = ctx.chain.request_state(r.id).await?;
        if matches!(state, RequestState::New | RequestState::Started) {
            chosen = Some(r);
            break;
        }
        ended.get_or_insert(ExtendError::Ended {
            request: r.id,
            state,
        });
    }
    let Some(mut record) = chosen else {
        return Err(ended.unwrap_or(ExtendError::Unknown(DatasetId(id))));
    };
    let request = record.id;

    if seconds == 0 {
        return Err(ExtendError::Duration(
            "--duration must be at least 1 second".into(),
        ));
    }
    let info = ctx.chain.get_request(request).await?;
    let max_extra = MAX_DURATION.saturating_sub(info.params.duration);
    if seconds > max_extra {
        return Err(ExtendError::Duration(format!(
            "a request may last at most 100 years in all: {request} runs {} s, so it can be \
             extended by at most {max_extra} s",
            info.params.duration
        )));
    }
    let cost = ctx.chain.extension_cost(request, seconds).await?;
    let balance = ctx.chain.token_balance(account).await?;
    if balance < cost {
        return Err(ExtendError::Unaffordable {
            request,
            seconds,
            cost,
            account,
            balance,
        });
    }

    let (extension, tx) = ctx.chain.extend_request(request, seconds).await?;
    tracing::info!(
        request = %request.short(),
        seconds,
        ends_at = extension.ends_at,
        payment = %extension.payment,
        tx = %tx.hash,
        "request extended"
    );
    // The sync task writes the same when it sees the event; doing it now lets `hoard status`
    // and the proof scheduler see the new end at once.
    if record.ends_at < extension.ends_at {
        record.ends_at = extension.ends_at;
        ctx.store.put_request(&record)?;
        ctx.store.flush().await?;
    }
    Ok(ExtendResult {
        dataset: record.manifest_id,
        request,
        extra_seconds: seconds,
        previous_ends_at: info.endsAt,
        ends_at: extension.ends_at,
        payment: extension.payment,
        tx: tx.hash,
    })
}
