//! Which key a request is limited under: the client's IP address, a header, or a closure.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderName;
use http::request::Parts;

/// A closure that picks a request's key.
pub(crate) type KeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// What the middleware does with a request it finds no key for (no such header, no client
/// address, or the [`key_by`](crate::RateLimitLayer::key_by) closure answered `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingKey {
    /// Answer with a `problem+json` error and do not call the service: `400 Bad Request` when
    /// the request lacks the key (a header or what the closure looks for), `500 Internal
    /// Server Error` when the client address is unknown, which is a server set-up mistake
    /// (serve with `into_make_service_with_connect_info::<SocketAddr>()`).
    ///
    /// The default: letting keyless requests through would let any client escape the limit
    /// by leaving the header out.
    #[default]
    Reject,
    /// Call the service without limiting the request (and without RateLimit headers). Only
    /// safe when something else guarantees the key, such as an authentication layer in
    /// front that rejects requests without one.
    Allow,
    /// Limit every keyless request under this one shared key (for example `"anonymous"`),
    /// so that anonymous traffic shares a single bucket. A client that sends this very
    /// value as its key shares that bucket too, which gains it nothing.
    Shared(String),
}

/// Where the key comes from.
#[derive(Clone)]
pub(crate) enum KeySource {
    ClientIp,
    Header(HeaderName),
    Closure(KeyFn),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::ClientIp => f.write_str("ClientIp"),
            KeySource::Header(name) => f.debug_tuple("Header").field(name).finish(),
            KeySource::Closure(_) => f.write_str("Closure"),
        }
    }
}

/// Which proxy headers name the client, when the service sits behind a proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Trust {
    pub(crate) forwarded_for: bool,
    pub(crate) forwarded: bool,
}

/// Why a request has no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoKey {
    /// Neither `ConnectInfo<SocketAddr>` nor a `SocketAddr` extension: the server's fault.
    NoClientAddress,
    /// The request lacks the header, or its value is empty or not visible ASCII.
    NoHeader(HeaderName),
    /// The closure answered `None`.
    Closure,
}

impl KeySource {
    /// The request's key, before namespacing.
    pub(crate) fn extract(&self, parts: &Parts, trust: Trust) -> Result<String, NoKey> {
        match self {
            KeySource::ClientIp => client_ip(parts, trust)
                .map(|ip| ip.to_string())
                .ok_or(NoKey::NoClientAddress),
            KeySource::Header(name) => parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| NoKey::NoHeader(name.clone())),
            KeySource::Closure(f) => f(parts).filter(|k| !k.is_empty()).ok_or(NoKey::Closure),
        }
    }
}

/// The client's address: from a trusted proxy header when enabled and parseable, else the
/// connection's peer. Only the IP counts: a client opens connections from many ports.
fn client_ip(parts: &Parts, trust: Trust) -> Option<IpAddr> {
    let header = |name: &http::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let forwarded = trust
        .forwarded
        .then(|| header(&http::header::FORWARDED))
        .flatten()
        .and_then(|v| first_forwarded(&v));
    let proxied = forwarded.or_else(|| {
        trust
            .forwarded_for
            .then(|| header(&X_FORWARDED_FOR))
            .flatten()
            .and_then(|v| first_forwarded_for(&v))
    });
    // A header that is missing or unparseable (`unknown`, an obfuscated `_node`) falls back
    // to the peer: such clients share the proxy's bucket rather than escape the limit.
    proxied
        .or_else(|| peer_ip(parts))
        .map(|ip| ip.to_canonical())
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The connection's peer address, as axum's `ConnectInfo` or a bare `SocketAddr` extension
/// (which a hand-written hyper server can insert).
fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(addr.ip());
    }
    parts.extensions.get::<SocketAddr>().map(SocketAddr::ip)
}

/// The first address of `X-Forwarded-For: client, proxy1, proxy2`.
fn first_forwarded_for(value: &str) -> Option<IpAddr> {
    value.split(',').next().and_then(parse_node)
}

/// The first `for=` of `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"`
/// (RFC 7239).
fn first_forwarded(value: &str) -> Option<IpAddr> {
    let first = value.split(',').next()?;
    first.split(';').find_map(|pair| {
        let (name, node) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(node))
            .flatten()
    })
}

/// A node: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]:80`, maybe quoted.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    // `[v6]` without a port.
    node.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|v6| v6.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn forwarded_for() {
        assert_eq!(
            first_forwarded_for("203.0.113.7, 10.0.0.1"),
            ip("203.0.113.7")
        );
        assert_eq!(first_forwarded_for(" 2001:db8::1 "), ip("2001:db8::1"));
        assert_eq!(first_forwarded_for("203.0.113.7:5000"), ip("203.0.113.7"));
        assert_eq!(first_forwarded_for("unknown, 10.0.0.1"), None);
        assert_eq!(first_forwarded_for(""), None);
    }

    #[test]
    fn forwarded() {
        assert_eq!(
            first_forwarded("for=192.0.2.60;proto=http;by=203.0.113.43, for=10.0.0.1"),
            ip("192.0.2.60")
        );
        assert_eq!(
            first_forwarded("proto=https; For=\"[2001:db8:cafe::17]:4711\""),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(first_forwarded("for=\"[2001:db8::2]\""), ip("2001:db8::2"));
        assert_eq!(first_forwarded("for=_hidden, for=10.0.0.1"), None);
        assert_eq!(first_forwarded("by=10.0.0.1"), None);
    }

    #[test]
    fn client_ip_prefers_trusted_headers_and_ignores_ports() {
        let (mut parts, ()) = http::Request::get("/")
            .header("x-forwarded-for", "203.0.113.7")
            .header("forwarded", "for=198.51.100.1")
            .body(())
            .expect("request")
            .into_parts();
        let peer: SocketAddr = "[::ffff:10.0.0.1]:5555".parse().expect("addr");
        parts.extensions.insert(peer);
        let none = Trust::default();
        assert_eq!(client_ip(&parts, none), ip("10.0.0.1"), "v4-mapped → v4");
        let xff = Trust {
            forwarded_for: true,
            forwarded: false,
        };
        assert_eq!(client_ip(&parts, xff), ip("203.0.113.7"));
        let both = Trust {
            forwarded_for: true,
            forwarded: true,
        };
        assert_eq!(client_ip(&parts, both), ip("198.51.100.1"));
    }
}
