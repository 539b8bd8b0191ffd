//! What the tests of `tollgate serve` share: the real binary started on a port of the kernel's
//! choice with its stderr collected, a keep-alive HTTP/1.1 client, and the load and the
//! relaxed limits that the Redis tests check admissions against.
//!
//! Each test binary uses a part of it.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;
use tollgate::{Algorithm, Limit, Rate, Unit};
use tollgate_testkit::Admission;

/// A millisecond in nanoseconds.
pub const MS: u64 = 1_000_000;

/// How long a server may take to start listening, and then to answer `/healthz`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The `tollgate` binary, as a command to add arguments to.
pub fn tollgate() -> Command {
    Command::cargo_bin("tollgate").expect("the tollgate binary")
}

/// An address nothing listens on: a port the kernel just handed out, released again. Only for
/// testing refusals: another process may take it, so never start a server on it.
pub fn unused_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// Nanoseconds since the Unix epoch on the system clock, the clock Redis's `TIME` reads.
pub fn now_ns() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since.as_nanos()).expect("before 2554")
}

// ---------------------------------------------------------------------------------------------
// The server.

/// A `tollgate serve` process with its stderr collected as it is written. Dropping it kills
/// the process.
pub struct Server {
    child: Child,
    /// The HTTP API's address, read from the server's log.
    pub http: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// The config file written by [`Server::start`], removed with the server.
    dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `tollgate serve` with `config` as its file and `args` as extra flags; see
    /// [`Server::spawn`].
    pub fn start(config: &str, args: &[&str]) -> Server {
        Server::start_under(tollgate(), config, args)
    }

    /// [`Server::start`] with `program` in place of the binary: the binary, or a wrapper whose
    /// last argument is the binary (`faketime … BINARY`).
    pub fn start_under(program: Command, config: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tollgate.yaml");
        std::fs::write(&path, config).expect("write config");
        let path = path.to_str().expect("a UTF-8 temp path");
        let mut server = Server::spawn(program, &[&["--config", path], args].concat());
        server.dir = Some(dir);
        server
    }

    /// Starts `tollgate serve` on the config file at `path`, which the test owns (and may
    /// rewrite while the server runs).
    pub fn start_with_file(path: &Path, args: &[&str]) -> Server {
        let path = path.to_str().expect("a UTF-8 config path");
        Server::spawn(tollgate(), &[&["--config", path], args].concat())
    }

    /// Runs `PROGRAM serve --http 127.0.0.1:0 ARGS` with none of tollgate's variables from the
    /// environment, learns the port from the `HTTP API listening addr=…` log line, and waits
    /// until the server answers `/healthz`. A port of the kernel's choice, read back from the
    /// server, leaves no window in which another process can take it.
    pub fn spawn(mut program: Command, args: &[&str]) -> Server {
        program
            .args(["serve", "--http", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("TOLLGATE_STORE")
            .env_remove("TOLLGATE_CONFIG")
            .env_remove("TOLLGATE_SERVER")
            .env_remove("TOLLGATE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = program
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program:?}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr piped");
        let sink = stderr.clone();
        // Drained all along, so the server never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().expect("stderr lock");
                text.push_str(&line);
                text.push('\n');
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let http = loop {
            let text = stderr.lock().expect("stderr lock").clone();
            if let Some(addr) = listening_address(&text) {
                break addr;
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("tollgate serve exited ({status}) before listening:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "tollgate serve did not log `HTTP API listening` within {START_TIMEOUT:?} (it is \
                 an info line: a --log filter must let it through):\n{text}"
            );
            thread::sleep(Duration::from_millis(10));
        };
        let server = Server {
            child,
            http,
            stderr,
            dir: None,
        };
        let healthy = wait_for(START_TIMEOUT, || {
            server.get("/healthz").is_some_and(|(s, _)| s == 200)
        });
        assert!(healthy.is_some(), "no /healthz:\n{}", server.stderr());
        server
    }

    /// `http://ADDR`, for the CLI's `--server`.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Everything the server has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (`-HUP`, `-TERM`) to the server with `kill`.
    #[cfg(unix)]
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} {}: {status}", self.pid());
    }

    /// The server's exit status once it exits, or `None` if it is still running after
    /// `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// One request on a fresh connection: the status and body, or `None` without an answer.
    pub fn request(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        Client::new(self.http).request(method, path, body).ok()
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.request("GET", path, "")
    }

    /// `POST /v1/check`, which must answer 200.
    pub fn check(&self, body: &str) -> Value {
        let (status, text) = self
            .request("POST", "/v1/check", body)
            .expect("check answered");
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).expect("json")
    }

    /// `/readyz`: its status and body.
    pub fn readyz(&self) -> (u16, Value) {
        let (status, text) = self.get("/readyz").expect("readyz answered");
        (status, serde_json::from_str(&text).expect("json"))
    }

    /// The value of the metric line that starts with `series` (name and labels).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics")?;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// The address in the server's `HTTP API listening addr=…` log line.
pub fn listening_address(stderr: &str) -> Option<SocketAddr> {
    let line = stderr.lines().find(|l| l.contains("HTTP API listening"))?;
    let at = line.find("127.0.0.1:")?;
    let tail = &line[at..];
    let end = tail
        .char_indices()
        .skip("127.0.0.1:".len())
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(tail.len(), |(i, _)| i);
    tail[..end].parse().ok()
}

/// Polls `ready` every 20 ms for at most `timeout`; how long it took, or `None`.
pub fn wait_for(timeout: Duration, mut ready: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if ready() {
            return Some(started.elapsed());
        }
        if started.elapsed() > timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal HTTP/1.1 client on one keep-alive connection (reconnecting after an error), so
/// that the load measures the server rather than TCP handshakes, with no async runtime.
pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    pub fn request(&mut self, method: &str, path: &str, body: &str) -> io::Result<(u16, String)> {
        let answer = self.exchange(method, path, body);
        if answer.is_err() {
            self.conn = None;
        }
        answer
    }

    fn exchange(&mut self, method: &str, path: &str, body: &str) -> io::Result<(u16, String)> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                self.conn.insert(BufReader::new(stream))
            }
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        conn.get_mut()
            .write_all(format!("{head}{body}").as_bytes())?;
        let mut line = String::new();
        conn.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0;
        let mut close = false;
        loop {
            line.clear();
            if conn.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().map_err(io::Error::other)?;
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body)?;
        if close {
            self.conn = None;
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

// ---------------------------------------------------------------------------------------------
// Load, and the limits its admissions are checked against.

/// One check sent by the load: when it was sent and answered (system clock, ns since the
/// epoch; `sent` rounded down and `received` up to the microsecond, the resolution of
/// Redis's `TIME`, so that the decision's time lies in `[sent, received]`), and the answer.
#[derive(Debug, Clone)]
pub struct Sample {
    pub thread: usize,
    /// Index into the bodies given to the load.
    pub key: usize,
    pub sent: u64,
    pub received: u64,
    /// 0 when no HTTP answer came.
    pub status: u16,
    pub allowed: Option<bool>,
}

impl Sample {
    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.received - self.sent)
    }
}

/// Load: checks sent back to back by `threads` threads until [`Load::stop`] or `deadline`
/// (and at most 200 000 each): thread `t` talks to `servers[t % servers.len()]` and sends,
/// as its `n`-th check, `bodies[pick(t, n) % bodies.len()]`.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Sample>>>,
}

impl Load {
    pub fn start(
        servers: &[SocketAddr],
        bodies: &[String],
        threads: usize,
        pick: fn(usize, usize) -> usize,
        deadline: Instant,
    ) -> Load {
        let bodies = Arc::new(bodies.to_vec());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|thread| {
                let addr = servers[thread % servers.len()];
                let bodies = bodies.clone();
                let stop = stop.clone();
                thread::spawn(move || load_thread(addr, &bodies, thread, pick, &stop, deadline))
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the load and returns every check it sent.
    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .flat_map(|h| h.join().expect("load thread"))
            .collect()
    }
}

fn load_thread(
    addr: SocketAddr,
    bodies: &[String],
    thread: usize,
    pick: fn(usize, usize) -> usize,
    stop: &AtomicBool,
    deadline: Instant,
) -> Vec<Sample> {
    let mut client = Client::new(addr);
    let mut samples = Vec::new();
    for n in 0..200_000 {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            break;
        }
        let key = pick(thread, n) % bodies.len();
        let sent = now_ns() / 1000 * 1000;
        let answer = client.request("POST", "/v1/check", &bodies[key]);
        let received = now_ns().div_ceil(1000) * 1000;
        let (status, decision) = match answer {
            Ok((status, body)) => (
                status,
                serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
            ),
            Err(_) => (0, Value::Null),
        };
        samples.push(Sample {
            thread,
            key,
            sent,
            received,
            status,
            allowed: decision["allowed"].as_bool(),
        });
    }
    samples
}

/// A limit from its parts, which must be valid.
pub fn limit(rate: &str, algorithm: Algorithm, burst: Option<u64>) -> Limit {
    Limit::new(rate.parse().expect("rate"), algorithm, burst).expect("limit")
}

/// The body of `POST /v1/check` that checks `key` under `limit`, inline.
pub fn check_body(key: &str, limit: &Limit) -> String {
    let burst = match limit.algorithm() {
        Algorithm::Gcra => format!(r#","burst":{}"#, limit.burst()),
        _ => String::new(),
    };
    format!(
        r#"{{"key":"{key}","rate":"{}","algorithm":"{}"{burst}}}"#,
        limit.rate(),
        limit.algorithm()
    )
}

/// What to check of the `admitted` checks of one key under `limit`, and the limit to check
/// them against, when `l` is the longest `received - sent` of an admission.
///
/// Redis decided each admission at some d in [sent, received] (same host, same clock), so
/// d - sent lies in [0, l]. Checking the sent times against a limit relaxed by l can never
/// report a violation the true times did not commit:
///
/// - gcra (BURST B, T = PERIOD/COUNT): the admissions whose sent time lies in [x, y] were
///   decided in [x, y + l], so there are at most B + floor((y - x + l)/T)
///   <= (B + ceil(l/T)) + floor((y - x)/T) of them. Every interval of sent times meets the
///   guarantee with burst B' = B + ceil(l/T) (+1 to spare).
/// - sliding-window (COUNT per PERIOD P): the admissions sent in [x, x + P - l) were decided
///   in [x, x + P), so at most COUNT of them: check windows of P' = P - l (rounded down to
///   the millisecond). Meaningful while l < P/2, which this asserts.
/// - fixed-window: an admission whose whole [sent, received] lies inside one aligned window
///   was decided in that window; counting only those per window can only undercount, so
///   COUNT per window still bounds them.
pub fn relaxed(key: &str, limit: &Limit, admitted: &[&Sample], l: u64) -> (Vec<Admission>, Limit) {
    let at_sent = |a: &[&Sample]| -> Vec<Admission> {
        a.iter().map(|s| Admission { t: s.sent, cost: 1 }).collect()
    };
    let (count, period) = (limit.rate().count(), limit.rate().period_ns());
    match limit.algorithm() {
        Algorithm::Gcra => {
            // ceil(l / T) = ceil(l × COUNT / PERIOD), exactly.
            let burst = limit.burst() + (l * count).div_ceil(period) + 1;
            let relaxed =
                Limit::new(limit.rate(), Algorithm::Gcra, Some(burst)).expect("relaxed limit");
            (at_sent(admitted), relaxed)
        }
        Algorithm::SlidingWindow => {
            assert!(
                l < period / 2,
                "L = {l} ns is too long for a meaningful check of {key}"
            );
            let rate = Rate::new(count, (period - l) / MS, Unit::Millisecond).expect("rate");
            let relaxed = Limit::new(rate, Algorithm::SlidingWindow, None).expect("relaxed limit");
            (at_sent(admitted), relaxed)
        }
        _ => {
            let inside: Vec<&Sample> = admitted
                .iter()
                .copied()
                .filter(|s| s.sent / period == s.received / period)
                .collect();
            (at_sent(&inside), *limit)
        }
    }
}
