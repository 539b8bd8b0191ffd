//! GCRA decisions equal governor's (its own fake clock) on random traces where the two
//! semantics coincide: T = PERIOD / COUNT is a whole number of nanoseconds (governor keeps T
//! in whole nanoseconds too) and cost ≥ 1 (governor has no peek).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter};
use proptest::prelude::*;
use tollgate_core::{Algorithm, Gcra, Limit, LimitState, Rate, Unit};

const T0: u64 = 1_700_000_000_000_000_000;

fn arb_case() -> impl Strategy<Value = (Limit, Vec<(u64, u32)>)> {
    let limit = (1u64..=50, 1u64..=5_000, 1u64..=30, any::<bool>()).prop_filter_map(
        "T whole in ns",
        |(count, ms, burst, strict)| {
            let rate = Rate::new(count, ms, Unit::Millisecond).ok()?;
            if rate.period_ns() % count != 0 {
                return None;
            }
            if strict {
                Limit::new(rate, Algorithm::Strict, None).ok()
            } else {
                Limit::new(rate, Algorithm::Gcra, Some(burst)).ok()
            }
        },
    );
    let steps = proptest::collection::vec(
        (
            prop_oneof![Just(0u64), 0u64..1_000_000, 0u64..500_000_000],
            1u32..=5,
        ),
        1..300,
    );
    (limit, steps)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn gcra_agrees_with_governor((limit, steps) in arb_case()) {
        let quota = Quota::with_period(Duration::from_nanos(limit.interval_ns()))
            .and_then(|q| Some(q.allow_burst(NonZeroU32::new(u32::try_from(limit.burst()).ok()?)?)));
        let Some(quota) = quota else { return Ok(()) };
        let clock = FakeRelativeClock::default();
        let governor = RateLimiter::direct_with_clock(quota, clock.clone());
        let mut ours = Gcra::default();
        let mut elapsed = 0u64;
        for (i, &(wait, cost)) in steps.iter().enumerate() {
            elapsed += wait;
            clock.advance(Duration::from_nanos(wait));
            let cost = cost.min(u32::try_from(limit.burst()).unwrap_or(u32::MAX));
            let Some(n) = NonZeroU32::new(cost) else { continue };
            let theirs = governor.check_n(n);
            let decision = ours.apply(&limit, T0 + elapsed, u64::from(cost));
            match theirs {
                Ok(Ok(())) => prop_assert!(decision.allowed, "step {}: governor allowed, tollgate denied", i),
                Ok(Err(not_until)) => {
                    prop_assert!(!decision.allowed, "step {}: governor denied, tollgate allowed", i);
                    // Governor reports the wait for one cell; for cost 1 the waits agree.
                    if cost == 1 {
                        let wait = not_until.wait_time_from(governor::clock::Clock::now(&clock));
                        prop_assert_eq!(decision.retry_after_ms, u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX).div_ceil(1_000_000));
                    }
                }
                Err(_) => prop_assert!(false, "cost {} within burst {} refused by governor", cost, limit.burst()),
            }
        }
    }
}
