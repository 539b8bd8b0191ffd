//! A budget shared by several controllers through a tollgate store: the memory store on the
//! paused clock, and a real `redis-server` (never a fake) on the real clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Calls, build, check_windows, fullest_window, hammer, tier, with_slas};
use tokio::time::Instant;
use tollgate_controller::{
    ConfigError, ControllerConfig, ControllerError, OperationCategory, Priority, SharedBudget,
    ThrottleState, UnifiedRateController,
};
use tollgate_core::{Clock, DynStore, Nanos};
use tollgate_memory::MemoryStore;
use tollgate_redis::{RedisConfig, RedisStore};
use tollgate_testkit::redis::RedisServer;

/// Tokio's clock (paused in these tests) as a store clock.
#[derive(Clone)]
struct TokioClock(Instant);

impl Clock for TokioClock {
    fn now(&self) -> Nanos {
        let elapsed = u64::try_from((Instant::now() - self.0).as_nanos()).unwrap_or(u64::MAX);
        1_000_000_000_000 + elapsed
    }
}

fn memory_store() -> Arc<dyn DynStore> {
    Arc::new(
        MemoryStore::builder()
            .clock(TokioClock(Instant::now()))
            .build(),
    )
}

fn shared(store: &Arc<dyn DynStore>, config: &ControllerConfig) -> Arc<UnifiedRateController> {
    let budget = SharedBudget::new(store.clone(), "bot").expect("name");
    Arc::new(UnifiedRateController::with_shared_budget(config.clone(), budget).expect("shared"))
}

/// Runs the same load on two controllers and returns every call.
async fn two_instances(
    a: Arc<UnifiedRateController>,
    b: Arc<UnifiedRateController>,
    tasks: u64,
    run: Duration,
    max_weight: u64,
) -> (Vec<common::Call>, u64) {
    a.start_monitoring().await;
    b.start_monitoring().await;
    let calls = Calls::default();
    let until = Instant::now() + run;
    let (ga, gb) = tokio::join!(
        hammer(a, calls.clone(), tasks, until, max_weight, 100),
        hammer(b, calls.clone(), tasks, until, max_weight, 100),
    );
    (calls.all(), ga.0 + gb.0)
}

#[tokio::test(start_paused = true)]
async fn two_controllers_on_one_memory_store_keep_the_cap_together() {
    let config = ControllerConfig::default();
    let store = memory_store();
    let base = Instant::now();
    let (calls, granted) = two_instances(
        shared(&store, &config),
        shared(&store, &config),
        100,
        Duration::from_secs(100),
        40,
    )
    .await;
    let window = config.window();
    check_windows(&calls, base, 800, window, |_| true).expect("the capacity holds for both");
    check_windows(&calls, base, 160, window, |c| {
        c.category == OperationCategory::Scanning
    })
    .expect("the scanning share holds for both");
    let fullest = fullest_window(&calls, window, |_| true);
    assert!(
        fullest > 600,
        "fullest window {fullest} of {granted} grants"
    );

    // The same load on two controllers that do not share: the checker sees the cap broken.
    let base = Instant::now();
    let (calls, _) = two_instances(
        Arc::new(UnifiedRateController::new(config.clone())),
        Arc::new(UnifiedRateController::new(config.clone())),
        100,
        Duration::from_secs(100),
        40,
    )
    .await;
    assert!(check_windows(&calls, base, 800, window, |_| true).is_err());
}

#[tokio::test(start_paused = true)]
async fn every_instance_sees_the_shared_usage_and_throttles_on_it() {
    let config = ControllerConfig::default();
    let store = memory_store();
    let (a, b) = (shared(&store, &config), shared(&store, &config));
    let _ = common::grant(&a, 500, Priority::Critical, OperationCategory::Trading).await;
    let stats = b.get_stats().await;
    assert!(stats.shared);
    assert_eq!(
        (stats.usage, stats.throttle_state),
        (500, ThrottleState::Moderate)
    );
    assert_eq!(stats.category(OperationCategory::Trading).used, 500);
    // B's own scans are limited by the share A's instance has used too.
    let _ = common::grant(&a, 150, Priority::Medium, OperationCategory::Scanning).await;
    let _ = common::grant(&b, 10, Priority::Medium, OperationCategory::Scanning).await;
    b.start_monitoring().await;
    let err = b
        .request_permit(
            1,
            Priority::Medium,
            OperationCategory::Scanning,
            "scan".into(),
        )
        .await
        .expect_err("scanning share used up by both");
    assert!(err.is_sla_timeout(), "{err}");
    assert_eq!(b.get_scan_interval().await, Duration::from_secs(7200));
    // Critical still gets the reserve across instances; nobody gets past the capacity.
    let _ = common::grant(&b, 100, Priority::Critical, OperationCategory::Trading).await;
    let _ = common::grant(&a, 40, Priority::Critical, OperationCategory::Scanning).await;
    assert_eq!(a.get_stats().await.usage, 800);
    let err = a
        .request_permit(
            1,
            Priority::Critical,
            OperationCategory::Trading,
            "x".into(),
        )
        .await
        .expect_err("full");
    assert!(err.is_sla_timeout());
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_is_granted_by_the_shared_cycle_when_room_frees() {
    let config = build(
        with_slas(ControllerConfig::builder(), Duration::from_secs(60))
            .window(Duration::from_secs(10)),
    );
    let store = memory_store();
    let (a, b) = (shared(&store, &config), shared(&store, &config));
    b.start_monitoring().await;
    let t0 = Instant::now();
    let _ = common::grant(&a, 800, Priority::Critical, OperationCategory::Trading).await;
    // B's request does not fit the shared total: it waits.
    let waiting = common::spawn_request(&b, 100, Priority::High, OperationCategory::Trading, "w");
    common::settle().await;
    assert_eq!(b.get_stats().await.queue_depths.high, 1);
    let permit = waiting
        .await
        .expect("task")
        .expect("granted once A's grant leaves");
    // The store counts A's grant for 10 s + 1 s (longest delay) + 0.25 s (call margin).
    assert!(permit.granted_at() >= t0 + Duration::from_millis(11_250));
    assert!(permit.queue_time() > Duration::from_secs(11));
    let stats = b.get_stats().await;
    assert_eq!((stats.usage, stats.granted, stats.throttled), (100, 1, 1));
}

#[test]
fn a_bad_budget_name_is_refused() {
    let store = memory_store();
    for name in ["", "a{b}", &"x".repeat(201)] {
        let err = SharedBudget::new(store.clone(), name).expect_err("refused");
        assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err}");
    }
    let budget = SharedBudget::new(store, "ok")
        .expect("valid")
        .call_margin(Duration::from_secs(61));
    let err = UnifiedRateController::with_shared_budget(ControllerConfig::default(), budget)
        .expect_err("margin too long");
    assert!(err.to_string().contains("61s"), "{err}");
}

/// 40 weight per second, delays of 1–5 ms, short SLAs and cycles: a second of real time
/// holds many windows.
fn fast_config() -> ControllerConfig {
    let t = |enter, exit, speed, per_cycle| {
        let mut t = tier(enter, exit, speed, 1, per_cycle);
        t.delay_max = Duration::from_millis(5);
        t
    };
    build(
        with_slas(ControllerConfig::builder(), Duration::from_millis(300))
            .capacity(40)
            .window(Duration::from_secs(1))
            .cycle_interval(Duration::from_millis(10))
            .tier(ThrottleState::Normal, t(0, 0, 100, 10))
            .tier(ThrottleState::Moderate, t(60, 60, 75, 5))
            .tier(ThrottleState::Heavy, t(80, 60, 40, 2))
            .tier(ThrottleState::Emergency, t(90, 90, 15, 1)),
    )
}

async fn redis_controller(
    server: &RedisServer,
    config: &ControllerConfig,
) -> Arc<UnifiedRateController> {
    let redis = RedisConfig::parse(&server.url()).expect("url");
    let store: Arc<dyn DynStore> = Arc::new(RedisStore::connect(&redis).await.expect("connect"));
    shared(&store, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_on_one_redis_never_exceed_the_cap_together() {
    let server = RedisServer::start().expect("redis-server");
    let config = fast_config();
    // Two stores, two connections: two hosts.
    let a = redis_controller(&server, &config).await;
    let b = redis_controller(&server, &config).await;
    let base = Instant::now();
    let (calls, granted) = two_instances(a, b.clone(), 12, Duration::from_millis(3000), 4).await;
    check_windows(&calls, base, 40, config.window(), |_| true)
        .expect("the capacity holds across both");
    check_windows(&calls, base, 8, config.window(), |c| {
        c.category == OperationCategory::Scanning
    })
    .expect("the scanning share holds across both");
    // Not vacuous: with the store counting each grant for 1.255 s (window + longest delay +
    // call margin), 3 s hold about 3.4 such windows of 40.
    let weight: u64 = calls.iter().map(|c| u64::from(c.weight)).sum();
    let fullest = fullest_window(&calls, config.window(), |_| true);
    assert!(
        weight >= 100 && fullest >= 30,
        "{granted} grants, {weight} weight, fullest {fullest}"
    );
    let stats = b.get_stats().await;
    assert!(stats.shared && stats.usage <= 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_store_is_an_error_not_a_grant() {
    let mut server = RedisServer::start().expect("redis-server");
    let c = redis_controller(&server, &fast_config()).await;
    let _ = c
        .request_permit(1, Priority::High, OperationCategory::Trading, "up".into())
        .await
        .expect("granted while Redis runs");
    server.kill();
    let err = c
        .request_permit(1, Priority::High, OperationCategory::Trading, "down".into())
        .await
        .expect_err("no grant without the store");
    match err {
        ControllerError::Store(e) => assert!(e.is_transient(), "{e}"),
        other => panic!("expected a store error, got {other}"),
    }
    assert_eq!(c.get_stats().await.granted, 1);
}
