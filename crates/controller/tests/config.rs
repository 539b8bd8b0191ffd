//! The default numbers, and bad input refused with typed errors at construction and at
//! request time.

mod common;

use std::time::Duration;

use common::tier;
use tollgate_controller::{
    CategoryShares, ConfigError, ControllerConfig, ControllerError, OperationCategory, Priority,
    ThrottleState, UnifiedRateController,
};

#[test]
fn the_defaults_are_the_issues_numbers() {
    let c = ControllerConfig::default();
    assert_eq!(c.capacity(), 800);
    assert_eq!(c.window(), Duration::from_secs(30));
    let weights = OperationCategory::ALL.map(|cat| c.share_weight(cat));
    assert_eq!(weights, [560, 160, 80]);
    assert_eq!(c.critical_reserve(), 40);
    let ms = Duration::from_millis;
    let expected = [
        // state, enter, exit, speed, delay range, per cycle
        (ThrottleState::Normal, 0, 0, 100, (10, 20), 10),
        (ThrottleState::Moderate, 60, 60, 75, (50, 100), 5),
        (ThrottleState::Heavy, 80, 60, 40, (200, 400), 2),
        (ThrottleState::Emergency, 90, 90, 15, (500, 1000), 1),
    ];
    for (state, enter, exit, speed, (lo, hi), per_cycle) in expected {
        let t = c.tier(state);
        assert_eq!(
            (t.enter_at_percent, t.exit_below_percent, t.speed_percent),
            (enter, exit, speed),
            "{state}"
        );
        assert_eq!((t.delay_min, t.delay_max), (ms(lo), ms(hi)), "{state}");
        assert_eq!(t.max_per_cycle, per_cycle, "{state}");
    }
    let slas = Priority::ALL.map(|p| c.sla(p));
    assert_eq!(slas, [ms(100), ms(500), ms(2000), ms(10_000)]);
    assert_eq!(c.scan_interval(), Duration::from_secs(3600));
    assert_eq!(c.scan_interval_high_load(), Duration::from_secs(7200));
    assert_eq!(c.high_load_percent(), 80);
    assert_eq!(c.alert_percent(), 90);
    assert_eq!(c.cycle_interval(), ms(100));
    assert_eq!(c.max_delay(), ms(1000));
    assert_eq!(ControllerConfig::builder().build(), Ok(c));
}

#[test]
fn shares_must_sum_to_100() {
    for (t, s, a, sum) in [
        (70, 20, 20, 110),
        (50, 20, 10, 80),
        (u32::MAX, 1, 0, 4294967296),
    ] {
        let err = ControllerConfig::builder()
            .shares(CategoryShares {
                trading: t,
                scanning: s,
                administrative: a,
            })
            .build()
            .expect_err("refused");
        assert_eq!(
            err,
            ConfigError::SharesNotHundred {
                trading: t,
                scanning: s,
                administrative: a,
                sum
            }
        );
        let text = err.to_string();
        assert!(text.contains(&format!("= {sum}%")), "{text}");
    }
}

#[test]
fn tiers_out_of_order_are_refused() {
    let err = ControllerConfig::builder()
        .tier(ThrottleState::Heavy, tier(95, 60, 40, 300, 2))
        .build()
        .expect_err("heavy above emergency");
    assert_eq!(
        err,
        ConfigError::TiersOutOfOrder {
            tier: ThrottleState::Emergency,
            enter_at: 90,
            below: ThrottleState::Heavy,
            below_enter_at: 95
        }
    );
    assert!(err.to_string().contains("Emergency starts at 90%"), "{err}");
    let err = ControllerConfig::builder()
        .tier(ThrottleState::Moderate, tier(0, 0, 75, 50, 5))
        .build()
        .expect_err("moderate at 0");
    assert!(matches!(
        err,
        ConfigError::TiersOutOfOrder {
            tier: ThrottleState::Moderate,
            ..
        }
    ));
    let err = ControllerConfig::builder()
        .tier(ThrottleState::Emergency, tier(101, 90, 15, 500, 1))
        .build()
        .expect_err("over 100%");
    assert!(matches!(
        err,
        ConfigError::TiersOutOfOrder { enter_at: 101, .. }
    ));
}

#[test]
fn inconsistent_tiers_and_values_are_refused() {
    let cases = [
        (
            ControllerConfig::builder().tier(ThrottleState::Heavy, tier(80, 85, 40, 300, 2)),
            "exit below 85%",
        ),
        (
            ControllerConfig::builder().tier(ThrottleState::Heavy, tier(80, 0, 40, 300, 2)),
            "exit below 0%",
        ),
        (
            ControllerConfig::builder().tier(ThrottleState::Emergency, tier(90, 90, 15, 500, 0)),
            "max_per_cycle is 0",
        ),
        (
            ControllerConfig::builder().tier(ThrottleState::Emergency, tier(90, 90, 50, 500, 1)),
            "speed 50% is above Heavy's 40%",
        ),
        (
            ControllerConfig::builder().tier(ThrottleState::Normal, tier(10, 0, 100, 10, 10)),
            "enter at 10%",
        ),
        (
            ControllerConfig::builder().tier(ThrottleState::Normal, {
                let mut t = tier(0, 0, 100, 20, 10);
                t.delay_max = Duration::from_millis(10);
                t
            }),
            "20ms..=10ms",
        ),
        (ControllerConfig::builder().capacity(0), "at least 1"),
        (
            ControllerConfig::builder().critical_reserve_percent(100),
            "100%",
        ),
        (
            ControllerConfig::builder().window(Duration::ZERO),
            "window is 0ns",
        ),
        (
            ControllerConfig::builder().sla(Priority::High, Duration::ZERO),
            "the High SLA is 0ns",
        ),
        (
            ControllerConfig::builder().alert_percent(0),
            "alert threshold is 0%",
        ),
        (
            ControllerConfig::builder().cycle_interval(Duration::from_secs(61)),
            "monitoring cycle is 61s",
        ),
    ];
    for (builder, expected) in cases {
        let err = builder.build().expect_err(expected);
        assert!(
            err.to_string().contains(expected),
            "{err} (expected {expected:?})"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn bad_weights_are_refused_at_request_time() {
    let c = UnifiedRateController::new(ControllerConfig::default());
    let ask = |w, p, cat| c.request_permit(w, p, cat, "op".to_string());
    let err = ask(0, Priority::Low, OperationCategory::Trading)
        .await
        .expect_err("0");
    assert_eq!(err, ControllerError::ZeroWeight);
    let err = ask(801, Priority::Critical, OperationCategory::Trading)
        .await
        .expect_err("over capacity");
    assert!(matches!(
        err,
        ControllerError::WeightTooLarge {
            weight: 801,
            max: 800,
            ..
        }
    ));
    assert!(err.to_string().contains("capacity"), "{err}");
    // Scanning's share is 160: a non-Critical request of 161 could never be granted...
    let err = ask(161, Priority::High, OperationCategory::Scanning)
        .await
        .expect_err("over the share");
    assert!(
        matches!(err, ControllerError::WeightTooLarge { max: 160, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("share"), "{err}");
    // ...but a Critical one may exceed its share.
    let permit = ask(161, Priority::Critical, OperationCategory::Scanning)
        .await
        .expect("Critical may exceed the share");
    assert_eq!(permit.weight(), 161);
    // With a 100% share, non-Critical requests are still held under capacity − reserve.
    let all_trading = ControllerConfig::builder()
        .shares(CategoryShares {
            trading: 100,
            scanning: 0,
            administrative: 0,
        })
        .build()
        .expect("valid");
    let c = UnifiedRateController::new(all_trading);
    let err = c
        .request_permit(761, Priority::Low, OperationCategory::Trading, "op".into())
        .await
        .expect_err("over capacity less reserve");
    assert!(
        matches!(err, ControllerError::WeightTooLarge { max: 760, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("reserve"), "{err}");
    let err = c
        .request_permit(1, Priority::Low, OperationCategory::Scanning, "op".into())
        .await
        .expect_err("0% share");
    assert!(
        matches!(err, ControllerError::WeightTooLarge { max: 0, .. }),
        "{err}"
    );
    // Nothing refused was counted or queued.
    let stats = c.get_stats().await;
    assert_eq!((stats.total_requests, stats.usage), (0, 0));
}
