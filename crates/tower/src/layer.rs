//! [`RateLimitLayer`]: the builder, and the [`Layer`] that wraps services in [`RateLimit`].

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;
use tollgate_core::{DynStore, Limit};
use tower::Layer;

use crate::config::{Config, OnStoreError, Policy};
use crate::key::{KeySource, MissingKey};
use crate::service::RateLimit;

/// Rate-limits every request of the services it wraps, by deciding in a tollgate store.
///
/// Each request gets a **key** (by default the client's IP address), a **policy** (a name
/// and a [`Limit`]: the default, or one chosen by route or closure) and a **cost** (default
/// 1). The store decides on the key `mw:{policy}:{key}`: the `mw:` prefix keeps the
/// middleware's keys apart from anything else kept in the same store (the tollgate server,
/// another app sharing Redis), and the policy name keeps one key's buckets under different
/// policies apart. Two layers that use the same policy name and store share buckets, which
/// is how two routers share one limit; give policies different names otherwise.
///
/// - Allowed: the service is called and its response gets `RateLimit-Policy` and
///   `RateLimit` headers.
/// - Denied: `429 Too Many Requests` with `Retry-After`, the RateLimit headers and an RFC
///   9457 `application/problem+json` body (with `retry_after_ms`); the service is not
///   called.
/// - No key: see [`MissingKey`] (default: 400, or 500 for an unknown client address).
/// - Store error: see [`OnStoreError`] (default: 503). A key over 1024 bytes or a cost over
///   the policy's capacity is the request's fault: 400.
///
/// With axum, `Router::layer` also limits the fallback (a 404 costs like any request);
/// `Router::route_layer` limits only the routes. Cloning is cheap (the configuration is
/// shared), and so is wrapping many routes: axum wraps each route separately, and they all
/// share the store's buckets.
#[derive(Clone)]
pub struct RateLimitLayer {
    config: Arc<Config>,
}

impl RateLimitLayer {
    /// Limits requests under `limit` (policy name `"default"`), keyed by client IP, in
    /// `store`: a `tollgate_memory::MemoryStore` in one process, a shared store across many.
    pub fn new(store: Arc<dyn DynStore>, limit: Limit) -> RateLimitLayer {
        RateLimitLayer {
            config: Arc::new(Config::new(store, limit)),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> RateLimitLayer {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Names the default policy (in the headers, the 429 body and the store key).
    pub fn policy_name(self, name: impl Into<Cow<'static, str>>) -> RateLimitLayer {
        let name = name.into();
        self.edit(|c| c.default.name = name)
    }

    /// Keys requests by the client's IP address (the default): axum's
    /// `ConnectInfo<SocketAddr>`, so serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`, or a bare `SocketAddr`
    /// request extension. The port is ignored, and IPv4-mapped IPv6 addresses count as IPv4.
    pub fn key_by_client_ip(self) -> RateLimitLayer {
        self.edit(|c| c.key = KeySource::ClientIp)
    }

    /// With [`key_by_client_ip`](Self::key_by_client_ip), takes the client from the first
    /// address of `X-Forwarded-For` when it has one (else the peer address).
    ///
    /// Off by default because any client can send this header: enable it only behind a
    /// proxy that **replaces** the header with the address it saw (for example nginx
    /// `proxy_set_header X-Forwarded-For $remote_addr`), and only when clients cannot reach
    /// the service except through it. A proxy that appends to a client's header would let
    /// every client pick its own key, and so escape the limit.
    pub fn trust_forwarded_for(self) -> RateLimitLayer {
        self.edit(|c| c.trust.forwarded_for = true)
    }

    /// Like [`trust_forwarded_for`](Self::trust_forwarded_for), for the first `for=` of the
    /// standard `Forwarded` header (RFC 7239); it wins when both are trusted. The same
    /// warning applies: trust only the header your proxy overwrites.
    pub fn trust_forwarded(self) -> RateLimitLayer {
        self.edit(|c| c.trust.forwarded = true)
    }

    /// Keys requests by a header's value, such as an API key. A missing or empty value, or
    /// one that is not visible ASCII, is a missing key.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid header name: it is a constant of the program, so this is a
    /// bug to find at start-up rather than a request to answer.
    pub fn key_by_header<N>(self, name: N) -> RateLimitLayer
    where
        N: TryInto<HeaderName>,
        N::Error: std::fmt::Debug,
    {
        match name.try_into() {
            Ok(name) => self.edit(|c| c.key = KeySource::Header(name)),
            Err(e) => panic!("key_by_header: invalid header name: {e:?}"),
        }
    }

    /// Keys requests by a closure over the request's head; `None` (or an empty key) is a
    /// missing key.
    pub fn key_by<F>(self, f: F) -> RateLimitLayer
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.edit(|c| c.key = KeySource::Closure(Arc::new(f)))
    }

    /// Limits requests to `route` under their own policy, named `route`. `route` is
    /// compared with the route pattern axum matched (`/users/{id}`) and with the request's
    /// path, exactly (inside a nested router the path is relative to the nest).
    pub fn route_limit(self, route: impl Into<String>, limit: Limit) -> RateLimitLayer {
        let route = route.into();
        self.edit(|c| {
            let name = Cow::Owned(route.clone());
            c.routes.insert(route, Policy { name, limit });
        })
    }

    /// Picks a request's policy (a name and a limit) by a closure; `None` falls back to the
    /// route limits, then to the default. The closure is consulted first.
    pub fn limit_by<F, N>(self, f: F) -> RateLimitLayer
    where
        F: Fn(&Parts) -> Option<(N, Limit)> + Send + Sync + 'static,
        N: Into<Cow<'static, str>>,
    {
        let f = move |parts: &Parts| f(parts).map(|(name, limit)| (name.into(), limit));
        self.edit(|c| c.limit_by = Some(Arc::new(f)))
    }

    /// Prices requests by a closure (default: 1 each). Cost 0 only peeks: such a request
    /// always passes and consumes nothing.
    pub fn cost_by<F>(self, f: F) -> RateLimitLayer
    where
        F: Fn(&Parts) -> u64 + Send + Sync + 'static,
    {
        self.edit(|c| c.cost_by = Some(Arc::new(f)))
    }

    /// What to do with a request that has no key (default [`MissingKey::Reject`]).
    pub fn on_missing_key(self, missing: MissingKey) -> RateLimitLayer {
        self.edit(|c| c.on_missing_key = missing)
    }

    /// What to do when the store fails (default [`OnStoreError::FailClosed`]).
    pub fn on_store_error(self, on_error: OnStoreError) -> RateLimitLayer {
        self.edit(|c| c.on_store_error = on_error)
    }

    /// Replaces the `mw` namespace of store keys, for example to keep two apps sharing one
    /// Redis apart.
    pub fn key_prefix(self, prefix: impl Into<String>) -> RateLimitLayer {
        let prefix = prefix.into();
        self.edit(|c| c.prefix = prefix)
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit::new(inner, self.config.clone())
    }
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("RateLimitLayer")
            .field("policy", &c.default.name)
            .field("limit", &c.default.limit)
            .field("routes", &c.routes.len())
            .field("key", &c.key)
            .field("on_missing_key", &c.on_missing_key)
            .field("on_store_error", &c.on_store_error)
            .field("prefix", &c.prefix)
            .finish_non_exhaustive()
    }
}
