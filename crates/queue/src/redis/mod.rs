//! Queues on Redis: durable (with AOF), shared by workers on any number of hosts. Every
//! operation is one Lua script (`scripts/`, one file an operation) run by EVALSHA on Redis's
//! clock, so a reserve (token, task, lease) is atomic however many workers ask at once.
//!
//! Keys: `tollgate:q:{NAME}:meta|waiting|delayed|inflight|dead|tasks|tat|workers`, one hash tag per
//! queue, so a queue lives in one Cluster slot; the set `tollgate:queues` names the queues.

mod batch;
mod reply;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tollgate_redis::{BASE_LUA, LuaScript, RedisStore};

use crate::error::QueueError;
use crate::fleet::Fleet;
use crate::spec::{QueueSpec, millis, validate_name};
use crate::store::{BoxFuture, QueueResult, QueueStore};
use crate::task::{DeadTask, FailOutcome, Lease, NewTask, QueueStats, QueueUpdate, Reservation};
use batch::Batchers;
use reply::Reply;

/// The set of queue names.
const REGISTRY: &str = "tollgate:queues";

/// A queue script: tollgate-redis's base.lua (time, integers, the GCRA state), then
/// queue.lua, then the operation. Built once per process; the text lives as long as the
/// program. (Not common.lua: Redis runs a script's whole text on every call, and defining
/// the limit algorithms cost each queue call about 1.2 µs of Redis's time for nothing.)
macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            let text = format!(
                "{BASE_LUA}\n{}\n{}",
                include_str!("scripts/queue.lua"),
                include_str!(concat!("scripts/", $file))
            );
            LuaScript::new(text.leak())
        })
    };
}

static CREATE: LazyLock<LuaScript> = script!("create.lua");
static PUSH: LazyLock<LuaScript> = script!("push.lua");
static RESERVE: LazyLock<LuaScript> = script!("reserve.lua");
static ACK: LazyLock<LuaScript> = script!("ack.lua");
static ACK_RESERVE: LazyLock<LuaScript> = script!("ack_reserve.lua");
static HEARTBEAT: LazyLock<LuaScript> = script!("heartbeat.lua");
static FAIL: LazyLock<LuaScript> = script!("fail.lua");
static STATS: LazyLock<LuaScript> = script!("stats.lua");
static UPDATE: LazyLock<LuaScript> = script!("update.lua");
static CLEAR: LazyLock<LuaScript> = script!("clear.lua");
static REMOVE: LazyLock<LuaScript> = script!("remove.lua");
static DEAD: LazyLock<LuaScript> = script!("dead.lua");
static RETRY_DEAD: LazyLock<LuaScript> = script!("retry_dead.lua");
static PURGE_DEAD: LazyLock<LuaScript> = script!("purge_dead.lua");
static WORKERS: LazyLock<LuaScript> = script!("workers.lua");

/// Queues on a Redis store (standalone, Sentinel or Cluster). Cloning shares the connection.
#[derive(Clone, Debug)]
pub struct RedisQueues {
    store: RedisStore,
    batchers: Arc<Batchers>,
}

fn keys(queue: &str) -> Vec<String> {
    [
        "meta", "waiting", "delayed", "inflight", "dead", "tasks", "tat", "workers",
    ]
    .iter()
    .map(|part| format!("tollgate:q:{{{queue}}}:{part}"))
    .collect()
}

fn arg(value: impl ToString) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn unknown(name: &str) -> QueueError {
    QueueError::UnknownQueue {
        name: name.to_string(),
    }
}

fn lease_lost(lease: &Lease) -> QueueError {
    lost(&lease.queue, &lease.task, lease.attempt)
}

fn lost(queue: &str, task: &str, attempt: u32) -> QueueError {
    QueueError::LeaseLost {
        queue: queue.to_string(),
        task: task.to_string(),
        attempt,
    }
}

/// The numbers a script needs of a spec: rate text, T in µs, burst, strict flag, deadline.
fn limit_args(spec: &QueueSpec) -> QueueResult<[Vec<u8>; 5]> {
    let limit = spec.limit()?;
    let t_us = limit.interval_ns().div_ceil(1000).max(1);
    Ok([
        arg(spec.rate),
        arg(t_us),
        arg(limit.burst()),
        arg(u8::from(spec.burst.is_none())),
        spec.deadline_ms.map(arg).unwrap_or_default(),
    ])
}

impl RedisQueues {
    /// Queues on `store`'s Redis.
    pub fn new(store: RedisStore) -> RedisQueues {
        RedisQueues {
            store,
            batchers: Arc::default(),
        }
    }

    /// Connects to `url` (any form [`tollgate_redis::RedisConfig::parse`] takes).
    pub async fn open(url: &str) -> QueueResult<RedisQueues> {
        Ok(RedisQueues::new(RedisStore::open(url).await?))
    }

    async fn run(
        &self,
        script: &LuaScript,
        queue: &str,
        args: &[Vec<u8>],
        what: &str,
    ) -> QueueResult<Reply> {
        validate_name(queue)?;
        let value = self.store.eval(script, &keys(queue), args, what).await?;
        Ok(Reply::new(value))
    }

    async fn create_queue(&self, spec: QueueSpec) -> QueueResult<QueueStats> {
        let spec = spec.validate()?;
        let name = spec.queue_name().to_string();
        let [rate, t_us, burst, strict, deadline] = limit_args(&spec)?;
        let args = [
            arg(&name),
            rate,
            t_us,
            burst,
            strict,
            arg(spec.max_attempts),
            arg(spec.visibility_timeout_ms),
            arg(spec.idle_expiry_ms),
            arg(spec.backoff_base_ms),
            arg(spec.backoff_max_ms),
            deadline,
        ];
        let created = self.run(&CREATE, &name, &args, "create a queue").await?;
        if created.int()? == 0 {
            return Err(QueueError::QueueExists { name });
        }
        let mut sadd = redis::cmd("SADD");
        sadd.arg(REGISTRY).arg(&name);
        self.store.command(&sadd, "register a queue").await?;
        self.queue_stats(&name).await
    }

    async fn queue_stats(&self, queue: &str) -> QueueResult<QueueStats> {
        let reply = self.run(&STATS, queue, &[], "read a queue").await?;
        reply.stats().ok_or_else(|| unknown(queue))?
    }

    async fn list_queues(&self) -> QueueResult<Vec<QueueStats>> {
        let mut smembers = redis::cmd("SMEMBERS");
        smembers.arg(REGISTRY);
        let names = Reply::new(self.store.command(&smembers, "list queues").await?).strings()?;
        let mut all = Vec::with_capacity(names.len());
        for name in names {
            match self.queue_stats(&name).await {
                Ok(stats) => all.push(stats),
                // Expired (idle and empty) or removed elsewhere: forget the name.
                Err(QueueError::UnknownQueue { .. }) | Err(QueueError::InvalidName { .. }) => {
                    let mut srem = redis::cmd("SREM");
                    srem.arg(REGISTRY).arg(&name);
                    self.store.command(&srem, "forget a queue").await?;
                }
                Err(e) => return Err(e),
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn update_queue(&self, queue: &str, update: QueueUpdate) -> QueueResult<QueueStats> {
        let mut spec = self.queue_stats(queue).await?.spec();
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
        let [rate, t_us, burst, strict, deadline] = limit_args(&spec)?;
        let active = update.active.map(|a| arg(u8::from(a))).unwrap_or_default();
        let args = [rate, t_us, burst, strict, deadline, active];
        if self
            .run(&UPDATE, queue, &args, "update a queue")
            .await?
            .int()?
            == 0
        {
            return Err(unknown(queue));
        }
        self.queue_stats(queue).await
    }

    async fn remove_queue(&self, queue: &str) -> QueueResult<bool> {
        let removed = self
            .run(&REMOVE, queue, &[], "remove a queue")
            .await?
            .int()?
            == 1;
        let mut srem = redis::cmd("SREM");
        srem.arg(REGISTRY).arg(queue);
        self.store.command(&srem, "forget a queue").await?;
        Ok(removed)
    }

    async fn count(
        &self,
        script: &LuaScript,
        queue: &str,
        args: &[Vec<u8>],
        what: &str,
    ) -> QueueResult<u64> {
        let n = self.run(script, queue, args, what).await?.int()?;
        u64::try_from(n).map_err(|_| unknown(queue))
    }

    async fn push_task(&self, queue: &str, task: NewTask) -> QueueResult<String> {
        task.validate()?;
        let args = [
            task.payload.into_bytes(),
            arg(task.priority),
            arg(task.delay_ms),
        ];
        let reply = self.run(&PUSH, queue, &args, "push a task").await?;
        match reply.int_at(0)? {
            1 => reply.string_at(1),
            _ => Err(unknown(queue)),
        }
    }

    async fn reserve_task(&self, queue: &str) -> QueueResult<Reservation> {
        let reply = self.run(&RESERVE, queue, &[], "reserve a task").await?;
        reply.reservation(queue)
    }

    async fn heartbeat_lease(&self, lease: &Lease) -> QueueResult<u64> {
        let args = [arg(&lease.task), arg(lease.attempt)];
        match self
            .run(&HEARTBEAT, &lease.queue, &args, "renew a lease")
            .await?
            .int()?
        {
            -1 => Err(unknown(&lease.queue)),
            0 => Err(lease_lost(lease)),
            expires => Ok(expires.unsigned_abs()),
        }
    }

    async fn ack_lease(&self, lease: &Lease) -> QueueResult<()> {
        let args = [arg(&lease.task), arg(lease.attempt)];
        match self
            .run(&ACK, &lease.queue, &args, "acknowledge a task")
            .await?
            .int()?
        {
            -1 => Err(unknown(&lease.queue)),
            0 => Err(lease_lost(lease)),
            _ => Ok(()),
        }
    }

    /// ack.lua then reserve.lua on the lease's queue, as one script, batched with the other
    /// slots' calls on that queue (`batch`).
    async fn ack_and_reserve_lease(&self, lease: &Lease) -> QueueResult<Option<Reservation>> {
        validate_name(&lease.queue)?;
        self.batchers
            .ack_and_reserve(&self.store, lease)
            .await
            .map(Some)
    }

    async fn fail_lease(
        &self,
        lease: &Lease,
        error: &str,
        retry_after: Option<Duration>,
    ) -> QueueResult<FailOutcome> {
        let args = [
            arg(&lease.task),
            arg(lease.attempt),
            arg(error),
            retry_after.map(|d| arg(millis(d))).unwrap_or_default(),
            arg(fastrand::f64()),
        ];
        let reply = self.run(&FAIL, &lease.queue, &args, "fail a task").await?;
        match reply.int_at(0)? {
            1 => Ok(FailOutcome::Retry {
                delay_ms: reply.int_at(1)?.unsigned_abs(),
            }),
            2 => Ok(FailOutcome::Dead),
            0 => Err(lease_lost(lease)),
            _ => Err(unknown(&lease.queue)),
        }
    }

    async fn dead_tasks(&self, queue: &str, limit: u64) -> QueueResult<Vec<DeadTask>> {
        let reply = self
            .run(&DEAD, queue, &[arg(limit.max(1))], "list dead tasks")
            .await?;
        reply.dead().ok_or_else(|| unknown(queue))?
    }
}

impl QueueStore for RedisQueues {
    fn create(&self, spec: QueueSpec) -> BoxFuture<'_, QueueResult<QueueStats>> {
        Box::pin(self.create_queue(spec))
    }
    fn list(&self) -> BoxFuture<'_, QueueResult<Vec<QueueStats>>> {
        Box::pin(self.list_queues())
    }
    fn stats<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<QueueStats>> {
        Box::pin(self.queue_stats(queue))
    }
    fn update<'a>(
        &'a self,
        queue: &'a str,
        update: QueueUpdate,
    ) -> BoxFuture<'a, QueueResult<QueueStats>> {
        Box::pin(self.update_queue(queue, update))
    }
    fn remove<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<bool>> {
        Box::pin(self.remove_queue(queue))
    }
    fn clear<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>> {
        Box::pin(self.count(&CLEAR, queue, &[], "clear a queue"))
    }
    fn push<'a>(&'a self, queue: &'a str, task: NewTask) -> BoxFuture<'a, QueueResult<String>> {
        Box::pin(self.push_task(queue, task))
    }
    fn reserve<'a>(
        &'a self,
        queue: &'a str,
        _worker: &'a str,
    ) -> BoxFuture<'a, QueueResult<Reservation>> {
        Box::pin(self.reserve_task(queue))
    }
    fn heartbeat<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<u64>> {
        Box::pin(self.heartbeat_lease(lease))
    }
    fn ack<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<()>> {
        Box::pin(self.ack_lease(lease))
    }
    fn ack_and_reserve<'a>(
        &'a self,
        lease: &'a Lease,
        _worker: &'a str,
    ) -> BoxFuture<'a, QueueResult<Option<Reservation>>> {
        Box::pin(self.ack_and_reserve_lease(lease))
    }
    fn fail<'a>(
        &'a self,
        lease: &'a Lease,
        error: &'a str,
        retry_after: Option<Duration>,
    ) -> BoxFuture<'a, QueueResult<FailOutcome>> {
        Box::pin(self.fail_lease(lease, error, retry_after))
    }
    fn dead<'a>(&'a self, queue: &'a str, limit: u64) -> BoxFuture<'a, QueueResult<Vec<DeadTask>>> {
        Box::pin(self.dead_tasks(queue, limit))
    }
    fn retry_dead<'a>(
        &'a self,
        queue: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, QueueResult<u64>> {
        let args: Vec<Vec<u8>> = ids.iter().map(arg).collect();
        Box::pin(async move {
            self.count(&RETRY_DEAD, queue, &args, "retry dead tasks")
                .await
        })
    }
    fn purge_dead<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>> {
        Box::pin(self.count(&PURGE_DEAD, queue, &[], "purge dead tasks"))
    }
    fn report_workers<'a>(
        &'a self,
        queue: &'a str,
        process: &'a str,
        slots: u32,
        ttl: Duration,
    ) -> BoxFuture<'a, QueueResult<Fleet>> {
        Box::pin(async move {
            let args = [arg(process), arg(slots), arg(millis(ttl))];
            let reply = self
                .run(&WORKERS, queue, &args, "report a worker process")
                .await?;
            reply.fleet().ok_or_else(|| unknown(queue))?
        })
    }
}
