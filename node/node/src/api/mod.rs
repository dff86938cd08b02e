//! The REST API (`/api/v1`, JSON, types from `hoard-api`) and `/metrics`. Bound to localhost by
//! default; calls that change anything need `Authorization: Bearer <token>` (the token is in
//! `<data_dir>/api-token`). Each route calls one role's handle; the role's error picks the
//! status (`error`). Every route is listed in docs/api.md.

mod error;
mod gateway;
pub(crate) mod listener;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use hoard_api::{
    AuditResult, CacheCleared, CacheStatus, CachedDataset, DownloadRequest, ExtendRequest,
    ExtendResult, HostStatus, JobStarted, JobStatus, NodeInfo, Offer, PutRequest, RefundResult,
    RequestStatus, RewardWithdrawal, ValidatorState, WithdrawResult,
};
use hoard_prover::{DatasetId, RequestId};

pub(crate) use self::error::ApiError;
use crate::{
    ctx::Ctx, download::DownloadHandle, host::HostHandle, jobs::Jobs, renter::RenterHandle,
    validator::ValidatorHandle,
};

/// Largest request body accepted (every body is a small JSON object).
const MAX_BODY: usize = 64 << 10;

/// What the routes reach: the shared context and each role's handle.
#[derive(Debug, Clone)]
pub(crate) struct Roles {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) jobs: Jobs,
    pub(crate) host: HostHandle,
    pub(crate) renter: RenterHandle,
    pub(crate) downloads: DownloadHandle,
    pub(crate) validator: ValidatorHandle,
}

/// The API's routes.
pub(crate) fn router(roles: Roles) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/node", get(node_info))
        .route("/api/v1/host", get(host_status))
        .route("/api/v1/host/offer", put(set_offer))
        .route("/api/v1/host/withdraw", post(host_withdraw))
        .route("/api/v1/datasets", post(put_dataset))
        .route("/api/v1/datasets/{id}", get(dataset_status))
        .route("/api/v1/datasets/{id}/audit", post(audit))
        .route("/api/v1/datasets/{id}/extend", post(extend))
        .route("/api/v1/datasets/{id}/files", get(gateway::list_all))
        .route("/api/v1/datasets/{id}/files/", get(gateway::list_all))
        .route("/api/v1/datasets/{id}/files/{*path}", get(gateway::file))
        .route("/api/v1/cache", get(cache_status).delete(cache_clear_all))
        .route("/api/v1/cache/{id}", delete(cache_clear))
        .route("/api/v1/downloads", post(download))
        .route("/api/v1/jobs/{id}", get(job))
        .route("/api/v1/requests/{id}/withdraw", post(request_withdraw))
        .route(
            "/api/v1/validator",
            get(validator_status).put(set_validator),
        )
        .route("/api/v1/validator/withdraw", post(validator_withdraw))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(roles)
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn authorize(roles: &Roles, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time enough: the token is random and compared whole.
    if given == Some(roles.ctx.token.expose()) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "this call needs the API token (Authorization: Bearer …, from <data_dir>/api-token)"
                .into(),
        ))
    }
}

/// A 32-byte id from the path (a dataset or request id; the route says which it may be).
fn parse_id(s: &str) -> Result<[u8; 32], ApiError> {
    s.parse::<DatasetId>()
        .map(|id| id.0)
        .map_err(|_| ApiError::bad(format!("{s:?} is not a 32-byte hex id")))
}

async fn metrics(State(roles): State<Roles>) -> Response {
    match prometheus::TextEncoder::new().encode_to_string(&roles.ctx.registry.gather()) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn node_info(State(roles): State<Roles>) -> ApiResult<NodeInfo> {
    let ctx = &roles.ctx;
    let head = ctx.head();
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
        validator: roles.validator.enabled(),
        peers,
    }))
}

async fn host_status(State(roles): State<Roles>) -> ApiResult<HostStatus> {
    Ok(Json(roles.host.status().await?))
}

async fn set_offer(
    State(roles): State<Roles>,
    headers: HeaderMap,
    Json(offer): Json<Offer>,
) -> ApiResult<Offer> {
    authorize(&roles, &headers)?;
    roles.host.set_offer(offer.clone())?;
    Ok(Json(offer))
}

async fn host_withdraw(
    State(roles): State<Roles>,
    headers: HeaderMap,
) -> ApiResult<WithdrawResult> {
    authorize(&roles, &headers)?;
    roles.host.withdraw().await;
    Ok(Json(WithdrawResult { ok: true }))
}

async fn put_dataset(
    State(roles): State<Roles>,
    headers: HeaderMap,
    Json(req): Json<PutRequest>,
) -> ApiResult<JobStarted> {
    authorize(&roles, &headers)?;
    let job = roles.renter.put(req)?;
    Ok(Json(JobStarted { job }))
}

async fn dataset_status(
    State(roles): State<Roles>,
    Path(id): Path<String>,
) -> ApiResult<Vec<RequestStatus>> {
    let id = parse_id(&id)?;
    Ok(Json(roles.renter.status(id).await?))
}

async fn audit(State(roles): State<Roles>, Path(id): Path<String>) -> ApiResult<Vec<AuditResult>> {
    let id = DatasetId(parse_id(&id)?);
    Ok(Json(crate::audit::audit(&roles.ctx, id).await?))
}

/// `POST /api/v1/datasets/{id}/extend`: `{id}` is a dataset id or a request id.
async fn extend(
    State(roles): State<Roles>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<ExtendRequest>,
) -> ApiResult<ExtendResult> {
    authorize(&roles, &headers)?;
    let id = parse_id(&id)?;
    Ok(Json(roles.renter.extend(id, req.duration).await?))
}

async fn download(
    State(roles): State<Roles>,
    headers: HeaderMap,
    Json(req): Json<DownloadRequest>,
) -> ApiResult<JobStarted> {
    authorize(&roles, &headers)?;
    let job = roles.downloads.start(req)?;
    Ok(Json(JobStarted { job }))
}

async fn job(State(roles): State<Roles>, Path(id): Path<String>) -> ApiResult<JobStatus> {
    roles
        .jobs
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

async fn request_withdraw(
    State(roles): State<Roles>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<RefundResult> {
    authorize(&roles, &headers)?;
    let id = RequestId(parse_id(&id)?);
    let (refund, tx) = roles.renter.withdraw(id).await?;
    Ok(Json(RefundResult {
        refund: refund.to_string(),
        tx: tx.hash,
    }))
}

async fn validator_withdraw(
    State(roles): State<Roles>,
    headers: HeaderMap,
) -> ApiResult<RewardWithdrawal> {
    authorize(&roles, &headers)?;
    let (amount, tx) = roles.validator.withdraw().await?;
    Ok(Json(RewardWithdrawal {
        amount: amount.to_string(),
        tx: tx.hash,
    }))
}

async fn validator_status(State(roles): State<Roles>) -> ApiResult<ValidatorState> {
    Ok(Json(ValidatorState {
        enabled: roles.validator.enabled(),
        marks: roles.validator.marks(),
    }))
}

async fn set_validator(
    State(roles): State<Roles>,
    headers: HeaderMap,
    Json(s): Json<ValidatorState>,
) -> ApiResult<ValidatorState> {
    authorize(&roles, &headers)?;
    roles.validator.set_enabled(s.enabled);
    validator_status(State(roles)).await
}

async fn cache_status(State(roles): State<Roles>) -> ApiResult<CacheStatus> {
    let cache = roles.downloads.cache().clone();
    let (capacity, used, datasets) = tokio::task::spawn_blocking(move || {
        (cache.capacity_bytes(), cache.used_bytes(), cache.datasets())
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(CacheStatus {
        capacity_bytes: capacity,
        used_bytes: used,
        datasets: datasets
            .into_iter()
            .map(|d| CachedDataset {
                dataset: d.dataset,
                volume: d.volume,
                blocks: d.blocks,
                bytes: d.bytes,
                last_used: d.last_used_ms / 1000,
                announced: d.announced,
            })
            .collect(),
    }))
}

async fn cache_clear_all(
    State(roles): State<Roles>,
    headers: HeaderMap,
) -> ApiResult<CacheCleared> {
    authorize(&roles, &headers)?;
    clear(&roles, None).await
}

async fn cache_clear(
    State(roles): State<Roles>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<CacheCleared> {
    authorize(&roles, &headers)?;
    let id = DatasetId(parse_id(&id)?);
    clear(&roles, Some(id)).await
}

async fn clear(roles: &Roles, id: Option<DatasetId>) -> ApiResult<CacheCleared> {
    let cache = roles.downloads.cache().clone();
    let freed = tokio::task::spawn_blocking(move || cache.clear(id.as_ref()))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    roles
        .ctx
        .metrics
        .reader_cache_bytes
        .set(i64::try_from(roles.downloads.cache().used_bytes()).unwrap_or(i64::MAX));
    Ok(Json(CacheCleared { freed_bytes: freed }))
}
