//! A store that fails on command, for the tests of [`Guarded`].
//!
//! The tests wrap `Switch`, a small in-test store that fails on command around a
//! `MemoryStore`. That tests the wrapper's logic, not a Redis client: nothing here stands in
//! for Redis, whose kill/restart behaviour is tested against a real server.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU8, AtomicU64};
use std::time::Duration;

use tollgate_core::{Check, Decision, Error, FakeClock, Limit, MultiDecision, Store};
use tollgate_memory::MemoryStore;

use super::{BreakerConfig, GuardConfig, Guarded, OnStoreFailure, Source};

/// The store answers.
pub const OK: u8 = 0;
/// The store fails transiently (a refused connection).
pub const FAIL: u8 = 1;
/// The store never answers.
pub const HANG: u8 = 2;
/// The store answers a permanent error (like Redis's `WRONGTYPE`).
pub const PERMANENT: u8 = 3;

/// A store that fails on command: transiently, by hanging past any timeout, or with a
/// permanent error (like Redis's `WRONGTYPE`). It counts the calls that reach it.
pub struct Switch {
    store: MemoryStore<FakeClock>,
    mode: AtomicU8,
    calls: AtomicU64,
}

impl Switch {
    pub fn set(&self, mode: u8) {
        self.mode.store(mode, SeqCst);
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(SeqCst)
    }

    async fn gate(&self) -> Result<(), Error> {
        self.calls.fetch_add(1, SeqCst);
        match self.mode.load(SeqCst) {
            FAIL => Err(Error::Store {
                message: "connection refused".into(),
                transient: true,
            }),
            PERMANENT => Err(Error::Store {
                message: "WRONGTYPE".into(),
                transient: false,
            }),
            HANG => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl Store for Switch {
    async fn check(&self, key: &str, limit: &Limit, cost: u64) -> Result<Decision, Error> {
        self.gate().await?;
        self.store.check(key, limit, cost)
    }
    async fn check_all(&self, checks: &[Check<'_>]) -> Result<MultiDecision, Error> {
        self.gate().await?;
        self.store.check_all(checks)
    }
    async fn reset(&self, key: &str) -> Result<(), Error> {
        self.gate().await?;
        self.store.reset(key).map(|_| ())
    }
    async fn ping(&self) -> Result<(), Error> {
        self.gate().await
    }
}

pub const TIMEOUT: Duration = Duration::from_millis(50);
pub const OPEN_FOR: Duration = Duration::from_secs(1);

pub fn guarded(on_failure: OnStoreFailure) -> (Guarded<Switch, FakeClock>, FakeClock) {
    let clock = FakeClock::at_millis(1_700_000_000_000);
    let switch = Switch {
        store: MemoryStore::builder().clock(clock.clone()).build(),
        mode: AtomicU8::new(OK),
        calls: AtomicU64::new(0),
    };
    let config = GuardConfig {
        on_failure,
        call_timeout: TIMEOUT,
        breaker: BreakerConfig {
            failure_threshold: 3,
            open_for: OPEN_FOR,
            ..BreakerConfig::default()
        },
        ..GuardConfig::default()
    };
    (Guarded::with_clock(switch, config, clock.clone()), clock)
}

pub fn limit(rate: &str) -> Limit {
    Limit::gcra(rate.parse().expect("rate"))
}

pub type G = Guarded<Switch, FakeClock>;

pub async fn check(g: &G, rate: &str) -> (Decision, Source) {
    g.check_with_source("k", &limit(rate), 1)
        .await
        .expect("decided")
}
