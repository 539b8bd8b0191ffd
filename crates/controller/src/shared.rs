//! The window shared by several processes through a tollgate store (Redis, or the memory
//! store within one process).
//!
//! The store keeps four exact sliding-window logs: the total and one per category. A grant
//! is one all-or-nothing `check_all` of (total, category) with cost = weight, so no two
//! instances can both take the last of the capacity. The store records a grant at its own
//! clock's time `g`, before the caller has slept its delay; the call starts by
//! `g + latency + delay`. So the logs use a period of `W + max delay + call margin`: every
//! call whose start falls in one exchange window `(e - W, e]` was granted in the store
//! window `(e - W - max delay - margin, e]`, which holds at most the capacity.

use std::sync::Arc;
use std::time::Duration;

use tollgate_core::{Algorithm, Check, DynStore, Error, Limit, Rate, Unit};

use crate::config::ControllerConfig;
use crate::error::ConfigError;
use crate::types::{OperationCategory, Priority};

/// The longest call margin.
const MAX_MARGIN: Duration = Duration::from_secs(60);

/// A shared budget: the store several instances of a program decide on, and the name of
/// their common limit.
///
/// ```
/// use std::sync::Arc;
/// use tollgate_controller::{ControllerConfig, SharedBudget, UnifiedRateController};
/// use tollgate_memory::MemoryStore;
///
/// // In production: `tollgate_redis::RedisStore::connect(&config).await?`, the same on
/// // every host.
/// let store = Arc::new(MemoryStore::new());
/// let budget = SharedBudget::new(store, "kucoin")?;
/// let controller = UnifiedRateController::with_shared_budget(ControllerConfig::default(), budget)?;
/// # Ok::<(), tollgate_controller::ConfigError>(())
/// ```
pub struct SharedBudget {
    store: Arc<dyn DynStore>,
    name: String,
    call_margin: Duration,
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudget")
            .field("name", &self.name)
            .field("call_margin", &self.call_margin)
            .finish_non_exhaustive()
    }
}

impl SharedBudget {
    /// A budget named `name` (1–200 bytes, no `{` or `}`: the keys are
    /// `{tollgate-controller:NAME}:total` and `…:trading`, `…:scanning`, `…:admin`, one
    /// Redis Cluster slot). Every instance sharing it must use the same name and the same
    /// [`ControllerConfig`].
    pub fn new(store: Arc<dyn DynStore>, name: &str) -> Result<SharedBudget, ConfigError> {
        if name.is_empty() || name.len() > 200 || name.contains(['{', '}']) {
            return Err(ConfigError::InvalidValue {
                field: "the shared budget's name",
                value: format!("{name:?}"),
                expected: "1 to 200 bytes without '{' or '}'",
            });
        }
        Ok(SharedBudget {
            store,
            name: name.to_string(),
            call_margin: Duration::from_millis(250),
        })
    }

    /// The longest a grant's answer may take to reach its caller, from the store's decision
    /// (default 250 ms, the Redis store's default command timeout; at most 60 s). Each grant
    /// is counted this much longer than the window, so the cap holds as long as callers
    /// receive their answer within it.
    pub fn call_margin(mut self, margin: Duration) -> SharedBudget {
        self.call_margin = margin;
        self
    }
}

/// What the store said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SharedVerdict {
    /// Granted; the usage after it, total and of its category.
    Granted { total: u64, category: u64 },
    /// Denied; `total` says whether the total (rather than the category share) was full.
    Blocked { total: bool },
}

pub(crate) struct SharedWindow {
    store: Arc<dyn DynStore>,
    total_key: String,
    category_keys: [String; 3],
    /// The total as non-Critical requests see it (capacity less the reserve).
    total: Limit,
    /// The total as Critical requests see it, and the limit every peek uses.
    total_critical: Limit,
    /// Each category's share; `None` for a share of 0 (only Critical may use it).
    shares: [Option<Limit>; 3],
    /// A category as Critical requests see it: no share, only the capacity.
    category_critical: Limit,
}

impl SharedWindow {
    pub(crate) fn new(
        config: &ControllerConfig,
        budget: SharedBudget,
    ) -> Result<SharedWindow, ConfigError> {
        if budget.call_margin > MAX_MARGIN {
            return Err(ConfigError::InvalidValue {
                field: "the shared budget's call margin",
                value: format!("{:?}", budget.call_margin),
                expected: "at most 60 s",
            });
        }
        let period = config.window() + config.max_delay() + budget.call_margin;
        let period_ms = u64::try_from(period.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        let limit = |count: u64| -> Result<Limit, ConfigError> {
            Rate::new(count, period_ms, Unit::Millisecond)
                .and_then(|rate| Limit::new(rate, Algorithm::SlidingWindow, None))
                .map_err(|e| ConfigError::InvalidValue {
                    field: "the shared window",
                    value: format!("{count} per {period_ms} ms"),
                    expected: match e {
                        Error::InvalidRate { .. } => "a rate the store can keep",
                        _ => "a limit the store can keep",
                    },
                })
        };
        let capacity = u64::from(config.capacity());
        let shares = OperationCategory::ALL.map(|c| match config.share_weight(c) {
            0 => Ok(None),
            share => limit(share).map(Some),
        });
        let [t, s, a] = shares;
        let prefix = format!("{{tollgate-controller:{}}}", budget.name);
        Ok(SharedWindow {
            store: budget.store,
            total_key: format!("{prefix}:total"),
            category_keys: OperationCategory::ALL.map(|c| format!("{prefix}:{}", c.key())),
            total: limit(config.total_limit(Priority::High).max(1))?,
            total_critical: limit(capacity)?,
            shares: [t?, s?, a?],
            category_critical: limit(capacity)?,
        })
    }

    /// Decides a request on the store, all-or-nothing over the total and its category.
    pub(crate) async fn admit(
        &self,
        weight: u32,
        priority: Priority,
        category: OperationCategory,
    ) -> Result<SharedVerdict, Error> {
        let (total, share) = if priority == Priority::Critical {
            (self.total_critical, self.category_critical)
        } else {
            match self.shares[category.index()] {
                Some(share) => (self.total, share),
                // Refused before it gets here (a share of 0 admits nothing).
                None => return Ok(SharedVerdict::Blocked { total: false }),
            }
        };
        let checks = [
            Check::new(&self.total_key, total, u64::from(weight)),
            Check::new(
                &self.category_keys[category.index()],
                share,
                u64::from(weight),
            ),
        ];
        let answer = self.store.check_all(&checks).await?;
        let [t, c] = [0, 1].map(|i| answer.decisions.get(i).copied());
        match (answer.allowed, t, c) {
            (true, Some(t), Some(c)) => Ok(SharedVerdict::Granted {
                total: t.limit.saturating_sub(t.remaining),
                category: c.limit.saturating_sub(c.remaining),
            }),
            (false, Some(t), _) => Ok(SharedVerdict::Blocked { total: !t.allowed }),
            _ => Err(Error::Store {
                message: format!(
                    "the store answered {} decisions for a batch of 2",
                    answer.decisions.len()
                ),
                transient: false,
            }),
        }
    }

    /// The usage every instance has in the window, total and per category (one peek).
    pub(crate) async fn peek(&self) -> Result<(u64, [u64; 3]), Error> {
        let checks = [
            Check::new(&self.total_key, self.total_critical, 0),
            Check::new(&self.category_keys[0], self.category_critical, 0),
            Check::new(&self.category_keys[1], self.category_critical, 0),
            Check::new(&self.category_keys[2], self.category_critical, 0),
        ];
        let answer = self.store.check_all(&checks).await?;
        let used = |i: usize| {
            answer
                .decisions
                .get(i)
                .map_or(0, |d| d.limit.saturating_sub(d.remaining))
        };
        Ok((used(0), [used(1), used(2), used(3)]))
    }
}
