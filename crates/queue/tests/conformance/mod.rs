//! The behaviour every queue store must have, written once and run against each store
//! (`memory.rs`, `redis.rs`). Times are real and short: the Redis store decides on Redis's
//! clock, which no test can fake.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tollgate_queue::{
    FailOutcome, Lease, NewTask, QueueError, QueueSpec, QueueStore, QueueUpdate, Reservation,
};

mod chains;
mod fleet;

pub use chains::{ack_and_reserve_chains, concurrent_chains_share_out_every_task};
pub use fleet::worker_processes_make_a_fleet;

pub type Store = Arc<dyn QueueStore>;

fn spec(rate: &str) -> QueueSpec {
    QueueSpec::new(rate.parse().expect("rate"))
}

fn task(json: &str) -> NewTask {
    NewTask::json(json).expect("valid payload")
}

/// Reserves until a task comes, sleeping as the store says; panics after `within`.
pub async fn take(store: &Store, queue: &str, within: Duration) -> Lease {
    let until = tokio::time::Instant::now() + within;
    loop {
        let wait = match store.reserve(queue, "test").await.expect("reserve") {
            Reservation::Task(lease) => return lease,
            Reservation::RateLimited { wait_ms } => wait_ms.max(1),
            Reservation::Empty { next_due_ms } => next_due_ms.unwrap_or(10).clamp(1, 10),
            Reservation::Paused => 10,
        };
        assert!(
            tokio::time::Instant::now() < until,
            "no task within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

pub async fn lifecycle(store: Store) {
    let made = store.create(spec("5/60s")).await.expect("create");
    assert!(made.name.starts_with("batch_"), "{}", made.name);
    assert_eq!(
        (made.rate.to_string(), made.burst, made.active),
        ("5/60s".into(), None, true)
    );
    assert_eq!((made.max_attempts, made.visibility_timeout_ms), (3, 30_000));
    let named = store
        .create(spec("10/1s").name("orders").burst(4))
        .await
        .expect("create");
    assert_eq!(named.burst, Some(4));
    let again = store.create(spec("1/s").name("orders")).await;
    assert!(
        matches!(again, Err(QueueError::QueueExists { .. })),
        "{again:?}"
    );
    let names: Vec<String> = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert!(
        names.contains(&made.name) && names.contains(&"orders".to_string()),
        "{names:?}"
    );

    store
        .push("orders", task(r#"{"n":1}"#))
        .await
        .expect("push");
    store
        .push("orders", task(r#"{"n":2}"#).delay(Duration::from_secs(60)))
        .await
        .expect("push");
    let s = store.stats("orders").await.expect("stats");
    assert_eq!((s.waiting, s.delayed, s.in_flight, s.pushed), (1, 1, 0, 2));

    let paused = QueueUpdate {
        active: Some(false),
        ..QueueUpdate::default()
    };
    assert!(!store.update("orders", paused).await.expect("pause").active);
    assert_eq!(
        store.reserve("orders", "w").await.expect("reserve"),
        Reservation::Paused
    );
    let s = store.stats("orders").await.expect("stats");
    assert_eq!(s.waiting, 1, "a paused queue keeps its tasks");
    let resumed = QueueUpdate {
        active: Some(true),
        rate: Some("7/2s".parse().expect("rate")),
        ..QueueUpdate::default()
    };
    let s = store.update("orders", resumed).await.expect("resume");
    assert_eq!(
        (s.active, s.rate.to_string(), s.burst),
        (true, "7/2s".into(), Some(4))
    );

    assert_eq!(store.clear("orders").await.expect("clear"), 2);
    let s = store.stats("orders").await.expect("stats");
    assert_eq!((s.waiting, s.delayed), (0, 0));
    assert!(store.remove("orders").await.expect("remove"));
    assert!(!store.remove("orders").await.expect("remove twice"));
    let gone = store.stats("orders").await;
    assert!(
        matches!(gone, Err(QueueError::UnknownQueue { .. })),
        "{gone:?}"
    );
}

pub async fn priorities_then_fifo(store: Store) {
    store
        .create(spec("1000/1s").name("prio").burst(1000))
        .await
        .expect("create");
    for (n, priority) in [(1, 0), (2, 5), (3, 5), (4, 1), (5, 0), (6, 5)] {
        store
            .push("prio", task(&format!(r#"{{"n":{n}}}"#)).priority(priority))
            .await
            .expect("push");
    }
    let s = store.stats("prio").await.expect("stats");
    let depths: Vec<(u32, u64)> = s
        .waiting_by_priority
        .iter()
        .map(|d| (d.priority, d.waiting))
        .collect();
    assert_eq!(depths, vec![(5, 3), (1, 1), (0, 2)]);
    let mut order = Vec::new();
    for _ in 0..6 {
        let lease = take(&store, "prio", Duration::from_secs(5)).await;
        order.push(lease.payload.clone());
        store.ack(&lease).await.expect("ack");
    }
    let want: Vec<String> = [2, 3, 6, 4, 1, 5]
        .iter()
        .map(|n| format!(r#"{{"n":{n}}}"#))
        .collect();
    assert_eq!(order, want);
    assert_eq!(store.stats("prio").await.expect("stats").completed, 6);
}

/// Every start of a strict queue is at least T after the one before (on the store's clock),
/// and a reserve right after a start is told to wait.
pub async fn strict_spacing(store: Store) {
    store
        // T = 250 ms: the reserve right after a start must come within T, even on a busy machine.
        .create(spec("4/1s").name("strict"))
        .await
        .expect("create");
    for n in 0..8 {
        store
            .push("strict", task(&n.to_string()))
            .await
            .expect("push");
    }
    let mut starts = Vec::new();
    for _ in 0..8 {
        let lease = take(&store, "strict", Duration::from_secs(5)).await;
        starts.push(lease.started_us);
        match store.reserve("strict", "test").await.expect("reserve") {
            Reservation::RateLimited { wait_ms } => {
                assert!((1..=250).contains(&wait_ms), "{wait_ms}")
            }
            Reservation::Empty { .. } => {}
            other => panic!("a task right after a start: {other:?}"),
        }
        store.ack(&lease).await.expect("ack");
    }
    for pair in starts.windows(2) {
        assert!(
            pair[1] - pair[0] >= 250_000,
            "starts {} µs apart",
            pair[1] - pair[0]
        );
    }
}

pub async fn retries_back_off_then_dead_letter(store: Store) {
    let s = spec("1000/1s")
        .name("flaky")
        .burst(1000)
        .max_attempts(3)
        // Seconds, not ms: each reserve right after a failure must come before the retry.
        .backoff(Duration::from_millis(1000), Duration::from_millis(1500));
    store.create(s).await.expect("create");
    let id = store
        .push("flaky", task(r#"{"x":true}"#))
        .await
        .expect("push");
    let mut delays = Vec::new();
    for attempt in 1..=3 {
        let lease = take(&store, "flaky", Duration::from_secs(5)).await;
        assert_eq!((lease.task.as_str(), lease.attempt), (id.as_str(), attempt));
        match store
            .fail(&lease, &format!("boom {attempt}"), None)
            .await
            .expect("fail")
        {
            FailOutcome::Retry { delay_ms } => {
                delays.push(delay_ms);
                match store.reserve("flaky", "test").await.expect("reserve") {
                    Reservation::Empty {
                        next_due_ms: Some(due),
                    } => assert!(due <= delay_ms, "{due}"),
                    other => panic!("retried too early: {other:?}"),
                }
            }
            FailOutcome::Dead => assert_eq!(attempt, 3, "dead before the last attempt"),
        }
    }
    // Equal jitter: attempt 1 waits 500..=1000 ms; attempt 2 min(2000, 1500) → 750..=1500 ms.
    assert!(
        (500..=1000).contains(&delays[0]) && (750..=1500).contains(&delays[1]),
        "{delays:?}"
    );
    let dead = store.dead("flaky", 10).await.expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].id.as_str(),
            dead[0].attempts,
            dead[0].last_error.as_str()
        ),
        (id.as_str(), 3, "boom 3")
    );
    assert_eq!(dead[0].payload, r#"{"x":true}"#);
    assert_eq!(store.retry_dead("flaky", &[]).await.expect("retry"), 1);
    let lease = take(&store, "flaky", Duration::from_secs(5)).await;
    assert_eq!(
        lease.attempt, 1,
        "a retried dead task starts its attempts afresh"
    );
    let retry_after = store
        .fail(&lease, "later", Some(Duration::from_millis(2000)))
        .await;
    assert_eq!(
        retry_after.expect("fail"),
        FailOutcome::Retry { delay_ms: 2000 }
    );
    let s = store.stats("flaky").await.expect("stats");
    assert_eq!((s.failed, s.dead, s.delayed), (4, 0, 1));
    let lease = take(&store, "flaky", Duration::from_secs(5)).await;
    assert_eq!(lease.attempt, 2);
    store.fail(&lease, "again", None).await.expect("fail");
    let lease = take(&store, "flaky", Duration::from_secs(5)).await;
    assert_eq!(
        store.fail(&lease, "last", None).await.expect("fail"),
        FailOutcome::Dead
    );
    assert_eq!(store.purge_dead("flaky").await.expect("purge"), 1);
    assert!(store.dead("flaky", 10).await.expect("dead").is_empty());
}

/// A worker that vanishes loses its lease: the task runs again, the old lease is refused,
/// and after the last attempt the task is dead with a message saying why.
pub async fn expired_leases_come_back(store: Store) {
    let s = spec("1000/1s")
        .name("lost")
        .burst(1000)
        .max_attempts(2)
        .visibility_timeout(Duration::from_millis(1000));
    store.create(s).await.expect("create");
    store.push("lost", task("1")).await.expect("push");
    let first = take(&store, "lost", Duration::from_secs(5)).await;
    assert!(matches!(
        store.reserve("lost", "t").await.expect("reserve"),
        Reservation::Empty { .. }
    ));
    let second = take(&store, "lost", Duration::from_secs(5)).await;
    assert_eq!(
        (second.task.as_str(), second.attempt),
        (first.task.as_str(), 2)
    );
    assert!(
        // Leases expire in whole ms: up to 1 ms before the start's µs plus the timeout.
        second.started_us + 1_000 >= first.started_us + 1_000_000,
        "re-leased before the lease ran out"
    );
    let stale = store.ack(&first).await;
    assert!(
        matches!(stale, Err(QueueError::LeaseLost { .. })),
        "{stale:?}"
    );
    // The last attempt vanishes too.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let s = store.stats("lost").await.expect("stats");
    assert_eq!((s.dead, s.lost, s.in_flight), (1, 2, 0));
    let dead = store.dead("lost", 10).await.expect("dead");
    assert!(
        dead[0].last_error.contains("lease expired"),
        "{}",
        dead[0].last_error
    );
}

pub async fn heartbeats_keep_the_lease(store: Store) {
    let s = spec("1000/1s")
        .name("beat")
        .burst(1000)
        .visibility_timeout(Duration::from_millis(600));
    store.create(s).await.expect("create");
    store.push("beat", task("1")).await.expect("push");
    let lease = take(&store, "beat", Duration::from_secs(5)).await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let expires = store.heartbeat(&lease).await.expect("heartbeat");
        assert!(expires > lease.expires_ms);
        assert!(matches!(
            store.reserve("beat", "t").await.expect("reserve"),
            Reservation::Empty { .. }
        ));
    }
    store
        .ack(&lease)
        .await
        .expect("ack after 1.5 s of a 600 ms lease");
    let again = store.heartbeat(&lease).await;
    assert!(
        matches!(again, Err(QueueError::LeaseLost { .. })),
        "{again:?}"
    );
}

pub async fn delayed_tasks_wait(store: Store) {
    store
        .create(spec("1000/1s").name("later").burst(1000))
        .await
        .expect("create");
    store
        .push("later", task("1").delay(Duration::from_millis(2000)))
        .await
        .expect("push");
    match store.reserve("later", "t").await.expect("reserve") {
        Reservation::Empty {
            next_due_ms: Some(due),
        } => assert!((1000..=2000).contains(&due), "{due}"),
        other => panic!("a delayed task ran early: {other:?}"),
    }
    let lease = take(&store, "later", Duration::from_secs(5)).await;
    store.ack(&lease).await.expect("ack");
}

pub async fn bad_input_is_refused(store: Store) {
    let missing = store.push("nope", task("1")).await;
    assert!(
        matches!(missing, Err(QueueError::UnknownQueue { .. })),
        "{missing:?}"
    );
    let missing = store.reserve("nope", "w").await;
    assert!(
        matches!(missing, Err(QueueError::UnknownQueue { .. })),
        "{missing:?}"
    );
    store
        .create(spec("1/s").name("strict-input"))
        .await
        .expect("create");
    let not_json = NewTask {
        payload: "{oops".into(),
        priority: 0,
        delay_ms: 0,
    };
    let err = store
        .push("strict-input", not_json)
        .await
        .expect_err("not JSON");
    assert_eq!(err.code(), "invalid_payload");
    let big = NewTask {
        payload: format!("\"{}\"", "x".repeat(1 << 20)),
        priority: 0,
        delay_ms: 0,
    };
    let err = store.push("strict-input", big).await.expect_err("too big");
    assert!(err.to_string().contains("over the limit"), "{err}");
    let err = store
        .push("strict-input", task("1").priority(2_000_000))
        .await
        .expect_err("priority");
    assert!(err.to_string().contains("priority"), "{err}");
    let err = store
        .create(spec("1/s").name("bad name"))
        .await
        .expect_err("name");
    assert_eq!(err.code(), "invalid_queue_name");
    let bad = QueueUpdate {
        burst: Some(Some(0)),
        ..QueueUpdate::default()
    };
    let err = store
        .update("strict-input", bad)
        .await
        .expect_err("burst 0");
    assert_eq!(err.code(), "invalid_burst");
}

pub async fn idle_empty_queues_expire(store: Store) {
    let s = spec("1/s")
        .name("brief")
        .idle_expiry(Duration::from_millis(200));
    store.create(s).await.expect("create");
    store.push("brief", task("1")).await.expect("push");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store
            .stats("brief")
            .await
            .expect("a queue with a task stays")
            .waiting,
        1
    );
    let lease = take(&store, "brief", Duration::from_secs(5)).await;
    store.ack(&lease).await.expect("ack");
    // Reading a queue is not using it: read every 50 ms (as a monitor would) and asked for a
    // task as often (as an idle worker would), it still expires.
    let acked = std::time::Instant::now();
    loop {
        let read = store.stats("brief").await.map(|_| ());
        let reserved = store.reserve("brief", "w1").await;
        match (read, reserved) {
            (Err(QueueError::UnknownQueue { .. }), Err(QueueError::UnknownQueue { .. })) => break,
            (Ok(()), Ok(Reservation::Empty { .. })) => assert!(
                acked.elapsed() < Duration::from_secs(3),
                "read and polled every 50 ms, the idle queue never expired"
            ),
            (read, reserved) => {
                // Between the two calls it may have expired: the next turn sees both gone.
                if !matches!(
                    (&read, &reserved),
                    (Ok(()), Err(QueueError::UnknownQueue { .. }))
                ) {
                    panic!("stats {read:?}, reserve {reserved:?}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        acked.elapsed() >= Duration::from_millis(100),
        "expired {:?} after the ack, before its idle time",
        acked.elapsed()
    );
    assert!(
        !store
            .list()
            .await
            .expect("list")
            .iter()
            .any(|q| q.name == "brief")
    );
}

/// Workers that fail at random: every task ends completed or dead, none twice completed
/// without a lost lease, none vanished.
pub async fn nothing_is_lost_under_concurrency(store: Store) {
    use tollgate_queue::worker::{JobError, Worker};
    let s = spec("1000/1s")
        .name("busy")
        .burst(50)
        .max_attempts(3)
        .backoff(Duration::from_millis(1), Duration::from_millis(5));
    store.create(s).await.expect("create");
    let mut ids = HashSet::new();
    for n in 0..300 {
        ids.insert(
            store
                .push("busy", task(&n.to_string()))
                .await
                .expect("push"),
        );
    }
    let done = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = done.clone();
    let worker = Worker::new(store.clone(), vec!["busy".into()], move |lease: Lease| {
        let seen = seen.clone();
        async move {
            if fastrand::u8(0..3) == 0 {
                return Err(JobError::new("unlucky"));
            }
            seen.lock().push(lease.task);
            Ok(())
        }
    })
    .concurrency(8)
    .idle_poll(Duration::from_millis(5));
    let watcher = store.clone();
    let report = worker
        .run(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let s = watcher.stats("busy").await.expect("stats");
                if s.backlog() == 0 {
                    break;
                }
            }
        })
        .await
        .expect("worker");
    let s = store.stats("busy").await.expect("stats");
    let completed: HashSet<String> = done.lock().iter().cloned().collect();
    let dead: HashSet<String> = store
        .dead("busy", 1000)
        .await
        .expect("dead")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(completed.len() as u64, s.completed);
    assert_eq!(report.completed, s.completed);
    assert!(completed.is_disjoint(&dead));
    let ended: HashSet<String> = completed.union(&dead).cloned().collect();
    assert_eq!(ended, ids, "every task ends completed or dead");
    assert!(s.dead > 0 && s.completed > 200, "{s:?}");
}

/// A task delayed or retried while another is leased becomes ready on time, not when the
/// lease would expire (the Redis store skips housekeeping until something can be due).
pub async fn due_while_leased(store: Store) {
    store
        .create(spec("1000/1s").name("due").burst(1000).max_attempts(2))
        .await
        .expect("create");
    store.push("due", task(r#""held""#)).await.expect("push");
    let held = take(&store, "due", Duration::from_secs(5)).await;
    store
        .push("due", task(r#""later""#).delay(Duration::from_millis(1000)))
        .await
        .expect("push");
    match store.reserve("due", "w").await.expect("reserve") {
        Reservation::Empty {
            next_due_ms: Some(due),
        } => assert!(due <= 1000, "{due}"),
        other => panic!("a delayed task ready at once: {other:?}"),
    }
    let later = take(&store, "due", Duration::from_secs(5)).await;
    assert_eq!(later.payload, r#""later""#);
    let outcome = store
        .fail(&later, "again", Some(Duration::from_millis(1000)))
        .await
        .expect("fail");
    assert_eq!(outcome, FailOutcome::Retry { delay_ms: 1000 });
    let again = take(&store, "due", Duration::from_secs(5)).await;
    assert_eq!((again.payload.as_str(), again.attempt), (r#""later""#, 2));
    store.ack(&again).await.expect("ack");
    store.ack(&held).await.expect("ack");
    assert_eq!(store.stats("due").await.expect("stats").completed, 2);
}
