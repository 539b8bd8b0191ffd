//! The collector: what checks record as they happen (latency, denied keys) and the points it
//! keeps once a second to turn totals into rates and charts.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use tollgate_queue::QueueStats;

use super::heavy::HeavyHitters;
use super::latency::{Latencies, Snapshot};
use super::report::{
    ControllerReport, ControllerUsage, DecisionRates, HISTORY_LEN, LatencyReport, PolicyReport,
    QueueReport, RATE_WINDOW_S, Sample, StatsReport, StoreReport, TOP_DENIED,
};

/// Points closer together than this do not make a new one: a report asked for between two
/// samples is answered from the same points.
const MIN_POINT_GAP_MS: u64 = 900;

/// The most controllers remembered; a new name beyond it replaces the stalest report.
pub const MAX_CONTROLLERS: usize = 100;

/// A controller that stopped reporting is forgotten after this long.
const FORGET_CONTROLLER_MS: u64 = 10 * 60 * 1000;

/// What the server knows when it builds a report, apart from what [`Stats`] collects.
pub struct Inputs {
    /// Wall clock, ms since the epoch.
    pub now_ms: u64,
    /// Seconds since start.
    pub uptime_s: u64,
    /// (policy, allowed total, denied total) for each policy that decided something.
    pub totals: Vec<(String, u64, u64)>,
    /// (name, rate, algorithm) of each configured policy.
    pub configured: Vec<(String, String, String)>,
    /// The store.
    pub store: StoreReport,
    /// The queues, or why they could not be read.
    pub queues: Result<Vec<QueueStats>, String>,
}

/// One point: totals at a moment.
#[derive(Clone)]
struct Point {
    t_ms: u64,
    policies: HashMap<String, (u64, u64)>,
    latency: Snapshot,
    /// (started, completed) per queue.
    queues: HashMap<String, (u64, u64)>,
}

#[derive(Default)]
struct Points {
    /// The last [`RATE_WINDOW_S`] seconds of points, oldest first.
    recent: VecDeque<Point>,
    history: VecDeque<Sample>,
}

/// Everything the server collects for its reports.
pub struct Stats {
    latency: Latencies,
    denied: RwLock<HashMap<String, Arc<Mutex<HeavyHitters>>>>,
    points: Mutex<Points>,
    controllers: Mutex<HashMap<String, (u64, ControllerUsage)>>,
}

fn rates(now: (u64, u64), then: (u64, u64), seconds: f64) -> DecisionRates {
    let allowed = now.0.saturating_sub(then.0);
    let denied = now.1.saturating_sub(then.1);
    let per_s = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    DecisionRates {
        allowed_total: now.0,
        denied_total: now.1,
        allowed_per_s: per_s(allowed),
        denied_per_s: per_s(denied),
        denied_percent: if allowed + denied == 0 {
            0.0
        } else {
            100.0 * denied as f64 / (allowed + denied) as f64
        },
    }
}

impl Stats {
    /// Stats of a server started at `now_ms`. Its decision totals start at zero then, so that
    /// moment is the first point: decisions made before the first sample count in the rates
    /// (the alert rules would otherwise never see a burst that came before it).
    pub fn new(now_ms: u64) -> Stats {
        let start = Point {
            t_ms: now_ms,
            policies: HashMap::new(),
            latency: Snapshot::default(),
            queues: HashMap::new(),
        };
        Stats {
            latency: Latencies::default(),
            denied: RwLock::default(),
            points: Mutex::new(Points {
                recent: VecDeque::from([start]),
                history: VecDeque::new(),
            }),
            controllers: Mutex::default(),
        }
    }

    /// Records a check's latency.
    pub fn latency(&self, seconds: f64) {
        self.latency.record(seconds);
    }

    /// Counts a denial of `key` under `policy` in the heavy-hitters summary.
    pub fn denied(&self, policy: &str, key: &str, now_ms: u64) {
        let existing = self.denied.read().ok().and_then(|m| m.get(policy).cloned());
        let summary = match existing {
            Some(s) => s,
            None => match self.denied.write() {
                Ok(mut map) => map.entry(policy.to_string()).or_default().clone(),
                Err(_) => return,
            },
        };
        if let Ok(mut summary) = summary.lock() {
            summary.add(key, now_ms);
        }
    }

    /// Keeps a controller's report (see [`MAX_CONTROLLERS`]).
    pub fn controller(&self, name: &str, usage: ControllerUsage, now_ms: u64) {
        let Ok(mut map) = self.controllers.lock() else {
            return;
        };
        map.retain(|_, (at, _)| now_ms.saturating_sub(*at) < FORGET_CONTROLLER_MS);
        if map.len() >= MAX_CONTROLLERS && !map.contains_key(name) {
            let stalest = map
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone());
            if let Some(stalest) = stalest {
                map.remove(&stalest);
            }
        }
        map.insert(name.to_string(), (now_ms, usage));
    }

    fn top_denied(&self, policy: &str, now_ms: u64) -> Vec<super::DeniedKey> {
        let summary = self.denied.read().ok().and_then(|m| m.get(policy).cloned());
        summary
            .and_then(|s| s.lock().ok().map(|mut s| s.top(TOP_DENIED, now_ms)))
            .unwrap_or_default()
    }

    fn controllers(&self, now_ms: u64) -> Vec<ControllerReport> {
        let Ok(map) = self.controllers.lock() else {
            return Vec::new();
        };
        let mut all: Vec<ControllerReport> = map
            .iter()
            .filter(|(_, (at, _))| now_ms.saturating_sub(*at) < FORGET_CONTROLLER_MS)
            .map(|(name, (at, usage))| ControllerReport {
                name: name.clone(),
                received_ms: *at,
                stale: now_ms.saturating_sub(*at) > 3 * usage.interval_ms.max(1000),
                usage: usage.clone(),
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Builds a report from `inputs` and what was collected, and keeps a new point when the
    /// last one is old enough.
    pub fn report(&self, inputs: Inputs) -> StatsReport {
        let now_ms = inputs.now_ms;
        let latency_now = self.latency.snapshot();
        let point = Point {
            t_ms: now_ms,
            policies: inputs
                .totals
                .iter()
                .map(|(p, a, d)| (p.clone(), (*a, *d)))
                .collect(),
            latency: latency_now,
            queues: inputs
                .queues
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|q| (q.name.clone(), (q.started, q.completed)))
                .collect(),
        };
        let mut guard = self.points.lock().ok();
        let points = guard.as_deref_mut();
        let (oldest, history) = match points {
            Some(points) => {
                record(points, &point, &inputs);
                let oldest = points.recent.front().cloned();
                (oldest, points.history.iter().copied().collect())
            }
            None => (None, Vec::new()),
        };
        drop(guard);
        let empty = Point {
            t_ms: now_ms,
            policies: HashMap::new(),
            latency: Snapshot::default(),
            queues: HashMap::new(),
        };
        let then = oldest.unwrap_or(empty);
        let seconds = now_ms.saturating_sub(then.t_ms) as f64 / 1000.0;
        let zero = (0, 0);

        let mut sum_now = zero;
        let mut sum_then = zero;
        let mut policies: Vec<PolicyReport> = Vec::new();
        let mut names: Vec<&str> = point.policies.keys().map(String::as_str).collect();
        for (name, _, _) in &inputs.configured {
            if !point.policies.contains_key(name) {
                names.push(name);
            }
        }
        names.sort_unstable();
        for name in names {
            let now = point.policies.get(name).copied().unwrap_or(zero);
            let before = then.policies.get(name).copied().unwrap_or(zero);
            sum_now = (sum_now.0 + now.0, sum_now.1 + now.1);
            sum_then = (sum_then.0 + before.0, sum_then.1 + before.1);
            let configured = inputs.configured.iter().find(|(n, _, _)| n == name);
            policies.push(PolicyReport {
                name: name.to_string(),
                rate: configured.map(|(_, r, _)| r.clone()),
                algorithm: configured.map(|(_, _, a)| a.clone()),
                decisions: rates(now, before, seconds),
                top_denied: self.top_denied(name, now_ms),
            });
        }
        let recent = point.latency.since(&then.latency);
        let (queues, queues_error) = match inputs.queues {
            Ok(list) => (
                list.into_iter()
                    .map(|stats| queue_report(stats, &then, seconds))
                    .collect(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e)),
        };
        StatsReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            now_ms,
            uptime_s: inputs.uptime_s,
            store: inputs.store,
            decisions: rates(sum_now, sum_then, seconds),
            latency: LatencyReport {
                count: recent.count(),
                p50_ms: recent.quantile_ms(0.5),
                p99_ms: recent.quantile_ms(0.99),
                max_ms: recent.max_ms(),
            },
            policies,
            queues,
            queues_error,
            controllers: self.controllers(now_ms),
            alerts: Vec::new(),
            history,
        }
    }
}

fn queue_report(stats: QueueStats, then: &Point, seconds: f64) -> QueueReport {
    let (started, completed) = then
        .queues
        .get(&stats.name)
        .copied()
        .unwrap_or((stats.started, stats.completed));
    let per_s = |now: u64, before: u64| {
        if seconds > 0.0 {
            now.saturating_sub(before) as f64 / seconds
        } else {
            0.0
        }
    };
    QueueReport {
        completed_per_s: per_s(stats.completed, completed),
        started_per_s: per_s(stats.started, started),
        projected_finish_ms: stats.projected_finish_ms(),
        deadline_at_risk: stats.deadline_at_risk(),
        stats,
    }
}

/// Adds `point` (and its one-second sample) unless the last point is too recent, and drops
/// points older than the rate window.
fn record(points: &mut Points, point: &Point, inputs: &Inputs) {
    let last = points.recent.back();
    if last.is_some_and(|l| point.t_ms < l.t_ms + MIN_POINT_GAP_MS) {
        return;
    }
    if let Some(last) = last {
        let sum = |p: &Point| {
            p.policies
                .values()
                .fold((0u64, 0u64), |s, (a, d)| (s.0 + a, s.1 + d))
        };
        let (now, before) = (sum(point), sum(last));
        let latency = point.latency.since(&last.latency);
        // Queue counters outlive the server (in Redis): count only what a queue completed
        // since the last point that knew it.
        let completed: u64 = point
            .queues
            .iter()
            .filter_map(|(name, (_, now))| {
                let (_, before) = last.queues.get(name)?;
                Some(now.saturating_sub(*before))
            })
            .sum();
        let queues = inputs.queues.as_deref().unwrap_or_default();
        points.history.push_back(Sample {
            t_ms: point.t_ms,
            allowed: now.0.saturating_sub(before.0),
            denied: now.1.saturating_sub(before.1),
            p50_ms: latency.quantile_ms(0.5),
            p99_ms: latency.quantile_ms(0.99),
            queue_waiting: queues.iter().map(|q| q.waiting).sum(),
            queue_completed: completed,
            store_down: u8::from(
                !inputs.store.ready
                    || inputs
                        .store
                        .breaker
                        .as_deref()
                        .is_some_and(|b| b != "closed"),
            ),
        });
        while points.history.len() > HISTORY_LEN {
            points.history.pop_front();
        }
    }
    points.recent.push_back(point.clone());
    let window_ms = RATE_WINDOW_S * 1000;
    while points
        .recent
        .front()
        .is_some_and(|p| point.t_ms.saturating_sub(p.t_ms) > window_ms)
    {
        points.recent.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use tollgate_queue::{MemoryQueues, QueueSpec, QueueStore as _};

    use super::*;

    fn inputs(now_ms: u64, totals: &[(&str, u64, u64)], queues: Vec<QueueStats>) -> Inputs {
        Inputs {
            now_ms,
            uptime_s: 0,
            totals: totals
                .iter()
                .map(|(p, a, d)| (p.to_string(), *a, *d))
                .collect(),
            configured: Vec::new(),
            store: StoreReport::default(),
            queues: Ok(queues),
        }
    }

    /// A burst of decisions before the sampler's first beat (a server busy starting) still
    /// shows in the rates: the start is the first point.
    #[test]
    fn decisions_before_the_first_sample_count_in_the_rates() {
        let stats = Stats::new(10_000);
        let report = stats.report(inputs(10_500, &[("free", 1, 2)], Vec::new()));
        let free = &report.policies[0].decisions;
        assert_eq!((free.allowed_total, free.denied_total), (1, 2));
        assert!((free.denied_per_s - 4.0).abs() < 1e-9, "{free:?}");
        assert!((free.denied_percent - 200.0 / 3.0).abs() < 1e-9, "{free:?}");
        let report = stats.report(inputs(11_000, &[("free", 1, 2)], Vec::new()));
        assert_eq!(
            report.history.iter().map(|s| s.denied).collect::<Vec<_>>(),
            [2],
            "the first second's sample holds the burst"
        );
    }

    /// A queue's counters predate the server (Redis keeps them): the first sample that sees
    /// a queue charts none of its past completions, the next ones what it completed since.
    #[tokio::test]
    async fn a_queue_seen_first_charts_only_what_it_completes_after() {
        let queues = MemoryQueues::new();
        let spec = QueueSpec::new("5/s".parse().expect("rate")).name("q");
        queues.create(spec).await.expect("create");
        let mut q = queues.stats("q").await.expect("stats");
        let stats = Stats::new(0);
        q.completed = 1_000;
        stats.report(inputs(1_000, &[], vec![q.clone()]));
        q.completed = 1_003;
        let report = stats.report(inputs(2_000, &[], vec![q]));
        assert_eq!(
            report
                .history
                .iter()
                .map(|s| s.queue_completed)
                .collect::<Vec<_>>(),
            [0, 3]
        );
    }
}
