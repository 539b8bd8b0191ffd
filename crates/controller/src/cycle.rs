//! One monitoring cycle: re-evaluate the tier, then serve the queues.
//!
//! Each priority, highest first, gets up to the tier's `max_per_cycle` grants, so a long
//! queue of urgent requests cannot starve the others while capacity remains. Within a
//! priority, requests are served in arrival order; one blocked only by its category's share
//! does not hold back the requests of other categories behind it (they do not compete for
//! that share), but one blocked by the total capacity ends the cycle: letting a smaller or
//! less urgent request take what frees up would keep the blocked one waiting forever.
//! A request whose SLA has passed is answered with its timeout instead of being granted.

use std::sync::Arc;

use tokio::time::Instant;

use crate::controller::Inner;
use crate::error::ControllerError;
use crate::events::Events;
use crate::queue::Waiter;
use crate::shared::{SharedVerdict, SharedWindow};
use crate::state::{State, Verdict};
use crate::types::Priority;

impl Inner {
    pub(crate) async fn run_cycle(self: &Arc<Self>) -> usize {
        match &self.shared {
            None => self.cycle_local(Instant::now()),
            Some(shared) => self.cycle_shared(shared).await,
        }
    }

    /// In process, the whole cycle runs under the lock: it never waits.
    fn cycle_local(self: &Arc<Self>, now: Instant) -> usize {
        let config = &self.config;
        let mut st = self.state.lock();
        let mut events = st.observe(config, now);
        let per_cycle = config.tier(st.tier).max_per_cycle as usize;
        let mut granted = 0;
        'serve: for priority in Priority::ALL {
            let (mut served, mut at, mut blocked) = (0, 0, [false; 3]);
            while served < per_cycle {
                let Some(w) = st.queues.get(priority, at) else {
                    break;
                };
                let (closed, late) = (w.reply.is_closed(), now >= w.deadline);
                let (weight, category) = (w.weight, w.category);
                if closed || late {
                    if let Some(w) = st.queues.remove_at(priority, at)
                        && late
                        && !closed
                    {
                        events.violations.push(st.expire(config, priority, w, now));
                    }
                    continue;
                }
                if blocked[category.index()] {
                    at += 1;
                    continue;
                }
                match st.decide(config, weight, priority, category) {
                    Verdict::BlockedTotal => break 'serve,
                    Verdict::BlockedCategory => {
                        blocked[category.index()] = true;
                        at += 1;
                    }
                    Verdict::Granted => {
                        if let Some(w) = st.queues.remove_at(priority, at)
                            && st.grant_waiter(self, now, priority, w)
                        {
                            served += 1;
                            granted += 1;
                        }
                    }
                }
            }
        }
        events.merge(st.evaluate(config));
        drop(st);
        events.emit();
        granted
    }

    /// With a shared store, each decision is a round trip: the waiter is taken out of its
    /// queue (and counted in flight, so new requests do not overtake it) while the store
    /// answers, then granted or put back in its place.
    async fn cycle_shared(self: &Arc<Self>, shared: &SharedWindow) -> usize {
        let config = &self.config;
        let usage = shared.peek().await;
        let per_cycle = {
            let mut st = self.state.lock();
            match usage {
                Ok((total, by_category)) => st.set_shared_usage(total, by_category),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the shared usage; using the last known");
                }
            }
            let events = st.observe(config, Instant::now());
            let per_cycle = config.tier(st.tier).max_per_cycle as usize;
            drop(st);
            events.emit();
            per_cycle
        };
        let mut granted = 0;
        'serve: for priority in Priority::ALL {
            let (mut served, mut last_id, mut blocked) = (0, 0, [false; 3]);
            while served < per_cycle {
                let Some(w) = self.take_next(priority, last_id, &blocked) else {
                    break;
                };
                last_id = w.id;
                let (weight, category) = (w.weight, w.category);
                let flight = InFlight {
                    inner: self,
                    priority,
                    waiter: Some(w),
                };
                let verdict = shared.admit(weight, priority, category).await;
                let now = Instant::now();
                let mut st = self.state.lock();
                let Some(w) = flight.land(&mut st) else {
                    continue;
                };
                let mut events = Events::default();
                let mut stop = false;
                match verdict {
                    Ok(SharedVerdict::Granted { total, category }) => {
                        st.set_shared_grant(total, w.category, category);
                        events = st.evaluate(config);
                        if st.grant_waiter(self, now, priority, w) {
                            served += 1;
                            granted += 1;
                        }
                    }
                    Ok(SharedVerdict::Blocked { total }) => {
                        blocked[w.category.index()] = true;
                        stop = total;
                        if now >= w.deadline {
                            events.violations.push(st.expire(config, priority, w, now));
                        } else {
                            st.queues.reinsert(priority, w);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the shared budget's store failed");
                        let _ = w.reply.send(Err(ControllerError::Store(e)));
                        stop = true;
                    }
                }
                drop(st);
                events.emit();
                if stop {
                    break 'serve;
                }
            }
        }
        granted
    }

    /// Takes the next waiter of `priority` that arrived after `last_id` and whose category
    /// is not blocked, answering on the way those whose SLA has passed.
    fn take_next(&self, priority: Priority, last_id: u64, blocked: &[bool; 3]) -> Option<Waiter> {
        let now = Instant::now();
        let mut st = self.state.lock();
        let mut events = Events::default();
        let mut at = st.queues.position_after(priority, last_id);
        let taken = loop {
            let Some(w) = st.queues.get(priority, at) else {
                break None;
            };
            let (closed, late, category) = (w.reply.is_closed(), now >= w.deadline, w.category);
            if closed || late {
                if let Some(w) = st.queues.remove_at(priority, at)
                    && late
                    && !closed
                {
                    events
                        .violations
                        .push(st.expire(&self.config, priority, w, now));
                }
                continue;
            }
            if blocked[category.index()] {
                at += 1;
                continue;
            }
            break st.queues.remove_at(priority, at);
        };
        if taken.is_some() {
            st.in_flight[priority.index()] += 1;
        }
        drop(st);
        events.emit();
        taken
    }
}

/// A waiter out of its queue while the shared store decides on it. If the cycle's future is
/// dropped meanwhile, the waiter goes back to its queue instead of being lost.
struct InFlight<'a> {
    inner: &'a Inner,
    priority: Priority,
    waiter: Option<Waiter>,
}

impl InFlight<'_> {
    /// The store has answered: the waiter is no longer in flight.
    fn land(mut self, st: &mut State) -> Option<Waiter> {
        st.in_flight[self.priority.index()] -= 1;
        self.waiter.take()
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.waiter.take() {
            let mut st = self.inner.state.lock();
            st.in_flight[self.priority.index()] -= 1;
            st.queues.reinsert(self.priority, w);
        }
    }
}
