//! `ack_and_reserve`, the call between two tasks: alone, and from many slots at once (the
//! Redis store runs the calls of concurrent slots together, in one script).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tollgate_queue::{QueueError, Reservation};

use super::{Store, spec, take, task};

/// `ack_and_reserve` is `ack`, then `reserve` on the lease's queue: the next task by priority
/// and FIFO, the limit's answer, nothing when the queue is empty. A lease that is not the
/// caller's any more is refused and nothing is reserved.
pub async fn ack_and_reserve_chains(store: Store) {
    store
        .create(spec("1000/1s").name("chain").burst(1000))
        .await
        .expect("create");
    for (n, priority) in [(1, 0), (2, 5), (3, 0)] {
        store
            .push("chain", task(&format!(r#"{{"n":{n}}}"#)).priority(priority))
            .await
            .expect("push");
    }
    let first = take(&store, "chain", Duration::from_secs(5)).await;
    assert_eq!(first.payload, r#"{"n":2}"#);
    let next = store
        .ack_and_reserve(&first, "w")
        .await
        .expect("ack, reserve");
    let Some(Reservation::Task(second)) = next else {
        panic!("no task after the ack: {next:?}");
    };
    assert_eq!((second.payload.as_str(), second.attempt), (r#"{"n":1}"#, 1));
    let stale = store.ack_and_reserve(&first, "w").await;
    assert!(
        matches!(stale, Err(QueueError::LeaseLost { .. })),
        "{stale:?}"
    );
    let s = store.stats("chain").await.expect("stats");
    assert_eq!(
        (s.started, s.completed, s.waiting, s.in_flight),
        (2, 1, 1, 1)
    );
    let next = store
        .ack_and_reserve(&second, "w")
        .await
        .expect("ack, reserve");
    let Some(Reservation::Task(third)) = next else {
        panic!("no task after the ack: {next:?}");
    };
    assert_eq!(third.payload, r#"{"n":3}"#);
    let last = store
        .ack_and_reserve(&third, "w")
        .await
        .expect("ack, reserve");
    assert_eq!(last, Some(Reservation::Empty { next_due_ms: None }));
    let s = store.stats("chain").await.expect("stats");
    assert_eq!((s.started, s.completed, s.backlog()), (3, 3, 0));

    // A strict queue: right after a start, the reserve is told to wait.
    store
        .create(spec("2/1s").name("chain-strict"))
        .await
        .expect("create");
    for n in 0..2 {
        store
            .push("chain-strict", task(&n.to_string()))
            .await
            .expect("push");
    }
    let lease = take(&store, "chain-strict", Duration::from_secs(5)).await;
    match store
        .ack_and_reserve(&lease, "w")
        .await
        .expect("ack, reserve")
    {
        Some(Reservation::RateLimited { wait_ms }) => {
            assert!((1..=500).contains(&wait_ms), "{wait_ms}")
        }
        other => panic!("a task right after a start: {other:?}"),
    }
    assert!(store.remove("chain-strict").await.expect("remove"));
    let gone = store.ack_and_reserve(&lease, "w").await;
    assert!(
        matches!(gone, Err(QueueError::UnknownQueue { .. })),
        "{gone:?}"
    );
}

/// Many slots chaining `ack_and_reserve` on one queue at once (the Redis store batches their
/// calls) share out every task exactly once, and the queue's counts are exact; a stale lease
/// sent among them is refused without disturbing the others.
pub async fn concurrent_chains_share_out_every_task(store: Store) {
    const TASKS: usize = 400;
    const SLOTS: usize = 16;
    store
        .create(spec("1000000/1s").name("chains").burst(1_000_000))
        .await
        .expect("create");
    let mut pushed = HashSet::new();
    for n in 0..TASKS {
        let priority = u32::try_from(n % 3).expect("small");
        let id = store
            .push("chains", task(&n.to_string()).priority(priority))
            .await
            .expect("push");
        pushed.insert(id);
    }
    let mut first = Vec::new();
    for _ in 0..SLOTS {
        first.push(take(&store, "chains", Duration::from_secs(5)).await);
    }
    let stale = first[0].clone();
    store.ack(&stale).await.expect("ack");
    let taken = Arc::new(Mutex::new(vec![stale.task.clone()]));
    let mut slots = tokio::task::JoinSet::new();
    for lease in first.into_iter().skip(1) {
        taken.lock().push(lease.task.clone());
        let (store, taken) = (store.clone(), taken.clone());
        slots.spawn(async move {
            let mut lease = lease;
            loop {
                match store.ack_and_reserve(&lease, "w").await.expect("chain") {
                    Some(Reservation::Task(next)) => {
                        assert_eq!(next.attempt, 1, "{next:?}");
                        taken.lock().push(next.task.clone());
                        lease = next;
                    }
                    Some(Reservation::Empty { .. }) => return 0,
                    other => panic!("an unlimited queue with tasks answered {other:?}"),
                }
            }
        });
    }
    let (stale_store, stale_lease) = (store.clone(), stale.clone());
    slots.spawn(async move {
        let mut refused = 0;
        for _ in 0..50 {
            let answer = stale_store.ack_and_reserve(&stale_lease, "w").await;
            assert!(
                matches!(answer, Err(QueueError::LeaseLost { .. })),
                "{answer:?}"
            );
            refused += 1;
            tokio::task::yield_now().await;
        }
        refused
    });
    let mut refused = 0;
    while let Some(joined) = slots.join_next().await {
        refused += joined.expect("a slot panicked");
    }
    assert_eq!(refused, 50);
    let taken = taken.lock().clone();
    let unique: HashSet<String> = taken.iter().cloned().collect();
    assert_eq!(taken.len(), TASKS, "a task was given out twice");
    assert_eq!(unique, pushed, "every task given out once");
    let s = store.stats("chains").await.expect("stats");
    assert_eq!(
        (s.pushed, s.started, s.completed, s.backlog(), s.in_flight),
        (TASKS as u64, TASKS as u64, TASKS as u64, 0, 0)
    );
}
