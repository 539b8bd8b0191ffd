//! The one trait every store implements: the in-memory store, Redis, and anything a service
//! or a queue is built on.

use std::future::Future;
use std::pin::Pin;

use crate::decision::{Check, Decision, MultiDecision};
use crate::error::Error;
use crate::limit::Limit;

/// Somewhere limits are kept and decided atomically.
///
/// A store keeps one state per (algorithm family, key): `gcra` and `strict` share a bucket,
/// the window algorithms keep their own. Implementations validate keys and costs and must
/// make each call atomic with respect to every other call on the same keys, across every
/// process that shares the store.
pub trait Store: Send + Sync + 'static {
    /// Decides one request of `cost` on `key` under `limit`; cost 0 peeks.
    fn check(
        &self,
        key: &str,
        limit: &Limit,
        cost: u64,
    ) -> impl Future<Output = Result<Decision, Error>> + Send;

    /// Decides a batch all-or-nothing: if any check would be denied, none consumes.
    fn check_all(
        &self,
        checks: &[Check<'_>],
    ) -> impl Future<Output = Result<MultiDecision, Error>> + Send;

    /// Forgets everything about `key`, under every algorithm: it is back to full capacity.
    fn reset(&self, key: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Answers `Ok` when the store can decide (for readiness probes).
    fn ping(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// How many keys the store tracks, where it can tell cheaply.
    fn tracked_keys(&self) -> Option<u64> {
        None
    }
}

/// A boxed future, for [`DynStore`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Store`] made object-safe, for choosing a store at run time (`Arc<dyn DynStore>`). Every
/// `Store` is a `DynStore`.
pub trait DynStore: Send + Sync + 'static {
    /// See [`Store::check`].
    fn check<'a>(
        &'a self,
        key: &'a str,
        limit: &'a Limit,
        cost: u64,
    ) -> BoxFuture<'a, Result<Decision, Error>>;
    /// See [`Store::check_all`].
    fn check_all<'a>(
        &'a self,
        checks: &'a [Check<'a>],
    ) -> BoxFuture<'a, Result<MultiDecision, Error>>;
    /// See [`Store::reset`].
    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), Error>>;
    /// See [`Store::ping`].
    fn ping(&self) -> BoxFuture<'_, Result<(), Error>>;
    /// See [`Store::tracked_keys`].
    fn tracked_keys(&self) -> Option<u64>;
}

impl<S: Store> DynStore for S {
    fn check<'a>(
        &'a self,
        key: &'a str,
        limit: &'a Limit,
        cost: u64,
    ) -> BoxFuture<'a, Result<Decision, Error>> {
        Box::pin(Store::check(self, key, limit, cost))
    }
    fn check_all<'a>(
        &'a self,
        checks: &'a [Check<'a>],
    ) -> BoxFuture<'a, Result<MultiDecision, Error>> {
        Box::pin(Store::check_all(self, checks))
    }
    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(Store::reset(self, key))
    }
    fn ping(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(Store::ping(self))
    }
    fn tracked_keys(&self) -> Option<u64> {
        Store::tracked_keys(self)
    }
}
