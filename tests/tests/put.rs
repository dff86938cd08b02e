//! `put` posts one storage request per dataset: concurrent puts of one path share a job,
//! concurrent puts of the same content from different paths share a request, a later put of a
//! dataset with an open request returns that request, and `new_request` posts another. On a
//! real anvil with a real renter node (no hosts: the requests stay open).

use std::time::Duration;

use hoard_api::{Client, JobStatus, PutRequest};
use hoard_prover::RequestId;
use hoard_tests::{Network, eventually, init_logs, params, write_dataset};

const PERIOD: u64 = 8;

/// Waits until job `job` has posted (or found) its request; returns its status.
async fn posted(api: &Client, job: &str) -> anyhow::Result<JobStatus> {
    eventually(
        Duration::from_secs(60),
        "the request to be posted",
        || async {
            let s = api.job(job).await?;
            if let Some(e) = &s.error {
                anyhow::bail!("put failed: {e}");
            }
            Ok(s.result.get("request").is_some().then_some(s))
        },
    )
    .await
}

fn request_of(s: &JobStatus) -> anyhow::Result<RequestId> {
    Ok(serde_json::from_value(s.result["request"].clone())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn puts_of_one_dataset_post_one_request_unless_asked_for_a_new_one() -> anyhow::Result<()> {
    init_logs();
    let mut net = Network::start(PERIOD).await?;
    let mut renter = net.node("renter", false).await?;
    let api = renter.api().clone();
    let dir = net.dir.path().to_path_buf();
    let input = dir.join("data.bin");
    write_dataset(&input, 1 << 20)?;
    let put = |path: &std::path::Path, new_request: bool| PutRequest {
        path: path.to_path_buf(),
        new_request,
        ..params(600, 120)
    };

    // Four puts of one path at once: one job, one request.
    let jobs: Vec<String> = put_all(&api, (0..4).map(|_| put(&input, false)).collect())
        .await?
        .into_iter()
        .map(|j| j.job)
        .collect();
    assert!(jobs.iter().all(|j| *j == jobs[0]), "{jobs:?}");
    let first = request_of(&posted(&api, &jobs[0]).await?)?;

    // Three copies of the same file (same name and bytes: the same dataset) in other folders,
    // put at once: the same request, returned.
    let mut copies = Vec::new();
    for i in 0..3 {
        let copy = dir.join(format!("copy-{i}"));
        std::fs::create_dir_all(&copy)?;
        std::fs::copy(&input, copy.join("data.bin"))?;
        copies.push(copy.join("data.bin"));
    }
    for job in put_all(&api, copies.iter().map(|c| put(c, false)).collect()).await? {
        let s = posted(&api, &job.job).await?;
        assert_eq!(request_of(&s)?, first);
        assert_eq!(s.result["existing"], serde_json::Value::Bool(true));
    }

    // Asked for a new one: a second request for the dataset.
    let s = posted(&api, &api.put(&put(&input, true)).await?.job).await?;
    let second = request_of(&s)?;
    assert_ne!(second, first);
    let dataset: hoard_prover::DatasetId = serde_json::from_value(s.result["dataset"].clone())?;
    let mut requests: Vec<RequestId> = eventually(
        Duration::from_secs(30),
        "both requests to be seen",
        || async {
            let all = api.dataset_status(dataset).await?;
            Ok((all.len() >= 2).then_some(all.iter().map(|r| r.request).collect::<Vec<_>>()))
        },
    )
    .await?;
    requests.sort();
    let mut want = vec![first, second];
    want.sort();
    assert_eq!(requests, want, "exactly the two requests");
    renter.stop().await;
    Ok(())
}

/// Sends every put at once (each on its own task); returns their answers.
async fn put_all(
    api: &Client,
    reqs: Vec<PutRequest>,
) -> anyhow::Result<Vec<hoard_api::JobStarted>> {
    let mut set = tokio::task::JoinSet::new();
    for req in reqs {
        let api = api.clone();
        set.spawn(async move { api.put(&req).await });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r??);
    }
    Ok(out)
}
