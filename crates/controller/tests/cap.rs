//! The hard cap: the weight of the calls in any rolling window never exceeds the capacity,
//! checked by tollgate-testkit's independent checker over every call time; category shares;
//! the Critical reserve; delays counted.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Calls, build, check_windows, fullest_window, grant, hammer, spawn_request, tier};
use tokio::time::Instant;
use tollgate_controller::{
    CategoryShares, ControllerConfig, ControllerError, OperationCategory, Priority, ThrottleState,
    UnifiedRateController,
};

#[tokio::test(start_paused = true)]
async fn the_cap_and_the_shares_hold_under_many_concurrent_tasks() {
    let config = ControllerConfig::default();
    let c = Arc::new(UnifiedRateController::new(config.clone()));
    c.start_monitoring().await;
    let calls = Calls::default();
    let base = Instant::now();
    let (granted, timeouts) = hammer(
        c.clone(),
        calls.clone(),
        300,
        base + Duration::from_secs(150),
        40,
        200,
    )
    .await;
    let calls = calls.all();
    let window = config.window();
    assert_eq!(calls.len() as u64, granted);
    check_windows(&calls, base, 800, window, |_| true).expect("the capacity holds");
    check_windows(&calls, base, 160, window, |c| {
        c.category == OperationCategory::Scanning
    })
    .expect("the scanning share holds");
    check_windows(&calls, base, 80, window, |c| {
        c.category == OperationCategory::Administrative
    })
    .expect("the administrative share holds");
    // Not vacuous: the load kept the controller at its limits.
    let fullest = fullest_window(&calls, window, |_| true);
    assert!(fullest > 700, "fullest window {fullest}");
    assert!(timeouts > 0, "the load must exceed the capacity");
    let stats = c.get_stats().await;
    assert_eq!(stats.granted, granted);
    assert_eq!(stats.sla_violations, timeouts);
    assert!(stats.usage <= 800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_holds_on_two_threads_on_the_real_clock() {
    let fast = |enter, exit, speed, per_cycle| tier(enter, exit, speed, 1, per_cycle);
    let config = build(
        common::with_slas(ControllerConfig::builder(), Duration::from_millis(300))
            .capacity(100)
            .window(Duration::from_millis(300))
            .cycle_interval(Duration::from_millis(5))
            .tier(ThrottleState::Normal, fast(0, 0, 100, 10))
            .tier(ThrottleState::Moderate, fast(60, 60, 75, 5))
            .tier(ThrottleState::Heavy, fast(80, 60, 40, 2))
            .tier(ThrottleState::Emergency, fast(90, 90, 15, 1)),
    );
    let c = Arc::new(UnifiedRateController::new(config.clone()));
    c.start_monitoring().await;
    let calls = Calls::default();
    let base = Instant::now();
    let (granted, _) = hammer(
        c.clone(),
        calls.clone(),
        16,
        base + Duration::from_millis(1500),
        5,
        2,
    )
    .await;
    let calls = calls.all();
    assert!(granted > 100, "only {granted} granted");
    check_windows(&calls, base, 100, config.window(), |_| true).expect("the capacity holds");
}

fn all_trading(capacity: u32, delay_ms: u64) -> ControllerConfig {
    let t = |enter, exit, speed, per_cycle| tier(enter, exit, speed, delay_ms, per_cycle);
    build(
        common::with_slas(ControllerConfig::builder(), Duration::from_secs(2))
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
async fn a_permits_delay_is_counted_until_its_call_leaves_the_window() {
    // Every permit says "call in 500 ms"; the window is 1 s.
    let c = Arc::new(UnifiedRateController::new(all_trading(10, 500)));
    c.start_monitoring().await;
    let t0 = Instant::now();
    let first = grant(&c, 10, Priority::Critical, OperationCategory::Trading).await;
    assert_eq!(first.call_at(), t0 + Duration::from_millis(500));
    // One window after the grant, the first call (at 0.5 s) is still in the exchange's
    // window: granting now would put 20 in (0.5 s, 1.5 s].
    tokio::time::sleep(Duration::from_millis(1001)).await;
    let second = spawn_request(&c, 10, Priority::Critical, OperationCategory::Trading, "b");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !second.is_finished(),
        "granted while the first call is in the window"
    );
    let second = second.await.expect("task").expect("granted later");
    assert!(second.call_at() >= first.call_at() + Duration::from_secs(1));
    assert!(second.granted_at() >= t0 + Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn critical_uses_the_reserve_and_may_exceed_its_share() {
    let c = Arc::new(UnifiedRateController::new(ControllerConfig::default()));
    c.start_monitoring().await;
    // Fill every share with non-Critical requests: 560 + 160 + 40 = 760 = 800 − reserve.
    for (weight, n, category) in [
        (40, 14, OperationCategory::Trading),
        (40, 4, OperationCategory::Scanning),
        (40, 1, OperationCategory::Administrative),
    ] {
        for _ in 0..n {
            let _ = grant(&c, weight, Priority::High, category).await;
        }
    }
    assert_eq!(c.get_stats().await.usage, 760);
    // The administrative share has room (40 of 80) but the total is at capacity − reserve.
    let blocked = spawn_request(
        &c,
        1,
        Priority::High,
        OperationCategory::Administrative,
        "x",
    );
    // Critical is granted at once from the reserve, beyond scanning's full share.
    let _ = grant(&c, 40, Priority::Critical, OperationCategory::Scanning).await;
    let stats = c.get_stats().await;
    assert_eq!(stats.usage, 800);
    assert_eq!(stats.category(OperationCategory::Scanning).used, 200);
    // Even Critical never exceeds the capacity: it waits, misses its SLA, and it is counted.
    let critical = spawn_request(
        &c,
        1,
        Priority::Critical,
        OperationCategory::Trading,
        "late",
    );
    let err = critical.await.expect("task").expect_err("no capacity");
    assert!(
        matches!(err, ControllerError::SlaTimeout { priority: Priority::Critical, sla, .. }
            if sla == Duration::from_millis(100)),
        "{err}"
    );
    let err = blocked.await.expect("task").expect_err("no capacity");
    assert!(err.is_sla_timeout(), "{err}");
    let stats = c.get_stats().await;
    assert_eq!(stats.usage, 800);
    assert_eq!(stats.sla_violations_by_priority.critical, 1);
    assert_eq!(stats.sla_violations_by_priority.high, 1);
}

#[tokio::test(start_paused = true)]
async fn a_full_share_blocks_its_category_only() {
    let c = Arc::new(UnifiedRateController::new(ControllerConfig::default()));
    c.start_monitoring().await;
    for _ in 0..16 {
        let _ = grant(&c, 10, Priority::Medium, OperationCategory::Scanning).await;
    }
    let queued = spawn_request(
        &c,
        10,
        Priority::Medium,
        OperationCategory::Scanning,
        "17th",
    );
    common::settle().await;
    assert_eq!(c.get_stats().await.queue_depths.medium, 1);
    // Another category of a higher priority goes straight through.
    let _ = grant(&c, 10, Priority::High, OperationCategory::Trading).await;
    // The same priority in another category queues behind the scan (FIFO within Medium)
    // but the next cycle serves it, past the blocked scan.
    let trading = spawn_request(&c, 10, Priority::Medium, OperationCategory::Trading, "t");
    let permit = trading
        .await
        .expect("task")
        .expect("served by the next cycle");
    assert!(permit.queue_time() <= Duration::from_millis(100));
    // The scan waits for its share until its SLA (2 s): the share frees only after 30 s.
    let err = queued.await.expect("task").expect_err("share full");
    assert!(matches!(
        err,
        ControllerError::SlaTimeout {
            priority: Priority::Medium,
            ..
        }
    ));
    assert_eq!(
        c.get_stats()
            .await
            .category(OperationCategory::Scanning)
            .used,
        160
    );
}
