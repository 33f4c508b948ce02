//! What the operators' scripts answer (`scripts::view`, `break_lock`, `ask_to_stop`): a lock as
//! one server sees it, what breaking it found, what asking its holder to stop found.

use std::time::Duration;

use anyhow::Result;
use redis::Value;
use serde::Serialize;

use super::keys::Keys;
use super::name_keys_in_the_way;

/// One server's view of a lock. Field names are part of the documented JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ServerView {
    pub address: String,
    pub held: bool,
    pub token: Option<String>,
    pub ttl_ms: Option<i64>,
    pub fence: Option<u64>,
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub user: Option<String>,
    pub command: Option<String>,
    /// When the holder took the lock, in milliseconds since the Unix epoch (server clock).
    pub started_ms: Option<i64>,
    pub age_ms: Option<i64>,
    /// When `--min-hold` keeps the lock after its command ended: when that was.
    pub ended_ms: Option<i64>,
    pub error: Option<String>,
}

impl ServerView {
    pub fn unreachable(address: &str, error: String) -> Self {
        ServerView {
            address: address.to_string(),
            held: false,
            token: None,
            ttl_ms: None,
            fence: None,
            host: None,
            pid: None,
            user: None,
            command: None,
            started_ms: None,
            age_ms: None,
            ended_ms: None,
            error: Some(error),
        }
    }
}

/// One server's view of the lock, from `scripts::view`'s reply (read in one reply, so that one
/// time-out bounds it).
pub fn view(address: &str, keys: &Keys, reply: Option<Result<Value>>) -> ServerView {
    let fields = match reply.map(|r| r.and_then(|v| Ok(redis::from_redis_value::<Vec<Value>>(v)?)))
    {
        None => return ServerView::unreachable(address, "did not answer before".into()),
        Some(Err(e)) => {
            let error = name_keys_in_the_way(e, address, keys);
            return ServerView::unreachable(address, format!("{error:#}"));
        }
        Some(Ok(fields)) => fields,
    };
    let text = |i: usize| match fields.get(i) {
        Some(redis::Value::BulkString(b)) if !b.is_empty() => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        Some(redis::Value::Int(n)) => Some(n.to_string()),
        _ => None,
    };
    let number = |i: usize| text(i).and_then(|t| t.parse::<i64>().ok());
    let now_ms = number(3).unwrap_or(0);
    // Written by redlock, but anyone can write a key: nonsense must not become a panic.
    let plausible = |ms: i64| (0..=32_503_680_000_000).contains(&ms).then_some(ms);
    let started_ms = number(4).and_then(plausible);
    let ended_ms = number(9).and_then(plausible);
    let token = text(0);
    ServerView {
        address: address.to_string(),
        held: token.is_some(),
        ttl_ms: token.is_some().then(|| number(1)).flatten(),
        fence: text(2).and_then(|f| f.parse().ok()),
        host: text(5),
        pid: text(6).and_then(|p| p.parse().ok()),
        user: text(7),
        command: text(8),
        age_ms: started_ms.and_then(|start| now_ms.checked_sub(start)),
        started_ms,
        ended_ms,
        token,
        error: None,
    }
}

/// What breaking a lock found on one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    Deleted,
    NotHeld,
    OtherToken,
}

/// What `scripts::break_lock` answered.
pub fn broken(reply: Value) -> Result<Broken> {
    let outcome: i64 = redis::from_redis_value(reply)?;
    Ok(match outcome {
        1 => Broken::Deleted,
        0 => Broken::NotHeld,
        _ => Broken::OtherToken,
    })
}

/// What asking a lock's holder to stop found on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// The token the lock holds: `None` when there is no lock.
    pub token: Option<String>,
    /// The holder's --kill-after, when it wrote it.
    pub kill_after: Option<Duration>,
    /// How many listeners heard the request: none when no live holder listens.
    pub listeners: u64,
    /// How long ago the holder took the lock, when it wrote it.
    pub age: Option<Duration>,
    /// The holder said it stops its command on this request.
    pub stopping: bool,
    /// The holder's command has ended (`--min-hold` keeps the lock): nobody is there to ask.
    pub ended: bool,
}

/// What `scripts::ask_to_stop` answered.
pub fn asked(reply: Value) -> Result<Asked> {
    let (token, kill_after, listeners, age, state): (String, i64, u64, i64, String) =
        redis::from_redis_value(reply)?;
    let millis = |ms: i64| u64::try_from(ms).ok().map(Duration::from_millis);
    Ok(Asked {
        token: (!token.is_empty()).then_some(token),
        kill_after: millis(kill_after),
        listeners,
        age: millis(age),
        stopping: state == "stopping",
        ended: state == "ended",
    })
}
