//! The service's stats report: what `GET /v1/stats` answers and the alert rules read.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Service;
use crate::stats::{ControllerUsage, Inputs, StatsReport, StoreReport};

/// A report younger than this is served as it is: many dashboards cost one refresh a second.
const FRESH: Duration = Duration::from_millis(1000);

/// The longest a refresh waits for the store's ping or the queue store's list.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Milliseconds since the epoch on the wall clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Service {
    /// Counts a decision of `key` under `policy`: the metrics, and the heavy-hitters summary
    /// when it was denied.
    pub fn record_decision(&self, policy: &str, key: &str, allowed: bool) {
        self.metrics.decision(policy, allowed);
        if !allowed {
            self.stats.denied(policy, key, now_ms());
        }
    }

    /// Records how long a check took, for the metrics and the stats.
    pub fn record_latency(&self, api: &'static str, seconds: f64) {
        self.metrics.check_latency(api, seconds);
        self.stats.latency(seconds);
    }

    /// Keeps a unified controller's report for the stats.
    pub fn controller_report(&self, name: &str, usage: ControllerUsage) {
        self.stats.controller(name, usage, now_ms());
    }

    /// The last report when it is fresh, else a new one ([`refresh_stats`](Self::refresh_stats)).
    pub async fn stats_report(&self) -> Arc<StatsReport> {
        if let Some(report) = self.fresh_report() {
            return report;
        }
        // One refresh at a time; whoever waited finds the report it made.
        let _one = self.refreshing.lock().await;
        if let Some(report) = self.fresh_report() {
            return report;
        }
        self.refresh_stats().await
    }

    fn fresh_report(&self) -> Option<Arc<StatsReport>> {
        let last = self.last_report.lock().ok()?;
        let (at, report) = last.as_ref()?;
        (at.elapsed() < FRESH).then(|| report.clone())
    }

    /// Reads the store's health and the queues, builds a report, takes a sample (at most one
    /// a second), evaluates the alert rules and updates the queue metrics. The server calls
    /// it once a second.
    pub async fn refresh_stats(&self) -> Arc<StatsReport> {
        let config = self.config();
        let (ready, queues) = tokio::join!(
            tokio::time::timeout(READ_TIMEOUT, self.ready()),
            tokio::time::timeout(READ_TIMEOUT, self.queues.list()),
        );
        let ready = match ready {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.message),
            Err(_) => Err(format!(
                "the store did not answer a ping in {READ_TIMEOUT:?}"
            )),
        };
        let queues = match queues {
            Ok(Ok(list)) => Ok(list),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the queue store did not answer in {READ_TIMEOUT:?}"
            )),
        };
        let health = self.store_health();
        let store = StoreReport {
            kind: if config.redis.is_some() {
                "redis"
            } else {
                "memory"
            }
            .to_string(),
            ready: ready.is_ok(),
            error: ready
                .err()
                .or_else(|| health.as_ref().and_then(|h| h.last_error.clone())),
            tracked_keys: self.store.tracked_keys(),
            breaker: health.as_ref().map(|h| h.breaker.name().to_string()),
            open_slots: health.as_ref().map_or(0, |h| h.open_slots),
            failures_total: health.as_ref().map_or(0, |h| h.failures_total),
            fallback_decisions_total: health.as_ref().map_or(0, |h| h.fallback_decisions_total),
            breaker_opened_total: health.as_ref().map_or(0, |h| h.opened_total),
        };
        let configured = config
            .policies
            .values()
            .map(|p| {
                let limit = p.limit;
                (
                    p.name.clone(),
                    limit.rate().to_string(),
                    limit.algorithm().name().to_string(),
                )
            })
            .collect();
        let mut report = self.stats.report(Inputs {
            now_ms: now_ms(),
            uptime_s: self.started.elapsed().as_secs(),
            totals: self.metrics.decision_totals(),
            configured,
            store,
            queues,
        });
        // The rules read this report; the report then shows what fires after reading it.
        self.alerts.evaluate(&config.alerts, &report);
        report.alerts = self.alerts.firing();
        let report = Arc::new(report);
        self.metrics.update_from_report(&report);
        if let Ok(mut last) = self.last_report.lock() {
            *last = Some((Instant::now(), report.clone()));
        }
        report
    }
}
