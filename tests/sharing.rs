//! One lock shared with the application's own lock library (`run --key`): redis-py's `Lock`
//! and node-redlock hold the key itself, and so does redlock, so each sees the other's hold.

use std::time::Duration;

use crate::support::apps::{AppHolder, Library, try_lock};
use crate::support::{
    Holder, RedisServer, code, listeners, redlock, script_calls, scripts_in_a_second, succeeded,
    urls, wait_until,
};

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

/// The waiter's lines up to the one that says how it waits, once every server has said whether
/// it sends keyspace notifications; the rest of its stderr is read on, by the thread returned.
fn said_how_it_waits(
    waiting: &mut std::process::Child,
) -> (String, std::thread::JoinHandle<String>) {
    let stderr = waiting.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut said = String::new();
    while !said.contains("keyspace notifications") {
        said.push_str(&lines.next().expect("the waiter ended").unwrap());
        said.push('\n');
    }
    let rest =
        std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    (said, rest)
}

/// Checks that the waiter's command started within `limit_ms` of the library's release at
/// `released` (ns since the epoch).
fn took_over_within(dir: &std::path::Path, released: u128, limit_ms: u128) {
    let took = started_ns(dir).saturating_sub(released);
    assert!(
        took < limit_ms * 1_000_000,
        "took over {} ms after the release",
        took / 1_000_000
    );
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
    assert_eq!(output.status.code(), Some(code::BUSY));
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
    let (said, _) = said_how_it_waits(&mut waiting);
    assert!(
        said.contains("redlock: listening to the keyspace notifications of 'k'"),
        "{said}"
    );
    // Held for a second more: a waiter that polled every 100 ms would send ten scripts, this
    // one at most the try that follows its subscription's confirmation.
    let scripts = scripts_in_a_second(std::slice::from_ref(&server));
    assert!(
        scripts <= 1,
        "{scripts} scripts in a second: the waiter polled"
    );
    let (_, released) = app.release();
    assert!(waiting.wait().unwrap().success());
    took_over_within(dir.path(), released, 50);
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
    let (_, released) = app.release();
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
    took_over_within(dir.path(), released, 200);
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
    assert_eq!(output.status.code(), Some(code::BUSY));
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
    let servers: Vec<RedisServer> = (0..3)
        .map(|_| RedisServer::start_with(&NOTIFYING))
        .collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let url = urls(&servers);
    let mut app = AppHolder::start(Library::NodeRedlock, &ports, "job", 10_000);
    // One server loses the key: node-redlock still holds two of three.
    servers[0].cmd::<i64>(&["DEL", "job"]);
    let output = redlock(&url)
        .args(["run", "--key", "job", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code::BUSY), "{output:?}");
    // A waiter takes over when node-redlock lets go.
    let dir = tempfile::tempdir().unwrap();
    let mut waiting = waiter(&url, "job", dir.path());
    let (said, _) = said_how_it_waits(&mut waiting);
    assert!(
        said.contains("listening to the keyspace notifications of 'job'"),
        "{said}"
    );
    wait_until("the waiter listens to the key on every server", || {
        servers
            .iter()
            .all(|s| listeners(&mut s.connection(), "__keyspace@0__:job") == 1)
    });
    // Held for a second more: a waiter that polled every 100 ms would send ten scripts.
    let scripts = scripts_in_a_second(&servers);
    // At most two more tries as the other servers confirm its subscriptions, each an acquire
    // on the three servers and a give-back on the one that lost the key; polling would be ten
    // such tries.
    assert!(
        scripts <= 8,
        "{scripts} scripts in a second: the waiter polled"
    );
    let (releasing, released) = app.release();
    assert!(waiting.wait().unwrap().success());
    // Not before node-redlock's unlock began (its clock is read in whole ms, rounded down):
    // it holds the lock until then. Once it began, a majority of its keys may be gone before
    // its unlock returns, and the waiter may take over: no slack is needed.
    let started = started_ns(dir.path());
    assert!(started >= releasing, "started before the release began");
    took_over_within(dir.path(), released, 50);
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
        assert_eq!(output.status.code(), Some(code::UNAVAILABLE));
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

/// A shell loop of `runs` runs of `command`, in `dir`.
fn shell_loop(runs: usize, command: &str, dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for i in $(seq {runs}); do {command} || echo \"FAILED $?\" >> log; done"
        ))
        .current_dir(dir)
        .spawn()
        .unwrap()
}

/// redlock's side of the contention: start, three life-signs and end, as pylock.py's `once`.
fn redlock_loop(url: &str, runs: usize, dir: &std::path::Path) -> std::process::Child {
    let critical = "m() { echo \"$1 rl$$ $(date +%s%N)\" >> log; }; m start; \
                    for i in 1 2 3; do sleep 0.005; m alive; done; m end";
    let command = format!(
        "REDLOCK_URL={url} '{}' run --key shared --wait 120s -- sh -c '{critical}'",
        env!("CARGO_BIN_EXE_redlock")
    );
    shell_loop(runs, &command, dir)
}

/// redis-py's side: a Python process per run, each holding the key once (`ttl_ms`).
fn python_loop(
    port: u16,
    runs: usize,
    ttl_ms: u64,
    gap_ms: u64,
    dir: &std::path::Path,
) -> std::process::Child {
    let python = crate::support::apps::command(Library::RedisPy, &[port], "shared", ttl_ms, "once");
    let argv: Vec<String> = std::iter::once(python.get_program())
        .chain(python.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    // The shell that sees a holder SIGKILLed says so on its stderr: kept out of the test's.
    let command = format!("( {} log {gap_ms} ) 2>>python.stderr", argv.join(" "));
    shell_loop(runs, &command, dir)
}

/// Reads the marks (`WORD ID NS` lines) and checks that no two holders' intervals overlap: a
/// holder's start, life-signs and end come one after the other. A holder in `killed` may have
/// no end: the next one must then start no sooner than `ttl_ms` after its `try` (its key
/// expired; nobody took it early). Returns the runs completed or killed.
fn check_marks(log: &str, killed: &[String], ttl_ms: u64) -> usize {
    let mut current: Option<(&str, u128)> = None;
    let mut tried: std::collections::HashMap<&str, u128> = Default::default();
    let mut runs = 0;
    for line in log.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [word, id, ns] = fields[..] else {
            panic!("a run failed: {line}\n{log}")
        };
        let ns: u128 = ns.parse().unwrap();
        match word {
            "try" => {
                tried.insert(id, ns);
            }
            "start" => {
                if let Some((holder, _)) = current {
                    assert!(
                        killed.iter().any(|k| k == holder),
                        "{id} started while {holder} held the lock:\n{log}"
                    );
                    let expired = tried[holder] + u128::from(ttl_ms) * 1_000_000;
                    assert!(
                        ns >= expired,
                        "{id} started {} ms before the key of {holder} (killed) expired:\n{log}",
                        (expired - ns) / 1_000_000
                    );
                }
                current = Some((id, ns));
                runs += 1;
            }
            "alive" | "end" => {
                assert_eq!(
                    current.map(|c| c.0),
                    Some(id),
                    "{line}: not the holder:\n{log}"
                );
                if word == "end" {
                    current = None;
                }
            }
            _ => panic!("{line}"),
        }
    }
    runs
}

/// Three shell loops of `redlock run --key` and three Python loops with redis-py's `Lock` on
/// one key, 204 runs: no two critical sections overlap.
#[test]
fn redlock_and_redis_py_loops_never_overlap() {
    let server = RedisServer::start_with(&NOTIFYING);
    let dir = tempfile::tempdir().unwrap();
    let mut loops: Vec<_> = (0..3)
        .map(|_| redlock_loop(&server.url(), 34, dir.path()))
        .collect();
    loops.extend((0..3).map(|_| python_loop(server.port, 34, 10_000, 5, dir.path())));
    for mut child in loops {
        assert!(child.wait().unwrap().success());
    }
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(check_marks(&log, &[], 0), 204);
    assert_eq!(log.matches("start rl").count(), 102, "{log}");
}

/// The same with Python holders SIGKILLed while they hold the key: it stays theirs until its
/// TTL runs out; redlock (and the other Python loops) take over then, never before.
#[test]
fn a_killed_redis_py_holder_keeps_redlock_out_until_its_ttl() {
    const TTL_MS: u64 = 1_000;
    let server = RedisServer::start_with(&NOTIFYING);
    let dir = tempfile::tempdir().unwrap();
    let mut loops: Vec<_> = (0..3)
        .map(|_| redlock_loop(&server.url(), 8, dir.path()))
        .collect();
    // Life-signs 40 ms apart: time for the killer to see the start and strike while it holds.
    loops.extend((0..3).map(|_| python_loop(server.port, 8, TTL_MS, 40, dir.path())));
    let log_path = dir.path().join("log");
    let mut killed: Vec<String> = Vec::new();
    let mut seen = 0;
    // Every other Python holder is killed as soon as its start mark appears, five in all.
    let mut python_starts = 0;
    while killed.len() < 5 {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        for line in log.lines().skip(seen) {
            seen += 1;
            if let Some(rest) = line.strip_prefix("start py") {
                python_starts += 1;
                if python_starts % 2 == 1 {
                    let pid: i32 = rest.split(' ').next().unwrap().parse().unwrap();
                    nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    )
                    .unwrap();
                    killed.push(format!("py{pid}"));
                }
            }
        }
        assert!(
            loops.iter_mut().any(|l| l.try_wait().unwrap().is_none()),
            "the loops ended before five kills:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    for mut child in loops {
        assert!(child.wait().unwrap().success());
    }
    let log = std::fs::read_to_string(&log_path).unwrap();
    // A killed run writes no end: the log would show a failed run for it, which is the kill.
    let log: String = log
        .lines()
        .filter(|line| !line.starts_with("FAILED 137"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(check_marks(&log, &killed, TTL_MS), 48);
    for id in &killed {
        assert!(
            !log.contains(&format!("end {id}")),
            "{id} was killed too late"
        );
    }
}

/// The rest of a run works on a key as on a name: the command learns the key and its fence,
/// `status --key` shows the holder, `history --key` the run, and a key taken by a library
/// after it was deleted behind our back is a lost lock (76), heard by the heartbeat.
#[test]
fn a_key_run_has_its_fence_status_history_and_loses_a_key_taken_by_a_library() {
    let server = RedisServer::start();
    let url = server.url();
    let output = redlock(&url)
        .args(["run", "--key", "job", "--", "sh", "-c"])
        .arg("echo \"$REDLOCK_KEY ${REDLOCK_NAME-unset} $REDLOCK_FENCE\"")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "job unset 1\n");
    let mut holder = Holder::start(&url, &["--key", "job", "--ttl", "2s"]);
    let status = redlock(&url)
        .args(["status", "--key", "job", "--json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["held"], true, "{status}");
    assert_eq!(status["holder"]["fence"], 2, "{status}");
    assert_eq!(
        status["holder"]["pid"],
        holder.redlock_pid().as_raw(),
        "{status}"
    );
    // The key deleted and taken by the application: the holder stops its command, exits 76.
    server.cmd::<i64>(&["DEL", "job"]);
    let mut app = AppHolder::start(Library::RedisPy, &[server.port], "job", 10_000);
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
    // The library's lock is left alone.
    assert_eq!(server.cmd::<i64>(&["EXISTS", "job"]), 1);
    app.release();
    let history = redlock(&url)
        .args(["history", "--key", "job", "--json"])
        .output()
        .unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    let outcomes: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["lost", "ran"], "{runs}");
}

/// `release --key --force` breaks redlock's hold of a key: its holder stops and exits 76.
#[test]
fn release_key_force_breaks_a_redlock_holder() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["--key", "job"]);
    succeeded(redlock(&server.url()).args(["release", "--key", "job", "--force"]));
    let (status, _) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST));
    assert_eq!(server.cmd::<i64>(&["EXISTS", "job"]), 0);
}

#[test]
fn key_and_name_or_prefix_are_exclusive_and_braces_are_refused() {
    let server = RedisServer::start();
    for args in [
        &["run", "--key", "k", "--name", "n", "--", "true"][..],
        &["run", "--key", "k", "--prefix", "p", "--", "true"],
        &["status", "--key", "k", "--name", "n"],
        &["run", "--key", "k", "--limit", "2", "--", "true"],
        &["run", "--key", "tenant}1", "--", "true"],
    ] {
        let output = redlock(&server.url()).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(code::USAGE), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("redlock: "), "{stderr}");
    }
    // REDLOCK_PREFIX in the environment is for names: ignored beside --key.
    succeeded(
        redlock(&server.url())
            .env("REDLOCK_PREFIX", "other")
            .args(["run", "--key", "k", "--", "true"]),
    );
}

/// The heartbeat keeps a key past its first TTL, and `--min-hold` keeps it after the command:
/// the library sees it held all the while.
#[test]
fn the_heartbeat_and_min_hold_keep_a_key_held_for_the_library() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["--key", "job", "--ttl", "1s"]);
    // Past the first TTL: only the heartbeat can have kept the key.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(holder.process.try_wait().unwrap().is_none());
    assert!(!try_lock(Library::RedisPy, &[server.port], "job"));
    assert!(holder.finish().0.success());
    succeeded(redlock(&server.url()).args([
        "run",
        "--key",
        "job",
        "--min-hold",
        "5s",
        "--",
        "true",
    ]));
    assert!(!try_lock(Library::RedisPy, &[server.port], "job"));
    let ttl: i64 = server.cmd(&["PTTL", "job"]);
    assert!(ttl > 0 && ttl <= 5_000, "{ttl}");
}

/// A key that a node other than the seed (the URL's first) owns, held there the libraries' way
/// for ten seconds.
fn held_off_the_seed(cluster: &crate::support::cluster::Cluster) -> String {
    let key = (0..)
        .map(|i| format!("app-{i}"))
        .find(|key| cluster.owner(key).port != cluster.nodes[0].port)
        .unwrap();
    cluster
        .owner(&key)
        .cmd::<()>(&["SET", &key, "app-token", "PX", "10000"]);
    key
}

/// On a Redis Cluster the companions share the key's slot: keys on every primary run; and a
/// waiter given a node that does not own the key listens to its keyspace notifications on the
/// node that does, and hears a library's release there.
#[test]
fn keys_run_on_a_cluster_and_waiters_hear_the_owners_notifications() {
    let cluster = crate::support::cluster::Cluster::start(3, 0);
    for node in &cluster.nodes {
        node.cmd::<()>(&["CONFIG", "SET", "notify-keyspace-events", "Kg"]);
    }
    for i in 0..30 {
        let key = format!("reindex-{i}");
        succeeded(redlock(&cluster.url()).args(["run", "--key", &key, "--", "true"]));
        let owner = cluster.owner(&key);
        assert_eq!(
            owner.cmd::<String>(&["GET", &format!("{{{key}}}:fence")]),
            "1"
        );
    }
    let key = held_off_the_seed(&cluster);
    let owner = cluster.owner(&key);
    let dir = tempfile::tempdir().unwrap();
    let waiting = waiter(&cluster.url(), &key, dir.path());
    let channel = format!("__keyspace@0__:{key}");
    wait_until("the waiter listens on the owner", || {
        listeners(&mut owner.connection(), &channel) == 1
    });
    let deleted = std::time::Instant::now();
    owner.cmd::<i64>(&["DEL", &key]);
    let output = waiting.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    // Heard, not waited out: the key had 10 s left (a second is room for a loaded machine).
    assert!(
        deleted.elapsed() < Duration::from_secs(1),
        "{:?}",
        deleted.elapsed()
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("listening to the keyspace notifications"),
        "{stderr}"
    );
}

/// Only where the node that owns the key sends notifications: a cluster whose seed node sends
/// them and whose owner does not is waited for by retrying.
#[test]
fn a_cluster_is_asked_for_its_setting_on_the_keys_owner() {
    let cluster = crate::support::cluster::Cluster::start(3, 0);
    cluster.nodes[0].cmd::<()>(&["CONFIG", "SET", "notify-keyspace-events", "Kg"]);
    let key = held_off_the_seed(&cluster);
    let owner = cluster.owner(&key);
    let dir = tempfile::tempdir().unwrap();
    let mut waiting = waiter(&cluster.url(), &key, dir.path());
    let (said, _) = said_how_it_waits(&mut waiting);
    assert!(
        said.contains("1 of 1 servers send no keyspace notifications"),
        "{said}"
    );
    owner.cmd::<i64>(&["DEL", &key]);
    assert!(waiting.wait().unwrap().success());
}

/// A subscription that fails (the server dropped it) no longer counts: the waiter goes back to
/// retrying, and takes over within that, not at the key's TTL (10 s).
#[test]
fn a_dropped_subscription_falls_back_to_retrying() {
    let server = RedisServer::start_with(&NOTIFYING);
    server.cmd::<()>(&["SET", "k", "app-token", "PX", "10000"]);
    let dir = tempfile::tempdir().unwrap();
    let mut waiting = waiter(&server.url(), "k", dir.path());
    let (said, rest) = said_how_it_waits(&mut waiting);
    assert!(
        said.contains("listening to the keyspace notifications"),
        "{said}"
    );
    server.cmd::<i64>(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    // It tries again now and then: the next try after the kill.
    let before = script_calls(&server);
    wait_until("the waiter retries", || script_calls(&server) > before);
    // Still the application's: the waiter retried, and found it held.
    assert_eq!(server.cmd::<String>(&["GET", "k"]), "app-token");
    let deleted = std::time::Instant::now();
    server.cmd::<i64>(&["DEL", "k"]);
    let status = waiting.wait().unwrap();
    assert!(status.success(), "{status}: {said}{}", rest.join().unwrap());
    assert!(
        deleted.elapsed() < Duration::from_secs(2),
        "{:?}",
        deleted.elapsed()
    );
}

/// A server that refuses CONFIG (an ACL without it, as managed services have) is taken for one
/// that sends no notifications: the waiter says so, and retries.
#[test]
fn a_refused_config_is_no_notifications() {
    let server = RedisServer::start_with(&NOTIFYING);
    server.cmd::<()>(&[
        "ACL", "SETUSER", "app", "on", ">secret", "~*", "&*", "+@all", "-config",
    ]);
    server.cmd::<()>(&["SET", "k", "app-token", "PX", "10000"]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://app:secret@127.0.0.1:{}", server.port);
    let mut waiting = waiter(&url, "k", dir.path());
    let (said, _) = said_how_it_waits(&mut waiting);
    assert!(
        said.contains("1 of 1 servers send no keyspace notifications"),
        "{said}"
    );
    server.cmd::<i64>(&["DEL", "k"]);
    assert!(waiting.wait().unwrap().success());
}

/// Between redlock runs of a key the release notice still does the work, notifications or not:
/// a waiter behind a redlock holder does not poll (its release is published), and takes over
/// on it at once.
#[test]
fn redlock_runs_of_a_key_hear_each_other_without_polling() {
    let server = RedisServer::start();
    let mut holder = Holder::start(&server.url(), &["--key", "job"]);
    let dir = tempfile::tempdir().unwrap();
    let mut waiting = waiter(&server.url(), "job", dir.path());
    let (said, _) = said_how_it_waits(&mut waiting);
    assert!(said.contains("send no keyspace notifications"), "{said}");
    let scripts = scripts_in_a_second(std::slice::from_ref(&server));
    // At most a try on its subscription's confirmation and the holder's check once it
    // listens; polling every 100 ms would be ten.
    assert!(
        scripts <= 3,
        "{scripts} scripts in a second: the waiter polled"
    );
    let released = std::time::Instant::now();
    assert!(holder.finish().0.success());
    assert!(waiting.wait().unwrap().success());
    // The holder's lease was 30 s: a second is room for a loaded machine, not a timer.
    assert!(
        released.elapsed() < Duration::from_secs(1),
        "{:?}",
        released.elapsed()
    );
}
