//! [`Strategy`]: how a simulated host treats the slot it filled.

use std::fmt;

/// What a host does with its slot after an honest fill (the fill's proof needs the whole slot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Stores the whole slot and proves every required period.
    Honest,
    /// Drops a share `lost` of the cells right after the fill; a proof of `s` samples passes with
    /// probability (1 − lost)^s.
    Partial {
        /// Share of the slot's cells dropped.
        lost: f64,
    },
    /// Stores nothing after the fill and never proves (squats the slot).
    NeverProve,
    /// [`Strategy::Partial`], marking its own misses through a second account for the reporter's
    /// reward.
    SelfReport {
        /// Share of the slot's cells dropped.
        lost: f64,
    },
    /// Honest until `at` (a share of the duration), then deletes the slot and stops proving.
    DropOut {
        /// When it drops out, as a share of the duration.
        at: f64,
    },
    /// [`Strategy::DropOut`], reporting its own misses through a second account, which then repairs
    /// the slot (for the repair reward) and serves it honestly to the end.
    SybilRepair {
        /// When the first account drops out, as a share of the duration.
        at: f64,
    },
    /// Honest, then deletes the slot `periods` periods before the end: the last period's proof can
    /// never be marked (its window opens after the request ended) and `periods − 1` marks do not
    /// evict while `periods ≤ maxMissed`.
    EndGame {
        /// Periods before the end at which it deletes the slot.
        periods: u64,
    },
}

impl Strategy {
    /// The strategies the simulation compares, for a deployment with `max_missed` marks per
    /// eviction.
    pub fn all(max_missed: u64) -> Vec<Self> {
        vec![
            Self::Honest,
            Self::Partial { lost: 0.001 },
            Self::Partial { lost: 0.01 },
            Self::Partial { lost: 0.1 },
            Self::Partial { lost: 0.5 },
            Self::NeverProve,
            Self::SelfReport { lost: 0.1 },
            Self::DropOut { at: 0.5 },
            Self::DropOut { at: 0.99 },
            Self::SybilRepair { at: 0.5 },
            Self::EndGame { periods: 1 },
            Self::EndGame {
                periods: max_missed,
            },
        ]
    }

    /// Whether the strategy only uses the request's last periods, which the contract cannot fully
    /// enforce (see docs/contracts.md, "The end of a request").
    pub fn is_end_game(&self) -> bool {
        matches!(self, Self::EndGame { .. })
    }

    /// Share of the cells the host keeps while it still stores the slot.
    pub(crate) fn kept(&self) -> f64 {
        match self {
            Self::Partial { lost } | Self::SelfReport { lost } => 1.0 - lost,
            _ => 1.0,
        }
    }

    /// Whether the host's own second account marks its misses (and so collects W).
    pub(crate) fn reports_itself(&self) -> bool {
        matches!(self, Self::SelfReport { .. } | Self::SybilRepair { .. })
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Honest => write!(f, "honest"),
            Self::Partial { lost } => write!(f, "partial storage, f = {}", percent(*lost)),
            Self::NeverProve => write!(f, "fills, never proves"),
            Self::SelfReport { lost } => {
                write!(f, "partial f = {} + self-report", percent(*lost))
            }
            Self::DropOut { at } => write!(f, "drops out at {} of the duration", percent(*at)),
            Self::SybilRepair { at } => {
                write!(f, "drops out at {}, own sybil repairs", percent(*at))
            }
            Self::EndGame { periods } => {
                write!(f, "deletes the slot {periods} period(s) before the end")
            }
        }
    }
}

fn percent(x: f64) -> String {
    let p = x * 100.0;
    if p >= 1.0 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}
