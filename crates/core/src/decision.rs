//! What a check answers.

use serde::{Deserialize, Serialize};

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
