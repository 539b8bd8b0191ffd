//! The cache's reasoning against the scripts' arithmetic, written out again here at µs
//! resolution: whatever a cached entry denies, the script denies too, with fields on the
//! safe side; and the bounds on time are on the safe side of the local clock.

use super::*;

/// gcra.lua's decision for a TAT `lead` µs ahead of now (0: none).
fn gcra(t: u64, burst: u64, lead: u64, cost: u64) -> Decision {
    let tau = t * burst;
    let after = lead + t * cost;
    if after <= tau {
        return Decision {
            allowed: true,
            limit: burst,
            remaining: (tau - after) / t,
            retry_after_ms: 0,
            reset_after_ms: ceil_ms(after),
        };
    }
    Decision {
        allowed: false,
        limit: burst,
        remaining: tau.saturating_sub(lead) / t,
        retry_after_ms: ceil_ms(after - tau),
        reset_after_ms: ceil_ms(lead),
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

fn gcra_params(t: u64, burst: u64) -> Params {
    Params {
        family: Family::Gcra,
        a: t,
        b: burst,
    }
}

#[test]
fn a_gcra_denial_proves_only_what_the_script_would_deny() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut proved, mut denied_later) = (0, 0);
    for _ in 0..200_000 {
        let t = 1 + rng.below(50_000);
        let burst = 1 + rng.below(20);
        let cost = 1 + rng.below(burst);
        let lead = rng.below(t * burst + t * 3);
        let d = gcra(t, burst, lead, cost);
        let Some(known) = Known::of(&gcra_params(t, burst), cost, &d) else {
            assert!(d.allowed, "a denial always teaches something: {d:?}");
            continue;
        };
        // An admission moved the TAT on (and may refresh an entry).
        let lead = if d.allowed { lead + t * cost } else { lead };
        // Another GCRA limit on the same bucket, a later moment, another cost.
        let (t2, burst2) = if rng.below(2) == 0 {
            (t, burst)
        } else {
            let t2 = 1 + rng.below(50_000);
            (t2, 1 + rng.below(20))
        };
        let cost2 = 1 + rng.below(burst2);
        let elapsed = rng.below(lead + 2000);
        let truth = gcra(t2, burst2, lead.saturating_sub(elapsed), cost2);
        if !truth.allowed {
            denied_later += 1;
        }
        // The cache knows the elapsed time only to within a bound on each side.
        let late = elapsed + rng.below(3);
        let early = elapsed.saturating_sub(rng.below(3));
        if let Some(cached) = known.deny(&gcra_params(t2, burst2), cost2, late, early) {
            proved += 1;
            assert!(!truth.allowed, "cached a denial the script would admit");
            assert_eq!(cached.limit, truth.limit);
            assert!(cached.remaining <= truth.remaining, "{cached:?} {truth:?}");
            assert!(cached.retry_after_ms >= truth.retry_after_ms);
            assert!(cached.reset_after_ms >= truth.reset_after_ms);
            // And not by more than the uncertainty: 1 ms of rounding, 3 µs of clock.
            assert!(cached.retry_after_ms <= truth.retry_after_ms + 2);
            assert!(cached.reset_after_ms <= truth.reset_after_ms + 2);
        }
    }
    // The cache must also be useful: most later denials are proved.
    assert!(proved * 10 > denied_later * 7, "{proved} of {denied_later}");
}

#[test]
fn a_gcra_denial_of_a_large_cost_does_not_deny_a_small_one_with_room() {
    // 5/min, burst 5: T = 12 s. Three admitted, so the TAT leads by 36 s: room for 2.
    let (t, burst) = (12_000_000, 5);
    let p = gcra_params(t, burst);
    let lead = 3 * t;
    let d = gcra(t, burst, lead, 4);
    assert!(!d.allowed);
    assert_eq!(d.remaining, 2);
    let known = Known::of(&p, 4, &d).expect("learned");
    assert!(known.deny(&p, 4, 10, 10).is_some());
    assert!(known.deny(&p, 5, 10, 10).is_some());
    assert!(known.deny(&p, 2, 10, 10).is_none(), "2 fit");
    assert!(known.deny(&p, 1, 10, 10).is_none(), "1 fits");
    // Cost 3 is denied until the lead falls to 24 s, 12 s from now.
    assert!(known.deny(&p, 3, 11_990_000, 11_990_000).is_some());
    assert!(known.deny(&p, 3, 12_000_000, 12_000_000).is_none());
}

#[test]
fn window_denials_hold_until_their_wait_and_no_longer() {
    let fixed = Params {
        family: Family::FixedWindow,
        a: 1_000_000,
        b: 10,
    };
    // 8 used; 400.5 ms left in the window: reported as 401 ms.
    let d = Decision {
        allowed: false,
        limit: 10,
        remaining: 2,
        retry_after_ms: 401,
        reset_after_ms: 401,
    };
    let known = Known::of(&fixed, 3, &d).expect("learned");
    assert!(known.deny(&fixed, 2, 0, 0).is_none(), "2 fit");
    let cached = known.deny(&fixed, 3, 100_000, 100_000).expect("3 do not");
    assert_eq!((cached.remaining, cached.retry_after_ms), (2, 301));
    assert!(known.deny(&fixed, 10, 400_000, 400_000).is_some());
    // 400.001 ms is the shortest the window may have had left.
    assert!(known.deny(&fixed, 3, 400_001, 400_001).is_none());
    let other = Params { b: 11, ..fixed };
    assert!(known.deny(&other, 3, 0, 0).is_none(), "another limit");

    let sliding = Params {
        family: Family::SlidingWindow,
        ..fixed
    };
    let d = Decision {
        remaining: 0,
        retry_after_ms: 50,
        reset_after_ms: 900,
        ..d
    };
    let known = Known::of(&sliding, 1, &d).expect("learned");
    let cached = known.deny(&sliding, 1, 20_000, 19_000).expect("same cost");
    assert_eq!(
        (cached.retry_after_ms, cached.reset_after_ms),
        (31, 881),
        "from the longest waits possible"
    );
    assert!(known.deny(&sliding, 2, 0, 0).is_none(), "another cost");
    assert!(known.deny(&sliding, 1, 49_001, 49_001).is_none());
    assert!(
        Known::of(
            &sliding,
            1,
            &Decision {
                retry_after_ms: 0,
                ..d
            }
        )
        .is_none()
    );
}

#[test]
fn elapsed_time_is_bounded_on_the_safe_side() {
    let sent = Instant::now();
    let received = sent + Duration::from_micros(300);
    let now = sent + Duration::from_millis(1000);
    // 1 000 000 µs since sent, + 0.1% + 1; 999 700 since received, - 0.1% - 1.
    assert_eq!(elapsed_at_most(sent, now), 1_001_001);
    assert_eq!(elapsed_at_least(received, now), 998_699);
    assert_eq!(elapsed_at_least(received, sent), 0);
}

fn denial(retry_after_ms: u64) -> Decision {
    Decision {
        allowed: false,
        limit: 1,
        remaining: 0,
        retry_after_ms,
        reset_after_ms: retry_after_ms,
    }
}

#[test]
fn the_cache_is_bounded_and_forgets_on_reset_and_clear() {
    let p = gcra_params(60_000_000, 1);
    let cache = OverLimitCache::new(64);
    for i in 0..1000 {
        let key = format!("k{i}");
        let ticket = cache.ticket(&key);
        cache.learn(ticket, &key, &p, 1, &denial(60_000), Instant::now());
        assert!(cache.len() <= 64);
    }
    assert!(cache.len() >= 64 * 7 / 8 - MAX_SHARDS, "{}", cache.len());

    let key = "tollgate:{a}:g".to_string();
    let ticket = cache.ticket(&key);
    cache.learn(ticket, &key, &p, 1, &denial(60_000), Instant::now());
    assert!(cache.lookup(&key, &p, 1, Instant::now()).is_some());
    assert!(
        cache.lookup(&key, &p, 0, Instant::now()).is_none(),
        "a peek"
    );
    assert_eq!(cache.hits(), 1);
    cache.forget(std::slice::from_ref(&key));
    assert!(cache.lookup(&key, &p, 1, Instant::now()).is_none());

    // An answer to a call sent before a reset is not learned after it.
    let ticket = cache.ticket(&key);
    cache.forget(std::slice::from_ref(&key));
    cache.learn(ticket, &key, &p, 1, &denial(60_000), Instant::now());
    assert!(cache.lookup(&key, &p, 1, Instant::now()).is_none());
    let ticket = cache.ticket(&key);
    cache.clear();
    cache.learn(ticket, &key, &p, 1, &denial(60_000), Instant::now());
    assert_eq!(cache.len(), 0);

    // An admission adds no key, but refreshes one held.
    let allowed = Decision {
        allowed: true,
        ..denial(0)
    };
    let ticket = cache.ticket(&key);
    cache.learn(ticket, &key, &p, 1, &allowed, Instant::now());
    assert_eq!(cache.len(), 0);
    let burst = gcra_params(1_000_000, 5);
    let ticket = cache.ticket(&key);
    cache.learn(
        ticket,
        &key,
        &burst,
        5,
        &gcra(1_000_000, 5, 1_000_000, 5),
        Instant::now(),
    );
    let held = cache.lookup(&key, &burst, 5, Instant::now()).expect("held");
    assert_eq!(held.retry_after_ms, 1000);
    let ticket = cache.ticket(&key);
    cache.learn(
        ticket,
        &key,
        &burst,
        1,
        &gcra(1_000_000, 5, 1_000_000, 1),
        Instant::now(),
    );
    let held = cache.lookup(&key, &burst, 5, Instant::now()).expect("held");
    assert_eq!(held.retry_after_ms, 2000, "one more admitted");
    let sliding = Params {
        family: Family::SlidingWindow,
        ..burst
    };
    let ticket = cache.ticket(&key);
    cache.learn(ticket, &key, &sliding, 1, &allowed, Instant::now());
    assert_eq!(
        cache.len(),
        0,
        "an admission that proves nothing drops the key"
    );
}

#[test]
fn a_stale_entry_is_dropped() {
    let p = gcra_params(60_000_000, 1);
    let cache = OverLimitCache::new(8);
    let key = "k".to_string();
    let ticket = cache.ticket(&key);
    let received = ticket.sent + Duration::from_micros(100);
    cache.learn(ticket, &key, &p, 1, &denial(10), received);
    assert!(cache.lookup(&key, &p, 1, received).is_some());
    // Denied for at least 9.001 ms after the decision, at most 10 ms.
    assert!(
        cache
            .lookup(&key, &p, 1, ticket.sent + Duration::from_millis(8))
            .is_some()
    );
    assert!(
        cache
            .lookup(&key, &p, 1, ticket.sent + Duration::from_millis(9))
            .is_none()
    );
    assert_eq!(cache.len(), 0);
}
