//! Priority queues: highest priority first, FIFO within one, no starvation while capacity
//! exists, no overtaking of a request blocked by the capacity, SLA timeouts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{build, grant, settle, spawn_request, tier, with_slas};
use tokio::time::{Instant, sleep, sleep_until};
use tollgate_controller::{
    CategoryShares, ControllerConfig, ControllerError, OperationCategory, Priority, ThrottleState,
    UnifiedRateController,
};

const TRADING: OperationCategory = OperationCategory::Trading;

/// `capacity` per second, all Trading, no reserve, no delays, every SLA `sla`.
fn small(capacity: u32, sla: Duration) -> ControllerConfig {
    let t = |enter, exit, speed, per_cycle| tier(enter, exit, speed, 0, per_cycle);
    build(
        with_slas(ControllerConfig::builder(), sla)
            .capacity(capacity)
            .window(Duration::from_secs(1))
            .critical_reserve_percent(0)
            .shares(CategoryShares {
                trading: 100,
                scanning: 0,
                administrative: 0,
            })
            .tier(ThrottleState::Normal, t(0, 0, 100, 10))
            .tier(ThrottleState::Moderate, t(60, 60, 75, 5))
            .tier(ThrottleState::Heavy, t(80, 60, 40, 2))
            .tier(ThrottleState::Emergency, t(90, 90, 15, 1)),
    )
}

#[tokio::test(start_paused = true)]
async fn highest_priority_first_and_fifo_within_one() {
    let c = Arc::new(UnifiedRateController::new(small(
        10,
        Duration::from_secs(60),
    )));
    c.start_monitoring().await;
    let t0 = Instant::now();
    // Ten grants of 1, 100 ms apart: from 1 s on, one unit frees every 100 ms.
    for k in 0..10 {
        sleep_until(t0 + Duration::from_millis(100 * k)).await;
        let _ = grant(&c, 1, Priority::Critical, TRADING).await;
    }
    sleep_until(t0 + Duration::from_millis(950)).await;
    let arrivals = [
        ("a", Priority::Low),
        ("b", Priority::Medium),
        ("c", Priority::Low),
        ("d", Priority::High),
        ("e", Priority::Critical),
        ("f", Priority::Medium),
        ("g", Priority::High),
        ("h", Priority::Critical),
    ];
    let mut waiting = Vec::new();
    for (name, priority) in arrivals {
        waiting.push(spawn_request(&c, 1, priority, TRADING, name));
        settle().await;
    }
    for w in waiting {
        let _ = w.await.expect("task").expect("granted");
    }
    let served: Vec<String> = c
        .get_records()
        .await
        .into_iter()
        .filter(|r| r.operation != "grant")
        .map(|r| r.operation)
        .collect();
    assert_eq!(served, ["e", "h", "d", "g", "b", "f", "a", "c"]);
}

#[tokio::test(start_paused = true)]
async fn lower_priorities_are_served_in_the_same_cycle_as_a_long_urgent_queue() {
    let c = Arc::new(UnifiedRateController::new(small(
        100,
        Duration::from_secs(60),
    )));
    let _ = grant(&c, 100, Priority::Critical, TRADING).await;
    let mut waiting = Vec::new();
    for i in 0..40 {
        waiting.push(spawn_request(
            &c,
            1,
            Priority::High,
            TRADING,
            &format!("h{i}"),
        ));
    }
    for i in 0..3 {
        waiting.push(spawn_request(
            &c,
            1,
            Priority::Low,
            TRADING,
            &format!("l{i}"),
        ));
    }
    settle().await;
    sleep(Duration::from_millis(1001)).await;
    // Capacity for all 43: the first cycle serves 10 High and all 3 Low.
    assert_eq!(c.run_cycle().await, 13);
    let depths = c.get_stats().await.queue_depths;
    assert_eq!((depths.high, depths.low), (30, 0));
    assert_eq!(c.run_cycle().await, 10);
    for w in waiting {
        w.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_blocked_by_the_capacity_is_not_overtaken_by_lower_priorities() {
    let config = build(
        small(10, Duration::from_secs(60))
            .to_builder()
            .sla(Priority::High, Duration::from_millis(500)),
    );
    let c = Arc::new(UnifiedRateController::new(config));
    c.start_monitoring().await;
    let t0 = Instant::now();
    let _ = grant(&c, 9, Priority::Critical, TRADING).await;
    // High needs 5, only 1 is free: it waits; Low (1) would fit but must not take it.
    let high = spawn_request(&c, 5, Priority::High, TRADING, "high");
    settle().await;
    let low = spawn_request(&c, 1, Priority::Low, TRADING, "low");
    settle().await;
    sleep(Duration::from_millis(300)).await;
    assert!(!low.is_finished(), "Low overtook a waiting High");
    // Critical ranks above the waiting High and takes the free unit at once.
    let _ = grant(&c, 1, Priority::Critical, TRADING).await;
    let err = high.await.expect("task").expect_err("no room for 5");
    assert!(matches!(
        err,
        ControllerError::SlaTimeout {
            priority: Priority::High,
            ..
        }
    ));
    // Once High gave up, Low waits for room like anyone: the window frees at 1 s.
    let low = low.await.expect("task").expect("granted");
    assert!(low.granted_at() >= t0 + Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn each_priority_times_out_at_its_sla_and_is_counted() {
    let c = Arc::new(UnifiedRateController::new(ControllerConfig::default()));
    c.start_monitoring().await;
    let _ = grant(&c, 800, Priority::Critical, TRADING).await;
    let start = Instant::now();
    let waiting: Vec<_> = Priority::ALL
        .into_iter()
        .map(|p| (p, spawn_request(&c, 1, p, TRADING, p.name())))
        .collect();
    for (p, w) in waiting {
        let err = w.await.expect("task").expect_err("no capacity");
        let ControllerError::SlaTimeout {
            priority,
            sla,
            waited,
            operation,
            ..
        } = err
        else {
            panic!("{p}: expected an SLA timeout, got {err}");
        };
        assert_eq!((priority, operation.as_str()), (p, p.name()));
        assert_eq!(sla, ControllerConfig::default().sla(p));
        assert_eq!(waited, sla, "{p}");
        assert_eq!(Instant::now() - start, sla, "{p} answered at its deadline");
    }
    let stats = c.get_stats().await;
    assert_eq!(stats.sla_violations, 4);
    assert_eq!(
        Priority::ALL.map(|p| stats.sla_violations_by_priority.get(p)),
        [1; 4]
    );
    assert_eq!(Priority::ALL.map(|p| stats.queue_depths.get(p)), [0; 4]);
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_is_granted_within_its_sla_when_room_frees() {
    let c = Arc::new(UnifiedRateController::new(small(
        10,
        Duration::from_millis(500),
    )));
    c.start_monitoring().await;
    let _ = grant(&c, 10, Priority::Critical, TRADING).await;
    sleep(Duration::from_millis(700)).await;
    let waiting = spawn_request(&c, 4, Priority::High, TRADING, "w");
    let permit = waiting
        .await
        .expect("task")
        .expect("granted when the window frees");
    assert!(permit.queue_time() <= Duration::from_millis(400));
    let stats = c.get_stats().await;
    assert_eq!((stats.sla_violations, stats.throttled), (0, 1));
    assert!(stats.avg_queue_time_ms > 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_request_leaves_its_queue_uncounted() {
    let c = Arc::new(UnifiedRateController::new(ControllerConfig::default()));
    c.start_monitoring().await;
    let _ = grant(&c, 800, Priority::Critical, TRADING).await;
    let w = spawn_request(&c, 1, Priority::Low, TRADING, "gone");
    settle().await;
    assert_eq!(c.get_stats().await.queue_depths.low, 1);
    w.abort();
    settle().await;
    let stats = c.get_stats().await;
    assert_eq!((stats.queue_depths.low, stats.sla_violations), (0, 0));
    // Once the window frees, nothing is granted to the dropped request.
    sleep(Duration::from_secs(31)).await;
    let stats = c.get_stats().await;
    assert_eq!((stats.granted, stats.usage), (1, 0));
}
