//! A `redis-server` of the test's own: a free loopback port, no persistence, its PID checked
//! through INFO against port races, freeze, thaw, crash and restart, its log printed when a
//! test fails; and what a test reads of it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use super::waiting::{PATIENCE, wait_until};

/// A `redis-server` of our own, on a free port, without persistence; killed by PID on drop.
pub struct RedisServer {
    process: Child,
    pub port: u16,
    dir: TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra arguments, e.g. `["--requirepass", "secret"]`.
    pub fn start_with(extra: &[&str]) -> Self {
        let password = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .map(|i| extra[i + 1]);
        let ready_url = move |port: u16| match password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        };
        let args = |port: u16| {
            [&["--port", &port.to_string()][..], extra]
                .concat()
                .iter()
                .map(|a| a.to_string())
                .collect()
        };
        Self::launch(args, ready_url)
    }

    /// Starts redis-server on a free port with the arguments `args(port)` gives; it is ready
    /// when `ready_url(port)` reaches it, and it is ours (not another test's on the same port).
    pub(super) fn launch(
        args: impl Fn(u16) -> Vec<String>,
        ready_url: impl Fn(u16) -> String,
    ) -> Self {
        // Another test may take the port between our probe and redis' bind: try again then.
        let mut said = String::new();
        for _ in 0..10 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir");
            let process = spawn_redis(dir.path(), &args(port));
            let mut server = RedisServer { process, port, dir };
            if server.wait_ready(&ready_url(port)) {
                return server;
            }
            said = server.log();
        }
        // A server built without an option (TLS) says so on stderr, before its log is open.
        panic!(
            "could not start {}; its last try said:\n{said}",
            server_program()
        );
    }

    fn wait_ready(&mut self, url: &str) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.process.try_wait().unwrap().is_some() {
                return false; // could not bind: the caller tries another port
            }
            match self.server_pid(url) {
                Some(pid) if pid == self.process.id() => return true,
                Some(_) => return false, // someone else's server on this port
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        false
    }

    /// The PID of the server answering at `url`, from INFO.
    fn server_pid(&self, url: &str) -> Option<u32> {
        let client = redis::Client::open(url).ok()?;
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut connection)
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|p| p.trim().parse().ok())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.process.id() as i32)
    }

    /// A connection for the test's own inspection and fault injection.
    pub fn connection(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).unwrap();
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap();
        connection
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        connection
    }

    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("{args:?} on port {}: {e}", self.port))
    }

    /// `cmd`, for a server that may refuse for a moment (a failover under way).
    pub fn try_cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query(&mut self.connection())
    }

    /// A partition, as far as the client can tell: the process stops answering.
    pub fn freeze(&self) {
        kill(self.pid(), Signal::SIGSTOP).unwrap();
    }

    pub fn thaw(&self) {
        kill(self.pid(), Signal::SIGCONT).unwrap();
    }

    /// A crash: SIGKILL, and the process reaped. `restart_empty` brings it back.
    pub fn crash(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// A crash and a restart without persistence: the same port, an empty dataset.
    pub fn restart_empty(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let port = self.port.to_string();
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.process = spawn_redis(self.dir.path(), &["--port".into(), port.clone()]);
            if self.wait_ready(&self.url()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "could not restart redis-server on {port}"
            );
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }

    /// What the server wrote to its stderr (errors in its arguments), then its log.
    pub fn log(&self) -> String {
        let read = |name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        read("stderr") + &read("redis.log")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = kill(self.pid(), Signal::SIGCONT);
        let _ = self.process.kill();
        let _ = self.process.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- redis-server log (port {}) ---\n{}",
                self.port,
                self.log()
            );
        }
    }
}

/// The server program every fixture starts: `$REDLOCK_TEST_REDIS_SERVER` (a path or a name on
/// the PATH: another Redis or a Valkey, as .ci/run tests each supported version), else
/// `redis-server`. A Sentinel or a cluster node is this same program with other arguments.
pub fn server_program() -> String {
    std::env::var("REDLOCK_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// A redis-server without persistence, logging to `dir`, with `args` (the port among them).
pub(super) fn spawn_redis(dir: &Path, args: &[String]) -> Child {
    let program = server_program();
    Command::new(&program)
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--dir", dir.to_str().unwrap(), "--logfile", "redis.log"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).expect("the server's stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} (see README's tests): {e}"))
}

pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The URLs of several servers, as REDLOCK_URL takes them.
pub fn urls(servers: &[RedisServer]) -> String {
    servers
        .iter()
        .map(RedisServer::url)
        .collect::<Vec<_>>()
        .join(",")
}

/// `n` servers of our own.
pub fn start_servers(n: usize) -> Vec<RedisServer> {
    (0..n).map(|_| RedisServer::start()).collect()
}

/// A primary and its replica, in sync.
pub fn primary_with_replica() -> (RedisServer, RedisServer) {
    let primary = RedisServer::start();
    let port = primary.port.to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    wait_until("the replica is in sync", || {
        primary
            .cmd::<String>(&["INFO", "replication"])
            .contains("state=online")
    });
    (primary, replica)
}

/// Keys in the database that have an expiry: after a clean run there must be none.
pub fn expiring_keys(server: &RedisServer) -> Vec<String> {
    let keys: Vec<String> = server.cmd(&["KEYS", "*"]);
    keys.into_iter()
        .filter(|k| server.cmd::<i64>(&["PTTL", k]) >= 0)
        .collect()
}

/// How many scripts the server has run (acquire, extend, release are all scripts).
pub fn script_calls(server: &RedisServer) -> u64 {
    let stats: String = server.cmd(&["INFO", "commandstats"]);
    let field = |line: &str, name: &str| -> u64 {
        (line.split([':', ',']))
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map_or(0, |n| n.parse().unwrap())
    };
    // A script sent by hash that the server did not know (NOSCRIPT) failed: it ran in full next.
    stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .map(|l| field(l, "calls") - field(l, "failed_calls"))
        .sum()
}

/// How many scripts `servers` ran in the next second: what a waiter that should sleep sends
/// (one polling every 100 ms would send ten tries).
pub fn scripts_in_a_second(servers: &[RedisServer]) -> u64 {
    let total = || servers.iter().map(script_calls).sum::<u64>();
    let before = total();
    std::thread::sleep(Duration::from_secs(1));
    total() - before
}
