//! The window algorithms: an exact sliding log, and fixed windows aligned to the epoch.
//!
//! Windows are half-open: the sliding window at `now` is `(now - PERIOD, now]`, so an
//! admission at time `a` stops counting at `a + PERIOD`; the fixed window `k` is
//! `[k·PERIOD, (k+1)·PERIOD)`.

use std::collections::VecDeque;

use crate::clock::{Nanos, ceil_ms};
use crate::decision::Decision;
use crate::limit::Limit;
use crate::state::LimitState;

/// An exact log of admissions `(time, cost)`, oldest first. Its memory is 16 bytes per
/// admission still inside the window, so at most 16 × COUNT bytes per key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlidingLog {
    entries: VecDeque<(Nanos, u64)>,
    total: u64,
    /// When the newest admission leaves the window.
    idle_at: Nanos,
}

impl SlidingLog {
    /// The admissions still in the log, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (Nanos, u64)> + '_ {
        self.entries.iter().copied()
    }

    fn period(limit: &Limit) -> Nanos {
        limit.rate().period_ns()
    }

    /// How many entries at the front have left the window at `now`, and their total cost.
    fn expired(&self, period: Nanos, now: Nanos) -> (usize, u64) {
        let mut n = 0;
        let mut cost = 0;
        for &(t, c) in &self.entries {
            if t.saturating_add(period) > now {
                break;
            }
            n += 1;
            cost += c;
        }
        (n, cost)
    }

    /// The time at which the newest admission leaves the window; admissions `pending` at
    /// `now` count as made at `now`.
    fn last_expiry(&self, period: Nanos, now: Nanos, pending: bool) -> Nanos {
        let newest = self.entries.back().map(|&(t, _)| t);
        let newest = if pending {
            Some(newest.unwrap_or(now).max(now))
        } else {
            newest
        };
        newest.map_or(now, |t| t.saturating_add(period))
    }
}

impl LimitState for SlidingLog {
    fn evaluate(&self, limit: &Limit, now: Nanos, cost: u64, pending: u64) -> Decision {
        let period = Self::period(limit);
        let count = limit.rate().count();
        let (skip, expired_cost) = self.expired(period, now);
        let used = self.total - expired_cost + pending;
        let wait = |until: Nanos| ceil_ms(until.saturating_sub(now));
        if used + cost <= count {
            return Decision {
                allowed: true,
                limit: count,
                remaining: count - used - cost,
                retry_after_ms: 0,
                reset_after_ms: wait(self.last_expiry(period, now, pending + cost > 0)),
            };
        }
        // Walk the oldest admissions until enough cost has left the window; `pending` cost
        // stands at `now`, so it leaves last.
        let need = used + cost - count;
        let mut freed = 0;
        let mut free_at = now.saturating_add(period);
        for &(t, c) in self.entries.iter().skip(skip) {
            freed += c;
            if freed >= need {
                free_at = t.saturating_add(period);
                break;
            }
        }
        Decision {
            allowed: false,
            limit: count,
            remaining: count.saturating_sub(used),
            retry_after_ms: wait(free_at),
            reset_after_ms: wait(self.last_expiry(period, now, pending > 0)),
        }
    }

    fn commit(&mut self, limit: &Limit, now: Nanos, cost: u64) {
        // Keep the log sorted even if the clock stepped back: recording an admission later
        // than it happened only keeps it in the window longer.
        let at = match self.entries.back_mut() {
            Some((t, c)) if *t >= now => {
                *c += cost;
                *t
            }
            _ => {
                self.entries.push_back((now, cost));
                now
            }
        };
        self.total += cost;
        self.idle_at = self.idle_at.max(at.saturating_add(Self::period(limit)));
    }

    fn prune(&mut self, limit: &Limit, now: Nanos) {
        let (n, cost) = self.expired(Self::period(limit), now);
        self.entries.drain(..n);
        self.total -= cost;
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }

    fn idle_at(&self) -> Nanos {
        self.idle_at
    }
}

/// A fixed-window key's state: the cost admitted in the current window and when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedWindow {
    used: u64,
    end: Nanos,
}

impl FixedWindow {
    /// The cost used in the window counted at `now`, and that window's end. A window keeps
    /// counting until its end even if the clock steps back or the period changes.
    fn current(&self, limit: &Limit, now: Nanos) -> (u64, Nanos) {
        if self.used > 0 && now < self.end {
            (self.used, self.end)
        } else {
            let period = limit.rate().period_ns();
            (0, (now / period + 1).saturating_mul(period))
        }
    }
}

impl LimitState for FixedWindow {
    fn evaluate(&self, limit: &Limit, now: Nanos, cost: u64, pending: u64) -> Decision {
        let count = limit.rate().count();
        let (used, end) = self.current(limit, now);
        let used = used + pending;
        let until_end = ceil_ms(end.saturating_sub(now));
        if used + cost <= count {
            Decision {
                allowed: true,
                limit: count,
                remaining: count - used - cost,
                retry_after_ms: 0,
                reset_after_ms: if used + cost > 0 { until_end } else { 0 },
            }
        } else {
            Decision {
                allowed: false,
                limit: count,
                remaining: count.saturating_sub(used),
                retry_after_ms: until_end,
                reset_after_ms: until_end,
            }
        }
    }

    fn commit(&mut self, limit: &Limit, now: Nanos, cost: u64) {
        let (used, end) = self.current(limit, now);
        *self = FixedWindow {
            used: used + cost,
            end,
        };
    }

    fn idle_at(&self) -> Nanos {
        if self.used == 0 { 0 } else { self.end }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;

    const MS: u64 = 1_000_000;

    fn limit(rate: &str, algorithm: Algorithm) -> Limit {
        Limit::new(rate.parse().expect("rate"), algorithm, None).expect("limit")
    }

    #[test]
    fn sliding_window_counts_the_last_period() {
        let l = limit("3/1000ms", Algorithm::SlidingWindow);
        let mut s = SlidingLog::default();
        let t0 = 10_000 * MS;
        assert!(s.apply(&l, t0, 1).allowed);
        assert!(s.apply(&l, t0 + 100 * MS, 2).allowed);
        let d = s.apply(&l, t0 + 200 * MS, 1);
        assert_eq!((d.allowed, d.remaining, d.retry_after_ms), (false, 0, 800));
        assert_eq!(d.reset_after_ms, 900);
        assert!(!s.apply(&l, t0 + 999 * MS, 1).allowed);
        let d = s.apply(&l, t0 + 1000 * MS, 1);
        assert_eq!((d.allowed, d.remaining), (true, 0));
        // Cost 2 needs the admission at +100ms to leave: at +1100ms.
        let d = s.apply(&l, t0 + 1050 * MS, 2);
        assert_eq!((d.allowed, d.retry_after_ms), (false, 50));
        assert!(s.apply(&l, t0 + 1100 * MS, 2).allowed);
        assert_eq!(s.entries().count(), 2, "expired entries are pruned");
    }

    #[test]
    fn fixed_window_aligns_to_the_epoch() {
        let l = limit("2/1000ms", Algorithm::FixedWindow);
        let mut s = FixedWindow::default();
        let t0 = 10_000 * MS + 900 * MS;
        assert!(s.apply(&l, t0, 2).allowed);
        let d = s.apply(&l, t0 + 50 * MS, 1);
        assert_eq!(
            (d.allowed, d.retry_after_ms, d.reset_after_ms),
            (false, 50, 50)
        );
        let d = s.apply(&l, t0 + 100 * MS, 2);
        assert_eq!((d.allowed, d.remaining, d.reset_after_ms), (true, 0, 1000));
        assert_eq!(s.idle_at(), 12_000 * MS);
    }

    #[test]
    fn peeks_report_without_consuming() {
        let l = limit("5/s", Algorithm::SlidingWindow);
        let mut s = SlidingLog::default();
        let d = s.apply(&l, MS, 0);
        assert_eq!((d.allowed, d.remaining, d.reset_after_ms), (true, 5, 0));
        assert_eq!(s, SlidingLog::default());
        let l = limit("5/s", Algorithm::FixedWindow);
        let mut s = FixedWindow::default();
        let d = s.apply(&l, MS, 0);
        assert_eq!((d.allowed, d.remaining, d.reset_after_ms), (true, 5, 0));
        assert_eq!(s, FixedWindow::default());
    }
}
