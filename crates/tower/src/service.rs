//! [`RateLimit`]: the service that checks each request before calling the one it wraps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tollgate_core::Error;
use tower::Service;

use crate::config::{Config, OnStoreError, Plan};
use crate::headers;
use crate::response::Problem;

/// The future of [`RateLimit`]: the store check, then maybe the inner service.
pub type ResponseFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

/// Rate-limits requests to `S`; made by [`RateLimitLayer`](crate::RateLimitLayer).
///
/// Readiness is the inner service's. The response body can be any type a `String` converts
/// into, which covers axum's `Body` without tying this crate to one axum version's body type.
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> RateLimit<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> RateLimit<S> {
        RateLimit { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // `self.inner` is the clone that was polled ready: take it into the future and
        // leave a fresh clone behind, which must be polled ready before its own call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let (key, policy, cost) = match config.plan(&parts) {
                Plan::Check { key, policy, cost } => (key, policy, cost),
                Plan::Pass => return inner.call(Request::from_parts(parts, body)).await,
                Plan::Reject(problem) => return Ok(problem.into_response()),
            };
            match config.store.check(&key, &policy.limit, cost).await {
                Ok(decision) if decision.allowed => {
                    let mut response = inner.call(Request::from_parts(parts, body)).await?;
                    headers::insert(
                        response.headers_mut(),
                        &policy.name,
                        &policy.limit,
                        &decision,
                    );
                    Ok(response)
                }
                Ok(decision) => Ok(Problem::RateLimited {
                    policy: policy.name,
                    limit: policy.limit,
                    decision,
                }
                .into_response()),
                // The request's own fault, whatever the store: not a reason to fail open.
                Err(e @ (Error::InvalidKey { .. } | Error::CostExceedsLimit { .. })) => {
                    Ok(Problem::Invalid(e).into_response())
                }
                Err(e) => {
                    // The key is left out: it may be an API key or an address.
                    tracing::warn!(
                        policy = %policy.name,
                        code = e.code(),
                        error = %e,
                        on_store_error = ?config.on_store_error,
                        "rate-limit store failed",
                    );
                    match config.on_store_error {
                        OnStoreError::FailOpen => {
                            inner.call(Request::from_parts(parts, body)).await
                        }
                        OnStoreError::FailClosed => Ok(Problem::StoreUnavailable.into_response()),
                    }
                }
            }
        })
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
