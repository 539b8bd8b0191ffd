//! Check latencies in fixed log-scale buckets, cheap enough for every check (one atomic add)
//! and readable as percentiles over any interval by subtracting two snapshots.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two: bucket bounds grow by 2^(1/4) ≈ 19%, the percentile's
/// resolution.
const SUB: usize = 4;
/// Powers of two from 1 µs: up to 2^27 µs ≈ 134 s; slower checks land in the last bucket.
const POWERS: usize = 28;
const BUCKETS: usize = SUB * POWERS + 1;

/// A latency histogram.
pub struct Latencies {
    buckets: Box<[AtomicU64]>,
}

/// The counts of a [`Latencies`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot(Vec<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The bucket of `micros`: 0 holds < 1 µs, then SUB buckets per power of two.
fn bucket(micros: f64) -> usize {
    if micros.is_nan() || micros < 1.0 {
        return 0;
    }
    let index = (micros.log2() * SUB as f64).floor() as usize + 1;
    index.min(BUCKETS - 1)
}

/// The upper bound of bucket `i`, in ms.
fn upper_ms(i: usize) -> f64 {
    2f64.powf(i as f64 / SUB as f64) / 1000.0
}

impl Latencies {
    /// Records one check that took `seconds`.
    pub fn record(&self, seconds: f64) {
        let i = bucket(seconds * 1e6);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot(
            self.buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        )
    }
}

impl Snapshot {
    /// What was recorded between `earlier` and `self`.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot(
            self.0
                .iter()
                .zip(earlier.0.iter().chain(std::iter::repeat(&0)))
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
        )
    }

    /// Checks counted.
    pub fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The `q` quantile (0..=1) in ms: the upper bound of the bucket it falls in, so it
    /// overstates by at most one bucket (≈ 19%). 0 when nothing was counted.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.0.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_ms(i);
            }
        }
        upper_ms(BUCKETS - 1)
    }

    /// The upper bound of the slowest non-empty bucket, in ms.
    pub fn max_ms(&self) -> f64 {
        self.0.iter().rposition(|n| *n > 0).map_or(0.0, upper_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_fall_within_one_bucket_of_the_truth() {
        let l = Latencies::default();
        // 1..=1000 µs, one each: p50 ≈ 0.5 ms, p99 ≈ 0.99 ms.
        for us in 1..=1000 {
            l.record(f64::from(us) / 1e6);
        }
        let s = l.snapshot();
        assert_eq!(s.count(), 1000);
        let p50 = s.quantile_ms(0.5);
        let p99 = s.quantile_ms(0.99);
        assert!((0.5..=0.5 * 1.19).contains(&p50), "p50 {p50}");
        assert!((0.99..=0.99 * 1.19).contains(&p99), "p99 {p99}");
        assert!((1.0..=1.19).contains(&s.max_ms()), "max {}", s.max_ms());
    }

    #[test]
    fn an_interval_counts_only_what_came_in_it() {
        let l = Latencies::default();
        for _ in 0..100 {
            l.record(0.000_010);
        }
        let before = l.snapshot();
        for _ in 0..10 {
            l.record(0.050);
        }
        let d = l.snapshot().since(&before);
        assert_eq!(d.count(), 10);
        assert!(
            (50.0..=60.0).contains(&d.quantile_ms(0.5)),
            "{}",
            d.quantile_ms(0.5)
        );
        assert_eq!(Snapshot(vec![]).quantile_ms(0.5), 0.0);
    }

    #[test]
    fn extremes_land_in_the_end_buckets() {
        assert_eq!(bucket(0.2), 0);
        assert_eq!(bucket(1e12), BUCKETS - 1);
        assert_eq!(bucket(f64::NAN), 0);
    }
}
