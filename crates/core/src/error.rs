//! tollgate's errors. A denial is not an error: it is a [`Decision`](crate::Decision) with
//! `allowed == false`. Errors are bad input, or a store that cannot answer.

/// Everything that can go wrong deciding. Each variant has a stable [`code`](Error::code)
/// that the HTTP API and the CLI report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A rate that does not follow the grammar.
    #[error("invalid rate {input:?}: {reason}")]
    InvalidRate {
        /// The text as given.
        input: String,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// An algorithm name tollgate does not know.
    #[error(
        "unknown algorithm {input:?}: expected one of gcra, strict, sliding-window, fixed-window"
    )]
    UnknownAlgorithm {
        /// The name as given.
        input: String,
    },
    /// A burst that cannot apply to the limit.
    #[error("invalid burst {burst}: {reason}")]
    InvalidBurst {
        /// The burst as given.
        burst: u64,
        /// Why it cannot apply.
        reason: String,
    },
    /// A cost larger than the limit could ever admit at once.
    #[error("cost {cost} exceeds the limit's capacity {capacity} for key {key:?}")]
    CostExceedsLimit {
        /// The key the request was for.
        key: String,
        /// The cost asked for.
        cost: u64,
        /// The most the limit admits at once.
        capacity: u64,
    },
    /// A key that is empty or too long.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What is wrong with it.
        reason: String,
    },
    /// The store tracks as many keys as it is allowed to and cannot take a new one.
    #[error("the store is full: it tracks its maximum of {max_keys} keys and none is idle")]
    StoreFull {
        /// The configured cap.
        max_keys: usize,
    },
    /// The store could not answer (a network failure, a timeout, an unexpected reply).
    #[error("store error: {message}")]
    Store {
        /// What happened.
        message: String,
        /// Whether trying again later may succeed.
        transient: bool,
    },
}

impl Error {
    /// A stable, machine-readable code: `invalid_rate`, `unknown_algorithm`, `invalid_burst`,
    /// `cost_exceeds_limit`, `invalid_key`, `store_full` or `store_unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRate { .. } => "invalid_rate",
            Error::UnknownAlgorithm { .. } => "unknown_algorithm",
            Error::InvalidBurst { .. } => "invalid_burst",
            Error::CostExceedsLimit { .. } => "cost_exceeds_limit",
            Error::InvalidKey { .. } => "invalid_key",
            Error::StoreFull { .. } => "store_full",
            Error::Store { .. } => "store_unavailable",
        }
    }

    /// Whether the same call may succeed later without changing its input: true for store
    /// failures that are transient and for a full store, false for bad input.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store { transient, .. } => *transient,
            Error::StoreFull { .. } => true,
            _ => false,
        }
    }
}

/// A cost larger than a limit can ever admit at once, from a limiter without keys
/// (`DirectLimiter::admit`): the one way its verdict can fail, small and `Copy` so that a hot
/// loop pays nothing for the error it almost never gets. As an [`Error`] (`?` converts it) it
/// is `cost_exceeds_limit` for the key `(direct)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cost {cost} exceeds the limit's capacity {capacity}")]
pub struct CapacityExceeded {
    /// The cost asked for.
    pub cost: u64,
    /// The most the limit admits at once.
    pub capacity: u64,
}

impl From<CapacityExceeded> for Error {
    fn from(e: CapacityExceeded) -> Error {
        Error::CostExceedsLimit {
            key: "(direct)".to_string(),
            cost: e.cost,
            capacity: e.capacity,
        }
    }
}
