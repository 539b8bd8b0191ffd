//! A granted request: when to call, and where to report how long the call took.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::controller::Inner;
use crate::types::{OperationCategory, Priority};

/// What a grant is, apart from who it goes to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grant {
    pub(crate) id: u64,
    pub(crate) weight: u32,
    pub(crate) priority: Priority,
    pub(crate) category: OperationCategory,
    pub(crate) delay: Duration,
    pub(crate) granted_at: Instant,
    pub(crate) queue_time: Duration,
}

/// Permission to make one API call of the granted weight.
///
/// The weight is counted in the window from the grant until one window after
/// [`call_at`](Permit::call_at); the call must not start before `call_at`, so sleep
/// [`delay`](Permit::delay) first. Dropping a permit does not give the weight back: the
/// controller cannot know whether the call was made.
#[must_use = "a permit says when to call: sleep its delay(), make the call, then complete() it"]
pub struct Permit {
    inner: Arc<Inner>,
    grant: Grant,
}

impl Permit {
    pub(crate) fn new(inner: Arc<Inner>, grant: Grant) -> Permit {
        Permit { inner, grant }
    }

    /// How long to wait before calling: the throttle tier's delay, drawn from its range when
    /// the permit was granted.
    pub fn delay(&self) -> Duration {
        self.grant.delay
    }

    /// The earliest instant the call may start: the grant time plus [`delay`](Self::delay).
    pub fn call_at(&self) -> Instant {
        self.grant.granted_at + self.grant.delay
    }

    /// When the permit was granted.
    pub fn granted_at(&self) -> Instant {
        self.grant.granted_at
    }

    /// How long the request waited for its permit.
    pub fn queue_time(&self) -> Duration {
        self.grant.queue_time
    }

    /// The granted weight.
    pub fn weight(&self) -> u32 {
        self.grant.weight
    }

    /// The request's priority.
    pub fn priority(&self) -> Priority {
        self.grant.priority
    }

    /// The request's category.
    pub fn category(&self) -> OperationCategory {
        self.grant.category
    }

    /// Reports that the call is done and took `execution_time_ms`; the request's record
    /// keeps it (if the record is still in the window).
    pub async fn complete(self, execution_time_ms: u64) {
        self.inner
            .state
            .lock()
            .complete(self.grant.id, execution_time_ms);
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("weight", &self.grant.weight)
            .field("priority", &self.grant.priority)
            .field("category", &self.grant.category)
            .field("delay", &self.grant.delay)
            .field("queue_time", &self.grant.queue_time)
            .finish_non_exhaustive()
    }
}
