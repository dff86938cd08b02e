//! [`Client`]: one typed method per route of `/api/v1`.

use std::{fmt::Display, time::Duration};

use hoard_prover::{DatasetId, RequestId};
use reqwest::StatusCode;
use serde::{Serialize, de::DeserializeOwned};

use crate::types::{
    AuditResult, CacheCleared, CacheStatus, DownloadRequest, ErrorBody, ExtendRequest,
    ExtendResult, HostStatus, JobStarted, JobStatus, Listing, NodeInfo, Offer, PutRequest,
    RefundResult, RequestStatus, RewardWithdrawal, ValidatorState, WithdrawResult,
};

/// Why a call to the node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address.
    #[error("cannot reach the node at {url} — is `hoard node run` running? (set --node): {source}")]
    Unreachable {
        /// The node's API address.
        url: String,
        /// What the HTTP client said.
        source: reqwest::Error,
    },
    /// The node refused the call: it needs the API token, or another one.
    #[error("{message}; {hint}")]
    Unauthorized {
        /// The node's message.
        message: String,
        /// Where the token came from and what to do.
        hint: String,
    },
    /// The node answered with an error.
    #[error("{message}")]
    Api {
        /// The HTTP status: 4xx for a call that cannot succeed as it is, 5xx for trouble on the
        /// node's side (its chain unreachable, a disk error).
        status: u16,
        /// The node's message.
        message: String,
    },
    /// The answer is not what this client expects (another version of hoard?).
    #[error(
        "the node at {url} sent an answer this client cannot read ({detail}) — is it the same hoard version?"
    )]
    Decode {
        /// The node's API address.
        url: String,
        /// What did not parse.
        detail: String,
    },
    /// A job did not finish in time.
    #[error("job {job} did not finish within {secs} s (last phase: {phase})")]
    JobTimeout {
        /// The job.
        job: String,
        /// The time waited.
        secs: u64,
        /// What it was doing.
        phase: String,
    },
}

impl ClientError {
    /// The HTTP status the node answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::Unauthorized { .. } => Some(StatusCode::UNAUTHORIZED.as_u16()),
            _ => None,
        }
    }
}

/// A client of one node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    /// Where the token came from, for the hint when the node refuses it.
    token_source: String,
}

impl Client {
    /// A client of the node whose API is at `url` (`http://127.0.0.1:8650`), with `token` for
    /// the calls that change things.
    pub fn new(url: &str, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            url: url.trim_end_matches('/').to_string(),
            token,
            token_source: "the caller".into(),
        }
    }

    /// Names where the token came from (a file, a flag), for the error when it is refused.
    pub fn with_token_source(mut self, source: impl Into<String>) -> Self {
        self.token_source = source.into();
        self
    }

    /// The node's API base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /api/v1/node`.
    pub async fn node_info(&self) -> Result<NodeInfo, ClientError> {
        self.get("/api/v1/node").await
    }

    /// `GET /api/v1/host`.
    pub async fn host_status(&self) -> Result<HostStatus, ClientError> {
        self.get("/api/v1/host").await
    }

    /// `PUT /api/v1/host/offer`.
    pub async fn set_offer(&self, offer: &Offer) -> Result<Offer, ClientError> {
        self.send(self.http.put(self.at("/api/v1/host/offer")).json(offer))
            .await
    }

    /// `POST /api/v1/host/withdraw`.
    pub async fn host_withdraw(&self) -> Result<WithdrawResult, ClientError> {
        self.post("/api/v1/host/withdraw", &serde_json::json!({}))
            .await
    }

    /// `POST /api/v1/datasets`: starts a put job.
    pub async fn put(&self, req: &PutRequest) -> Result<JobStarted, ClientError> {
        self.post("/api/v1/datasets", req).await
    }

    /// `GET /api/v1/datasets/{id}`: `id` is a dataset id or a request id.
    pub async fn dataset_status(
        &self,
        id: impl Display,
    ) -> Result<Vec<RequestStatus>, ClientError> {
        self.get(&format!("/api/v1/datasets/{id}")).await
    }

    /// `POST /api/v1/datasets/{id}/audit`.
    pub async fn audit(&self, dataset: &DatasetId) -> Result<Vec<AuditResult>, ClientError> {
        self.post(
            &format!("/api/v1/datasets/{dataset}/audit"),
            &serde_json::json!({}),
        )
        .await
    }

    /// `POST /api/v1/datasets/{id}/extend`: `id` is a dataset id or a request id.
    pub async fn extend(
        &self,
        id: impl Display,
        req: &ExtendRequest,
    ) -> Result<ExtendResult, ClientError> {
        self.post(&format!("/api/v1/datasets/{id}/extend"), req)
            .await
    }

    /// `POST /api/v1/downloads`: starts a get job.
    pub async fn download(&self, req: &DownloadRequest) -> Result<JobStarted, ClientError> {
        self.post("/api/v1/downloads", req).await
    }

    /// `GET /api/v1/jobs/{id}`.
    pub async fn job(&self, id: &str) -> Result<JobStatus, ClientError> {
        self.get(&format!("/api/v1/jobs/{id}")).await
    }

    /// Polls a job every 250 ms until it finishes or `timeout` passes; returns its last status
    /// (check `error`).
    pub async fn wait_job(&self, id: &str, timeout: Duration) -> Result<JobStatus, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.job(id).await?;
            if s.finished {
                return Ok(s);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::JobTimeout {
                    job: id.to_string(),
                    secs: timeout.as_secs(),
                    phase: s.phase,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `POST /api/v1/requests/{id}/withdraw`: the renter's refund.
    pub async fn request_withdraw(&self, id: &RequestId) -> Result<RefundResult, ClientError> {
        self.post(
            &format!("/api/v1/requests/{id}/withdraw"),
            &serde_json::json!({}),
        )
        .await
    }

    /// `GET /api/v1/validator`.
    pub async fn validator(&self) -> Result<ValidatorState, ClientError> {
        self.get("/api/v1/validator").await
    }

    /// `PUT /api/v1/validator`: switches the validator role on or off.
    pub async fn set_validator(&self, enabled: bool) -> Result<ValidatorState, ClientError> {
        let body = ValidatorState { enabled, marks: 0 };
        self.send(self.http.put(self.at("/api/v1/validator")).json(&body))
            .await
    }

    /// `POST /api/v1/validator/withdraw`.
    pub async fn validator_withdraw(&self) -> Result<RewardWithdrawal, ClientError> {
        self.post("/api/v1/validator/withdraw", &serde_json::json!({}))
            .await
    }

    /// `GET /api/v1/cache`.
    pub async fn cache(&self) -> Result<CacheStatus, ClientError> {
        self.get("/api/v1/cache").await
    }

    /// `DELETE /api/v1/cache` (everything) or `DELETE /api/v1/cache/{id}` (one dataset).
    pub async fn cache_clear(
        &self,
        dataset: Option<&DatasetId>,
    ) -> Result<CacheCleared, ClientError> {
        let path = match dataset {
            Some(id) => format!("/api/v1/cache/{id}"),
            None => "/api/v1/cache".to_owned(),
        };
        self.send(self.http.delete(self.at(&path))).await
    }

    /// `GET /api/v1/datasets/{id}/files`: every entry of the dataset.
    pub async fn files(&self, dataset: &DatasetId) -> Result<Listing, ClientError> {
        self.get(&format!("/api/v1/datasets/{dataset}/files")).await
    }

    /// `GET /metrics`, as text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let resp = self
            .http
            .get(self.at("/metrics"))
            .send()
            .await
            .map_err(|source| self.unreachable(source))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.decode(e))?;
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                message: text,
            });
        }
        Ok(text)
    }

    /// The value of one series of `/metrics` (`name{labels}` exactly as exported), 0 if absent.
    pub async fn metric(&self, series: &str) -> Result<f64, ClientError> {
        Ok(metric_value(&self.metrics().await?, series))
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(self.at(path))).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        self.send(self.http.post(self.at(path)).json(body)).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req
            .send()
            .await
            .map_err(|source| self.unreachable(source))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.decode(e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| self.decode(e));
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.error)
            .unwrap_or_else(|_| format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)));
        if status == StatusCode::UNAUTHORIZED {
            let hint = match &self.token {
                None => format!(
                    "no token at {}: point --node-data-dir (or HOARD_DATA_DIR) at the data folder \
                     of the node at {}, or pass --token",
                    self.token_source, self.url
                ),
                Some(_) => format!(
                    "the token from {} is not this node's: is --node-data-dir the data folder of \
                     the node at {}?",
                    self.token_source, self.url
                ),
            };
            return Err(ClientError::Unauthorized { message, hint });
        }
        Err(ClientError::Api {
            status: status.as_u16(),
            message,
        })
    }

    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.url.clone(),
            source,
        }
    }

    fn decode(&self, e: impl Display) -> ClientError {
        ClientError::Decode {
            url: self.url.clone(),
            detail: e.to_string(),
        }
    }
}

/// The value of `series` (`name` or `name{labels}`, exactly as exported) in a Prometheus text
/// exposition; 0 if absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_value_finds_exact_series_only() {
        let text = "# HELP x y\nhoard_a_total 3\nhoard_b{slot=\"1\"} 2.5\nhoard_ab 9\n";
        assert_eq!(metric_value(text, "hoard_a_total"), 3.0);
        assert_eq!(metric_value(text, "hoard_b{slot=\"1\"}"), 2.5);
        assert_eq!(metric_value(text, "hoard_a"), 0.0);
    }
}
