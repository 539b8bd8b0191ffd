//! Throttle tiers: every tier with the default numbers, the hysteresis, the per-cycle service
//! of each tier (never a full stop), the scan interval and the tracing events.

mod common;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use common::{build, grant, settle, spawn_request, tier, with_slas};
use parking_lot::Mutex;
use tokio::time::{Instant, sleep, sleep_until};
use tollgate_controller::{
    CategoryShares, ControllerConfig, OperationCategory, Priority, ThrottleState,
    UnifiedRateController,
};

const CRITICAL: Priority = Priority::Critical;
const TRADING: OperationCategory = OperationCategory::Trading;

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

async fn state(c: &UnifiedRateController) -> (ThrottleState, u64, u32) {
    let s = c.get_stats().await;
    (s.throttle_state, s.usage, s.speed_percent)
}

#[tokio::test(start_paused = true)]
async fn every_tier_and_the_hysteresis_with_the_default_numbers() {
    use ThrottleState::*;
    let c = UnifiedRateController::new(ControllerConfig::default());
    let t0 = Instant::now();
    // (time s, weight, the tier the grant is made in → its delay range, the tier after it)
    let steps = [
        (0, 80, (10, 20), (Normal, 80, 100)),
        (1, 100, (10, 20), (Normal, 180, 100)),
        (2, 300, (10, 20), (Moderate, 480, 75)), // 60% exactly
        (3, 30, (50, 100), (Moderate, 510, 75)),
        (4, 140, (50, 100), (Heavy, 650, 40)),     // 81.25%
        (5, 80, (200, 400), (Emergency, 730, 15)), // 91.25%
        (6, 10, (500, 1000), (Emergency, 740, 15)),
    ];
    for (at, weight, (lo, hi), after) in steps {
        sleep_until(t0 + Duration::from_secs(at)).await;
        let permit = grant(&c, weight, CRITICAL, TRADING).await;
        assert!(
            (ms(lo)..=ms(hi)).contains(&permit.delay()),
            "grant of {weight} at {at}s: delay {:?}",
            permit.delay()
        );
        assert_eq!(state(&c).await, after, "after the grant at {at}s");
    }
    // The grants leave the window one by one, 30 s after their calls.
    sleep_until(t0 + ms(30_500)).await;
    assert_eq!(
        state(&c).await,
        (Heavy, 660, 40),
        "82.5%: under 90% is Heavy"
    );
    sleep_until(t0 + ms(31_500)).await;
    assert_eq!(
        state(&c).await,
        (Heavy, 560, 40),
        "70%: Heavy holds until usage is under 60%"
    );
    sleep_until(t0 + ms(32_500)).await;
    assert_eq!(state(&c).await, (Normal, 260, 100), "32.5%: back to Normal");
    // Coming up from Normal, 60% is Moderate again.
    let _ = grant(&c, 220, CRITICAL, TRADING).await;
    assert_eq!(state(&c).await, (Moderate, 480, 75));
}

/// The defaults without hysteresis, 1000 capacity, all Trading, no reserve, long SLAs.
fn quota_config() -> ControllerConfig {
    let defaults = ControllerConfig::default();
    let mut heavy = *defaults.tier(ThrottleState::Heavy);
    heavy.exit_below_percent = 80;
    build(
        with_slas(ControllerConfig::builder(), Duration::from_secs(60))
            .capacity(1000)
            .window(Duration::from_secs(10))
            .critical_reserve_percent(0)
            .shares(CategoryShares {
                trading: 100,
                scanning: 0,
                administrative: 0,
            })
            .tier(ThrottleState::Heavy, heavy),
    )
}

#[tokio::test(start_paused = true)]
async fn each_tier_serves_its_quota_to_every_priority_per_cycle() {
    for (tier_expected, kept, quota) in [
        (ThrottleState::Normal, 500, 10),
        (ThrottleState::Moderate, 650, 5),
        (ThrottleState::Heavy, 850, 2),
        (ThrottleState::Emergency, 950, 1),
    ] {
        let c = Arc::new(UnifiedRateController::new(quota_config()));
        let t0 = Instant::now();
        // Fill the window with two grants: the first leaves it first.
        let _ = grant(&c, 1000 - kept, CRITICAL, TRADING).await;
        sleep(Duration::from_secs(2)).await;
        let _ = grant(&c, kept, CRITICAL, TRADING).await;
        let mut waiting = Vec::new();
        for p in Priority::ALL {
            for i in 0..15 {
                waiting.push(spawn_request(&c, 1, p, TRADING, &format!("{p}{i}")));
            }
        }
        settle().await;
        let depths = c.get_stats().await.queue_depths;
        assert_eq!(Priority::ALL.map(|p| depths.get(p)), [15; 4]);
        // The first grant leaves the window (at 10 s + its delay); the second stays.
        sleep_until(t0 + Duration::from_secs(11)).await;
        let granted = c.run_cycle().await;
        let stats = c.get_stats().await;
        assert_eq!(stats.throttle_state, tier_expected);
        assert_eq!(granted, 4 * quota, "{tier_expected}");
        let depths = stats.queue_depths;
        assert_eq!(
            Priority::ALL.map(|p| depths.get(p)),
            [15 - quota; 4],
            "{tier_expected}: every priority gets its quota"
        );
        for w in waiting {
            w.abort();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_scan_interval_doubles_from_80_percent() {
    let c = UnifiedRateController::new(ControllerConfig::default());
    let hour = Duration::from_secs(3600);
    assert_eq!(c.get_scan_interval().await, hour);
    let _ = grant(&c, 639, CRITICAL, TRADING).await;
    assert_eq!(c.get_scan_interval().await, hour);
    let _ = grant(&c, 1, CRITICAL, TRADING).await;
    assert_eq!(c.get_scan_interval().await, 2 * hour);
    assert_eq!(c.get_stats().await.scan_interval, 2 * hour);
    sleep(Duration::from_secs(31)).await;
    assert_eq!(c.get_scan_interval().await, hour);
}

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

#[tokio::test(start_paused = true)]
async fn state_changes_high_usage_and_sla_violations_are_traced() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let c = Arc::new(UnifiedRateController::new(ControllerConfig::default()));
    c.start_monitoring().await;
    let _ = grant(&c, 500, CRITICAL, TRADING).await;
    assert!(
        log.text().contains("Throttle state changed"),
        "{}",
        log.text()
    );
    assert!(log.text().contains("to=Moderate"), "{}", log.text());
    assert!(!log.text().contains("HIGH CAPACITY USAGE"));
    let _ = grant(&c, 220, CRITICAL, TRADING).await;
    let text = log.text();
    assert!(
        text.contains("HIGH CAPACITY USAGE: 90.0% (720/800)"),
        "{text}"
    );
    assert!(text.contains("to=Emergency"), "{text}");
    assert!(text.contains("Scan interval adjusted"), "{text}");
    // A Critical request that cannot fit waits its 100 ms SLA.
    let late = spawn_request(&c, 100, CRITICAL, TRADING, "place_order");
    assert!(late.await.expect("task").is_err());
    let text = log.text();
    assert!(text.contains("SLA VIOLATION"), "{text}");
    assert!(text.contains("operation=place_order"), "{text}");
    // The alert is an edge, not one line per request.
    let _ = grant(&c, 1, CRITICAL, TRADING).await;
    assert_eq!(log.text().matches("HIGH CAPACITY USAGE").count(), 1);
}

#[test]
fn a_tier_without_delay_is_allowed() {
    let config = ControllerConfig::builder()
        .tier(ThrottleState::Normal, tier(0, 0, 100, 0, 10))
        .build();
    assert!(config.is_ok());
}
