//! What [`Guarded`](super::Guarded) and its circuit breaker are configured with, and what
//! they report.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tollgate_memory::DEFAULT_MAX_KEYS;

/// What a [`Guarded`](super::Guarded) store answers when the store it wraps fails
/// transiently, times out, or its circuit breaker is open. See the [module docs](super)
/// for the exact decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnStoreFailure {
    /// Deny every request (fail closed): the limit holds, availability suffers. The default.
    #[default]
    Deny,
    /// Admit every request without counting it (fail open): the service stays up,
    /// unprotected.
    Allow,
    /// Decide on an in-process [`MemoryStore`](tollgate_memory::MemoryStore): each host
    /// enforces the limit on its own, so N hosts may admit up to N times the limit.
    Local,
}

impl OnStoreFailure {
    /// Every policy, in documentation order.
    pub const ALL: [OnStoreFailure; 3] = [
        OnStoreFailure::Deny,
        OnStoreFailure::Allow,
        OnStoreFailure::Local,
    ];

    /// `deny`, `allow` or `local`: the name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            OnStoreFailure::Deny => "deny",
            OnStoreFailure::Allow => "allow",
            OnStoreFailure::Local => "local",
        }
    }
}

impl fmt::Display for OnStoreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OnStoreFailure {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<OnStoreFailure, UnknownPolicy> {
        OnStoreFailure::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPolicy {
                input: s.to_string(),
            })
    }
}

/// A store-failure policy name that is not `deny`, `allow` or `local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPolicy {
    /// The name as given.
    pub input: String,
}

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown store-failure policy {:?}: expected one of deny, allow, local",
            self.input
        )
    }
}

impl std::error::Error for UnknownPolicy {}

/// How a [`Guarded`](super::Guarded) store bounds and survives the store it wraps.
///
/// ```
/// use std::time::Duration;
/// use tollgate_redis::guard::{BreakerConfig, GuardConfig, OnStoreFailure};
/// let config = GuardConfig {
///     on_failure: OnStoreFailure::Local,
///     call_timeout: Duration::from_millis(20),
///     breaker: BreakerConfig { failure_threshold: 3, ..BreakerConfig::default() },
///     ..GuardConfig::default()
/// };
/// assert_eq!(config.local_max_keys, tollgate_memory::DEFAULT_MAX_KEYS);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// What to answer while the store fails (default [`OnStoreFailure::Deny`]).
    pub on_failure: OnStoreFailure,
    /// The longest any one call to the store may take; a call that takes longer is
    /// abandoned and counts as a transient failure (default 50 ms).
    pub call_timeout: Duration,
    /// When to stop calling a failing store, and how to try it again.
    pub breaker: BreakerConfig,
    /// The most keys the local fallback store tracks under [`OnStoreFailure::Local`]
    /// (default [`DEFAULT_MAX_KEYS`]); beyond, it forgets the key nearest to full capacity.
    pub local_max_keys: usize,
    /// One breaker per Redis Cluster hash slot of the key (see
    /// [`keys::slot`](crate::keys::slot)) instead of one for the whole store (default
    /// false). For a Redis Cluster: a master that is down then fails fast for the keys of
    /// its own slots only, and the other masters' keys go on being decided. The store's
    /// breaker then guards `ping` alone.
    pub breaker_per_slot: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            on_failure: OnStoreFailure::default(),
            call_timeout: Duration::from_millis(50),
            breaker: BreakerConfig::default(),
            local_max_keys: DEFAULT_MAX_KEYS,
            breaker_per_slot: false,
        }
    }
}

/// How a [`CircuitBreaker`](super::CircuitBreaker) trips and recovers. A threshold or a probe
/// count of 0 counts as 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive store failures that open a closed breaker (default 5).
    pub failure_threshold: u32,
    /// How long an open breaker fails fast before it lets a probe through (default 1 s).
    pub open_for: Duration,
    /// How many probes may be in flight at once while half-open (default 1); other calls
    /// fail fast.
    pub half_open_probes: u32,
    /// Successful probes, in total, that close a half-open breaker (default 1).
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(1),
            half_open_probes: 1,
            success_threshold: 1,
        }
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls reach the store; consecutive failures are counted.
    Closed,
    /// Calls fail fast without touching the store. It stays open until a call comes after
    /// `open_for` has passed: that call is the first probe.
    Open,
    /// Up to `half_open_probes` calls reach the store at once; the others fail fast.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half-open`, for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A snapshot of a [`Guarded`](super::Guarded) store's health, for metrics, logs and
/// `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreHealth {
    /// The circuit breaker's state.
    pub breaker: BreakerState,
    /// The last store failure since the breaker last closed (`None` once it recovers).
    pub last_error: Option<String>,
    /// Calls that reached the store and failed transiently or timed out.
    pub failures_total: u64,
    /// Checks and batches answered by the [`OnStoreFailure`] policy instead of the store.
    pub fallback_decisions_total: u64,
    /// How many times the breaker (or a slot's breaker) has opened.
    pub opened_total: u64,
    /// Calls the open (or busy half-open) breakers kept from the store.
    pub rejected_total: u64,
    /// With [`GuardConfig::breaker_per_slot`]: how many Redis Cluster slots' breakers are
    /// not closed now (0 otherwise).
    pub open_slots: u64,
    /// Checks the Redis store's over-limit cache answered without a round trip. The guard
    /// cannot see into the store it wraps and reports 0; the owner of a
    /// [`RedisStore`](crate::RedisStore) fills it in from
    /// [`over_limit_cache_hits`](crate::RedisStore::over_limit_cache_hits).
    pub over_limit_cache_hits: u64,
}

/// Who decided: the wrapped store, or the failure policy in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The wrapped store answered.
    Store,
    /// The store failed or the breaker was open; the policy answered.
    Fallback(OnStoreFailure),
}
