//! The `tracing` events, gathered under the state lock and emitted after it is released.

use std::time::Duration;

use crate::types::{OperationCategory, Priority, ThrottleState};

/// An SLA violation to report.
#[derive(Debug)]
pub(crate) struct Violation {
    pub(crate) priority: Priority,
    pub(crate) category: OperationCategory,
    pub(crate) operation: String,
    pub(crate) sla: Duration,
    pub(crate) waited: Duration,
}

/// What changed while the lock was held.
#[derive(Debug, Default)]
pub(crate) struct Events {
    pub(crate) tier: Option<(ThrottleState, ThrottleState)>,
    /// Usage crossed the alert threshold upwards.
    pub(crate) alert: bool,
    pub(crate) scan_interval: Option<Duration>,
    pub(crate) violations: Vec<Violation>,
    pub(crate) used: u64,
    pub(crate) capacity: u32,
}

impl Events {
    pub(crate) fn merge(&mut self, later: Events) {
        if let Some((_, to)) = later.tier {
            let from = self
                .tier
                .map_or_else(|| later.tier.map(|t| t.0), |t| Some(t.0));
            self.tier = from.filter(|f| *f != to).map(|f| (f, to));
        }
        self.alert |= later.alert;
        self.scan_interval = later.scan_interval.or(self.scan_interval);
        self.violations.extend(later.violations);
        self.used = later.used;
        self.capacity = later.capacity;
    }

    fn percent(&self) -> f64 {
        self.used as f64 * 100.0 / f64::from(self.capacity.max(1))
    }

    pub(crate) fn emit(self) {
        if let Some((from, to)) = self.tier {
            if to == ThrottleState::Emergency {
                tracing::warn!(from = %from, to = %to, usage = self.used,
                    usage_percent = self.percent(), "Throttle state changed");
            } else {
                tracing::info!(from = %from, to = %to, usage = self.used,
                    usage_percent = self.percent(), "Throttle state changed");
            }
        }
        if self.alert {
            tracing::warn!(
                usage = self.used,
                capacity = self.capacity,
                usage_percent = self.percent(),
                "HIGH CAPACITY USAGE: {:.1}% ({}/{})",
                self.percent(),
                self.used,
                self.capacity
            );
        }
        if let Some(interval) = self.scan_interval {
            tracing::info!(
                interval_s = interval.as_secs_f64(),
                usage_percent = self.percent(),
                "Scan interval adjusted"
            );
        }
        for v in self.violations {
            tracing::warn!(
                priority = %v.priority,
                category = %v.category,
                operation = %v.operation,
                sla_ms = v.sla.as_millis() as u64,
                waited_ms = v.waited.as_millis() as u64,
                "SLA VIOLATION: {} request not granted within its SLA",
                v.priority
            );
        }
    }
}
