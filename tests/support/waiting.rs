//! Waiting on events, never on time alone: a condition polled until `PATIENCE`, a pid file
//! written, a process gone, a listener subscribed.

use std::path::Path;
use std::time::{Duration, Instant};

use super::keys;
use super::server::RedisServer;

/// Generous bound for things that normally take milliseconds: only a broken build waits it out.
pub const PATIENCE: Duration = Duration::from_secs(20);

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

/// Waits until a waiter of lock `name` listens on its channel (`Keys::wake`).
pub fn wait_for_subscriber(server: &RedisServer, name: &str) {
    let mut connection = server.connection();
    wait_until("a waiter subscribes", || {
        waiters_listening(&mut connection, name) == 1
    });
}

/// How many waiters of lock `name` listen on their channels (`Keys::wake`: the release
/// channel, ':' and the waiter's token), sharded or not.
pub fn waiters_listening(connection: &mut redis::Connection, name: &str) -> usize {
    let pattern = format!("{}:*", keys(name).channel);
    let mut count = |kind: &str| {
        let channels: redis::RedisResult<Vec<String>> = redis::cmd("PUBSUB")
            .arg(kind)
            .arg(&pattern)
            .query(connection);
        channels.map_or(0, |c| c.len())
    };
    count("CHANNELS") + count("SHARDCHANNELS")
}

/// Waits until the holder of lock `name` listens on its control channel: from a moment after
/// its command started.
pub fn wait_for_holder(server: &RedisServer, name: &str) {
    wait_for_listener(server, &keys(name).control, "the holder listens");
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

/// Waits until every one of `servers` has lock `name`'s key: a run starts its command once a
/// majority granted it, and a slower server may execute the acquire later. A test that deletes
/// the key on some servers must wait for that, or the late acquire puts it back.
pub fn wait_held_everywhere(servers: &[RedisServer], name: &str) {
    wait_until("every server has the lock", || {
        servers.iter().all(|s| {
            s.cmd::<Option<String>>(&["GET", &keys(name).lock])
                .is_some()
        })
    });
}
