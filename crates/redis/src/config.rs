//! Where Redis is and how long to wait for it: the store URL and the timeouts.

use std::fmt;
use std::time::Duration;

/// The URL forms a store accepts, for error messages.
pub const EXPECTED_FORMS: &str = "redis://[USER:PASSWORD@]HOST[:PORT][/DB], \
     rediss://[USER:PASSWORD@]HOST[:PORT][/DB] (TLS), \
     redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB] or \
     redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]";

/// A URL that does not describe a Redis store. Its text shows the URL with the password
/// masked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Redis URL {masked:?}: {reason}; expected {EXPECTED_FORMS}")]
pub struct InvalidUrl {
    /// The URL as given, password replaced by `****`.
    pub masked: String,
    /// What is wrong with it.
    pub reason: String,
}

impl From<InvalidUrl> for tollgate_core::Error {
    fn from(e: InvalidUrl) -> tollgate_core::Error {
        tollgate_core::Error::Store {
            message: e.to_string(),
            transient: false,
        }
    }
}

/// A host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// A host name or an IP address (IPv6 without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How the Redis deployment is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topology {
    /// One server (`redis://`, `rediss://`).
    Standalone {
        /// The server.
        node: Node,
        /// The database number (`SELECT`).
        db: u32,
    },
    /// Sentinels that name the current master (`redis+sentinel://`).
    Sentinel {
        /// The sentinels to ask.
        sentinels: Vec<Node>,
        /// The master's name as the sentinels know it.
        master: String,
        /// The database number on the master.
        db: u32,
    },
    /// A Redis Cluster, reached through any of its nodes (`redis+cluster://`).
    Cluster {
        /// Nodes to discover the cluster from.
        nodes: Vec<Node>,
    },
}

/// A parsed store URL. `Display` and `Debug` mask the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    topology: Topology,
    tls: bool,
    username: Option<String>,
    password: Option<String>,
}

impl RedisUrl {
    /// Parses one of the [`EXPECTED_FORMS`]. User and password may be percent-encoded.
    pub fn parse(input: &str) -> Result<RedisUrl, InvalidUrl> {
        let fail = |reason: &str| InvalidUrl {
            masked: mask(input),
            reason: reason.to_string(),
        };
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(fail("no scheme (the URL must start with redis://)"));
        };
        let (tls, kind) = match scheme {
            "redis" => (false, Kind::Standalone),
            "rediss" => (true, Kind::Standalone),
            "redis+sentinel" => (false, Kind::Sentinel),
            "redis+cluster" => (false, Kind::Cluster),
            _ => return Err(fail(&format!("unknown scheme {scheme:?}"))),
        };
        // The credentials end at the last '@', so a password may hold '@' or '/'.
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let Some((user, pass)) = info.split_once(':') else {
                    return Err(fail("credentials must be USER:PASSWORD@ or :PASSWORD@"));
                };
                let user = decode(user).ok_or_else(|| fail("bad percent-encoding in the user"))?;
                let pass =
                    decode(pass).ok_or_else(|| fail("bad percent-encoding in the password"))?;
                ((!user.is_empty()).then_some(user), Some(pass))
            }
        };
        if rest.contains(['?', '#']) {
            return Err(fail("query strings and fragments are not supported"));
        }
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let default_port = if kind == Kind::Sentinel { 26379 } else { 6379 };
        let nodes = hosts
            .split(',')
            .map(|h| parse_node(h, default_port))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| fail(&reason))?;
        let segments: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        let topology = match kind {
            Kind::Standalone => {
                let [node] = <[Node; 1]>::try_from(nodes)
                    .map_err(|_| fail("a standalone URL names one HOST:PORT"))?;
                let db = match segments.as_slice() {
                    [] => 0,
                    [db] => parse_db(db).map_err(|r| fail(&r))?,
                    _ => return Err(fail("the path is only the database number")),
                };
                Topology::Standalone { node, db }
            }
            Kind::Sentinel => {
                let (master, db) = match segments.as_slice() {
                    [master] => (*master, 0),
                    [master, db] => (*master, parse_db(db).map_err(|r| fail(&r))?),
                    _ => return Err(fail("a sentinel URL needs /MASTER_NAME[/DB]")),
                };
                if master.is_empty() {
                    return Err(fail("the master name is empty"));
                }
                Topology::Sentinel {
                    sentinels: nodes,
                    master: master.to_string(),
                    db,
                }
            }
            Kind::Cluster => {
                if !segments.is_empty() {
                    return Err(fail("a cluster has only database 0: drop the path"));
                }
                Topology::Cluster { nodes }
            }
        };
        Ok(RedisUrl {
            topology,
            tls,
            username,
            password,
        })
    }

    /// The layout: one server, sentinels, or a cluster.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether connections use TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The ACL user, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Standalone,
    Sentinel,
    Cluster,
}

fn parse_node(text: &str, default_port: u16) -> Result<Node, String> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err(format!("unclosed '[' in {text:?}"));
        };
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("expected :PORT after ']' in {text:?}"))?,
            ),
        };
        (host, port)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(format!("a host is missing in {text:?}"));
    }
    if host.contains(|c: char| c.is_whitespace() || "@/[]".contains(c)) {
        return Err(format!("{host:?} is not a host name"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 && p.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => return Err(format!("port {p:?} is not a number from 1 to 65535")),
        },
    };
    Ok(Node {
        host: host.to_string(),
        port,
    })
}

fn parse_db(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(db) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(db),
        _ => Err(format!("database {text:?} is not a whole number")),
    }
}

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URL with everything between the user's `:` and the last `@` replaced by `****`.
pub(crate) fn mask(input: &str) -> String {
    let start = input.find("://").map_or(0, |i| i + 3);
    let Some(at) = input[start..].rfind('@').map(|i| i + start) else {
        return input.to_string();
    };
    match input[start..at].find(':') {
        Some(colon) => format!("{}****{}", &input[..start + colon + 1], &input[at..]),
        None => format!("{}****{}", &input[..start], &input[at..]),
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |nodes: &[Node]| {
            nodes
                .iter()
                .map(Node::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let scheme = match (&self.topology, self.tls) {
            (Topology::Standalone { .. }, false) => "redis",
            (Topology::Standalone { .. }, true) => "rediss",
            (Topology::Sentinel { .. }, _) => "redis+sentinel",
            (Topology::Cluster { .. }, _) => "redis+cluster",
        };
        write!(f, "{scheme}://")?;
        if self.password.is_some() {
            write!(f, "{}:****@", self.username.as_deref().unwrap_or(""))?;
        }
        match &self.topology {
            Topology::Standalone { node, db } => write!(f, "{node}/{db}"),
            Topology::Sentinel {
                sentinels,
                master,
                db,
            } => write!(f, "{}/{master}/{db}", join(sentinels)),
            Topology::Cluster { nodes } => f.write_str(&join(nodes)),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = InvalidUrl;
    fn from_str(s: &str) -> Result<RedisUrl, InvalidUrl> {
        RedisUrl::parse(s)
    }
}

/// Everything [`RedisStore::connect`](crate::RedisStore::connect) needs: the URL, the
/// timeouts and, for TLS with a private CA, its certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Where Redis is.
    pub url: RedisUrl,
    /// How long connecting (TCP, TLS, AUTH, SELECT, loading the scripts) may take.
    pub connect_timeout: Duration,
    /// How long one call (a check, a batch, a reset, a ping) may take in all, including
    /// waiting for a reconnection in progress.
    pub command_timeout: Duration,
    /// For `rediss://`: the PEM certificate(s) of the CA to trust instead of the system's
    /// roots (`None`: the system's roots).
    pub tls_ca_pem: Option<Vec<u8>>,
    /// The most keys the over-limit cache holds; 0 (the default) turns it off. See
    /// [`RedisConfig::over_limit_cache`].
    pub over_limit_cache_keys: usize,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.url)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("tls_ca_pem", &self.tls_ca_pem.as_ref().map(|_| "set"))
            .field("over_limit_cache_keys", &self.over_limit_cache_keys)
            .finish()
    }
}

impl RedisConfig {
    /// The default connect timeout: 1 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    /// The default per-call timeout: 250 ms.
    pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(250);

    /// A config for `url` with the default timeouts.
    pub fn new(url: RedisUrl) -> RedisConfig {
        RedisConfig {
            url,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            command_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            tls_ca_pem: None,
            over_limit_cache_keys: 0,
        }
    }

    /// Parses a URL (see [`RedisUrl::parse`]) into a config with the default timeouts.
    pub fn parse(url: &str) -> Result<RedisConfig, InvalidUrl> {
        RedisUrl::parse(url).map(RedisConfig::new)
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> RedisConfig {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the per-call timeout.
    pub fn command_timeout(mut self, timeout: Duration) -> RedisConfig {
        self.command_timeout = timeout;
        self
    }

    /// Answers, without a round trip, a check that a recent denial proves Redis would deny
    /// too, keeping at most `max_keys` keys (0 turns the cache off, the default). A cached
    /// answer is only ever a denial, exact by construction: see the [`cache`](crate::cache)
    /// module for the argument and what it cannot see (chiefly, a reset made through another
    /// store is not seen until the denial's wait is over).
    pub fn over_limit_cache(mut self, max_keys: usize) -> RedisConfig {
        self.over_limit_cache_keys = max_keys;
        self
    }

    /// Trusts only the CA in `pem` (PEM certificates) for `rediss://`, instead of the
    /// system's roots: for Redis servers with certificates from a private CA.
    pub fn tls_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> RedisConfig {
        self.tls_ca_pem = Some(pem.into());
        self
    }
}
