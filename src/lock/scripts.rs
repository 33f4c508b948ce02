//! The lock's Lua scripts (`scripts/*.lua`, put together by build.rs), and the request that
//! runs each with its keys and arguments. Every change to a lock is one script, so that it is
//! atomic on each server.

use std::time::Duration;

use redis::Value;

use super::holder::HolderInfo;
use super::keys::Keys;
use super::transport::{Request, Script, args};

// The scripts, each put together from its files and hashed at build time (build.rs): `ACQUIRE`,
// `EXTEND`, `RELEASE`, `FENCE`, `LEAVE`, `VIEW`, `VIEWS`, `BREAK`, `ASK` and `LIMIT`.
include!(concat!(env!("OUT_DIR"), "/scripts.rs"));

/// Writes nothing that replicas must confirm.
fn no_lease(_: &Value) -> bool {
    false
}

/// A yes-or-no argument: '1' or ''.
fn flag(yes: bool) -> &'static str {
    if yes { "1" } else { "" }
}

/// Redis takes whole milliseconds; a sub-millisecond remainder is dropped.
pub fn millis(duration: Duration) -> u64 {
    duration.as_millis() as u64
}

/// The keys of every place of a lock (`places`, place 0 first) after the shared ones.
fn with_places<'a>(shared: &[&'a str], places: &'a [Keys]) -> Vec<&'a str> {
    let mut keys = shared.to_vec();
    for place in places {
        keys.push(place.lock.as_str());
        keys.push(place.holder.as_str());
    }
    keys
}

/// Which place an acquire asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The first free one.
    Any,
    /// This one if it is free, else the first free one.
    Prefer(usize),
    /// This one, or none.
    Only(usize),
}

/// A run as the history records it (`history.lua`): the entry as JSON, and how many entries
/// the history keeps. `None`: nothing to record.
pub type Recorded<'a> = Option<(&'a str, usize)>;

fn recorded(record: Recorded) -> (String, String) {
    record.map_or((String::new(), "0".into()), |(entry, cap)| {
        (entry.to_string(), cap.to_string())
    })
}

/// Takes a free place of the lock (as `place` says), or describes its holders (see
/// `holder::acquired`); when busy, a caller that will `queue` joins the waiters, and one that
/// will not is recorded as `busy` in the history.
#[allow(clippy::too_many_arguments)]
pub fn acquire(
    places: &[Keys],
    token: &str,
    ttl: Duration,
    me: &HolderInfo,
    queue: bool,
    place: Place,
    busy: Recorded,
    shared_hold: bool,
) -> Request {
    let (entry, cap) = recorded(busy);
    let (wanted, only) = match place {
        Place::Any => (String::new(), "0"),
        Place::Prefer(p) => (p.to_string(), "0"),
        Place::Only(p) => (p.to_string(), "1"),
    };
    let queue = if queue { "1" } else { "0" };
    let shared = &places[0];
    let mut argv = args(&[
        &token,
        &millis(ttl),
        &me.host,
        &me.pid,
        &me.user,
        &me.command,
        &queue,
        // None for a hold of `redlock acquire`: nobody to stop (`Hold::Step`).
        &if me.kill_after.is_zero() {
            String::new()
        } else {
            millis(me.kill_after).to_string()
        },
        &me.time_limit
            .map_or(String::new(), |limit| millis(limit).to_string()),
        &wanted,
        &only,
        &entry,
        &cap,
        &shared.wake(token),
        &flag(shared_hold),
        &shared.wake(""),
    ]);
    argv.extend(
        places
            .iter()
            .map(|place| place.control.clone().into_bytes()),
    );
    ACQUIRE.call(
        &with_places(
            &[
                &shared.fence,
                &shared.waiters,
                &shared.limit,
                &shared.history,
                &shared.readers,
                &shared.reader_details,
                &shared.writers,
            ],
            places,
        ),
        &argv,
        |reply| matches!(reply, Value::Array(items) if items.first() == Some(&Value::Int(1))),
    )
}

/// Raises the fencing counter to `fence` if it is lower; the reply is of no interest.
pub fn raise_fence(keys: &Keys, token: &str, fence: u64) -> Request {
    FENCE.call(
        &[&keys.fence, &keys.holder, &keys.lock],
        &args(&[&fence, &token]),
        no_lease,
    )
}

/// Extends the lease on place `keys` if it is still ours: 1 if so, else 0. `stopping`: says
/// that the holder is stopping its command on `release --force`'s request. `limit`: the
/// semaphore's N, kept stored while it lives (1: a plain lock). `hold`: how it is held (a
/// step's hold is extended only if it is not a run's: -1 then).
pub fn extend(
    keys: &Keys,
    token: &str,
    ttl: Duration,
    stopping: bool,
    limit: usize,
    hold: Hold,
) -> Request {
    let stopping = if stopping { "1" } else { "0" };
    let limit = if limit > 1 {
        limit.to_string()
    } else {
        String::new()
    };
    EXTEND.call(
        &[
            &keys.lock,
            &keys.holder,
            &keys.limit,
            &keys.readers,
            &keys.reader_details,
        ],
        &args(&[
            &token,
            &millis(ttl),
            &stopping,
            &limit,
            &flag(hold == Hold::Shared),
            &flag(hold == Hold::Step),
        ]),
        |reply| reply == &Value::Int(1),
    )
}

/// Leaves the queue of waiters, and records the run when it gave up.
pub fn leave(keys: &Keys, token: &str, gave_up: Recorded) -> Request {
    let (entry, cap) = recorded(gave_up);
    LEAVE.call(
        &[&keys.waiters, &keys.history, &keys.writers],
        &args(&[&keys.wake(token), &entry, &cap]),
        no_lease,
    )
}

/// How a lock is held, for its release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// By a run alone (a place of it, for a semaphore).
    Alone,
    /// By a run as one of its shared holders (`--shared`).
    Shared,
    /// By `redlock acquire`, given back by its token: never a run's (-1 then).
    Step,
}

/// Releases the place of the lock (of `places`) that is still ours, but not place `except`
/// (non-zero if one was); with `keep`, leaves it to expire after `keep`. `run`: the run as the
/// history records it.
pub fn release(
    places: &[Keys],
    token: &str,
    keep: Duration,
    except: Option<usize>,
    run: Recorded,
    tell_waiters: bool,
    hold: Hold,
) -> Request {
    let shared = &places[0];
    let (entry, cap) = recorded(run);
    RELEASE.call(
        &with_places(
            &[
                &shared.waiters,
                &shared.limit,
                &shared.history,
                &shared.readers,
                &shared.reader_details,
                &shared.writers,
            ],
            places,
        ),
        &args(&[
            &token,
            &millis(keep),
            &(if tell_waiters {
                shared.wake("")
            } else {
                String::new()
            }),
            &except.map_or(String::new(), |place| place.to_string()),
            &entry,
            &cap,
            &flag(hold == Hold::Shared),
            &flag(hold == Hold::Step),
        ]),
        no_lease,
    )
}

/// Reads several locks (place 0 of each) in one reply: view.lua's for each, in their order.
/// Their keys must be on one server (and in one slot of a Redis Cluster).
pub fn views(locks: &[Keys]) -> Request {
    let keys: Vec<&str> = locks
        .iter()
        .flat_map(|k| {
            [
                &k.lock,
                &k.holder,
                &k.fence,
                &k.limit,
                &k.history,
                &k.readers,
                &k.reader_details,
            ]
        })
        .map(String::as_str)
        .collect();
    VIEWS.call(&keys, &[], no_lease)
}

/// Deletes a semaphore's stored N (`limit`) if none of its places is held any more.
pub fn clear_limit(shared: &Keys, limit: usize) -> Request {
    let places = shared.slots(limit);
    let mut keys = vec![shared.limit.as_str()];
    keys.extend(places.iter().map(|place| place.lock.as_str()));
    LIMIT.call(&keys, &args(&[&limit]), no_lease)
}

/// Reads the lock, its holder's details and its fencing counter in one reply.
pub fn view(keys: &Keys) -> Request {
    VIEW.call(
        &[
            &keys.lock,
            &keys.holder,
            &keys.fence,
            &keys.limit,
            &keys.history,
            &keys.readers,
            &keys.reader_details,
        ],
        &[],
        no_lease,
    )
}

/// Deletes the lock (only if it holds `token`, when given) and notifies waiters.
pub fn break_lock(keys: &Keys, token: Option<&str>) -> Request {
    BREAK.call(
        &[
            &keys.lock,
            &keys.holder,
            &keys.waiters,
            &keys.readers,
            &keys.reader_details,
            &keys.writers,
        ],
        &args(&[&token.unwrap_or(""), &keys.control, &keys.wake("")]),
        no_lease,
    )
}

/// What a run asks of the live holder of its lock (see `ask_to_stop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask<'a> {
    /// `release --force`: stop the command and release the lock.
    Stop,
    /// `run --replace`: the same, for the run holding token `by`, which waits in the queue and
    /// is moved to its front: the holder's release wakes it, and the waiters that came before
    /// keep their turn after it.
    Replace { by: &'a str },
}

/// Asks the live holder of the lock (only if it holds `token`, when given) to stop its command
/// and release the lock, on its control channel.
pub fn ask_to_stop(keys: &Keys, token: Option<&str>, ask: Ask) -> Request {
    let (verb, by) = match ask {
        Ask::Stop => ("stop", String::new()),
        Ask::Replace { by } => ("replace", keys.wake(by)),
    };
    ASK.call(
        &[
            &keys.lock,
            &keys.holder,
            &keys.waiters,
            &keys.readers,
            &keys.reader_details,
        ],
        &args(&[&keys.control, &token.unwrap_or(""), &verb, &by]),
        no_lease,
    )
}
