//! The job queues' and controllers' metrics, set from each stats report (once a second while
//! the server runs), so a scrape never waits for the queue store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::stats::StatsReport;

/// `queue`: a queue's name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

/// `queue` and `state`: `waiting`, `in_flight`, `delayed` or `dead`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueStateLabels {
    queue: String,
    state: &'static str,
}

/// `controller`: the name a unified controller reports under.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The queue and controller metrics.
pub(crate) struct QueueMetrics {
    tasks: Family<QueueStateLabels, Gauge>,
    started: Family<QueueLabels, Counter>,
    completed: Family<QueueLabels, Counter>,
    failed: Family<QueueLabels, Counter>,
    rate: Family<QueueLabels, FloatGauge>,
    at_risk: Family<QueueLabels, Gauge>,
    worker_processes: Family<QueueLabels, Gauge>,
    worker_slots: Family<QueueLabels, Gauge>,
    controller_usage: Family<ControllerLabels, FloatGauge>,
    /// The store's (started, completed, failed) at the last update, per queue, to turn them
    /// into counter increments; also which queues have series to remove when they go.
    seen: Mutex<HashMap<String, [u64; 3]>>,
    controllers_seen: Mutex<Vec<String>>,
}

const STATES: [&str; 4] = ["waiting", "in_flight", "delayed", "dead"];

impl QueueMetrics {
    /// Registers the metrics in `registry`.
    pub(crate) fn register(registry: &mut Registry) -> QueueMetrics {
        let m = QueueMetrics {
            tasks: Family::default(),
            started: Family::default(),
            completed: Family::default(),
            failed: Family::default(),
            rate: Family::default(),
            at_risk: Family::default(),
            worker_processes: Family::default(),
            worker_slots: Family::default(),
            controller_usage: Family::default(),
            seen: Mutex::default(),
            controllers_seen: Mutex::default(),
        };
        registry.register(
            "queue_tasks",
            "Tasks in each job queue now, by state",
            m.tasks.clone(),
        );
        registry.register(
            "queue_started",
            "Attempts started by each job queue",
            m.started.clone(),
        );
        registry.register(
            "queue_completed",
            "Tasks each job queue completed",
            m.completed.clone(),
        );
        registry.register(
            "queue_failed",
            "Attempts that failed in each job queue (retried or dead-lettered)",
            m.failed.clone(),
        );
        registry.register(
            "queue_rate_per_second",
            "Each job queue's configured rate, in starts per second",
            m.rate.clone(),
        );
        registry.register(
            "queue_deadline_at_risk",
            "1 when a job queue's projected finish is after its deadline",
            m.at_risk.clone(),
        );
        registry.register(
            "queue_worker_processes",
            "Worker processes serving each job queue (their reports have not expired)",
            m.worker_processes.clone(),
        );
        registry.register(
            "queue_worker_slots",
            "Worker slots those processes run, all together",
            m.worker_slots.clone(),
        );
        registry.register(
            "controller_usage_ratio",
            "A reporting unified controller's window usage, 0 to 1 of its capacity",
            m.controller_usage.clone(),
        );
        m
    }

    /// Sets every series from `report`; queues and controllers that are gone lose theirs.
    pub(crate) fn update(&self, report: &StatsReport) {
        if report.queues_error.is_none()
            && let Ok(mut seen) = self.seen.lock()
        {
            let mut now = HashMap::with_capacity(report.queues.len());
            for q in &report.queues {
                let s = &q.stats;
                let label = QueueLabels {
                    queue: s.name.clone(),
                };
                let depths = [s.waiting, s.in_flight, s.delayed, s.dead];
                for (state, n) in STATES.into_iter().zip(depths) {
                    self.tasks
                        .get_or_create(&QueueStateLabels {
                            queue: s.name.clone(),
                            state,
                        })
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
                let totals = [s.started, s.completed, s.failed];
                // A queue recreated under the same name starts from 0 again: count from there.
                let before = seen.get(&s.name).copied().unwrap_or([0; 3]);
                for ((family, now), before) in [&self.started, &self.completed, &self.failed]
                    .into_iter()
                    .zip(totals)
                    .zip(before)
                {
                    family
                        .get_or_create(&label)
                        .inc_by(now.saturating_sub(before));
                }
                let per_second = s.rate.count() as f64 * 1e9 / s.rate.period_ns().max(1) as f64;
                self.rate.get_or_create(&label).set(per_second);
                self.at_risk
                    .get_or_create(&label)
                    .set(i64::from(q.deadline_at_risk == Some(true)));
                let workers = s.workers;
                self.worker_processes
                    .get_or_create(&label)
                    .set(i64::from(workers.processes));
                self.worker_slots
                    .get_or_create(&label)
                    .set(i64::from(workers.slots));
                now.insert(s.name.clone(), totals);
            }
            for gone in seen.keys().filter(|name| !now.contains_key(*name)) {
                self.remove_queue(gone);
            }
            *seen = now;
        }
        if let Ok(mut seen) = self.controllers_seen.lock() {
            let mut now = Vec::with_capacity(report.controllers.len());
            for c in &report.controllers {
                let label = ControllerLabels {
                    controller: c.name.clone(),
                };
                self.controller_usage
                    .get_or_create(&label)
                    .set(c.usage.usage_percent / 100.0);
                now.push(c.name.clone());
            }
            for gone in seen.iter().filter(|n| !now.contains(n)) {
                self.controller_usage.remove(&ControllerLabels {
                    controller: gone.clone(),
                });
            }
            *seen = now;
        }
    }

    fn remove_queue(&self, name: &str) {
        let label = QueueLabels {
            queue: name.to_string(),
        };
        for state in STATES {
            self.tasks.remove(&QueueStateLabels {
                queue: name.to_string(),
                state,
            });
        }
        for family in [&self.started, &self.completed, &self.failed] {
            family.remove(&label);
        }
        for family in [&self.at_risk, &self.worker_processes, &self.worker_slots] {
            family.remove(&label);
        }
        self.rate.remove(&label);
    }
}
