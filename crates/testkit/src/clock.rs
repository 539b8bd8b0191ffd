//! Clocks and pollers for tests.

use std::cell::Cell;

use tollgate_core::{Clock, Nanos, SystemClock};

thread_local! {
    static LAST_NOW: Cell<Nanos> = const { Cell::new(0) };
}

/// The system clock, remembering on each thread the last time it gave. A store that reads its
/// clock under its lock (as the memory store does) decides at exactly that time, so a thread
/// learns the store's decision time by calling [`last_now`] right after a synchronous check.
#[derive(Clone, Default)]
pub struct RecordingClock(SystemClock);

impl Clock for RecordingClock {
    fn now(&self) -> Nanos {
        let now = self.0.now();
        LAST_NOW.with(|c| c.set(now));
        now
    }
}

/// The last time a [`RecordingClock`] gave on this thread.
pub fn last_now() -> Nanos {
    LAST_NOW.with(Cell::get)
}

/// Polls a future that never waits (the memory store's) to its end, without an async runtime.
///
/// # Panics
/// If the future is not ready at once: a test's assertion that the store never waits.
pub fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the future was expected to be ready at once"),
    }
}
