//! Worker processes' reports: the fleet each queue shows and autoscaled workers share.

use std::time::Duration;

use tollgate_queue::QueueError;
use tollgate_queue::fleet::Fleet;

use super::{Store, spec, task};

/// Worker processes' reports make the queue's fleet: they expire after their time to live,
/// a process reporting 0 slots leaves at once, and they do not keep an idle queue alive.
pub async fn worker_processes_make_a_fleet(store: Store) {
    let fleet = |processes, slots| Fleet { processes, slots };
    let s = spec("1/s")
        .name("fleet")
        .idle_expiry(Duration::from_millis(300));
    store.create(s).await.expect("create");
    // A task keeps the queue until the expiry part below.
    store.push("fleet", task("1")).await.expect("push");
    let ms = Duration::from_millis;
    let report = |process: &'static str, slots, ttl| {
        let store = store.clone();
        async move {
            store
                .report_workers("fleet", process, slots, ttl)
                .await
                .expect("report")
        }
    };
    assert_eq!(report("a", 3, ms(250)).await, fleet(1, 3));
    assert_eq!(report("b", 2, ms(10_000)).await, fleet(2, 5));
    assert_eq!(
        report("b", 4, ms(10_000)).await,
        fleet(2, 7),
        "b's new count"
    );
    let stats = store.stats("fleet").await.expect("stats");
    assert_eq!(stats.workers, fleet(2, 7));
    tokio::time::sleep(ms(300)).await;
    assert_eq!(
        store.stats("fleet").await.expect("stats").workers,
        fleet(1, 4),
        "a's report expired"
    );
    assert_eq!(report("b", 0, ms(10_000)).await, fleet(0, 0), "b stopped");

    // Emptied, then reported every 50 ms, the idle queue still expires.
    assert_eq!(store.clear("fleet").await.expect("clear"), 1);
    let started = std::time::Instant::now();
    loop {
        match store.report_workers("fleet", "c", 1, ms(10_000)).await {
            Err(QueueError::UnknownQueue { .. }) => break,
            Ok(_) => assert!(
                started.elapsed() < Duration::from_secs(3),
                "reports kept an idle queue alive"
            ),
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(ms(50)).await;
    }
    // Made again, it has no fleet from before.
    store
        .create(spec("1/s").name("fleet"))
        .await
        .expect("create");
    assert_eq!(
        store.stats("fleet").await.expect("stats").workers,
        fleet(0, 0)
    );
}
