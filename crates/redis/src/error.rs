//! Redis failures as tollgate errors: `store_unavailable`, saying whether trying again later
//! may help (CONTRACT: callers choose between retry, fail-open and fail-closed on that).

use redis::{ErrorKind, RedisError};
use tollgate_core::Error;

/// Server error codes that describe a passing state of the deployment: loading a dump, a
/// failover or resharding in progress, a replica not yet promoted, memory full, a long script.
const TRANSIENT_CODES: &[&str] = &[
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "READONLY",
    "MOVED",
    "ASK",
    "OOM",
];

/// Maps a Redis failure on `target` (the masked URL) to a [`Error::Store`].
pub(crate) fn store_error(target: &str, error: &RedisError) -> Error {
    let code = error.code().unwrap_or("");
    let (transient, what) = if tls_failure(error) {
        // A certificate or protocol mismatch does not heal by waiting.
        (false, "failed the TLS handshake")
    } else if error.is_timeout() {
        (true, "timed out")
    } else if error.is_connection_refusal() {
        (true, "refused the connection")
    } else if error.is_io_error() || error.is_connection_dropped() {
        (true, "could not be reached")
    } else if error.kind() == ErrorKind::AuthenticationFailed
        || matches!(code, "NOAUTH" | "WRONGPASS")
    {
        (false, "refused the credentials")
    } else if code == "NOPERM" {
        (false, "denied a command to this user (check its ACL)")
    } else if code == "WRONGTYPE" {
        (
            false,
            "holds a key of another type where tollgate keeps its state",
        )
    } else if TRANSIENT_CODES.contains(&code) {
        (true, "is temporarily unable to serve")
    } else {
        (false, "answered with an error")
    };
    Error::Store {
        message: format!("Redis at {target} {what}: {error}"),
        transient,
    }
}

/// Whether rustls refused the connection (an untrusted certificate, a bad handshake):
/// redis-rs keeps the `io::Error` that carries the `rustls::Error` behind an `Arc`.
fn tls_failure(error: &RedisError) -> bool {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let Some(source) = std::error::Error::source(error) else {
        return false;
    };
    let inner: &(dyn std::error::Error + 'static) = match source.downcast_ref::<Shared>() {
        Some(shared) => &**shared,
        None => source,
    };
    inner
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .is_some_and(|e| e.is::<rustls::Error>())
}

/// The error for a call that did not finish within its timeout.
pub(crate) fn timed_out(target: &str, what: &str, timeout: std::time::Duration) -> Error {
    Error::Store {
        message: format!(
            "Redis at {target} did not {what} within {} ms",
            timeout.as_millis()
        ),
        transient: true,
    }
}

/// The error for a reply the scripts never give (a different script under our hash?).
pub(crate) fn bad_reply(target: &str, detail: &str) -> Error {
    Error::Store {
        message: format!("Redis at {target} sent an unexpected reply: {detail}"),
        transient: false,
    }
}
