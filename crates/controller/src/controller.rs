//! The controller: validation, the fast path, the wait in a queue, the monitoring task.

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::ControllerConfig;
use crate::error::{ConfigError, ControllerError};
use crate::events::Events;
use crate::permit::Permit;
use crate::shared::{SharedBudget, SharedVerdict, SharedWindow};
use crate::state::{State, Verdict, sla_error};
use crate::stats::{ControllerStats, RequestRecord};
use crate::types::{OperationCategory, Priority};

/// What the controller shares with its permits and its monitoring task.
pub(crate) struct Inner {
    pub(crate) config: ControllerConfig,
    pub(crate) shared: Option<SharedWindow>,
    pub(crate) state: Mutex<State>,
}

/// One API quota shared by a program's parts, by priority. See the [crate] documentation.
pub struct UnifiedRateController {
    inner: Arc<Inner>,
    monitor: Mutex<Option<JoinHandle<()>>>,
    /// The task of [`report_to`](Self::report_to), if one runs.
    pub(crate) reporter: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for UnifiedRateController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnifiedRateController")
            .field("config", &self.inner.config)
            .field("shared", &self.inner.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// A request either granted at once or queued.
enum Admission {
    Granted(Permit),
    Queued {
        id: u64,
        deadline: Instant,
        rx: oneshot::Receiver<Result<Permit, ControllerError>>,
    },
}

impl UnifiedRateController {
    /// A controller deciding in this process. Every [`ControllerConfig`] is valid (its
    /// builder validates), so this cannot fail.
    pub fn new(config: ControllerConfig) -> UnifiedRateController {
        UnifiedRateController::build(config, None)
    }

    /// A controller whose window is shared through a store with every other instance using
    /// the same [`SharedBudget`] name (see [`SharedBudget`] for the guarantee). Fails if the
    /// call margin is over 60 s or the window cannot be expressed as a store limit.
    pub fn with_shared_budget(
        config: ControllerConfig,
        budget: SharedBudget,
    ) -> Result<UnifiedRateController, ConfigError> {
        let shared = SharedWindow::new(&config, budget)?;
        Ok(UnifiedRateController::build(config, Some(shared)))
    }

    fn build(config: ControllerConfig, shared: Option<SharedWindow>) -> UnifiedRateController {
        let state = Mutex::new(State::new(&config, shared.is_some()));
        UnifiedRateController {
            inner: Arc::new(Inner {
                config,
                shared,
                state,
            }),
            monitor: Mutex::new(None),
            reporter: Mutex::new(None),
        }
    }

    /// What the reporting task holds: it stops once the controller is dropped.
    pub(crate) fn weak_inner(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// The configuration.
    pub fn config(&self) -> &ControllerConfig {
        &self.inner.config
    }

    /// Starts the monitoring task on the current Tokio runtime: every
    /// [`cycle_interval`](ControllerConfig::cycle_interval) it re-evaluates the tier and serves
    /// the queues. Requests that cannot be granted at once wait for it, so start it before
    /// requesting. Calling it again while it runs does nothing; the task stops when the
    /// controller is dropped. Outside a Tokio runtime it logs an error and starts nothing.
    pub async fn start_monitoring(&self) {
        let mut slot = self.monitor.lock();
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("start_monitoring needs a Tokio runtime; no monitoring started");
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.config.cycle_interval();
        *slot = Some(runtime.spawn(monitor(weak, every)));
    }

    /// Whether the monitoring task runs.
    pub fn is_monitoring(&self) -> bool {
        self.monitor
            .lock()
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// Asks for permission to make a call of `weight`.
    ///
    /// Granted at once if nothing waits at this priority or above and the request fits: the
    /// total (for non-Critical requests, less the Critical reserve) and its category's share
    /// (except for Critical). Otherwise it waits in its priority's queue, served by the
    /// monitoring task, until granted or until its SLA passes
    /// ([`ControllerError::SlaTimeout`]). A weight of 0, or one that could never be granted
    /// to this priority and category, is refused at once.
    ///
    /// Dropping the returned future while it waits takes the request out of its queue.
    pub async fn request_permit(
        &self,
        weight: u32,
        priority: Priority,
        category: OperationCategory,
        operation: String,
    ) -> Result<Permit, ControllerError> {
        self.inner.validate(weight, priority, category)?;
        let admission = match &self.inner.shared {
            None => self.local_admission(weight, priority, category, operation),
            Some(shared) => {
                self.shared_admission(shared, weight, priority, category, operation)
                    .await?
            }
        };
        match admission {
            Admission::Granted(permit) => Ok(permit),
            Admission::Queued { id, deadline, rx } => self.wait(priority, id, deadline, rx).await,
        }
    }

    fn local_admission(
        &self,
        weight: u32,
        priority: Priority,
        category: OperationCategory,
        operation: String,
    ) -> Admission {
        let inner = &self.inner;
        let config = &inner.config;
        let now = Instant::now();
        let mut st = inner.state.lock();
        st.counters.total_requests += 1;
        let mut events = st.observe(config, now);
        let admission = if st.may_skip_queue(priority)
            && st.decide(config, weight, priority, category) == Verdict::Granted
        {
            let grant = st.prepare(config, now, priority, weight, category, now);
            st.commit(config, &grant, operation, false);
            events.merge(st.evaluate(config));
            Admission::Granted(Permit::new(inner.clone(), grant))
        } else {
            self.enqueue(&mut st, priority, (weight, category, operation), now)
        };
        drop(st);
        events.emit();
        admission
    }

    async fn shared_admission(
        &self,
        shared: &SharedWindow,
        weight: u32,
        priority: Priority,
        category: OperationCategory,
        operation: String,
    ) -> Result<Admission, ControllerError> {
        let inner = &self.inner;
        let config = &inner.config;
        let start = Instant::now();
        let skip = {
            let mut st = inner.state.lock();
            st.counters.total_requests += 1;
            st.may_skip_queue(priority)
        };
        let verdict = if skip {
            Some(shared.admit(weight, priority, category).await?)
        } else {
            None
        };
        let now = Instant::now();
        let mut st = inner.state.lock();
        let admission = match verdict {
            Some(SharedVerdict::Granted {
                total,
                category: used,
            }) => {
                st.set_shared_grant(total, category, used);
                let grant = st.prepare(config, now, priority, weight, category, start);
                st.commit(config, &grant, operation, false);
                Admission::Granted(Permit::new(inner.clone(), grant))
            }
            _ => self.enqueue(&mut st, priority, (weight, category, operation), start),
        };
        let events = st.observe(config, now);
        drop(st);
        events.emit();
        Ok(admission)
    }

    fn enqueue(
        &self,
        st: &mut State,
        priority: Priority,
        request: (u32, OperationCategory, String),
        now: Instant,
    ) -> Admission {
        if !st.warned_unmonitored && !self.is_monitoring() {
            st.warned_unmonitored = true;
            tracing::warn!(
                "a request is waiting but the controller is not monitoring: call \
                 start_monitoring() or it will only be answered at its SLA"
            );
        }
        let (id, deadline, rx) = st.enqueue(&self.inner.config, priority, request, now);
        tracing::debug!(priority = %priority, depth = st.queues.depth(priority), "request queued");
        Admission::Queued { id, deadline, rx }
    }

    /// Waits in the queue until granted or until the SLA passes.
    async fn wait(
        &self,
        priority: Priority,
        id: u64,
        deadline: Instant,
        mut rx: oneshot::Receiver<Result<Permit, ControllerError>>,
    ) -> Result<Permit, ControllerError> {
        let mut guard = Dequeue {
            inner: &self.inner,
            priority,
            id,
            armed: true,
        };
        let answer = tokio::select! {
            biased;
            answer = &mut rx => Some(answer),
            () = tokio::time::sleep_until(deadline) => None,
        };
        guard.armed = false;
        if let Some(answer) = answer {
            return answer.unwrap_or(Err(ControllerError::Cancelled));
        }
        let now = Instant::now();
        let timed_out = {
            let mut st = self.inner.state.lock();
            st.queues
                .remove(priority, id)
                .map(|w| st.violation(&self.inner.config, priority, &w, now))
        };
        match timed_out {
            Some(violation) => {
                let error = sla_error(&violation);
                Events {
                    violations: vec![violation],
                    ..Events::default()
                }
                .emit();
                Err(error)
            }
            // Taken out of the queue by a cycle at the same moment: its answer is on its way.
            None => rx.await.unwrap_or(Err(ControllerError::Cancelled)),
        }
    }

    /// Runs one monitoring cycle now, as the monitoring task does every cycle interval:
    /// re-evaluates the tier and serves the queues, highest priority first, at most the
    /// tier's `max_per_cycle` requests per priority. Returns how many it granted. For tests,
    /// benchmarks and programs that drive the controller themselves.
    pub async fn run_cycle(&self) -> usize {
        self.inner.run_cycle().await
    }

    /// A snapshot of usage, queues, tier and counters. In shared mode it first reads the
    /// shared usage from the store (keeping the last known usage if the store fails).
    pub async fn get_stats(&self) -> ControllerStats {
        self.inner.stats().await
    }

    /// The interval between market scans: [`scan_interval`](ControllerConfig::scan_interval)
    /// (1 h), or [`scan_interval_high_load`](ControllerConfig::scan_interval_high_load) (2 h)
    /// while usage is at or above [`high_load_percent`](ControllerConfig::high_load_percent).
    pub async fn get_scan_interval(&self) -> Duration {
        self.inner.refresh_shared_usage().await;
        let mut st = self.inner.state.lock();
        let events = st.observe(&self.inner.config, Instant::now());
        let interval = st.scan_interval(&self.inner.config);
        drop(st);
        events.emit();
        interval
    }

    /// The records of the requests granted within the window, oldest first.
    pub async fn get_records(&self) -> Vec<RequestRecord> {
        let mut st = self.inner.state.lock();
        let events = st.observe(&self.inner.config, Instant::now());
        let records = st.records();
        drop(st);
        events.emit();
        records
    }
}

impl Drop for UnifiedRateController {
    fn drop(&mut self) {
        if let Some(handle) = self.monitor.lock().take() {
            handle.abort();
        }
        if let Some(handle) = self.reporter.lock().take() {
            handle.abort();
        }
    }
}

impl Inner {
    /// Refuses a request that could never be granted.
    fn validate(
        &self,
        weight: u32,
        priority: Priority,
        category: OperationCategory,
    ) -> Result<(), ControllerError> {
        if weight == 0 {
            return Err(ControllerError::ZeroWeight);
        }
        let too_large = |max: u64, limited_by: &'static str| ControllerError::WeightTooLarge {
            weight,
            max,
            priority,
            category,
            limited_by,
        };
        let config = &self.config;
        let w = u64::from(weight);
        let capacity = u64::from(config.capacity());
        if w > capacity {
            return Err(too_large(capacity, "the capacity per window"));
        }
        if priority == Priority::Critical {
            return Ok(());
        }
        let share = config.share_weight(category);
        let total = config.total_limit(priority);
        if share < total && w > share {
            return Err(too_large(
                share,
                "the category's share; only Critical requests may exceed it",
            ));
        }
        if w > total {
            return Err(too_large(
                total,
                "the capacity less the Critical reserve; only Critical requests may use it",
            ));
        }
        Ok(())
    }

    /// In shared mode, reads the usage of every instance from the store.
    async fn refresh_shared_usage(&self) {
        let Some(shared) = &self.shared else { return };
        match shared.peek().await {
            Ok((total, by_category)) => self.state.lock().set_shared_usage(total, by_category),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the shared usage; using the last known")
            }
        }
    }
}

/// Takes a waiting request out of its queue if its future is dropped before the answer.
struct Dequeue<'a> {
    inner: &'a Arc<Inner>,
    priority: Priority,
    id: u64,
    armed: bool,
}

impl Drop for Dequeue<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner
                .state
                .lock()
                .queues
                .remove(self.priority, self.id);
        }
    }
}

/// The monitoring task: a cycle every `every` while the controller lives.
impl Inner {
    /// See [`UnifiedRateController::get_stats`].
    pub(crate) async fn stats(&self) -> ControllerStats {
        self.refresh_shared_usage().await;
        let mut st = self.state.lock();
        let events = st.observe(&self.config, Instant::now());
        let stats = st.stats(&self.config);
        drop(st);
        events.emit();
        stats
    }
}

async fn monitor(inner: Weak<Inner>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.run_cycle().await;
    }
}
