//! `hoard extend`: buy more time for a dataset's running storage request, through the node's
//! `POST /api/v1/datasets/{id}/extend` (the node checks, approves and sends `extendRequest`).

use alloy::primitives::B256;
use clap::Args;
use hoard_api::{Client, ExtendRequest, ExtendResult};

use crate::{duration, output::Output};

/// `hoard extend`.
#[derive(Debug, Args)]
pub(crate) struct ExtendArgs {
    /// Dataset id (extends the node account's running request for it that ends last) or request
    /// id.
    id: B256,
    /// How much longer to store it: seconds, or a number with a unit (s, m, h, d, w, y = 365
    /// days), e.g. 30d or 1d12h. The escrow for the extra time is paid now.
    #[arg(long, value_parser = duration::parse)]
    duration: u64,
}

pub(crate) async fn run(c: &Client, a: ExtendArgs, out: &Output) -> anyhow::Result<()> {
    let r = c
        .extend(
            a.id,
            &ExtendRequest {
                duration: a.duration,
            },
        )
        .await?;
    out.result(&r, || text(&r));
    Ok(())
}

fn text(r: &ExtendResult) -> String {
    format!(
        "request {} (dataset {}) extended by {}\nends {} (was {})\npaid {} token base units (tx {})",
        r.request,
        r.dataset,
        duration::format(r.extra_seconds),
        duration::utc(r.ends_at),
        duration::utc(r.previous_ends_at),
        r.payment,
        r.tx
    )
}

#[cfg(test)]
mod tests {
    use alloy::primitives::U256;
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        extend: ExtendArgs,
    }

    #[test]
    fn takes_an_id_and_a_duration_with_units() {
        let id = B256::repeat_byte(7);
        let cli =
            Cli::try_parse_from(["hoard", &id.to_string(), "--duration", "30d"]).expect("parse");
        assert_eq!((cli.extend.id, cli.extend.duration), (id, 30 * 86_400));
        let e = Cli::try_parse_from(["hoard", &id.to_string(), "--duration", "soon"])
            .expect_err("not a duration");
        assert!(e.to_string().contains("is not a duration"), "{e}");
        Cli::try_parse_from(["hoard", &id.to_string()]).expect_err("--duration is required");
    }

    #[test]
    fn text_names_the_new_end_and_the_payment() {
        let r = ExtendResult {
            dataset: hoard_prover::DatasetId([1; 32]),
            request: hoard_prover::RequestId([2; 32]),
            extra_seconds: 30 * 86_400,
            previous_ends_at: 1_700_000_000,
            ends_at: 1_700_000_000 + 30 * 86_400,
            payment: U256::from(7_776_000_000_000u64),
            tx: B256::repeat_byte(3),
        };
        let t = text(&r);
        assert!(t.contains("extended by 30d"), "{t}");
        assert!(
            t.contains("ends 2023-12-14 22:13:20 UTC (was 2023-11-14 22:13:20 UTC)"),
            "{t}"
        );
        assert!(t.contains("paid 7776000000000 token base units"), "{t}");
    }
}
