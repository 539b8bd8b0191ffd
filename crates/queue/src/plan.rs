//! The deadline planner: how many workers a backlog needs to finish by a deadline under a
//! rate, when it will finish, and — when the rate makes the deadline impossible — the
//! earliest finish and the rate or deadline that would work. The autoscaler asks the same
//! model with what it observes.
//!
//! The model: starts are spaced by the queue's limit (GCRA: BURST at once, then one per
//! T = PERIOD / COUNT), each task takes the service time, and a worker runs one task at a
//! time. Task k starts at the later of its token and the earliest free worker; the backlog
//! is done when the last task ends. Up to [`EXACT_TASKS`] tasks the schedule is simulated
//! exactly; beyond, a closed form gives the same answer up to one service time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use serde::Serialize;
use tollgate_core::{Limit, Rate};

use crate::error::QueueError;

/// Backlogs up to this size are simulated task by task.
pub const EXACT_TASKS: u64 = 1_000_000;

/// What to plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput {
    /// Tasks to run.
    pub tasks: u64,
    /// The queue's rate.
    pub rate: Rate,
    /// The queue's burst (`None`: strict).
    pub burst: Option<u64>,
    /// How long one task takes.
    pub service_time: Duration,
    /// Time available from now (`None`: as soon as possible).
    pub deadline: Option<Duration>,
    /// The most workers allowed.
    pub max_workers: u32,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Whether the deadline can be met (true without a deadline).
    pub feasible: bool,
    /// Workers to run: the fewest that meet the deadline, or, when none can (or without a
    /// deadline), the fewest that reach the earliest finish.
    pub workers: u32,
    /// When the backlog finishes with `workers`, from now, ms.
    pub finish_ms: u64,
    /// The earliest finish any number of workers up to the maximum can reach, ms.
    pub earliest_finish_ms: u64,
    /// Workers that keep up with the rate: ceil(service time / T).
    pub workers_for_rate: u64,
    /// When infeasible: the slowest rate (same period) that meets the deadline with the
    /// maximum of workers, if any rate can.
    #[serde(serialize_with = "opt_rate_text")]
    pub rate_needed: Option<Rate>,
    /// When infeasible: the shortest deadline that works at this rate, ms (= earliest finish).
    pub deadline_needed_ms: Option<u64>,
    /// When infeasible because of the workers, not the rate: the workers that would meet
    /// the deadline at this rate, if any number can.
    pub workers_needed: Option<u64>,
}

fn opt_rate_text<S: serde::Serializer>(rate: &Option<Rate>, s: S) -> Result<S::Ok, S::Error> {
    match rate {
        Some(r) => s.collect_str(r),
        None => s.serialize_none(),
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The finish time (ns from now) of `tasks` tasks under spacing `t` ns with `burst`, each
/// taking `service` ns, on `workers` workers.
pub fn finish_ns(tasks: u64, t: u64, burst: u64, service: u64, workers: u64) -> u64 {
    if tasks == 0 {
        return 0;
    }
    let workers = workers.max(1);
    let token = |k: u64| k.saturating_sub(burst.saturating_sub(1)).saturating_mul(t);
    if tasks > EXACT_TASKS {
        // Worker-bound: waves of `workers` tasks every service time; rate-bound: the last
        // token. Whichever is later, plus the last task's own service time.
        let waves = tasks.div_ceil(workers).saturating_sub(1);
        return token(tasks - 1)
            .max(waves.saturating_mul(service))
            .saturating_add(service);
    }
    let mut free: BinaryHeap<Reverse<u64>> = (0..workers.min(tasks)).map(|_| Reverse(0)).collect();
    let mut finish = 0;
    for k in 0..tasks {
        let Some(Reverse(worker_free)) = free.pop() else {
            break;
        };
        let start = token(k).max(worker_free);
        let end = start.saturating_add(service);
        finish = finish.max(end);
        free.push(Reverse(end));
    }
    finish
}

fn limit_of(rate: Rate, burst: Option<u64>) -> Result<Limit, QueueError> {
    let (algorithm, burst) = match burst {
        None => (tollgate_core::Algorithm::Strict, None),
        Some(b) => (tollgate_core::Algorithm::Gcra, Some(b)),
    };
    Ok(Limit::new(rate, algorithm, burst)?)
}

/// The fewest workers in 1..=max whose finish is at most `within` ns, if any.
fn fewest_workers(
    tasks: u64,
    t: u64,
    burst: u64,
    service: u64,
    max: u64,
    within: u64,
) -> Option<u64> {
    if finish_ns(tasks, t, burst, service, max) > within {
        return None;
    }
    let (mut lo, mut hi) = (1, max);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if finish_ns(tasks, t, burst, service, mid) <= within {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

fn ms(ns: u64) -> u64 {
    ns.div_ceil(1_000_000)
}

/// Plans `input`. Errors name the bad input (zero workers, zero service time).
pub fn plan(input: &PlanInput) -> Result<Plan, QueueError> {
    if input.max_workers == 0 {
        return Err(QueueError::InvalidSpec {
            field: "max_workers",
            reason: "must be at least 1".into(),
        });
    }
    if input.service_time.is_zero() {
        return Err(QueueError::InvalidSpec {
            field: "service_time",
            reason: "must be more than 0".into(),
        });
    }
    let limit = limit_of(input.rate, input.burst)?;
    let (t, burst, service) = (limit.interval_ns(), limit.burst(), ns(input.service_time));
    let max = u64::from(input.max_workers);
    let tasks = input.tasks;
    let earliest = finish_ns(tasks, t, burst, service, max);
    // The fewest workers that reach the earliest finish: more would idle.
    let fastest_workers = fewest_workers(tasks, t, burst, service, max, earliest).unwrap_or(max);
    let workers_for_rate = service.div_ceil(t.max(1)).max(1);
    let Some(deadline) = input.deadline.map(ns) else {
        return Ok(Plan {
            feasible: true,
            workers: u32::try_from(fastest_workers).unwrap_or(u32::MAX),
            finish_ms: ms(earliest),
            earliest_finish_ms: ms(earliest),
            workers_for_rate,
            rate_needed: None,
            deadline_needed_ms: None,
            workers_needed: None,
        });
    };
    if let Some(w) = fewest_workers(tasks, t, burst, service, max, deadline) {
        return Ok(Plan {
            feasible: true,
            workers: u32::try_from(w).unwrap_or(u32::MAX),
            finish_ms: ms(finish_ns(tasks, t, burst, service, w)),
            earliest_finish_ms: ms(earliest),
            workers_for_rate,
            rate_needed: None,
            deadline_needed_ms: None,
            workers_needed: None,
        });
    }
    // Infeasible. With unlimited workers the rate alone bounds the finish: is it the rate or
    // the worker cap that is short?
    let rate_bound = token_finish(tasks, t, burst, service);
    let workers_needed = (rate_bound <= deadline)
        .then(|| fewest_workers(tasks, t, burst, service, tasks.max(1), deadline))
        .flatten();
    Ok(Plan {
        feasible: false,
        workers: u32::try_from(fastest_workers).unwrap_or(u32::MAX),
        finish_ms: ms(earliest),
        earliest_finish_ms: ms(earliest),
        workers_for_rate,
        rate_needed: rate_needed(input, max, deadline)?,
        deadline_needed_ms: Some(ms(earliest)),
        workers_needed,
    })
}

/// The finish with as many workers as tasks: only the rate spaces the starts.
fn token_finish(tasks: u64, t: u64, burst: u64, service: u64) -> u64 {
    tasks
        .saturating_sub(1)
        .saturating_sub(burst.saturating_sub(1))
        .saturating_mul(t)
        .saturating_add(service)
}

/// The slowest rate (the fewest per the input's period) that meets `deadline` with `max`
/// workers, if any rate up to the grammar's largest count does.
fn rate_needed(input: &PlanInput, max: u64, deadline: u64) -> Result<Option<Rate>, QueueError> {
    let period = input.rate.period_ns();
    let meets = |count: u64| -> bool {
        let t = period.div_ceil(count);
        let burst = input.burst.unwrap_or(1);
        finish_ns(input.tasks, t, burst, ns(input.service_time), max) <= deadline
    };
    let top = tollgate_core::MAX_COUNT;
    if !meets(top) {
        return Ok(None);
    }
    let (mut lo, mut hi) = (input.rate.count(), top);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if meets(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(Some(input.rate.with_count(lo)?))
}

/// What the autoscaler sees of a queue.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    /// Tasks not finished (waiting, delayed, in flight).
    pub backlog: u64,
    /// The queue's limit spacing T, ns, and burst.
    pub interval_ns: u64,
    /// The queue's burst (1: strict).
    pub burst: u64,
    /// The service time seen so far (or a first guess).
    pub service_time: Duration,
    /// Time left until the deadline, if there is one (zero once passed).
    pub time_left: Option<Duration>,
}

/// How many workers to run now, between `min` and `max`.
///
/// Without a deadline: enough to keep up with the rate (ceil(service / T)), never more than
/// the backlog. With one: the fewest that finish the backlog within 80% of the time left, so
/// a slower task or a retry still fits; as the deadline nears that target shrinks and the
/// count grows. Once it cannot be met: the fewest that reach the earliest finish — more
/// would only wait for tokens. An empty backlog scales down to `min`.
pub fn autoscale(seen: &Observed, min: u32, max: u32) -> u32 {
    let (min, max) = (u64::from(min), u64::from(max.max(min).max(1)));
    if seen.backlog == 0 {
        return u32::try_from(min).unwrap_or(u32::MAX);
    }
    let service = ns(seen.service_time).max(1);
    let t = seen.interval_ns.max(1);
    let keep_up = service.div_ceil(t).min(seen.backlog);
    let wanted = match seen.time_left {
        None => keep_up,
        Some(left) => {
            let target = ns(left) / 10 * 8;
            fewest_workers(seen.backlog, t, seen.burst, service, max, target).unwrap_or_else(|| {
                let earliest = finish_ns(seen.backlog, t, seen.burst, service, max);
                fewest_workers(seen.backlog, t, seen.burst, service, max, earliest).unwrap_or(max)
            })
        }
    };
    u32::try_from(wanted.clamp(min.max(1), max)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(
        tasks: u64,
        rate: &str,
        service_s: u64,
        deadline_s: Option<u64>,
        max: u32,
    ) -> PlanInput {
        PlanInput {
            tasks,
            rate: rate.parse().expect("rate"),
            burst: None,
            service_time: Duration::from_secs(service_s),
            deadline: deadline_s.map(Duration::from_secs),
            max_workers: max,
        }
    }

    /// The example: 108 tasks at 20/min (T = 3 s) cannot finish in 3 minutes: the
    /// last token comes at 107 × 3 s = 321 s, and the last task ends 10 s later.
    #[test]
    fn the_example_is_infeasible_and_says_what_would_work() {
        let p = plan(&input(108, "20/min", 10, Some(180), 10)).expect("plan");
        assert!(!p.feasible);
        assert_eq!(p.earliest_finish_ms, 331_000);
        assert_eq!(p.deadline_needed_ms, Some(331_000));
        assert_eq!(
            p.workers, 4,
            "ceil(10 s / 3 s) workers keep up with the rate"
        );
        assert_eq!(p.workers_for_rate, 4);
        // 38/min: T = 60/38 s, 107 T + 10 s = 178.9 s ≤ 180 s; 37/min gives 183.5 s.
        assert_eq!(p.rate_needed.map(|r| r.to_string()), Some("38/min".into()));
        assert_eq!(
            p.workers_needed, None,
            "no number of workers beats the rate"
        );
    }

    #[test]
    fn feasible_plans_take_the_fewest_workers() {
        // 60/min (T = 1 s), 10 s tasks: 10 workers keep up; finish 107 + 10 = 117 s.
        let p = plan(&input(108, "60/min", 10, Some(180), 10)).expect("plan");
        assert!(p.feasible);
        assert_eq!(p.earliest_finish_ms, 117_000);
        // Seven workers: waves of 7 every 10 s, task 107 is wave 15's third: starts at
        // 152 s, ends at 162 s. Six: wave 17's sixth starts at 175 s and ends past 180 s.
        assert_eq!((p.workers, p.finish_ms), (7, 162_000));
        assert_eq!(
            finish_ns(108, 1_000_000_000, 1, 10_000_000_000, 6),
            185_000_000_000
        );
        let p = plan(&input(10, "1/s", 1, None, 3)).expect("plan");
        assert_eq!((p.feasible, p.workers, p.finish_ms), (true, 1, 10_000));
    }

    #[test]
    fn too_few_workers_is_told_apart_from_too_slow_a_rate() {
        // 100/s is plenty; 2 workers of 1 s tasks take 50 s for 100 tasks.
        let p = plan(&input(100, "100/s", 1, Some(20), 2)).expect("plan");
        assert!(!p.feasible);
        // Task 99 is wave 49's second: starts at 49.01 s, ends at 50.01 s.
        assert_eq!(p.earliest_finish_ms, 50_010);
        // Five workers end at 20.04 s; six at 17.03 s.
        assert_eq!(p.workers_needed, Some(6));
    }

    #[test]
    fn bursts_start_at_once() {
        let mut i = input(5, "1/min", 1, Some(2), 5);
        i.burst = Some(5);
        let p = plan(&i).expect("plan");
        assert!(p.feasible);
        // Three workers: three tasks at 0 s, two at 1 s, done at 2 s.
        assert_eq!((p.workers, p.finish_ms), (3, 2_000));
        assert_eq!(p.earliest_finish_ms, 1_000);
    }

    #[test]
    fn bad_input_names_the_field() {
        let err = plan(&input(1, "1/s", 1, None, 0)).expect_err("0 workers");
        assert!(err.to_string().contains("max_workers"), "{err}");
        let err = plan(&input(1, "1/s", 0, None, 1)).expect_err("0 service");
        assert!(err.to_string().contains("service_time"), "{err}");
    }

    #[test]
    fn closed_form_agrees_with_the_simulation_near_the_boundary() {
        for (workers, service) in [(3u64, 5_000u64), (50, 100), (7, 7_000)] {
            let exact = finish_ns(EXACT_TASKS, 1_000, 1, service, workers);
            let approx = finish_ns(EXACT_TASKS + 1, 1_000, 1, service, workers);
            assert!(
                approx >= exact && approx <= exact + 2 * service + 1_000,
                "{workers} {service}: {exact} vs {approx}"
            );
        }
    }

    #[test]
    fn autoscaling_follows_backlog_rate_and_deadline() {
        let seen = |backlog, left: Option<u64>| Observed {
            backlog,
            interval_ns: 1_000_000_000,
            burst: 1,
            service_time: Duration::from_secs(10),
            time_left: left.map(Duration::from_secs),
        };
        assert_eq!(autoscale(&seen(0, None), 1, 10), 1, "empty: down to min");
        assert_eq!(
            autoscale(&seen(100, None), 1, 20),
            10,
            "keep up with 1/s at 10 s a task"
        );
        assert_eq!(
            autoscale(&seen(3, None), 1, 20),
            3,
            "no more than the backlog"
        );
        let relaxed = autoscale(&seen(100, Some(1000)), 1, 20);
        let near = autoscale(&seen(100, Some(200)), 1, 20);
        let passed = autoscale(&seen(100, Some(0)), 1, 20);
        assert!(
            relaxed < near,
            "{relaxed} < {near}: harder as the deadline nears"
        );
        // Past saving, 10 workers reach the earliest finish (they keep up with 1/s at 10 s
        // a task); more would only wait for tokens.
        assert_eq!(
            passed, 10,
            "a deadline that cannot be met: every useful worker"
        );
        let burst = Observed {
            burst: 100,
            ..seen(100, Some(0))
        };
        assert_eq!(
            autoscale(&burst, 1, 20),
            20,
            "with a burst, more workers finish sooner"
        );
    }
}
