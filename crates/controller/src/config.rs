//! The controller's configuration: valid by construction. [`ControllerConfig::default`] is the
//! issue's numbers; anything else goes through [`ControllerConfigBuilder::build`], which
//! refuses an invalid configuration with a [`ConfigError`] naming the bad value.

use std::time::Duration;

use crate::error::ConfigError;
use crate::types::{OperationCategory, Priority, ThrottleState};
use crate::validate::{check_percent, check_range, validate_tiers};

/// The longest window: a day.
const MAX_WINDOW: Duration = Duration::from_secs(86_400);
/// The longest SLA: a day (deadlines are `Instant`s, which must not overflow).
const MAX_SLA: Duration = Duration::from_secs(86_400);
/// The longest monitoring cycle.
const MAX_CYCLE: Duration = Duration::from_secs(60);

/// Each category's share of the capacity, in whole percent; they sum to 100. A category's
/// non-Critical requests may not take more than its share of the window; Critical requests
/// may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CategoryShares {
    /// Trading's share (default 70).
    pub trading: u32,
    /// Scanning's share (default 20).
    pub scanning: u32,
    /// Administrative's share (default 10).
    pub administrative: u32,
}

impl CategoryShares {
    /// One category's share, in percent.
    pub fn get(&self, category: OperationCategory) -> u32 {
        match category {
            OperationCategory::Trading => self.trading,
            OperationCategory::Scanning => self.scanning,
            OperationCategory::Administrative => self.administrative,
        }
    }
}

impl Default for CategoryShares {
    fn default() -> Self {
        CategoryShares {
            trading: 70,
            scanning: 20,
            administrative: 10,
        }
    }
}

/// One throttle tier. Usage is the weight counted in the window, in percent of the capacity.
///
/// The controller moves **up** to the heaviest tier whose `enter_at_percent` the usage has
/// reached, at once. It moves **down** one tier at a time, and leaves a tier only when the
/// usage is under that tier's `exit_below_percent`: that gap is the hysteresis. The defaults
/// enter Heavy at 80% and leave it only under 60%, so the controller does not flap between
/// Moderate and Heavy around 80%.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TierSettings {
    /// The usage (percent) from which this tier applies; 0 for Normal, strictly increasing
    /// from tier to tier, at most 100.
    pub enter_at_percent: u32,
    /// The usage (percent) under which the controller leaves this tier for the one below;
    /// from 1 up to `enter_at_percent` (ignored for Normal, which must say 0).
    pub exit_below_percent: u32,
    /// The tier's nominal speed (percent of full speed, 1–100, not increasing from tier to
    /// tier); reported in the stats, realised by the delay and the per-cycle service limit.
    pub speed_percent: u32,
    /// The shortest delay a permit granted in this tier recommends.
    pub delay_min: Duration,
    /// The longest delay (at most an hour); each permit draws uniformly in between.
    pub delay_max: Duration,
    /// The most waiting requests served per priority per monitoring cycle; at least 1, so
    /// service never stops while capacity remains.
    pub max_per_cycle: u32,
}

const fn tier(
    enter_at_percent: u32,
    exit_below_percent: u32,
    speed_percent: u32,
    delay_ms: (u64, u64),
    max_per_cycle: u32,
) -> TierSettings {
    TierSettings {
        enter_at_percent,
        exit_below_percent,
        speed_percent,
        delay_min: Duration::from_millis(delay_ms.0),
        delay_max: Duration::from_millis(delay_ms.1),
        max_per_cycle,
    }
}

/// The default tiers, Normal to Emergency.
const DEFAULT_TIERS: [TierSettings; 4] = [
    tier(0, 0, 100, (10, 20), 10),
    tier(60, 60, 75, (50, 100), 5),
    tier(80, 60, 40, (200, 400), 2),
    tier(90, 90, 15, (500, 1000), 1),
];

/// The controller's settings. Build one with [`ControllerConfig::builder`]; every
/// `ControllerConfig` is valid, so [`UnifiedRateController::new`](crate::UnifiedRateController::new)
/// cannot fail.
///
/// ```
/// use std::time::Duration;
/// use tollgate_controller::{CategoryShares, ConfigError, ControllerConfig};
///
/// let config = ControllerConfig::builder()
///     .capacity(1000)
///     .window(Duration::from_secs(60))
///     .shares(CategoryShares { trading: 60, scanning: 30, administrative: 10 })
///     .build()?;
/// assert_eq!(config.share_weight(tollgate_controller::OperationCategory::Scanning), 300);
///
/// let bad = ControllerConfig::builder()
///     .shares(CategoryShares { trading: 70, scanning: 20, administrative: 20 })
///     .build();
/// assert!(matches!(bad, Err(ConfigError::SharesNotHundred { sum: 110, .. })));
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    capacity: u32,
    window: Duration,
    shares: CategoryShares,
    critical_reserve_percent: u32,
    tiers: [TierSettings; 4],
    sla: [Duration; 4],
    scan_interval: Duration,
    scan_interval_high_load: Duration,
    high_load_percent: u32,
    alert_percent: u32,
    cycle: Duration,
    jitter_seed: u64,
}

impl Default for ControllerConfig {
    /// Capacity 800 weight per rolling 30 s (80% of an exchange's 1000); shares 70/20/10;
    /// a 5% Critical reserve; the tiers of [`ThrottleState`]; SLAs 100 ms, 500 ms, 2 s,
    /// 10 s; scans every hour, every 2 hours while usage ≥ 80%; an alert from 90%; a
    /// monitoring cycle of 100 ms.
    fn default() -> Self {
        ControllerConfig {
            capacity: 800,
            window: Duration::from_secs(30),
            shares: CategoryShares::default(),
            critical_reserve_percent: 5,
            tiers: DEFAULT_TIERS,
            sla: [
                Duration::from_millis(100),
                Duration::from_millis(500),
                Duration::from_secs(2),
                Duration::from_secs(10),
            ],
            scan_interval: Duration::from_secs(3_600),
            scan_interval_high_load: Duration::from_secs(7_200),
            high_load_percent: 80,
            alert_percent: 90,
            cycle: Duration::from_millis(100),
            jitter_seed: 0x7011_6a7e,
        }
    }
}

impl ControllerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> ControllerConfigBuilder {
        ControllerConfigBuilder {
            config: ControllerConfig::default(),
        }
    }

    /// A builder starting from this configuration.
    pub fn to_builder(&self) -> ControllerConfigBuilder {
        ControllerConfigBuilder {
            config: self.clone(),
        }
    }

    /// The most weight admitted in any rolling window.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The rolling window's length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The category shares, in percent.
    pub fn shares(&self) -> CategoryShares {
        self.shares
    }

    /// A category's share in weight: `capacity × share / 100`, rounded down.
    pub fn share_weight(&self, category: OperationCategory) -> u64 {
        u64::from(self.capacity) * u64::from(self.shares.get(category)) / 100
    }

    /// The Critical reserve, in percent of the capacity.
    pub fn critical_reserve_percent(&self) -> u32 {
        self.critical_reserve_percent
    }

    /// The Critical reserve in weight, `capacity × percent / 100` rounded down: only
    /// Critical requests may take the window's usage above `capacity - reserve`.
    pub fn critical_reserve(&self) -> u64 {
        u64::from(self.capacity) * u64::from(self.critical_reserve_percent) / 100
    }

    /// The most weight the window may hold after granting a request of this priority.
    pub(crate) fn total_limit(&self, priority: Priority) -> u64 {
        match priority {
            Priority::Critical => u64::from(self.capacity),
            _ => u64::from(self.capacity) - self.critical_reserve(),
        }
    }

    /// The settings of one tier.
    pub fn tier(&self, state: ThrottleState) -> &TierSettings {
        &self.tiers[state.index()]
    }

    /// A priority's SLA: the longest a request may wait in its queue.
    pub fn sla(&self, priority: Priority) -> Duration {
        self.sla[priority.index()]
    }

    /// The scan interval while usage is under [`high_load_percent`](Self::high_load_percent).
    pub fn scan_interval(&self) -> Duration {
        self.scan_interval
    }

    /// The scan interval while usage is at or above [`high_load_percent`](Self::high_load_percent).
    pub fn scan_interval_high_load(&self) -> Duration {
        self.scan_interval_high_load
    }

    /// The usage (percent) from which scans slow down.
    pub fn high_load_percent(&self) -> u32 {
        self.high_load_percent
    }

    /// The usage (percent) from which a warning event is emitted.
    pub fn alert_percent(&self) -> u32 {
        self.alert_percent
    }

    /// How often the monitoring task serves the queues.
    pub fn cycle_interval(&self) -> Duration {
        self.cycle
    }

    /// The longest delay any tier recommends.
    pub fn max_delay(&self) -> Duration {
        self.tiers
            .iter()
            .map(|t| t.delay_max)
            .max()
            .unwrap_or_default()
    }

    pub(crate) fn jitter_seed(&self) -> u64 {
        self.jitter_seed
    }
}

/// Builds a [`ControllerConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct ControllerConfigBuilder {
    config: ControllerConfig,
}

impl ControllerConfigBuilder {
    /// The most weight admitted in any rolling window (default 800).
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.config.capacity = capacity;
        self
    }

    /// The rolling window (default 30 s; from 1 ms to a day).
    pub fn window(mut self, window: Duration) -> Self {
        self.config.window = window;
        self
    }

    /// The category shares (default 70/20/10; must sum to 100).
    pub fn shares(mut self, shares: CategoryShares) -> Self {
        self.config.shares = shares;
        self
    }

    /// The Critical reserve, in percent of the capacity (default 5; under 100).
    pub fn critical_reserve_percent(mut self, percent: u32) -> Self {
        self.config.critical_reserve_percent = percent;
        self
    }

    /// One tier's settings.
    pub fn tier(mut self, state: ThrottleState, settings: TierSettings) -> Self {
        self.config.tiers[state.index()] = settings;
        self
    }

    /// One priority's SLA (more than 0, at most a day).
    pub fn sla(mut self, priority: Priority, sla: Duration) -> Self {
        self.config.sla[priority.index()] = sla;
        self
    }

    /// The scan intervals under and from the high-load threshold (default 1 h and 2 h).
    pub fn scan_intervals(mut self, normal: Duration, high_load: Duration) -> Self {
        self.config.scan_interval = normal;
        self.config.scan_interval_high_load = high_load;
        self
    }

    /// The usage (percent) from which scans slow down (default 80).
    pub fn high_load_percent(mut self, percent: u32) -> Self {
        self.config.high_load_percent = percent;
        self
    }

    /// The usage (percent) from which a warning event is emitted (default 90).
    pub fn alert_percent(mut self, percent: u32) -> Self {
        self.config.alert_percent = percent;
        self
    }

    /// The monitoring cycle (default 100 ms; from 1 ms to a minute).
    pub fn cycle_interval(mut self, cycle: Duration) -> Self {
        self.config.cycle = cycle;
        self
    }

    /// The seed of the delay jitter, for reproducible runs.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.config.jitter_seed = seed;
        self
    }

    /// Validates the configuration.
    pub fn build(self) -> Result<ControllerConfig, ConfigError> {
        let c = self.config;
        if c.capacity == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        check_range("window", c.window, Duration::from_millis(1), MAX_WINDOW)?;
        let s = c.shares;
        let sum = u64::from(s.trading) + u64::from(s.scanning) + u64::from(s.administrative);
        if sum != 100 {
            return Err(ConfigError::SharesNotHundred {
                trading: s.trading,
                scanning: s.scanning,
                administrative: s.administrative,
                sum,
            });
        }
        if c.critical_reserve_percent >= 100 {
            return Err(ConfigError::ReserveTooLarge {
                percent: c.critical_reserve_percent,
            });
        }
        validate_tiers(&c.tiers)?;
        for p in Priority::ALL {
            let field = match p {
                Priority::Critical => "the Critical SLA",
                Priority::High => "the High SLA",
                Priority::Medium => "the Medium SLA",
                Priority::Low => "the Low SLA",
            };
            check_range(field, c.sla(p), Duration::from_nanos(1), MAX_SLA)?;
        }
        check_range(
            "the scan interval",
            c.scan_interval,
            Duration::from_nanos(1),
            Duration::MAX,
        )?;
        check_range(
            "the high-load scan interval",
            c.scan_interval_high_load,
            Duration::from_nanos(1),
            Duration::MAX,
        )?;
        check_percent("the high-load threshold", c.high_load_percent)?;
        check_percent("the alert threshold", c.alert_percent)?;
        check_range(
            "the monitoring cycle",
            c.cycle,
            Duration::from_millis(1),
            MAX_CYCLE,
        )?;
        Ok(c)
    }
}
