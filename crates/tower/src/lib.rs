//! tollgate for tower and axum: the IETF RateLimit header fields ([`headers`]), and a
//! rate-limiting middleware layer for axum apps.
#![deny(missing_docs)]

pub mod headers;
