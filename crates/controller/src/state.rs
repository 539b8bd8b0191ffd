//! Everything behind the controller's one lock: the window, the queues, the tier, the records
//! and the counters. Each method is short and never waits, so the lock is a plain mutex held
//! for microseconds, never across an `.await`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::ControllerConfig;
use crate::error::ControllerError;
use crate::events::{Events, Violation};
use crate::permit::{Grant, Permit};
use crate::queue::{Queues, Waiter};
use crate::stats::{CategoryUsage, ControllerStats, RequestRecord};
use crate::tiers::{Jitter, at_least, next_state};
use crate::types::{OperationCategory, PerPriority, Priority, ThrottleState};
use crate::window::LocalWindow;

/// Whether a request fits now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Granted,
    /// It would take the window over the capacity (less the reserve, unless Critical).
    BlockedTotal,
    /// It would take its category over its share (never for Critical).
    BlockedCategory,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) total_requests: u64,
    pub(crate) granted: u64,
    pub(crate) throttled: u64,
    pub(crate) sla_violations: [u64; 4],
}

#[derive(Debug)]
pub(crate) struct State {
    /// Whether usage comes from a shared store rather than `window`.
    shared: bool,
    window: LocalWindow,
    /// The shared store's usage, total and per category, as last seen.
    shared_usage: (u64, [u64; 3]),
    pub(crate) queues: Queues,
    /// Waiters taken out of their queue while the shared store decides on them.
    pub(crate) in_flight: [u32; 4],
    pub(crate) tier: ThrottleState,
    alerting: bool,
    high_load: bool,
    jitter: Jitter,
    next_waiter: u64,
    next_grant: u64,
    /// Grants in order, each with its id (for [`Permit::complete`]).
    records: VecDeque<(u64, RequestRecord)>,
    pub(crate) counters: Counters,
    pub(crate) warned_unmonitored: bool,
}

impl State {
    pub(crate) fn new(config: &ControllerConfig, shared: bool) -> State {
        State {
            shared,
            window: LocalWindow::new(Instant::now()),
            shared_usage: (0, [0; 3]),
            queues: Queues::default(),
            in_flight: [0; 4],
            tier: ThrottleState::Normal,
            alerting: false,
            high_load: false,
            jitter: Jitter::new(config.jitter_seed()),
            next_waiter: 1,
            next_grant: 1,
            records: VecDeque::new(),
            counters: Counters::default(),
            warned_unmonitored: false,
        }
    }

    /// The weight counted now, total and per category.
    pub(crate) fn usage(&self) -> (u64, [u64; 3]) {
        if self.shared {
            self.shared_usage
        } else {
            (self.window.total(), self.window.by_category())
        }
    }

    /// Records what the shared store said the usage is.
    pub(crate) fn set_shared_usage(&mut self, total: u64, by_category: [u64; 3]) {
        self.shared_usage = (total, by_category);
    }

    /// Records one category's and the total usage after a shared grant.
    pub(crate) fn set_shared_grant(&mut self, total: u64, category: OperationCategory, used: u64) {
        self.shared_usage.0 = total;
        self.shared_usage.1[category.index()] = used;
    }

    /// Forgets what left the window and re-evaluates the tier, the alert and the scan
    /// interval.
    pub(crate) fn observe(&mut self, config: &ControllerConfig, now: Instant) -> Events {
        self.window.prune(now);
        let window = config.window();
        while let Some((_, r)) = self.records.front() {
            if r.timestamp + window > now {
                break;
            }
            self.records.pop_front();
        }
        self.evaluate(config)
    }

    /// Re-evaluates the tier, the alert and the scan interval from the usage as it is.
    pub(crate) fn evaluate(&mut self, config: &ControllerConfig) -> Events {
        let (used, _) = self.usage();
        let capacity = config.capacity();
        let mut events = Events {
            used,
            capacity,
            ..Events::default()
        };
        let next = next_state(config, self.tier, used);
        if next != self.tier {
            events.tier = Some((self.tier, next));
            self.tier = next;
        }
        let alerting = at_least(used, capacity, config.alert_percent());
        events.alert = alerting && !self.alerting;
        self.alerting = alerting;
        let high_load = at_least(used, capacity, config.high_load_percent());
        if high_load != self.high_load {
            self.high_load = high_load;
            events.scan_interval = Some(self.scan_interval(config));
        }
        events
    }

    pub(crate) fn scan_interval(&self, config: &ControllerConfig) -> Duration {
        if self.high_load {
            config.scan_interval_high_load()
        } else {
            config.scan_interval()
        }
    }

    /// Whether a request fits in the in-process window now.
    pub(crate) fn decide(
        &self,
        config: &ControllerConfig,
        weight: u32,
        priority: Priority,
        category: OperationCategory,
    ) -> Verdict {
        let (total, by_category) = self.usage();
        let weight = u64::from(weight);
        if total + weight > config.total_limit(priority) {
            return Verdict::BlockedTotal;
        }
        if priority != Priority::Critical
            && by_category[category.index()] + weight > config.share_weight(category)
        {
            return Verdict::BlockedCategory;
        }
        Verdict::Granted
    }

    /// Whether a new request may skip the queues: nothing waits, or is being decided, at its
    /// priority or above.
    pub(crate) fn may_skip_queue(&self, priority: Priority) -> bool {
        self.queues.clear_at_or_above(priority)
            && self.in_flight[..=priority.index()].iter().all(|n| *n == 0)
    }

    /// Queues a request; its answer comes through the returned receiver.
    pub(crate) fn enqueue(
        &mut self,
        config: &ControllerConfig,
        priority: Priority,
        request: (u32, OperationCategory, String),
        enqueued: Instant,
    ) -> (
        u64,
        Instant,
        tokio::sync::oneshot::Receiver<Result<Permit, ControllerError>>,
    ) {
        let (weight, category, operation) = request;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let id = self.next_waiter;
        self.next_waiter += 1;
        let deadline = enqueued + config.sla(priority);
        let waiter = Waiter {
            id,
            weight,
            category,
            operation,
            enqueued,
            deadline,
            reply,
        };
        self.queues.push(priority, waiter);
        (id, deadline, rx)
    }

    /// Draws the permit's delay from the tier and numbers the grant.
    pub(crate) fn prepare(
        &mut self,
        config: &ControllerConfig,
        now: Instant,
        priority: Priority,
        weight: u32,
        category: OperationCategory,
        enqueued: Instant,
    ) -> Grant {
        let tier = config.tier(self.tier);
        let delay = self.jitter.delay(tier.delay_min, tier.delay_max);
        let id = self.next_grant;
        self.next_grant += 1;
        Grant {
            id,
            weight,
            priority,
            category,
            delay,
            granted_at: now,
            queue_time: now.saturating_duration_since(enqueued),
        }
    }

    /// Counts a grant whose permit reached its caller.
    pub(crate) fn commit(
        &mut self,
        config: &ControllerConfig,
        grant: &Grant,
        operation: String,
        queued: bool,
    ) {
        let call_at = grant.granted_at + grant.delay;
        if !self.shared {
            self.window
                .insert(call_at + config.window(), grant.weight, grant.category);
        }
        let throttled = queued || self.tier != ThrottleState::Normal;
        self.counters.granted += 1;
        self.counters.throttled += u64::from(throttled);
        let record = RequestRecord {
            timestamp: grant.granted_at,
            call_at,
            weight: grant.weight,
            priority: grant.priority,
            category: grant.category,
            operation,
            queue_time_ms: u64::try_from(grant.queue_time.as_millis()).unwrap_or(u64::MAX),
            execution_time_ms: None,
        };
        self.records.push_back((grant.id, record));
    }

    /// Grants a waiter taken out of its queue. False if its caller has gone, in which case
    /// nothing is counted.
    pub(crate) fn grant_waiter(
        &mut self,
        inner: &std::sync::Arc<crate::controller::Inner>,
        now: Instant,
        priority: Priority,
        waiter: Waiter,
    ) -> bool {
        let config = &inner.config;
        let grant = self.prepare(
            config,
            now,
            priority,
            waiter.weight,
            waiter.category,
            waiter.enqueued,
        );
        let permit = Permit::new(inner.clone(), grant);
        // Sent before it is counted: if the caller is gone, the permit comes back and the
        // capacity was never taken. The caller cannot use it before the lock is released.
        match waiter.reply.send(Ok(permit)) {
            Ok(()) => {
                self.commit(config, &grant, waiter.operation, true);
                true
            }
            Err(_) => false,
        }
    }

    /// Answers a waiter whose SLA has passed with an [`ControllerError::SlaTimeout`], counts
    /// the violation and returns it for the event.
    pub(crate) fn expire(
        &mut self,
        config: &ControllerConfig,
        priority: Priority,
        waiter: Waiter,
        now: Instant,
    ) -> Violation {
        let violation = self.violation(config, priority, &waiter, now);
        let _ = waiter.reply.send(Err(sla_error(&violation)));
        violation
    }

    /// Counts an SLA violation of `waiter`.
    pub(crate) fn violation(
        &mut self,
        config: &ControllerConfig,
        priority: Priority,
        waiter: &Waiter,
        now: Instant,
    ) -> Violation {
        self.counters.sla_violations[priority.index()] += 1;
        Violation {
            priority,
            category: waiter.category,
            operation: waiter.operation.clone(),
            sla: config.sla(priority),
            waited: now.saturating_duration_since(waiter.enqueued),
        }
    }

    /// Sets the execution time of a grant still in the window.
    pub(crate) fn complete(&mut self, id: u64, execution_time_ms: u64) {
        if let Ok(at) = self.records.binary_search_by_key(&id, |(i, _)| *i) {
            self.records[at].1.execution_time_ms = Some(execution_time_ms);
        }
    }

    pub(crate) fn records(&self) -> Vec<RequestRecord> {
        self.records.iter().map(|(_, r)| r.clone()).collect()
    }

    pub(crate) fn stats(&self, config: &ControllerConfig) -> ControllerStats {
        let (usage, by_category) = self.usage();
        let categories = OperationCategory::ALL.map(|category| CategoryUsage {
            category,
            used: by_category[category.index()],
            share: config.share_weight(category),
            share_percent: config.shares().get(category),
        });
        let queue_time: u64 = self.records.iter().map(|(_, r)| r.queue_time_ms).sum();
        let avg_queue_time_ms = if self.records.is_empty() {
            0.0
        } else {
            queue_time as f64 / self.records.len() as f64
        };
        ControllerStats {
            capacity: config.capacity(),
            window: config.window(),
            usage,
            usage_percent: usage as f64 * 100.0 / f64::from(config.capacity()),
            critical_reserve: config.critical_reserve(),
            categories,
            queue_depths: PerPriority::from_array(Priority::ALL.map(|p| self.queues.depth(p))),
            throttle_state: self.tier,
            speed_percent: config.tier(self.tier).speed_percent,
            total_requests: self.counters.total_requests,
            granted: self.counters.granted,
            throttled: self.counters.throttled,
            sla_violations: self.counters.sla_violations.iter().sum(),
            sla_violations_by_priority: PerPriority::from_array(self.counters.sla_violations),
            avg_queue_time_ms,
            records_in_window: self.records.len(),
            scan_interval: self.scan_interval(config),
            shared: self.shared,
        }
    }
}

/// The error a waiter gets when its SLA passes.
pub(crate) fn sla_error(v: &Violation) -> ControllerError {
    ControllerError::SlaTimeout {
        priority: v.priority,
        category: v.category,
        operation: v.operation.clone(),
        sla: v.sla,
        waited: v.waited,
    }
}
