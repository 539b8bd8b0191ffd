//! Time, injected. Every algorithm takes `now` as an argument; stores ask a [`Clock`].
//!
//! Time is nanoseconds since the Unix epoch (fixed windows are aligned to it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch.
pub type Nanos = u64;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in nanoseconds since the Unix epoch.
    fn now(&self) -> Nanos;
}

/// The machine's clock, monotonic: the wall time read once at creation, advanced by a
/// monotonic counter (TSC where available), so it never steps back when NTP adjusts the wall
/// clock. Clones keep the same anchor.
#[derive(Clone)]
pub struct SystemClock {
    // Held inline rather than behind an `Arc`: the anchor never changes, so a copy is as good
    // as a share, and reading the time costs no pointer chase (it is on every check's path).
    clock: quanta::Clock,
    anchor_raw: u64,
    anchor_unix: Nanos,
}

impl SystemClock {
    /// Anchors a new clock to the wall time now.
    pub fn new() -> SystemClock {
        let clock = quanta::Clock::new();
        let anchor_raw = clock.raw();
        let anchor_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        SystemClock {
            clock,
            anchor_raw,
            anchor_unix,
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl std::fmt::Debug for SystemClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemClock")
            .field("anchor_unix", &self.anchor_unix)
            .finish()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Nanos {
        let elapsed = self.clock.delta_as_nanos(self.anchor_raw, self.clock.raw());
        self.anchor_unix.saturating_add(elapsed)
    }
}

/// A clock that moves only when told to, for tests and simulations. Clones share the time.
///
/// ```
/// use tollgate_core::{Clock, FakeClock};
/// use std::time::Duration;
/// let clock = FakeClock::at_millis(1_000);
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(clock.now(), 1_005_000_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct FakeClock {
    now: Arc<AtomicU64>,
}

impl FakeClock {
    /// A clock standing at `now` nanoseconds since the epoch.
    pub fn at(now: Nanos) -> FakeClock {
        FakeClock {
            now: Arc::new(AtomicU64::new(now)),
        }
    }

    /// A clock standing at `ms` milliseconds since the epoch.
    pub fn at_millis(ms: u64) -> FakeClock {
        FakeClock::at(ms.saturating_mul(1_000_000))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.now.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock (it may go backwards, to test that stores cope).
    pub fn set(&self, now: Nanos) {
        self.now.store(now, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Nanos {
        self.now.load(Ordering::SeqCst)
    }
}

impl<C: Clock> Clock for Arc<C> {
    fn now(&self) -> Nanos {
        (**self).now()
    }
}

/// Nanoseconds to whole milliseconds, rounded up: a wait reported in ms is never too short.
#[inline]
pub fn ceil_ms(ns: u64) -> u64 {
    // (ns + 999,999) / 10^6 is an add and a multiply-high; `div_ceil` also tests the
    // remainder. Only the last million values of u64 would wrap; they take `div_ceil`.
    match ns.checked_add(999_999) {
        Some(up) => up / 1_000_000,
        None => ns.div_ceil(1_000_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_ms_rounds_up_everywhere_including_the_top_of_u64() {
        let mut probes = vec![0, 1, 999_999, 1_000_000, 1_000_001, 1_999_999, 2_000_000];
        // The last million values take the other branch; the edge on both sides.
        let edge = u64::MAX - 999_999;
        probes.extend([
            edge - 1,
            edge,
            edge + 1,
            u64::MAX - 551_615,
            u64::MAX - 1,
            u64::MAX,
        ]);
        probes.extend((0..2000u64).map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        for ns in probes {
            assert_eq!(ceil_ms(ns), ns.div_ceil(1_000_000), "{ns}");
        }
        assert_eq!(ceil_ms(u64::MAX), 18_446_744_073_710);
    }

    #[test]
    fn system_clock_clones_keep_the_anchor_and_never_step_back() {
        let clock = SystemClock::new();
        let copy = clock.clone();
        let (a, b, c) = (clock.now(), copy.now(), clock.now());
        assert!(a <= b && b <= c, "{a} {b} {c}");
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // Anchored to the wall clock: within a minute of it.
        assert!(
            u128::from(c).abs_diff(wall) < 60_000_000_000,
            "{c} vs {wall}"
        );
    }
}
