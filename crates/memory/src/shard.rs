//! One shard of the keyed store: three hash tables (one per algorithm family) behind the
//! shard's mutex, with the bookkeeping that keeps memory bounded.

use compact_str::CompactString;
use hashbrown::HashTable;
use std::hash::BuildHasher;

use tollgate_core::{Admission, Decision, FixedWindow, Gcra, Limit, LimitState, Nanos, SlidingLog};

use crate::WhenFull;

/// A tracked key and its state: 32 bytes for GCRA. Keys of up to 24 bytes are stored
/// inline, so a lookup touches one cache line and a new key allocates nothing. The hash is
/// not stored: it is recomputed when the table grows, which is rarer than a lookup.
pub(crate) struct Entry<S> {
    key: CompactString,
    state: S,
}

/// The hasher every shard and the store share.
pub(crate) type Hasher = foldhash::fast::RandomState;

/// A family's state type, and where a shard keeps it.
pub(crate) trait Kind: LimitState {
    fn table(shard: &Shard) -> &HashTable<Entry<Self>>;
    fn table_mut(shard: &mut Shard) -> &mut HashTable<Entry<Self>>;
}

macro_rules! kind {
    ($state:ty, $field:ident) => {
        impl Kind for $state {
            fn table(shard: &Shard) -> &HashTable<Entry<Self>> {
                &shard.$field
            }
            fn table_mut(shard: &mut Shard) -> &mut HashTable<Entry<Self>> {
                &mut shard.$field
            }
        }
    };
}
kind!(Gcra, gcra);
kind!(SlidingLog, sliding);
kind!(FixedWindow, fixed);

/// Below this many keys a shard never sweeps because it grew.
const MIN_SWEEP_LEN: usize = 1024;
/// How many keys an eviction samples to find the one closest to full capacity.
const EVICTION_SAMPLE: usize = 16;

/// The capacity rules a shard enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub max_keys: usize,
    pub when_full: WhenFull,
}

pub(crate) struct Shard {
    hasher: Hasher,
    gcra: HashTable<Entry<Gcra>>,
    sliding: HashTable<Entry<SlidingLog>>,
    fixed: HashTable<Entry<FixedWindow>>,
    len: usize,
    /// Sweep when `len` reaches this (it doubles the live count after each sweep, so
    /// sweeping costs O(1) amortised per insertion).
    sweep_at: usize,
    /// While full, no sweep can free anything before this time.
    next_useful_sweep: Nanos,
}

fn eq<S>(key: &str) -> impl Fn(&Entry<S>) -> bool + '_ {
    move |e| e.key.as_str() == key
}

impl Shard {
    pub(crate) fn new(hasher: Hasher) -> Shard {
        Shard {
            hasher,
            gcra: HashTable::new(),
            sliding: HashTable::new(),
            fixed: HashTable::new(),
            len: 0,
            sweep_at: 0,
            next_useful_sweep: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The state of `key`, if tracked.
    pub(crate) fn get<S: Kind>(&self, hash: u64, key: &str) -> Option<&S> {
        S::table(self).find(hash, eq(key)).map(|e| &e.state)
    }

    /// Decides one request and records it. A key is tracked only once it has consumed.
    pub(crate) fn apply<S: Kind>(
        &mut self,
        hash: u64,
        key: &str,
        limit: &Limit,
        now: Nanos,
        cost: u64,
        bounds: Bounds,
    ) -> Result<Decision, tollgate_core::Error> {
        if let Some(e) = S::table_mut(self).find_mut(hash, eq(key)) {
            return Ok(e.state.apply(limit, now, cost));
        }
        let mut state = S::default();
        let decision = state.apply(limit, now, cost);
        if cost > 0 && decision.allowed {
            self.make_room(now, bounds)?;
            self.insert(hash, key, state);
        }
        Ok(decision)
    }

    /// The GCRA verdict alone (see `MemoryStore::admit`), recorded when admitted.
    pub(crate) fn admit_gcra(
        &mut self,
        hash: u64,
        key: &str,
        limit: &Limit,
        now: Nanos,
        cost: u64,
        bounds: Bounds,
    ) -> Result<Admission, tollgate_core::Error> {
        if let Some(e) = self.gcra.find_mut(hash, eq(key)) {
            return Ok(
                match tollgate_core::gcra::admit(e.state.tat, limit, now, cost) {
                    Ok(next) => {
                        if cost > 0 {
                            e.state.tat = next;
                        }
                        Admission::ADMITTED
                    }
                    Err(wait) => Admission::denied(wait),
                },
            );
        }
        match tollgate_core::gcra::admit(0, limit, now, cost) {
            Ok(tat) if cost > 0 => {
                self.make_room(now, bounds)?;
                self.insert(hash, key, Gcra { tat });
                Ok(Admission::ADMITTED)
            }
            Ok(_) => Ok(Admission::ADMITTED),
            Err(wait) => Ok(Admission::denied(wait)),
        }
    }

    /// Makes sure `key` has an entry (a fresh state is the same as no entry), for a batch that
    /// is about to commit.
    pub(crate) fn reserve<S: Kind>(
        &mut self,
        hash: u64,
        key: &str,
        now: Nanos,
        bounds: Bounds,
    ) -> Result<(), tollgate_core::Error> {
        if S::table(self).find(hash, eq(key)).is_none() {
            self.make_room(now, bounds)?;
            self.insert(hash, key, S::default());
        }
        Ok(())
    }

    /// Records an admission already decided; the entry must have been reserved.
    pub(crate) fn commit<S: Kind>(
        &mut self,
        hash: u64,
        key: &str,
        limit: &Limit,
        now: Nanos,
        cost: u64,
    ) {
        if let Some(e) = S::table_mut(self).find_mut(hash, eq(key)) {
            e.state.prune(limit, now);
            e.state.commit(limit, now, cost);
        }
    }

    /// Forgets `key` under every family; returns whether anything was tracked.
    pub(crate) fn remove_key(&mut self, hash: u64, key: &str) -> bool {
        let removed = usize::from(remove(&mut self.gcra, hash, key))
            + usize::from(remove(&mut self.sliding, hash, key))
            + usize::from(remove(&mut self.fixed, hash, key));
        self.len -= removed;
        removed > 0
    }

    fn insert<S: Kind>(&mut self, hash: u64, key: &str, state: S) {
        let idle_at = state.idle_at();
        let entry = Entry {
            key: CompactString::new(key),
            state,
        };
        let hasher = self.hasher.clone();
        S::table_mut(self).insert_unique(hash, entry, |e| hasher.hash_one(e.key.as_str()));
        self.len += 1;
        // A key's idle time only moves later as it is used, so the minimum over insertions
        // bounds the soonest time a sweep can free anything.
        self.next_useful_sweep = self.next_useful_sweep.min(idle_at);
    }

    /// Frees a place for one more key, or says the store is full.
    fn make_room(&mut self, now: Nanos, bounds: Bounds) -> Result<(), tollgate_core::Error> {
        let full = self.len >= bounds.max_keys;
        if self.len >= self.sweep_at || (full && now >= self.next_useful_sweep) {
            self.sweep(now);
        }
        if self.len < bounds.max_keys {
            return Ok(());
        }
        match bounds.when_full {
            WhenFull::Reject => Err(tollgate_core::Error::StoreFull {
                max_keys: bounds.max_keys,
            }),
            WhenFull::EvictNearestIdle => {
                self.evict_one();
                Ok(())
            }
        }
    }

    /// Drops every key back to full capacity at `now`; returns how many.
    pub(crate) fn sweep(&mut self, now: Nanos) -> usize {
        let mut soonest = Nanos::MAX;
        let hasher = &self.hasher;
        let removed = sweep_table(&mut self.gcra, hasher, now, &mut soonest)
            + sweep_table(&mut self.sliding, hasher, now, &mut soonest)
            + sweep_table(&mut self.fixed, hasher, now, &mut soonest);
        self.len -= removed;
        self.sweep_at = (self.len * 2).max(MIN_SWEEP_LEN);
        self.next_useful_sweep = soonest;
        removed
    }

    /// Evicts, among a sample of tracked keys, the one soonest back to full capacity.
    fn evict_one(&mut self) {
        let mut victim = Victim::default();
        victim.consider(&self.gcra, 0);
        victim.consider(&self.sliding, 1);
        victim.consider(&self.fixed, 2);
        if let Some((key, table)) = victim.chosen {
            let hash = self.hasher.hash_one(key.as_str());
            let removed = match table {
                0 => remove(&mut self.gcra, hash, &key),
                1 => remove(&mut self.sliding, hash, &key),
                _ => remove(&mut self.fixed, hash, &key),
            };
            self.len -= usize::from(removed);
        }
    }
}

/// The eviction candidate found so far: (key, which table).
#[derive(Default)]
struct Victim {
    idle_at: Nanos,
    chosen: Option<(CompactString, u8)>,
}

impl Victim {
    fn consider<S: LimitState>(&mut self, table: &HashTable<Entry<S>>, tag: u8) {
        for e in table.iter().take(EVICTION_SAMPLE) {
            let idle_at = e.state.idle_at();
            if self.chosen.is_none() || idle_at < self.idle_at {
                self.idle_at = idle_at;
                self.chosen = Some((e.key.clone(), tag));
            }
        }
    }
}

fn remove<S>(table: &mut HashTable<Entry<S>>, hash: u64, key: &str) -> bool {
    match table.find_entry(hash, eq(key)) {
        Ok(entry) => {
            entry.remove();
            true
        }
        Err(_) => false,
    }
}

/// Removes the entries idle at `now` and notes the soonest time a survivor will be.
fn sweep_table<S: LimitState>(
    table: &mut HashTable<Entry<S>>,
    hasher: &Hasher,
    now: Nanos,
    soonest: &mut Nanos,
) -> usize {
    let before = table.len();
    table.retain(|e| {
        let idle_at = e.state.idle_at();
        let keep = idle_at > now;
        if keep {
            *soonest = (*soonest).min(idle_at);
        }
        keep
    });
    // Give memory back once the table is mostly empty; not sooner, or a shard whose keys
    // churn would shrink and regrow its table on every sweep.
    if table.capacity() > 1024 && table.len() < table.capacity() / 8 {
        table.shrink_to(table.len() * 2, |e| hasher.hash_one(e.key.as_str()));
    }
    before - table.len()
}
