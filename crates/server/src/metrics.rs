//! Prometheus metrics. Names and labels are listed in the README; a test parses the output.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod queues;

/// `policy` (a policy name, `inline` for a rate given in the request, or `envoy:<domain>`)
/// and `outcome` (`allowed` or `denied`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    policy: String,
    outcome: &'static str,
}

/// `api`: `http` or `grpc`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: &'static str,
}

/// `code`: the error's stable code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

/// `result`: `ok` or `error`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// `state`: `closed`, `open` or `half-open`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// Every metric the service exports.
pub struct Metrics {
    breaker_state: Family<StateLabels, Gauge>,
    fallback_decisions: Counter,
    breaker_opened: Counter,
    over_limit_cache_hits: Counter,
    open_slots: Gauge,
    /// The guard's totals at the last scrape, to turn them into counter increments.
    seen: std::sync::Mutex<(u64, u64, u64)>,
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    /// Each policy's (allowed, denied) counters once used, which `decisions` also holds. Policy names
    /// come from the config, so this stays small.
    by_policy: std::sync::RwLock<std::collections::HashMap<String, [Option<Counter>; 2]>>,
    check_seconds: Family<ApiLabels, Histogram>,
    store_seconds: Histogram,
    store_errors: Family<CodeLabels, Counter>,
    tracked_keys: Gauge,
    reloads: Family<ResultLabels, Counter>,
    queues: queues::QueueMetrics,
    /// The alert engine's metrics (`crate::alerts::metrics`), for `Alerts::new`.
    pub alerts: crate::alerts::AlertMetrics,
}

fn latency_histogram() -> Histogram {
    // 10 µs to ~5 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Decisions made, by policy and outcome",
            decisions.clone(),
        );
        let check_seconds = Family::<ApiLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "check_duration_seconds",
            "Time to answer a check, from request to decision, by API",
            check_seconds.clone(),
        );
        let store_seconds = latency_histogram();
        registry.register(
            "store_duration_seconds",
            "Time the store took per call",
            store_seconds.clone(),
        );
        let store_errors = Family::<CodeLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Store calls that failed, by error code",
            store_errors.clone(),
        );
        let tracked_keys = Gauge::default();
        registry.register(
            "tracked_keys",
            "Keys the store tracks now",
            tracked_keys.clone(),
        );
        let reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads, by result",
            reloads.clone(),
        );
        let breaker_state = Family::<StateLabels, Gauge>::default();
        registry.register(
            "store_breaker_state",
            "1 for the shared store's circuit breaker state now, 0 for the others",
            breaker_state.clone(),
        );
        let fallback_decisions = Counter::default();
        registry.register(
            "store_fallback_decisions",
            "Decisions made by on_store_failure because the shared store failed",
            fallback_decisions.clone(),
        );
        let breaker_opened = Counter::default();
        registry.register(
            "store_breaker_opened",
            "Times the shared store's circuit breaker opened",
            breaker_opened.clone(),
        );
        let over_limit_cache_hits = Counter::default();
        registry.register(
            "store_over_limit_cache_hits",
            "Checks the Redis over-limit cache denied without a round trip",
            over_limit_cache_hits.clone(),
        );
        let open_slots = Gauge::default();
        registry.register(
            "store_breaker_open_slots",
            "Redis Cluster hash slots whose circuit breakers are open now",
            open_slots.clone(),
        );
        let queues = queues::QueueMetrics::register(&mut registry);
        let alerts = crate::alerts::metrics::register(&mut registry);
        Metrics {
            alerts,
            queues,
            open_slots,
            by_policy: std::sync::RwLock::default(),
            breaker_state,
            fallback_decisions,
            breaker_opened,
            over_limit_cache_hits,
            seen: std::sync::Mutex::new((0, 0, 0)),
            registry,
            decisions,
            check_seconds,
            store_seconds,
            store_errors,
            tracked_keys,
            reloads,
        }
    }
}

impl Metrics {
    /// Counts a decision. The two counters of a policy are looked up by name once and kept,
    /// so a check does not build a label (an allocation) every time.
    pub fn decision(&self, policy: &str, allowed: bool) {
        let which = usize::from(!allowed);
        let cached = self
            .by_policy
            .read()
            .ok()
            .and_then(|m| m.get(policy)?[which].clone());
        if let Some(counter) = cached {
            counter.inc();
            return;
        }
        let outcome = ["allowed", "denied"][which];
        let counter = self
            .decisions
            .get_or_create(&DecisionLabels {
                policy: policy.to_string(),
                outcome,
            })
            .clone();
        counter.inc();
        if let Ok(mut map) = self.by_policy.write() {
            map.entry(policy.to_string()).or_default()[which] = Some(counter);
        }
    }

    /// Each policy's (allowed, denied) totals, for the stats report.
    pub fn decision_totals(&self) -> Vec<(String, u64, u64)> {
        let Ok(map) = self.by_policy.read() else {
            return Vec::new();
        };
        let get = |c: &Option<Counter>| c.as_ref().map_or(0, Counter::get);
        map.iter()
            .map(|(policy, [allowed, denied])| (policy.clone(), get(allowed), get(denied)))
            .collect()
    }

    /// Sets the queue and controller metrics from a stats report.
    pub fn update_from_report(&self, report: &crate::stats::StatsReport) {
        self.queues.update(report);
    }

    /// Records how long a check took end to end.
    pub fn check_latency(&self, api: &'static str, seconds: f64) {
        self.check_seconds
            .get_or_create(&ApiLabels { api })
            .observe(seconds);
    }

    /// Records a store call's duration and, if it failed, its error code.
    pub fn store_call(&self, seconds: f64, error: Option<&'static str>) {
        self.store_seconds.observe(seconds);
        if let Some(code) = error {
            self.store_errors.get_or_create(&CodeLabels { code }).inc();
        }
    }

    /// Counts a config reload.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// The Prometheus text exposition, with `tracked_keys` set to the store's count and the
    /// shared store's health, when there is one.
    pub fn encode(
        &self,
        tracked_keys: Option<u64>,
        health: Option<&tollgate_redis::guard::StoreHealth>,
    ) -> String {
        if let Some(n) = tracked_keys {
            self.tracked_keys.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Some(h) = health {
            for state in ["closed", "open", "half-open"] {
                let on = i64::from(h.breaker.name() == state);
                self.breaker_state
                    .get_or_create(&StateLabels { state })
                    .set(on);
            }
            self.open_slots
                .set(i64::try_from(h.open_slots).unwrap_or(i64::MAX));
            if let Ok(mut seen) = self.seen.lock() {
                self.fallback_decisions
                    .inc_by(h.fallback_decisions_total.saturating_sub(seen.0));
                self.breaker_opened
                    .inc_by(h.opened_total.saturating_sub(seen.1));
                self.over_limit_cache_hits
                    .inc_by(h.over_limit_cache_hits.saturating_sub(seen.2));
                *seen = (
                    h.fallback_decisions_total.max(seen.0),
                    h.opened_total.max(seen.1),
                    h.over_limit_cache_hits.max(seen.2),
                );
            }
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
