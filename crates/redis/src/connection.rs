//! The connection a store talks through, whatever the deployment: one server (plain or TLS),
//! a Redis Cluster, or the master that a set of sentinels names.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisConnectionInfo, RedisFuture,
    RedisResult, Value,
};
use tollgate_core::Error;

use crate::config::{Node, RedisConfig, RedisUrl, Topology};
use crate::error::{store_error, timed_out};
use crate::scripts::SCRIPTS;
use crate::sentinel::SentinelConnection;

/// A connection to the deployment. Cloning is cheap and shares the connection; concurrent
/// calls are pipelined on it.
#[derive(Clone)]
pub(crate) enum Connection {
    /// One server, through redis-rs's reconnecting manager.
    Standalone(ConnectionManager),
    /// A cluster: redis-rs follows the slot map, MOVED and ASK, and reconnects to nodes.
    Cluster(ClusterConnection),
    /// The current master, found through the sentinels and found again after a failover.
    Sentinel(SentinelConnection),
}

impl Connection {
    /// Connects to the deployment `config` names and loads the scripts, within the connect
    /// timeout. `target` is the masked URL, for messages.
    pub(crate) async fn open(config: &RedisConfig, target: &str) -> Result<Connection, Error> {
        let too_slow = || timed_out(target, "accept a connection", config.connect_timeout);
        let url = &config.url;
        let connecting = async {
            match url.topology() {
                Topology::Standalone { node, db } => standalone(config, node, *db)
                    .await
                    .map_err(|e| error(target, config, &e)),
                Topology::Cluster { nodes } => cluster(config, nodes)
                    .await
                    .map_err(|e| error(target, config, &e)),
                Topology::Sentinel {
                    sentinels,
                    master,
                    db,
                } => SentinelConnection::connect(config, target, sentinels, master, *db)
                    .await
                    .map(Connection::Sentinel),
            }
        };
        tokio::time::timeout(config.connect_timeout, connecting)
            .await
            .unwrap_or_else(|_| Err(too_slow()))
    }

    /// Whether this is a Redis Cluster, where a batch's keys must share a slot.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }

    /// Says that a call did not answer within the command timeout. A silent master may be a
    /// dead host, so a Sentinel connection asks the sentinels where the master is now.
    pub(crate) fn timed_out(&self) {
        if let Connection::Sentinel(sentinel) = self {
            sentinel.master_may_be_lost();
        }
    }
}

/// A connect failure, with a timeout named as the connect timeout.
fn error(target: &str, config: &RedisConfig, e: &redis::RedisError) -> Error {
    if e.is_timeout() {
        timed_out(target, "accept a connection", config.connect_timeout)
    } else {
        store_error(target, e)
    }
}

/// The credentials of `url` (and a database) as redis-rs wants them.
pub(crate) fn settings(url: &RedisUrl, db: u32) -> RedisConnectionInfo {
    let mut settings = RedisConnectionInfo::default().set_db(i64::from(db));
    if let Some(user) = url.username() {
        settings = settings.set_username(user);
    }
    if let Some(password) = url.password() {
        settings = settings.set_password(password);
    }
    settings
}

async fn standalone(config: &RedisConfig, node: &Node, db: u32) -> RedisResult<Connection> {
    let url = &config.url;
    let addr = if url.tls() {
        // rustls needs a crypto provider; ours is ring. Another part of the process may have
        // installed one already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        ConnectionAddr::TcpTls {
            host: node.host.clone(),
            port: node.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(node.host.clone(), node.port)
    };
    let info = addr
        .into_connection_info()?
        .set_redis_settings(settings(url, db));
    let client = match &config.tls_ca_pem {
        Some(pem) if url.tls() => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        )?,
        _ => redis::Client::open(info)?,
    };
    // One attempt per reconnection, so a call never waits behind a long backoff; the next
    // call after a failure starts another attempt.
    let manager = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout))
        .set_number_of_retries(0)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(100));
    let mut conn = ConnectionManager::new_with_config(client, manager).await?;
    SCRIPTS.load_all(&mut conn).await?;
    Ok(Connection::Standalone(conn))
}

async fn cluster(config: &RedisConfig, nodes: &[Node]) -> RedisResult<Connection> {
    let url = &config.url;
    let seeds = nodes
        .iter()
        .map(|n| ConnectionAddr::Tcp(n.host.clone(), n.port));
    let mut builder = ClusterClientBuilder::new(seeds)
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.command_timeout)
        // Redirections (MOVED, ASK) and a resharding's TRYAGAIN are retried inside the call,
        // after short waits: redis-rs's default first wait (over a second) would outlast any
        // command timeout. The whole call stays bounded by the command timeout.
        .retries(3)
        .min_retry_wait(10)
        .max_retry_wait(100)
        .retry_wait_formula(10, 2);
    if let Some(user) = url.username() {
        builder = builder.username(user);
    }
    if let Some(password) = url.password() {
        builder = builder.password(password);
    }
    let mut conn = builder.build()?.get_async_connection().await?;
    // SCRIPT LOAD goes to every primary, which also proves that each one answers.
    SCRIPTS.load_all(&mut conn).await?;
    Ok(Connection::Cluster(conn))
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
            Connection::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
            Connection::Sentinel(c) => c.get_db(),
        }
    }
}
