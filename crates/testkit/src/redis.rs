//! A real `redis-server` for tests: started on a free port in its own temporary directory,
//! with persistence off, killed (SIGKILL) and restarted on the same port on demand, and killed
//! when dropped. Nothing here fakes Redis: the tests talk to the real server.
//!
//! ```no_run
//! use tollgate_testkit::redis::RedisServer;
//! let mut server = RedisServer::start()?;
//! let url = server.url(); // redis://127.0.0.1:<port>/0
//! server.kill(); // as if the host died
//! server.restart()?; // same port, empty data
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`RedisCluster`] starts a Redis Cluster of real servers, and [`RedisSentinel`] a master, a
//! replica and three sentinels, with a failover on demand.

mod cluster;
pub mod resp;
mod sentinel;

pub use cluster::RedisCluster;
pub use sentinel::RedisSentinel;

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a server may take to answer PING after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` process owned by a test.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// A config file written in `dir`, given to redis-server first (sentinels need one).
    config: Option<String>,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port of 127.0.0.1.
    pub fn start() -> io::Result<RedisServer> {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra command-line options, for example
    /// `["--requirepass", "secret"]`.
    pub fn start_with(extra: &[&str]) -> io::Result<RedisServer> {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        RedisServer::launch(None, extra)
    }

    /// Starts a server whose config file says `config`, with extra command-line options.
    fn launch(config: Option<String>, extra: Vec<String>) -> io::Result<RedisServer> {
        let dir = temp_dir()?;
        // A free port can be taken by another process between our probe and the server's
        // bind; try a few.
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port()?;
            let mut server = RedisServer {
                child: None,
                port,
                dir: dir.clone(),
                config: config.clone(),
                extra: extra.clone(),
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    // Keep the directory for the next try: only the port changes.
                    server.dir = PathBuf::new();
                    last_error = Some(e);
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's working directory (its log is `redis.log` there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL, as a crashed host would vanish, and reaps it. The data
    /// is lost (persistence is off).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (killing it first if it runs), and waits
    /// until it answers PING.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = self.dir.join("redis.log");
        // A restart must not read the last run's log as this one's.
        let _ = fs::remove_file(&log);
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.config {
            // Sentinel rewrites its config file, so it must be writable and its own.
            let file = self.dir.join("redis.conf");
            fs::write(&file, config)?;
            command.arg(file);
        }
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--logfile"])
            .arg(&log)
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run redis-server ({e}); install it (apt-get install redis-server)"),
            )
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // The log proves that the server answering is ours: with the port taken by another
            // test's server, ours logs a failed bind and exits while the other one answers.
            if answers_ping(self.port) && logged_ready(&log) {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .map_or(Ok(None), |c| c.try_wait())?
                .is_some();
            if exited || Instant::now() > deadline {
                self.kill();
                let log = fs::read_to_string(&log).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "redis-server on port {} did not answer PING: {}",
                    self.port,
                    log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A port of 127.0.0.1 nothing listens on now (the kernel's choice for port 0).
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn temp_dir() -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "tollgate-redis-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Whether the server's log says it listens: a server says it is ready, a sentinel gives its
/// ID (both after binding their ports).
fn logged_ready(log: &Path) -> bool {
    fs::read_to_string(log).is_ok_and(|text| {
        text.contains("Ready to accept connections") || text.contains("Sentinel ID is")
    })
}

/// Whether a server on `port` answers PING (with PONG, or NOAUTH when it wants a password:
/// either way it is up and serving).
fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 64];
    match stream.read(&mut reply) {
        Ok(n) => reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}

/// How long a fixture waits for a cluster or the sentinels to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// Polls `ready` every 20 ms until it says yes (an error counts as not yet), for at most
/// `timeout`; returns how long it took.
fn wait_for(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> io::Result<bool>,
) -> io::Result<Duration> {
    let started = Instant::now();
    let mut last = String::from("never ready");
    loop {
        match ready() {
            Ok(true) => return Ok(started.elapsed()),
            Ok(false) => {}
            Err(e) => last = e.to_string(),
        }
        if started.elapsed() > timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} within {} ms (last: {last})", timeout.as_millis()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
