//! The job-queue benchmark of `scripts/bench/queue.sh` (BENCHMARKS.md, "Job queues vs
//! BullMQ"): tollgate's Redis queues on a loopback Redis, measured the way
//! `scripts/bench/bullmq/bench.js` measures BullMQ on the same Redis.
//!
//! `throughput`: pushes `--tasks` no-op tasks (`--push-concurrency` pushes in flight on one
//! multiplexed connection; timed and reported apart) to a queue whose rate is effectively
//! unlimited (`1000000000/1s`, burst 1,000,000), then runs one [`Worker`] with
//! `--concurrency` slots and a handler that does nothing, until every task is acknowledged.
//! Tasks/s is measured from the first start (the handler's first call) to the last ack (the
//! last `ack` reply), on this process's clock.
//!
//! `precision`: a strict `--rate` queue (default `10/1s`), `--tasks` tasks (default 100),
//! `--workers` workers with `--slots` slots each, every worker with its own connection (as
//! separate processes would have). Every start is recorded twice: [`Lease::started_us`],
//! the time on Redis's clock at which the reserve script granted it, and the local time at
//! which the handler was called. For each clock it reports the most starts in any 1 s window
//! (`[t, t + 1 s)`) and the smallest gap between consecutive starts.
//!
//! Both read `INFO commandstats` and `INFO cpu` before and after the measured phase and
//! report Redis's side per task: commands run (those run inside scripts included), µs spent
//! in them, and Redis's CPU; and send `ECHO queue-bench:work:start` and `:end` around that
//! phase (markers in a `MONITOR` log). Every command prints one JSON line; loopback only;
//! every run is bounded by `--timeout`.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::Notify;
use tollgate_queue::fleet::Fleet;
use tollgate_queue::worker::{JobError, Worker};
use tollgate_queue::{
    BoxFuture, DeadTask, FailOutcome, Lease, NewTask, QueueError, QueueResult, QueueSpec,
    QueueStats, QueueStore, QueueUpdate, RedisQueues, Reservation,
};
use tollgate_redis::{RedisConfig, RedisStore, Topology};

/// Benchmarks tollgate's Redis job queues on a loopback Redis.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// No-op tasks on an unlimited queue: tasks/s from the first start to the last ack.
    Throughput(ThroughputArgs),
    /// A strict rate-limited queue: every start's time, the most starts in any 1 s window,
    /// the smallest gap between starts.
    Precision(PrecisionArgs),
}

/// What both commands share.
#[derive(clap::Args, Debug)]
struct Common {
    /// The Redis to use, on a loopback address (`redis://127.0.0.1:PORT/0`).
    #[arg(long)]
    url: String,
    /// Give up after this many seconds (at most 3600).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// A label copied into the JSON line (the driver's round number).
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(clap::Args, Debug)]
struct ThroughputArgs {
    #[command(flatten)]
    common: Common,
    /// Tasks to push and run.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    tasks: u64,
    /// Worker slots (tasks run at once).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Pushes in flight at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    push_concurrency: u32,
    /// The queue's rate (effectively unlimited by default).
    #[arg(long, default_value = "1000000000/1s")]
    rate: String,
    /// The queue's burst.
    #[arg(long, default_value_t = 1_000_000)]
    burst: u64,
}

#[derive(clap::Args, Debug)]
struct PrecisionArgs {
    #[command(flatten)]
    common: Common,
    /// Tasks to push and run.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(2..=100_000))]
    tasks: u64,
    /// The queue's rate; strict (no burst).
    #[arg(long, default_value = "10/1s")]
    rate: String,
    /// Workers, each with its own connection.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// Slots per worker.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    slots: u32,
    /// The window the starts are counted in, ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    window_ms: u64,
}

/// Refuses a Redis URL that is not on a loopback address.
fn loopback(url: &str) -> anyhow::Result<()> {
    let config = RedisConfig::parse(url).map_err(|e| anyhow!("--url: {e}"))?;
    let Topology::Standalone { node, .. } = config.url.topology() else {
        bail!("--url must name one Redis server");
    };
    let host = node.host.trim_start_matches('[').trim_end_matches(']');
    let is_loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !is_loopback || config.url.tls() {
        bail!("--url must be redis:// on a loopback address; this benchmark only targets loopback");
    }
    Ok(())
}

/// µs since the Unix epoch on this host's clock.
fn local_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

// --- the store, counted --------------------------------------------------------------------

/// What the workers asked the store, counted (every call is one EVALSHA round trip).
#[derive(Default)]
struct Calls {
    /// Acks to wait for before the run ends.
    target: u64,
    reserves: AtomicU64,
    reserved: AtomicU64,
    ack_reserves: AtomicU64,
    rate_limited: AtomicU64,
    acks: AtomicU64,
    fails: AtomicU64,
    heartbeats: AtomicU64,
    errors: AtomicU64,
    /// When the last ack came back, µs after `base`.
    last_ack_us: AtomicU64,
    base: Option<Instant>,
    done: Notify,
}

impl Calls {
    fn new(target: u64, base: Instant) -> Calls {
        Calls {
            target,
            base: Some(base),
            ..Calls::default()
        }
    }

    fn since_base_us(&self) -> u64 {
        self.base.map_or(0, |b| {
            u64::try_from(b.elapsed().as_micros()).unwrap_or(u64::MAX)
        })
    }

    fn counts(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "reserve": get(&self.reserves),
            "reserve_got_task": get(&self.reserved),
            "reserve_rate_limited": get(&self.rate_limited),
            "ack_and_reserve": get(&self.ack_reserves),
            "ack": get(&self.acks),
            "fail": get(&self.fails),
            "heartbeat": get(&self.heartbeats),
            "errors": get(&self.errors),
        })
    }
}

/// [`RedisQueues`] with every worker call counted, and the run's end signalled when the
/// last ack comes back.
struct Counted {
    inner: RedisQueues,
    calls: Arc<Calls>,
}

impl Counted {
    fn note_error<T>(&self, r: &QueueResult<T>) {
        if r.is_err() {
            self.calls.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn note_reserve(&self, r: Result<&Reservation, &QueueError>) {
        self.calls.reserves.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(Reservation::Task(_)) => {
                self.calls.reserved.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Reservation::RateLimited { .. }) => {
                self.calls.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => {
                self.calls.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn note_ack(&self) {
        let now = self.calls.since_base_us();
        self.calls.last_ack_us.fetch_max(now, Ordering::Relaxed);
        let acked = self.calls.acks.fetch_add(1, Ordering::Relaxed) + 1;
        if acked == self.calls.target {
            self.calls.done.notify_one();
        }
    }
}

impl QueueStore for Counted {
    fn create(&self, spec: QueueSpec) -> BoxFuture<'_, QueueResult<QueueStats>> {
        self.inner.create(spec)
    }
    fn list(&self) -> BoxFuture<'_, QueueResult<Vec<QueueStats>>> {
        self.inner.list()
    }
    fn stats<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<QueueStats>> {
        self.inner.stats(queue)
    }
    fn update<'a>(
        &'a self,
        queue: &'a str,
        update: QueueUpdate,
    ) -> BoxFuture<'a, QueueResult<QueueStats>> {
        self.inner.update(queue, update)
    }
    fn remove<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<bool>> {
        self.inner.remove(queue)
    }
    fn clear<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>> {
        self.inner.clear(queue)
    }
    fn push<'a>(&'a self, queue: &'a str, task: NewTask) -> BoxFuture<'a, QueueResult<String>> {
        self.inner.push(queue, task)
    }
    fn reserve<'a>(
        &'a self,
        queue: &'a str,
        worker: &'a str,
    ) -> BoxFuture<'a, QueueResult<Reservation>> {
        Box::pin(async move {
            let r = self.inner.reserve(queue, worker).await;
            self.note_reserve(r.as_ref());
            r
        })
    }
    fn heartbeat<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<u64>> {
        Box::pin(async move {
            self.calls.heartbeats.fetch_add(1, Ordering::Relaxed);
            let r = self.inner.heartbeat(lease).await;
            self.note_error(&r);
            r
        })
    }
    fn ack<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, QueueResult<()>> {
        Box::pin(async move {
            let r = self.inner.ack(lease).await;
            if r.is_ok() {
                self.note_ack();
            } else {
                self.note_error(&r);
            }
            r
        })
    }
    fn ack_and_reserve<'a>(
        &'a self,
        lease: &'a Lease,
        worker: &'a str,
    ) -> BoxFuture<'a, QueueResult<Option<Reservation>>> {
        Box::pin(async move {
            self.calls.ack_reserves.fetch_add(1, Ordering::Relaxed);
            let r = self.inner.ack_and_reserve(lease, worker).await;
            match r {
                Ok(reservation) => {
                    self.note_ack();
                    if let Some(reservation) = &reservation {
                        self.note_reserve(Ok(reservation));
                    }
                    Ok(reservation)
                }
                Err(e) => {
                    self.calls.errors.fetch_add(1, Ordering::Relaxed);
                    Err(e)
                }
            }
        })
    }
    fn fail<'a>(
        &'a self,
        lease: &'a Lease,
        error: &'a str,
        retry_after: Option<Duration>,
    ) -> BoxFuture<'a, QueueResult<FailOutcome>> {
        self.calls.fails.fetch_add(1, Ordering::Relaxed);
        self.inner.fail(lease, error, retry_after)
    }
    fn dead<'a>(&'a self, queue: &'a str, limit: u64) -> BoxFuture<'a, QueueResult<Vec<DeadTask>>> {
        self.inner.dead(queue, limit)
    }
    fn retry_dead<'a>(
        &'a self,
        queue: &'a str,
        ids: &'a [String],
    ) -> BoxFuture<'a, QueueResult<u64>> {
        self.inner.retry_dead(queue, ids)
    }
    fn purge_dead<'a>(&'a self, queue: &'a str) -> BoxFuture<'a, QueueResult<u64>> {
        self.inner.purge_dead(queue)
    }
    fn report_workers<'a>(
        &'a self,
        queue: &'a str,
        process: &'a str,
        slots: u32,
        ttl: Duration,
    ) -> BoxFuture<'a, QueueResult<Fleet>> {
        self.inner.report_workers(queue, process, slots, ttl)
    }
}

/// Returns when the last ack came back, or, should some ack have failed (a call that timed
/// out and was refused when tried again: counted as lost), when the queue has nothing left.
async fn drained(calls: &Calls, queues: &RedisQueues, queue: &str) {
    loop {
        tokio::select! {
            _ = calls.done.notified() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        if queues.stats(queue).await.is_ok_and(|s| s.backlog() == 0) {
            return;
        }
    }
}

// --- Redis's side --------------------------------------------------------------------------

/// Redis's counters at one moment: per command (calls, µs), and its CPU seconds.
struct RedisSide {
    commands: BTreeMap<String, (u64, u64)>,
    cpu_secs: f64,
}

/// Reads `INFO commandstats` and `INFO cpu`.
async fn redis_side(store: &RedisStore) -> anyhow::Result<RedisSide> {
    let mut info = redis::cmd("INFO");
    info.arg("commandstats").arg("cpu");
    let value = store
        .command(&info, "answer INFO")
        .await
        .context("INFO commandstats cpu")?;
    let text: String = redis::from_redis_value(value).context("INFO's reply")?;
    let mut side = RedisSide {
        commands: BTreeMap::new(),
        cpu_secs: 0.0,
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cmdstat_") {
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            side.commands
                .insert(name.to_string(), (field("calls"), field("usec")));
        } else if let Some(v) = line
            .strip_prefix("used_cpu_sys:")
            .or_else(|| line.strip_prefix("used_cpu_user:"))
        {
            side.cpu_secs += v.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    Ok(side)
}

/// What Redis did between two readings, per task: commands (those run inside scripts
/// included; the `INFO` calls themselves left out), scripts (EVAL/EVALSHA) and the µs Redis
/// spent in them, and Redis's CPU. The fields are those `scripts/bench/bullmq/bench.js` gives.
fn redis_delta(before: &RedisSide, after: &RedisSide, tasks: u64) -> serde_json::Value {
    let per = |x: f64| x / tasks.max(1) as f64;
    let mut commands = serde_json::Map::new();
    let (mut calls, mut scripts, mut script_usec) = (0u64, 0u64, 0u64);
    for (name, &(c2, u2)) in &after.commands {
        if name == "info" {
            continue;
        }
        let (c1, u1) = before.commands.get(name).copied().unwrap_or((0, 0));
        let (c, u) = (c2.saturating_sub(c1), u2.saturating_sub(u1));
        if c > 0 {
            commands.insert(name.clone(), json!(round2(per(c as f64))));
            calls += c;
            if name == "eval" || name == "evalsha" || name.starts_with("fcall") {
                scripts += c;
                script_usec += u;
            }
        }
    }
    let cpu = (after.cpu_secs - before.cpu_secs).max(0.0);
    json!({
        "commands_per_task": round2(per(calls as f64)),
        "scripts_per_task": round2(per(scripts as f64)),
        "script_usec_per_task": round2(per(script_usec as f64)),
        "cpu_usec_per_task": round2(per(cpu * 1e6)),
        "cpu_secs": round2(cpu),
        "per_task_by_command": commands,
    })
}

/// Sends `ECHO queue-bench:work:<what>`: a marker in a `MONITOR` log, around the measured
/// phase (`scripts/bench/queue.sh --profile-tasks` counts the commands between them).
async fn mark(store: &RedisStore, what: &str) -> anyhow::Result<()> {
    let mut echo = redis::cmd("ECHO");
    echo.arg(format!("queue-bench:work:{what}"));
    store
        .command(&echo, "answer ECHO")
        .await
        .context("ECHO marker")?;
    Ok(())
}

/// This process's CPU time so far (user + system, every thread), in µs, from
/// `/proc/self/stat` (Linux; clock ticks of 10 ms); 0 where it cannot be read.
fn process_cpu_us() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The fields after the command's closing parenthesis start at field 3 (state); utime and
    // stime are fields 14 and 15, in USER_HZ (100 on Linux) ticks.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (tick(11) + tick(12)) * 10_000
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

// --- pushing -------------------------------------------------------------------------------

/// Pushes `n` tasks (`{"i":k}`), `in_flight` at a time; returns the seconds it took.
async fn push_all(store: &RedisQueues, queue: &str, n: u64, in_flight: u32) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut pushers = tokio::task::JoinSet::new();
    for _ in 0..in_flight.min(u32::try_from(n).unwrap_or(u32::MAX)) {
        let (store, queue, next) = (store.clone(), queue.to_string(), next.clone());
        pushers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let task = NewTask::json(format!("{{\"i\":{i}}}"))?;
                store.push(&queue, task).await.context("push")?;
            }
        });
    }
    while let Some(done) = pushers.join_next().await {
        done.context("a pusher panicked")??;
    }
    Ok(started.elapsed().as_secs_f64())
}

fn bench_queue_name(kind: &str) -> String {
    format!("bench_{kind}_{}", uuid::Uuid::new_v4().simple())
}

// --- throughput ----------------------------------------------------------------------------

async fn throughput(args: ThroughputArgs) -> anyhow::Result<serde_json::Value> {
    let url = &args.common.url;
    loopback(url)?;
    let rate = args
        .rate
        .parse()
        .map_err(|e| anyhow!("--rate {}: {e}", args.rate))?;
    let queues = RedisQueues::open(url)
        .await
        .context("cannot connect the queues")?;
    let probe = RedisStore::open(url)
        .await
        .context("cannot connect for INFO")?;
    let name = bench_queue_name("tp");
    queues
        .create(QueueSpec::new(rate).burst(args.burst).name(&name))
        .await
        .context("cannot create the queue")?;

    let push_secs = push_all(&queues, &name, args.tasks, args.push_concurrency).await?;
    let waiting = queues.stats(&name).await?.waiting;
    if waiting != args.tasks {
        bail!("{waiting} tasks waiting after pushing {}", args.tasks);
    }

    let base = Instant::now();
    let calls = Arc::new(Calls::new(args.tasks, base));
    let store = Arc::new(Counted {
        inner: queues.clone(),
        calls: calls.clone(),
    });
    // The handler's first call, µs after `base` (u64::MAX: none yet); attempts after the
    // first (a task run twice).
    let first_start = Arc::new(AtomicU64::new(u64::MAX));
    let repeats = Arc::new(AtomicU64::new(0));
    let handler = {
        let (first_start, repeats) = (first_start.clone(), repeats.clone());
        move |lease: Lease| {
            let at = u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX);
            first_start.fetch_min(at, Ordering::Relaxed);
            if lease.attempt > 1 {
                repeats.fetch_add(1, Ordering::Relaxed);
            }
            async { Ok::<(), JobError>(()) }
        }
    };
    let before = redis_side(&probe).await?;
    mark(&probe, "start").await?;
    let cpu_before = process_cpu_us();
    let worker = Worker::new(store, vec![name.clone()], handler)
        .concurrency(args.concurrency)
        .id("queue-bench");
    let (done, watcher, watched) = (calls.clone(), queues.clone(), name.clone());
    let report = tokio::time::timeout(
        Duration::from_secs(args.common.timeout),
        worker.run(async move { drained(&done, &watcher, &watched).await }),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "not drained within {} s ({} of {} acked)",
            args.common.timeout,
            calls.acks.load(Ordering::Relaxed),
            args.tasks
        )
    })?
    .context("the worker")?;
    let client_cpu_us = process_cpu_us().saturating_sub(cpu_before);
    mark(&probe, "end").await?;
    let after = redis_side(&probe).await?;
    let stats = queues.stats(&name).await?;
    let first = first_start.load(Ordering::Relaxed);
    let last = calls.last_ack_us.load(Ordering::Relaxed);
    let secs = last.saturating_sub(first) as f64 / 1e6;
    let acked = calls.acks.load(Ordering::Relaxed);
    queues.remove(&name).await?;
    Ok(json!({
        "bench": "throughput",
        "impl": "tollgate",
        "label": args.common.label,
        "tasks": args.tasks,
        "concurrency": args.concurrency,
        "push_concurrency": args.push_concurrency,
        "push_secs": round2(push_secs),
        "pushed_per_sec": (args.tasks as f64 / push_secs).round(),
        "work_secs": (secs * 1000.0).round() / 1000.0,
        "tasks_per_sec": if secs > 0.0 { (acked as f64 / secs).round() } else { 0.0 },
        "completed": report.completed,
        "acked": acked,
        "lost": report.lost,
        "ran_twice": repeats.load(Ordering::Relaxed),
        "store_throughput_per_s": stats.throughput_per_s.round(),
        "store_completed": stats.completed,
        "left_waiting": stats.waiting,
        "client_cpu_usec_per_task": round2(client_cpu_us as f64 / args.tasks as f64),
        "calls": calls.counts(),
        "redis": redis_delta(&before, &after, args.tasks),
    }))
}

// --- precision -----------------------------------------------------------------------------

/// One start, on both clocks.
#[derive(Clone, Copy, Debug)]
struct Start {
    redis_us: u64,
    local_us: u64,
}

/// The most starts in any window `[t, t + window)` and the smallest gap between consecutive
/// starts (µs), of sorted times.
fn window_stats(sorted: &[u64], window_us: u64) -> (usize, u64) {
    let mut most = 0;
    let mut lo = 0;
    for hi in 0..sorted.len() {
        while sorted[hi] - sorted[lo] >= window_us {
            lo += 1;
        }
        most = most.max(hi - lo + 1);
    }
    let min_gap = sorted.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(0);
    (most, min_gap)
}

fn clock_report(mut times: Vec<u64>, window_us: u64) -> serde_json::Value {
    times.sort_unstable();
    let (most, min_gap) = window_stats(&times, window_us);
    let span = match (times.first(), times.last()) {
        (Some(a), Some(b)) => b - a,
        _ => 0,
    };
    let gaps = times.len().saturating_sub(1);
    json!({
        "most_in_window": most,
        "min_gap_ms": round3(min_gap as f64 / 1000.0),
        "mean_gap_ms": if gaps > 0 { round3(span as f64 / 1000.0 / gaps as f64) } else { 0.0 },
        "span_secs": round3(span as f64 / 1e6),
        "starts_per_sec": if span > 0 { round3(gaps as f64 * 1e6 / span as f64) } else { 0.0 },
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn precision(args: PrecisionArgs) -> anyhow::Result<serde_json::Value> {
    let url = &args.common.url;
    loopback(url)?;
    let rate = args
        .rate
        .parse()
        .map_err(|e| anyhow!("--rate {}: {e}", args.rate))?;
    let queues = RedisQueues::open(url)
        .await
        .context("cannot connect the queues")?;
    let probe = RedisStore::open(url)
        .await
        .context("cannot connect for INFO")?;
    let name = bench_queue_name("precision");
    queues
        .create(QueueSpec::new(rate).name(&name))
        .await
        .context("cannot create the queue")?;
    push_all(&queues, &name, args.tasks, 16).await?;

    let base = Instant::now();
    let calls = Arc::new(Calls::new(args.tasks, base));
    let starts: Arc<Mutex<Vec<Start>>> =
        Arc::new(Mutex::new(Vec::with_capacity(usize::try_from(args.tasks)?)));
    let before = redis_side(&probe).await?;
    mark(&probe, "start").await?;
    let mut workers = tokio::task::JoinSet::new();
    let stop = Arc::new(tokio::sync::watch::channel(false).0);
    for w in 0..args.workers {
        // Its own connection, as a worker process would have.
        let own = RedisQueues::open(url)
            .await
            .context("cannot connect a worker")?;
        let store = Arc::new(Counted {
            inner: own,
            calls: calls.clone(),
        });
        let starts = starts.clone();
        let handler = move |lease: Lease| {
            let local = local_us();
            starts.lock().push(Start {
                redis_us: lease.started_us,
                local_us: local,
            });
            async { Ok::<(), JobError>(()) }
        };
        let worker = Worker::new(store, vec![name.clone()], handler)
            .concurrency(args.slots)
            .id(format!("queue-bench-{w}"));
        let mut stopped = stop.subscribe();
        workers.spawn(worker.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
    }
    let waited = tokio::time::timeout(
        Duration::from_secs(args.common.timeout),
        drained(&calls, &queues, &name),
    )
    .await;
    let _ = stop.send(true);
    let mut completed = 0;
    let mut lost = 0;
    while let Some(report) = workers.join_next().await {
        let report = report.context("a worker panicked")?.context("a worker")?;
        completed += report.completed;
        lost += report.lost;
    }
    if waited.is_err() {
        bail!(
            "not drained within {} s ({} of {} acked)",
            args.common.timeout,
            calls.acks.load(Ordering::Relaxed),
            args.tasks
        );
    }
    mark(&probe, "end").await?;
    let after = redis_side(&probe).await?;
    queues.remove(&name).await?;
    let starts = starts.lock().clone();
    let window_us = args.window_ms * 1000;
    let redis_clock = clock_report(starts.iter().map(|s| s.redis_us).collect(), window_us);
    let local_clock = clock_report(starts.iter().map(|s| s.local_us).collect(), window_us);
    // How far behind Redis's grant the handler saw each start (same host, so one clock).
    let mut lag: Vec<i64> = starts
        .iter()
        .map(|s| {
            i64::try_from(s.local_us).unwrap_or(i64::MAX) - i64::try_from(s.redis_us).unwrap_or(0)
        })
        .collect();
    lag.sort_unstable();
    let lag_ms = |q: f64| {
        let i = ((lag.len().saturating_sub(1)) as f64 * q).round() as usize;
        lag.get(i).map_or(0.0, |&v| round3(v as f64 / 1000.0))
    };
    Ok(json!({
        "bench": "precision",
        "impl": "tollgate",
        "label": args.common.label,
        "rate": args.rate,
        "tasks": args.tasks,
        "starts": starts.len(),
        "workers": args.workers,
        "slots_per_worker": args.slots,
        "window_ms": args.window_ms,
        "completed": completed,
        "lost": lost,
        "redis_clock": redis_clock,
        "local_clock": local_clock,
        "grant_to_handler_ms": { "p50": lag_ms(0.5), "p99": lag_ms(0.99), "max": lag_ms(1.0) },
        "calls": calls.counts(),
        "redis": redis_delta(&before, &after, args.tasks),
    }))
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| {
            runtime.block_on(async {
                match args.command {
                    Command::Throughput(a) => throughput(a).await,
                    Command::Precision(a) => precision(a).await,
                }
            })
        });
    match outcome {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_half_open() {
        // 0, 100, ..., 1000 ms: [0, 1000) holds 10, never 11.
        let times: Vec<u64> = (0..=10).map(|i| i * 100_000).collect();
        assert_eq!(window_stats(&times, 1_000_000), (10, 100_000));
        // A burst of 10, then 10 more 999 ms later: all 20 in one window, a gap of 0.
        let mut burst: Vec<u64> = vec![0; 10];
        burst.extend(std::iter::repeat_n(999_000, 10));
        assert_eq!(window_stats(&burst, 1_000_000), (20, 0));
        assert_eq!(window_stats(&[5], 1_000_000), (1, 0));
    }
}
