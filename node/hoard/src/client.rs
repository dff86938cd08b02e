//! The commands that talk to a running node over its REST API (`put`, `get`, `status`,
//! `withdraw`, `host …`, `validate`, `audit`, `node info`): thin clients, as with kubo or hostd.

use std::{path::PathBuf, time::Duration};

use alloy::primitives::{B256, U256};
use anyhow::bail;
use clap::{Args, Subcommand};
use hoard_api::{AuditOutcome, Client, DownloadRequest, JobStatus, Offer, PutRequest};
use hoard_prover::{DatasetId, RequestId};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::Output;

/// Where the node's API is and how to authenticate.
#[derive(Debug, Args, Clone)]
pub(crate) struct ApiArgs {
    /// The node's API address.
    #[arg(
        long = "node",
        env = "HOARD_NODE",
        default_value = "http://127.0.0.1:8650",
        global = true
    )]
    url: String,
    /// API token for calls that change things. Default: read from `<data-dir>/api-token`.
    #[arg(long, env = "HOARD_API_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// The node's data folder, to read the API token from.
    // Its own id: with the default id (`data_dir`) this global's default `.hoard` would also fill
    // `hoard node run --data-dir` and hide the config file's `data_dir`.
    #[arg(
        id = "node_data_dir",
        long = "node-data-dir",
        env = "HOARD_DATA_DIR",
        default_value = ".hoard",
        global = true
    )]
    data_dir: PathBuf,
}

impl ApiArgs {
    /// A client of the node these arguments name, with its token from `--token` or the data
    /// folder's `api-token`.
    pub(crate) fn client(&self) -> Client {
        let file = self.data_dir.join("api-token");
        match &self.token {
            Some(t) => Client::new(&self.url, Some(t.clone()))
                .with_token_source("--token / HOARD_API_TOKEN"),
            None => Client::new(
                &self.url,
                std::fs::read_to_string(&file)
                    .ok()
                    .map(|t| t.trim().to_string()),
            )
            .with_token_source(file.display().to_string()),
        }
    }
}

/// Polls a job until it finishes, showing its progress.
async fn follow(c: &Client, job: &str, out: &Output) -> anyhow::Result<JobStatus> {
    let bar = if out.is_json() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    let mut phase = String::new();
    loop {
        let s = c.job(job).await?;
        if s.phase != phase {
            phase = s.phase.clone();
            let template = if phase == "waiting for hosts"
                || phase == "finding hosts"
                || phase == "requesting storage"
            {
                "{msg:>18} [{bar:30}] {pos}/{len} slots filled, {elapsed}"
            } else {
                "{msg:>18} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(phase.clone());
            bar.set_length(s.total);
        }
        bar.set_position(s.done);
        if s.finished {
            bar.finish_and_clear();
            if let Some(e) = &s.error {
                bail!("{e}");
            }
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `hoard put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// File or folder to store (a path on the node's machine).
    path: PathBuf,
    /// Data slots k: any k of the k+m slots rebuild the dataset.
    #[arg(long, short = 'k', default_value_t = 4)]
    data_slots: u16,
    /// Parity slots m: how many slots (hosts) may be lost.
    #[arg(long, short = 'm', default_value_t = 2)]
    parity_slots: u16,
    /// How long to store it: seconds, or a number with a unit (s, m, h, d, w, y = 365 days),
    /// e.g. 30d.
    #[arg(long, default_value = "2592000", value_parser = crate::duration::parse)]
    duration: u64,
    /// Seconds hosts have to fill every slot before the request is cancelled and refunded.
    #[arg(long, default_value_t = 3600)]
    expiry: u64,
    /// Price per byte per second, token base units.
    #[arg(long, default_value = "1")]
    price: U256,
    /// Collateral each host puts up, token base units per byte.
    #[arg(long, default_value = "1000")]
    collateral: U256,
    /// One period in this many requires a proof of each slot, on average (1 = every period).
    #[arg(long, default_value_t = 1)]
    proof_probability: u64,
    /// Cells sampled per proof (direct scheme; the compact circuits fix 5).
    #[arg(long, default_value_t = 16)]
    samples: u16,
    /// How hosts prove storage: direct (cells on chain, no set-up) or compact (one Groth16
    /// proof per host per period for many slots: far less gas, slots up to 1 GiB, a Poseidon
    /// commitment at pack time that takes minutes per GiB). See docs/operator-guide.md.
    #[arg(long, default_value_t = hoard_api::Scheme::Direct)]
    scheme: hoard_api::Scheme,
    /// Return once the request is posted instead of waiting for every slot to be filled.
    #[arg(long)]
    no_wait: bool,
    /// Post a new storage request even if this node already has an open or running request for
    /// the same dataset (or a put of the same path under way); by default that one is returned.
    #[arg(long)]
    new_request: bool,
}

/// `hoard get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// Dataset id (from `hoard put`).
    dataset: DatasetId,
    /// Where to write it (absent or an empty folder, on the node's machine). Running the same
    /// `get` again after an interruption resumes it.
    #[arg(long)]
    out: PathBuf,
    /// Only this file or folder (a folder brings everything under it); repeat for more. Only
    /// the blocks covering them are fetched.
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
}

/// `hoard cache …`.
#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// What the reader cache holds (the default).
    Show,
    /// Drop one dataset from the cache, or everything.
    Clear {
        /// The dataset (all of them if absent).
        dataset: Option<DatasetId>,
    },
}

/// `hoard host …`.
#[derive(Debug, Subcommand)]
pub(crate) enum HostCommand {
    /// Slots held, proofs, collateral at risk and earnings.
    Status,
    /// Show or change the offer requests are matched against.
    Offer {
        /// Bytes of slot data to hold.
        #[arg(long)]
        capacity: Option<u64>,
        /// Lowest price accepted, token base units per byte per second.
        #[arg(long)]
        min_price: Option<U256>,
        /// Most collateral per slot, token base units.
        #[arg(long)]
        max_collateral: Option<U256>,
    },
    /// Withdraw pay and collateral of every slot whose request has ended.
    Withdraw,
}

pub(crate) async fn put(c: &Client, a: PutArgs, out: &Output) -> anyhow::Result<()> {
    let path = std::path::absolute(&a.path).unwrap_or(a.path.clone());
    let req = PutRequest {
        path,
        data_slots: a.data_slots,
        parity_slots: a.parity_slots,
        duration: a.duration,
        expiry: a.expiry,
        price_per_byte_per_second: a.price,
        collateral_per_byte: a.collateral,
        proof_probability: a.proof_probability,
        samples: a.samples,
        scheme: a.scheme,
        new_request: a.new_request,
    };
    let job = c.put(&req).await?.job;
    let status = if a.no_wait {
        loop {
            let s = c.job(&job).await?;
            if s.result.get("request").is_some() || s.finished {
                if let Some(e) = s.error {
                    bail!("{e}");
                }
                break s;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    } else {
        follow(c, &job, out).await?
    };
    out.result(&status.result, || {
        format!(
            "dataset {}\nrequest {}{}\n{}",
            status.result["dataset"].as_str().unwrap_or("?"),
            status.result["request"].as_str().unwrap_or("?"),
            if status.result["existing"].as_bool() == Some(true) {
                " (already requested by this node: returned instead of a new one; \
                 --new-request posts another)"
            } else {
                ""
            },
            if a.no_wait {
                "posted; hosts are filling its slots (see `hoard status`)"
            } else {
                "every slot is filled and proven by its host"
            }
        )
    });
    Ok(())
}

pub(crate) async fn get(c: &Client, a: GetArgs, out: &Output) -> anyhow::Result<()> {
    let path = std::path::absolute(&a.out).unwrap_or(a.out.clone());
    let job = c
        .download(&DownloadRequest {
            dataset: a.dataset,
            out: path,
            paths: a.paths,
        })
        .await?
        .job;
    let s = follow(c, &job, out).await?;
    out.result(&s.result, || {
        format!(
            "wrote {} ({} bytes, {} stripes decoded), every block verified",
            s.result["out"].as_str().unwrap_or("?"),
            s.result["size"],
            s.result["decoded_stripes"]
        )
    });
    Ok(())
}

pub(crate) async fn status(c: &Client, id: B256, out: &Output) -> anyhow::Result<()> {
    let s = c.dataset_status(id).await?;
    out.result(&s, || {
        let mut t = String::new();
        for r in &s {
            let filled = r.slots.iter().filter(|x| x.state == "filled").count();
            t += &format!(
                "request {}  {}  {}/{} slots filled (needs {})  period {}\n",
                r.request,
                r.state,
                filled,
                r.slots.len(),
                r.needed,
                r.period
            );
            for x in &r.slots {
                t += &format!(
                    "  slot {:>3}  {:<9} host {}  missed proofs {}\n",
                    x.index.0,
                    x.state,
                    x.host.map(|h| h.to_string()).unwrap_or_else(|| "-".into()),
                    x.missed_proofs
                );
            }
        }
        t.trim_end().to_string()
    });
    Ok(())
}

pub(crate) async fn withdraw(c: &Client, request: RequestId, out: &Output) -> anyhow::Result<()> {
    let r = c.request_withdraw(&request).await?;
    out.result(&r, || {
        format!("refunded {} token base units (tx {})", r.refund, r.tx)
    });
    Ok(())
}

/// The scrub and self-repair part of `hoard host status`.
fn health_lines(h: &hoard_api::HostHealth) -> String {
    let mut t = if h.scrub_enabled {
        let pct = if h.scrub_pass_total_bytes == 0 {
            0.0
        } else {
            100.0 * h.scrub_pass_done_bytes as f64 / h.scrub_pass_total_bytes as f64
        };
        format!(
            "scrub: pass {pct:.1} % of {} bytes at {} B/s, last full pass {}, {} damaged block(s) found\n",
            h.scrub_pass_total_bytes,
            h.scrub_bytes_per_sec,
            h.scrub_last_full_pass
                .map_or_else(|| "never".to_string(), |t| format!("at unix time {t}")),
            h.scrub_corrupt_blocks
        )
    } else {
        "scrub: off\n".to_string()
    };
    t += &format!(
        "self-repair: {}; {} block(s) repaired, {} slot(s) rebuilt whole, {} failed attempt(s)\n",
        on_off(h.self_repair),
        h.repaired_blocks,
        h.rebuilt_slots,
        h.repair_failures
    );
    for d in &h.damaged {
        t += &format!(
            "  damaged slot {}: {}\n",
            &d.slot_id.to_string()[..10],
            d.last_error.as_deref().unwrap_or("repair under way")
        );
    }
    t
}

pub(crate) async fn host(c: &Client, cmd: HostCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        HostCommand::Status => {
            let s = c.host_status().await?;
            out.result(&s, || {
                let mut t = format!(
                    "host role {}; {}\nbalance {}  collateral at risk {}  earned so far {}\n",
                    on_off(s.enabled),
                    offer_line(&s.offer),
                    s.balance,
                    s.collateral_at_risk,
                    s.earned
                );
                for x in &s.slots {
                    t += &format!(
                        "  slot {} (request {} #{})  {:<8} proofs {} ok / {} failed / {} missed  earned {}\n",
                        &x.slot_id.to_string()[..10],
                        &x.request_id.to_string()[..10],
                        x.index.0,
                        x.state,
                        x.proofs_submitted,
                        x.proofs_failed,
                        x.missed_proofs,
                        x.earned
                    );
                }
                t += &health_lines(&s.health);
                t.trim_end().to_string()
            });
        }
        HostCommand::Offer {
            capacity,
            min_price,
            max_collateral,
        } => {
            let mut offer: Offer = c.host_status().await?.offer;
            let change = capacity.is_some() || min_price.is_some() || max_collateral.is_some();
            if let Some(v) = capacity {
                offer.capacity_bytes = v;
            }
            if let Some(v) = min_price {
                offer.min_price_per_byte_per_second = v;
            }
            if let Some(v) = max_collateral {
                offer.max_collateral_per_slot = v;
            }
            if change {
                offer = c.set_offer(&offer).await?;
            }
            out.result(&offer, || offer_line(&offer));
        }
        HostCommand::Withdraw => {
            let r = c.host_withdraw().await?;
            out.result(&r, || "withdrew every ended slot".into());
        }
    }
    Ok(())
}

pub(crate) async fn validate(
    c: &Client,
    off: bool,
    withdraw: bool,
    out: &Output,
) -> anyhow::Result<()> {
    if withdraw {
        let r = c.validator_withdraw().await?;
        out.result(&r, || {
            format!(
                "withdrew {} token base units of reporter rewards (tx {})",
                r.amount, r.tx
            )
        });
        return Ok(());
    }
    let s = c.set_validator(!off).await?;
    out.result(&s, || {
        format!(
            "validator {} (missed proofs marked so far: {}); watch hoard_validator_marks_total",
            if s.enabled { "on" } else { "off" },
            s.marks
        )
    });
    Ok(())
}

pub(crate) async fn audit(c: &Client, dataset: DatasetId, out: &Output) -> anyhow::Result<()> {
    let r = c.audit(&dataset).await?;
    let ok = r.iter().filter(|x| x.outcome == AuditOutcome::Ok).count();
    out.result(&r, || {
        let mut t = format!(
            "{ok}/{} slots answered a fresh challenge with a valid proof\n",
            r.len()
        );
        for x in &r {
            t += &format!(
                "  slot {:>3}  {:<11} {:>5} ms  {}  {}\n",
                x.slot.0,
                format!("{:?}", x.outcome).to_lowercase(),
                x.millis,
                x.host.map(|h| h.to_string()).unwrap_or_else(|| "-".into()),
                x.detail
            );
        }
        t.trim_end().to_string()
    });
    Ok(())
}

pub(crate) async fn info(c: &Client, out: &Output) -> anyhow::Result<()> {
    let i = c.node_info().await?;
    out.result(&i, || {
        format!(
            "node     {} (hoard {})\naccount  {}\nchain    {}, marketplace {}, block {}, period {}\n\
             roles    host {}, validator {}\nlisten   {}\npeers    {}",
            i.peer_id,
            i.version,
            i.address,
            i.chain_id,
            i.marketplace,
            i.block,
            i.period,
            on_off(i.host),
            on_off(i.validator),
            i.listen.join(" "),
            i.peers
        )
    });
    Ok(())
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// The offer in one line (amounts in token base units).
fn offer_line(o: &Offer) -> String {
    format!(
        "capacity {} bytes, min price {}/B/s, max collateral {}",
        o.capacity_bytes, o.min_price_per_byte_per_second, o.max_collateral_per_slot
    )
}

/// `hoard ls`: the files and folders of a dataset, from its manifest.
pub(crate) async fn ls(c: &Client, dataset: DatasetId, out: &Output) -> anyhow::Result<()> {
    let listing = c.files(&dataset).await?;
    out.result(&listing, || {
        let mut text = String::new();
        for e in &listing.entries {
            let size = e.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
            let name = match (&e.kind[..], &e.target) {
                ("dir", _) => format!("{}/", e.path),
                ("link", Some(t)) => format!("{} -> {t}", e.path),
                _ => e.path.clone(),
            };
            text.push_str(&format!("{size:>14}  {name}\n"));
        }
        text.trim_end().to_owned()
    });
    Ok(())
}

/// `hoard cache`: show or clear the reader cache.
pub(crate) async fn cache(
    c: &Client,
    cmd: Option<CacheCommand>,
    out: &Output,
) -> anyhow::Result<()> {
    match cmd.unwrap_or(CacheCommand::Show) {
        CacheCommand::Show => {
            let s = c.cache().await?;
            out.result(&s, || {
                let mut text = format!(
                    "reader cache: {} of {} bytes used",
                    s.used_bytes, s.capacity_bytes
                );
                for d in &s.datasets {
                    text.push_str(&format!(
                        "\n{}  {} blocks, {} bytes{}  ({})",
                        d.dataset,
                        d.blocks,
                        d.bytes,
                        if d.announced { ", seeded" } else { "" },
                        d.volume.display()
                    ));
                }
                text
            });
        }
        CacheCommand::Clear { dataset } => {
            let r = c.cache_clear(dataset.as_ref()).await?;
            out.result(&r, || format!("freed {} bytes", r.freed_bytes));
        }
    }
    Ok(())
}
