//! One circuit breaker per Redis Cluster hash slot, so that a master that is down fails fast
//! for the keys of its own slots only, while the other masters' keys go on being decided.

use std::sync::OnceLock;

use tollgate_core::Clock;

use super::breaker::CircuitBreaker;
use super::config::{BreakerConfig, BreakerState};
use crate::keys::{SLOTS, slot};

/// A breaker per slot, each made on its slot's first call (a slot never called costs one
/// pointer).
#[derive(Debug)]
pub(crate) struct SlotBreakers<C: Clock> {
    config: BreakerConfig,
    clock: C,
    slots: Box<[OnceLock<Box<CircuitBreaker<C>>>]>,
}

impl<C: Clock + Clone> SlotBreakers<C> {
    pub(crate) fn new(config: BreakerConfig, clock: C) -> SlotBreakers<C> {
        SlotBreakers {
            config,
            clock,
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The breaker of the slot that holds `key`'s state.
    pub(crate) fn of(&self, key: &str) -> &CircuitBreaker<C> {
        let slot = slot(key);
        self.slots[usize::from(slot)].get_or_init(|| {
            Box::new(CircuitBreaker::for_slot(
                self.config,
                self.clock.clone(),
                slot,
            ))
        })
    }

    fn made(&self) -> impl Iterator<Item = &CircuitBreaker<C>> {
        self.slots.iter().filter_map(|b| b.get().map(|b| &**b))
    }

    /// How many slots' breakers are not closed now.
    pub(crate) fn open(&self) -> u64 {
        self.made()
            .filter(|b| b.state() != BreakerState::Closed)
            .count() as u64
    }

    /// Times any of them opened.
    pub(crate) fn opened_total(&self) -> u64 {
        self.made().map(CircuitBreaker::opened_total).sum()
    }

    /// Calls any of them refused.
    pub(crate) fn rejected_total(&self) -> u64 {
        self.made().map(CircuitBreaker::rejected_total).sum()
    }
}
