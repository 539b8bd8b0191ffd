//! The controller's errors: a bad configuration, and a request that cannot be granted.

use std::time::Duration;

use crate::types::{OperationCategory, Priority, ThrottleState};

/// A configuration the builder refuses. Each variant names the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The capacity is 0.
    #[error("the capacity must be at least 1 weight per window, got 0")]
    ZeroCapacity,
    /// The category shares do not add up to 100%.
    #[error(
        "the category shares must sum to 100%: trading {trading}% + scanning {scanning}% + \
         administrative {administrative}% = {sum}%"
    )]
    SharesNotHundred {
        /// Trading's share, in percent.
        trading: u32,
        /// Scanning's share, in percent.
        scanning: u32,
        /// Administrative's share, in percent.
        administrative: u32,
        /// Their sum.
        sum: u64,
    },
    /// The Critical reserve leaves nothing for the other priorities.
    #[error("the Critical reserve must be under 100% of the capacity, got {percent}%")]
    ReserveTooLarge {
        /// The reserve asked for, in percent.
        percent: u32,
    },
    /// A tier does not start above the tier below it.
    #[error(
        "throttle tiers out of order: {tier} starts at {enter_at}%, which must be above \
         {below} ({below_enter_at}%) and at most 100%"
    )]
    TiersOutOfOrder {
        /// The tier whose threshold is wrong.
        tier: ThrottleState,
        /// Its threshold, in percent of the capacity.
        enter_at: u32,
        /// The tier below it.
        below: ThrottleState,
        /// That tier's threshold.
        below_enter_at: u32,
    },
    /// A tier's own settings are inconsistent.
    #[error("{tier} tier: {reason}")]
    InvalidTier {
        /// The tier.
        tier: ThrottleState,
        /// What is wrong, with the values.
        reason: String,
    },
    /// Any other setting out of its range.
    #[error("{field} is {value}: expected {expected}")]
    InvalidValue {
        /// The setting.
        field: &'static str,
        /// The value as given.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
}

/// Why [`request_permit`](crate::UnifiedRateController::request_permit) gave no permit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// A weight of 0: a request that costs nothing needs no permit.
    #[error("the weight must be at least 1, got 0")]
    ZeroWeight,
    /// A weight that could never be granted to this priority and category, however long it
    /// waited. Refused at once instead of queued.
    #[error(
        "weight {weight} can never be granted to a {priority} {category} request: at most \
         {max} ({limited_by})"
    )]
    WeightTooLarge {
        /// The weight asked for.
        weight: u32,
        /// The most such a request can ever be granted.
        max: u64,
        /// The request's priority.
        priority: Priority,
        /// The request's category.
        category: OperationCategory,
        /// What sets the maximum.
        limited_by: &'static str,
    },
    /// The request waited its priority's whole SLA without being granted. Counted in
    /// [`ControllerStats::sla_violations`](crate::ControllerStats::sla_violations).
    #[error(
        "SLA timeout: {priority} {category} request {operation:?} was not granted within its \
         {sla:?} SLA (waited {waited:?})"
    )]
    SlaTimeout {
        /// The request's priority.
        priority: Priority,
        /// The request's category.
        category: OperationCategory,
        /// The operation's name, as given.
        operation: String,
        /// The priority's SLA.
        sla: Duration,
        /// How long it waited.
        waited: Duration,
    },
    /// The shared budget's store could not decide (see
    /// [`tollgate_core::Error::is_transient`]). Nothing was granted.
    #[error("the shared budget's store failed: {0}")]
    Store(#[from] tollgate_core::Error),
    /// The controller's monitoring task stopped (its runtime shut down) while the request
    /// was being decided.
    #[error("the controller stopped before it could answer the request")]
    Cancelled,
}

impl ControllerError {
    /// Whether this is an [`SlaTimeout`](ControllerError::SlaTimeout): the same request may
    /// succeed later.
    pub fn is_sla_timeout(&self) -> bool {
        matches!(self, ControllerError::SlaTimeout { .. })
    }
}
