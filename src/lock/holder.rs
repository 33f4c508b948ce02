//! Who holds a lock: what a run writes about itself next to the lock (`HolderInfo`), and what
//! a server says about the holder (`Holder`), read from one reply layout and printed one way,
//! whether in a busy message, by `status` or by `list`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use redis::Value;
use serde::Serialize;

/// The holder of a lock as one server has it; all `None` when the lock is free, and the details
/// `None` when the holder did not write them (a key set by hand). The field names are part of
/// the documented JSON of `status` and `list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// Its token: the value of the lock key.
    pub token: Option<String>,
    /// Time left on its lease: -1 when the key has no expiry.
    pub ttl_ms: Option<i64>,
    pub fence: Option<u64>,
    pub host: Option<String>,
    /// The pid of the holder's redlock.
    pub pid: Option<u32>,
    pub user: Option<String>,
    pub command: Option<String>,
    /// When it took the lock, in milliseconds since the Unix epoch (the server's clock).
    pub started_ms: Option<i64>,
    pub age_ms: Option<i64>,
    /// When `--min-hold` keeps the lock after its command ended: when that was.
    pub ended_ms: Option<i64>,
    /// When its `--timeout` ends (about: counted from when it took the lock).
    pub limit_ms: Option<i64>,
    /// Held shared (`run --shared`): by how many runs; this one is the one whose lease ends
    /// last. 0 in a busy reply: nobody holds it, but an exclusive waiter goes first.
    pub shared: Option<u32>,
}

impl Holder {
    /// How many fields `decode` reads.
    pub(super) const FIELDS: usize = 12;

    /// Reads the holder from a script's reply: `{token, pttl, fence, now_ms, start, host, pid,
    /// user, cmd, ended, limit, shared}`, '' where unknown. view.lua answers this, and acquire.lua after its 0
    /// when the lock is busy.
    pub(super) fn decode(fields: &[Value]) -> Holder {
        // Printed on one line, to a terminal: whoever can write the key could plant escape
        // sequences, and a multi-line `sh -c` script would break the line.
        let text = |i: usize| match fields.get(i) {
            Some(Value::BulkString(b)) if !b.is_empty() => {
                Some(one_line(&String::from_utf8_lossy(b)))
            }
            Some(Value::Int(n)) => Some(n.to_string()),
            _ => None,
        };
        let number = |i: usize| text(i).and_then(|t| t.parse::<i64>().ok());
        let now_ms = number(3).unwrap_or(0);
        // Written by redlock, but anyone can write a key: nonsense must not become a panic.
        let plausible = |ms: i64| (0..=32_503_680_000_000).contains(&ms).then_some(ms);
        let started_ms = number(4).and_then(plausible);
        let token = text(0);
        Holder {
            ttl_ms: token.is_some().then(|| number(1)).flatten(),
            fence: text(2).and_then(|f| f.parse().ok()),
            host: text(5),
            pid: text(6).and_then(|p| p.parse().ok()),
            user: text(7),
            command: text(8),
            age_ms: started_ms.and_then(|start| now_ms.checked_sub(start)),
            started_ms,
            ended_ms: number(9).and_then(plausible),
            limit_ms: number(10).and_then(plausible),
            shared: text(11).and_then(|n| n.parse().ok()),
            token,
        }
    }

    /// Time left on its lease; `None` when the key has no expiry.
    pub fn remaining(&self) -> Option<Duration> {
        self.ttl_ms.filter(|ttl| *ttl >= 0).map(clamped_millis)
    }

    /// How long it has held the lock, when it wrote when it took it.
    pub fn age(&self) -> Option<Duration> {
        self.age_ms.map(clamped_millis)
    }

    /// When it took the lock, by the server's clock.
    pub fn started(&self) -> Option<SystemTime> {
        self.started_ms.map(|ms| UNIX_EPOCH + clamped_millis(ms))
    }

    /// Milliseconds until its `--timeout` ends, when it has one: below zero once it has run
    /// out (its command is being stopped).
    pub fn time_limit_in(&self) -> Option<i64> {
        let now = self.started_ms? + self.age_ms?;
        Some(self.limit_ms? - now)
    }

    /// How long ago its command ended, when `--min-hold` keeps the lock after that.
    pub fn ended_ago(&self) -> Option<Duration> {
        let now = self.started_ms? + self.age_ms?;
        Some(clamped_millis(now - self.ended_ms?))
    }
}

/// `db2 (pid 4242, ./backup.sh)`, with `{:#}` `db2 (pid 4242, user backup, ./backup.sh)`, or
/// `another client (not redlock)` when it wrote nothing about itself (a lock library, or a
/// key set by hand).
impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(host) = &self.host else {
            return f.write_str("another client (not redlock)");
        };
        let pid = self.pid.map_or("?".to_string(), |p| p.to_string());
        let command = self.command.as_deref().unwrap_or("?");
        if f.alternate() {
            let user = self.user.as_deref().unwrap_or("?");
            write!(f, "{host} (pid {pid}, user {user}, {command})")
        } else {
            write!(f, "{host} (pid {pid}, {command})")
        }
    }
}

/// One server's answer to an acquire.
#[derive(Debug)]
pub enum Acquired {
    /// Ours: `place` of the lock (0 for a plain lock), with its fencing token; `free`: the
    /// places that were free on this server before.
    Yes {
        fence: u64,
        place: usize,
        free: Vec<usize>,
    },
    /// Every place is held: their holders, place 0 first.
    Busy(Vec<Holder>),
    /// The lock is held with another `--limit`: this one.
    Mismatch(usize),
}

/// What an acquire script's reply says: ours, with the fencing token and the place, the
/// holders' details, or the limit in force.
pub(super) fn acquired(reply: Value) -> Result<Acquired> {
    let Value::Array(reply) = reply else {
        bail!("unexpected reply from the acquire script: {reply:?}");
    };
    match reply.as_slice() {
        [Value::Int(1), Value::Int(fence), Value::Int(place), free] => Ok(Acquired::Yes {
            fence: *fence as u64,
            place: *place as usize,
            free: redis::from_redis_value(free.clone())?,
        }),
        [Value::Int(2), limit] => {
            let limit: usize = redis::from_redis_value(limit.clone())?;
            Ok(Acquired::Mismatch(limit))
        }
        [Value::Int(0), holders @ ..]
            if !holders.is_empty() && holders.len() % Holder::FIELDS == 0 =>
        {
            Ok(Acquired::Busy(
                holders.chunks(Holder::FIELDS).map(Holder::decode).collect(),
            ))
        }
        _ => bail!("unexpected reply from the acquire script: {reply:?}"),
    }
}

/// Milliseconds as the server counts them (signed) as a duration; below zero (clocks that
/// differ between servers) is none.
pub(super) fn clamped_millis(millis: i64) -> Duration {
    Duration::from_millis(millis.max(0) as u64)
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
    /// Its --timeout, if it has one: waiters are told when it ends.
    pub time_limit: Option<Duration>,
}

impl HolderInfo {
    /// Describes this process and the command it is about to run: its `label`, else its
    /// command line with the credentials hidden (`redact.rs`).
    pub fn current(
        command: &[std::ffi::OsString],
        label: Option<&str>,
        kill_after: Duration,
    ) -> Self {
        let host = host_name();
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
        let words: Vec<String> = command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut command = match label {
            Some(label) => label.to_string(),
            None => super::redact::command_line(&words),
        };
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
            time_limit: None,
        }
    }
}

/// `text` as it may be printed on one line of a terminal: what anyone who can write a key
/// could have planted there (escape sequences) shows as `?`, and a line break or tab (a
/// multi-line `sh -c` script) as a space.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' | '\r' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// The name this host goes by in the lock's details and history: REDLOCK_HOST when set (a
/// container's host name is often a meaningless id), else the host name.
pub fn host_name() -> String {
    std::env::var("REDLOCK_HOST")
        .ok()
        .filter(|host| !host.is_empty())
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .map(|h| h.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "unknown".into())
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
pub const MAX_COMMAND: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_decodes_and_nonsense_is_unknown() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = [
            bulk("t"),
            Value::Int(27_000),
            bulk("17"),
            Value::Int(1_192_000),
            bulk("1000000"),
            bulk("db2"),
            bulk("4242"),
            bulk("backup"),
            bulk("./backup.sh"),
            bulk(""),
        ];
        let holder = Holder::decode(&reply);
        assert_eq!(holder.token.as_deref(), Some("t"));
        assert_eq!(holder.fence, Some(17));
        assert_eq!(holder.age(), Some(Duration::from_secs(192)));
        assert_eq!(holder.remaining(), Some(Duration::from_secs(27)));
        assert_eq!(holder.to_string(), "db2 (pid 4242, ./backup.sh)");
        assert_eq!(holder.ended_ago(), None);

        // Planted escapes and a multi-line script come out on one line, harmless.
        let mut planted = reply.clone();
        planted[5] = bulk("db\x1b]0;owned\x07");
        planted[8] = bulk("sh -c 'a\nb'");
        let holder = Holder::decode(&planted);
        assert_eq!(holder.to_string(), "db?]0;owned? (pid 4242, sh -c 'a b')");

        let mut odd = reply.clone();
        odd[4] = bulk("-5");
        odd[6] = bulk("many");
        let holder = Holder::decode(&odd);
        assert_eq!(
            (holder.started_ms, holder.age_ms, holder.pid),
            (None, None, None)
        );

        let free = [
            bulk(""),
            Value::Int(-2),
            bulk(""),
            Value::Int(1),
            bulk(""),
            bulk(""),
            bulk(""),
            bulk(""),
            bulk(""),
            bulk(""),
        ];
        assert_eq!(Holder::decode(&free), Holder::default());
    }
}
