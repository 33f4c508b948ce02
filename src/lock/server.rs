//! One Redis server: its address, a lazily opened connection, and the three lock scripts.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use redis::{
    Client, Cmd, Connection, ConnectionAddr, ErrorKind, FromRedisValue, IntoConnectionInfo, Script,
    ServerErrorKind, ToRedisArgs, Value,
};

use super::keys::Keys;
use super::resolve::Lookup;

/// A Lua script, run by its hash (EVALSHA) and sent in full (EVAL, which also caches it) only
/// when the server does not know it yet. `Script::invoke` does the same with a SCRIPT LOAD in
/// between, but then a request could take three round trips, each with the whole time-out.
pub(super) struct Lua {
    script: Script,
    code: String,
}

impl Lua {
    /// The script in `source`, without its comment lines: they are for people, and with
    /// several servers a script often goes in full (see `mux.rs`).
    pub(super) fn new(source: &str) -> Self {
        let code = source
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        Lua {
            script: Script::new(&code),
            code,
        }
    }

    fn command(&self, by_hash: bool, keys: &[impl ToRedisArgs], args: &[Vec<u8>]) -> Cmd {
        let mut cmd = if by_hash {
            redis::cmd("EVALSHA")
        } else {
            redis::cmd("EVAL")
        };
        cmd.arg(if by_hash {
            self.script.get_hash()
        } else {
            &self.code
        });
        cmd.arg(keys.len()).arg(keys).arg(args);
        cmd
    }
}

static ACQUIRE: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("acquire.lua")));
static EXTEND: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("extend.lua")));
static RELEASE: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("release.lua")));
static FENCE: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("fence.lua")));
static LEAVE: LazyLock<Lua> = LazyLock::new(|| Lua::new(include_str!("leave.lua")));

/// A command or a pipeline: what `Server::query` sends.
pub trait Request {
    fn send<T: FromRedisValue>(&self, connection: &mut Connection) -> redis::RedisResult<T>;
}

impl Request for Cmd {
    fn send<T: FromRedisValue>(&self, connection: &mut Connection) -> redis::RedisResult<T> {
        self.query(connection)
    }
}

impl Request for redis::Pipeline {
    fn send<T: FromRedisValue>(&self, connection: &mut Connection) -> redis::RedisResult<T> {
        self.query(connection)
    }
}

/// Encodes script arguments.
pub(super) fn args(values: &[&dyn ToRedisArgsDyn]) -> Vec<Vec<u8>> {
    values.iter().flat_map(|v| v.encode()).collect()
}

/// `ToRedisArgs` is not object-safe; this is the part of it `args` needs.
pub(super) trait ToRedisArgsDyn {
    fn encode(&self) -> Vec<Vec<u8>>;
}

impl<T: ToRedisArgs> ToRedisArgsDyn for T {
    fn encode(&self) -> Vec<Vec<u8>> {
        self.to_redis_args()
    }
}

/// How long to wait for a TCP (and TLS) connection and its handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection target; the connection itself is opened on first use and re-opened after an error.
pub struct Server {
    client: Client,
    /// `host:port` or the socket path: safe to print, never the password.
    pub address: String,
    connection: Option<Connection>,
    /// `--wait-replicas`: how many replicas must confirm each acquire and extension.
    pub replicas: u32,
    /// The host's addresses, shared by every copy of the server (see `resolve.rs`).
    lookup: Lookup,
}

/// What the holder of a busy lock told us about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: String,
    pub user: String,
    pub command: String,
    /// How long it has held the lock, when the holder wrote its details.
    pub age: Option<Duration>,
    /// Time left on its lease; `None` when the key has no expiry.
    pub remaining: Option<Duration>,
    /// How long ago its command ended, when `--min-hold` keeps the lock after that.
    pub ended: Option<Duration>,
    /// Its token: the value of the lock key.
    pub token: String,
}

/// One server's answer to an acquire.
#[derive(Debug)]
pub enum Acquired {
    Yes { fence: u64 },
    Busy(Holder),
}

/// Details written next to the lock for `status` and for busy messages.
#[derive(Debug, Clone)]
pub struct HolderInfo {
    pub host: String,
    pub pid: u32,
    pub user: String,
    pub command: String,
    /// Its --kill-after: how long `release --force` waits for it to stop its command.
    pub kill_after: Duration,
}

impl HolderInfo {
    /// Describes this process and the command it is about to run.
    pub fn current(command: &[std::ffi::OsString], kill_after: Duration) -> Self {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        let uid = nix::unistd::getuid();
        let from_env = |name| std::env::var(name).ok().filter(|user| !user.is_empty());
        let user = from_env("USER")
            .or_else(|| from_env("LOGNAME"))
            .or_else(|| local_user_name(uid))
            .or_else(|| {
                nix::unistd::User::from_uid(uid)
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .unwrap_or_else(|| format!("uid {uid}"));
        let mut command = command
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        if command.len() > MAX_COMMAND {
            let cut = (0..=MAX_COMMAND)
                .rev()
                .find(|&i| command.is_char_boundary(i))
                .unwrap_or(0);
            command.truncate(cut);
            command.push_str("...");
        }
        HolderInfo {
            host,
            pid: std::process::id(),
            user,
            command,
            kill_after,
        }
    }
}

/// The name of `uid` in /etc/passwd, where local users (root, service accounts) are. Cron and
/// services run without USER more often than not, and this is several times cheaper than the
/// full name-service lookup, which first tries to reach nscd; that lookup remains the fallback.
fn local_user_name(uid: nix::unistd::Uid) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let uid = uid.to_string();
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        (fields.next()? == uid).then(|| name.to_string())
    })
}

/// The command line is stored for people to read; a long one is cut.
const MAX_COMMAND: usize = 200;

impl Server {
    /// Validates the URL (scheme, TLS support, database number) without connecting.
    pub fn parse(url: &str) -> Result<Self> {
        let Some((scheme, _)) = url.split_once("://") else {
            bail!(
                "invalid Redis URL: expected redis://HOST[:PORT][/DB], rediss://... or redis+unix:///PATH"
            );
        };
        if !matches!(
            scheme,
            "redis" | "rediss" | "redis+unix" | "unix" | "valkey" | "valkeys"
        ) {
            bail!(
                "invalid Redis URL: unsupported scheme '{scheme}' (use redis://, rediss:// or redis+unix://)"
            );
        }
        // The redis crate's messages may quote the URL, password included: keep them out.
        let info = url
            .into_connection_info()
            .map_err(|_| anyhow!("invalid Redis URL for a {scheme}:// server: check the host, port and database number"))?;
        let address = match info.addr() {
            ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port} (TLS)"),
            ConnectionAddr::Unix(path) => path.display().to_string(),
            other => format!("{other:?}"),
        };
        // CLIENT SETINFO would cost a round trip on every start for no benefit to a lock.
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let info = info.set_redis_settings(settings);
        let client = Client::open(info).map_err(|e| anyhow!("invalid Redis URL: {e}"))?;
        Ok(Server {
            replicas: 0,
            client,
            address,
            connection: None,
            lookup: Lookup::default(),
        })
    }

    /// The same server, without our connection: for a thread that needs its own.
    pub fn clone_target(&self) -> Server {
        Server {
            client: self.client.clone(),
            address: self.address.clone(),
            connection: None,
            replicas: self.replicas,
            lookup: self.lookup.clone(),
        }
    }

    /// The host to look up, if the server has one, and where its addresses go.
    pub(super) fn lookup(&self) -> Option<(&str, u16, &Lookup)> {
        match self.info().addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                Some((host, *port, &self.lookup))
            }
            _ => None,
        }
    }

    /// Opens a fresh connection, separate from the one used for lock commands.
    pub fn connect(&self) -> Result<Connection> {
        self.open(Instant::now() + CONNECT_TIMEOUT)
            .with_context(|| format!("cannot connect to Redis at {}", self.address))
    }

    /// Opens a connection before `deadline`: over plain TCP to the addresses looked up once
    /// (`resolve.rs`), tried in turn as redis-rs does (`localhost` may name ::1 first, where
    /// the server may not listen). `Err`: why not, without naming the server.
    fn open(&self, deadline: Instant) -> Result<Connection> {
        let connect = |client: &Client| {
            let left = remaining(deadline)?.min(CONNECT_TIMEOUT);
            client.get_connection_with_timeout(left)
        };
        let info = self.info();
        let Some((host, port, lookup)) = self.lookup() else {
            return connect(&self.client).map_err(|e| describe(&e));
        };
        let addresses = lookup.addresses(host, port)?;
        if let ConnectionAddr::TcpTls { .. } = info.addr() {
            // redis-rs needs the name to check the certificate, and its blocking API takes no
            // address with it: it looks the name up again, unbounded. The lookup above at least
            // bounds and reports a resolver that does not answer.
            return connect(&self.client).map_err(|e| describe(&e));
        }
        let mut last = anyhow!("cannot resolve {host}: it has no address");
        for ip in addresses {
            let at = ConnectionAddr::Tcp(ip.ip().to_string(), port);
            let client = Client::open(info.clone().set_addr(at))
                .map_err(|e| anyhow!("invalid Redis URL: {e}"))?;
            match connect(&client) {
                Ok(connection) => return Ok(connection),
                Err(e) => last = describe(&e),
            }
        }
        Err(last)
    }

    /// Runs `call` within `timeout`, and with `--wait-replicas` waits for replicas to confirm
    /// the lease it wrote. `in_flight` runs once the script is sent (see `eval_sending`).
    pub(super) fn perform(
        &mut self,
        call: &Call,
        timeout: Duration,
        in_flight: &mut dyn FnMut(),
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        let reply: Value =
            self.eval_sending(call.lua, &call.keys, &call.args, timeout, in_flight)?;
        if (call.wrote)(&reply) {
            self.replicated(deadline)?;
        }
        Ok(reply)
    }

    /// The connection settings, for `mux.rs`, which opens connections of its own.
    pub(super) fn info(&self) -> &redis::ConnectionInfo {
        self.client.get_connection_info()
    }

    /// Runs a script within `timeout`, all round trips and a connect included.
    pub(super) fn eval<T: FromRedisValue>(
        &mut self,
        lua: &Lua,
        keys: &[impl ToRedisArgs],
        args: &[Vec<u8>],
        timeout: Duration,
    ) -> Result<T> {
        self.eval_sending(lua, keys, args, timeout, &mut || {})
    }

    /// `eval`, running `in_flight` on this thread once the request is sent: work done while
    /// the reply is on its way costs no time.
    pub(super) fn eval_sending<T: FromRedisValue>(
        &mut self,
        lua: &Lua,
        keys: &[impl ToRedisArgs],
        args: &[Vec<u8>],
        timeout: Duration,
        in_flight: &mut dyn FnMut(),
    ) -> Result<T> {
        self.call(timeout, |connection, deadline| {
            let by_hash = arm(connection, deadline).and_then(|()| {
                connection
                    .send_packed_command(&lua.command(true, keys, args).get_packed_command())?;
                // The reply parser (memchr) asks the CPU for its features on first use, and
                // each CPUID traps to the hypervisor in a virtual machine (4 µs each on the
                // one BENCHMARKS.md was measured on): ask now, while the reply travels.
                #[cfg(target_arch = "x86_64")]
                let _ = std::arch::is_x86_feature_detected!("avx2");
                in_flight();
                redis::from_redis_value(connection.recv_response()?.extract_error()?)
                    .map_err(Into::into)
            });
            match by_hash {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    arm(connection, deadline)
                        .and_then(|()| lua.command(false, keys, args).query(connection))
                }
                other => other,
            }
        })
    }

    /// Runs one command or pipeline within `timeout`, a connect included.
    pub fn query<T: FromRedisValue>(
        &mut self,
        request: &impl Request,
        timeout: Duration,
    ) -> Result<T> {
        self.call(timeout, |connection, deadline| {
            arm(connection, deadline).and_then(|()| request.send(connection))
        })
    }

    /// Runs `op` on our connection before a deadline `timeout` away. After any error the
    /// connection is dropped: a late reply must never be read as the answer to the next request.
    fn call<T>(
        &mut self,
        timeout: Duration,
        op: impl FnOnce(&mut Connection, Instant) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let address = self.address.clone();
        let connection = self
            .connected(deadline)
            .map_err(|e| e.context(format!("cannot connect to Redis at {address}")))?;
        op(connection, deadline).map_err(|e| {
            self.connection = None;
            describe(&e).context(format!("Redis at {address}"))
        })
    }

    /// With `--wait-replicas N`: waits (WAIT N) until N replicas have the last write, or fails.
    fn replicated(&mut self, deadline: Instant) -> Result<()> {
        if self.replicas == 0 {
            return Ok(());
        }
        let wanted = self.replicas;
        let address = self.address.clone();
        let connection = self
            .connected(deadline)
            .map_err(|e| e.context(format!("Redis at {address}")))?;
        let result = (|| {
            // The server answers WAIT when its own time-out ends; ours ends a little later.
            let left = remaining(deadline)?;
            arm(connection, deadline)?;
            let wait_ms = (left.as_millis() as u64 * 9 / 10).max(1);
            redis::cmd("WAIT")
                .arg(wanted)
                .arg(wait_ms)
                .query::<u32>(connection)
        })();
        match result {
            Ok(acked) if acked >= wanted => Ok(()),
            Ok(acked) => bail!(
                "Redis at {address}: only {acked} of {wanted} replicas confirmed the write in time"
            ),
            Err(e) => {
                self.connection = None;
                Err(describe(&e).context(format!("Redis at {address}")))
            }
        }
    }

    /// Opens our connection ahead of the first request; a failure is left for that request to
    /// meet again and report.
    pub fn warm_up(&mut self) {
        let _ = self.connected(Instant::now() + CONNECT_TIMEOUT);
    }

    /// Our connection, opened first if needed, before `deadline`.
    fn connected(&mut self, deadline: Instant) -> Result<&mut Connection> {
        if self.connection.is_none() {
            self.connection = Some(self.open(deadline)?);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }
}

/// One lock script to run on a server: what `Lock` sends to each of its servers.
pub(super) struct Call {
    pub lua: &'static Lua,
    pub keys: Vec<String>,
    pub args: Vec<Vec<u8>>,
    /// Whether the reply says the script wrote the lease: `--wait-replicas` must then see it
    /// confirmed by the replicas.
    pub wrote: fn(&Value) -> bool,
}

impl Call {
    /// The command, by hash (EVALSHA) or in full (EVAL).
    pub(super) fn packed(&self, by_hash: bool) -> Vec<u8> {
        self.lua
            .command(by_hash, &self.keys, &self.args)
            .get_packed_command()
    }

    /// Takes the lock, or describes its holder (see `acquired`); when busy, a caller that
    /// will `queue` joins the waiters.
    pub(super) fn acquire(
        keys: &Keys,
        token: &str,
        ttl: Duration,
        me: &HolderInfo,
        queue: bool,
    ) -> Call {
        let queue = if queue { "1" } else { "0" };
        Call {
            lua: &ACQUIRE,
            keys: vec![
                keys.lock.clone(),
                keys.holder.clone(),
                keys.fence.clone(),
                keys.waiters.clone(),
            ],
            args: args(&[
                &token,
                &ms(ttl),
                &me.host,
                &me.pid,
                &me.user,
                &me.command,
                &queue,
                &ms(me.kill_after),
                &keys.control,
            ]),
            wrote: |reply| matches!(reply, Value::Array(items) if items.first() == Some(&Value::Int(1))),
        }
    }

    /// Raises the fencing counter to `fence` if it is lower; the reply is of no interest.
    pub(super) fn raise_fence(keys: &Keys, token: &str, fence: u64) -> Call {
        Call {
            lua: &FENCE,
            keys: vec![keys.fence.clone(), keys.holder.clone(), keys.lock.clone()],
            args: args(&[&fence, &token]),
            wrote: |_| false,
        }
    }

    /// Extends the lease if it is still ours: 1 if so, else 0. `stopping`: says that the
    /// holder is stopping its command on `release --force`'s request.
    pub(super) fn extend(keys: &Keys, token: &str, ttl: Duration, stopping: bool) -> Call {
        let stopping = if stopping { "1" } else { "0" };
        Call {
            lua: &EXTEND,
            keys: vec![keys.lock.clone(), keys.holder.clone()],
            args: args(&[&token, &ms(ttl), &stopping]),
            wrote: |reply| reply == &Value::Int(1),
        }
    }

    /// Leaves the queue of waiters.
    pub(super) fn leave(keys: &Keys, token: &str) -> Call {
        Call {
            lua: &LEAVE,
            keys: vec![keys.waiters.clone()],
            args: args(&[&token]),
            wrote: |_| false,
        }
    }

    /// Releases the lock if it is still ours (non-zero if so); with `keep`, leaves it to
    /// expire after `keep`.
    pub(super) fn release(keys: &Keys, token: &str, keep: Duration) -> Call {
        Call {
            lua: &RELEASE,
            keys: vec![keys.lock.clone(), keys.holder.clone(), keys.waiters.clone()],
            args: args(&[&token, &ms(keep), &keys.channel]),
            wrote: |_| false,
        }
    }
}

/// What an acquire script's reply says: ours, with the fencing token, or the holder's details.
pub(super) fn acquired(reply: Value) -> Result<Acquired> {
    let Value::Array(reply) = reply else {
        bail!("unexpected reply from the acquire script: {reply:?}");
    };
    match reply.as_slice() {
        [Value::Int(1), Value::Int(fence)] => Ok(Acquired::Yes {
            fence: *fence as u64,
        }),
        [
            Value::Int(0),
            Value::Int(pttl),
            Value::Int(age),
            host,
            pid,
            user,
            command,
            Value::Int(ended),
            token,
        ] => Ok(Acquired::Busy(Holder {
            host: text(host),
            pid: text(pid),
            user: text(user),
            command: text(command),
            age: (*age >= 0).then(|| Duration::from_millis(*age as u64)),
            remaining: (*pttl >= 0).then(|| Duration::from_millis(*pttl as u64)),
            ended: (*ended >= 0).then(|| Duration::from_millis(*ended as u64)),
            token: text(token),
        })),
        _ => bail!("unexpected reply from the acquire script: {reply:?}"),
    }
}

/// An integer reply.
pub(super) fn integer(reply: Value) -> Result<i64> {
    Ok(redis::from_redis_value(reply)?)
}

/// When a key of another type is in the way of a lock's script, says which keys to look at.
pub(super) fn name_keys_in_the_way(
    error: anyhow::Error,
    address: &str,
    keys: &Keys,
) -> anyhow::Error {
    if !format!("{error:#}").contains(WRONG_TYPE) {
        return error;
    }
    anyhow!(
        "{WRONG_TYPE} at {}: {}, {} or {} holds a value redlock did not write \
         (delete it, or choose another --prefix)",
        address,
        keys.lock,
        keys.fence,
        keys.waiters
    )
}

/// Sets the socket time-outs to what is left before `deadline`.
fn arm(connection: &Connection, deadline: Instant) -> redis::RedisResult<()> {
    let left = remaining(deadline)?;
    connection.set_read_timeout(Some(left))?;
    connection.set_write_timeout(Some(left))
}

fn remaining(deadline: Instant) -> redis::RedisResult<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into());
    }
    Ok(left)
}

/// A one-line description of a Redis error, with the usual causes named.
pub fn describe(error: &redis::RedisError) -> anyhow::Error {
    let text = error.to_string();
    if error.is_timeout() {
        anyhow!("timed out")
    } else if text.contains("No such file or directory") {
        anyhow!("no such socket")
    } else if error.is_connection_refusal() {
        anyhow!("connection refused")
    } else if error.kind() == ErrorKind::Parse {
        anyhow!("{NOT_REDIS}")
    } else {
        describe_reply(&text)
    }
}

/// A one-line description of an error a server answered, with the usual causes named.
pub(super) fn describe_reply(text: &str) -> anyhow::Error {
    if text.contains("WRONGPASS") || text.contains("invalid password") {
        anyhow!("authentication failed: wrong username or password")
    } else if text.contains("NOAUTH") || text.contains("unauthenticated") {
        anyhow!("authentication required: give the password in the URL (redis://:PASSWORD@host)")
    } else if text.contains("WRONGTYPE") || text.contains("not an integer") {
        anyhow!("{WRONG_TYPE}")
    } else {
        anyhow!("{}", one_line(text))
    }
}

/// A one-line description of a failed connection or socket operation.
pub(super) fn describe_io(error: &std::io::Error) -> anyhow::Error {
    match error.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => anyhow!("timed out"),
        std::io::ErrorKind::NotFound => anyhow!("no such socket"),
        std::io::ErrorKind::ConnectionRefused => anyhow!("connection refused"),
        _ => anyhow!("{}", one_line(&error.to_string())),
    }
}

pub(super) const NOT_REDIS: &str =
    "the server does not answer like Redis (is this the right port?)";

const WRONG_TYPE: &str = "a key of another type is in the way";

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Redis takes whole milliseconds; a sub-millisecond remainder is dropped.
pub fn ms(duration: Duration) -> u64 {
    duration.as_millis() as u64
}
