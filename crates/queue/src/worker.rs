//! Workers: take tasks when the queue's limit allows, run a handler, acknowledge or fail, and
//! keep the lease alive meanwhile. A worker runs up to `max` slots, each one task at a time;
//! the autoscaler decides how many slots are active.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tollgate_queue::worker::{JobError, Worker};
//! use tollgate_queue::{Lease, MemoryQueues};
//! # async fn run() -> Result<(), tollgate_queue::QueueError> {
//! let store = Arc::new(MemoryQueues::new());
//! let report = Worker::new(store, vec!["emails".into()], |lease: Lease| async move {
//!     println!("sending {}", lease.payload);
//!     Ok::<(), JobError>(())
//! })
//! .concurrency(4)
//! .run(async { let _ = tokio::signal::ctrl_c().await; })
//! .await?;
//! println!("{} done", report.completed);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::error::QueueError;
use crate::store::{BoxFuture, QueueStore};
use crate::task::{FailOutcome, Lease, Reservation};

mod beat;

/// A failed attempt: what went wrong, and optionally when to try again (a webhook's
/// `Retry-After`); without it the queue's backoff decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// Recorded as the task's last error.
    pub message: String,
    /// Overrides the backoff.
    pub retry_after: Option<Duration>,
}

impl JobError {
    /// A failure to retry with the queue's backoff.
    pub fn new(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure to retry after `delay`.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> JobError {
        JobError {
            message: message.into(),
            retry_after: Some(delay),
        }
    }
}

/// Runs one task. Any `Fn(Lease) -> impl Future<Output = Result<(), JobError>>` is one.
pub trait Handler: Send + Sync + 'static {
    /// Runs the task the lease holds.
    fn handle(&self, lease: Lease) -> BoxFuture<'static, Result<(), JobError>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Lease) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn handle(&self, lease: Lease) -> BoxFuture<'static, Result<(), JobError>> {
        Box::pin(self(lease))
    }
}

/// What a worker did, when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerReport {
    /// Tasks acknowledged.
    pub completed: u64,
    /// Attempts that failed and will be retried.
    pub retried: u64,
    /// Tasks dead-lettered by this worker.
    pub dead: u64,
    /// Leases lost (expired before the ack: the task may run again elsewhere).
    pub lost: u64,
    /// The most worker slots active at once (the autoscaler's highest count).
    pub peak_workers: u32,
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    lost: AtomicU64,
    /// The service time seen, an exponential average in µs (0: none yet).
    service_us: AtomicU64,
    peak_workers: AtomicU32,
}

/// What a slot does after a task.
enum Next {
    /// Runs this task, which the last ack reserved.
    Task(Lease),
    /// Waits this long (the last ack's reserve found nothing to start), then asks the store.
    Wait(Duration),
    /// Asks the store for a task now.
    Ask,
}

/// A worker on one or more queues (tried in turn).
pub struct Worker {
    store: Arc<dyn QueueStore>,
    queues: Vec<String>,
    handler: Arc<dyn Handler>,
    min: u32,
    max: u32,
    autoscale: bool,
    deadline_ms: Option<u64>,
    service_guess: Duration,
    idle_poll: Duration,
    id: String,
    /// Per queue: found gone (expired or removed) at the last look, so that is logged once
    /// when it goes, not at every poll while it stays gone.
    gone: Vec<AtomicBool>,
}

impl Worker {
    /// A worker with one slot on `queues`, running `handler`.
    pub fn new(store: Arc<dyn QueueStore>, queues: Vec<String>, handler: impl Handler) -> Worker {
        Worker {
            store,
            gone: queues.iter().map(|_| AtomicBool::new(false)).collect(),
            queues,
            handler: Arc::new(handler),
            min: 1,
            max: 1,
            autoscale: false,
            deadline_ms: None,
            service_guess: Duration::from_secs(1),
            idle_poll: Duration::from_millis(500),
            id: format!("worker-{}", std::process::id()),
        }
    }

    /// Runs `n` tasks at a time.
    pub fn concurrency(mut self, n: u32) -> Worker {
        self.min = n.max(1);
        self.max = n.max(1);
        self.autoscale = false;
        self
    }

    /// Scales between `min` and `max` slots from the backlog, the rate, the service time
    /// seen and the deadline (see [`autoscale`]), checked every second.
    pub fn autoscale(mut self, min: u32, max: u32) -> Worker {
        self.min = min.max(1);
        self.max = max.max(self.min);
        self.autoscale = true;
        self
    }

    /// Aims to finish the backlog by this time (ms since the epoch); otherwise the queue's
    /// own deadline, if it has one.
    pub fn deadline_ms(mut self, deadline: u64) -> Worker {
        self.deadline_ms = Some(deadline);
        self
    }

    /// The service time assumed before any task has finished (default 1 s).
    pub fn service_time_guess(mut self, guess: Duration) -> Worker {
        self.service_guess = guess;
        self
    }

    /// The longest wait between looks at an empty queue (default 500 ms). A rate-limited
    /// queue is looked at again exactly when its next token is due.
    pub fn idle_poll(mut self, poll: Duration) -> Worker {
        self.idle_poll = poll.max(Duration::from_millis(1));
        self
    }

    /// Names the worker in leases and logs.
    pub fn id(mut self, id: impl Into<String>) -> Worker {
        self.id = id.into();
        self
    }

    /// Runs until `shutdown` completes, then finishes the tasks in hand and returns.
    /// Fails at once if a queue does not exist.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<WorkerReport, QueueError> {
        for queue in &self.queues {
            self.store.stats(queue).await?;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        counters.peak_workers.store(self.min, Ordering::Relaxed);
        let active = Arc::new(AtomicU32::new(self.min));
        let me = Arc::new(self);
        let mut slots = tokio::task::JoinSet::new();
        for slot in 0..me.max {
            let (me, counters, active, stop) = (
                me.clone(),
                counters.clone(),
                active.clone(),
                stop_rx.clone(),
            );
            slots.spawn(async move { me.slot(slot, &active, &counters, stop).await });
        }
        // The beat: reports this process's slots each second, and autoscales.
        {
            let (me, counters, active, stop) = (
                me.clone(),
                counters.clone(),
                active.clone(),
                stop_rx.clone(),
            );
            slots.spawn(async move { me.beat(&active, &counters, stop).await });
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        while slots.join_next().await.is_some() {}
        Ok(WorkerReport {
            completed: counters.completed.load(Ordering::Relaxed),
            retried: counters.retried.load(Ordering::Relaxed),
            dead: counters.dead.load(Ordering::Relaxed),
            lost: counters.lost.load(Ordering::Relaxed),
            peak_workers: counters.peak_workers.load(Ordering::Relaxed),
        })
    }

    async fn slot(
        &self,
        slot: u32,
        active: &AtomicU32,
        counters: &Counters,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut turn = 0usize;
        let mut next = Next::Ask;
        while !*stop.borrow() {
            // A worker on one queue acknowledges a task and reserves the next in one call.
            let chain = self.queues.len() == 1 && slot < active.load(Ordering::Relaxed);
            let wait = match std::mem::replace(&mut next, Next::Ask) {
                Next::Task(lease) => {
                    next = self.execute(lease, counters, chain).await;
                    continue;
                }
                Next::Wait(wait) => wait,
                Next::Ask if slot >= active.load(Ordering::Relaxed) => Duration::from_millis(200),
                Next::Ask => match self.next_task(&mut turn).await {
                    Ok(lease) => {
                        next = self.execute(lease, counters, chain).await;
                        continue;
                    }
                    Err(wait) => wait,
                },
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        // Stopped after an ack had reserved the next task: it is in hand, so it runs.
        if let Next::Task(lease) = next {
            self.execute(lease, counters, false).await;
        }
    }

    /// What a slot does after an ack that also reserved ([`QueueStore::ack_and_reserve`]),
    /// as [`next_task`](Self::next_task) would for one queue.
    fn after_reserve(&self, reservation: Reservation) -> Next {
        let wait = |ms: u64| Next::Wait(self.idle_poll.min(Duration::from_millis(ms.max(1))));
        match reservation {
            Reservation::Task(lease) => Next::Task(lease),
            Reservation::RateLimited { wait_ms } => wait(wait_ms),
            Reservation::Empty {
                next_due_ms: Some(due),
            } => wait(due),
            Reservation::Empty { next_due_ms: None } | Reservation::Paused => {
                Next::Wait(self.idle_poll)
            }
        }
    }

    /// Tries each queue once, starting at the next in turn; a lease, or how long to wait.
    async fn next_task(&self, turn: &mut usize) -> Result<Lease, Duration> {
        let mut wait = self.idle_poll;
        for i in 0..self.queues.len() {
            let at = (*turn + i) % self.queues.len();
            let queue = &self.queues[at];
            let reserved = self.store.reserve(queue, &self.id).await;
            self.note_gone(at, &reserved);
            match reserved {
                Ok(Reservation::Task(lease)) => {
                    *turn = (*turn + i + 1) % self.queues.len();
                    return Ok(lease);
                }
                Ok(Reservation::RateLimited { wait_ms }) => {
                    wait = wait.min(Duration::from_millis(wait_ms.max(1)));
                }
                Ok(Reservation::Empty {
                    next_due_ms: Some(due),
                }) => {
                    wait = wait.min(Duration::from_millis(due.max(1)));
                }
                Ok(Reservation::Empty { next_due_ms: None } | Reservation::Paused) => {}
                Err(QueueError::UnknownQueue { .. }) => {}
                Err(e) => warn!(queue, error = %e, "reserve failed; trying again"),
            }
        }
        Err(wait)
    }

    /// Logs a queue going (it expired, idle and empty, or was removed) and coming back: the
    /// worker keeps asking, since a producer may create it again.
    fn note_gone(&self, at: usize, reserved: &Result<Reservation, QueueError>) {
        let gone = matches!(reserved, Err(QueueError::UnknownQueue { .. }));
        if self.gone[at].swap(gone, Ordering::Relaxed) != gone {
            let queue = &self.queues[at];
            if gone {
                warn!(
                    queue,
                    "the queue is gone (expired or removed); waiting for it to be created again"
                );
            } else {
                info!(queue, "the queue is back");
            }
        }
    }

    /// Runs a task and reports its outcome. With `chain`, a success is reported with
    /// [`QueueStore::ack_and_reserve`], and what it reserved is what the slot does next.
    async fn execute(&self, lease: Lease, counters: &Counters, chain: bool) -> Next {
        let started = tokio::time::Instant::now();
        debug!(
            queue = lease.queue,
            task = lease.task,
            attempt = lease.attempt,
            "task started"
        );
        let beat = self.heartbeat(lease.clone());
        let outcome = self.handler.handle(lease.clone()).await;
        beat.abort();
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let old = counters.service_us.load(Ordering::Relaxed);
        let avg = if old == 0 { took } else { (old * 7 + took) / 8 };
        counters.service_us.store(avg.max(1), Ordering::Relaxed);
        let mut next = Next::Ask;
        let result = match &outcome {
            Ok(()) if chain => match self.store.ack_and_reserve(&lease, &self.id).await {
                Ok(reservation) => {
                    next = reservation.map_or(Next::Ask, |r| self.after_reserve(r));
                    Ok(None)
                }
                // Perhaps not acknowledged: acknowledge as without `chain`.
                Err(e) if e.is_transient() => {
                    self.settle(|| self.store.ack(&lease)).await.map(|()| None)
                }
                Err(e) => Err(e),
            },
            Ok(()) => self.settle(|| self.store.ack(&lease)).await.map(|()| None),
            Err(e) => self
                .settle(|| self.store.fail(&lease, &e.message, e.retry_after))
                .await
                .map(Some),
        };
        match result {
            Ok(None) => counters.completed.fetch_add(1, Ordering::Relaxed),
            Ok(Some(FailOutcome::Retry { delay_ms })) => {
                debug!(task = lease.task, delay_ms, "task failed; retrying");
                counters.retried.fetch_add(1, Ordering::Relaxed)
            }
            Ok(Some(FailOutcome::Dead)) => {
                warn!(queue = lease.queue, task = lease.task, "task dead-lettered");
                counters.dead.fetch_add(1, Ordering::Relaxed)
            }
            Err(e) => {
                warn!(queue = lease.queue, task = lease.task, error = %e,
                      "lease lost: the task may run again");
                counters.lost.fetch_add(1, Ordering::Relaxed)
            }
        };
        next
    }

    /// Renews the lease every third of the visibility timeout until aborted.
    fn heartbeat(&self, lease: Lease) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let period = Duration::from_millis(lease.expires_ms.saturating_sub(lease.started_ms) / 3)
            .max(Duration::from_millis(5));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if let Err(e) = store.heartbeat(&lease).await {
                    warn!(task = lease.task, error = %e, "heartbeat failed");
                    if matches!(e, QueueError::LeaseLost { .. }) {
                        return;
                    }
                }
            }
        })
    }

    /// Reports an outcome, trying again while the store is briefly away: a few times, with
    /// doubling pauses. If it stays away the lease expires and the task runs again.
    async fn settle<T, F>(&self, call: impl Fn() -> F) -> Result<T, QueueError>
    where
        F: Future<Output = Result<T, QueueError>>,
    {
        let mut pause = Duration::from_millis(50);
        for _ in 0..6 {
            match call().await {
                Err(e) if e.is_transient() => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => return other,
            }
        }
        call().await
    }
}
