//! Test fixtures: real `redis-server` processes on free loopback ports, and event-based waits.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

/// Generous bound for things that normally take milliseconds: only a broken build waits it out.
pub const PATIENCE: Duration = Duration::from_secs(20);

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
    fn launch(args: impl Fn(u16) -> Vec<String>, ready_url: impl Fn(u16) -> String) -> Self {
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

    /// A server that speaks only TLS on its port, with a certificate for 127.0.0.1 signed by a
    /// CA of its own; returns it with the directory that holds the CA's `ca.crt`.
    pub fn start_tls() -> (Self, TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path();
        let openssl = |args: &[&str]| openssl(certs, args);
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=redlock test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(certs.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
        let path = |name: &str| certs.join(name).to_str().unwrap().to_string();
        let (crt, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
        let tls_args = |port: u16| -> Vec<String> {
            let port = port.to_string();
            [
                "--port",
                "0",
                "--tls-port",
                &port,
                "--tls-cert-file",
                &crt,
                "--tls-key-file",
                &key,
            ]
            .into_iter()
            .chain(["--tls-ca-cert-file", &ca, "--tls-auth-clients", "no"])
            .map(String::from)
            .collect()
        };
        let ready_url = |port: u16| format!("rediss://127.0.0.1:{port}/#insecure");
        (Self::launch(tls_args, ready_url), dir)
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
fn spawn_redis(dir: &Path, args: &[String]) -> Child {
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

/// Runs `openssl` with `args` in `dir`, where the certificates of the TLS fixtures are made.
fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status();
    assert!(
        status.expect("openssl must be installed").success(),
        "openssl {args:?}"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `command`, which must succeed (its stderr shows why not): its stdout.
pub fn succeeded(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// `redlock` against `url`, with no REDLOCK_* variables inherited from the caller, no proxy
/// for the pings' endpoints on 127.0.0.1 (`HTTPS_PROXY`, ...), and the signals it handles at
/// their defaults (see `with_default_signals`).
pub fn redlock(url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_redlock"));
    for (key, _) in std::env::vars() {
        if key.starts_with("REDLOCK_") || key.to_ascii_lowercase().ends_with("_proxy") {
            command.env_remove(key);
        }
    }
    command.env("REDLOCK_URL", url);
    with_default_signals(&mut command);
    command
}

/// The signals redlock forwards to its command (redlock-run(1), SIGNALS; docs/design.md).
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Starts `command` with the signals redlock handles at their defaults, as a terminal's shell
/// starts a program: a test run started in the background by a shell without job control has
/// SIGINT and SIGQUIT ignored, and redlock keeps a signal ignored at start ignored (as `nohup`
/// needs), so the tests that send them would wait for nothing.
pub fn with_default_signals(command: &mut Command) -> &mut Command {
    // SAFETY: signal(2) only, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            for handled in FORWARDED {
                nix::sys::signal::signal(handled, nix::sys::signal::SigHandler::SigDfl)?;
            }
            Ok(())
        })
    }
}

/// Polls `condition` until it holds; panics with `what` after `PATIENCE`.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a process is gone (or a zombie nobody reaped yet: it runs no code either).
pub fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

pub fn read_pid(path: &Path) -> i32 {
    wait_until("the pid file is written", || {
        std::fs::read_to_string(path).is_ok_and(|s| s.ends_with('\n'))
    });
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A `redlock run` in the background whose command says `ready` and then holds the lock until
/// its stdin is closed (`finish`) or it is killed.
pub struct Holder {
    pub process: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    pub dir: TempDir,
}

/// The holder's default command: the shell's PID goes to `pid`, `ready` to stdout, then it
/// waits for its stdin to close.
pub const HOLD: &str = "echo $$ > pid; echo ready; read line; echo done";

impl Holder {
    pub fn start(url: &str, args: &[&str]) -> Self {
        Self::start_script(url, args, HOLD)
    }

    pub fn start_script(url: &str, args: &[&str], script: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut process = redlock(url)
            .arg("run")
            .args(args)
            .args(["--", "sh", "-c", script])
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = process.stdin.take();
        let mut stdout = BufReader::new(process.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(
            line,
            "ready\n",
            "the holder did not start: {}",
            stderr_of(&mut process)
        );
        Holder {
            process,
            stdin,
            stdout,
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The command's PID (the shell run by redlock).
    pub fn command_pid(&self) -> i32 {
        read_pid(&self.path("pid"))
    }

    pub fn redlock_pid(&self) -> Pid {
        Pid::from_raw(self.process.id() as i32)
    }

    pub fn send(&mut self, text: &str) {
        self.stdin
            .as_mut()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    /// Lets the command end; returns redlock's status and stderr.
    pub fn finish(&mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        self.wait()
    }

    /// Waits for redlock to end by itself; returns its status and stderr.
    pub fn wait(&mut self) -> (ExitStatus, String) {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        let status = self.process.wait().unwrap();
        (status, stderr_of(&mut self.process))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn stderr_of(process: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut stderr) = process.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
    }
    text
}

/// Keys in the database that have an expiry: after a clean run there must be none.
pub fn expiring_keys(server: &RedisServer) -> Vec<String> {
    let keys: Vec<String> = server.cmd(&["KEYS", "*"]);
    keys.into_iter()
        .filter(|k| server.cmd::<i64>(&["PTTL", k]) >= 0)
        .collect()
}

/// A terminal for a command, through script(1): what is typed goes to the terminal, what the
/// terminal shows comes back. Dropping it kills script(1), and the hang-up ends the rest.
pub struct Terminal {
    process: Child,
    input: ChildStdin,
    screen: std::sync::mpsc::Receiver<u8>,
    /// Everything shown so far.
    pub seen: String,
}

impl Terminal {
    pub fn start(command: &str, url: &str) -> Self {
        // Not under timeout(1): a terminal in its care sometimes loses Ctrl-C's SIGINT.
        let mut process = with_default_signals(&mut Command::new("script"))
            .args(["-qec", command, "/dev/null"])
            .env("REDLOCK_URL", url)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("script(1) from util-linux");
        let input = process.stdin.take().unwrap();
        let mut output = process.stdout.take().unwrap();
        let (sender, screen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut byte = [0u8; 1];
            while std::io::Read::read(&mut output, &mut byte).unwrap_or(0) == 1 {
                if sender.send(byte[0]).is_err() {
                    break;
                }
            }
        });
        Terminal {
            process,
            input,
            screen,
            seen: String::new(),
        }
    }

    pub fn type_in(&mut self, text: &str) {
        self.input.write_all(text.as_bytes()).unwrap();
        self.input.flush().unwrap();
    }

    /// Types a control key (Ctrl-C or Ctrl-Z) until the terminal shows `text`. In this sandbox
    /// a pseudo-terminal now and then echoes the key without sending its signal, even with no
    /// redlock involved (a shell under script(1) alone shows it), so one keystroke is not proof.
    /// After two tries the signal goes to the terminal's foreground group directly, as the
    /// terminal would send it: the group of the process whose pid is in `foreground`.
    pub fn press_until(&mut self, key: &str, text: &str, foreground: &Path) {
        let signal = match key {
            "\x03" => Signal::SIGINT,
            "\x1a" => Signal::SIGTSTP,
            other => panic!("no signal for key {other:?}"),
        };
        let deadline = Instant::now() + PATIENCE;
        let start = self.seen.len();
        for attempt in 0.. {
            if attempt < 2 {
                self.type_in(key);
            } else {
                let group = nix::unistd::getpgid(Some(Pid::from_raw(read_pid(foreground))));
                let _ = nix::sys::signal::killpg(group.unwrap(), signal);
            }
            // Generous: on a loaded machine the shell can take seconds to report a stop.
            if self.wait_for(start, text, Duration::from_secs(5)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?}; it showed:\n{}",
                self.seen
            );
        }
    }

    /// Waits until the terminal has shown `text` since the last call; panics after `PATIENCE`.
    pub fn expect(&mut self, text: &str) {
        let start = self.seen.len();
        if !self.wait_for(start, text, PATIENCE) {
            panic!(
                "the terminal never showed {text:?}; it showed:\n{}",
                self.seen
            );
        }
    }

    /// Whether `text` appears after byte `start` within `patience`.
    fn wait_for(&mut self, start: usize, text: &str, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        let mut bytes = Vec::new();
        while !self.seen[start..].contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.screen.recv_timeout(left) {
                Ok(byte) => {
                    bytes.push(byte);
                    if let Ok(text) = std::str::from_utf8(&bytes) {
                        self.seen.push_str(text);
                        bytes.clear();
                    }
                }
                Err(_) => return false,
            }
        }
        true
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // script(1) and what runs in the terminal: the terminal's hang-up ends the rest.
        let _ = nix::sys::signal::killpg(Pid::from_raw(self.process.id() as i32), Signal::SIGKILL);
        let _ = self.process.wait();
    }
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

/// A waiter for lock `name`: `redlock run --wait 120s` whose command creates `dir/took-over`.
pub fn waiter(url: &str, name: &str, dir: &Path) -> Child {
    redlock(url)
        .args(["run", "-n", name, "--wait", "120s", "--", "sh", "-c"])
        .arg("echo x > took-over")
        .current_dir(dir)
        .spawn()
        .unwrap()
}

/// Ends `holder`, whose lease is 60 s, and checks that `waiter` (see `waiter`) takes over on
/// the release notice: in milliseconds normally (see bench/); 20 s only rules out waiting for
/// the lease to expire.
pub fn takes_over_on_release(holder: &mut Holder, mut waiter: Child, dir: &Path) {
    assert!(!dir.join("took-over").exists());
    let released = Instant::now();
    assert!(holder.finish().0.success());
    let status = waiter.wait().unwrap();
    assert!(released.elapsed() < Duration::from_secs(20));
    assert!(status.success());
    assert!(dir.join("took-over").exists());
}

/// How many scripts the server has run (acquire, extend, release are all scripts).
pub fn script_calls(server: &RedisServer) -> u64 {
    let stats: String = server.cmd(&["INFO", "commandstats"]);
    stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
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

/// Waits until a waiter is subscribed to the release channel of lock `name`.
pub fn wait_for_subscriber(server: &RedisServer, name: &str) {
    wait_for_listener(
        server,
        &format!("redlock:{{{name}}}:released"),
        "a waiter subscribes",
    );
}

/// Waits until the holder of lock `name` listens on its control channel: from a moment after
/// its command started.
pub fn wait_for_holder(server: &RedisServer, name: &str) {
    wait_for_listener(
        server,
        &format!("redlock:{{{name}}}:control"),
        "the holder listens",
    );
}

fn wait_for_listener(server: &RedisServer, channel: &str, what: &str) {
    let mut connection = server.connection();
    wait_until(what, || listeners(&mut connection, channel) == 1);
}

/// How many listen on `channel`: redlock subscribes with sharded pub/sub (SSUBSCRIBE) where the
/// server has it (Redis 7+), with SUBSCRIBE before; either counts.
pub fn listeners(connection: &mut redis::Connection, channel: &str) -> i64 {
    let mut count = |kind: &str| {
        let counts: redis::RedisResult<Vec<redis::Value>> = redis::cmd("PUBSUB")
            .arg(kind)
            .arg(channel)
            .query(connection);
        match counts.ok().and_then(|c| c.get(1).cloned()) {
            Some(redis::Value::Int(n)) => n,
            _ => 0,
        }
    };
    count("NUMSUB") + count("SHARDNUMSUB")
}

/// `loops` shell loops of `runs` runs each on one lock name, all with `--wait`: checks that the
/// critical sections never overlap and that each sees a larger fencing token than the last.
pub fn contend(url: &str, loops: usize, runs: usize) {
    contend_on(url, "shared", loops, runs);
}

/// `contend` on the lock `name`.
pub fn contend_on(url: &str, name: &str, loops: usize, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let redlock = env!("CARGO_BIN_EXE_redlock");
    // mkdir is atomic: it fails if another critical section is inside.
    let critical = "mkdir inside || echo OVERLAP >> log; echo \"start $REDLOCK_FENCE\" >> log; \
                    echo \"end $REDLOCK_FENCE\" >> log; rmdir inside";
    let script = format!(
        "for i in $(seq {runs}); do '{redlock}' run -n {name} --wait 120s -- sh -c '{critical}' \
         || echo FAILED $? >> log; done"
    );
    let shells: Vec<_> = (0..loops)
        .map(|_| {
            Command::new("sh")
                .args(["-c", &script])
                .env("REDLOCK_URL", url)
                .current_dir(dir.path())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut shell in shells {
        assert!(shell.wait().unwrap().success());
    }
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), loops * runs * 2, "{log}");
    let mut last_fence = 0;
    for pair in lines.chunks(2) {
        let start: u64 = pair[0].strip_prefix("start ").expect(&log).parse().unwrap();
        let end: u64 = pair[1].strip_prefix("end ").expect(&log).parse().unwrap();
        assert_eq!(start, end, "another run got in between:\n{log}");
        assert!(
            start > last_fence,
            "fence went from {last_fence} to {start}:\n{log}"
        );
        last_fence = start;
    }
}

/// A server that speaks TLS only to clients with a certificate its CA signed
/// (`--tls-auth-clients yes`), with the files a client needs in `certs`: `ca.crt`, and
/// `client.crt` with `client.key`; `stranger.crt` with `stranger.key` are a certificate the
/// server does not trust. Its plain port (`server.url()`) is for the test's own inspection.
pub struct MutualTls {
    pub server: RedisServer,
    pub tls_port: u16,
    pub certs: TempDir,
}

impl MutualTls {
    pub fn start() -> Self {
        let certs = tempfile::tempdir().unwrap();
        let dir = certs.path();
        let openssl = |args: &[&str]| openssl(dir, args);
        // EC keys: made in a moment, where RSA keys take a good part of a second each.
        let new_key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let self_signed = |name: &str, subject: &str| {
            let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
            let args = [
                &["req", "-x509"][..],
                &new_key,
                &["-keyout", &key, "-out", &crt],
            ]
            .concat();
            openssl(&[&args[..], &["-days", "2", "-subj", subject]].concat());
        };
        let signed = |name: &str, subject: &str, extension: &str| {
            let (key, csr, crt, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("{name}.ext"),
            );
            let args = [&["req"][..], &new_key, &["-keyout", &key, "-out", &csr]].concat();
            openssl(&[&args[..], &["-subj", subject]].concat());
            std::fs::write(dir.join(&ext), format!("{extension}\n")).unwrap();
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        };
        self_signed("ca", "/CN=redlock test CA");
        signed("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1");
        signed("client", "/CN=redlock", "extendedKeyUsage=clientAuth");
        self_signed("stranger", "/CN=stranger");
        let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
        let (crt, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
        // The plain port tells when the server is ready (the fixture's client has no
        // certificate); the TLS port is taken afresh with each attempt, as the plain one is.
        let tls_port = std::cell::Cell::new(0);
        let args = |port: u16| -> Vec<String> {
            tls_port.set(free_port());
            let (port, tls) = (port.to_string(), tls_port.get().to_string());
            [
                "--port",
                &port,
                "--tls-port",
                &tls,
                "--tls-cert-file",
                &crt,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                "yes",
            ]
            .map(String::from)
            .to_vec()
        };
        let server = RedisServer::launch(args, |port| format!("redis://127.0.0.1:{port}"));
        MutualTls {
            server,
            tls_port: tls_port.get(),
            certs,
        }
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port)
    }

    /// One of the files in `certs`, by name.
    pub fn file(&self, name: &str) -> String {
        self.certs.path().join(name).to_str().unwrap().to_string()
    }
}

pub mod apps;
pub mod cluster;
pub mod sentinel;

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

/// `redlock release --force` of `name` through `url` reaches a live holder, which stops its
/// command and lets go (the break waited for it), and that holder exits 76.
pub fn breaks_a_live_holder(url: &str, name: &str, holder: &mut Holder) {
    let output = redlock(url)
        .args(["release", "-n", name, "--force"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "the holder of '{name}' stopped its command and released"
        )),
        "{stderr}"
    );
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(76), "{stderr}");
}
