//! The worker's beat, once a second: it reports this process's slots to each queue (the
//! queue's fleet, see [`crate::fleet`]) and, when autoscaling, sets them to this process's
//! share of what the queues need.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tracing::{debug, info};

use super::{Counters, Worker};
use crate::fleet::share;
use crate::plan::{Observed, autoscale};

/// How long a process's report of its slots lives: three beats, so one late beat does not
/// drop it from the fleet, and a process that died leaves within 3 s.
const REPORT_TTL: Duration = Duration::from_secs(3);

impl Worker {
    /// Every second: reports this process's slots to each queue (the fleet), and with
    /// autoscaling sets them to this process's share of what the queues need. On stop, says
    /// the process has gone, so the others take over its share at once.
    pub(super) async fn beat(
        &self,
        active: &AtomicU32,
        counters: &Counters,
        mut stop: watch::Receiver<bool>,
    ) {
        // Unique per run: worker ids are often the same on every host (a container's pid).
        let process = format!("{}/{:08x}", self.id, fastrand::u32(..));
        while !*stop.borrow() {
            let processes = self
                .report(&process, active.load(Ordering::Relaxed), REPORT_TTL)
                .await;
            let seen = if self.autoscale {
                self.observe(counters).await
            } else {
                None
            };
            if let Some(seen) = seen {
                // What the whole fleet needs (each process may run up to `max`), shared.
                let fleet_max = self.max.saturating_mul(processes.max(1));
                let want = share(
                    autoscale(&seen, 1, fleet_max),
                    processes,
                    self.min,
                    self.max,
                );
                let was = active.swap(want, Ordering::Relaxed);
                counters.peak_workers.fetch_max(want, Ordering::Relaxed);
                if want != was {
                    info!(
                        from = was,
                        to = want,
                        backlog = seen.backlog,
                        "scaling workers"
                    );
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
        }
        self.report(&process, 0, Duration::ZERO).await;
    }

    /// Reports `slots` to every queue; answers the most processes any queue's fleet has (0
    /// when no report got through: the store is away, or an older server has no fleet).
    async fn report(&self, process: &str, slots: u32, ttl: Duration) -> u32 {
        let mut processes = 0;
        for queue in &self.queues {
            match self.store.report_workers(queue, process, slots, ttl).await {
                Ok(fleet) => processes = processes.max(fleet.processes),
                Err(e) => debug!(queue, error = %e, "cannot report this worker process"),
            }
        }
        processes
    }

    async fn observe(&self, counters: &Counters) -> Option<Observed> {
        let mut backlog = 0;
        let mut interval_ns = u64::MAX;
        let mut burst = 1;
        let mut deadline = self.deadline_ms;
        for queue in &self.queues {
            let stats = self.store.stats(queue).await.ok()?;
            backlog += stats.backlog();
            let limit = stats.spec().limit().ok()?;
            // Several queues: plan for the fastest (the most workers any one needs).
            interval_ns = interval_ns.min(limit.interval_ns());
            burst = burst.max(limit.burst());
            deadline = deadline.or(stats.deadline_ms);
        }
        let seen_us = counters.service_us.load(Ordering::Relaxed);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Some(Observed {
            backlog,
            interval_ns,
            burst,
            service_time: if seen_us == 0 {
                self.service_guess
            } else {
                Duration::from_micros(seen_us)
            },
            time_left: deadline.map(|d| Duration::from_millis(d.saturating_sub(now_ms))),
        })
    }
}
