//! What a check answers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{Nanos, ceil_ms};
use crate::limit::Limit;

/// The answer to one check (CONTRACT §4).
///
/// A denial is a decision like any other: `allowed == false` with the wait in
/// `retry_after_ms`. A denied request consumed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the request was admitted (and its cost consumed).
    pub allowed: bool,
    /// The most that can be admitted at once: BURST for `gcra`/`strict`, COUNT otherwise.
    pub limit: u64,
    /// How much cost could still be admitted right now, after this decision.
    pub remaining: u64,
    /// 0 when allowed; otherwise the wait after which the same request would be admitted if
    /// nothing else happened, in whole milliseconds rounded up.
    pub retry_after_ms: u64,
    /// The wait until the key is back to full capacity, in milliseconds rounded up.
    pub reset_after_ms: u64,
}

/// One check of a batch: a key, the limit it is checked under and the cost asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check<'a> {
    /// The key.
    pub key: &'a str,
    /// The limit.
    pub limit: Limit,
    /// The cost (0 peeks).
    pub cost: u64,
}

impl<'a> Check<'a> {
    /// A check of `cost` on `key` under `limit`.
    pub fn new(key: &'a str, limit: Limit, cost: u64) -> Check<'a> {
        Check { key, limit, cost }
    }
}

/// The verdict alone, for hot paths (`admit` on the memory store and the direct limiter):
/// admitted, or denied with the wait until the same request would be admitted. Like
/// governor's `check`, it carries one number and computes nothing more unless asked; a full
/// [`Decision`] also says what remains and when the key is full again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub struct Admission {
    /// 0 when admitted; otherwise the wait, in nanoseconds (at least 1).
    wait_ns: Nanos,
}

impl Admission {
    /// Admitted (and the cost consumed).
    pub const ADMITTED: Admission = Admission { wait_ns: 0 };

    /// Denied (nothing consumed); the same request would be admitted after `wait_ns`
    /// nanoseconds if nothing else happened (a zero wait is taken as the shortest, 1 ns).
    #[inline(always)]
    pub fn denied(wait_ns: Nanos) -> Admission {
        Admission {
            wait_ns: wait_ns.max(1),
        }
    }

    /// Whether the request was admitted.
    #[inline(always)]
    pub fn is_admitted(self) -> bool {
        self.wait_ns == 0
    }

    /// Zero when admitted; otherwise the wait after which the same request would be admitted
    /// if nothing else happened.
    pub fn retry_after(self) -> Duration {
        Duration::from_nanos(self.wait_ns)
    }

    /// [`retry_after`](Self::retry_after) in whole milliseconds rounded up: a [`Decision`]'s
    /// `retry_after_ms` for the same request.
    pub fn retry_after_ms(self) -> u64 {
        ceil_ms(self.wait_ns)
    }
}

impl From<&Decision> for Admission {
    /// The verdict of a full decision (its wait known to the millisecond).
    fn from(decision: &Decision) -> Admission {
        if decision.allowed {
            Admission::ADMITTED
        } else {
            Admission::denied(decision.retry_after_ms.saturating_mul(1_000_000))
        }
    }
}

/// The answer to a batch of checks decided all-or-nothing.
///
/// When `allowed` is true every check's cost was consumed and `decisions` are the ordinary
/// decisions. When it is false nothing was consumed: each decision's `allowed` says whether
/// that limit alone had room (counting the batch's earlier checks on the same key), and its
/// `remaining` and `reset_after_ms` describe the key as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiDecision {
    /// Whether every check was admitted.
    pub allowed: bool,
    /// 0 when allowed; otherwise the longest `retry_after_ms` of the denied checks.
    pub retry_after_ms: u64,
    /// One decision per check, in order.
    pub decisions: Vec<Decision>,
}
