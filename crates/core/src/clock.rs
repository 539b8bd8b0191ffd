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
/// clock. Cloning shares the anchor.
#[derive(Clone)]
pub struct SystemClock {
    inner: Arc<SystemInner>,
}

struct SystemInner {
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
            inner: Arc::new(SystemInner {
                clock,
                anchor_raw,
                anchor_unix,
            }),
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
            .field("anchor_unix", &self.inner.anchor_unix)
            .finish()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Nanos {
        let inner = &*self.inner;
        let elapsed = inner
            .clock
            .delta_as_nanos(inner.anchor_raw, inner.clock.raw());
        inner.anchor_unix.saturating_add(elapsed)
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
    ns.div_ceil(1_000_000)
}
