//! One lock shared with the application's own lock library (`run --key`): redis-py's `Lock`
//! and node-redlock hold the key itself, and so does redlock, so each sees the other's hold.

use std::time::Duration;

use crate::support::apps::{AppHolder, Library, try_lock};
use crate::support::{Holder, RedisServer, listeners, redlock, script_calls, urls, wait_until};

/// Servers that send a key's `del` to its keyspace channel, as `--key` waiters listen for.
const NOTIFYING: [&str; 2] = ["--notify-keyspace-events", "Kg"];

/// A `redlock run --key` that waits, whose command writes when it started (ns) to `started`.
fn waiter(url: &str, key: &str, dir: &std::path::Path) -> std::process::Child {
    redlock(url)
        .args(["run", "--key", key, "--wait", "30s", "-v", "--", "sh", "-c"])
        .arg("date +%s%N > started")
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn started_ns(dir: &std::path::Path) -> u128 {
    std::fs::read_to_string(dir.join("started"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_key_held_by_redis_py_is_busy_and_names_another_client() {
    let server = RedisServer::start();
    let mut app = AppHolder::start(Library::RedisPy, &[server.port], "reindex", 10_000);
    let output = redlock(&server.url())
        .args(["run", "--key", "reindex", "--", "echo", "ran"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(75));
    assert!(output.stdout.is_empty(), "the command must not run");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(
            "redlock: lock 'reindex' is held by another client (not redlock); expires in "
        ),
        "{stderr}"
    );
    // Nothing of redlock's is added to the key, and the library still holds it.
    assert_eq!(server.cmd::<String>(&["TYPE", "reindex"]), "string");
    app.release();
    assert_eq!(server.cmd::<i64>(&["EXISTS", "reindex"]), 0);
}

#[test]
fn a_key_held_by_redlock_is_held_for_redis_py_until_redlock_exits() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["--key", "reindex"]);
    assert!(!try_lock(Library::RedisPy, &[server.port], "reindex"));
    // The key is a plain string with our token and the lease as its TTL, as the library's own.
    let token: String = server.cmd(&["GET", "reindex"]);
    assert_eq!(token.len(), 32, "{token}");
    let ttl: i64 = server.cmd(&["PTTL", "reindex"]);
    assert!(ttl > 0 && ttl <= 30_000, "{ttl}");
    assert!(holder.finish().0.success());
    assert!(try_lock(Library::RedisPy, &[server.port], "reindex"));
}

/// With keyspace notifications on, a waiter hears the library's release (a DEL) at once: it
/// does not poll while it waits, and takes over within 50 ms (the figure; the hand-over
/// takes a few ms, so only a machine stalled for 50 ms could fail it).
#[test]
fn a_waiter_hears_redis_pys_release_by_keyspace_notifications() {
    let server = RedisServer::start_with(&NOTIFYING);
    let dir = tempfile::tempdir().unwrap();
    let mut app = AppHolder::start(Library::RedisPy, &[server.port], "k", 10_000);
    let mut waiting = waiter(&server.url(), "k", dir.path());
    let mut said = String::new();
    let stderr = waiting.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    // The waiter says how it waits once the server has said whether it sends notifications.
    while !said.contains("keyspace notifications") {
        said.push_str(&lines.next().expect("the waiter ended").unwrap());
        said.push('\n');
    }
    assert!(
        said.contains("redlock: listening to the keyspace notifications of 'k'"),
        "{said}"
    );
    // Held for a second more: a waiter that polled every 100 ms would send ten scripts, this
    // one at most the try that follows its subscription's confirmation.
    let calls_before = script_calls(&server);
    std::thread::sleep(Duration::from_secs(1));
    let scripts = script_calls(&server) - calls_before;
    assert!(scripts <= 1, "{scripts} scripts in a second: the waiter polled");
    let released = app.release();
    assert!(waiting.wait().unwrap().success());
    let took = started_ns(dir.path()).saturating_sub(released);
    assert!(took < 50_000_000, "took over {} ms after the release", took / 1_000_000);
}

/// Without keyspace notifications (the default), a waiter tries again every 100 ms: it takes
/// over within that, plus 100 ms for a loaded machine.
#[test]
fn without_notifications_a_waiter_retries_every_100ms() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut app = AppHolder::start(Library::RedisPy, &[server.port], "k", 10_000);
    let waiting = waiter(&server.url(), "k", dir.path());
    let calls_before = script_calls(&server);
    wait_until("the waiter tries a few times", || {
        script_calls(&server) - calls_before >= 3
    });
    let released = app.release();
    let output = waiting.wait_with_output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(
            "1 of 1 servers send no keyspace notifications for 'k' (notify-keyspace-events \
             needs K and g): trying again every 100ms"
        ),
        "{stderr}"
    );
    let took = started_ns(dir.path()).saturating_sub(released);
    assert!(took < 200_000_000, "took over {} ms after the release", took / 1_000_000);
}

#[test]
fn node_redlock_and_redlock_exclude_each_other_on_one_server() {
    let server = RedisServer::start();
    let ports = [server.port];
    let mut app = AppHolder::start(Library::NodeRedlock, &ports, "job", 10_000);
    let output = redlock(&server.url())
        .args(["run", "--key", "job", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(75));
    app.release();
    let mut holder = Holder::start(&server.url(), &["--key", "job"]);
    assert!(!try_lock(Library::NodeRedlock, &ports, "job"));
    assert!(holder.finish().0.success());
    assert!(try_lock(Library::NodeRedlock, &ports, "job"));
}

/// Over three servers each side's quorum respects the other's: the key on two of them is
/// enough to keep the other side out, and a waiter hears node-redlock's release.
#[test]
fn node_redlock_and_redlock_respect_each_others_quorum_over_three_servers() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start_with(&NOTIFYING)).collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let url = urls(&servers);
    let mut app = AppHolder::start(Library::NodeRedlock, &ports, "job", 10_000);
    // One server loses the key: node-redlock still holds two of three.
    servers[0].cmd::<i64>(&["DEL", "job"]);
    let output = redlock(&url)
        .args(["run", "--key", "job", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(75), "{output:?}");
    // A waiter takes over when node-redlock lets go.
    let dir = tempfile::tempdir().unwrap();
    let waiting = waiter(&url, "job", dir.path());
    wait_until("the waiter listens to the key on every server", || {
        servers
            .iter()
            .all(|s| listeners(&mut s.connection(), "__keyspace@0__:job") == 1)
    });
    let released = app.release();
    assert!(waiting.wait_with_output().unwrap().status.success());
    // node-redlock's clock is read in whole ms, after its unlock returned.
    let started = started_ns(dir.path());
    assert!(started + 2_000_000 >= released, "started before the release");
    let took = started.saturating_sub(released);
    assert!(took < 50_000_000, "took over {} ms after the release", took / 1_000_000);
    // And the other way: redlock holds it; one server loses it; node-redlock still cannot.
    let mut holder = Holder::start(&url, &["--key", "job"]);
    servers[1].cmd::<i64>(&["DEL", "job"]);
    assert!(!try_lock(Library::NodeRedlock, &ports, "job"));
    assert!(holder.finish().0.success());
    assert!(try_lock(Library::NodeRedlock, &ports, "job"));
}

#[test]
fn a_key_of_another_type_is_named_with_its_type_and_nothing_is_written() {
    let server = RedisServer::start();
    server.cmd::<i64>(&["HSET", "reindex", "owner", "app"]);
    server.cmd::<i64>(&["RPUSH", "queue", "job"]);
    for (key, kind) in [("reindex", "hash"), ("queue", "list")] {
        let output = redlock(&server.url())
            .args(["run", "--key", key, "--wait", "5s", "--", "echo", "ran"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(69));
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(
            stderr,
            format!(
                "redlock: cannot take the lock: a key of another type is in the way at \
                 127.0.0.1:{}: {key} is a {kind}, not a lock (redlock holds a lock as a string \
                 key: use another --key)\n",
                server.port
            )
        );
    }
    let keys: Vec<String> = server.cmd(&["KEYS", "*"]);
    assert_eq!(keys.len(), 2, "{keys:?}");
}
