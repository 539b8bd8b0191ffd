//! The answers of the [`OnStoreFailure`] policies, given in the store's place.

use std::time::Duration;

use tollgate_core::{Check, Clock, Decision, Error, Limit, MultiDecision, ceil_ms};
use tollgate_memory::{MemoryStore, WhenFull};

use super::config::{GuardConfig, OnStoreFailure};

#[cfg(test)]
mod tests;

/// A policy, with its store under [`OnStoreFailure::Local`].
#[derive(Debug)]
pub(crate) enum Fallback<C: Clock> {
    Deny,
    Allow,
    Local(MemoryStore<C>),
}

impl<C: Clock> Fallback<C> {
    /// The policy `config` names; under `Local`, a fresh store on `clock`.
    pub(crate) fn new(config: &GuardConfig, clock: C) -> Fallback<C> {
        match config.on_failure {
            OnStoreFailure::Deny => Fallback::Deny,
            OnStoreFailure::Allow => Fallback::Allow,
            OnStoreFailure::Local => Fallback::Local(
                MemoryStore::builder()
                    .clock(clock)
                    .max_keys(config.local_max_keys)
                    .when_full(WhenFull::EvictNearestIdle)
                    .build(),
            ),
        }
    }

    /// The local store, under `Local`.
    pub(crate) fn local(&self) -> Option<&MemoryStore<C>> {
        match self {
            Fallback::Local(local) => Some(local),
            Fallback::Deny | Fallback::Allow => None,
        }
    }

    /// Decides one check; `retry_after` is how long until the store is tried again.
    pub(crate) fn check(
        &self,
        key: &str,
        limit: &Limit,
        cost: u64,
        retry_after: Duration,
    ) -> Result<Decision, Error> {
        match self {
            Fallback::Deny => Ok(denied(limit, retry_after)),
            Fallback::Allow => Ok(allowed(limit)),
            Fallback::Local(local) => local.check(key, limit, cost),
        }
    }

    /// Decides a batch, whole.
    pub(crate) fn check_all(
        &self,
        checks: &[Check<'_>],
        retry_after: Duration,
    ) -> Result<MultiDecision, Error> {
        let each = |decide: &dyn Fn(&Limit) -> Decision| -> Vec<Decision> {
            checks.iter().map(|c| decide(&c.limit)).collect()
        };
        match self {
            Fallback::Deny => Ok(MultiDecision {
                allowed: false,
                retry_after_ms: retry_ms(retry_after),
                decisions: each(&|limit| denied(limit, retry_after)),
            }),
            Fallback::Allow => Ok(MultiDecision {
                allowed: true,
                retry_after_ms: 0,
                decisions: each(&allowed),
            }),
            Fallback::Local(local) => local.check_all(checks),
        }
    }
}

/// A wait in whole milliseconds, at least 1.
pub(crate) fn retry_ms(wait: Duration) -> u64 {
    ceil_ms(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX)).max(1)
}

/// The [`OnStoreFailure::Deny`] decision: nothing left, ask again when the store may answer.
fn denied(limit: &Limit, retry_after: Duration) -> Decision {
    let wait = retry_ms(retry_after);
    Decision {
        allowed: false,
        limit: limit.capacity(),
        remaining: 0,
        retry_after_ms: wait,
        reset_after_ms: wait,
    }
}

/// The [`OnStoreFailure::Allow`] decision: nothing counted, so a key at full capacity.
fn allowed(limit: &Limit) -> Decision {
    Decision {
        allowed: true,
        limit: limit.capacity(),
        remaining: limit.capacity(),
        retry_after_ms: 0,
        reset_after_ms: 0,
    }
}
