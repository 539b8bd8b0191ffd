//! What `GET /v1/stats` answers: one snapshot of a running server, read by the web dashboard,
//! `tollgate monitor` and the alert rules. Every type here serializes and deserializes, so a
//! client reads exactly what the server wrote.
//!
//! Rates (`…_per_s`) are measured over the last [`RATE_WINDOW_S`] seconds of samples the
//! server takes once a second; totals (`…_total`) count since the server started.

use serde::{Deserialize, Serialize};
use tollgate_queue::QueueStats;

/// The seconds of samples a rate is measured over.
pub const RATE_WINDOW_S: u64 = 10;

/// The samples kept for the charts: one per second, the last five minutes.
pub const HISTORY_LEN: usize = 300;

/// The keys listed in a policy's `top_denied`.
pub const TOP_DENIED: usize = 10;

/// One snapshot of the server. `Default` is an empty one (no store, nothing decided), for
/// fixtures to fill in the fields they are about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// The server's version.
    pub version: String,
    /// The server's wall clock when the snapshot was taken, ms since the epoch.
    pub now_ms: u64,
    /// Seconds since the server started.
    pub uptime_s: u64,
    /// The rate-limit store.
    pub store: StoreReport,
    /// Every decision, over every policy.
    pub decisions: DecisionRates,
    /// Time to answer a check, over the last [`RATE_WINDOW_S`] seconds.
    pub latency: LatencyReport,
    /// Each policy that has decided something, by name (`inline` for rates given in the
    /// request, `envoy:<domain>` for Envoy).
    pub policies: Vec<PolicyReport>,
    /// The job queues; empty when `queues_error` says why they could not be read.
    pub queues: Vec<QueueReport>,
    /// Why the queues could not be read, if they could not.
    pub queues_error: Option<String>,
    /// Unified controllers that report to this server (`POST /v1/controllers/{name}`).
    pub controllers: Vec<ControllerReport>,
    /// Alert rules firing now.
    pub alerts: Vec<AlertReport>,
    /// One sample per second, oldest first, at most [`HISTORY_LEN`].
    pub history: Vec<Sample>,
}

/// The rate-limit store's health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreReport {
    /// `memory` or `redis`.
    pub kind: String,
    /// Whether the store answered its last ping.
    pub ready: bool,
    /// Why it did not, if it did not.
    pub error: Option<String>,
    /// Keys the embedded store tracks (`None` for Redis).
    pub tracked_keys: Option<u64>,
    /// The Redis circuit breaker: `closed`, `open` or `half-open` (`None` for memory).
    pub breaker: Option<String>,
    /// Redis Cluster slots whose breakers are open.
    pub open_slots: u64,
    /// Store calls that failed, ever.
    pub failures_total: u64,
    /// Decisions made by `on_store_failure` instead of the store, ever.
    pub fallback_decisions_total: u64,
    /// Times the breaker opened, ever.
    pub breaker_opened_total: u64,
}

/// Allowed and denied decisions: totals and recent rates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionRates {
    /// Allowed, ever.
    pub allowed_total: u64,
    /// Denied, ever.
    pub denied_total: u64,
    /// Allowed per second, recently.
    pub allowed_per_s: f64,
    /// Denied per second, recently.
    pub denied_per_s: f64,
    /// Denied in percent of all decisions, recently (0 with no decisions).
    pub denied_percent: f64,
}

/// Check latency percentiles, in milliseconds (0 with no checks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Checks measured.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest bucket seen.
    pub max_ms: f64,
}

/// One policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// Its name.
    pub name: String,
    /// Its rate as written in the config (`None` for `inline` and Envoy).
    pub rate: Option<String>,
    /// Its algorithm (`None` for `inline` and Envoy).
    pub algorithm: Option<String>,
    /// Its decisions.
    pub decisions: DecisionRates,
    /// The keys denied most often lately, most first, at most [`TOP_DENIED`]: a bounded
    /// heavy-hitters summary, not a count of every key.
    pub top_denied: Vec<DeniedKey>,
}

/// A key that was denied often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniedKey {
    /// The key.
    pub key: String,
    /// Denials counted for it lately (may overcount by at most `error`).
    pub denied: u64,
    /// The most `denied` may overcount by (the heavy-hitters summary's bound).
    pub error: u64,
}

/// One job queue: its stats as the queue store reports them, and what the server derives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueReport {
    /// The queue store's numbers.
    #[serde(flatten)]
    pub stats: QueueStats,
    /// Completed tasks per second lately (between this server's samples).
    pub completed_per_s: f64,
    /// Attempts started per second lately.
    pub started_per_s: f64,
    /// When the backlog will be done at the queue's rate, ms since the epoch.
    pub projected_finish_ms: Option<u64>,
    /// Whether that is after the deadline (`None` without a deadline).
    pub deadline_at_risk: Option<bool>,
}

/// A unified controller's last report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerReport {
    /// The name it reports under.
    pub name: String,
    /// When the server received the report, ms since the epoch.
    pub received_ms: u64,
    /// Whether no report came for three reporting intervals.
    pub stale: bool,
    /// What it reported.
    #[serde(flatten)]
    pub usage: ControllerUsage,
}

/// What a controller reports (the body of `POST /v1/controllers/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerUsage {
    /// The most weight admitted in any window.
    pub capacity: u64,
    /// The window, ms.
    pub window_ms: u64,
    /// The weight in the window now.
    pub usage: u64,
    /// `usage` in percent of `capacity`.
    pub usage_percent: f64,
    /// The throttle tier: `normal`, `moderate`, `heavy` or `emergency`.
    pub tier: String,
    /// Requests waiting for a permit.
    pub waiting: u64,
    /// Permits granted, ever.
    pub granted: u64,
    /// SLA timeouts, ever.
    pub sla_violations: u64,
    /// How often the controller reports, ms (stale after three).
    pub interval_ms: u64,
}

/// An alert rule that is firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertReport {
    /// The rule's name.
    pub rule: String,
    /// What it watches (`denial_rate`, `store_down`, …).
    pub kind: String,
    /// What fired, for a person.
    pub message: String,
    /// Since when, ms since the epoch.
    pub since_ms: u64,
}

/// One second of the server's life, for the charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When, ms since the epoch.
    pub t_ms: u64,
    /// Allowed decisions in that second.
    pub allowed: u64,
    /// Denied decisions in that second.
    pub denied: u64,
    /// Median check latency in that second, ms.
    pub p50_ms: f64,
    /// 99th percentile check latency in that second, ms.
    pub p99_ms: f64,
    /// Tasks waiting over every queue (as of the last queue read).
    pub queue_waiting: u64,
    /// Tasks completed over every queue in that second.
    pub queue_completed: u64,
    /// 1 when the store's breaker was not closed or the store not ready.
    pub store_down: u8,
}
