//! [`Periods`]: the proof-period arithmetic of the Marketplace (`libraries/Periods.sol` and
//! `_requireMissing`), in one place for every role of the node.
//!
//! ```text
//!  period p:   blocks [p·L, (p+1)·L)       seed: block p·L − 1 (genesis for p = 0)
//!  proofs of p are accepted in period p; a missing one may be marked from (p+1)·L
//!  up to and including block (p+1)·L − 1 + grace
//! ```
//!
//! Every operation is checked: a block or period near `u64::MAX` gives `None`, never a wrap.

use std::{num::NonZeroU64, ops::Range};

/// Period length and grace window of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    length: NonZeroU64,
    grace: u64,
}

impl Periods {
    /// Periods of `length` blocks whose missing proofs may be marked for `grace` blocks after
    /// they end. `None` for a zero length (the contract refuses it too).
    pub fn new(length: u64, grace: u64) -> Option<Self> {
        Some(Self {
            length: NonZeroU64::new(length)?,
            grace,
        })
    }

    /// Blocks per period.
    pub fn length(&self) -> u64 {
        self.length.get()
    }

    /// Blocks after a period during which its missing proofs may be marked.
    pub fn grace(&self) -> u64 {
        self.grace
    }

    /// The period `block` belongs to.
    pub fn period_of(&self, block: u64) -> u64 {
        block / self.length
    }

    /// The first block of `period`.
    pub fn start(&self, period: u64) -> Option<u64> {
        period.checked_mul(self.length.get())
    }

    /// The last block of `period`.
    pub fn last_block(&self, period: u64) -> Option<u64> {
        period
            .checked_add(1)?
            .checked_mul(self.length.get())
            .map(|end| end - 1)
    }

    /// Blocks of `block`'s period that come after it (0 in its last block).
    pub fn blocks_left(&self, block: u64) -> u64 {
        self.length.get() - 1 - block % self.length
    }

    /// The block whose hash seeds `period`: the one just before it (genesis for period 0).
    pub fn seed_block(&self, period: u64) -> Option<u64> {
        match period {
            0 => Some(0),
            p => self.start(p).map(|s| s - 1),
        }
    }

    /// The last block in which a missing proof of `period` may be marked.
    pub fn last_mark_block(&self, period: u64) -> Option<u64> {
        self.last_block(period)?.checked_add(self.grace)
    }

    /// Whether a transaction in `block` may mark a missing proof of `period`: the period has
    /// ended and its grace window has not.
    pub fn may_mark(&self, period: u64, block: u64) -> bool {
        self.period_of(block) > period && self.last_mark_block(period).is_some_and(|l| block <= l)
    }

    /// The periods whose missing proofs may be marked in `block`, oldest first.
    pub fn markable(&self, block: u64) -> Range<u64> {
        let current = self.period_of(block);
        // A grace window spans at most ceil(grace / L) periods after the one it belongs to.
        let back = self.grace.div_ceil(self.length.get());
        let first = (current.saturating_sub(back)..current)
            .find(|p| self.may_mark(*p, block))
            .unwrap_or(current);
        first..current
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn periods_of_eight_blocks_with_four_of_grace() {
        let p = Periods::new(8, 4).expect("non-zero");
        assert_eq!(p.period_of(0), 0);
        assert_eq!(p.period_of(7), 0);
        assert_eq!(p.period_of(8), 1);
        assert_eq!(p.start(3), Some(24));
        assert_eq!(p.last_block(3), Some(31));
        assert_eq!(p.blocks_left(24), 7);
        assert_eq!(p.blocks_left(31), 0);
        assert_eq!(p.seed_block(0), Some(0));
        assert_eq!(p.seed_block(3), Some(23));
        // Period 3's missing proofs: from block 32 through 35.
        assert_eq!(p.last_mark_block(3), Some(35));
        assert!(!p.may_mark(3, 31));
        assert!(p.may_mark(3, 32));
        assert!(p.may_mark(3, 35));
        assert!(!p.may_mark(3, 36));
        assert_eq!(p.markable(33), 3..4);
        assert_eq!(p.markable(36), 4..4);
    }

    #[test]
    fn a_grace_window_longer_than_a_period_keeps_several_periods_open() {
        let p = Periods::new(4, 10).expect("non-zero");
        // Block 20 is in period 5; periods 2 (last mark 21), 3 and 4 are still open.
        assert_eq!(p.markable(20), 2..5);
    }

    #[test]
    fn zero_length_is_refused_and_overflow_is_none() {
        assert_eq!(Periods::new(0, 1), None);
        let p = Periods::new(1 << 40, u64::MAX).expect("non-zero");
        assert_eq!(p.start(u64::MAX), None);
        assert_eq!(p.last_block(u64::MAX), None);
        assert_eq!(p.last_mark_block(1), None);
        assert!(!p.may_mark(u64::MAX, u64::MAX));
    }

    proptest! {
        #[test]
        fn every_block_lies_in_its_period(length in 1u64..10_000, grace in 0u64..50_000, block in 0u64..(1 << 50)) {
            let p = Periods::new(length, grace).expect("non-zero");
            let period = p.period_of(block);
            let start = p.start(period).expect("small");
            let last = p.last_block(period).expect("small");
            prop_assert!(start <= block && block <= last);
            prop_assert_eq!(last - start + 1, length);
            prop_assert_eq!(block + p.blocks_left(block), last);
            prop_assert!(p.seed_block(period).expect("small") < start.max(1));
            // markable() is exactly the set may_mark() accepts.
            let open = p.markable(block);
            for q in period.saturating_sub(grace / length + 2)..=period {
                prop_assert_eq!(open.contains(&q), p.may_mark(q, block), "period {}", q);
            }
        }
    }
}
