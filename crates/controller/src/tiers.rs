//! Choosing the throttle tier from the usage (with hysteresis), and the delay jitter.

use std::time::Duration;

use crate::config::ControllerConfig;
use crate::types::ThrottleState;

/// Whether `used` is at least `percent`% of `capacity`, in exact integer arithmetic.
pub(crate) fn at_least(used: u64, capacity: u32, percent: u32) -> bool {
    u128::from(used) * 100 >= u128::from(capacity) * u128::from(percent)
}

/// The tier after observing `used`, coming from `current`.
///
/// Up: straight to the heaviest tier whose entry threshold is reached. Down: one tier at a
/// time, each only under its own exit threshold, so a tier entered at 80% and left under 60%
/// holds through the band in between.
pub(crate) fn next_state(
    config: &ControllerConfig,
    current: ThrottleState,
    used: u64,
) -> ThrottleState {
    let capacity = config.capacity();
    let reached = ThrottleState::ALL
        .into_iter()
        .rev()
        .find(|s| at_least(used, capacity, config.tier(*s).enter_at_percent))
        .unwrap_or(ThrottleState::Normal);
    if reached >= current {
        return reached;
    }
    let mut state = current;
    while state > ThrottleState::Normal
        && !at_least(used, capacity, config.tier(state).exit_below_percent)
    {
        state = ThrottleState::ALL[state.index() - 1];
    }
    state
}

/// A small, fast generator (SplitMix64) for the delay jitter. It needs no cryptographic
/// quality: it only spreads callers over the tier's delay range so they do not call in step.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A delay drawn uniformly from `min..=max` (nanosecond resolution).
    pub(crate) fn delay(&mut self, min: Duration, max: Duration) -> Duration {
        // Both are at most an hour (validated), so the span fits in u64 nanoseconds.
        let span = u64::try_from((max - min).as_nanos()).unwrap_or(u64::MAX);
        if span == 0 {
            return min;
        }
        min + Duration::from_nanos(self.next() % (span + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_after(steps: &[u64]) -> Vec<ThrottleState> {
        let config = ControllerConfig::default();
        let mut state = ThrottleState::Normal;
        steps
            .iter()
            .map(|&used| {
                state = next_state(&config, state, used);
                state
            })
            .collect()
    }

    #[test]
    fn default_tiers_and_hysteresis() {
        use ThrottleState::*;
        // 800 capacity: 60% = 480, 80% = 640, 90% = 720.
        assert_eq!(
            state_after(&[0, 479, 480, 639, 640, 719, 720, 800]),
            [
                Normal, Normal, Moderate, Moderate, Heavy, Heavy, Emergency, Emergency
            ]
        );
        // Down from Emergency: under 90% is Heavy, and Heavy holds down to 60%.
        assert_eq!(
            state_after(&[720, 719, 640, 481, 480, 479]),
            [Emergency, Heavy, Heavy, Heavy, Heavy, Normal]
        );
        // Up from Normal into the band: Moderate, not Heavy.
        assert_eq!(state_after(&[500, 600]), [Moderate, Moderate]);
        // Straight from Normal to Emergency, and straight back down when usage collapses.
        assert_eq!(state_after(&[790, 10]), [Emergency, Normal]);
    }

    #[test]
    fn jitter_stays_in_range_and_spreads() {
        let mut j = Jitter::new(1);
        let (min, max) = (Duration::from_millis(10), Duration::from_millis(20));
        let draws: Vec<Duration> = (0..10_000).map(|_| j.delay(min, max)).collect();
        assert!(draws.iter().all(|d| *d >= min && *d <= max));
        let low = draws
            .iter()
            .filter(|d| **d < Duration::from_millis(15))
            .count();
        assert!(
            (4_000..6_000).contains(&low),
            "{low} of 10000 in the lower half"
        );
        assert_eq!(j.delay(max, max), max);
    }
}
