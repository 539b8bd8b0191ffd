//! What a layer was configured with, and how it plans the check for one request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use http::request::Parts;
use tollgate_core::{DynStore, Limit};

use crate::key::{KeySource, MissingKey, Trust};
use crate::response::Problem;

/// A closure that picks a request's policy.
pub(crate) type LimitFn = Arc<dyn Fn(&Parts) -> Option<(Cow<'static, str>, Limit)> + Send + Sync>;
/// A closure that prices a request.
pub(crate) type CostFn = Arc<dyn Fn(&Parts) -> u64 + Send + Sync>;

/// What the middleware does when the store cannot decide (a network failure, a full store).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnStoreError {
    /// Answer `503 Service Unavailable` (problem+json) without calling the service: the
    /// limit holds even while the store is down, at the price of availability. The default,
    /// because a limit that vanishes whenever Redis hiccups protects nothing.
    #[default]
    FailClosed,
    /// Call the service without limiting the request (and without RateLimit headers): the
    /// app stays up while the store is down, unprotected. The error is still logged.
    FailOpen,
}

/// A named limit.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) name: Cow<'static, str>,
    pub(crate) limit: Limit,
}

/// Everything a layer knows; shared by every service it makes.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) store: Arc<dyn DynStore>,
    pub(crate) default: Policy,
    pub(crate) routes: HashMap<String, Policy>,
    pub(crate) limit_by: Option<LimitFn>,
    pub(crate) key: KeySource,
    pub(crate) trust: Trust,
    pub(crate) cost_by: Option<CostFn>,
    pub(crate) on_missing_key: MissingKey,
    pub(crate) on_store_error: OnStoreError,
    pub(crate) prefix: String,
}

/// What to do with one request before asking the store.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Check `key` under `policy` at `cost`.
    Check {
        key: String,
        policy: Policy,
        cost: u64,
    },
    /// Call the service unlimited.
    Pass,
    /// Answer without calling the service.
    Reject(Problem),
}

impl Config {
    pub(crate) fn new(store: Arc<dyn DynStore>, limit: Limit) -> Config {
        Config {
            store,
            default: Policy {
                name: Cow::Borrowed("default"),
                limit,
            },
            routes: HashMap::new(),
            limit_by: None,
            key: KeySource::ClientIp,
            trust: Trust::default(),
            cost_by: None,
            on_missing_key: MissingKey::default(),
            on_store_error: OnStoreError::default(),
            prefix: "mw".to_string(),
        }
    }

    /// The closure's policy, else the route's, else the default.
    fn policy(&self, parts: &Parts) -> Policy {
        if let Some((name, limit)) = self.limit_by.as_ref().and_then(|f| f(parts)) {
            return Policy { name, limit };
        }
        if !self.routes.is_empty() {
            // The route pattern axum matched (`/users/{id}`) or the literal path.
            #[cfg(feature = "axum")]
            if let Some(policy) = parts
                .extensions
                .get::<axum::extract::MatchedPath>()
                .and_then(|m| self.routes.get(m.as_str()))
            {
                return policy.clone();
            }
            if let Some(policy) = self.routes.get(parts.uri.path()) {
                return policy.clone();
            }
        }
        self.default.clone()
    }

    pub(crate) fn plan(&self, parts: &Parts) -> Plan {
        let key = match self.key.extract(parts, self.trust) {
            Ok(key) => key,
            Err(missing) => match &self.on_missing_key {
                MissingKey::Reject => return Plan::Reject(Problem::MissingKey(missing)),
                MissingKey::Allow => return Plan::Pass,
                MissingKey::Shared(key) => key.clone(),
            },
        };
        let policy = self.policy(parts);
        let cost = self.cost_by.as_ref().map_or(1, |f| f(parts));
        Plan::Check {
            key: store_key(&self.prefix, &policy.name, &key),
            policy,
            cost,
        }
    }
}

/// `{prefix}:{policy}:{key}`, with `%` and `:` escaped in the policy name so that no policy
/// name and client-chosen key can together spell another policy's key.
fn store_key(prefix: &str, policy: &str, key: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + policy.len() + key.len() + 2);
    out.push_str(prefix);
    out.push(':');
    for c in policy.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
    out.push(':');
    out.push_str(key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_cannot_collide_across_policies() {
        assert_eq!(store_key("mw", "basic", "1.2.3.4"), "mw:basic:1.2.3.4");
        assert_ne!(store_key("mw", "a:b", "c"), store_key("mw", "a", "b:c"));
        assert_eq!(store_key("mw", "a:%", "k"), "mw:a%3A%25:k");
    }
}
