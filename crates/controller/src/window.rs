//! The in-process rolling window: what each granted permit occupies, and until when.
//!
//! A permit granted at `g` with delay `d` lets its caller call at `a = g + d`; the exchange
//! counts that call in every window `(t - W, t]` with `a ≤ t < a + W`. The window therefore
//! counts the permit from `g` (so that no later grant can be admitted against capacity it
//! has already promised) until `a + W` (when the exchange forgets the call). With every
//! permit counted over `[g, a + W)`, usage at any future instant can only fall until the
//! next grant, so checking `usage(now) + weight ≤ capacity` at each grant keeps every window
//! of call times under the capacity: any call time `e` has every permit whose call falls in
//! `(e - W, e]` counted at once (`g ≤ a ≤ e < a + W`). The price is counting each permit for
//! its delay longer than the exchange does (at most 1 s in 30 s with the default tiers).
//!
//! Expiries are kept per millisecond, rounded **up** (a permit may count up to 1 ms longer,
//! never shorter). Jittered delays make permits granted together expire out of order; with
//! one entry per millisecond, finding the place of a new expiry takes a few steps from the
//! back whatever the request rate, where one entry per permit would take thousands.

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::types::OperationCategory;

/// The weight that stops counting at one millisecond.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Milliseconds since the window's origin.
    expires_ms: u64,
    by_category: [u64; 3],
}

/// The permits still counted, one bucket per expiry millisecond in order, with running
/// totals.
#[derive(Debug)]
pub(crate) struct LocalWindow {
    origin: Instant,
    buckets: VecDeque<Bucket>,
    total: u64,
    by_category: [u64; 3],
}

const MS: u128 = 1_000_000;

impl LocalWindow {
    pub(crate) fn new(origin: Instant) -> LocalWindow {
        LocalWindow {
            origin,
            buckets: VecDeque::new(),
            total: 0,
            by_category: [0; 3],
        }
    }

    fn nanos(&self, t: Instant) -> u128 {
        t.saturating_duration_since(self.origin).as_nanos()
    }

    /// Forgets the permits whose calls have left the window.
    pub(crate) fn prune(&mut self, now: Instant) {
        let now_ms = u64::try_from(self.nanos(now) / MS).unwrap_or(u64::MAX);
        while let Some(b) = self.buckets.front() {
            if b.expires_ms > now_ms {
                break;
            }
            for (sum, w) in self.by_category.iter_mut().zip(b.by_category) {
                *sum -= w;
                self.total -= w;
            }
            self.buckets.pop_front();
        }
    }

    /// Counts a permit until `expires` (rounded up to the millisecond).
    pub(crate) fn insert(&mut self, expires: Instant, weight: u32, category: OperationCategory) {
        let ms = u64::try_from(self.nanos(expires).div_ceil(MS)).unwrap_or(u64::MAX);
        let weight = u64::from(weight);
        // The place is near the back: expiries are out of order only by the delay jitter.
        let later = self
            .buckets
            .iter()
            .rev()
            .take_while(|b| b.expires_ms > ms)
            .count();
        let at = self.buckets.len() - later;
        match self.buckets.get_mut(at.wrapping_sub(1)) {
            Some(b) if b.expires_ms == ms => b.by_category[category.index()] += weight,
            _ => {
                let mut by_category = [0; 3];
                by_category[category.index()] = weight;
                self.buckets.insert(
                    at,
                    Bucket {
                        expires_ms: ms,
                        by_category,
                    },
                );
            }
        }
        self.total += weight;
        self.by_category[category.index()] += weight;
    }

    /// The weight counted now (after [`prune`](Self::prune)).
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The weight counted now per category, in [`OperationCategory::ALL`] order.
    pub(crate) fn by_category(&self) -> [u64; 3] {
        self.by_category
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_until_expiry_in_any_insertion_order() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut w = LocalWindow::new(t0);
        w.insert(at(30), 5, OperationCategory::Trading);
        w.insert(at(10), 3, OperationCategory::Scanning);
        w.insert(at(20), 2, OperationCategory::Trading);
        w.insert(at(20), 4, OperationCategory::Administrative);
        assert_eq!((w.total(), w.by_category()), (14, [7, 3, 4]));
        w.prune(at(9));
        assert_eq!(w.total(), 14);
        w.prune(at(10));
        assert_eq!((w.total(), w.by_category()), (11, [7, 0, 4]));
        w.prune(at(29));
        assert_eq!((w.total(), w.by_category()), (5, [5, 0, 0]));
        w.prune(at(30));
        assert_eq!((w.total(), w.by_category()), (0, [0, 0, 0]));
    }

    #[test]
    fn expiry_rounds_up_to_the_millisecond() {
        let t0 = Instant::now();
        let mut w = LocalWindow::new(t0);
        w.insert(
            t0 + Duration::from_micros(10_001),
            1,
            OperationCategory::Trading,
        );
        w.prune(t0 + Duration::from_micros(10_999));
        assert_eq!(w.total(), 1, "never shorter than the permit's expiry");
        w.prune(t0 + Duration::from_millis(11));
        assert_eq!(w.total(), 0);
    }
}
