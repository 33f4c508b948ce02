//! Who holds a lock: the details a holder writes next to it, and what a busy reply says.

use std::time::Duration;

use anyhow::{Result, bail};
use redis::Value;

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

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    }
}
