//! Prometheus metrics. Names and labels are listed in the README; a test parses the output.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    check_seconds: Family<ApiLabels, Histogram>,
    store_seconds: Histogram,
    store_errors: Family<CodeLabels, Counter>,
    tracked_keys: Gauge,
    reloads: Family<ResultLabels, Counter>,
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
        Metrics {
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
    /// Counts a decision.
    pub fn decision(&self, policy: &str, allowed: bool) {
        let outcome = if allowed { "allowed" } else { "denied" };
        self.decisions
            .get_or_create(&DecisionLabels {
                policy: policy.to_string(),
                outcome,
            })
            .inc();
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

    /// The Prometheus text exposition, with `tracked_keys` set to the store's count.
    pub fn encode(&self, tracked_keys: Option<u64>) -> String {
        if let Some(n) = tracked_keys {
            self.tracked_keys.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
