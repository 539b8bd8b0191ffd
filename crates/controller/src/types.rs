//! The names a caller picks from: priorities, operation categories and throttle states.

use std::fmt;

/// How urgent a request is. Waiting requests are served highest priority first, FIFO within
/// one priority; each priority has its own SLA (the longest it may wait in a queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Trade execution: place or cancel an order, close a position (SLA 100 ms by default).
    /// The only priority that may use the Critical reserve and exceed its category's share.
    Critical = 0,
    /// Position monitoring and account queries (SLA 500 ms).
    High = 1,
    /// Market data collection and scans (SLA 2 s).
    Medium = 2,
    /// Administrative functions and token discovery (SLA 10 s).
    Low = 3,
}

impl Priority {
    /// Every priority, highest first: the order in which queues are served.
    pub const ALL: [Priority; 4] = [
        Priority::Critical,
        Priority::High,
        Priority::Medium,
        Priority::Low,
    ];

    /// The name used in errors, events and the dashboard.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Critical => "Critical",
            Priority::High => "High",
            Priority::Medium => "Medium",
            Priority::Low => "Low",
        }
    }

    /// 0 for Critical up to 3 for Low.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which part of the program a request serves. Each category has a share of the capacity
/// that its non-Critical requests may not exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperationCategory {
    /// Orders and positions (70% of the capacity by default).
    Trading = 0,
    /// Market scans and data collection (20%).
    Scanning = 1,
    /// Housekeeping: account, configuration, discovery (10%).
    Administrative = 2,
}

impl OperationCategory {
    /// Every category, in dashboard order.
    pub const ALL: [OperationCategory; 3] = [
        OperationCategory::Trading,
        OperationCategory::Scanning,
        OperationCategory::Administrative,
    ];

    /// The name used in errors, events and the dashboard.
    pub fn name(self) -> &'static str {
        match self {
            OperationCategory::Trading => "Trading",
            OperationCategory::Scanning => "Scanning",
            OperationCategory::Administrative => "Administrative",
        }
    }

    /// The lower-case name used in shared-store keys.
    pub(crate) fn key(self) -> &'static str {
        match self {
            OperationCategory::Trading => "trading",
            OperationCategory::Scanning => "scanning",
            OperationCategory::Administrative => "admin",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for OperationCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How hard the controller throttles, chosen from the usage of the window with hysteresis
/// (see [`TierSettings`](crate::TierSettings)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThrottleState {
    /// Under 60% by default: full speed, 10–20 ms delay, 10 waiting requests served per
    /// priority per cycle.
    Normal = 0,
    /// From 60%: 75% speed, 50–100 ms, 5 per priority per cycle.
    Moderate = 1,
    /// From 80% (kept until usage falls under 60%): 40% speed, 200–400 ms, 2 per cycle.
    Heavy = 2,
    /// From 90%: 15% speed (the minimum throughput), 500–1000 ms, 1 per cycle.
    Emergency = 3,
}

impl ThrottleState {
    /// Every state, from the lightest to the heaviest.
    pub const ALL: [ThrottleState; 4] = [
        ThrottleState::Normal,
        ThrottleState::Moderate,
        ThrottleState::Heavy,
        ThrottleState::Emergency,
    ];

    /// The name used in errors, events and the dashboard.
    pub fn name(self) -> &'static str {
        match self {
            ThrottleState::Normal => "Normal",
            ThrottleState::Moderate => "Moderate",
            ThrottleState::Heavy => "Heavy",
            ThrottleState::Emergency => "Emergency",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The dashboard's colour mark.
    pub(crate) fn mark(self) -> &'static str {
        match self {
            ThrottleState::Normal => "🟢",
            ThrottleState::Moderate => "🟡",
            ThrottleState::Heavy => "🟠",
            ThrottleState::Emergency => "🔴",
        }
    }
}

impl fmt::Display for ThrottleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One value per priority, for queue depths and SLA violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PerPriority<T> {
    /// For [`Priority::Critical`].
    pub critical: T,
    /// For [`Priority::High`].
    pub high: T,
    /// For [`Priority::Medium`].
    pub medium: T,
    /// For [`Priority::Low`].
    pub low: T,
}

impl<T: Copy> PerPriority<T> {
    pub(crate) fn from_array(values: [T; 4]) -> PerPriority<T> {
        let [critical, high, medium, low] = values;
        PerPriority {
            critical,
            high,
            medium,
            low,
        }
    }

    /// The value for one priority.
    pub fn get(&self, priority: Priority) -> T {
        match priority {
            Priority::Critical => self.critical,
            Priority::High => self.high,
            Priority::Medium => self.medium,
            Priority::Low => self.low,
        }
    }
}
