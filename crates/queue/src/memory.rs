//! Queues in this process's memory: the embedded store's queues. Exact and atomic (one mutex
//! per store; a queue operation is a few map updates), durable only as long as the process.
//! The same rules as the Redis store's scripts, tested by the same conformance suite.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tollgate_core::{Clock, Limit, SystemClock, gcra};

use crate::error::QueueError;
use crate::fleet::{Fleet, Reports};
use crate::spec::{QueueSpec, millis};
use crate::store::{BoxFuture, QueueResult, QueueStore, backoff_ms};
use crate::task::{
    DeadTask, FailOutcome, Lease, NewTask, PriorityDepth, QueueStats, QueueUpdate, Reservation,
};

/// The embedded store's queues. Cheap to share (`Arc`); every operation takes one lock.
pub struct MemoryQueues {
    clock: Arc<dyn Clock>,
    queues: Mutex<HashMap<String, Queue>>,
}

struct TaskData {
    payload: String,
    priority: u32,
    attempts: u32,
    last_error: String,
}

#[derive(Default)]
struct Counters {
    pushed: u64,
    started: u64,
    completed: u64,
    failed: u64,
    lost: u64,
    first_start_ms: u64,
    last_done_ms: u64,
}

struct Queue {
    spec: QueueSpec,
    limit: Limit,
    active: bool,
    created_ms: u64,
    /// The last change of any kind; an empty queue expires `idle_expiry` after it.
    touched_ms: u64,
    /// The token bucket: GCRA's theoretical arrival time, ns.
    tat: u64,
    workers: Reports,
    seq: u64,
    tasks: HashMap<u64, TaskData>,
    waiting: BTreeSet<(Reverse<u32>, u64)>,
    delayed: BTreeSet<(u64, u64)>,
    /// Task → lease expiry (ms), and the same ordered by expiry.
    in_flight: HashMap<u64, u64>,
    expiries: BTreeSet<(u64, u64)>,
    /// (when it died in ms, task), oldest first.
    dead: BTreeSet<(u64, u64)>,
    counters: Counters,
}

impl Default for MemoryQueues {
    fn default() -> Self {
        MemoryQueues::new()
    }
}

impl MemoryQueues {
    /// Queues on the system clock.
    pub fn new() -> MemoryQueues {
        MemoryQueues::with_clock(Arc::new(SystemClock::new()))
    }

    /// Queues on `clock` (tests use a fake one).
    pub fn with_clock(clock: Arc<dyn Clock>) -> MemoryQueues {
        MemoryQueues {
            clock,
            queues: Mutex::new(HashMap::new()),
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.now()
    }

    /// Runs `f` on queue `name` at the current time, after its housekeeping (due delayed tasks
    /// become ready, expired leases are reclaimed, an idle empty queue expires).
    fn with_queue<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Queue, u64, u64) -> QueueResult<T>,
    ) -> QueueResult<T> {
        let mut queues = self.queues.lock();
        let now_ns = self.now_ns();
        let now_ms = now_ns / 1_000_000;
        let Some(queue) = queues.get_mut(name) else {
            return Err(unknown(name));
        };
        if queue.expired(now_ms) {
            queues.remove(name);
            return Err(unknown(name));
        }
        queue.housekeep(now_ms);
        f(queue, now_ns, now_ms)
    }
}

fn unknown(name: &str) -> QueueError {
    QueueError::UnknownQueue {
        name: name.to_string(),
    }
}

fn task_id(seq: u64) -> String {
    format!("{seq:016}")
}

fn parse_id(queue: &str, id: &str, attempt: u32) -> QueueResult<u64> {
    id.parse().map_err(|_| QueueError::LeaseLost {
        queue: queue.to_string(),
        task: id.to_string(),
        attempt,
    })
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
            && self.delayed.is_empty()
            && self.in_flight.is_empty()
            && self.dead.is_empty()
    }

    fn expired(&self, now_ms: u64) -> bool {
        let expiry = self.spec.idle_expiry_ms;
        expiry > 0 && self.is_empty() && now_ms >= self.touched_ms.saturating_add(expiry)
    }

    fn housekeep(&mut self, now_ms: u64) {
        while let Some(&(due, id)) = self.delayed.first() {
            if due > now_ms {
                break;
            }
            self.delayed.pop_first();
            if let Some(task) = self.tasks.get(&id) {
                self.waiting.insert((Reverse(task.priority), id));
            }
        }
        while let Some(&(expires, id)) = self.expiries.first() {
            if expires > now_ms {
                break;
            }
            self.expiries.pop_first();
            self.in_flight.remove(&id);
            self.counters.lost += 1;
            self.touched_ms = now_ms;
            let max = self.spec.max_attempts;
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            task.last_error = format!(
                "lease expired after {} ms: the worker died or did not heartbeat",
                self.spec.visibility_timeout_ms
            );
            if task.attempts >= max {
                self.counters.failed += 1;
                self.dead.insert((now_ms, id));
            } else {
                self.waiting.insert((Reverse(task.priority), id));
            }
        }
    }

    fn stats(&self, now_ns: u64) -> QueueStats {
        let now_ms = now_ns / 1_000_000;
        let mut by_priority: Vec<PriorityDepth> = Vec::new();
        for &(Reverse(priority), _) in &self.waiting {
            if let Some(last) = by_priority.last_mut().filter(|l| l.priority == priority) {
                last.waiting += 1;
            } else if by_priority.len() == 64 {
                break;
            } else {
                by_priority.push(PriorityDepth {
                    priority,
                    waiting: 1,
                });
            }
        }
        // The next start is possible when a cost of 1 fits: TAT + T ≤ now + τ.
        let next_ns = (self.tat.max(now_ns) + self.limit.interval_ns())
            .saturating_sub(self.limit.tolerance_ns());
        let c = &self.counters;
        let span_ms = c.last_done_ms.saturating_sub(c.first_start_ms);
        QueueStats {
            name: self.spec.queue_name().to_string(),
            rate: self.spec.rate,
            burst: self.spec.burst,
            active: self.active,
            max_attempts: self.spec.max_attempts,
            visibility_timeout_ms: self.spec.visibility_timeout_ms,
            idle_expiry_ms: self.spec.idle_expiry_ms,
            backoff_base_ms: self.spec.backoff_base_ms,
            backoff_max_ms: self.spec.backoff_max_ms,
            created_ms: self.created_ms,
            deadline_ms: self.spec.deadline_ms,
            waiting: self.waiting.len() as u64,
            waiting_by_priority: by_priority,
            in_flight: self.in_flight.len() as u64,
            delayed: self.delayed.len() as u64,
            dead: self.dead.len() as u64,
            pushed: c.pushed,
            started: c.started,
            completed: c.completed,
            failed: c.failed,
            lost: c.lost,
            next_token_ms: tollgate_core::ceil_ms(next_ns.saturating_sub(now_ns)),
            throughput_per_s: if span_ms == 0 || c.completed == 0 {
                0.0
            } else {
                c.completed as f64 * 1000.0 / span_ms as f64
            },
            now_ms,
            workers: self.workers.fleet(now_ms),
        }
    }

    /// The lease's task id, if the lease is still the holder's.
    fn held(&self, lease: &Lease) -> QueueResult<u64> {
        let id = parse_id(&lease.queue, &lease.task, lease.attempt)?;
        let current = self.tasks.get(&id).map(|t| t.attempts);
        if self.in_flight.contains_key(&id) && current == Some(lease.attempt) {
            Ok(id)
        } else {
            Err(QueueError::LeaseLost {
                queue: lease.queue.clone(),
                task: lease.task.clone(),
                attempt: lease.attempt,
            })
        }
    }

    fn release(&mut self, id: u64) {
        if let Some(expires) = self.in_flight.remove(&id) {
            self.expiries.remove(&(expires, id));
        }
    }
}

impl MemoryQueues {
    fn create_now(&self, spec: QueueSpec) -> QueueResult<QueueStats> {
        let spec = spec.validate()?;
        let limit = spec.limit()?;
        let name = spec.queue_name().to_string();
        let mut queues = self.queues.lock();
        let now_ns = self.now_ns();
        let now_ms = now_ns / 1_000_000;
        if queues.get(&name).is_some_and(|q| !q.expired(now_ms)) {
            return Err(QueueError::QueueExists { name });
        }
        let queue = Queue {
            spec,
            limit,
            active: true,
            created_ms: now_ms,
            touched_ms: now_ms,
            tat: 0,
            workers: Reports::default(),
            seq: 0,
            tasks: HashMap::new(),
            waiting: BTreeSet::new(),
            delayed: BTreeSet::new(),
            in_flight: HashMap::new(),
            expiries: BTreeSet::new(),
            dead: BTreeSet::new(),
            counters: Counters::default(),
        };
        let stats = queue.stats(now_ns);
        queues.insert(name, queue);
        Ok(stats)
    }

    fn reserve_now(&self, name: &str) -> QueueResult<Reservation> {
        self.with_queue(name, |q, now_ns, now_ms| {
            if !q.active {
                return Ok(Reservation::Paused);
            }
            let Some(&(Reverse(priority), id)) = q.waiting.first() else {
                let next_due_ms = q
                    .delayed
                    .first()
                    .map(|&(due, _)| due.saturating_sub(now_ms));
                return Ok(Reservation::Empty { next_due_ms });
            };
            let (decision, tat) = gcra::decide(q.tat, &q.limit, now_ns, 1, 0);
            let Some(tat) = tat else {
                return Ok(Reservation::RateLimited {
                    wait_ms: decision.retry_after_ms,
                });
            };
            q.tat = tat;
            q.waiting.pop_first();
            let expires = now_ms + q.spec.visibility_timeout_ms;
            q.in_flight.insert(id, expires);
            q.expiries.insert((expires, id));
            q.touched_ms = now_ms;
            let c = &mut q.counters;
            c.started += 1;
            if c.first_start_ms == 0 {
                c.first_start_ms = now_ms;
            }
            let task = q.tasks.get_mut(&id).ok_or_else(|| unknown(name))?;
            task.attempts += 1;
            Ok(Reservation::Task(Lease {
                queue: name.to_string(),
                task: task_id(id),
                attempt: task.attempts,
                payload: task.payload.clone(),
                priority,
                started_ms: now_ms,
                started_us: now_ns / 1000,
                expires_ms: expires,
            }))
        })
    }

    fn fail_now(
        &self,
        lease: &Lease,
        error: &str,
        retry_after: Option<Duration>,
    ) -> QueueResult<FailOutcome> {
        self.with_queue(&lease.queue, |q, _, now_ms| {
            let id = q.held(lease)?;
            q.release(id);
            q.counters.failed += 1;
            q.touched_ms = now_ms;
            let (max, base, cap) = (
                q.spec.max_attempts,
                q.spec.backoff_base_ms,
                q.spec.backoff_max_ms,
            );
            let task = q.tasks.get_mut(&id).ok_or_else(|| unknown(&lease.queue))?;
            task.last_error = error.to_string();
            if task.attempts >= max {
                q.dead.insert((now_ms, id));
                return Ok(FailOutcome::Dead);
            }
            let delay_ms = match retry_after {
                Some(d) => millis(d),
                None => backoff_ms(base, cap, task.attempts, fastrand::f64()),
            };
            q.delayed.insert((now_ms + delay_ms, id));
            Ok(FailOutcome::Retry { delay_ms })
        })
    }
}

fn ready<'a, T: Send + 'a>(value: QueueResult<T>) -> BoxFuture<'a, QueueResult<T>> {
    Box::pin(std::future::ready(value))
}

impl QueueStore for MemoryQueues {
    fn create(&self, spec: QueueSpec) -> BoxFuture<'_, QueueResult<QueueStats>> {
        ready(self.create_now(spec))
    }

    fn list(&self) -> BoxFuture<'_, QueueResult<Vec<QueueStats>>> {
        let mut queues = self.queues.lock();
        let now_ns = self.now_ns();
        let now_ms = now_ns / 1_000_000;
        queues.retain(|_, q| !q.expired(now_ms));
        let mut all: Vec<QueueStats> = queues
            .values_mut()
            .map(|q| {
                q.housekeep(now_ms);
                q.stats(now_ns)
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        ready(Ok(all))
    }

    fn stats<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<QueueStats>> {
        ready(self.with_queue(queue, |q, now_ns, _| Ok(q.stats(now_ns))))
    }

    fn update<'a>(
        &'a self,
        queue: &'a str,
        update: QueueUpdate,
    ) -> BoxFuture<'a, QueueResult<QueueStats>> {
        ready(self.with_queue(queue, |q, now_ns, now_ms| {
            let mut spec = q.spec.clone();
            if let Some(rate) = update.rate {
                spec.rate = rate;
            }
            if let Some(burst) = update.burst {
                spec.burst = burst;
            }
            if let Some(deadline) = update.deadline_ms {
                spec.deadline_ms = deadline;
            }
            let spec = spec.validate()?;
            q.limit = spec.limit()?;
            q.spec = spec;
            if let Some(active) = update.active {
                q.active = active;
            }
            q.touched_ms = now_ms;
            Ok(q.stats(now_ns))
        }))
    }

    fn remove<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<bool>> {
        ready(Ok(self.queues.lock().remove(queue).is_some()))
    }

    fn clear<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>> {
        ready(self.with_queue(queue, |q, _, now_ms| {
            let ids: Vec<u64> = (q.waiting.iter().map(|&(_, id)| id))
                .chain(q.delayed.iter().map(|&(_, id)| id))
                .collect();
            for id in &ids {
                q.tasks.remove(id);
            }
            q.waiting.clear();
            q.delayed.clear();
            q.touched_ms = now_ms;
            Ok(ids.len() as u64)
        }))
    }

    fn push<'a>(&'a self, queue: &'a str, task: NewTask) -> BoxFuture<'a, QueueResult<String>> {
        if let Err(e) = task.validate() {
            return ready(Err(e));
        }
        ready(self.with_queue(queue, |q, _, now_ms| {
            q.seq += 1;
            let id = q.seq;
            q.tasks.insert(
                id,
                TaskData {
                    payload: task.payload,
                    priority: task.priority,
                    attempts: 0,
                    last_error: String::new(),
                },
            );
            if task.delay_ms > 0 {
                q.delayed.insert((now_ms.saturating_add(task.delay_ms), id));
            } else {
                q.waiting.insert((Reverse(task.priority), id));
            }
            q.counters.pushed += 1;
            q.touched_ms = now_ms;
            Ok(task_id(id))
        }))
    }

    fn reserve<'a>(
        &'a self,
        queue: &'a str,
        _worker: &'a str,
    ) -> BoxFuture<'a, QueueResult<Reservation>> {
        ready(self.reserve_now(queue))
    }

    fn heartbeat<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<u64>> {
        ready(self.with_queue(&lease.queue, |q, _, now_ms| {
            let id = q.held(lease)?;
            q.release(id);
            let expires = now_ms + q.spec.visibility_timeout_ms;
            q.in_flight.insert(id, expires);
            q.expiries.insert((expires, id));
            Ok(expires)
        }))
    }

    fn ack<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<()>> {
        ready(self.with_queue(&lease.queue, |q, _, now_ms| {
            let id = q.held(lease)?;
            q.release(id);
            q.tasks.remove(&id);
            q.counters.completed += 1;
            q.counters.last_done_ms = now_ms;
            q.touched_ms = now_ms;
            Ok(())
        }))
    }

    fn fail<'a>(
        &'a self,
        lease: &'a Lease,
        error: &'a str,
        retry_after: Option<Duration>,
    ) -> BoxFuture<'a, QueueResult<FailOutcome>> {
        ready(self.fail_now(lease, error, retry_after))
    }

    fn dead<'a>(&'a self, queue: &'a str, limit: u64) -> BoxFuture<'a, QueueResult<Vec<DeadTask>>> {
        ready(self.with_queue(queue, |q, _, _| {
            Ok(q.dead
                .iter()
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .filter_map(|&(died_ms, id)| {
                    q.tasks.get(&id).map(|t| DeadTask {
                        id: task_id(id),
                        payload: t.payload.clone(),
                        priority: t.priority,
                        attempts: t.attempts,
                        last_error: t.last_error.clone(),
                        died_ms,
                    })
                })
                .collect())
        }))
    }

    fn retry_dead<'a>(
        &'a self,
        queue: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, QueueResult<u64>> {
        ready(self.with_queue(queue, |q, _, now_ms| {
            let chosen: Vec<(u64, u64)> = q
                .dead
                .iter()
                .filter(|(_, id)| ids.is_empty() || ids.contains(&task_id(*id)))
                .copied()
                .collect();
            for key @ (_, id) in &chosen {
                q.dead.remove(key);
                if let Some(task) = q.tasks.get_mut(id) {
                    task.attempts = 0;
                    q.waiting.insert((Reverse(task.priority), *id));
                }
            }
            q.touched_ms = now_ms;
            Ok(chosen.len() as u64)
        }))
    }

    fn purge_dead<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>> {
        ready(self.with_queue(queue, |q, _, now_ms| {
            let n = q.dead.len() as u64;
            for (_, id) in std::mem::take(&mut q.dead) {
                q.tasks.remove(&id);
            }
            q.touched_ms = now_ms;
            Ok(n)
        }))
    }

    fn report_workers<'a>(
        &'a self,
        queue: &'a str,
        process: &'a str,
        slots: u32,
        ttl: Duration,
    ) -> BoxFuture<'a, QueueResult<Fleet>> {
        // Not a touch: workers waiting on an empty queue do not keep it alive.
        ready(self.with_queue(queue, |q, _, now_ms| {
            let expires = now_ms.saturating_add(millis(ttl));
            q.workers.report(process, slots, expires, now_ms);
            Ok(q.workers.fleet(now_ms))
        }))
    }
}
