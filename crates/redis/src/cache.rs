//! The over-limit cache: a key that Redis has just denied is answered here, without a round
//! trip, for as long as that denial *proves* Redis would deny it too (envoyproxy/ratelimit's
//! local cache, made exact). Off by default; see [`RedisConfig::over_limit_cache`].
//!
//! # Why a cached denial is exact
//!
//! Between a denial and its retry time, a key's state in Redis only fills up: an admission
//! adds to it (a later TAT, one more log entry, a higher count), and only time drains it. So a
//! denial that Redis gave at its time `t0` for cost `c`, with a wait `W`, implies at every
//! Redis time before `t0 + W`:
//!
//! - `gcra`/`strict`: the TAT is at least `t0 + base`, where `base` (how far it ran ahead) is
//!   known from the decision's `reset_after_ms` and `retry_after_ms` to within a millisecond.
//!   That decides a check of *any* cost under *any* GCRA limit of the key (they share the
//!   bucket): denied while `base - elapsed + T × cost > BURST × T`, so a larger cost is denied
//!   longer and a smaller one may be forwarded to Redis (and admitted) at once.
//! - `fixed-window`: the window holds at least `COUNT - remaining` until its end, so every
//!   cost above the decision's `remaining` is denied until the window ends.
//! - `sliding-window`: the same cost is denied until the admissions that must leave have left
//!   (its `retry_after_ms`). A different cost goes to Redis: how soon the log frees room for it
//!   depends on admissions the decision does not describe.
//!
//! The waits come rounded up to whole milliseconds, so the cache takes each at its lower
//! bound (`ms - 1` ms + 1 µs). The Redis time elapsed since the decision is over-estimated
//! with the local monotonic clock: counted from *before* the call was sent (Redis decided
//! later), plus 0.1% for clocks running at different rates (NTP slews a clock by at most
//! 0.05%) and 1 µs for `TIME`'s truncation. So an entry expires early by about a round trip,
//! never late. A batch (`check_all`), a peek (cost 0) and
//! [`check_timed`](crate::RedisStore::check_timed) always go to Redis.
//!
//! A cached answer carries the fields Redis would give if nothing else had happened since the
//! latest answer this store had from Redis for the key, taken on the safe side:
//! `allowed: false`, `limit`, `remaining` never above Redis's, `retry_after_ms` and
//! `reset_after_ms` never below, all shrinking with time. (An admission through this store
//! refreshes a key's entry, or drops it where it proves nothing, as for `sliding-window`; it
//! never adds one.) Traffic from other hosts since can only make Redis's own answer later,
//! and the next answer from Redis (once the entry has expired) says so.
//!
//! # What it cannot see
//!
//! The argument needs Redis's state to fill up only. What removes state behind the cache's
//! back makes a cached denial outlast Redis's by at most the wait of the denial it came from:
//! a reset through *another* store or host, a `FLUSHDB`, a key evicted under memory pressure,
//! a failover to a replica that had not received the last writes, a key checked under two
//! sliding-window periods (the shorter one trims the log), or Redis's clock stepping forward.
//! A reset through this store clears its entries, and every failed call to Redis other than a
//! timeout (a dropped or refused connection, `LOADING`, `READONLY`, …, which is how a restart
//! or a failover shows) empties the cache. A cache can only deny, never admit, so none of the
//! CONTRACT §3 guarantees depends on it.
//!
//! [`RedisConfig::over_limit_cache`]: crate::RedisConfig::over_limit_cache

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tollgate_core::{Decision, Family};

use crate::scripts::Params;

#[cfg(test)]
mod tests;

/// Shards, each its own lock: checks of different keys rarely wait on each other.
const MAX_SHARDS: usize = 16;

/// A bounded map from state keys to what their last denial proves.
pub(crate) struct OverLimitCache {
    shards: Box<[Mutex<Shard>]>,
    /// Bumped (under the shard's lock) by a reset or a clear, so that an answer to a call
    /// sent before it is not learned after it.
    epochs: Box<[AtomicU64]>,
    per_shard: usize,
    hasher: std::hash::RandomState,
    hits: AtomicU64,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<String, Entry>,
}

/// Taken before a call is sent, handed back to [`OverLimitCache::learn`] with its answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    shard: usize,
    epoch: u64,
    sent: Instant,
}

struct Entry {
    /// Before the call was sent: Redis decided later.
    sent: Instant,
    /// After its answer came back: Redis decided earlier.
    received: Instant,
    /// From then on the entry proves nothing (an estimate, for the sweep only).
    stale_at: Instant,
    known: Known,
}

/// What a denial proves, as spans of Redis time in µs after the decision.
enum Known {
    /// How far the TAT ran ahead of Redis's clock.
    Gcra { base: Span },
    /// The window holds at least COUNT - `remaining` until it ends.
    Fixed {
        period: u64,
        count: u64,
        remaining: u64,
        end: Span,
    },
    /// `cost` is denied until room is freed; the newest admission leaves at `reset`.
    Sliding {
        period: u64,
        count: u64,
        cost: u64,
        remaining: u64,
        free: Span,
        reset: Span,
    },
}

/// A length in µs known to lie in `lo..=hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    lo: u64,
    hi: u64,
}

impl Span {
    /// What a wait reported as `ms` (rounded up to whole milliseconds) stood for; `None` for
    /// no wait.
    fn of_ms(ms: u64) -> Option<Span> {
        let hi = ms.checked_mul(1000)?;
        (ms > 0).then(|| Span { lo: hi - 999, hi })
    }
}

/// µs to whole ms, rounded up (as the scripts report waits).
fn ceil_ms(us: u64) -> u64 {
    us.div_ceil(1000)
}

/// At most how much Redis time has passed since a decision made after `sent`: the local
/// time, rounded up to the µs, plus 0.1% for a difference in clock rates, plus 1 µs for the
/// truncation of `TIME`.
fn elapsed_at_most(sent: Instant, now: Instant) -> u64 {
    let ns = now.saturating_duration_since(sent).as_nanos();
    let us = u64::try_from(ns.div_ceil(1000)).unwrap_or(u64::MAX);
    us.saturating_add(us.div_ceil(1000)).saturating_add(1)
}

/// At least how much Redis time has passed since a decision answered at `received`.
fn elapsed_at_least(received: Instant, now: Instant) -> u64 {
    let us = now.saturating_duration_since(received).as_micros();
    let us = u64::try_from(us).unwrap_or(u64::MAX);
    us.saturating_sub(us.div_ceil(1000)).saturating_sub(1)
}

impl Known {
    /// What Redis's decision `d` on `cost` under `p` proves, if anything.
    fn of(p: &Params, cost: u64, d: &Decision) -> Option<Known> {
        match p.family {
            // An admission: reset_after = ceil_ms(the new lead).
            Family::Gcra if d.allowed => Some(Known::Gcra {
                base: Span::of_ms(d.reset_after_ms)?,
            }),
            Family::Gcra => {
                let (t, burst) = (p.a, p.b);
                let over = t.checked_mul(burst)?.checked_sub(t.checked_mul(cost)?)?;
                // reset_after = ceil_ms(base); retry_after = ceil_ms(base + T×cost - τ).
                let by_reset = Span::of_ms(d.reset_after_ms)?;
                let by_retry = Span::of_ms(d.retry_after_ms)?;
                let base = Span {
                    lo: by_reset.lo.max(by_retry.lo.saturating_add(over)),
                    hi: by_reset.hi.min(by_retry.hi.saturating_add(over)),
                };
                (base.lo <= base.hi).then_some(Known::Gcra { base })
            }
            Family::FixedWindow => Some(Known::Fixed {
                period: p.a,
                count: p.b,
                remaining: d.remaining,
                end: Span::of_ms(d.retry_after_ms)?,
            }),
            // How soon the log frees room is not in an admission's fields.
            Family::SlidingWindow if d.allowed => None,
            Family::SlidingWindow => Some(Known::Sliding {
                period: p.a,
                count: p.b,
                cost,
                remaining: d.remaining,
                free: Span::of_ms(d.retry_after_ms)?,
                reset: Span::of_ms(d.reset_after_ms)?,
            }),
        }
    }

    /// How long after the decision the entry can still prove a denial, at most.
    fn useful_for(&self) -> u64 {
        match self {
            Known::Gcra { base } => base.lo,
            Known::Fixed { end, .. } => end.lo,
            Known::Sliding { free, .. } => free.lo,
        }
    }

    /// Redis's answer to `cost` under `p`, if this proves a denial when at most `late` and at
    /// least `early` µs of Redis time have passed since the decision.
    fn deny(&self, p: &Params, cost: u64, late: u64, early: u64) -> Option<Decision> {
        match (self, p.family) {
            (Known::Gcra { base }, Family::Gcra) => {
                let (t, burst) = (p.a, p.b);
                let tau = t.checked_mul(burst)?;
                let need = t.checked_mul(cost)?;
                // Denied for sure only if even the shortest TAT lead left leaves no room.
                let lo = base.lo.checked_sub(late)?;
                if lo.checked_add(need)? <= tau {
                    return None;
                }
                // The fields as the script computes them, from the longest lead possible.
                let hi = base.hi.saturating_sub(early);
                Some(Decision {
                    allowed: false,
                    limit: burst,
                    remaining: tau.saturating_sub(hi) / t,
                    retry_after_ms: ceil_ms((hi + need).saturating_sub(tau)),
                    reset_after_ms: ceil_ms(hi),
                })
            }
            (
                Known::Fixed {
                    period,
                    count,
                    remaining,
                    end,
                },
                Family::FixedWindow,
            ) if (*period, *count) == (p.a, p.b) && cost > *remaining && late < end.lo => {
                let wait = ceil_ms(end.hi.saturating_sub(early));
                Some(Decision {
                    allowed: false,
                    limit: *count,
                    remaining: *remaining,
                    retry_after_ms: wait,
                    reset_after_ms: wait,
                })
            }
            (
                Known::Sliding {
                    period,
                    count,
                    cost: denied,
                    remaining,
                    free,
                    reset,
                },
                Family::SlidingWindow,
            ) if (*period, *count, *denied) == (p.a, p.b, cost) && late < free.lo => {
                Some(Decision {
                    allowed: false,
                    limit: *count,
                    remaining: *remaining,
                    retry_after_ms: ceil_ms(free.hi.saturating_sub(early)),
                    reset_after_ms: ceil_ms(reset.hi.saturating_sub(early)),
                })
            }
            _ => None,
        }
    }
}

impl OverLimitCache {
    /// A cache of at most `max_keys` entries (at least 1).
    pub(crate) fn new(max_keys: usize) -> OverLimitCache {
        let max_keys = max_keys.max(1);
        let shards = max_keys.min(MAX_SHARDS);
        OverLimitCache {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            epochs: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            per_shard: max_keys / shards,
            hasher: std::hash::RandomState::new(),
            hits: AtomicU64::new(0),
        }
    }

    fn shard_of(&self, redis_key: &str) -> usize {
        // The remainder is below the shard count, a usize.
        (self.hasher.hash_one(redis_key) % self.shards.len() as u64) as usize
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Redis's answer to `cost` on `redis_key` under `p`, if a cached denial proves it.
    pub(crate) fn lookup(
        &self,
        redis_key: &str,
        p: &Params,
        cost: u64,
        now: Instant,
    ) -> Option<Decision> {
        if cost == 0 {
            return None;
        }
        let shard = self.shard_of(redis_key);
        let mut guard = self.lock(shard);
        let entry = guard.entries.get(redis_key)?;
        if now >= entry.stale_at {
            guard.entries.remove(redis_key);
            return None;
        }
        let late = elapsed_at_most(entry.sent, now);
        let early = elapsed_at_least(entry.received, now);
        let decision = entry.known.deny(p, cost, late, early)?;
        drop(guard);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(decision)
    }

    /// To take just before a call on `redis_key` is sent.
    pub(crate) fn ticket(&self, redis_key: &str) -> Ticket {
        let shard = self.shard_of(redis_key);
        Ticket {
            shard,
            epoch: self.epochs[shard].load(Ordering::SeqCst),
            sent: Instant::now(),
        }
    }

    /// Remembers what Redis's denial `d` of `cost` on `redis_key` under `p` proves, unless a
    /// reset or clear came between the ticket and now. An admission only refreshes (or, if
    /// it proves nothing, drops) a key already held, so that its fields stay those of the
    /// latest state this store saw; it adds no key.
    pub(crate) fn learn(
        &self,
        ticket: Ticket,
        redis_key: &str,
        p: &Params,
        cost: u64,
        d: &Decision,
        received: Instant,
    ) {
        if cost == 0 {
            return;
        }
        let known = Known::of(p, cost, d);
        // stale_at ≈ sent + useful_for / 1.001, never after the last instant of use.
        let entry = known.map(|known| {
            let useful = known.useful_for();
            Entry {
                sent: ticket.sent,
                received,
                stale_at: ticket.sent + Duration::from_micros(useful - useful.div_ceil(1001)),
                known,
            }
        });
        let mut guard = self.lock(ticket.shard);
        if self.epochs[ticket.shard].load(Ordering::SeqCst) != ticket.epoch {
            return;
        }
        let entries = &mut guard.entries;
        let entry = match entry {
            Some(entry) if !d.allowed || entries.contains_key(redis_key) => entry,
            _ => {
                entries.remove(redis_key);
                return;
            }
        };
        if entries.len() >= self.per_shard && !entries.contains_key(redis_key) {
            make_room(entries, self.per_shard, received);
        }
        entries.insert(redis_key.to_string(), entry);
    }

    /// Forgets `redis_keys` (after a reset), and what calls in flight would teach about
    /// their shards.
    pub(crate) fn forget(&self, redis_keys: &[String]) {
        for key in redis_keys {
            let shard = self.shard_of(key);
            let mut guard = self.lock(shard);
            self.epochs[shard].fetch_add(1, Ordering::SeqCst);
            guard.entries.remove(key.as_str());
        }
    }

    /// Forgets everything, and what calls in flight would teach.
    pub(crate) fn clear(&self) {
        for shard in 0..self.shards.len() {
            let mut guard = self.lock(shard);
            self.epochs[shard].fetch_add(1, Ordering::SeqCst);
            guard.entries.clear();
        }
    }

    /// Checks answered from the cache so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Entries held now.
    pub(crate) fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|shard| self.lock(shard).entries.len())
            .sum()
    }
}

/// Makes room in a full shard: drops the stale entries, then, if that freed less than an
/// eighth, arbitrary ones down to 7/8 full, so that the next sweep is at least `cap / 8`
/// insertions away (amortised O(1) per insertion).
fn make_room(entries: &mut HashMap<String, Entry>, cap: usize, now: Instant) {
    entries.retain(|_, e| now < e.stale_at);
    let keep = cap - cap.div_ceil(8);
    if entries.len() > keep {
        let excess: Vec<String> = entries.keys().take(entries.len() - keep).cloned().collect();
        for key in excess {
            entries.remove(&key);
        }
    }
}
