//! The Rust worker: autoscaling from backlog, rate, service time and deadline; shutdown
//! finishes the tasks in hand; a handler's `retry_after` overrides the backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tollgate_queue::worker::{JobError, Worker};
use tollgate_queue::{Lease, MemoryQueues, NewTask, QueueSpec, QueueStore};

/// Runs `tasks` tasks of 100 ms on a 50/1s queue with autoscaling between 1 and 8 workers;
/// returns the most workers the autoscaler ran and the most tasks that ran at once.
async fn peak_concurrency(tasks: u64, deadline: Option<Duration>) -> (u32, u64) {
    let store: Arc<dyn QueueStore> = Arc::new(MemoryQueues::new());
    let spec = QueueSpec::new("50/1s".parse().expect("rate")).name("scaled");
    store.create(spec).await.expect("create");
    for n in 0..tasks {
        store
            .push("scaled", NewTask::json(n.to_string()).expect("payload"))
            .await
            .expect("push");
    }
    let (running, peak) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (r, p) = (running.clone(), peak.clone());
    let mut worker = Worker::new(store.clone(), vec!["scaled".into()], move |_: Lease| {
        let (r, p) = (r.clone(), p.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            r.fetch_sub(1, Ordering::SeqCst);
            Ok::<(), JobError>(())
        }
    })
    .autoscale(1, 8)
    .service_time_guess(Duration::from_millis(100))
    .idle_poll(Duration::from_millis(10));
    if let Some(d) = deadline {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
        worker = worker.deadline_ms(u64::try_from((now + d).as_millis()).expect("ms"));
    }
    let watch = store.clone();
    let report = worker
        .run(async move {
            while watch
                .stats("scaled")
                .await
                .map(|s| s.backlog())
                .unwrap_or(0)
                > 0
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("run");
    assert_eq!(report.completed, tasks);
    (report.peak_workers, peak.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaling_keeps_up_with_the_rate_and_pushes_for_a_deadline() {
    // 50/1s spaces starts by 20 ms: 100 ms tasks need 5 workers to keep up; more would idle.
    let (workers, running) = peak_concurrency(60, None).await;
    // The service time seen includes the overhead of a busy machine: ceil(100.x ms / 20 ms)
    // may be 6, and a task that took 140 ms asks for 7 or 8.
    assert!(
        (5..=8).contains(&workers),
        "keeping up with the rate took {workers}"
    );
    assert!((4..=8).contains(&running), "{running} tasks at once");
    // A far deadline needs few: 20 tasks × 100 ms fit in 80% of 30 s with one worker.
    let (far, _) = peak_concurrency(20, Some(Duration::from_secs(30))).await;
    assert_eq!(far, 1, "a distant deadline needs one worker");
    // A near one needs every worker that helps.
    let (near, running) = peak_concurrency(60, Some(Duration::from_millis(1500))).await;
    assert!(
        near >= 5 && near > far,
        "a deadline at risk scaled to {near}"
    );
    assert!(running >= 4, "{running} tasks at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_tasks_in_hand_and_retry_after_is_honoured() {
    let store: Arc<dyn QueueStore> = Arc::new(MemoryQueues::new());
    let spec = QueueSpec::new("100/1s".parse().expect("rate"))
        .name("w")
        .burst(10);
    store.create(spec).await.expect("create");
    for n in 0..3 {
        store
            .push("w", NewTask::json(n.to_string()).expect("payload"))
            .await
            .expect("push");
    }
    let started = Arc::new(AtomicU64::new(0));
    let counted = started.clone();
    let worker = Worker::new(store.clone(), vec!["w".into()], move |lease: Lease| {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if lease.payload == "0" {
                return Err(JobError::retry_after("busy", Duration::from_secs(60)));
            }
            Ok(())
        }
    })
    .concurrency(3);
    // Stopped once all three have started (well before their 300 ms are over).
    let all_started = async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while started.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let report = worker.run(all_started).await.expect("run");
    // Each of the three tasks still ran its 300 ms to the end.
    assert_eq!((report.completed, report.retried), (2, 1));
    let s = store.stats("w").await.expect("stats");
    assert_eq!((s.in_flight, s.delayed, s.completed), (0, 1, 2));
    match store.reserve("w", "t").await.expect("reserve") {
        tollgate_queue::Reservation::Empty {
            next_due_ms: Some(due),
        } => {
            assert!(due > 59_000, "Retry-After of 60 s gave {due} ms")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_an_unknown_queue_fails_at_once() {
    let store: Arc<dyn QueueStore> = Arc::new(MemoryQueues::new());
    let worker = Worker::new(store, vec!["missing".into()], |_: Lease| async {
        Ok::<(), JobError>(())
    });
    let err = worker
        .run(std::future::pending())
        .await
        .expect_err("unknown queue");
    assert_eq!(err.code(), "unknown_queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_outlives_its_queue_expiring_and_serves_it_when_it_is_made_again() {
    let store: Arc<dyn QueueStore> = Arc::new(MemoryQueues::new());
    let spec = || {
        QueueSpec::new("100/1s".parse().expect("rate"))
            .name("brief")
            .idle_expiry(Duration::from_millis(100))
    };
    store.create(spec()).await.expect("create");
    let done = Arc::new(AtomicU64::new(0));
    let d = done.clone();
    let worker = Worker::new(store.clone(), vec!["brief".into()], move |_: Lease| {
        let d = d.clone();
        async move {
            d.fetch_add(1, Ordering::SeqCst);
            Ok::<(), JobError>(())
        }
    })
    .idle_poll(Duration::from_millis(10));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    // The worker's polls do not keep the empty queue alive.
    let started = std::time::Instant::now();
    while store.stats("brief").await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a polled empty queue never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Made again, its task is served by the same worker.
    store.create(spec()).await.expect("create again");
    store
        .push("brief", NewTask::json("1").expect("payload"))
        .await
        .expect("push");
    while done.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the worker did not take a task from the queue made again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    let report = running.await.expect("join").expect("run");
    assert_eq!(report.completed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaled_processes_share_what_the_queue_needs() {
    // 50/1s spaces starts by 20 ms: 100 ms tasks need 5 workers in all to keep up (up to 8
    // on a busy machine, whose overhead lengthens the service time seen). Alone, each
    // process would run that many, 10 or more in all; two share them, each half rounded up.
    let store: Arc<dyn QueueStore> = Arc::new(MemoryQueues::new());
    let spec = QueueSpec::new("50/1s".parse().expect("rate")).name("shared");
    store.create(spec).await.expect("create");
    for n in 0..200 {
        let task = NewTask::json(n.to_string()).expect("payload");
        store.push("shared", task).await.expect("push");
    }
    let process = |id: &str| {
        Worker::new(store.clone(), vec!["shared".into()], |_: Lease| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<(), JobError>(())
        })
        .autoscale(1, 8)
        .service_time_guess(Duration::from_millis(100))
        .idle_poll(Duration::from_millis(10))
        .id(id)
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut runs = Vec::new();
    for id in ["host-a", "host-b"] {
        let mut stopped = stopped.clone();
        let worker = process(id);
        runs.push(tokio::spawn(worker.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
    }
    // After a few beats (one a second), the fleet has settled.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let fleet = store.stats("shared").await.expect("stats").workers;
    assert_eq!(fleet.processes, 2, "{fleet:?}");
    assert!(
        (5..=8).contains(&fleet.slots),
        "two processes run {} slots for a need of 5 to 8",
        fleet.slots
    );
    let _ = stop.send(true);
    for run in runs {
        run.await.expect("join").expect("run");
    }
    let fleet = store.stats("shared").await.expect("stats").workers;
    assert_eq!(fleet.processes, 0, "stopped processes leave: {fleet:?}");
}
