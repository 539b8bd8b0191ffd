//! The job queues `tollgate serve` answers `/v1/queues` with: in this process's memory with the
//! embedded store, or on the Redis of a Redis store (its own connection). Like the rate-limit
//! store, a Redis that cannot be reached does not stop the start-up: queue routes answer 503
//! `store_unavailable` while connecting goes on in the background.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tollgate_core::Error;
use tollgate_queue::fleet::Fleet;
use tollgate_queue::{
    BoxFuture, DeadTask, FailOutcome, Lease, MemoryQueues, NewTask, QueueError, QueueResult,
    QueueSpec, QueueStats, QueueStore, QueueUpdate, RedisQueues, Reservation,
};
use tollgate_redis::{RedisConfig, RedisStore};

use crate::config::Config;

/// The least a queue call may take on Redis: a queue script does more than a check, and a
/// worker would rather wait than see a spurious failure.
const MIN_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// Builds the queue store for `config`'s store.
pub(crate) async fn build(config: &Config) -> Arc<dyn QueueStore> {
    let Some(redis) = &config.redis else {
        return Arc::new(MemoryQueues::new());
    };
    let redis = redis
        .clone()
        .connect_timeout(config.guard.connect_timeout)
        .command_timeout(config.guard.timeout.max(MIN_COMMAND_TIMEOUT))
        // The over-limit cache is for checks; queue scripts never consult it.
        .over_limit_cache(0);
    let lazy = Arc::new(LazyQueues {
        config: redis,
        queues: OnceCell::new(),
        last_error: Mutex::new(None),
    });
    if let Err(e) = lazy.connect_once().await {
        tracing::error!(
            "cannot reach Redis at {} for the job queues: {e}; /v1/queues answers 503 and \
             connecting goes on in the background",
            lazy.config.url
        );
        tokio::spawn(lazy.clone().keep_connecting());
    }
    lazy
}

/// Queues on a Redis that may not be connected yet.
struct LazyQueues {
    config: RedisConfig,
    queues: OnceCell<RedisQueues>,
    last_error: Mutex<Option<String>>,
}

impl LazyQueues {
    async fn connect_once(&self) -> Result<(), Error> {
        match RedisStore::connect(&self.config).await {
            Ok(store) => {
                let _ = self.queues.set(RedisQueues::new(store));
                tracing::info!("job queues on Redis at {}", self.config.url);
                Ok(())
            }
            Err(e) => {
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
                Err(e)
            }
        }
    }

    /// Retries with a backoff from 100 ms to 5 s until connected.
    async fn keep_connecting(self: Arc<Self>) {
        let mut wait = Duration::from_millis(100);
        while self.queues.get().is_none() {
            tokio::time::sleep(wait).await;
            if let Err(e) = self.connect_once().await {
                tracing::debug!("still cannot reach Redis for the job queues: {e}");
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }

    fn connected(&self) -> QueueResult<&RedisQueues> {
        self.queues.get().ok_or_else(|| {
            let last = self.last_error.lock().ok().and_then(|l| l.clone());
            QueueError::Core(Error::Store {
                message: format!(
                    "the job queues are not connected to Redis at {} yet: {}",
                    self.config.url,
                    last.as_deref().unwrap_or("connecting")
                ),
                transient: true,
            })
        })
    }
}

/// Until connected, every call fails at once with a transient error (503 over HTTP).
impl QueueStore for LazyQueues {
    fn create(&self, spec: QueueSpec) -> BoxFuture<'_, QueueResult<QueueStats>> {
        Box::pin(async move { self.connected()?.create(spec).await })
    }
    fn list(&self) -> BoxFuture<'_, QueueResult<Vec<QueueStats>>> {
        Box::pin(async move { self.connected()?.list().await })
    }
    fn stats<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<QueueStats>> {
        Box::pin(async move { self.connected()?.stats(queue).await })
    }
    fn update<'a>(
        &'a self,
        queue: &'a str,
        update: QueueUpdate,
    ) -> BoxFuture<'a, QueueResult<QueueStats>> {
        Box::pin(async move { self.connected()?.update(queue, update).await })
    }
    fn remove<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<bool>> {
        Box::pin(async move { self.connected()?.remove(queue).await })
    }
    fn clear<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>> {
        Box::pin(async move { self.connected()?.clear(queue).await })
    }
    fn push<'a>(&'a self, queue: &'a str, task: NewTask) -> BoxFuture<'a, QueueResult<String>> {
        Box::pin(async move { self.connected()?.push(queue, task).await })
    }
    fn reserve<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
    ) -> BoxFuture<'a, QueueResult<Reservation>> {
        Box::pin(async move { self.connected()?.reserve(queue, worker).await })
    }
    fn heartbeat<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<u64>> {
        Box::pin(async move { self.connected()?.heartbeat(lease).await })
    }
    fn ack<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<()>> {
        Box::pin(async move { self.connected()?.ack(lease).await })
    }
    fn fail<'a>(
        &'a self,
        lease: &'a Lease,
        error: &'a str,
        retry_after: Option<Duration>,
    ) -> BoxFuture<'a, QueueResult<FailOutcome>> {
        Box::pin(async move { self.connected()?.fail(lease, error, retry_after).await })
    }
    fn dead<'a>(&'a self, queue: &'a str, limit: u64) -> BoxFuture<'a, QueueResult<Vec<DeadTask>>> {
        Box::pin(async move { self.connected()?.dead(queue, limit).await })
    }
    fn retry_dead<'a>(
        &'a self,
        queue: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, QueueResult<u64>> {
        Box::pin(async move { self.connected()?.retry_dead(queue, ids).await })
    }
    fn purge_dead<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>> {
        Box::pin(async move { self.connected()?.purge_dead(queue).await })
    }
    fn report_workers<'a>(
        &'a self,
        queue: &'a str,
        process: &'a str,
        slots: u32,
        ttl: Duration,
    ) -> BoxFuture<'a, QueueResult<Fleet>> {
        Box::pin(async move {
            let queues = self.connected()?;
            queues.report_workers(queue, process, slots, ttl).await
        })
    }
}
