//! What the controller reports: request records, statistics and the text dashboard.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use crate::types::{OperationCategory, PerPriority, Priority, ThrottleState};

/// One granted request, kept while its grant is inside the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// When the permit was granted.
    pub timestamp: Instant,
    /// When the caller may call: `timestamp` + the permit's delay.
    pub call_at: Instant,
    /// The request's weight.
    pub weight: u32,
    /// Its priority.
    pub priority: Priority,
    /// Its category.
    pub category: OperationCategory,
    /// The operation's name, as given.
    pub operation: String,
    /// How long it waited for its permit, in milliseconds (rounded down).
    pub queue_time_ms: u64,
    /// What [`Permit::complete`](crate::Permit::complete) reported; `None` until then.
    pub execution_time_ms: Option<u64>,
}

/// One category's usage of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CategoryUsage {
    /// The category.
    pub category: OperationCategory,
    /// The weight it has in the window now (Critical requests included).
    pub used: u64,
    /// Its share, in weight.
    pub share: u64,
    /// Its share, in percent of the capacity.
    pub share_percent: u32,
}

impl CategoryUsage {
    /// `used` in percent of the share (0 for an empty share).
    pub fn percent_of_share(&self) -> f64 {
        percent(self.used, self.share)
    }
}

/// A snapshot of the controller, from
/// [`get_stats`](crate::UnifiedRateController::get_stats).
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerStats {
    /// The most weight admitted in any window.
    pub capacity: u32,
    /// The window's length.
    pub window: Duration,
    /// The weight counted in the window now (in shared mode: by every instance).
    pub usage: u64,
    /// `usage` in percent of the capacity.
    pub usage_percent: f64,
    /// The weight only Critical requests may use.
    pub critical_reserve: u64,
    /// Usage per category, in [`OperationCategory::ALL`] order.
    pub categories: [CategoryUsage; 3],
    /// Requests waiting, per priority.
    pub queue_depths: PerPriority<usize>,
    /// The throttle tier now.
    pub throttle_state: ThrottleState,
    /// The tier's nominal speed, in percent.
    pub speed_percent: u32,
    /// Requests asked for since the start (bad input excluded).
    pub total_requests: u64,
    /// Permits granted since the start.
    pub granted: u64,
    /// Permits granted after waiting in a queue or while the tier was above Normal.
    pub throttled: u64,
    /// Requests that got an SLA timeout since the start.
    pub sla_violations: u64,
    /// The same, per priority.
    pub sla_violations_by_priority: PerPriority<u64>,
    /// The mean queue time of the requests granted in the window, in milliseconds.
    pub avg_queue_time_ms: f64,
    /// How many request records the window holds.
    pub records_in_window: usize,
    /// The scan interval now.
    pub scan_interval: Duration,
    /// Whether the window is shared through a store.
    pub shared: bool,
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

impl ControllerStats {
    /// One category's usage.
    pub fn category(&self, category: OperationCategory) -> &CategoryUsage {
        &self.categories[category.index()]
    }

    /// `throttled` in percent of `granted`.
    pub fn throttled_percent(&self) -> f64 {
        percent(self.throttled, self.granted)
    }

    /// The dashboard as text, one line per item:
    ///
    /// ```text
    /// ┌─────────────────────────────────────────────────────────────
    /// │ 🎛️  RATE CONTROLLER DASHBOARD
    /// ├─────────────────────────────────────────────────────────────
    /// │ Status: 🟡 MODERATE | Usage: 72.5% (580/800 in 30s)
    /// │
    /// │ 📊 Capacity Allocation:
    /// │   • Trading:     60.0% (336/560 weight)
    /// │   • Scanning:    50.0% (80/160 weight)
    /// │   • Admin:       25.0% (20/80 weight)
    /// │   • Critical reserve: 40 weight
    /// │
    /// │ 📋 Priority Queues:
    /// │   🔴 Critical: 0 | 🟠 High: 2 | 🟡 Medium: 5 | 🟢 Low: 12
    /// │
    /// │ 📈 Statistics:
    /// │   • Total Requests:    1523
    /// │   • Throttled:         234 (15.4%)
    /// │   • SLA Violations:    2
    /// │   • Avg Queue Time:    127.3ms
    /// │   • Scan Interval:     7200s
    /// └─────────────────────────────────────────────────────────────
    /// ```
    pub fn format_dashboard(&self) -> String {
        let rule = "─".repeat(61);
        let mut out = String::with_capacity(1024);
        // Writing to a String cannot fail.
        let _ = self.write_dashboard(&mut out, &rule);
        out
    }

    fn write_dashboard(&self, out: &mut String, rule: &str) -> std::fmt::Result {
        writeln!(out, "┌{rule}")?;
        writeln!(out, "│ 🎛️  RATE CONTROLLER DASHBOARD")?;
        writeln!(out, "├{rule}")?;
        writeln!(
            out,
            "│ Status: {} {} | Usage: {:.1}% ({}/{} in {}s){}",
            self.throttle_state.mark(),
            self.throttle_state.name().to_uppercase(),
            self.usage_percent,
            self.usage,
            self.capacity,
            self.window.as_secs_f64(),
            if self.shared { " | shared" } else { "" }
        )?;
        writeln!(out, "│")?;
        writeln!(out, "│ 📊 Capacity Allocation:")?;
        for c in &self.categories {
            let label = match c.category {
                OperationCategory::Trading => "Trading:",
                OperationCategory::Scanning => "Scanning:",
                OperationCategory::Administrative => "Admin:",
            };
            writeln!(
                out,
                "│   • {label:<14}{:.1}% ({}/{} weight)",
                c.percent_of_share(),
                c.used,
                c.share
            )?;
        }
        writeln!(
            out,
            "│   • Critical reserve: {} weight",
            self.critical_reserve
        )?;
        writeln!(out, "│")?;
        writeln!(out, "│ 📋 Priority Queues:")?;
        let q = &self.queue_depths;
        writeln!(
            out,
            "│   🔴 Critical: {} | 🟠 High: {} | 🟡 Medium: {} | 🟢 Low: {}",
            q.critical, q.high, q.medium, q.low
        )?;
        writeln!(out, "│")?;
        writeln!(out, "│ 📈 Statistics:")?;
        writeln!(out, "│   • Total Requests:    {}", self.total_requests)?;
        writeln!(
            out,
            "│   • Throttled:         {} ({:.1}%)",
            self.throttled,
            self.throttled_percent()
        )?;
        writeln!(out, "│   • SLA Violations:    {}", self.sla_violations)?;
        writeln!(
            out,
            "│   • Avg Queue Time:    {:.1}ms",
            self.avg_queue_time_ms
        )?;
        writeln!(
            out,
            "│   • Scan Interval:     {}s",
            self.scan_interval.as_secs()
        )?;
        writeln!(out, "└{rule}")
    }
}
