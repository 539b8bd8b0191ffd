//! What [`CircuitBreaker::try_acquire`] answers, and what a call's outcome changes.

use std::fmt;
use std::time::Duration;

use tollgate_core::Clock;

use super::CircuitBreaker;

/// A change of state caused by the outcome of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The breaker opened (from closed, or back from half-open).
    Opened,
    /// The breaker closed after enough successful probes.
    Closed,
}

/// A call the breaker refused: the store is not to be touched now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// How long until the breaker lets a probe through (zero while half-open: the probes in
    /// flight will answer soon).
    pub retry_after: Duration,
}

/// Leave to call the store once, from [`CircuitBreaker::try_acquire`]. Report the outcome
/// with [`success`](Permit::success), [`failure`](Permit::failure) or
/// [`release`](Permit::release); an outcome reported after the breaker has changed state
/// since the permit was given counts for nothing.
#[must_use = "report how the call went"]
#[derive(Debug)]
pub struct Permit<'a, C: Clock> {
    breaker: &'a CircuitBreaker<C>,
    epoch: u64,
    probe: bool,
    done: bool,
}

impl<'a, C: Clock> Permit<'a, C> {
    pub(super) fn new(breaker: &'a CircuitBreaker<C>, epoch: u64, probe: bool) -> Self {
        Permit {
            breaker,
            epoch,
            probe,
            done: false,
        }
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The store answered: resets the failure count, or counts a successful probe.
    pub fn success(mut self) -> Option<Transition> {
        self.done = true;
        self.breaker.on_success(self.epoch, self.probe)
    }

    /// The store failed (transiently, or timed out): counts towards opening, or reopens a
    /// half-open breaker. `cause` is logged if the breaker opens.
    pub fn failure(mut self, cause: &dyn fmt::Display) -> Option<Transition> {
        self.done = true;
        self.breaker.on_failure(self.epoch, self.probe, cause)
    }

    /// The call says nothing about the store's health (bad input, a permanent error):
    /// frees the probe slot and counts nothing.
    pub fn release(self) {
        // Drop does it.
    }
}

impl<C: Clock> Drop for Permit<'_, C> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.on_release(self.epoch, self.probe);
        }
    }
}
