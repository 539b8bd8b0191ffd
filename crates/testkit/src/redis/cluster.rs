//! A Redis Cluster of real servers: masters only, slots spread evenly by `redis-cli`.

use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::resp::{Reply, field, query};
use super::{RedisServer, SETTLE_TIMEOUT, free_port, wait_for};

/// A Redis Cluster of `redis-server` processes on 127.0.0.1, each in its own temporary
/// directory with persistence off; every process is killed when this is dropped.
///
/// ```no_run
/// use tollgate_testkit::redis::RedisCluster;
/// let cluster = RedisCluster::start(3)?;
/// let url = cluster.url(); // redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` (at least 3) cluster-enabled servers, joins them into one cluster
    /// with `redis-cli --cluster create`, and waits until every node says `cluster_state:ok`
    /// and knows every other.
    pub fn start(masters: usize) -> io::Result<RedisCluster> {
        RedisCluster::start_with(masters, &[])
    }

    /// [`start`](Self::start), with extra options for every node, for example
    /// `["--cluster-require-full-coverage", "no"]`.
    pub fn start_with(masters: usize, extra: &[&str]) -> io::Result<RedisCluster> {
        if masters < 3 {
            return Err(io::Error::other("a Redis Cluster needs at least 3 masters"));
        }
        let mut nodes = Vec::with_capacity(masters);
        for _ in 0..masters {
            nodes.push(cluster_node(extra)?);
        }
        let cluster = RedisCluster { nodes };
        cluster.create()?;
        let expected = masters.to_string();
        let ports = cluster.ports();
        wait_for("the cluster to be ok on every node", SETTLE_TIMEOUT, || {
            for &port in &ports {
                let info = query(port, &["CLUSTER", "INFO"])?;
                let text = info.text().unwrap_or("");
                if field(text, "cluster_state") != Some("ok")
                    || field(text, "cluster_known_nodes") != Some(expected.as_str())
                {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        Ok(cluster)
    }

    /// Runs `redis-cli --cluster create` for every node, bounded by [`SETTLE_TIMEOUT`].
    fn create(&self) -> io::Result<()> {
        let mut command = Command::new("redis-cli");
        command.args(["--cluster", "create"]);
        for port in self.ports() {
            command.arg(format!("127.0.0.1:{port}"));
        }
        let mut child = command
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot run redis-cli ({e}); install it (apt-get install redis-tools)"),
                )
            })?;
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                let output = child.wait_with_output()?;
                if status.success() {
                    return Ok(());
                }
                return Err(io::Error::other(format!(
                    "redis-cli --cluster create failed: {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other("redis-cli --cluster create hung"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The nodes' ports, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Kills the node on `port` with SIGKILL, as a crashed host would vanish; the cluster
    /// has no replica to promote, so its slots stay without a master.
    pub fn kill(&mut self, port: u16) -> io::Result<()> {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .ok_or_else(|| io::Error::other(format!("no node on port {port}")))?;
        node.kill();
        Ok(())
    }

    /// `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,…` naming every node.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Sends a command to every node; fails on the first error reply.
    pub fn on_every_node(&self, args: &[&str]) -> io::Result<Vec<Reply>> {
        self.ports()
            .into_iter()
            .map(|port| match query(port, args)? {
                Reply::Error(e) => Err(io::Error::other(format!("{port}: {e}"))),
                reply => Ok(reply),
            })
            .collect()
    }

    /// The port of the master that serves `slot` (from `CLUSTER SLOTS` on the first node).
    pub fn port_of_slot(&self, slot: u16) -> io::Result<u16> {
        let first = self.nodes.first().map_or(0, RedisServer::port);
        let slots = query(first, &["CLUSTER", "SLOTS"])?;
        let bad = || io::Error::other(format!("unexpected CLUSTER SLOTS reply {slots:?}"));
        for range in slots.items().ok_or_else(bad)? {
            let Some([Reply::Int(from), Reply::Int(to), master, ..]) = range.items() else {
                return Err(bad());
            };
            if (*from..=*to).contains(&i64::from(slot)) {
                let Some([_, Reply::Int(port), ..]) = master.items() else {
                    return Err(bad());
                };
                return u16::try_from(*port).map_err(|_| bad());
            }
        }
        Err(bad())
    }
}

/// Starts one cluster-enabled server. The cluster bus port is chosen rather than left at
/// port + 10000, which may be above 65535 for a port from the kernel's ephemeral range.
fn cluster_node(extra: &[&str]) -> io::Result<RedisServer> {
    let mut last = None;
    for _ in 0..3 {
        let bus = free_port()?.to_string();
        let mut options = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            &bus,
            "--cluster-node-timeout",
            "2000",
        ];
        options.extend_from_slice(extra);
        match RedisServer::start_with(&options) {
            Ok(server) => return Ok(server),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("a cluster node did not start")))
}
