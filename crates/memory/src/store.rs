//! The keyed in-memory store.

use std::hash::BuildHasher;

use parking_lot::{Mutex, MutexGuard};
use tollgate_core::{
    Admission, Check, Clock, Decision, Error, Family, FixedWindow, Gcra, Limit, MultiDecision,
    Nanos, SlidingLog, SystemClock, validate_key,
};

use crate::Padded;
use crate::shard::{Bounds, Hasher, Kind, Shard};

/// What a full store does with a key it has never seen.
///
/// Before either, the shard drops every key that is back to full capacity; this choice only
/// matters when every tracked key is still limiting something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Answer the new key with [`Error::StoreFull`] (code `store_full`); tracked keys keep
    /// their exact limits. No guarantee is ever broken.
    #[default]
    Reject,
    /// Forget the tracked key soonest back to full capacity (among a sample of 16) to make
    /// room. New keys are always served, but the forgotten key regains its full capacity early,
    /// so it may be admitted up to its remaining deficit more than the contract allows.
    EvictNearestIdle,
}

/// The default cap on tracked keys: about 100 MB of GCRA keys of 20 bytes.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

/// The embedded store: thread-safe, sharded, with bounded memory.
///
/// Each key lives in one of N shards (a power of two, 16 per core by default), chosen by its
/// hash; a check locks only that shard, and reads the clock under the lock so that time
/// never runs backwards within a key. Keys that are back to full capacity are dropped
/// lazily (a shard sweeps whenever it has doubled since its last sweep, and
/// [`sweep`](MemoryStore::sweep) sweeps all), so memory follows the number of keys that are
/// actually limited. At most `max_keys` keys are tracked (split evenly between shards);
/// [`WhenFull`] says what happens beyond.
///
/// ```
/// use tollgate_memory::MemoryStore;
/// use tollgate_core::{Algorithm, Limit};
/// let store = MemoryStore::new();
/// let limit = Limit::new("2/s".parse()?, Algorithm::Gcra, None)?;
/// assert!(store.check("user:1", &limit, 1)?.allowed);
/// assert!(store.check("user:1", &limit, 1)?.allowed);
/// assert!(!store.check("user:1", &limit, 1)?.allowed);
/// assert!(store.check("user:2", &limit, 1)?.allowed);
/// # Ok::<(), tollgate_core::Error>(())
/// ```
pub struct MemoryStore<C: Clock = SystemClock> {
    shards: Box<[Padded<Mutex<Shard>>]>,
    /// `hash >> SHARD_BITS_AT & mask` picks the shard: bits the tables themselves use little.
    mask: usize,
    hasher: Hasher,
    clock: C,
    bounds: Bounds,
    max_keys: usize,
}

const SHARD_BITS_AT: u32 = 40;

/// Builds a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryStoreBuilder<C: Clock = SystemClock> {
    clock: C,
    max_keys: usize,
    when_full: WhenFull,
    shards: Option<usize>,
}

impl MemoryStoreBuilder<SystemClock> {
    fn new() -> Self {
        MemoryStoreBuilder {
            clock: SystemClock::new(),
            max_keys: DEFAULT_MAX_KEYS,
            when_full: WhenFull::default(),
            shards: None,
        }
    }
}

impl<C: Clock> MemoryStoreBuilder<C> {
    /// The clock (default: [`SystemClock`]).
    pub fn clock<D: Clock>(self, clock: D) -> MemoryStoreBuilder<D> {
        MemoryStoreBuilder {
            clock,
            max_keys: self.max_keys,
            when_full: self.when_full,
            shards: self.shards,
        }
    }

    /// The most keys tracked at once (default [`DEFAULT_MAX_KEYS`]; `usize::MAX` for no cap).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    /// What a full store does with a new key (default [`WhenFull::Reject`]).
    pub fn when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = when_full;
        self
    }

    /// The number of shards, rounded up to a power of two (default 16 per core, at most 1024).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Builds the store.
    pub fn build(self) -> MemoryStore<C> {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        let n = self
            .shards
            .unwrap_or(cores * 16)
            .clamp(1, 1024)
            .next_power_of_two();
        let per_shard = self.max_keys.div_ceil(n);
        let hasher = Hasher::default();
        MemoryStore {
            shards: (0..n)
                .map(|_| Padded(Mutex::new(Shard::new(hasher.clone()))))
                .collect(),
            mask: n - 1,
            hasher,
            clock: self.clock,
            bounds: Bounds {
                max_keys: per_shard,
                when_full: self.when_full,
            },
            max_keys: per_shard.saturating_mul(n),
        }
    }
}

impl MemoryStore<SystemClock> {
    /// A store with the default settings and the system clock.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to set the clock, the cap and the shards.
    pub fn builder() -> MemoryStoreBuilder<SystemClock> {
        MemoryStoreBuilder::new()
    }
}

impl Default for MemoryStore<SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> MemoryStore<C> {
    fn locate(&self, key: &str) -> (u64, usize) {
        let hash = self.hasher.hash_one(key);
        (hash, (hash >> SHARD_BITS_AT) as usize & self.mask)
    }

    /// The clock the store decides by.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The most keys the store tracks at once.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Decides one request of `cost` on `key` under `limit`; cost 0 peeks.
    pub fn check(&self, key: &str, limit: &Limit, cost: u64) -> Result<Decision, Error> {
        validate_key(key)?;
        limit.check_cost(key, cost)?;
        let (hash, index) = self.locate(key);
        let mut shard = self.shards[index].0.lock();
        let now = self.clock.now();
        match limit.algorithm().family() {
            Family::Gcra => shard.apply::<Gcra>(hash, key, limit, now, cost, self.bounds),
            Family::SlidingWindow => {
                shard.apply::<SlidingLog>(hash, key, limit, now, cost, self.bounds)
            }
            Family::FixedWindow => {
                shard.apply::<FixedWindow>(hash, key, limit, now, cost, self.bounds)
            }
        }
    }

    /// Admits `cost` on `key` when `limit` allows (and consumes it), or says how long until
    /// it would (nothing consumed). The same rule as [`check`](Self::check) without the
    /// decision's other fields, for hot paths that only need the verdict.
    pub fn admit(&self, key: &str, limit: &Limit, cost: u64) -> Result<Admission, Error> {
        if limit.algorithm().family() != Family::Gcra {
            return self.check(key, limit, cost).map(|d| Admission::from(&d));
        }
        validate_key(key)?;
        limit.check_cost(key, cost)?;
        let (hash, index) = self.locate(key);
        let mut shard = self.shards[index].0.lock();
        let now = self.clock.now();
        shard.admit_gcra(hash, key, limit, now, cost, self.bounds)
    }

    /// Decides a batch all-or-nothing (see [`MultiDecision`]): the shards involved are locked
    /// together, in order, so the batch is atomic with respect to every other call.
    pub fn check_all(&self, checks: &[Check<'_>]) -> Result<MultiDecision, Error> {
        for check in checks {
            validate_key(check.key)?;
            check.limit.check_cost(check.key, check.cost)?;
        }
        let located: Vec<(u64, usize)> = checks.iter().map(|c| self.locate(c.key)).collect();
        let mut order: Vec<usize> = located.iter().map(|&(_, i)| i).collect();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<MutexGuard<'_, Shard>> =
            order.iter().map(|&i| self.shards[i].0.lock()).collect();
        let slot = |index: usize| order.binary_search(&index).unwrap_or(0);
        let now = self.clock.now();

        let mut decisions = Vec::with_capacity(checks.len());
        for (n, check) in checks.iter().enumerate() {
            // Earlier checks of this batch on the same bucket count as already admitted.
            let family = check.limit.algorithm().family();
            let pending: u64 = checks[..n]
                .iter()
                .filter(|c| c.key == check.key && c.limit.algorithm().family() == family)
                .map(|c| c.cost)
                .sum();
            let (hash, index) = located[n];
            let shard = &guards[slot(index)];
            decisions.push(evaluate(shard, hash, check, now, pending));
        }

        if decisions.iter().all(|d| d.allowed) {
            for (check, &(hash, index)) in checks.iter().zip(&located) {
                if check.cost > 0 {
                    reserve(&mut guards[slot(index)], hash, check, now, self.bounds)?;
                }
            }
            for (check, &(hash, index)) in checks.iter().zip(&located) {
                if check.cost > 0 {
                    commit(&mut guards[slot(index)], hash, check, now);
                }
            }
            return Ok(MultiDecision {
                allowed: true,
                retry_after_ms: 0,
                decisions,
            });
        }

        let retry_after_ms = decisions
            .iter()
            .map(|d| d.retry_after_ms)
            .max()
            .unwrap_or(0);
        for (n, check) in checks.iter().enumerate() {
            let (hash, index) = located[n];
            let now_state = evaluate(
                &guards[slot(index)],
                hash,
                &Check {
                    cost: 0,
                    ..check.clone()
                },
                now,
                0,
            );
            let d = &mut decisions[n];
            d.remaining = now_state.remaining;
            d.reset_after_ms = now_state.reset_after_ms;
        }
        Ok(MultiDecision {
            allowed: false,
            retry_after_ms,
            decisions,
        })
    }

    /// Forgets `key` under every algorithm; returns whether it was tracked.
    pub fn reset(&self, key: &str) -> Result<bool, Error> {
        validate_key(key)?;
        let (hash, index) = self.locate(key);
        Ok(self.shards[index].0.lock().remove_key(hash, key))
    }

    /// Drops every key that is back to full capacity now; returns how many. A server calls
    /// this now and then so that memory shrinks after a burst of keys even when no new key
    /// arrives.
    pub fn sweep(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let mut shard = s.0.lock();
                let now = self.clock.now();
                shard.sweep(now)
            })
            .sum()
    }

    /// How many keys are tracked now (a key checked under two algorithm families counts
    /// twice).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().len()).sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evaluate(shard: &Shard, hash: u64, check: &Check<'_>, now: Nanos, pending: u64) -> Decision {
    fn eval<S: Kind>(
        shard: &Shard,
        hash: u64,
        c: &Check<'_>,
        now: Nanos,
        pending: u64,
    ) -> Decision {
        match shard.get::<S>(hash, c.key) {
            Some(state) => state.evaluate(&c.limit, now, c.cost, pending),
            None => S::default().evaluate(&c.limit, now, c.cost, pending),
        }
    }
    match check.limit.algorithm().family() {
        Family::Gcra => eval::<Gcra>(shard, hash, check, now, pending),
        Family::SlidingWindow => eval::<SlidingLog>(shard, hash, check, now, pending),
        Family::FixedWindow => eval::<FixedWindow>(shard, hash, check, now, pending),
    }
}

fn reserve(
    shard: &mut Shard,
    hash: u64,
    check: &Check<'_>,
    now: Nanos,
    bounds: Bounds,
) -> Result<(), Error> {
    match check.limit.algorithm().family() {
        Family::Gcra => shard.reserve::<Gcra>(hash, check.key, now, bounds),
        Family::SlidingWindow => shard.reserve::<SlidingLog>(hash, check.key, now, bounds),
        Family::FixedWindow => shard.reserve::<FixedWindow>(hash, check.key, now, bounds),
    }
}

fn commit(shard: &mut Shard, hash: u64, check: &Check<'_>, now: Nanos) {
    let (key, limit, cost) = (check.key, &check.limit, check.cost);
    match limit.algorithm().family() {
        Family::Gcra => shard.commit::<Gcra>(hash, key, limit, now, cost),
        Family::SlidingWindow => shard.commit::<SlidingLog>(hash, key, limit, now, cost),
        Family::FixedWindow => shard.commit::<FixedWindow>(hash, key, limit, now, cost),
    }
}

impl<C: Clock> tollgate_core::Store for MemoryStore<C> {
    async fn check(&self, key: &str, limit: &Limit, cost: u64) -> Result<Decision, Error> {
        MemoryStore::check(self, key, limit, cost)
    }

    async fn check_all(&self, checks: &[Check<'_>]) -> Result<MultiDecision, Error> {
        MemoryStore::check_all(self, checks)
    }

    async fn reset(&self, key: &str) -> Result<(), Error> {
        MemoryStore::reset(self, key).map(|_| ())
    }

    async fn ping(&self) -> Result<(), Error> {
        Ok(())
    }

    fn tracked_keys(&self) -> Option<u64> {
        Some(self.len() as u64)
    }
}

impl<C: Clock> std::fmt::Debug for MemoryStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.shards.len())
            .field("max_keys", &self.max_keys)
            .field("when_full", &self.bounds.when_full)
            .finish()
    }
}
