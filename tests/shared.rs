//! Shared holders (`run --shared`): any number of them hold a name at once, an exclusive run
//! waits for all of them, and a queued exclusive run goes before shared runs that come after
//! it. Each holder's command says what it saw (fence, REDLOCK_SHARED) in its own files.

use std::process::{Child, Stdio};

use crate::support::cluster::Cluster;
use crate::support::{
    Holder, RedisServer, code, exits_with, is_dead, keys, redlock, start_servers, succeeded, urls,
    wait_for_subscriber, wait_until, waiters_listening,
};

/// A shared holder whose command writes its fence and REDLOCK_SHARED to `seen`.
const SEEN: &str = "echo \"$REDLOCK_FENCE $REDLOCK_SHARED\" > seen; echo $$ > pid; echo ready; \
                    read line; true";

fn shared(url: &str, name: &str) -> Holder {
    Holder::start_script(url, &["-n", name, "--shared"], SEEN)
}

fn seen(holder: &Holder) -> String {
    std::fs::read_to_string(holder.path("seen")).unwrap()
}

/// A run of `name` that waits up to a minute, with `flags`; its command prints its fence.
fn waiting(url: &str, name: &str, flags: &[&str], command: &str) -> Child {
    redlock(url)
        .args(["run", "-n", name, "--wait", "60s"])
        .args(flags)
        .args(["--", "sh", "-c", command])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: Child) -> String {
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn shared_holders_hold_together_and_an_exclusive_run_waits_for_all() {
    let server = RedisServer::start();
    let url = server.url();
    // The current fence goes to the shared holders: an exclusive run's first.
    succeeded(redlock(&url).args(["run", "-n", "r", "--", "true"]));
    let mut first = shared(&url, "r");
    let mut second = shared(&url, "r");
    // Both are ready, so both hold it; each saw fence 1 and REDLOCK_SHARED=1.
    assert_eq!(seen(&first), "1 1\n");
    assert_eq!(seen(&second), "1 1\n");
    let stderr = exits_with(
        redlock(&url).args(["run", "-n", "r", "--", "true"]),
        code::BUSY,
    );
    assert!(
        stderr.starts_with("redlock: lock 'r' is held shared by 2 run(s), the last to end: "),
        "{stderr}"
    );
    let exclusive = waiting(&url, "r", &[], "echo \"$REDLOCK_FENCE [$REDLOCK_SHARED]\"");
    wait_for_subscriber(&server, "r");
    assert!(first.finish().0.success());
    // One shared holder is still there: the exclusive run still waits.
    assert!(!is_dead(exclusive.id() as i32));
    assert!(second.finish().0.success());
    assert_eq!(
        finished(exclusive),
        "2 []\n",
        "larger than the shared holders' fence"
    );
}

#[test]
fn a_queued_exclusive_run_goes_before_shared_runs_that_come_later() {
    let server = RedisServer::start();
    let url = server.url();
    let mut reader = shared(&url, "w");
    let writer = waiting(&url, "w", &[], "echo writer; sleep 0.2; echo writer done");
    wait_for_subscriber(&server, "w");
    // A new shared run does not join the holder: the exclusive run waits before it.
    let stderr = exits_with(
        redlock(&url).args(["run", "-n", "w", "--shared", "--", "true"]),
        code::BUSY,
    );
    assert!(stderr.contains("is held shared by 1 run(s)"), "{stderr}");
    let late = waiting(&url, "w", &["--shared"], "echo late reader");
    let mut connection = server.connection();
    wait_until("both wait", || waiters_listening(&mut connection, "w") == 2);
    assert!(reader.finish().0.success());
    assert_eq!(finished(writer), "writer\nwriter done\n");
    assert_eq!(finished(late), "late reader\n");
}

/// A shared waiter woken by a release keeps its turn before an exclusive waiter that came
/// after it: it does not go to the back of the queue.
#[test]
fn a_woken_shared_waiter_goes_before_a_later_exclusive_one() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("order");
    let mut holder = Holder::start(&url, &["-n", "o"]);
    let mut connection = server.connection();
    let append = |who: &str| format!("echo {who} >> {}", log.display());
    let reader = waiting(&url, "o", &["--shared"], &append("shared"));
    wait_until("the shared run waits", || {
        waiters_listening(&mut connection, "o") == 1
    });
    let writer = waiting(&url, "o", &[], &append("exclusive"));
    wait_until("both wait", || waiters_listening(&mut connection, "o") == 2);
    assert!(holder.finish().0.success());
    finished(reader);
    finished(writer);
    let order = std::fs::read_to_string(&log).unwrap();
    assert_eq!(order, "shared\nexclusive\n");
}

/// Shared waiters behind an exclusive holder come in together: each command waits for the
/// other's file, so that neither can end before both hold the lock.
#[test]
fn shared_waiters_come_in_together() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let mut holder = Holder::start(&url, &["-n", "t"]);
    let both = |me: &str, other: &str| {
        format!(
            "touch {d}/{me}; n=0; until [ -e {d}/{other} ]; do sleep 0.01; n=$((n+1)); \
             [ $n -gt 2000 ] && exit 9; done; echo {me}",
            d = dir.path().display()
        )
    };
    let a = waiting(&url, "t", &["--shared"], &both("a", "b"));
    let b = waiting(&url, "t", &["--shared"], &both("b", "a"));
    let mut connection = server.connection();
    wait_until("both wait", || waiters_listening(&mut connection, "t") == 2);
    assert!(holder.finish().0.success());
    assert_eq!(finished(a), "a\n");
    assert_eq!(finished(b), "b\n");
}

#[test]
fn a_shared_holder_that_loses_its_share_stops_its_command_with_76() {
    let server = RedisServer::start();
    let url = server.url();
    let mut holder = Holder::start(&url, &["-n", "l", "--shared", "--ttl", "1s"]);
    let token: Vec<String> = server.cmd(&["ZRANGE", &keys("l").readers, "0", "-1"]);
    let _: i64 = server.cmd(&["ZREM", &keys("l").readers, &token[0]]);
    let (status, stderr) = holder.wait();
    assert_eq!(status.code(), Some(code::LOCK_LOST), "{stderr}");
}

#[test]
fn status_list_and_release_force_see_every_shared_holder() {
    let server = RedisServer::start();
    let url = server.url();
    let mut first = shared(&url, "s");
    let mut second = shared(&url, "s");
    let status = String::from_utf8(succeeded(redlock(&url).args(["status", "-n", "s"]))).unwrap();
    assert!(
        status.starts_with("lock 's' is held shared by 2 run(s)\n"),
        "{status}"
    );
    for holder in [&first, &second] {
        let pid = format!("pid {}", holder.redlock_pid());
        assert!(status.contains(&pid), "{status}");
    }
    let json = succeeded(redlock(&url).args(["status", "-n", "s", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["held"], true);
    assert_eq!(json["holder"]["shared"], 2);
    assert_eq!(json["holder"]["readers"].as_array().unwrap().len(), 2);
    let list = String::from_utf8(succeeded(redlock(&url).args(["list"]))).unwrap();
    assert!(list.starts_with("s [shared by 2]\t"), "{list}");
    // Each shared holder is asked to stop its command and let go.
    succeeded(redlock(&url).args(["release", "-n", "s", "--force"]));
    for holder in [&mut first, &mut second] {
        assert_eq!(holder.wait().0.code(), Some(code::LOCK_LOST));
    }
    exits_with(redlock(&url).args(["status", "-n", "s"]), 1);
}

#[test]
fn replace_takes_over_from_every_shared_holder() {
    let server = RedisServer::start();
    let url = server.url();
    let mut first = shared(&url, "p");
    let mut second = shared(&url, "p");
    let out = succeeded(redlock(&url).args(["run", "-n", "p", "--replace", "--", "echo", "mine"]));
    assert_eq!(out, b"mine\n");
    for holder in [&mut first, &mut second] {
        assert_eq!(holder.wait().0.code(), Some(code::REPLACED));
    }
}

/// A crashed shared holder frees its share when its lease ends, as a lock's holder does.
#[test]
fn a_killed_shared_holder_frees_its_share_within_its_ttl() {
    let server = RedisServer::start();
    let url = server.url();
    let holder = Holder::start(&url, &["-n", "k", "--shared", "--ttl", "1s"]);
    nix::sys::signal::kill(holder.redlock_pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    let exclusive = waiting(&url, "k", &[], "echo mine");
    assert_eq!(finished(exclusive), "mine\n");
    let left: i64 = server.cmd(&["EXISTS", &keys("k").readers]);
    assert_eq!(left, 0);
}

#[test]
fn a_shared_run_inside_a_shared_run_shares_its_lease_and_an_exclusive_one_does_not() {
    let server = RedisServer::start();
    let bin = env!("CARGO_BIN_EXE_redlock");
    let inner = format!(
        "'{bin}' run -n n --shared -- echo inner-shared; '{bin}' run -n n -- echo inner-alone; \
         echo \"alone $?\""
    );
    let out = succeeded(
        redlock(&server.url()).args(["run", "-n", "n", "--shared", "--", "sh", "-c", &inner]),
    );
    assert_eq!(out, b"inner-shared\nalone 75\n");
}

#[test]
fn shared_is_refused_beside_limit_key_and_replace() {
    for (flags, says) in [
        (&["--limit", "2"][..], "--limit 2"),
        (&["--replace"][..], "--replace"),
    ] {
        let stderr = exits_with(
            redlock("redis://127.0.0.1:1")
                .args(["run", "-n", "x", "--shared"])
                .args(flags)
                .args(["--", "true"]),
            code::USAGE,
        );
        assert!(
            stderr.starts_with("redlock: --shared cannot be used with "),
            "{stderr}"
        );
        assert!(stderr.contains(says), "{stderr}");
    }
    let stderr = exits_with(
        redlock("redis://127.0.0.1:1").args(["run", "--key", "k", "--shared", "--", "true"]),
        code::USAGE,
    );
    assert!(stderr.contains("--key"), "{stderr}");
}

/// Over three servers, one of them frozen: each share is taken on a majority.
#[test]
fn shared_holders_over_three_servers() {
    let servers = start_servers(3);
    let url = urls(&servers);
    servers[2].freeze();
    let mut first = shared(&url, "q");
    let mut second = shared(&url, "q");
    exits_with(
        redlock(&url).args(["run", "-n", "q", "--", "true"]),
        code::BUSY,
    );
    first.finish();
    second.finish();
    succeeded(redlock(&url).args(["run", "-n", "q", "--", "true"]));
    servers[2].thaw();
}

#[test]
fn shared_holders_on_a_cluster() {
    let cluster = Cluster::start(3, 0);
    let url = cluster.url();
    let mut first = shared(&url, "c");
    let mut second = shared(&url, "c");
    exits_with(
        redlock(&url).args(["run", "-n", "c", "--", "true"]),
        code::BUSY,
    );
    let status = String::from_utf8(succeeded(redlock(&url).args(["status", "-n", "c"]))).unwrap();
    assert!(
        status.starts_with("lock 'c' is held shared by 2 run(s)"),
        "{status}"
    );
    first.finish();
    second.finish();
    succeeded(redlock(&url).args(["run", "-n", "c", "--", "true"]));
}
