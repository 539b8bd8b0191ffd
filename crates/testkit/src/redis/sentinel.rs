//! A master, its replica and three sentinels watching them, all real servers.

use std::io;
use std::time::Duration;

use super::resp::{Reply, field, pair, query};
use super::{RedisServer, SETTLE_TIMEOUT, wait_for};

/// A master and one replica, watched by three sentinels (quorum 2) that fail over half a
/// second after the master stops answering. All on 127.0.0.1, each process in its own
/// temporary directory, every process killed when this is dropped.
///
/// ```no_run
/// use tollgate_testkit::redis::RedisSentinel;
/// let mut redis = RedisSentinel::start()?;
/// let url = redis.url(); // redis+sentinel://127.0.0.1:<s1>,…/mymaster
/// let took = redis.fail_over()?; // kill the master; the sentinels promote the replica
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisSentinel {
    /// The two data servers; `master` indexes the current master.
    servers: Vec<RedisServer>,
    master: usize,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// The name the sentinels know the master by.
    pub const MASTER_NAME: &'static str = "mymaster";

    /// Starts the master, the replica (waiting until it has synced) and the sentinels
    /// (waiting until each knows the replica and the two other sentinels, so that a failover
    /// can be agreed on).
    pub fn start() -> io::Result<RedisSentinel> {
        // No delay before a full sync (Redis waits 5 s by default for more replicas).
        let master = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"])?;
        let master_port = master.port().to_string();
        let replica = RedisServer::start_with(&[
            "--replicaof",
            "127.0.0.1",
            &master_port,
            "--repl-diskless-sync-delay",
            "0",
        ])?;
        let replica_port = replica.port();
        wait_for("the replica to sync", SETTLE_TIMEOUT, || {
            let info = query(replica_port, &["INFO", "replication"])?;
            Ok(field(info.text().unwrap_or(""), "master_link_status") == Some("up"))
        })?;
        let config = format!(
            "sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 2000\n\
             sentinel resolve-hostnames no\n",
            name = Self::MASTER_NAME
        );
        let mut sentinels = Vec::with_capacity(3);
        for _ in 0..3 {
            sentinels.push(RedisServer::launch(
                Some(config.clone()),
                vec!["--sentinel".to_string()],
            )?);
        }
        let redis = RedisSentinel {
            servers: vec![master, replica],
            master: 0,
            sentinels,
        };
        let ports = redis.sentinel_ports();
        wait_for("the sentinels to know each other", SETTLE_TIMEOUT, || {
            for &port in &ports {
                let master = query(port, &["SENTINEL", "MASTER", Self::MASTER_NAME])?;
                if pair(&master, "num-slaves") != Some("1")
                    || pair(&master, "num-other-sentinels") != Some("2")
                {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        Ok(redis)
    }

    /// The sentinels' ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(RedisServer::port).collect()
    }

    /// `redis+sentinel://127.0.0.1:<s1>,127.0.0.1:<s2>,127.0.0.1:<s3>/mymaster`.
    pub fn url(&self) -> String {
        self.url_for(Self::MASTER_NAME)
    }

    /// The sentinel URL for a master name (an unknown one, to test that).
    pub fn url_for(&self, master_name: &str) -> String {
        let sentinels: Vec<String> = self
            .sentinel_ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+sentinel://{}/{master_name}", sentinels.join(","))
    }

    /// The current master's port.
    pub fn master_port(&self) -> u16 {
        self.servers[self.master].port()
    }

    /// The replica's port (the master after [`fail_over`](Self::fail_over)).
    pub fn replica_port(&self) -> u16 {
        self.servers[1 - self.master].port()
    }

    /// `redis://127.0.0.1:<port>/0` of the current master, to look at it directly.
    pub fn master_url(&self) -> String {
        self.servers[self.master].url()
    }

    /// Kills the master with SIGKILL, as a crashed host would vanish.
    pub fn kill_master(&mut self) {
        self.servers[self.master].kill();
    }

    /// Waits until every sentinel names the replica as the master and the replica says it
    /// is one; from then on the replica is the master. Returns how long that took.
    pub fn wait_for_failover(&mut self, timeout: Duration) -> io::Result<Duration> {
        let promoted = self.replica_port();
        let expected = promoted.to_string();
        let sentinels = self.sentinel_ports();
        let took = wait_for("the sentinels to promote the replica", timeout, || {
            for &port in &sentinels {
                let named = query(
                    port,
                    &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER_NAME],
                )?;
                let port = named.items().and_then(|a| a.get(1)).and_then(Reply::text);
                if port != Some(expected.as_str()) {
                    return Ok(false);
                }
            }
            let role = query(promoted, &["ROLE"])?;
            Ok(role.items().and_then(|r| r.first()).and_then(Reply::text) == Some("master"))
        })?;
        self.master = 1 - self.master;
        Ok(took)
    }

    /// Kills the master and waits (up to 20 s) until the sentinels have promoted the replica.
    pub fn fail_over(&mut self) -> io::Result<Duration> {
        self.kill_master();
        self.wait_for_failover(SETTLE_TIMEOUT)
    }
}
