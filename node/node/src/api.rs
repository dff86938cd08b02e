//! The REST API (`/api/v1`, JSON) and `/metrics`. Bound to localhost by default; calls that
//! change anything need `Authorization: Bearer <token>` (the token is in `<data_dir>/api-token`).
//! Every route is listed in docs/api.md.

use std::{path::PathBuf, sync::Arc};

use alloy::primitives::{Address, B256, U256};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    config::Offer,
    extend::{ExtendError, ExtendRequest, ExtendResult},
    node::Ctx,
    renter::PutRequest,
    store::{HostSlotState, ProofOutcome},
};

pub(crate) async fn serve(ctx: Arc<Ctx>, listener: tokio::net::TcpListener) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/node", get(node_info))
        .route("/api/v1/host", get(host_status))
        .route("/api/v1/host/offer", put(set_offer))
        .route("/api/v1/host/withdraw", post(host_withdraw))
        .route("/api/v1/datasets", post(put_dataset))
        .route("/api/v1/datasets/{id}", get(dataset_status))
        .route("/api/v1/datasets/{id}/audit", post(audit))
        .route("/api/v1/datasets/{id}/extend", post(extend))
        .route("/api/v1/downloads", post(download))
        .route("/api/v1/jobs/{id}", get(job))
        .route("/api/v1/requests/{id}/withdraw", post(request_withdraw))
        .route(
            "/api/v1/validator",
            get(validator_status).put(set_validator),
        )
        .route("/api/v1/validator/withdraw", post(validator_withdraw))
        .with_state(ctx.clone());
    let cancel = ctx.cancel.clone();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
    {
        tracing::error!(err = %e, "API server stopped");
    }
}

/// An API error: a status and a message a person can act on.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl<E: std::fmt::Display> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn authorize(ctx: &Ctx, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time enough: the token is random and compared whole.
    if given == Some(ctx.token.expose()) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "this call needs the API token (Authorization: Bearer …, from <data_dir>/api-token)"
                .into(),
        ))
    }
}

fn parse_id(s: &str) -> Result<B256, ApiError> {
    s.parse::<B256>()
        .map_err(|_| bad(format!("{s:?} is not a 32-byte hex id")))
}

async fn metrics(State(ctx): State<Arc<Ctx>>) -> Response {
    match prometheus::TextEncoder::new().encode_to_string(&ctx.registry.gather()) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /api/v1/node`.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeInfo {
    /// hoard version.
    pub version: String,
    /// libp2p peer id.
    pub peer_id: String,
    /// Addresses libp2p listens on.
    pub listen: Vec<String>,
    /// Chain account.
    pub address: Address,
    /// Chain id.
    pub chain_id: u64,
    /// Marketplace contract.
    pub marketplace: Address,
    /// Head block.
    pub block: u64,
    /// Current period.
    pub period: u64,
    /// Host role on.
    pub host: bool,
    /// Validator role on.
    pub validator: bool,
    /// Connected peers.
    pub peers: usize,
}

async fn node_info(State(ctx): State<Arc<Ctx>>) -> ApiResult<NodeInfo> {
    let head = ctx.head();
    let validator = *ctx.validator_on.borrow();
    let listen = ctx
        .net
        .listen_addrs()
        .await
        .iter()
        .map(|a| a.to_string())
        .collect();
    let peers = ctx.net.connected_peers().await;
    Ok(Json(NodeInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        peer_id: ctx.net.local_peer_id().to_string(),
        listen,
        address: ctx.address(),
        chain_id: ctx.chain.deployment().chain_id,
        marketplace: ctx.chain.deployment().marketplace,
        block: head.block,
        period: head.period,
        host: ctx.config.host.enabled,
        validator,
        peers,
    }))
}

/// One hosted slot in `GET /api/v1/host`.
#[derive(Debug, Serialize, Deserialize)]
pub struct HostSlotView {
    /// Slot id.
    pub slot_id: B256,
    /// Request.
    pub request_id: B256,
    /// Index.
    pub index: u16,
    /// `Filling`, `Filled`, `Done`, `Evicted`.
    pub state: String,
    /// Period of the fill.
    pub filled_period: u64,
    /// Proofs mined.
    pub proofs_submitted: usize,
    /// Proofs that failed.
    pub proofs_failed: usize,
    /// Proofs marked missing on chain.
    pub missed_proofs: u64,
    /// Pay earned so far (token base units).
    pub earned: U256,
    /// Collateral that would come back (token base units): at risk until the end.
    pub collateral: U256,
}

/// `GET /api/v1/host`.
#[derive(Debug, Serialize, Deserialize)]
pub struct HostStatus {
    /// Host role on.
    pub enabled: bool,
    /// The offer.
    pub offer: Offer,
    /// Slots.
    pub slots: Vec<HostSlotView>,
    /// Sum of `collateral` over held slots.
    pub collateral_at_risk: U256,
    /// Sum of `earned` over held slots.
    pub earned: U256,
    /// Token balance.
    pub balance: U256,
}

async fn host_status(State(ctx): State<Arc<Ctx>>) -> ApiResult<HostStatus> {
    let mut slots = Vec::new();
    let (mut at_risk, mut earned_total) = (U256::ZERO, U256::ZERO);
    for s in ctx.store.host_slots()? {
        let proofs = ctx.store.proofs_of(&s.slot_id)?;
        let submitted = proofs
            .values()
            .filter(|p| matches!(p, ProofOutcome::Submitted { .. }))
            .count();
        let (mut earned, mut collateral, mut missed) = (U256::ZERO, U256::ZERO, 0);
        if s.state == HostSlotState::Filled {
            if let Ok((e, c)) = ctx.chain.slot_payout(s.slot_id).await {
                earned = e;
                collateral = c;
            }
            missed = ctx
                .chain
                .get_slot(s.slot_id)
                .await
                .map(|i| u64::from(i.missedProofs))
                .unwrap_or(0);
            at_risk += collateral;
            earned_total += earned;
        }
        slots.push(HostSlotView {
            slot_id: s.slot_id,
            request_id: s.request_id,
            index: s.index,
            state: format!("{:?}", s.state),
            filled_period: s.filled_period,
            proofs_submitted: submitted,
            proofs_failed: proofs.len() - submitted,
            missed_proofs: missed,
            earned,
            collateral,
        });
    }
    Ok(Json(HostStatus {
        enabled: ctx.config.host.enabled,
        offer: ctx.offer(),
        slots,
        collateral_at_risk: at_risk,
        earned: earned_total,
        balance: ctx.chain.token_balance(ctx.address()).await?,
    }))
}

async fn set_offer(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Json(offer): Json<Offer>,
) -> ApiResult<Offer> {
    authorize(&ctx, &headers)?;
    ctx.set_offer(offer.clone())?;
    Ok(Json(offer))
}

async fn host_withdraw(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
) -> ApiResult<serde_json::Value> {
    authorize(&ctx, &headers)?;
    crate::prove::withdraw_ended(&ctx).await;
    Ok(Json(json!({ "ok": true })))
}

async fn put_dataset(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Json(req): Json<PutRequest>,
) -> ApiResult<serde_json::Value> {
    authorize(&ctx, &headers)?;
    if req.data_slots == 0 || req.parity_slots == 0 {
        return Err(bad(
            "--data-slots and --parity-slots must both be at least 1",
        ));
    }
    let id = ctx.jobs.start("put");
    let job = id.clone();
    let ctx2 = ctx.clone();
    tokio::spawn(async move {
        let r = crate::renter::put(ctx2.clone(), job.clone(), req).await;
        if let Err(e) = &r {
            tracing::error!(err = %format!("{e:#}"), "put failed");
        }
        ctx2.jobs.finish(&job, r.map_err(|e| format!("{e:#}")));
    });
    Ok(Json(json!({ "job": id })))
}

async fn dataset_status(
    State(ctx): State<Arc<Ctx>>,
    Path(id): Path<String>,
) -> ApiResult<Vec<crate::renter::RequestStatus>> {
    let id = parse_id(&id)?;
    crate::renter::status(&ctx, id)
        .await
        .map(Json)
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, format!("{e:#}")))
}

async fn audit(
    State(ctx): State<Arc<Ctx>>,
    Path(id): Path<String>,
) -> ApiResult<Vec<crate::audit::AuditResult>> {
    let id = parse_id(&id)?;
    crate::audit::audit(&ctx, id)
        .await
        .map(Json)
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, format!("{e:#}")))
}

/// `POST /api/v1/datasets/{id}/extend`: `{id}` is a dataset id or a request id.
async fn extend(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<ExtendRequest>,
) -> ApiResult<ExtendResult> {
    authorize(&ctx, &headers)?;
    let id = parse_id(&id)?;
    crate::extend::extend(&ctx, id, req.duration)
        .await
        .map(Json)
        .map_err(|e| {
            let status = match &e {
                ExtendError::Unknown(_) => StatusCode::NOT_FOUND,
                ExtendError::Store(_) | ExtendError::NotSynced(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
                ExtendError::Chain(c) if c.is_transient() => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError(status, e.to_string())
        })
}

/// `POST /api/v1/downloads`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DownloadRequest {
    /// Dataset id.
    pub dataset: B256,
    /// Where to write it (on the node's machine).
    pub out: PathBuf,
}

async fn download(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Json(req): Json<DownloadRequest>,
) -> ApiResult<serde_json::Value> {
    authorize(&ctx, &headers)?;
    if req.out.exists()
        && std::fs::read_dir(&req.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(bad(format!(
            "{} exists and is not an empty folder",
            req.out.display()
        )));
    }
    let id = ctx.jobs.start("get");
    let job = id.clone();
    let ctx2 = ctx.clone();
    tokio::spawn(async move {
        let r = crate::download::get(ctx2.clone(), job.clone(), req.dataset, req.out).await;
        match r {
            Ok(u) => {
                ctx2.jobs.set_result(
                    &job,
                    json!({ "out": u.out, "size": u.size, "decoded_stripes": u.decoded_stripes }),
                );
                ctx2.jobs.finish(&job, Ok(()));
            }
            Err(e) => {
                tracing::error!(err = %format!("{e:#}"), "get failed");
                ctx2.jobs.finish(&job, Err(format!("{e:#}")));
            }
        }
    });
    Ok(Json(json!({ "job": id })))
}

async fn job(
    State(ctx): State<Arc<Ctx>>,
    Path(id): Path<String>,
) -> ApiResult<crate::jobs::JobStatus> {
    ctx.jobs
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id}")))
}

async fn request_withdraw(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<serde_json::Value> {
    authorize(&ctx, &headers)?;
    let id = parse_id(&id)?;
    let refund = ctx.chain.renter_refund(id).await.unwrap_or_default();
    let tx = ctx
        .chain
        .withdraw_request(id)
        .await
        .map_err(|e| bad(e.to_string()))?;
    Ok(Json(json!({ "refund": refund.to_string(), "tx": tx.hash })))
}

/// `GET/PUT /api/v1/validator`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ValidatorState {
    /// Whether the validator runs.
    pub enabled: bool,
    /// Missed proofs marked by this node since it started.
    #[serde(default)]
    pub marks: u64,
}

async fn validator_withdraw(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
) -> ApiResult<serde_json::Value> {
    authorize(&ctx, &headers)?;
    let reward = ctx.chain.reward_of(ctx.address()).await?;
    if reward.is_zero() {
        return Err(bad("no reporter rewards to withdraw"));
    }
    let tx = ctx
        .chain
        .withdraw_reward()
        .await
        .map_err(|e| bad(e.to_string()))?;
    Ok(Json(json!({ "amount": reward.to_string(), "tx": tx.hash })))
}

async fn validator_status(State(ctx): State<Arc<Ctx>>) -> ApiResult<ValidatorState> {
    Ok(Json(ValidatorState {
        enabled: *ctx.validator_on.borrow(),
        marks: ctx.metrics.validator_marks.get(),
    }))
}

async fn set_validator(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Json(s): Json<ValidatorState>,
) -> ApiResult<ValidatorState> {
    authorize(&ctx, &headers)?;
    ctx.validator_on.send_replace(s.enabled);
    validator_status(State(ctx)).await
}
