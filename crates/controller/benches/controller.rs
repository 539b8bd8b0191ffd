//! The unified rate controller's overhead: `request_permit` uncontended and with 1,000
//! waiters, and one monitoring cycle with 1,000 waiters.
//!
//! Futures are polled once with a no-op waker, so the figures are the controller's own work,
//! not an executor's. `request_permit` on the fast path never waits, so one poll grants it.
//!
//! Run: `cargo bench -p tollgate-controller --bench controller`.

use std::collections::VecDeque;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_controller::{
    CategoryShares, ControllerConfig, ControllerError, OperationCategory, Permit, Priority,
    UnifiedRateController,
};

type Request<'a> = Pin<Box<dyn Future<Output = Result<Permit, ControllerError>> + 'a>>;

/// Polls a future once.
fn poll<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// Polls a future that must finish at once.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match poll(f.as_mut()) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("expected the future to finish at once"),
    }
}

/// A request that must wait: polled once (it joins its queue) and kept.
fn waiter<'a>(
    c: &'a UnifiedRateController,
    priority: Priority,
    category: OperationCategory,
) -> Request<'a> {
    let mut f: Request<'a> = Box::pin(c.request_permit(1, priority, category, "wait".into()));
    assert!(
        poll(f.as_mut()).is_pending(),
        "expected the request to wait"
    );
    f
}

fn config(capacity: u32, window: Duration) -> ControllerConfig {
    let day = Duration::from_secs(86_400);
    Priority::ALL
        .into_iter()
        .fold(ControllerConfig::builder(), |b, p| b.sla(p, day))
        .capacity(capacity)
        .window(window)
        .shares(CategoryShares {
            trading: 98,
            scanning: 1,
            administrative: 1,
        })
        .build()
        .expect("valid config")
}

fn request_permit(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_permit");
    group.throughput(Throughput::Elements(1));

    // Capacity 4.29 × 10^9 per 100 ms: every request is granted at Normal, and the window
    // holds what 100 ms of requests leave (all of them pruned as they expire).
    let controller = UnifiedRateController::new(config(u32::MAX, Duration::from_millis(100)));
    group.bench_function("uncontended", |b| {
        b.iter(|| {
            let permit = ready(controller.request_permit(
                black_box(1),
                Priority::High,
                OperationCategory::Trading,
                "get_position".to_string(),
            ));
            permit.expect("granted")
        })
    });

    // 1,000 Low Administrative requests wait for the administrative share (filled first).
    // Nothing serves them (no cycle runs), so they stay queued while Critical requests take
    // the fast path and Low ones join the queue behind them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    let controller = UnifiedRateController::new(config(u32::MAX, Duration::from_millis(100)));
    let admin_share = u32::try_from(
        controller
            .config()
            .share_weight(OperationCategory::Administrative),
    )
    .expect("share fits u32");
    let _fill = ready(controller.request_permit(
        admin_share,
        Priority::Low,
        OperationCategory::Administrative,
        "fill".into(),
    ))
    .expect("granted");
    let _waiting: Vec<Request<'_>> = (0..1_000)
        .map(|_| {
            waiter(
                &controller,
                Priority::Low,
                OperationCategory::Administrative,
            )
        })
        .collect();
    group.bench_function("critical_with_1000_waiting", |b| {
        b.iter(|| {
            ready(controller.request_permit(
                black_box(1),
                Priority::Critical,
                OperationCategory::Trading,
                "place_order".to_string(),
            ))
            .expect("granted")
        })
    });
    // A Low request joins the queue behind the 1,000 and is dropped (which dequeues it).
    group.bench_function("queue_and_drop_behind_1000", |b| {
        b.iter(|| {
            let mut f = std::pin::pin!(controller.request_permit(
                black_box(1),
                Priority::Low,
                OperationCategory::Trading,
                "scan".to_string(),
            ));
            assert!(poll(f.as_mut()).is_pending());
        })
    });
    group.finish();
}

fn monitoring_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("monitoring_cycle");
    // A paused clock: time moves only when the benchmark advances it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let _entered = runtime.enter();

    // 1,000 waiters, 250 per priority, all of which fit: each cycle grants 10 per priority
    // (Normal) and the benchmark tops the queues back up to 250 each, untimed.
    let capacity = 100_000;
    let window = Duration::from_secs(1);
    let controller = UnifiedRateController::new(config(capacity, window));
    let _fill = ready(controller.request_permit(
        capacity,
        Priority::Critical,
        OperationCategory::Trading,
        "fill".into(),
    ))
    .expect("granted");
    let mut queues: [VecDeque<Request<'_>>; 4] = Default::default();
    for (p, queue) in Priority::ALL.into_iter().zip(queues.iter_mut()) {
        queue.extend((0..250).map(|_| waiter(&controller, p, OperationCategory::Trading)));
    }
    let free_all = || runtime.block_on(tokio::time::advance(window + Duration::from_millis(1100)));
    free_all();
    let mut used = 0;
    group.bench_function("1000_waiters_grants_40", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                // Stay under 60% (Normal, 10 per priority per cycle).
                if used + 40 > capacity * 6 / 10 {
                    free_all();
                    used = 0;
                }
                let start = std::time::Instant::now();
                let granted = ready(controller.run_cycle());
                timed += start.elapsed();
                assert_eq!(granted, 40);
                used += 40;
                for (p, queue) in Priority::ALL.into_iter().zip(queues.iter_mut()) {
                    queue.drain(..10);
                    queue.extend(
                        (0..10).map(|_| waiter(&controller, p, OperationCategory::Trading)),
                    );
                }
            }
            timed
        })
    });

    // 1,000 waiters (High, Medium, Low) of a full administrative share: the cycle looks at
    // every one of them and grants nothing — the most a cycle scans.
    let controller = UnifiedRateController::new(config(capacity, window));
    let admin_share = u32::try_from(
        controller
            .config()
            .share_weight(OperationCategory::Administrative),
    )
    .expect("share fits u32");
    let _fill = ready(controller.request_permit(
        admin_share,
        Priority::Low,
        OperationCategory::Administrative,
        "fill".into(),
    ))
    .expect("granted");
    let _waiting: Vec<Request<'_>> = (0..1_000)
        .map(|i| {
            let p = [Priority::High, Priority::Medium, Priority::Low][i % 3];
            waiter(&controller, p, OperationCategory::Administrative)
        })
        .collect();
    group.bench_function("1000_waiters_all_blocked", |b| {
        b.iter(|| assert_eq!(ready(controller.run_cycle()), 0))
    });
    group.finish();
}

/// The group definition; `criterion_group!` generates an undocumented `pub fn`.
#[allow(missing_docs)]
mod group {
    use super::*;

    criterion_group!(benches, request_permit, monitoring_cycle);
}
criterion_main!(group::benches);
