//! The waiting requests: one FIFO queue per priority.

use std::collections::VecDeque;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::ControllerError;
use crate::permit::Permit;
use crate::types::{OperationCategory, Priority};

/// Where a waiting request's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<Permit, ControllerError>>;

/// A request waiting for capacity.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// Unique and increasing in arrival order, so each queue stays sorted by it.
    pub(crate) id: u64,
    pub(crate) weight: u32,
    pub(crate) category: OperationCategory,
    pub(crate) operation: String,
    pub(crate) enqueued: Instant,
    pub(crate) deadline: Instant,
    pub(crate) reply: Reply,
}

/// One FIFO queue per priority, each sorted by arrival (waiter id).
#[derive(Debug, Default)]
pub(crate) struct Queues {
    queues: [VecDeque<Waiter>; 4],
}

impl Queues {
    pub(crate) fn push(&mut self, priority: Priority, waiter: Waiter) {
        self.reinsert(priority, waiter);
    }

    /// Puts a waiter back in its place (by arrival), after a shared-store decision that
    /// took it out of the queue while the store answered.
    pub(crate) fn reinsert(&mut self, priority: Priority, waiter: Waiter) {
        let queue = &mut self.queues[priority.index()];
        let at = queue.partition_point(|w| w.id < waiter.id);
        queue.insert(at, waiter);
    }

    /// Takes a waiter out of its queue, if it is still there.
    pub(crate) fn remove(&mut self, priority: Priority, id: u64) -> Option<Waiter> {
        let queue = &mut self.queues[priority.index()];
        let at = queue.binary_search_by_key(&id, |w| w.id).ok()?;
        queue.remove(at)
    }

    pub(crate) fn get(&self, priority: Priority, at: usize) -> Option<&Waiter> {
        self.queues[priority.index()].get(at)
    }

    pub(crate) fn remove_at(&mut self, priority: Priority, at: usize) -> Option<Waiter> {
        self.queues[priority.index()].remove(at)
    }

    /// The position of the first waiter that arrived after `id`.
    pub(crate) fn position_after(&self, priority: Priority, id: u64) -> usize {
        self.queues[priority.index()].partition_point(|w| w.id <= id)
    }

    pub(crate) fn depth(&self, priority: Priority) -> usize {
        self.queues[priority.index()].len()
    }

    /// Whether nothing waits at `priority` or above: only then may a new request skip the
    /// queues, so it can neither jump its own queue nor take capacity a more urgent waiting
    /// request is owed.
    pub(crate) fn clear_at_or_above(&self, priority: Priority) -> bool {
        self.queues[..=priority.index()]
            .iter()
            .all(VecDeque::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(id: u64) -> (Waiter, oneshot::Receiver<Result<Permit, ControllerError>>) {
        let (reply, rx) = oneshot::channel();
        let now = Instant::now();
        let w = Waiter {
            id,
            weight: 1,
            category: OperationCategory::Trading,
            operation: format!("op{id}"),
            enqueued: now,
            deadline: now,
            reply,
        };
        (w, rx)
    }

    #[test]
    fn fifo_by_arrival_and_removal_by_id() {
        let mut q = Queues::default();
        let mut keep = Vec::new();
        for id in [1, 2, 4] {
            let (w, rx) = waiter(id);
            keep.push(rx);
            q.push(Priority::Medium, w);
        }
        let (w3, rx) = waiter(3);
        keep.push(rx);
        q.reinsert(Priority::Medium, w3);
        let ids: Vec<u64> = (0..4)
            .filter_map(|i| q.get(Priority::Medium, i).map(|w| w.id))
            .collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        assert!(q.clear_at_or_above(Priority::High));
        assert!(!q.clear_at_or_above(Priority::Medium));
        assert!(!q.clear_at_or_above(Priority::Low));
        assert_eq!(q.remove(Priority::Medium, 2).map(|w| w.id), Some(2));
        assert!(q.remove(Priority::Medium, 2).is_none());
        assert_eq!(q.position_after(Priority::Medium, 1), 1);
        assert_eq!(q.depth(Priority::Medium), 3);
    }
}
