//! The HTTP JSON API (axum). `app` builds the router so tests can drive it without a socket.

use std::sync::Arc;

use axum::Router;

use crate::Service;

/// The router of every HTTP endpoint.
pub fn app(service: Arc<Service>) -> Router {
    let _ = service;
    Router::new()
}
