//! What the operators' scripts answer (`scripts::view`, `break_lock`, `ask_to_stop`): a lock as
//! one server sees it, what breaking it found, what asking its holder to stop found.

use std::time::Duration;

use anyhow::Result;
use redis::Value;
use serde::Serialize;

use super::history::Entry;
use super::holder::Holder;
use super::keys::Keys;
use super::name_keys_in_the_way;

/// One server's view of a lock: its holder, or why the server could not be read. Field names
/// are part of the documented JSON. Held shared (`run --shared`), `holder` is the shared
/// holder whose lease ends last, and `readers` lists them all.
#[derive(Debug, Clone, Serialize)]
pub struct ServerView {
    pub address: String,
    pub held: bool,
    #[serde(flatten)]
    pub holder: Holder,
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readers: Vec<Holder>,
    /// A semaphore's N, as stored while any of its places is held.
    #[serde(skip)]
    pub limit: Option<usize>,
    /// The last run that got past busy, in this server's history, and the server's clock.
    #[serde(skip)]
    pub last_run: Option<Entry>,
    #[serde(skip)]
    pub now_ms: i64,
}

impl ServerView {
    pub fn unreachable(address: &str, error: String) -> Self {
        ServerView {
            address: address.to_string(),
            held: false,
            holder: Holder::default(),
            error: Some(error),
            readers: Vec::new(),
            limit: None,
            last_run: None,
            now_ms: 0,
        }
    }
}

/// One server's view of the lock, from `scripts::view`'s reply (`None`: not asked, since it
/// failed before).
pub fn view(address: &str, keys: &Keys, reply: Option<Result<Value>>) -> ServerView {
    let fields = reply.map(|r| r.and_then(|v| Ok(redis::from_redis_value::<Vec<Value>>(v)?)));
    match fields {
        None => ServerView::unreachable(address, "did not answer before".into()),
        Some(Err(e)) => {
            let error = name_keys_in_the_way(e, address, keys);
            ServerView::unreachable(address, format!("{error:#}"))
        }
        Some(Ok(fields)) => {
            let holder = Holder::decode(&fields);
            let limit = stored_limit(&fields);
            let text = |i: usize| match fields.get(i) {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::Int(n)) => n.to_string(),
                _ => String::new(),
            };
            ServerView {
                address: address.to_string(),
                held: holder.token.is_some(),
                holder,
                error: None,
                readers: shared_holders(&fields),
                limit,
                last_run: serde_json::from_str(&text(Holder::FIELDS + 1)).ok(),
                now_ms: text(3).parse().unwrap_or(0),
            }
        }
    }
}

/// The shared holders (`run --shared`) that `scripts::view`'s reply carries after the last
/// run, each as a holder's fields.
pub fn shared_holders(fields: &[Value]) -> Vec<Holder> {
    fields
        .get(Holder::FIELDS + 2..)
        .unwrap_or_default()
        .chunks_exact(Holder::FIELDS)
        .map(Holder::decode)
        .collect()
}

/// The semaphore's N that `scripts::view`'s reply carries after the holder, if one is stored.
pub fn stored_limit(fields: &[Value]) -> Option<usize> {
    match fields.get(Holder::FIELDS) {
        Some(Value::BulkString(n)) => String::from_utf8_lossy(n).parse().ok(),
        _ => None,
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

/// How much longer than its --kill-after a holder asked to stop is waited for (by `release
/// --force` and `run --replace`): its command's SIGKILL comes by then, and what is left is a
/// release (one round trip).
pub const ASK_MARGIN: Duration = Duration::from_secs(2);
/// The --kill-after of a holder that did not write it (an older redlock): the default's for
/// the default TTL.
pub const UNKNOWN_KILL_AFTER: Duration = Duration::from_millis(7_500);

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
