//! Statistics, the dashboard, and request records kept for the window only.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{grant, settle, spawn_request};
use tokio::time::{Instant, sleep};
use tollgate_controller::{
    ControllerConfig, OperationCategory, Priority, ThrottleState, UnifiedRateController,
};

#[tokio::test(start_paused = true)]
async fn stats_report_usage_queues_and_counters() {
    let c = Arc::new(UnifiedRateController::new(ControllerConfig::default()));
    c.start_monitoring().await;
    let _ = grant(&c, 300, Priority::High, OperationCategory::Trading).await;
    let _ = grant(&c, 160, Priority::Medium, OperationCategory::Scanning).await;
    let _ = grant(&c, 20, Priority::Low, OperationCategory::Administrative).await;
    let _ = grant(&c, 20, Priority::Critical, OperationCategory::Trading).await;
    // Scanning is full: the next scan waits.
    let waiting = spawn_request(&c, 5, Priority::Medium, OperationCategory::Scanning, "scan");
    settle().await;
    let s = c.get_stats().await;
    assert_eq!((s.capacity, s.window), (800, Duration::from_secs(30)));
    assert_eq!((s.usage, s.usage_percent), (500, 62.5));
    assert_eq!(s.critical_reserve, 40);
    let used = OperationCategory::ALL.map(|cat| (s.category(cat).used, s.category(cat).share));
    assert_eq!(used, [(320, 560), (160, 160), (20, 80)]);
    assert_eq!(
        s.category(OperationCategory::Scanning).percent_of_share(),
        100.0
    );
    assert_eq!(Priority::ALL.map(|p| s.queue_depths.get(p)), [0, 0, 1, 0]);
    assert_eq!(
        (s.throttle_state, s.speed_percent),
        (ThrottleState::Moderate, 75)
    );
    // The fourth grant was made in Moderate: throttled.
    assert_eq!((s.total_requests, s.granted, s.throttled), (5, 4, 1));
    assert_eq!((s.sla_violations, s.records_in_window), (0, 4));
    assert_eq!(s.avg_queue_time_ms, 0.0);
    assert_eq!(s.scan_interval, Duration::from_secs(3600));
    assert!(!s.shared);

    let dashboard = s.format_dashboard();
    for expected in [
        "RATE CONTROLLER DASHBOARD",
        "Status: 🟡 MODERATE | Usage: 62.5% (500/800 in 30s)",
        "Trading:      57.1% (320/560 weight)",
        "Scanning:     100.0% (160/160 weight)",
        "Admin:        25.0% (20/80 weight)",
        "Critical reserve: 40 weight",
        "🔴 Critical: 0 | 🟠 High: 0 | 🟡 Medium: 1 | 🟢 Low: 0",
        "Total Requests:    5",
        "Throttled:         1 (25.0%)",
        "SLA Violations:    0",
        "Avg Queue Time:    0.0ms",
        "Scan Interval:     3600s",
    ] {
        assert!(
            dashboard.contains(expected),
            "{expected:?} not in\n{dashboard}"
        );
    }
    let err = waiting.await.expect("task").expect_err("scanning full");
    assert!(err.is_sla_timeout());
    let s = c.get_stats().await;
    assert_eq!(s.sla_violations, 1);
    assert!(s.format_dashboard().contains("SLA Violations:    1"));
}

#[tokio::test(start_paused = true)]
async fn records_hold_the_request_and_leave_with_the_window() {
    let c = UnifiedRateController::new(ControllerConfig::default());
    let t0 = Instant::now();
    let permit = c
        .request_permit(
            5,
            Priority::Critical,
            OperationCategory::Trading,
            "place_order".into(),
        )
        .await
        .expect("granted");
    let call_at = permit.call_at();
    assert_eq!(call_at, t0 + permit.delay());
    sleep(permit.delay()).await;
    permit.complete(42).await;
    let records = c.get_records().await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!((r.timestamp, r.call_at, r.weight), (t0, call_at, 5));
    assert_eq!(
        (r.priority, r.category),
        (Priority::Critical, OperationCategory::Trading)
    );
    assert_eq!(r.operation, "place_order");
    assert_eq!((r.queue_time_ms, r.execution_time_ms), (0, Some(42)));
    // Kept while the grant is inside the window, then forgotten, with its weight.
    sleep_to(t0 + Duration::from_millis(29_999)).await;
    assert_eq!(c.get_records().await.len(), 1);
    sleep_to(t0 + Duration::from_secs(30)).await;
    assert!(c.get_records().await.is_empty());
    sleep_to(t0 + Duration::from_secs(31)).await;
    let s = c.get_stats().await;
    assert_eq!((s.records_in_window, s.usage, s.granted), (0, 0, 1));
}

async fn sleep_to(t: Instant) {
    tokio::time::sleep_until(t).await;
}
