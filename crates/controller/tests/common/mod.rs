//! Helpers shared by the controller's test files.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tollgate_controller::{
    ControllerConfig, ControllerConfigBuilder, ControllerError, OperationCategory, Permit,
    Priority, TierSettings, UnifiedRateController,
};
use tollgate_core::{Algorithm, Limit, Rate, Unit};
use tollgate_testkit::Admission;

/// One call made under a permit: when it started, and its weight.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub at: Instant,
    pub weight: u32,
    pub priority: Priority,
    pub category: OperationCategory,
}

/// Every call made, in any order.
#[derive(Debug, Clone, Default)]
pub struct Calls(pub Arc<Mutex<Vec<Call>>>);

impl Calls {
    pub fn push(&self, permit: &Permit) {
        self.0.lock().push(Call {
            at: permit.call_at(),
            weight: permit.weight(),
            priority: permit.priority(),
            category: permit.category(),
        });
    }

    pub fn all(&self) -> Vec<Call> {
        self.0.lock().clone()
    }
}

/// Checks, with tollgate-testkit's independent sliding-window checker, that the calls
/// selected by `keep` never hold more than `count` weight in any window of `window`.
pub fn check_windows(
    calls: &[Call],
    base: Instant,
    count: u64,
    window: Duration,
    keep: impl Fn(&Call) -> bool,
) -> Result<(), tollgate_testkit::Violation> {
    let window_ms = u64::try_from(window.as_millis()).expect("window in ms");
    let rate = Rate::new(count, window_ms, Unit::Millisecond).expect("rate");
    let limit = Limit::new(rate, Algorithm::SlidingWindow, None).expect("limit");
    let admissions: Vec<Admission> = calls
        .iter()
        .filter(|c| keep(c))
        .map(|c| Admission {
            // Offset so that calls made before `base` stay positive.
            t: u64::try_from((c.at + Duration::from_secs(3600) - base).as_nanos()).expect("ns"),
            cost: u64::from(c.weight),
        })
        .collect();
    tollgate_testkit::check(&limit, &admissions)
}

/// The largest weight held by any window of `window` over the calls selected by `keep`.
pub fn fullest_window(calls: &[Call], window: Duration, keep: impl Fn(&Call) -> bool) -> u64 {
    let mut sorted: Vec<&Call> = calls.iter().filter(|c| keep(c)).collect();
    sorted.sort_by_key(|c| c.at);
    let (mut start, mut sum, mut max) = (0, 0u64, 0u64);
    for end in 0..sorted.len() {
        sum += u64::from(sorted[end].weight);
        while sorted[start].at + window <= sorted[end].at {
            sum -= u64::from(sorted[start].weight);
            start += 1;
        }
        max = max.max(sum);
    }
    max
}

/// A tier with the given per-cycle limit and a fixed delay.
pub fn tier(enter: u32, exit: u32, speed: u32, delay_ms: u64, per_cycle: u32) -> TierSettings {
    TierSettings {
        enter_at_percent: enter,
        exit_below_percent: exit,
        speed_percent: speed,
        delay_min: Duration::from_millis(delay_ms),
        delay_max: Duration::from_millis(delay_ms),
        max_per_cycle: per_cycle,
    }
}

/// The defaults with every SLA set to `sla`.
pub fn with_slas(builder: ControllerConfigBuilder, sla: Duration) -> ControllerConfigBuilder {
    Priority::ALL
        .into_iter()
        .fold(builder, |b, p| b.sla(p, sla))
}

pub fn build(builder: ControllerConfigBuilder) -> ControllerConfig {
    builder.build().expect("valid test config")
}

/// Asks for a permit that must be granted at once.
pub async fn grant(
    c: &UnifiedRateController,
    weight: u32,
    priority: Priority,
    category: OperationCategory,
) -> Permit {
    let answer = tokio::time::timeout(
        Duration::from_millis(1),
        c.request_permit(weight, priority, category, "grant".to_string()),
    )
    .await;
    match answer {
        Ok(Ok(permit)) => permit,
        Ok(Err(e)) => panic!("expected a grant of {weight}, got {e}"),
        Err(_) => panic!("expected a grant of {weight} at once, it was queued"),
    }
}

/// Spawns a request that waits in a queue; its answer comes through the handle.
pub fn spawn_request(
    c: &Arc<UnifiedRateController>,
    weight: u32,
    priority: Priority,
    category: OperationCategory,
    operation: &str,
) -> tokio::task::JoinHandle<Result<Permit, ControllerError>> {
    let c = c.clone();
    let operation = operation.to_string();
    tokio::spawn(async move {
        c.request_permit(weight, priority, category, operation)
            .await
    })
}

/// Lets spawned tasks run (the paused clock does not move).
pub async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// A small deterministic generator for the load.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Many tasks ask for permits in a loop, each call recorded at its permit's call time.
pub async fn hammer(
    c: Arc<UnifiedRateController>,
    calls: Calls,
    tasks: u64,
    until: Instant,
    max_weight: u64,
    pause_ms: u64,
) -> (u64, u64) {
    let mut handles = Vec::new();
    for seed in 0..tasks {
        let (c, calls) = (c.clone(), calls.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = Lcg(seed * 7919 + 1);
            let (mut granted, mut timeouts) = (0, 0);
            while Instant::now() < until {
                let priority = Priority::ALL[rng.below(4) as usize];
                let category = match priority {
                    // Critical stays in Trading, so Scanning and Administrative only ever
                    // hold non-Critical weight and their shares can be checked exactly.
                    Priority::Critical => OperationCategory::Trading,
                    _ => OperationCategory::ALL[rng.below(3) as usize],
                };
                let weight = 1 + rng.below(max_weight) as u32;
                match c
                    .request_permit(weight, priority, category, format!("op{seed}"))
                    .await
                {
                    Ok(permit) => {
                        calls.push(&permit);
                        granted += 1;
                        tokio::time::sleep(permit.delay()).await;
                        permit.complete(rng.below(50)).await;
                    }
                    Err(ControllerError::SlaTimeout { .. }) => timeouts += 1,
                    Err(e) => panic!("unexpected error: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(rng.below(pause_ms + 1))).await;
            }
            (granted, timeouts)
        }));
    }
    let mut totals = (0, 0);
    for h in handles {
        let (g, t) = h.await.expect("task");
        totals = (totals.0 + g, totals.1 + t);
    }
    totals
}
