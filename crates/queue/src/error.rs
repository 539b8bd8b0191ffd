//! Everything a queue operation can refuse, with a stable code for JSON and exit codes.

use tollgate_core::Error as CoreError;

/// Why a queue operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// No queue has this name (or it expired).
    #[error("unknown queue {name:?}")]
    UnknownQueue {
        /// The name asked for.
        name: String,
    },
    /// A queue of this name exists already.
    #[error("queue {name:?} exists already")]
    QueueExists {
        /// The name asked for.
        name: String,
    },
    /// A queue name that cannot be used.
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidName {
        /// The name as given (cut at 160 characters).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A queue setting out of range.
    #[error("invalid {field}: {reason}")]
    InvalidSpec {
        /// The setting.
        field: &'static str,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A duration that does not parse.
    #[error(
        "invalid duration {input:?}: expected a whole number and a unit (ms, s, min, h, d), \
         for example 30s"
    )]
    InvalidDuration {
        /// The text as given.
        input: String,
    },
    /// A task payload that is not JSON or is too large.
    #[error("invalid payload: {reason}")]
    InvalidPayload {
        /// What is wrong with it.
        reason: String,
    },
    /// The lease is no longer the worker's: it expired and the task went to another worker
    /// (or back to the queue), or the task was acknowledged already.
    #[error("lease lost on task {task} of queue {queue:?} (attempt {attempt})")]
    LeaseLost {
        /// The queue.
        queue: String,
        /// The task.
        task: String,
        /// The attempt the worker held.
        attempt: u32,
    },
    /// A rate, burst or store error from tollgate's core.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl QueueError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            QueueError::UnknownQueue { .. } => "unknown_queue",
            QueueError::QueueExists { .. } => "queue_exists",
            QueueError::InvalidName { .. } => "invalid_queue_name",
            QueueError::InvalidSpec { .. } => "invalid_queue_spec",
            QueueError::InvalidDuration { .. } => "invalid_duration",
            QueueError::InvalidPayload { .. } => "invalid_payload",
            QueueError::LeaseLost { .. } => "lease_lost",
            QueueError::Core(e) => e.code(),
        }
    }

    /// Whether trying again later may succeed (a store that is down, not bad input).
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Core(e) if e.is_transient())
    }

    /// Builds the error for a store reply the scripts never give.
    pub(crate) fn bad_reply(detail: impl std::fmt::Display) -> QueueError {
        QueueError::Core(CoreError::Store {
            message: format!("the queue store sent an unexpected reply: {detail}"),
            transient: false,
        })
    }
}
