//! Every transition of the breaker, on a fake clock.

use super::*;
use tollgate_core::FakeClock;

const OPEN_FOR: Duration = Duration::from_secs(2);

fn breaker(failures: u32, probes: u32, successes: u32) -> (CircuitBreaker<FakeClock>, FakeClock) {
    let clock = FakeClock::at_millis(1_000_000);
    let config = BreakerConfig {
        failure_threshold: failures,
        open_for: OPEN_FOR,
        half_open_probes: probes,
        success_threshold: successes,
    };
    (CircuitBreaker::with_clock(config, clock.clone()), clock)
}

fn fail(b: &CircuitBreaker<FakeClock>) -> Option<Transition> {
    b.try_acquire().expect("admitted").failure(&"boom")
}

fn succeed(b: &CircuitBreaker<FakeClock>) -> Option<Transition> {
    b.try_acquire().expect("admitted").success()
}

fn rejected(b: &CircuitBreaker<FakeClock>) -> Duration {
    b.try_acquire()
        .map(|_| ())
        .expect_err("rejected")
        .retry_after
}

/// Opens a breaker with a threshold of `n` failures.
fn open(b: &CircuitBreaker<FakeClock>, n: u32) {
    for _ in 1..n {
        assert_eq!(fail(b), None);
    }
    assert_eq!(fail(b), Some(Transition::Opened));
}

#[test]
fn starts_closed_and_lets_calls_through() {
    let (b, _) = breaker(3, 1, 1);
    assert_eq!(b.state(), BreakerState::Closed);
    let permit = b.try_acquire().expect("closed");
    assert!(!permit.is_probe());
    assert_eq!(permit.success(), None);
    assert_eq!((b.opened_total(), b.rejected_total()), (0, 0));
    assert_eq!(b.retry_in(), Duration::ZERO);
}

#[test]
fn failures_below_the_threshold_keep_it_closed() {
    let (b, _) = breaker(3, 1, 1);
    assert_eq!(fail(&b), None);
    assert_eq!(fail(&b), None);
    assert_eq!(b.consecutive_failures(), 2);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn a_success_resets_the_consecutive_count() {
    let (b, _) = breaker(3, 1, 1);
    for _ in 0..5 {
        fail(&b);
        fail(&b);
        assert_eq!(succeed(&b), None);
        assert_eq!(b.consecutive_failures(), 0);
    }
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn released_calls_count_neither_way() {
    let (b, _) = breaker(3, 1, 1);
    fail(&b);
    fail(&b);
    b.try_acquire().expect("closed").release();
    drop(b.try_acquire().expect("closed"));
    assert_eq!(b.consecutive_failures(), 2);
    assert_eq!(fail(&b), Some(Transition::Opened));
}

#[test]
fn the_threshold_opens_it_and_it_fails_fast() {
    let (b, clock) = breaker(3, 1, 1);
    open(&b, 3);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.opened_total(), 1);
    assert_eq!(rejected(&b), OPEN_FOR);
    assert_eq!(b.retry_in(), OPEN_FOR);
    clock.advance(Duration::from_millis(1_500));
    assert_eq!(rejected(&b), Duration::from_millis(500));
    assert_eq!(b.retry_in(), Duration::from_millis(500));
    assert_eq!(b.rejected_total(), 2);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn after_open_for_the_next_call_is_a_probe() {
    let (b, clock) = breaker(1, 1, 1);
    open(&b, 1);
    clock.advance(OPEN_FOR - Duration::from_nanos(1));
    assert_eq!(rejected(&b), Duration::from_nanos(1));
    clock.advance(Duration::from_nanos(1));
    // Open until the next call comes.
    assert_eq!(b.state(), BreakerState::Open);
    let probe = b.try_acquire().expect("probe");
    assert!(probe.is_probe());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(b.retry_in(), Duration::ZERO);
    drop(probe);
}

#[test]
fn half_open_admits_only_its_probes() {
    let (b, clock) = breaker(1, 2, 1);
    open(&b, 1);
    clock.advance(OPEN_FOR);
    let first = b.try_acquire().expect("first probe");
    let second = b.try_acquire().expect("second probe");
    assert!(first.is_probe() && second.is_probe());
    assert_eq!(rejected(&b), Duration::ZERO);
    assert_eq!(b.rejected_total(), 1);
    drop(first);
    let third = b.try_acquire().expect("a slot was freed");
    assert!(third.is_probe());
    assert_eq!(rejected(&b), Duration::ZERO);
    drop((second, third));
}

#[test]
fn a_successful_probe_closes_it() {
    let (b, clock) = breaker(2, 1, 1);
    open(&b, 2);
    clock.advance(OPEN_FOR);
    assert_eq!(succeed(&b), Some(Transition::Closed));
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.consecutive_failures(), 0);
    assert!(!b.try_acquire().expect("closed").is_probe());
    // Closed afresh: it takes the full threshold to open again.
    assert_eq!(fail(&b), None);
    assert_eq!(fail(&b), Some(Transition::Opened));
    assert_eq!(b.opened_total(), 2);
}

#[test]
fn it_closes_after_success_threshold_probes() {
    let (b, clock) = breaker(1, 1, 3);
    open(&b, 1);
    clock.advance(OPEN_FOR);
    assert_eq!(succeed(&b), None);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(succeed(&b), None);
    assert_eq!(succeed(&b), Some(Transition::Closed));
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn a_failed_probe_reopens_it_for_another_open_for() {
    let (b, clock) = breaker(1, 1, 3);
    open(&b, 1);
    clock.advance(OPEN_FOR);
    assert_eq!(succeed(&b), None);
    clock.advance(Duration::from_millis(700));
    assert_eq!(fail(&b), Some(Transition::Opened));
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.opened_total(), 2);
    assert_eq!(rejected(&b), OPEN_FOR);
    // The earlier success does not carry over to the next half-open period.
    clock.advance(OPEN_FOR);
    assert_eq!(succeed(&b), None);
    assert_eq!(succeed(&b), None);
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[test]
fn a_released_or_dropped_probe_frees_its_slot_without_counting() {
    let (b, clock) = breaker(1, 1, 1);
    open(&b, 1);
    clock.advance(OPEN_FOR);
    b.try_acquire().expect("probe").release();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    drop(b.try_acquire().expect("probe again"));
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert_eq!(succeed(&b), Some(Transition::Closed));
}

#[test]
fn outcomes_from_an_earlier_state_count_for_nothing() {
    let (b, clock) = breaker(2, 2, 1);
    let stale_ok = b.try_acquire().expect("closed");
    let stale_fail = b.try_acquire().expect("closed");
    open(&b, 2);
    // A call started while closed ends after the breaker opened: ignored.
    assert_eq!(stale_fail.failure(&"late"), None);
    assert_eq!(stale_ok.success(), None);
    assert_eq!((b.state(), b.opened_total()), (BreakerState::Open, 1));

    clock.advance(OPEN_FOR);
    let probe_a = b.try_acquire().expect("probe");
    let probe_b = b.try_acquire().expect("probe");
    assert_eq!(probe_a.failure(&"still down"), Some(Transition::Opened));
    // The other probe answers after the breaker reopened: it closes nothing.
    assert_eq!(probe_b.success(), None);
    assert_eq!(b.state(), BreakerState::Open);

    clock.advance(OPEN_FOR);
    let probe = b.try_acquire().expect("probe");
    let closed_by = b.try_acquire().expect("second probe");
    assert_eq!(closed_by.success(), Some(Transition::Closed));
    // A probe that ends after the breaker closed does not reopen it.
    assert_eq!(probe.failure(&"late"), None);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.consecutive_failures(), 0);
}

#[test]
fn zero_thresholds_count_as_one() {
    let (b, clock) = breaker(0, 0, 0);
    assert_eq!(b.config().failure_threshold, 1);
    assert_eq!(b.config().half_open_probes, 1);
    assert_eq!(b.config().success_threshold, 1);
    open(&b, 1);
    clock.advance(OPEN_FOR);
    let probe = b.try_acquire().expect("probe");
    assert_eq!(rejected(&b), Duration::ZERO);
    assert_eq!(probe.success(), Some(Transition::Closed));
}

#[test]
fn a_clock_that_steps_back_keeps_it_open() {
    let (b, clock) = breaker(1, 1, 1);
    open(&b, 1);
    clock.set(0);
    assert!(rejected(&b) > OPEN_FOR);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn open_for_zero_probes_at_once() {
    let clock = FakeClock::at_millis(5);
    let config = BreakerConfig {
        failure_threshold: 1,
        open_for: Duration::ZERO,
        ..BreakerConfig::default()
    };
    let b = CircuitBreaker::with_clock(config, clock);
    open(&b, 1);
    assert!(b.try_acquire().expect("probe").is_probe());
}

#[test]
fn concurrent_failures_open_it_once() {
    let (b, _) = breaker(10, 1, 1);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1_000 {
                    if let Ok(permit) = b.try_acquire() {
                        permit.failure(&"down");
                    }
                }
            });
        }
    });
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.opened_total(), 1);
    // At least the 10 failures went through; a few more may have raced the transition.
    assert!((1..=3_990).contains(&b.rejected_total()));
}

#[test]
fn concurrent_probes_never_exceed_the_limit() {
    let (b, clock) = breaker(1, 3, 1_000_000);
    open(&b, 1);
    clock.advance(OPEN_FOR);
    let in_flight = AtomicU32::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..2_000 {
                    if let Ok(permit) = b.try_acquire() {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 3, "{now} probes in flight");
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        permit.success();
                    }
                }
            });
        }
    });
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[test]
fn state_names() {
    let names: Vec<String> = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(names, ["closed", "open", "half-open"]);
}
